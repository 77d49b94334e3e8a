# vifsec — see README.md. Every target installs what it needs (make deps).
SHELL := /bin/bash
# Go at least as new as go.mod's go line: the one on PATH or in
# /usr/local/go, else fetched from the Go module proxy (packaging/find-go.sh).
GO    := $(shell packaging/find-go.sh)
ifeq ($(GO),)
$(error no Go toolchain: packaging/find-go.sh found none and could not fetch one)
endif
GOFMT := $(dir $(GO))gofmt
BIN   := bin
PKG   := github.com/vifsec/vifsec
# VERSION is stamped into every binary (--version) and names the package.
BASE_VERSION := 0.1.0
VERSION ?= $(BASE_VERSION)+git$(shell git rev-list --count HEAD 2>/dev/null || echo 0).$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X $(PKG)/internal/buildinfo.Version=$(VERSION)
# make install PREFIX=/usr DESTDIR=...: binaries in PREFIX/sbin (vifsecd,
# vifsec-hook) and PREFIX/bin (vifsec), man pages, completions, the unit.
PREFIX ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=
ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB := $(BIN)/vifsec_$(VERSION)_$(ARCH).deb
# Debian packages the tests, the lab and the demo use.
APT_PKGS := prometheus iproute2 iputils-ping ethtool tcpdump tshark iperf3 wireguard-tools strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins \
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-daemon-system-sysv libvirt-clients qemu-system-x86 \
  etcd-server zsh man-db debootstrap nftables
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# wireguard-go, the benchmarks' userspace-tunnel baseline, pinned; its
# binary is named wireguard.
WIREGUARD_GO := golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446
# make test must stay under 15 minutes on a 2-core machine.
TEST_TIMEOUT ?= 12m

.PHONY: all deps build install deb test test-package bench bench-esp bench-sadb bench-datapath bench-e2e bench-scale wireguard-go bench-fleet bench-ike lint demo clean lab-sw6 lab-libreswan lab-roots

all: build

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null || { echo "deps: apt-get install$$missing failed" >&2; exit 1; }; \
	fi
	@$(GO) mod download

build: deps
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# install builds binaries that know where they are installed (the
# libvirt hook file names PREFIX/sbin/vifsec-hook), and generates the man
# pages and shell completions from the programs' own flag tables.
install: deps
	@mkdir -p $(BIN)/install
	$(GO) build -ldflags "$(LDFLAGS) -X $(PKG)/internal/buildinfo.SbinDir=$(PREFIX)/sbin" -o $(BIN)/install/ ./cmd/...
	install -D -m 0755 $(BIN)/install/vifsecd $(DESTDIR)$(PREFIX)/sbin/vifsecd
	install -D -m 0755 $(BIN)/install/vifsec-hook $(DESTDIR)$(PREFIX)/sbin/vifsec-hook
	install -D -m 0755 $(BIN)/install/vifsec $(DESTDIR)$(PREFIX)/bin/vifsec
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
	for p in vifsecd vifsec vifsec-hook; do $(BIN)/install/$$p --man | gzip -9n > $(DESTDIR)$(PREFIX)/share/man/man8/$$p.8.gz; done
	$(BIN)/install/vifsec completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vifsec
	$(BIN)/install/vifsec completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_vifsec
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' packaging/vifsecd.service > $(DESTDIR)$(UNITDIR)/vifsecd.service
	install -D -m 0644 packaging/vifsecd.default $(DESTDIR)$(SYSCONFDIR)/default/vifsecd
	install -D -m 0644 LICENSE $(DESTDIR)$(PREFIX)/share/doc/vifsec/copyright
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/vifsec/README.md

# deb builds the Debian package from make install PREFIX=/usr.
deb: deps
	rm -rf $(BIN)/debroot && mkdir -p $(BIN)/debroot/DEBIAN
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(abspath $(BIN)/debroot)
	sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ARCH@|$(ARCH)|' -e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(BIN)/debroot | cut -f1)|" packaging/debian/control.in > $(BIN)/debroot/DEBIAN/control
	install -m 0644 packaging/debian/conffiles $(BIN)/debroot/DEBIAN/conffiles
	install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm $(BIN)/debroot/DEBIAN/
	dpkg-deb --root-owner-group -Zxz --build $(BIN)/debroot $(DEB)
	@echo "built $(DEB)"

# lab-sw6: a Debian forky (testing) root with strongSwan 6.1 and OpenSSL
# 3.6, where the lab runs a chrooted charon (TestIntegrationIKEStrongSwan6*,
# TestIntegrationStrongSwan6Vectors): RFC 9370 additional key exchanges
# with ML-KEM-768/1024 from the openssl plugin (strongSwan 6.0.2 or later
# with OpenSSL 3.5 or later; Debian 13 has 6.0.1, without). Built into
# .cache/ by debootstrap from deb.debian.org (about 1-2.5 min and 240 MB);
# Debian 12's debootstrap has no forky script, sid's fits. forky moves and
# snapshot.debian.org pins nothing here, so the .complete stamp records
# what was installed: line 1 is SW6_PKGS (a root built from another list,
# an older tree's or a cache CI kept, is built again), then one
# "package version" line per package the tests log. (Debian's libreswan
# conflicts with strongswan-libcharon: it cannot join this root.)
SW6_ROOT := .cache/lab-sw6
SW6_PKGS := charon-systemd,libstrongswan-standard-plugins,libcharon-extra-plugins,strongswan-swanctl,libstrongswan-extra-plugins
SW6_VERSIONS := libstrongswan strongswan-libcharon charon-systemd strongswan-swanctl libstrongswan-standard-plugins libssl3t64
lab-sw6:
	@if [ "$$(head -1 $(SW6_ROOT)/.complete 2>/dev/null)" = "$(SW6_PKGS)" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "lab-sw6: debootstrap needs root; skipped (the lab tests need root too)"; exit 0; fi; \
	command -v debootstrap >/dev/null || $(MAKE) deps; \
	set -e; \
	mkdir -p $(dir $(SW6_ROOT)); rm -rf $(SW6_ROOT).tmp; \
	echo "lab-sw6: debootstrap forky with $(SW6_PKGS) into $(SW6_ROOT) (about 1-2.5 min)"; \
	debootstrap --variant=minbase --include=$(SW6_PKGS) forky $(SW6_ROOT).tmp http://deb.debian.org/debian /usr/share/debootstrap/scripts/sid >$(SW6_ROOT).log 2>&1 || { tail -20 $(SW6_ROOT).log >&2; exit 1; }; \
	{ echo "$(SW6_PKGS)"; chroot $(SW6_ROOT).tmp dpkg-query -W -f='$${Package} $${Version}\n' $(SW6_VERSIONS); } > $(SW6_ROOT).tmp/.complete.new; \
	rm -rf $(SW6_ROOT) && mv $(SW6_ROOT).tmp $(SW6_ROOT) && mv $(SW6_ROOT)/.complete.new $(SW6_ROOT)/.complete; \
	sed 1d $(SW6_ROOT)/.complete | sed 's/^/lab-sw6: /'

# lab-libreswan: a Debian 13 root with libreswan 5.2, where the lab runs a
# chrooted pluto (TestIntegrationIKELibreswan), a second IKE
# implementation next to strongSwan; its own root because Debian's
# libreswan conflicts with strongswan-libcharon. bind9-host provides the
# virtual package "host" libreswan depends on, which debootstrap does not
# resolve; openssl makes the PKCS#12 files pluto's NSS imports. Same stamp
# rule as lab-sw6, versions of libreswan and NSS after the list (about 2
# min and 200 MB).
LIBRESWAN_ROOT := .cache/lab-libreswan
LIBRESWAN_PKGS := libreswan,bind9-host,openssl
lab-libreswan:
	@if [ "$$(head -1 $(LIBRESWAN_ROOT)/.complete 2>/dev/null)" = "$(LIBRESWAN_PKGS)" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "lab-libreswan: debootstrap needs root; skipped (the lab tests need root too)"; exit 0; fi; \
	command -v debootstrap >/dev/null || $(MAKE) deps; \
	set -e; \
	mkdir -p $(dir $(LIBRESWAN_ROOT)); rm -rf $(LIBRESWAN_ROOT).tmp; \
	echo "lab-libreswan: debootstrap trixie with $(LIBRESWAN_PKGS) into $(LIBRESWAN_ROOT) (about 2 min)"; \
	debootstrap --variant=minbase --include=$(LIBRESWAN_PKGS) trixie $(LIBRESWAN_ROOT).tmp http://deb.debian.org/debian >$(LIBRESWAN_ROOT).log 2>&1 || { tail -20 $(LIBRESWAN_ROOT).log >&2; exit 1; }; \
	{ echo "$(LIBRESWAN_PKGS)"; chroot $(LIBRESWAN_ROOT).tmp dpkg-query -W -f='$${Package} $${Version}\n' libreswan libnss3; } > $(LIBRESWAN_ROOT).tmp/.complete.new; \
	rm -rf $(LIBRESWAN_ROOT) && mv $(LIBRESWAN_ROOT).tmp $(LIBRESWAN_ROOT) && mv $(LIBRESWAN_ROOT)/.complete.new $(LIBRESWAN_ROOT)/.complete; \
	sed 1d $(LIBRESWAN_ROOT)/.complete | sed 's/^/lab-libreswan: /'

# lab-roots builds both lab roots at once: two independent debootstraps
# that wait on the mirror as much as on the CPU (on 2 busy cores, 156-162 s
# together against 191-202 s one after the other).
lab-roots:
	@command -v debootstrap >/dev/null || $(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory -j2 lab-sw6 lab-libreswan

# test runs unit tests, integration tests (network namespaces, tshark,
# strongSwan; they need root) and every Fuzz* target's seed corpus (go test
# runs seeds as ordinary tests).
test: build deb lab-roots
	$(GO) vet ./...
	@test -z "$$($(GOFMT) -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; $(GOFMT) -l .; exit 1; }
	VIFSEC_DEB=$(abspath $(DEB)) VIFSEC_VERSION=$(VERSION) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -race -timeout $(TEST_TIMEOUT) ./sa/... ./internal/datapath ./internal/attach ./internal/daemon ./internal/api ./internal/ikectl ./internal/ikeio ./internal/vtep ./cmd/vifsecd ./internal/fleet ./internal/store/etcd ./offload/... ./overlay/...

bench: bench-esp bench-sadb bench-ike

# bench-esp: ESP encap/decap against the bare cipher, per suite and size (~2 min).
bench-esp: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench esp -benchtime 300ms

# bench-datapath: the engine in memory (fake ports, two VMs with their own
# aes128-gcm SAs and flows, 1400-byte frames), outbound and inbound,
# GOMAXPROCS=1 with one worker per port against GOMAXPROCS=2 with two, three
# rounds; then one flow alone (one VM outbound, one SA inbound, one VM's
# 64 KB TSO super-frames), where a second CPU can only help through the
# crypto helpers; prints frames/s, the cores the process got, and the
# ratio (~100 s); then the same with no crypto helpers (-crypto-helpers 0),
# the baseline the helpers are measured against (~100 s).
bench-datapath: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench datapath
	$(GO) run ./internal/bench/cmd/vifsec-bench datapath -crypto-helpers 0

# bench-sadb: lookups in a DB of 1,000,000 SAs and memory per SA (~1 min, ~3 GB).
bench-sadb: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench sadb

# wireguard-go builds the pinned wireguard-go into bin/wireguard-go/.
wireguard-go: deps
	GOBIN=$(abspath $(BIN))/wireguard-go $(GO) install $(WIREGUARD_GO)

# bench-e2e: iperf3 between VMs on two gateways: plain veth+bridge, vifsec
# with action none, ESP aes128-gcm and chacha20-poly1305, two strongSwan
# charons with kernel-libipsec, and wireguard-go routing between the
# gateways; RSS with 100 attached VMs (~3 min, root).
bench-e2e: build wireguard-go
	$(GO) run ./examples/lab/bench-e2e

# bench-scale: 1, 2, 4, … VM pairs up to the CPUs, one iperf3 stream each,
# for plain bridge, vifsec none, vifsec ESP aes128-gcm and wireguard-go:
# aggregate Gbit/s, gateway cores, retransmits, reordering (root).
bench-scale: build wireguard-go
	$(GO) run ./examples/lab/bench-e2e --scale

# bench-ike: IKE SA setups/s and IKE bytes per setup (x25519+PSK, the same with
# an additional ML-KEM-768 exchange, ecp256+ECDSA certificates) in memory
# and between two network namespaces over a veth pair (root; else loopback),
# and heap per IKE SA (~1 min).
bench-ike: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench ike

# bench-fleet: one etcd member, one vifsecd; 10,000 VMs with 2 SAs each
# written to etcd: convergence time, daemon RSS, etcd write rate (~15 s).
bench-fleet: build
	$(GO) run ./examples/lab/bench-fleet

lint: deps
	@test -z "$$($(GOFMT) -l .)" || { $(GOFMT) -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# demo runs the main job on the embedded default lab (examples/lab): root needed.
demo: build
	$(GO) build -o $(BIN)/ ./examples/lab/vifsec-lab
	$(BIN)/vifsec-lab

clean:
	rm -rf $(BIN)
