# vifsec — see README.md. Every target installs what it needs (make deps).
SHELL := /bin/bash
GO    ?= $(shell command -v go || echo /usr/local/go/bin/go)
BIN   := bin
# Debian packages the tests, the lab and the demo use.
APT_PKGS := iproute2 iputils-ping ethtool tcpdump tshark iperf3 strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins \
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-daemon-system-sysv libvirt-clients qemu-system-x86 \
  etcd-server
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# make test must stay under 15 minutes on a 2-core machine.
TEST_TIMEOUT ?= 12m

.PHONY: all deps build test bench bench-esp bench-sadb bench-e2e bench-fleet bench-ike lint demo clean

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
	$(GO) build -o $(BIN)/ ./cmd/...

# test runs unit tests, integration tests (network namespaces, tshark,
# strongSwan; they need root) and every Fuzz* target's seed corpus (go test
# runs seeds as ordinary tests).
test: build
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -race -timeout $(TEST_TIMEOUT) ./sa/... ./internal/datapath ./internal/attach ./internal/daemon ./internal/api ./internal/ikectl ./cmd/vifsecd ./internal/fleet ./internal/store/etcd ./offload/... ./overlay/...

bench: bench-esp bench-sadb bench-ike

# bench-esp: ESP encap/decap against the bare cipher, per suite and size (~2 min).
bench-esp: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench esp -benchtime 300ms

# bench-sadb: lookups in a DB of 1,000,000 SAs and memory per SA (~1 min, ~3 GB).
bench-sadb: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench sadb

# bench-e2e: iperf3 between VMs on two gateways: plain veth+bridge, vifsec
# with action none, ESP aes128-gcm and chacha20-poly1305, and two strongSwan
# charons with kernel-libipsec; RSS with 100 attached VMs (~2 min, root).
bench-e2e: build
	$(GO) run ./examples/lab/bench-e2e

# bench-ike: IKE SA setups/s (x25519+PSK, ecp256+ECDSA certificates) in memory
# and between two network namespaces over a veth pair (root; else loopback),
# and heap per IKE SA (~1 min).
bench-ike: deps
	$(GO) run ./internal/bench/cmd/vifsec-bench ike

# bench-fleet: one etcd member, one vifsecd; 10,000 VMs with 2 SAs each
# written to etcd: convergence time, daemon RSS, etcd write rate (~15 s).
bench-fleet: build
	$(GO) run ./examples/lab/bench-fleet

lint: deps
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# demo runs the main job on the embedded default lab (examples/lab): root needed.
demo: build
	$(GO) build -o $(BIN)/ ./examples/lab/vifsec-lab
	$(BIN)/vifsec-lab

clean:
	rm -rf $(BIN)
