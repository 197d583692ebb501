# The two commands the README starts with are `make demo` and `make test`;
# both install what they need first (scripts/setup.sh, idempotent).
GO ?= go

# The version, from git (scripts/version.sh: a valid Debian version), is
# stamped into every binary the Makefile builds and names the package.
VERSION := $(shell ./scripts/version.sh)
LDFLAGS := -X pipeguard/cmd/internal/version.stamped=$(VERSION)
GOARCH := $(shell $(GO) env GOARCH)
DEB_ARCH := $(if $(filter 386,$(GOARCH)),i386,$(if $(filter arm,$(GOARCH)),armhf,$(GOARCH)))
DEB := dist/pipeguard_$(VERSION)_$(DEB_ARCH).deb
# nfpm, pinned in tools/go.mod: a module of its own, so that its many
# dependencies stay out of the client's build and of `go mod download`;
# `go tool` builds it (once, then from the build cache) on the first
# `make deb`.
NFPM := $(GO) tool -modfile=tools/go.mod nfpm

.PHONY: setup demo test vet build static install deb fuzz selftest

setup:
	./scripts/setup.sh

demo: setup
	$(GO) run ./cmd/headless-client demo

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# -race where goroutines meet (everything but the pure parsers would be
# most packages anyway); the race detector's slowdown is paid once here.
test: setup vet
	$(GO) test -race -timeout 20m ./...

# selftest runs the kernel's WireGuard selftest, adapted to a userspace
# implementation (scripts/netns-selftest.sh), on PipeGuard and, for
# comparison, on Debian's wireguard-go: minutes each, so not in `make
# test`. Needs root.
selftest: setup
	PIPEGUARD_SELFTEST=1 $(GO) test -count=1 -timeout 70m -run '^TestKernelSelftest' -v ./cmd/headless-client/e2e

# fuzz runs every fuzz target in the module (scripts/fuzz.sh finds them)
# for FUZZTIME each; CI runs it after test. A long run: make fuzz FUZZTIME=10m.
FUZZTIME ?= 6s
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

build:
	$(GO) build -ldflags='$(LDFLAGS)' -o bin/ ./cmd/...

static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w $(LDFLAGS)' -o bin/pipeguard-headless-client ./cmd/headless-client

# deb builds dist/pipeguard_<version>_<arch>.deb with nfpm
# (packaging/deb/nfpm.yaml; what is in it and why: docs/service.md).
deb: static
	mkdir -p dist/deb
	./packaging/deb/changelog.sh $(VERSION) | gzip -9n > dist/deb/changelog.gz
	PIPEGUARD_VERSION=$(VERSION) DEB_ARCH=$(DEB_ARCH) $(NFPM) package \
		--config packaging/deb/nfpm.yaml --packager deb --target $(DEB)
	@echo "built $(DEB)"

# install does from a checkout what the package does: the static binary,
# the pipeguard-go name, both units and their socket units, the
# tmpfiles.d line that keeps /run/wireguard root's, the pipeguard user and
# its key directory (see docs/service.md). It enables and starts nothing.
install: static
	install -m 0755 bin/pipeguard-headless-client /usr/bin/pipeguard-headless-client
	ln -sf pipeguard-headless-client /usr/bin/pipeguard-go
	install -m 0644 cmd/headless-client/pipeguard-headless-client@.service cmd/headless-client/pipeguard-tunnel@.service \
		cmd/headless-client/pipeguard-headless-client@.socket cmd/headless-client/pipeguard-tunnel@.socket /etc/systemd/system/
	install -m 0644 cmd/headless-client/pipeguard-tmpfiles.conf /etc/tmpfiles.d/pipeguard.conf
	if command -v systemd-tmpfiles >/dev/null; then systemd-tmpfiles --create pipeguard.conf; fi
	getent passwd pipeguard >/dev/null || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pipeguard
	install -d -m 0700 -o pipeguard -g pipeguard /etc/pipeguard
	if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
