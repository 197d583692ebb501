# The two commands the README starts with are `make demo` and `make test`;
# both install what they need first (scripts/setup.sh, idempotent).
GO ?= go

.PHONY: setup demo test vet build static install fuzz

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

# fuzz runs every fuzz target in the module (scripts/fuzz.sh finds them)
# for FUZZTIME each; CI runs it after test. A long run: make fuzz FUZZTIME=10m.
FUZZTIME ?= 6s
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

build:
	$(GO) build -o bin/ ./cmd/...

static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/pipeguard-headless-client ./cmd/headless-client

# install puts the static binary and the systemd unit where the unit
# expects them (see README "Running").
install: static
	install -m 0755 bin/pipeguard-headless-client /usr/bin/pipeguard-headless-client
	install -m 0644 cmd/headless-client/pipeguard-headless-client@.service /etc/systemd/system/
	install -d -m 0700 /etc/pipeguard
	-systemctl daemon-reload
