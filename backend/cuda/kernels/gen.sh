#!/bin/sh
# Regenerates the committed PTX (backend/cuda/kernels/*.ptx) from the CUDA C
# sources with nvcc: `sh backend/cuda/kernels/gen.sh [OUTDIR]` (or
# `go generate ./backend/cuda/`). Target sm_80 (Ampere); the driver
# JIT-compiles the PTX for newer GPUs (Hopper: sm_90) when it loads it.
#
#   NVCC       the compiler (default: nvcc on PATH)
#   CUDA_ARCH  the virtual target (default: sm_80)
#
# The committed files were produced by Debian bookworm's nvidia-cuda-toolkit
# 11.8.89 (nvcc V11.8.89, PTX ISA 7.8), as the header of each .ptx says.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
nvcc=${NVCC:-nvcc}
arch=${CUDA_ARCH:-sm_80}
if ! command -v "$nvcc" >/dev/null 2>&1; then
	echo "gen.sh: $nvcc not found: cannot regenerate the PTX (the committed files stay)" >&2
	exit 1
fi
mkdir -p "$out"
for f in "$here"/*.cu; do
	name=$(basename "$f" .cu)
	# -I: common.cuh sits beside the sources.
	"$nvcc" -arch="$arch" --ptx -O3 -I "$here" -o "$out/$name.ptx" "$f"
	echo "gen.sh: $out/$name.ptx" >&2
done
