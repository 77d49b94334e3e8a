#!/bin/sh
# find-go.sh prints the path of a Go toolchain at least as new as go.mod's
# `go` line. Debian 12's golang-go (1.19) is older: then the toolchain is
# fetched from the Go module proxy (golang.org/toolchain, the same archive
# `GOTOOLCHAIN=auto` uses) into .cache/ and that path is printed.
set -eu
cd "$(dirname "$0")/.."
want=$(awk '$1 == "go" { print $2; exit }' go.mod)
new_enough() { # new_enough GO: its version is at least $want
	v=$("$1" env GOVERSION 2>/dev/null | sed 's/^go//') || return 1
	[ -n "$v" ] && [ "$(printf '%s\n%s\n' "$want" "$v" | sort -V | head -n1)" = "$want" ]
}
for g in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go /usr/lib/go/bin/go; do
	if [ -n "$g" ] && [ -x "$g" ] && new_enough "$g"; then
		echo "$g"
		exit 0
	fi
done
case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*) arch=$(uname -m) ;;
esac
dir=.cache/go$want
if [ ! -x "$dir/bin/go" ]; then
	echo "find-go: no Go $want or newer here; fetching it from the module proxy" >&2
	for p in curl unzip ca-certificates; do
		dpkg-query -W -f='${Status}' $p 2>/dev/null | grep -q 'install ok installed' || missing="${missing:-} $p"
	done
	if [ -n "${missing:-}" ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; }
	fi
	proxy=$(echo "${GOPROXY:-https://proxy.golang.org}" | cut -d, -f1 | cut -d'|' -f1)
	[ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$want.linux-$arch.zip"
	unzip -q "$tmp/go.zip" -d "$tmp/x"
	mkdir -p .cache
	rm -rf "$dir"
	mv "$tmp/x/golang.org/toolchain@v0.0.1-go$want.linux-$arch" "$dir"
	chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/* 2>/dev/null || true
fi
echo "$PWD/$dir/bin/go"
