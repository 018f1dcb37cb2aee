#!/bin/sh
# gpu-check.sh: the cuda backend's checks on a GPU machine that has no Go.
#
#   sh scripts/gpu-check.sh build     (here, with Go) builds, with
#       CGO_ENABLED=0, the test binaries of backend/backendtest,
#       backend/cuda, nn, train and catalog and the bench command
#       (with the cuda backend linked in) into bin/gpu-check/, and copies
#       ../shared/bench/torch_anchor.py there. bin/ is ignored by git: the
#       device call must carry bin/gpu-check (see README.md, "The CUDA backend").
#
#   sh scripts/gpu-check.sh device    (on the GPU machine, from the repo
#       root, $OUT set by the device tool) runs, each step under its own
#       time limit and all within GPU_CHECK_BUDGET seconds (default 450):
#         1. facts: nvidia-smi, nvcc --version;
#         2. nvcc: kernels/*.cu -> $OUT/ptx/*.ptx with the machine's nvcc;
#         3. the conformance table (backend/backendtest) on the cuda backend
#            with the embedded PTX, then again with the fresh PTX;
#         4. the cuda package's tests, including TestTrainingMatchesCPU
#            (20 steps of resnet-s with DML, CPU against GPU);
#         5. speed: torch_anchor.py --device cuda --batch 256 against
#            bench --device cuda --batch 256 train embed (FP32 GEMMs, then
#            again with DMLGO_CUDA_TF32=1).
#       Every step's output goes to $OUT/<step>.txt, and a summary to
#       $OUT/summary.txt (and stdout). GPU_CHECK_ALL=1 also runs the nn and
#       train and catalog tests with DMLGO_DEVICE=cuda.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
G=bin/gpu-check

build() {
	set -e
	command -v go >/dev/null || { echo "gpu-check: build needs Go" >&2; exit 1; }
	rm -rf "$G"
	# _overlay with .txt names: invisible to ./... patterns in the repo.
	mkdir -p "$G/_overlay"
	# tools/bench registers only the backends it imports; an overlay adds
	# the cuda backend to it for this build without touching its sources
	# (package model, which train and catalog use, registers both).
	printf 'package main\n\nimport _ "github.com/dmlgo/dmlgo/backend/cuda"\n' >"$G/_overlay/bench_cuda.txt"
	cat >"$G/_overlay/overlay.json" <<EOF
{"Replace": {
  "$root/tools/bench/zz_gpucheck_cuda.go": "$root/$G/_overlay/bench_cuda.txt"
}}
EOF
	flags="-trimpath -ldflags=-s -overlay=$root/$G/_overlay/overlay.json"
	export CGO_ENABLED=0
	for pkg in backend/backendtest backend/cuda nn train catalog; do
		name=$(echo "$pkg" | tr / _)
		go test -c $flags -o "$G/$name.test" "./$pkg"
	done
	go build $flags -o "$G/bench" ./tools/bench
	if [ -f ../shared/bench/torch_anchor.py ]; then
		cp ../shared/bench/torch_anchor.py "$G/"
	else
		echo "gpu-check: ../shared/bench/torch_anchor.py not found: the PyTorch anchor will be missing" >&2
	fi
	git rev-parse HEAD >"$G/commit" 2>/dev/null || true
	du -sh "$G" | sed 's/^/gpu-check: built /' >&2
	ls -l "$G" >&2
}

# step NAME SECONDS COMMAND...: run COMMAND under a time limit (SECONDS, or
# what is left of the whole run's budget if less), output to $OUT/NAME.txt,
# and note the result in the summary.
step() {
	name=$1 secs=$2
	shift 2
	left=$((deadline - $(date +%s)))
	if [ "$left" -lt 15 ]; then
		echo "$name: SKIPPED (the run's ${budget}s budget is spent)" | tee -a "$OUT/summary.txt"
		return 0
	fi
	[ "$secs" -gt "$left" ] && secs=$left
	start=$(date +%s)
	timeout -k 5 "$secs" "$@" >"$OUT/$name.txt" 2>&1
	rc=$?
	took=$(($(date +%s) - start))
	case $rc in
	0) res=ok ;;
	124 | 137) res="TIMEOUT after ${secs}s" ;;
	*) res="FAILED (exit $rc)" ;;
	esac
	echo "$name: $res (${took}s)" | tee -a "$OUT/summary.txt"
	return 0
}

device() {
	: "${OUT:?gpu-check: set OUT to the folder for the results}"
	mkdir -p "$OUT"
	: >"$OUT/summary.txt"
	budget=${GPU_CHECK_BUDGET:-450}
	deadline=$(($(date +%s) + budget))
	[ -d "$G" ] || { echo "gpu-check: $G missing: run 'sh scripts/gpu-check.sh build' here and carry $G" | tee -a "$OUT/summary.txt"; exit 1; }
	echo "commit built: $(cat "$G/commit" 2>/dev/null)" | tee -a "$OUT/summary.txt"
	step facts 20 sh -c 'nvidia-smi; echo; nvcc --version 2>&1 || echo "no nvcc on PATH"; echo; python3 -c "import torch; print(\"torch\", torch.__version__, torch.version.cuda, torch.cuda.is_available())" 2>&1; true'
	step nvcc 60 sh backend/cuda/kernels/gen.sh "$OUT/ptx"
	# Test binaries run in their package's folder (tests read files relative to it).
	step conformance 100 sh -c "cd backend/backendtest && '$root/$G/backend_backendtest.test' -test.v -test.count=1"
	if ls "$OUT"/ptx/*.ptx >/dev/null 2>&1; then
		step conformance-fresh-ptx 60 env DMLGO_PTX_DIR="$OUT/ptx" sh -c "cd backend/backendtest && '$root/$G/backend_backendtest.test' -test.run TestConformance -test.count=1"
	fi
	step cuda-tests 120 sh -c "cd backend/cuda && '$root/$G/backend_cuda.test' -test.v -test.count=1"
	step torch-anchor 60 python3 "$G/torch_anchor.py" --device cuda --batch 256
	step bench 60 "$G/bench" --device cuda --batch 256 train embed
	step bench-tf32 60 env DMLGO_CUDA_TF32=1 "$G/bench" --device cuda --batch 256 train embed
	if [ "${GPU_CHECK_ALL:-}" = 1 ]; then
		step nn-tests 120 env DMLGO_DEVICE=cuda sh -c "cd nn && '$root/$G/nn.test' -test.short"
		step train-tests 120 env DMLGO_DEVICE=cuda sh -c "cd train && '$root/$G/train.test' -test.short"
		step catalog-tests 120 env DMLGO_DEVICE=cuda sh -c "cd catalog && '$root/$G/catalog.test' -test.short"
	fi
	# The headline lines of each step, for the summary.
	{
		echo
		grep -hE '^(--- (FAIL|SKIP)|FAIL|ok|PASS)|opened|losses|largest relative|op cases checked' "$OUT/conformance.txt" "$OUT/cuda-tests.txt" 2>/dev/null | head -60
		for f in torch-anchor bench bench-tf32; do
			grep -hE 'img/s|device' "$OUT/$f.txt" 2>/dev/null | sed "s/^/$f: /"
		done
	} | tee -a "$OUT/summary.txt"
}

case ${1:-} in
build) build ;;
device) device ;;
*)
	echo "usage: sh scripts/gpu-check.sh build|device" >&2
	exit 2
	;;
esac
