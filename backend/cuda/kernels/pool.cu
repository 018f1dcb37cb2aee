// Pooling. Legend: x (N, C, H, W), y (N, C, P, Q), window R×S, stride
// sh×sw, padding ph×pw. The backward kernels gather: each input element
// sums, in increasing output order, the contributions the reference
// scatters to it, so they need no atomics and give the reference's float32
// sums bit for bit.
#include "common.cuh"

// maxpool_forward: one thread per output. Ties keep the first maximum in
// row-major window order; padding never wins; a NaN wins, the last one if
// several (PyTorch's `val > maxval || isnan(val)`, as refMaxPoolForward).
// argmax receives the index in the H×W plane.
KERNEL void maxpool_forward(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ argmax,
                            int nc, int H, int W, int P, int Q, int R, int S, int sh, int sw, int ph, int pw) {
    GRID_LOOP(o, (i64)nc * P * Q) {
        int ow = (int)(o % Q), oh = (int)((o / Q) % P);
        const float* plane = x + (o / ((i64)P * Q)) * H * W;
        float best = -INFINITY;
        int bi = -1;
        for (int r = 0; r < R; r++) {
            int ih = oh * sh - ph + r;
            if (ih < 0 || ih >= H) continue;
            for (int s = 0; s < S; s++) {
                int iw = ow * sw - pw + s;
                if (iw < 0 || iw >= W) continue;
                float v = plane[ih * W + iw];
                if (bi < 0 || v > best || v != v) {
                    best = v;
                    bi = ih * W + iw;
                }
            }
        }
        y[o] = best;
        argmax[o] = (float)bi;
    }
}

// The outputs whose window covers input row ih: oh in [lo, hi].
DEVICE void covering(int i, int pad, int stride, int win, int outs, int* lo, int* hi) {
    // oh·stride − pad ≤ i ≤ oh·stride − pad + win − 1
    int a = i + pad - win + 1;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = i + pad;
    *hi = b < 0 ? -1 : b / stride;
    if (*hi > outs - 1) *hi = outs - 1;
}

// maxpool_backward: dx (N, C, H, W) from dy, argmax (N, C, P, Q); every
// element of dx is written (zero where no maximum points at it). argmax
// must come from maxpool_forward with the same parameters.
KERNEL void maxpool_backward(const float* __restrict__ dy, const float* __restrict__ argmax, float* __restrict__ dx,
                             int nc, int H, int W, int P, int Q, int R, int S, int sh, int sw, int ph, int pw) {
    GRID_LOOP(i, (i64)nc * H * W) {
        int iw = (int)(i % W), ih = (int)((i / W) % H);
        i64 base = (i / ((i64)H * W)) * P * Q;
        float pos = (float)(ih * W + iw);
        int ohl, ohh, owl, owh;
        covering(ih, ph, sh, R, P, &ohl, &ohh);
        covering(iw, pw, sw, S, Q, &owl, &owh);
        float acc = 0.0f;
        for (int oh = ohl; oh <= ohh; oh++)
            for (int ow = owl; ow <= owh; ow++) {
                i64 o = base + oh * Q + ow;
                if (argmax[o] == pos) acc = __fadd_rn(acc, dy[o]);
            }
        dx[i] = acc;
    }
}

// avgpool_forward: y = (sum of the window's inputs, padding as zeros)/(R·S),
// the float32 sum in window order (refAvgPoolForward).
KERNEL void avgpool_forward(const float* __restrict__ x, float* __restrict__ y,
                            int nc, int H, int W, int P, int Q, int R, int S, int sh, int sw, int ph, int pw) {
    float inv = __fdiv_rn(1.0f, (float)(R * S));
    GRID_LOOP(o, (i64)nc * P * Q) {
        int ow = (int)(o % Q), oh = (int)((o / Q) % P);
        const float* plane = x + (o / ((i64)P * Q)) * H * W;
        float s = 0.0f;
        for (int r = 0; r < R; r++) {
            int ih = oh * sh - ph + r;
            for (int q = 0; q < S; q++) {
                int iw = ow * sw - pw + q;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) s = __fadd_rn(s, plane[ih * W + iw]);
            }
        }
        y[o] = __fmul_rn(s, inv);
    }
}

// avgpool_backward: dx = Σ over covering outputs (increasing) of dy·inv.
KERNEL void avgpool_backward(const float* __restrict__ dy, float* __restrict__ dx,
                             int nc, int H, int W, int P, int Q, int R, int S, int sh, int sw, int ph, int pw) {
    float inv = __fdiv_rn(1.0f, (float)(R * S));
    GRID_LOOP(i, (i64)nc * H * W) {
        int iw = (int)(i % W), ih = (int)((i / W) % H);
        i64 base = (i / ((i64)H * W)) * P * Q;
        int ohl, ohh, owl, owh;
        covering(ih, ph, sh, R, P, &ohl, &ohh);
        covering(iw, pw, sw, S, Q, &owl, &owh);
        float acc = 0.0f;
        for (int oh = ohl; oh <= ohh; oh++)
            for (int ow = owl; ow <= owh; ow++) acc = __fadd_rn(acc, __fmul_rn(dy[base + oh * Q + ow], inv));
        dx[i] = acc;
    }
}
