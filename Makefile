# dmlgo: see README.md. `make test` is what CI runs.
GO ?= go
DMLGO_DATA ?= .cache/data
export DMLGO_DATA

.PHONY: all build test test-short vet fmt-check data demo bench clean

all: build

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite, then the kernel packages again with the pure-Go kernels
# (forced at run time, and compiled without assembly).
test: fmt-check vet
	$(GO) test ./...
	DMLGO_SIMD=generic $(GO) test ./backend/...
	$(GO) test -tags noasm ./backend/...

test-short:
	$(GO) test -short ./...

clean:
	rm -rf bin
