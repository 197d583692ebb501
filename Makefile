# The two commands the README starts with are `make demo` and `make test`;
# both install what they need first (scripts/setup.sh, idempotent).
GO ?= go

.PHONY: setup demo test vet build static fuzz

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

build:
	$(GO) build -o bin/ ./cmd/...

static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/pipeguard-headless-client ./cmd/headless-client
