# nlb: native VRRP daemon and L4 load balancer.
# `make demo` runs three nlb controllers behind one VIP and kills the master; `make test` runs every test tier.

GO        ?= go
BIN       ?= bin/nlb
FUZZTIME  ?= 10s
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build deps demo test generate-check lint unit e2e-build test-armv7 package test-packages image fuzz bench bench-failover bench-proxy bench-client bench-chaos bench-xdp clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nlb

deps:
	@bash .ci/deps

## demo: three `nlb controller`s with API servers (real kube-apiservers when the e2e build is
## cached, else TLS stand-ins) behind one VIP in network namespaces; a client reads through the
## VIP while the master dies and an API server stops; timelines and a summary.
## DEMOFLAGS=--standins forces the stand-ins.
DEMOFLAGS ?=
demo: build
	@$(GO) run ./internal/cmd/demo --nlb $(BIN) $(DEMOFLAGS)

## test: the generated BPF files, formatting, vet, then unit, fuzz-seed and (as root) privileged
## tests, then the ARMv7 build and the vrrp and lb unit tests under qemu-user, then the
## packages (test-packages).
test: deps generate-check lint unit test-armv7 test-packages

## generate-check: the committed bpf2go output (ebpf/*/*_bpfel.{go,o}, *_bpfeb.{go,o}) is what
## the C sources give with Debian's clang (.ci/deps installs it): regenerate, fail on a difference.
BPF_GENERATED := ':(glob)ebpf/**/*_bpfel.*' ':(glob)ebpf/**/*_bpfeb.*'
generate-check:
	$(GO) generate ./ebpf/...
	@git diff --exit-code --stat -- $(BPF_GENERATED) || \
	  { echo "generate-check: the generated BPF files differ from the committed ones: commit what 'go generate ./ebpf/...' gives"; exit 1; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## unit: every package's tests, with the race detector; as root with NLB_PRIVILEGED=1
## the privileged ones too, the k8slab ones on the kube-apiserver of e2e-build.
unit: e2e-build
	NLB_KUBE_APISERVER="$$(cat $(E2E_APISERVER))" CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

## e2e-build: the kube-apiserver the k8slab tests run, built from e2e/ once, before `go test`
## (so that no test package builds it inside the test timeout, nor two at once), into
## ~/.cache/nlb-e2e, where it is reused while e2e/ and the Go version are unchanged (a cold
## build takes minutes). Its path goes to $(E2E_APISERVER) for NLB_KUBE_APISERVER; empty,
## and nothing built, when not root (those tests skip). A set NLB_KUBE_APISERVER is kept.
E2E_APISERVER ?= bin/e2e-apiserver
e2e-build:
	@mkdir -p $(dir $(E2E_APISERVER))
	$(GO) run ./internal/cmd/e2ebuild > $(E2E_APISERVER).tmp
	@mv $(E2E_APISERVER).tmp $(E2E_APISERVER); echo "NLB_KUBE_APISERVER=$$(cat $(E2E_APISERVER))"

## test-armv7: nlb builds for GOARCH=arm GOARM=7; the vrrp, lb and lb/maglev (a 32-bit golden table) unit tests run under
## Debian's qemu-user-static (unprivileged: NLB_PRIVILEGED is unset for them).
test-armv7:
	@bash .ci/deps qemu-arm-static:qemu-user-static
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) build -o /dev/null ./cmd/nlb
	env -u NLB_PRIVILEGED CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) test -count=1 -timeout 10m -exec qemu-arm-static ./vrrp ./lb ./lb/maglev

## package: .deb, .rpm and .apk of the static nlb for amd64, arm64 and arm7 (GOARM=7) in
## $(PKG_OUT), made with nfpm (dist/nfpm.yaml; nfpm built once into bin/): /usr/bin/nlb, the
## systemd units of dist/systemd, example configurations in /etc/nlb (config files), the alert
## rules; nothing enabled or started. The package version is 0.0.<commits>; nlb version
## prints $(VERSION).
NFPM_VERSION ?= v2.48.0
PKG_VERSION  ?= 0.0.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
PKG_ARCHS    ?= amd64 arm64 arm7
PKG_OUT      ?= dist/out
package:
	@mkdir -p bin $(PKG_OUT)
	GOBIN=$(CURDIR)/bin $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	rm -f $(PKG_OUT)/*.deb $(PKG_OUT)/*.rpm $(PKG_OUT)/*.apk
	@set -e; for a in $(PKG_ARCHS); do \
	  case $$a in arm7) goarch=arm goarm=7;; *) goarch=$$a goarm=;; esac; \
	  mkdir -p $(PKG_OUT)/$$a; \
	  echo "build nlb GOARCH=$$goarch GOARM=$$goarm"; \
	  GOARCH=$$goarch GOARM=$$goarm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PKG_OUT)/$$a/nlb ./cmd/nlb; \
	  for f in deb rpm apk; do \
	    NLB_PKG_ARCH=$$a NLB_PKG_VERSION=$(PKG_VERSION) NLB_PKG_BINARY=$(PKG_OUT)/$$a/nlb \
	      bin/nfpm package --config dist/nfpm.yaml --packager $$f --target $(PKG_OUT)/; \
	  done; \
	done

## test-packages: make package, then internal/disttest's TestPackages: the .deb installed into a
## scratch root with its own dpkg database (the machine is left as it was), its files, units
## (systemd-analyze verify), nlb version and example configurations checked, then purged; the
## .rpm and .apk hold the same files, and every package the binary of its architecture.
test-packages: package
	NLB_PACKAGE_DIR=$(CURDIR)/$(PKG_OUT) NLB_PKG_VERSION=$(PKG_VERSION) $(GO) test -count=1 -run '^TestPackages$$' ./internal/disttest

## image: multi-arch OCI image (linux/amd64, linux/arm64, linux/arm/v7) of a static nlb,
## without a container engine: bin/image/oci-layout (OCI layout) and bin/image/nlb-oci.tar.
IMAGE_REF       ?= ghcr.io/nlb-dev/nlb:$(VERSION)
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64,linux/arm/v7
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
image:
	$(GO) run ./internal/cmd/image --go $(GO) --version $(VERSION) --ref $(IMAGE_REF) \
	  --platforms $(IMAGE_PLATFORMS) --source-date-epoch $(SOURCE_DATE_EPOCH) --out bin/image

## fuzz: run every fuzz target for FUZZTIME each (seeds also run in `make test`).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

## bench: every benchmark against its peers.
bench: bench-failover bench-proxy bench-client bench-chaos bench-xdp

bench-failover: deps build
	$(GO) run ./bench/failover --nlb $(BIN)

## bench-proxy: nlb proxy vs HAProxy (nbthread 1 and 2) vs direct with wrk, vegeta (built once into
## bin/), iperf3 and strace, on loopback and across namespaces (bench/README.md).
VEGETA_VERSION ?= v12.13.0
bench-proxy: deps build
	GOBIN=$(CURDIR)/bin $(GO) install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)
	$(GO) run ./bench/proxy --nlb $(BIN) --vegeta bin/vegeta -v

## bench-client: nlb client against three real kube-apiservers: detection, failed requests, idle RSS.
bench-client: deps build
	$(GO) run ./bench/client --nlb $(BIN)

## bench-chaos: nlb controller vs keepalived + HAProxy (kubeadm guide) on three real kube-apiservers:
## SIGKILL of the VIP holder, of its API server alone, and a cut link, under client traffic.
bench-chaos: deps build
	@bash .ci/deps curl:curl
	$(GO) run ./bench/chaos --nlb $(BIN)

## bench-xdp: nlb's XDP fast path (direct server return) vs direct, nlb proxy and HAProxy:
## bulk, requests/s, p99, new connections/s, CPU per request, BPF_PROG_RUN per packet.
bench-xdp: deps build
	$(GO) run ./bench/xdp --nlb $(BIN)

clean:
	rm -rf bin dist/out
