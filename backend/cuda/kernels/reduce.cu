// Reductions, global average pooling's backward and L2 normalisation.
// Sums accumulate in double, as the reference does (refReduce,
// refL2NormalizeForward): the result is the float64 sum rounded to float32,
// which differs from the reference only where the two double sums (in
// different orders) round to different floats.
#include "common.cuh"

enum { R_SUM, R_MEAN, R_MAX };

DEVICE float reduce_result(int op, double s, double m, int len) {
    switch (op) {
    case R_SUM: return (float)s;
    case R_MEAN: return (float)(s / (double)len);
    }
    return (float)m;
}

// reduce_inner: x (outer, len, inner) -> y (outer, inner), one thread per
// output element (neighbouring threads read neighbouring inner elements).
KERNEL void reduce_inner(const float* __restrict__ x, float* __restrict__ y, int outer, int len, int inner, int op, int accumulate) {
    GRID_LOOP(idx, (i64)outer * inner) {
        i64 o = idx / inner, in = idx % inner;
        const float* p = x + o * len * (i64)inner + in;
        double s = 0.0, m = -INFINITY;
        for (int l = 0; l < len; l++) {
            float v = p[(i64)l * inner];
            s += (double)v;
            m = nan_max(m, (double)v);
        }
        float r = reduce_result(op, s, m, len);
        y[idx] = accumulate ? __fadd_rn(y[idx], r) : r;
    }
}

// reduce_rows: x (outer, len) -> y (outer), one block of RED_THREADS per
// row (inner == 1: long rows such as a global average pool's planes).
KERNEL void reduce_rows(const float* __restrict__ x, float* __restrict__ y, int outer, int len, int op, int accumulate) {
    __shared__ double sh[RED_THREADS];
    for (int row = blockIdx.x; row < outer; row += gridDim.x) {
        const float* p = x + (i64)row * len;
        double s = 0.0, m = -INFINITY;
        for (int l = threadIdx.x; l < len; l += RED_THREADS) {
            float v = p[l];
            s += (double)v;
            m = nan_max(m, (double)v);
        }
        if (op == R_MAX) {
            m = block_max(m, sh);
        } else {
            s = block_sum(s, sh);
        }
        if (threadIdx.x == 0) {
            float r = reduce_result(op, s, m, len);
            y[row] = accumulate ? __fadd_rn(y[row], r) : r;
        }
    }
}

// gap_backward: dy (NC) -> dx (NC, L), dx = dy/L (float32, as the reference).
KERNEL void gap_backward(const float* __restrict__ dy, float* __restrict__ dx, i64 nc, int l) {
    GRID_LOOP(i, nc * l) dx[i] = __fdiv_rn(dy[i / l], (float)l);
}

// l2norm_forward: x (N, D) -> y = x/max(|x|, eps), norms (N); a block per row.
KERNEL void l2norm_forward(const float* x, float* y, float* norms, int n, int d, float eps) {
    __shared__ double sh[RED_THREADS];
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const float* xr = x + (i64)row * d;
        double ss = 0.0;
        for (int j = threadIdx.x; j < d; j += RED_THREADS) ss += (double)xr[j] * (double)xr[j];
        ss = block_sum(ss, sh);
        double r = sqrt(ss);
        float nrm = (float)(r > (double)eps || r != r ? r : (double)eps);
        if (threadIdx.x == 0) norms[row] = nrm;
        float* yr = y + (i64)row * d;
        for (int j = threadIdx.x; j < d; j += RED_THREADS) yr[j] = __fdiv_rn(xr[j], nrm);
    }
}

// l2norm_backward: dx = (dy − y·<y, dy>)/norm per row (the CPU backend's
// formula; a zero row has y = 0 and gets dy/eps). dx accumulates when asked.
KERNEL void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int n, int d, int accumulate) {
    __shared__ double sh[RED_THREADS];
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const float* yr = y + (i64)row * d;
        const float* dyr = dy + (i64)row * d;
        double dot = 0.0;
        for (int j = threadIdx.x; j < d; j += RED_THREADS) dot += (double)yr[j] * (double)dyr[j];
        dot = block_sum(dot, sh);
        double nrm = (double)norms[row];
        float* dxr = dx + (i64)row * d;
        for (int j = threadIdx.x; j < d; j += RED_THREADS) {
            float g = (float)(((double)dyr[j] - (double)yr[j] * dot) / nrm);
            dxr[j] = accumulate ? __fadd_rn(dxr[j], g) : g;
        }
    }
}
