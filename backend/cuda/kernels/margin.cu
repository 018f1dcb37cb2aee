// The fused margin-softmax cross-entropy (backend.MarginSoftmaxCE), one
// block per sample row, mirroring backend/cpu/margin.go formula by formula
// in double: each kind maps cosine c_j to a logit z_j, the loss is the
// cross-entropy of softmax(z) at the label with a stable log-sum-exp, and
// dcos = ∂(mean loss)/∂cos.
#include "common.cuh"

// Margin kinds: backend.MarginKind.
enum { K_SOFTMAX, K_NORMFACE, K_SPHEREFACE, K_COSFACE, K_ARCFACE, K_COMBINED, K_DML_FIXED, K_DML_CLASS, K_DML_ADAPTIVE };

// is_dml reports whether a kind has DML's positive margin m_p (its
// target logit is s·(c − m_p) and it has a gradient for m_p).
DEVICE bool is_dml(int kind) {
    switch (kind) {
    case K_DML_FIXED:
    case K_DML_CLASS:
    case K_DML_ADAPTIVE:
        return true;
    }
    return false;
}

struct margin_params {
    int kind;
    double s, m, m1, m2, m3, mp, mn, lambda, eps;
    int easy;
};

// target_logit: z_y and ∂z_y/∂c for the label's cosine c (targetLogit).
DEVICE void target_logit(const margin_params& p, double c, double* z, double* dz) {
    double s = p.s;
    switch (p.kind) {
    case K_SOFTMAX:
        *z = c;
        *dz = 1.0;
        return;
    case K_NORMFACE:
    case K_COSFACE:
    case K_DML_FIXED:
    case K_DML_CLASS:
    case K_DML_ADAPTIVE: {
        double m = 0.0;
        if (p.kind == K_COSFACE) m = p.m;
        if (is_dml(p.kind)) m = p.mp;
        *z = s * (c - m);
        *dz = s;
        return;
    }
    }
    // The angular kinds: clamp before acos; outside the clamp the logit is
    // constant in c, so its derivative there is 0.
    double lo = -1.0 + p.eps, hi = 1.0 - p.eps;
    double inside = 1.0;
    if (c < lo || c > hi) {
        c = fmin(fmax(c, lo), hi);
        inside = 0.0;
    }
    double theta = acos(c);
    double sinT = sqrt(1.0 - c * c);
    if (p.kind == K_SPHEREFACE) {
        double m = p.m;
        double k = floor(m * theta / M_PI);
        double sign = ((long long)k) % 2 == 1 ? -1.0 : 1.0;
        double psi = sign * cos(m * theta) - 2.0 * k;
        double dpsi = sign * m * sin(m * theta) / sinT;
        double lam = p.lambda;
        *z = s * (lam * c + psi) / (1.0 + lam);
        *dz = inside * s * (lam + dpsi) / (1.0 + lam);
        return;
    }
    if (p.kind == K_ARCFACE) {
        double m = p.m;
        if (p.easy) {
            if (c <= 0.0) {
                *z = s * c;
                *dz = inside * s;
                return;
            }
        } else if (theta + m > M_PI) {
            *z = s * (c - m * sin(m));
            *dz = inside * s;
            return;
        }
        *z = s * cos(theta + m);
        *dz = inside * s * sin(theta + m) / sinT;
        return;
    }
    // K_COMBINED
    *z = s * (cos(p.m1 * theta + p.m2) - p.m3);
    *dz = inside * s * p.m1 * sin(p.m1 * theta + p.m2) / sinT;
}

// other_logit: z_j and ∂z_j/∂c_j for a non-label class j (otherLogit).
DEVICE void other_logit(const margin_params& p, const float* classMargins, int j, double c, double* z, double* dz) {
    double s = p.s;
    switch (p.kind) {
    case K_SOFTMAX:
        *z = c;
        *dz = 1.0;
        return;
    case K_DML_FIXED:
        *z = s * (c + p.mn);
        *dz = s;
        return;
    case K_DML_CLASS:
        *z = s * (c + (double)classMargins[j]);
        *dz = s;
        return;
    case K_DML_ADAPTIVE:
        *z = s * (c + p.mn * (1.0 + c) / 2.0);
        *dz = s * (1.0 + p.mn / 2.0);
        return;
    }
    *z = s * c;
    *dz = s;
}

DEVICE void logit(const margin_params& p, const float* classMargins, int j, int y, double c, double* z, double* dz) {
    if (j == y) {
        target_logit(p, c, z, dz);
    } else {
        other_logit(p, classMargins, j, c, z, dz);
    }
}

// margin_ce: cos (N, C), labels (N) -> loss (N), dcos (N, C) (may be null).
// Optional outputs for the margin gradients, combined by the kernels below:
//   gs (N, C): float32(s·g_ij) for j ≠ y_i, 0 at the label (∂L/∂m_j parts)
//   mprow (N): −s·g_iy per row (∂L/∂m_p parts, dml kinds; 0 for the others)
// with g_ij = ∂(mean loss)/∂z_ij. mpFrom (1), when not null, holds m_p on
// the device in place of MP.
KERNEL void margin_ce(const float* cos, const int* __restrict__ labels, const float* __restrict__ classMargins,
                      float* loss, float* dcos, float* __restrict__ gs, double* __restrict__ mprow,
                      const float* __restrict__ mpFrom,
                      int N, int C, int kind, float S, float M, float M1, float M2, float M3, float MP, float MN,
                      float lambda, float eps, int easy) {
    __shared__ double sh[RED_THREADS];
    margin_params p;
    p.kind = kind;
    p.s = S; p.m = M; p.m1 = M1; p.m2 = M2; p.m3 = M3; p.mn = MN; p.lambda = lambda; p.eps = eps;
    p.mp = mpFrom != 0 ? (double)mpFrom[0] : (double)MP;
    p.easy = easy;
    double invN = 1.0 / (double)N;
    for (int i = blockIdx.x; i < N; i += gridDim.x) {
        const float* row = cos + (i64)i * C;
        int y = labels[i];
        double z, dz;
        double zmax = -INFINITY;
        for (int j = threadIdx.x; j < C; j += RED_THREADS) {
            logit(p, classMargins, j, y, (double)row[j], &z, &dz);
            zmax = nan_max(zmax, z);
        }
        zmax = block_max(zmax, sh);
        double sum = 0.0;
        for (int j = threadIdx.x; j < C; j += RED_THREADS) {
            logit(p, classMargins, j, y, (double)row[j], &z, &dz);
            sum += exp(z - zmax);
        }
        sum = block_sum(sum, sh);
        double lse = zmax + log(sum);
        if (threadIdx.x == 0) {
            target_logit(p, (double)row[y], &z, &dz);
            loss[i] = (float)(lse - z);
            // Without a backward part, ∂L/∂m_p needs only the label's
            // probability (the reference's formula, in its order).
            if (dcos == 0 && gs == 0 && mprow != 0) mprow[i] = is_dml(kind) ? -p.s * (exp(z - lse) - 1.0) * invN : 0.0;
        }
        if (dcos == 0 && gs == 0) continue;
        for (int j = threadIdx.x; j < C; j += RED_THREADS) {
            logit(p, classMargins, j, y, (double)row[j], &z, &dz);
            double g = exp(z - lse) * invN;
            if (j == y) {
                g -= invN;
                if (mprow != 0) mprow[i] = is_dml(kind) ? -p.s * g : 0.0;
                if (gs != 0) gs[(i64)i * C + j] = 0.0f;
            } else if (gs != 0) {
                gs[(i64)i * C + j] = (float)(p.s * g);
            }
            if (dcos != 0) dcos[(i64)i * C + j] = (float)(g * dz);
        }
    }
}

// margin_class_grads: gcm[j] += Σ_i gs[i, j], one thread per class, the
// float32 sum over rows in order (the reference accumulates in float32).
KERNEL void margin_class_grads(const float* __restrict__ gs, float* __restrict__ gcm, int N, int C) {
    GRID_LOOP(j, C) {
        float acc = 0.0f;
        for (int i = 0; i < N; i++) acc = __fadd_rn(acc, gs[(i64)i * C + j]);
        gcm[j] = __fadd_rn(gcm[j], acc);
    }
}

// margin_mp_grad: gmp[0] += float32(Σ_i mprow[i]), one block.
KERNEL void margin_mp_grad(const double* __restrict__ mprow, float* __restrict__ gmp, int N) {
    __shared__ double sh[RED_THREADS];
    double s = 0.0;
    for (int i = threadIdx.x; i < N; i += RED_THREADS) s += mprow[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) gmp[0] = __fadd_rn(gmp[0], (float)s);
}

// project_margins (backend.ProjectMargins): dml/class's learned margins onto
// the set where their clamps are inactive, one thread per class. Every
// thread computes the clamped m_p from mp[0] (clamping is idempotent, so a
// thread that reads the value thread 0 wrote gets the same result); NaN
// stays NaN (comparisons, not fmin/fmax, which drop it).
KERNEL void project_margins(float* mp, float* __restrict__ rho, int C, double mpFixed, float maxMP,
                            double maxMargin, double delta, double gap) {
    double m = mpFixed;
    float v = 0.0f;
    if (mp != 0) {
        v = mp[0];
        if (v < 0.0f) v = 0.0f;
        if (v > maxMP) v = maxMP;
        m = (double)v;
    }
    GRID_LOOP(j, C) {
        if (j == 0 && mp != 0) mp[0] = v;
        double room = maxMargin - m - delta - gap;
        if (room > gap) {
            float hi = (float)(room + log(-expm1(-room)));
            if (rho[j] > hi) rho[j] = hi;
        }
    }
}
