// Elementwise kernels and the optimizer updates: one thread per element in
// a grid-stride loop. Each mirrors a loop of backend/cpu/elementwise.go. Where the
// reference computes in float64 (the transcendental unary ops, AdamW's bias
// correction) these compute in double; where it computes in float32 they use
// the same float32 operations in the same order, with __fmul_rn/__fadd_rn so
// that the compiler cannot contract a product and a sum into an FMA.
#include "common.cuh"

// Unary op codes: backend.UnaryOp.
enum {
    U_COPY, U_NEG, U_SCALE, U_ADD_SCALAR, U_AFFINE, U_RELU, U_EXP, U_LOG, U_SQRT, U_RSQRT,
    U_SQUARE, U_ABS, U_CLAMP, U_SIGMOID, U_TANH, U_SOFTPLUS, U_POW_SCALAR
};

DEVICE float unary_fn(int op, float v, float a, float b) {
    double x = (double)v;
    switch (op) {
    case U_COPY: return v;
    case U_NEG: return -v;
    case U_SCALE: return __fmul_rn(a, v);
    case U_ADD_SCALAR: return __fadd_rn(v, a);
    case U_AFFINE: return __fadd_rn(__fmul_rn(a, v), b);
    case U_RELU: return v > 0.0f || v != v ? v : 0.0f; // NaN stays NaN (not fmaxf, which drops it)
    case U_EXP: return (float)exp(x);
    case U_LOG: return (float)log(x);
    case U_SQRT: return (float)sqrt(x);
    case U_RSQRT: return (float)(1.0 / sqrt(x));
    case U_SQUARE: return __fmul_rn(v, v);
    case U_ABS: return fabsf(v);
    case U_CLAMP: return go_minf(go_maxf(v, a), b);
    case U_SIGMOID: return (float)(1.0 / (1.0 + exp(-x)));
    case U_TANH: return (float)tanh(x);
    case U_SOFTPLUS: {
        // ln(1+eˣ) = max(x, 0) + ln(1+e^−|x|); NaN stays NaN.
        double m = x != x ? x : (x > 0.0 ? x : 0.0);
        return (float)(m + log1p(exp(-fabs(x))));
    }
    case U_POW_SCALAR: return (float)pow(x, (double)a);
    }
    return __int_as_float(0x7fc00000); // unknown op: NaN (the Go side never sends one)
}

// unary_f32: y[i] = f(x[i]; a, b).
KERNEL void unary_f32(const float* x, float* y, i64 n, int op, float a, float b) {
    GRID_LOOP(i, n) y[i] = unary_fn(op, x[i], a, b);
}

// Binary op codes: backend.BinaryOp.
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_RELU_BACKWARD };

DEVICE float binary_fn(int op, float x, float z) {
    switch (op) {
    case B_ADD: return __fadd_rn(x, z);
    case B_SUB: return __fsub_rn(x, z);
    case B_MUL: return __fmul_rn(x, z);
    case B_DIV: return __fdiv_rn(x, z);
    case B_MAX: return go_maxf(x, z);
    case B_MIN: return go_minf(x, z);
    case B_RELU_BACKWARD: return x > 0.0f ? z : 0.0f; // nothing passes where x is NaN
    }
    return __int_as_float(0x7fc00000);
}

// binary_f32: y[i] = x[i] ∘ z[i mod zn]; zn == n (same shape), a row
// repeated (zn divides n) or a scalar (zn == 1). x and y may alias.
KERNEL void binary_f32(const float* x, const float* z, float* y, i64 n, i64 zn, int op) {
    if (zn == n) {
        GRID_LOOP(i, n) y[i] = binary_fn(op, x[i], z[i]);
    } else if (zn == 1) {
        float zv = z[0];
        GRID_LOOP(i, n) y[i] = binary_fn(op, x[i], zv);
    } else {
        GRID_LOOP(i, n) y[i] = binary_fn(op, x[i], z[i % zn]);
    }
}

// axpy_f32: y[i] += alpha·x[i].
KERNEL void axpy_f32(float alpha, const float* x, float* y, i64 n) {
    GRID_LOOP(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

// sgd_f32 is PyTorch's SGD (refSGDStep): d = g + wd·w; with momentum
// mom = μ·mom + (1−dampening)·d and step = d + μ·mom (Nesterov) or mom;
// w −= lr·step.
KERNEL void sgd_f32(float* w, const float* g, float* mom, i64 n, float lr, float mu, float wd, float dampening, int nesterov) {
    float damp = __fsub_rn(1.0f, dampening);
    GRID_LOOP(i, n) {
        float wi = w[i];
        float d = __fadd_rn(g[i], __fmul_rn(wd, wi));
        float step = d;
        if (mu != 0.0f) {
            float m = __fadd_rn(__fmul_rn(mu, mom[i]), __fmul_rn(damp, d));
            mom[i] = m;
            step = nesterov ? __fadd_rn(d, __fmul_rn(mu, m)) : m;
        }
        w[i] = __fsub_rn(wi, __fmul_rn(lr, step));
    }
}

// adamw_f32 is refAdamWStep: decoupled decay, then the moments, then the
// bias-corrected step in double. bc1 = 1 − β1^t and bc2 = 1 − β2^t come
// from the host (float64, as the reference).
KERNEL void adamw_f32(float* w, const float* g, float* m, float* v, i64 n, float lr, float beta1, float beta2, float eps, float wd, double bc1, double bc2) {
    float lrwd = __fmul_rn(lr, wd);
    float ob1 = __fsub_rn(1.0f, beta1), ob2 = __fsub_rn(1.0f, beta2);
    GRID_LOOP(i, n) {
        float wi = w[i];
        wi = __fsub_rn(wi, __fmul_rn(lrwd, wi));
        float gi = g[i];
        float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(ob1, gi));
        float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(ob2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        double mh = (double)mi / bc1;
        double vh = (double)vi / bc2;
        w[i] = __fsub_rn(wi, (float)((double)lr * mh / (sqrt(vh) + (double)eps)));
    }
}
