// Batch normalisation over x viewed as (N, C, L). Statistics accumulate in
// double as refBatchNormForward/Backward do, in two stages so that a few
// channels with many values still fill the GPU: bn_partials sums a chunk of
// one channel per block (grid: chunks × C) into parts (C, chunks, 2), then
// bn_finish adds each channel's chunks in order and derives the statistics.
// The reference's two-pass variance (mean first, then squared deviations)
// is kept: BN_MEAN sums x, BN_VAR sums (x − mean)², BN_BACKWARD sums dy and
// dy·x̂; BN_EVAL takes the running statistics.
#include "common.cuh"

// The phases (mode arguments); backend/cuda/ops.go names the same values.
enum { BN_MEAN = 0, BN_VAR = 1, BN_BACKWARD = 2, BN_EVAL = 3 };

// bn_partials: parts[(c·chunks + k)·2 + {0, 1}] for chunk k of channel c,
// a chunk being `chunk` consecutive values of the channel's N·L values.
KERNEL void bn_partials(const float* __restrict__ x, const float* __restrict__ dy, const double* __restrict__ stats,
                        const float* __restrict__ saveMean, const float* __restrict__ saveInvStd,
                        double* __restrict__ parts, int N, int C, int L, int chunk, int chunks, int mode) {
    __shared__ double sh[RED_THREADS];
    int c = blockIdx.y, k = blockIdx.x;
    i64 m = (i64)N * L;
    i64 lo = (i64)k * chunk, hi = lo + chunk < m ? lo + chunk : m;
    double a = 0.0, b = 0.0;
    double mean = 0.0, inv = 0.0;
    if (mode == BN_VAR) mean = stats[c * 2 + 0];
    if (mode == BN_BACKWARD) {
        mean = (double)saveMean[c];
        inv = (double)saveInvStd[c];
    }
    for (i64 j = lo + threadIdx.x; j < hi; j += RED_THREADS) {
        i64 n = j / L, l = j % L;
        i64 at = (n * C + c) * L + l;
        double v = (double)x[at];
        if (mode == BN_MEAN) {
            a += v;
        } else if (mode == BN_VAR) {
            double d = v - mean;
            a += d * d;
        } else {
            double g = (double)dy[at];
            a += g;
            b += g * (v - mean) * inv;
        }
    }
    a = block_sum(a, sh);
    if (mode == BN_BACKWARD) b = block_sum(b, sh);
    if (threadIdx.x == 0) {
        parts[((i64)c * chunks + k) * 2 + 0] = a;
        parts[((i64)c * chunks + k) * 2 + 1] = b;
    }
}

// bn_finish: one thread per channel adds the chunks in order.
//   BN_MEAN: stats[c] = (mean, ·)
//   BN_VAR: stats[c] = (mean, invStd); saveMean, saveInvStd and the running
//           statistics updated (unbiased variance, momentum)
//   BN_BACKWARD: stats[c] = (Σdy, Σdy·x̂); dbeta += Σdy, dgamma += Σdy·x̂
//   BN_EVAL: stats[c] = (runMean, 1/√(runVar+eps)); parts unused
KERNEL void bn_finish(const double* __restrict__ parts, double* __restrict__ stats, int C, int chunks, int mode, double m,
                      float momentum, float eps, float* saveMean, float* saveInvStd, float* runMean, float* runVar,
                      float* dgamma, float* dbeta) {
    GRID_LOOP(ci, C) {
        int c = (int)ci;
        double a = 0.0, b = 0.0;
        if (mode != BN_EVAL) {
            for (int k = 0; k < chunks; k++) {
                a += parts[((i64)c * chunks + k) * 2 + 0];
                b += parts[((i64)c * chunks + k) * 2 + 1];
            }
        }
        if (mode == BN_MEAN) {
            stats[c * 2 + 0] = a / m;
        } else if (mode == BN_VAR) {
            double mean = stats[c * 2 + 0];
            double variance = a / m;
            double invStd = 1.0 / sqrt(variance + (double)eps);
            stats[c * 2 + 1] = invStd;
            saveMean[c] = (float)mean;
            saveInvStd[c] = (float)invStd;
            double mom = (double)momentum;
            runMean[c] = (float)((1.0 - mom) * (double)runMean[c] + mom * mean);
            runVar[c] = (float)((1.0 - mom) * (double)runVar[c] + mom * a / (m - 1.0));
        } else if (mode == BN_BACKWARD) {
            stats[c * 2 + 0] = a;
            stats[c * 2 + 1] = b;
            dbeta[c] = __fadd_rn(dbeta[c], (float)a);
            dgamma[c] = __fadd_rn(dgamma[c], (float)b);
        } else {
            stats[c * 2 + 0] = (double)runMean[c];
            stats[c * 2 + 1] = 1.0 / sqrt((double)runVar[c] + (double)eps);
        }
    }
}

// bn_apply: y = (x − mean)·invStd·γ + β in double, per element.
KERNEL void bn_apply(const float* x, float* y, const double* __restrict__ stats,
                     const float* __restrict__ gamma, const float* __restrict__ beta, int N, int C, int L) {
    GRID_LOOP(i, (i64)N * C * L) {
        int c = (int)((i / L) % C);
        y[i] = (float)(((double)x[i] - stats[c * 2 + 0]) * stats[c * 2 + 1] * (double)gamma[c] + (double)beta[c]);
    }
}

// bn_backward_dx: dx = γσ⁻¹/M · (M·dy − Σdy − x̂·Σdy·x̂), x̂ from the saved
// float statistics (refBatchNormBackward); sums from bn_finish BN_BACKWARD.
KERNEL void bn_backward_dx(const float* x, const float* dy, const double* __restrict__ stats,
                           const float* __restrict__ gamma, const float* __restrict__ saveMean, const float* __restrict__ saveInvStd,
                           float* dx, int N, int C, int L) {
    double m = (double)N * (double)L;
    GRID_LOOP(i, (i64)N * C * L) {
        int c = (int)((i / L) % C);
        double mean = (double)saveMean[c], inv = (double)saveInvStd[c];
        double k = (double)gamma[c] * inv / m;
        double xh = ((double)x[i] - mean) * inv;
        dx[i] = (float)(k * (m * (double)dy[i] - stats[c * 2 + 0] - xh * stats[c * 2 + 1]));
    }
}
