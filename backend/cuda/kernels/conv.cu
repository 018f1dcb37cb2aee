// Convolution through GEMM (ops.go drives it). Legend: x (N, C, H, W),
// w (K, C/G, R, S), y (N, K, P, Q); col (nb, C·R·S, P·Q) for a chunk of nb
// images, row c·R·S + r·S + s, column oh·Q + ow.
#include "common.cuh"

// im2col: col[n, (c, r, s), (oh, ow)] = x[n0 + n, c, oh·sh − ph + r·dh, ow·sw − pw + s·dw]
// (zero outside the image), one thread per element of col.
KERNEL void im2col(const float* __restrict__ x, float* __restrict__ col, int nb, int C, int H, int W, int P, int Q,
                   int R, int S, int sh, int sw, int ph, int pw, int dh, int dw) {
    i64 pq = (i64)P * Q, crs = (i64)C * R * S;
    GRID_LOOP(i, nb * crs * pq) {
        int ow = (int)(i % Q), oh = (int)((i / Q) % P);
        i64 row = (i / pq) % crs, n = i / (pq * crs);
        int s = (int)(row % S), r = (int)((row / S) % R), c = (int)(row / ((i64)R * S));
        int ih = oh * sh - ph + r * dh, iw = ow * sw - pw + s * dw;
        float v = 0.0f;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = x[((n * C + c) * H + ih) * W + iw];
        col[i] = v;
    }
}

// col2im: dx[n, c, h, w] = Σ over (r, s) and the output (oh, ow) that reads
// x[n, c, h, w] through tap (r, s) of col[n, (c, r, s), (oh, ow)]. A gather
// (one thread per element of dx) in a fixed order: no atomics.
KERNEL void col2im(const float* __restrict__ col, float* __restrict__ dx, int nb, int C, int H, int W, int P, int Q,
                   int R, int S, int sh, int sw, int ph, int pw, int dh, int dw) {
    i64 pq = (i64)P * Q, crs = (i64)C * R * S;
    GRID_LOOP(i, (i64)nb * C * H * W) {
        int w = (int)(i % W), h = (int)((i / W) % H);
        i64 c = (i / ((i64)H * W)) % C, n = i / ((i64)C * H * W);
        const float* cb = col + n * crs * pq + c * R * S * pq;
        float acc = 0.0f;
        for (int r = 0; r < R; r++) {
            int th = h + ph - r * dh; // = oh·sh
            if (th < 0 || th % sh != 0) continue;
            int oh = th / sh;
            if (oh >= P) continue;
            for (int s = 0; s < S; s++) {
                int tw = w + pw - s * dw;
                if (tw < 0 || tw % sw != 0) continue;
                int ow = tw / sw;
                if (ow >= Q) continue;
                acc += cb[(i64)(r * S + s) * pq + oh * Q + ow];
            }
        }
        dx[i] = acc;
    }
}
