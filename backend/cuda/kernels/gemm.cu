// SGEMM: C = alpha·op(A)·op(B) + beta·C in float32 (accumulating in float,
// where refGemm uses float64: the conformance tolerance of 1e-5 normalised
// error holds for the sizes the engine uses; see README-section.md).
//
// One generic kernel covers plain, transposed, batched, grouped and
// convolution GEMMs by describing each operand with strides:
//   A(m, l) = a[z1·a_s1 + z0·a_s0 + m·a_m + koff_a(l)]
//   B(l, n) = b[z1·b_s1 + z0·b_s0 + koff_b(l) + n·b_n]
//   C(m, n) = c[z1·c_s1 + z0·c_s0 + m·ldc + n]
// where z = blockIdx.z + zoff, z1 = z / zdiv, z0 = z % zdiv, and the
// reduction index l may run over segments of kseg values (the images of a
// convolution's weight gradient): koff(l) = (l / kseg)·seg + (l % kseg)·k.
//
// Tiling: a block of 256 threads (16×16) computes a BM×BN tile of C, each
// thread a TM×TN register tile at rows ty + 16i and columns tx + 16j; the
// BK-deep slices of A and B go through shared memory (padded against bank
// conflicts). Two shapes: 128×128×8 with 8×8 per thread for large
// products, 64×64×16 with 4×4 for small ones (ops.go picks); and, opt-in,
// a TF32 tensor-core kernel on 128×128×16 tiles (gemm_tf32_128).
#include "common.cuh"

// load_tiles stages the BK-deep slices at k0: A (BM × BK) into As[k][m] and
// B (BK × BN) into Bs[k][n], zero outside the matrices; threads walk each
// operand's contiguous dimension.
template <int BM, int BN, int BK, int PAD>
DEVICE void load_tiles(float (*As)[BM + PAD], float (*Bs)[BN + PAD], const float* __restrict__ a, const float* __restrict__ b,
                       int M, int N, int K, int kseg, int m0, int n0, int k0, bool segmented,
                       i64 a_m, i64 a_k, i64 a_seg, i64 b_k, i64 b_n, i64 b_seg) {
    int tid = threadIdx.x;
    bool aMFast = a_m == 1, bNFast = b_n == 1;
    for (int e = tid; e < BM * BK; e += 256) {
        int mm, kk;
        if (aMFast) {
            mm = e % BM;
            kk = e / BM;
        } else {
            kk = e % BK;
            mm = e / BK;
        }
        int m = m0 + mm, l = k0 + kk;
        float v = 0.0f;
        if (m < M && l < K) {
            i64 ko = segmented ? (i64)(l / kseg) * a_seg + (i64)(l % kseg) * a_k : (i64)l * a_k;
            v = a[(i64)m * a_m + ko];
        }
        As[kk][mm] = v;
    }
    for (int e = tid; e < BN * BK; e += 256) {
        int nn, kk;
        if (bNFast) {
            nn = e % BN;
            kk = e / BN;
        } else {
            kk = e % BK;
            nn = e / BK;
        }
        int n = n0 + nn, l = k0 + kk;
        float v = 0.0f;
        if (n < N && l < K) {
            i64 ko = segmented ? (i64)(l / kseg) * b_seg + (i64)(l % kseg) * b_k : (i64)l * b_k;
            v = b[ko + (i64)n * b_n];
        }
        Bs[kk][nn] = v;
    }
}

// store_c: C(m, n) = alpha·acc + beta·C(m, n) (C ignored when beta is 0,
// as refGemm), inside the matrix only.
DEVICE void store_c(float* __restrict__ c, i64 ldc, int M, int N, int m, int n, float acc, float alpha, float beta) {
    if (m >= M || n >= N) return;
    float* cp = c + (i64)m * ldc + n;
    float v = __fmul_rn(alpha, acc);
    if (beta != 0.0f) v = __fadd_rn(v, __fmul_rn(beta, *cp));
    *cp = v;
}

template <int BM, int BN, int BK>
DEVICE void gemm_tile(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                      int M, int N, int K, int kseg,
                      i64 a_s1, i64 a_s0, i64 a_m, i64 a_k, i64 a_seg,
                      i64 b_s1, i64 b_s0, i64 b_k, i64 b_n, i64 b_seg,
                      i64 c_s1, i64 c_s0, i64 ldc, int zdiv, int zoff, float alpha, float beta) {
    const int TM = BM / 16, TN = BN / 16;
    __shared__ float As[BK][BM + 4];
    __shared__ float Bs[BK][BN + 4];
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    int z = blockIdx.z + zoff, z1 = z / zdiv, z0 = z % zdiv;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    a += z1 * a_s1 + z0 * a_s0;
    b += z1 * b_s1 + z0 * b_s0;
    c += z1 * c_s1 + z0 * c_s0;
    bool segmented = kseg < K;

    float acc[TM][TN];
    for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += BK) {
        load_tiles<BM, BN, BK, 4>(As, Bs, a, b, M, N, K, kseg, m0, n0, k0, segmented, a_m, a_k, a_seg, b_k, b_n, b_seg);
        __syncthreads();
        for (int kk = 0; kk < BK; kk++) {
            float af[TM], bf[TN];
            for (int i = 0; i < TM; i++) af[i] = As[kk][ty + 16 * i];
            for (int j = 0; j < TN; j++) bf[j] = Bs[kk][tx + 16 * j];
            for (int i = 0; i < TM; i++)
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
        }
        __syncthreads();
    }
    for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN; j++) store_c(c, ldc, M, N, m0 + ty + 16 * i, n0 + tx + 16 * j, acc[i][j], alpha, beta);
}

// The TF32 tensor-core variant (opt-in, see ops.go): the same tiles and
// loads, with the products done by mma.sync.m16n8k8 on TF32 inputs (10-bit
// mantissas, rounded to nearest with ties away: cvt.rna) accumulating in
// float32. The 8 warps of a block form a 2×4 grid of 64×32 warp tiles, each
// 4×4 mma tiles of 16×8. Fragment layout (PTX ISA, m16n8k8 .tf32; g = lane/4,
// t = lane%4): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (t, g),
// b1 (t+4, g); c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
DEVICE unsigned to_tf32(float x) {
#ifdef DMLGO_EMU
    return emu_to_tf32(x);
#else
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
#endif
}

DEVICE void mma_tf32(float d[4], const unsigned a[4], const unsigned b[2]) {
#ifdef DMLGO_EMU
    emu_mma_m16n8k8_tf32(d, a, b);
#else
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

DEVICE void gemm_tile_tf32(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                           int M, int N, int K, int kseg,
                           i64 a_s1, i64 a_s0, i64 a_m, i64 a_k, i64 a_seg,
                           i64 b_s1, i64 b_s0, i64 b_k, i64 b_n, i64 b_seg,
                           i64 c_s1, i64 c_s0, i64 ldc, int zdiv, int zoff, float alpha, float beta) {
    const int BM = 128, BN = 128, BK = 16, PAD = 8;
    __shared__ float As[BK][BM + PAD];
    __shared__ float Bs[BK][BN + PAD];
    int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
    int wm = (warp / 4) * 64, wn = (warp % 4) * 32;
    int z = blockIdx.z + zoff, z1 = z / zdiv, z0 = z % zdiv;
    int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    a += z1 * a_s1 + z0 * a_s0;
    b += z1 * b_s1 + z0 * b_s0;
    c += z1 * c_s1 + z0 * c_s0;
    bool segmented = kseg < K;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += BK) {
        load_tiles<BM, BN, BK, PAD>(As, Bs, a, b, M, N, K, kseg, m0, n0, k0, segmented, a_m, a_k, a_seg, b_k, b_n, b_seg);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            unsigned af[4][4], bf[4][2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int r = wm + 16 * i + g;
                af[i][0] = to_tf32(As[kk + t][r]);
                af[i][1] = to_tf32(As[kk + t][r + 8]);
                af[i][2] = to_tf32(As[kk + t + 4][r]);
                af[i][3] = to_tf32(As[kk + t + 4][r + 8]);
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int col = wn + 8 * j + g;
                bf[j][0] = to_tf32(Bs[kk + t][col]);
                bf[j][1] = to_tf32(Bs[kk + t + 4][col]);
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) mma_tf32(acc[i][j], af[i], bf[j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++)
                store_c(c, ldc, M, N, m0 + wm + 16 * i + g + (r >= 2 ? 8 : 0), n0 + wn + 8 * j + 2 * t + (r & 1), acc[i][j][r], alpha, beta);
}

#define GEMM_PARAMS                                                                                          \
    const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ c, int M, int N, int K,   \
        int kseg, i64 a_s1, i64 a_s0, i64 a_m, i64 a_k, i64 a_seg, i64 b_s1, i64 b_s0, i64 b_k, i64 b_n,      \
        i64 b_seg, i64 c_s1, i64 c_s0, i64 ldc, int zdiv, int zoff, float alpha, float beta
#define GEMM_ARGS a, b, c, M, N, K, kseg, a_s1, a_s0, a_m, a_k, a_seg, b_s1, b_s0, b_k, b_n, b_seg, c_s1, c_s0, ldc, zdiv, zoff, alpha, beta

// gemm_f32_128: 128×128 tiles, 8×8 per thread (256 threads).
KERNEL void gemm_f32_128(GEMM_PARAMS) { gemm_tile<128, 128, 8>(GEMM_ARGS); }

// gemm_f32_64: 64×64 tiles, 4×4 per thread (256 threads).
KERNEL void gemm_f32_64(GEMM_PARAMS) { gemm_tile<64, 64, 16>(GEMM_ARGS); }

// gemm_tf32_128: 128×128 tiles on the tensor cores (256 threads, 8 warps).
KERNEL void gemm_tf32_128(GEMM_PARAMS) { gemm_tile_tf32(GEMM_ARGS); }
