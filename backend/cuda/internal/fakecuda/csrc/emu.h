// emu.h: what the kernels in backend/cuda/kernels need from CUDA, for
// compiling them as host C++ into the stand-in driver (fakecuda.cc). Blocks
// run one after another; the threads of a block are coroutines on one OS
// thread that switch only at __syncthreads, so shared memory is a plain
// static array and threadIdx is a global the scheduler sets before it
// resumes a thread. This checks indexing, bounds, barriers and arithmetic,
// not what only a GPU shows (memory model, warp scheduling, timing).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

struct dim3 {
    unsigned x, y, z;
};

extern dim3 threadIdx, blockIdx, blockDim, gridDim;
void __syncthreads();

#define KERNEL static
#define DEVICE static inline
#define __shared__ static

using std::signbit;

static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}

// emu_to_tf32 is cvt.rna.tf32.f32: the float rounded to a 10-bit mantissa,
// to nearest with ties away from zero (Inf and NaN pass).
static inline unsigned emu_to_tf32(float x) {
    unsigned u;
    std::memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;
    return (u + 0x1000u) & 0xffffe000u;
}

// emu_mma_m16n8k8_tf32 is mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
// with D = C (d in place) for the warp of the calling thread, from the PTX
// ISA's fragment layout. Warp-collective: every thread of the block must
// call it together (it synchronises the block).
void emu_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2]);
