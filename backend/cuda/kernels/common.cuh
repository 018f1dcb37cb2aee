// Shared definitions of dmlgo's CUDA kernels.
//
// The kernels are plain CUDA C compiled to PTX for sm_80 (gen.sh). The same
// sources also compile as host C++ for the CPU emulator the Go tests use
// where no GPU exists (backend/cuda/internal/fakecuda): with DMLGO_EMU
// defined, emu.h supplies threadIdx, __syncthreads and friends. So the
// kernels use only what both understand: no warp shuffles, no atomics, no
// dynamic shared memory, no inline PTX outside #ifndef DMLGO_EMU blocks.
//
// Determinism: no kernel uses atomics; every sum has a fixed order, so a
// kernel gives the same bits on every run.
//
// Aliasing: ops may run in place (y = f(y)), so __restrict__ marks only
// pointers that cannot alias another argument (scratch buffers, operands
// of different shapes such as GEMM's A, B and C).
#pragma once

#ifdef DMLGO_EMU
#include "emu.h"
#else
#define KERNEL extern "C" __global__
#define DEVICE static __device__ __forceinline__
#endif

// RED_THREADS is the block size of every kernel that reduces through shared
// memory; the Go side launches those kernels with exactly this many threads.
#define RED_THREADS 256

typedef long long i64;

// NaN-propagating max and min with Go's semantics (max(x, NaN) = NaN,
// max(−0, +0) = +0), which the CPU reference uses.
DEVICE float go_maxf(float x, float y) {
    if (x != x || y != y) return x + y;
    if (x == y) return signbit(x) ? y : x;
    return x > y ? x : y;
}
DEVICE float go_minf(float x, float y) {
    if (x != x || y != y) return x + y;
    if (x == y) return signbit(x) ? x : y;
    return x < y ? x : y;
}

// NaN-sticky max used by reductions: a NaN anywhere gives NaN.
DEVICE double nan_max(double a, double b) {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
}

// block_sum returns the sum of v over the block (RED_THREADS threads) to
// every thread. sh holds RED_THREADS doubles. The tree order is fixed.
DEVICE double block_sum(double v, double* sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// block_max is block_sum for a NaN-sticky maximum.
DEVICE double block_max(double v, double* sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = nan_max(sh[t], sh[t + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// Grid-stride loop over [0, n).
#define GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (i64)(n); i += (i64)blockDim.x * gridDim.x)
