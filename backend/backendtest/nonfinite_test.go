package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// The non-finite rows of the table put NaN and ±Inf into the inputs of
// ReLU, max pooling and the fused inference convolution, where a backend
// that drops a NaN would hide a divergence. Parity with the reference is
// not enough there (the reference could drop it too), so each row also has
// an oracle of its own, written from PyTorch's rules and run on the
// reference's outputs as well as on every backend's:
//
//   - ReLU: relu(NaN) = NaN, relu(+Inf) = +Inf, relu(−Inf) = relu(−0) = +0
//     (Go's max(x, 0)); its backward passes z where x > 0 (NaN and ±0 pass
//     nothing).
//   - Max pooling: a window holding a NaN outputs NaN and its argmax is that
//     NaN, the last one if several (PyTorch's `val > maxval || isnan(val)`);
//     otherwise the first maximum; a window of −Inf gives −Inf at its first
//     element. The backward routes each gradient to the argmax.
//   - The fused op (conv → batch norm → + residual → ReLU): NaN, +Inf and
//     −Inf exactly where the same pipeline in float64 has them.

// specialVals are the values sprinkled into the inputs.
var specialVals = []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)), 0}

// sprinkle replaces about one value in every `every` of x with a special
// one, and makes the first and last values NaN (vector heads and tails).
func sprinkle(r *rand.Rand, x []float32, every int) []float32 {
	for i := range x {
		if r.IntN(every) == 0 {
			x[i] = specialVals[r.IntN(len(specialVals))]
		}
	}
	x[0], x[len(x)-1] = float32(math.NaN()), float32(math.NaN())
	return x
}

// sameValue: both NaN, or the same bits.
func sameValue(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

// sameClass: both NaN, both +Inf, both −Inf, or both finite.
func sameClass(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return a == b
	}
	return true
}

// relu64 is PyTorch's ReLU: NaN stays NaN, −0 becomes +0.
func relu64(v float64) float64 {
	if v > 0 || v != v {
		return v
	}
	return 0
}

// torchMaxPool is max pooling by PyTorch's loop: x (N, C, H, W) -> y,
// argmax (N, C, P, Q).
func torchMaxPool(p backend.Pool2dParams, x []float32) (y []float32, arg []int) {
	P, Q := p.P(), p.Q()
	for nc := 0; nc < p.N*p.C; nc++ {
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				maxval, maxidx := float32(math.Inf(-1)), -1
				for ih := oh*p.StrideH - p.PadH; ih < oh*p.StrideH-p.PadH+p.R; ih++ {
					for iw := ow*p.StrideW - p.PadW; iw < ow*p.StrideW-p.PadW+p.S; iw++ {
						if ih < 0 || ih >= p.H || iw < 0 || iw >= p.W {
							continue
						}
						if maxidx < 0 {
							maxidx = ih*p.W + iw // the first element in the window
						}
						if v := x[(nc*p.H+ih)*p.W+iw]; v > maxval || v != v {
							maxval, maxidx = v, ih*p.W+iw
						}
					}
				}
				y, arg = append(y, maxval), append(arg, maxidx)
			}
		}
	}
	return y, arg
}

// convBNAct64 is the fused op in float64 (the reference's order: the
// convolution, eval-mode batch norm, the residual, ReLU). x (N, C, H, W),
// w (K, C/G, R, S), res nil or (N, K, P, Q) -> (N, K, P, Q).
func convBNAct64(p backend.Conv2dParams, eps float32, x, w, gamma, beta, mean, variance, res []float32, relu bool) []float64 {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	y := make([]float64, p.N*p.K*P*Q)
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			inv := 1 / math.Sqrt(float64(variance[k])+float64(eps))
			for oh := 0; oh < P; oh++ {
				for ow := 0; ow < Q; ow++ {
					var s float64
					for c := 0; c < cg; c++ {
						ci := k/kg*cg + c
						for r := 0; r < p.R; r++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							for q := 0; q < p.S; q++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
									s += float64(x[((n*p.C+ci)*p.H+ih)*p.W+iw]) * float64(w[((k*cg+c)*p.R+r)*p.S+q])
								}
							}
						}
					}
					o := ((n*p.K+k)*P+oh)*Q + ow
					v := (s-float64(mean[k]))*inv*float64(gamma[k]) + float64(beta[k])
					if res != nil {
						v += float64(res[o])
					}
					if relu {
						v = relu64(v)
					}
					y[o] = v
				}
			}
		}
	}
	return y
}

// runConvBNAct runs the fused op through backend.ConvBNActer, or the ops
// in turn on a backend without it. t: x, w, gamma, beta, mean, var, res, y.
func runConvBNAct(b backend.Backend, p backend.Conv2dParams, t []*tensor.Tensor, withRes, relu bool) {
	res := t[6]
	if !withRes {
		res = nil
	}
	if f, ok := b.(backend.ConvBNActer); ok {
		f.ConvBNActForward(p, 1e-5, t[0], t[1], t[2], t[3], t[4], t[5], res, t[7], relu)
		return
	}
	np := p.Normalized()
	b.Conv2dForward(p, t[0], t[1], t[7])
	bn := backend.BatchNormParams{N: p.N, C: p.K, L: np.P() * np.Q(), Eps: 1e-5}
	b.BatchNormForward(bn, t[7], t[2], t[3], t[4], t[5], t[7], nil, nil)
	if res != nil {
		b.Binary(backend.Add, t[7], res, t[7])
	}
	if relu {
		b.Unary(backend.Relu, t[7], t[7], 0, 0)
	}
}

func nonFiniteCases(convs []backend.Conv2dParams) []opCase {
	r := rand.New(rand.NewPCG(11, 12))
	var cs []opCase
	add := func(c opCase) { cs = append(cs, c) }

	// ReLU and its backward, over lengths around the vector widths, the
	// unrolled loops and the thread split.
	for _, n := range []int{1, 7, 8, 16, 33, 64, 100, 1000, 70001} {
		x := sprinkle(r, randn(r, n), 5)
		add(opCase{name: fmt.Sprintf("unary_relu/non_finite_%d", n), tol: 0,
			data: [][]float32{x, zeros(n)}, shapes: [][]int{{n}, {n}}, outputs: []int{1},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Unary(backend.Relu, t[0], t[1], 0, 0) },
			expect: func(out [][]float32) string {
				for i, v := range out[1] {
					if want := float32(relu64(float64(x[i]))); !sameValue(v, want) {
						return fmt.Sprintf("relu(%g) at %d = %g, want %g", x[i], i, v, want)
					}
				}
				return ""
			}})
		// In place (y = x), as autograd's fused inference and the epilogues run it.
		add(opCase{name: fmt.Sprintf("unary_relu/non_finite_in_place_%d", n), tol: 0,
			data: [][]float32{append([]float32(nil), x...)}, shapes: [][]int{{n}}, outputs: []int{0},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Unary(backend.Relu, t[0], t[0], 0, 0) },
			expect: func(out [][]float32) string {
				for i, v := range out[0] {
					if want := float32(relu64(float64(x[i]))); !sameValue(v, want) {
						return fmt.Sprintf("relu(%g) at %d = %g in place, want %g", x[i], i, v, want)
					}
				}
				return ""
			}})
		z := sprinkle(r, randn(r, n), 5)
		add(opCase{name: fmt.Sprintf("binary_relu_backward/non_finite_%d", n), tol: 0,
			data: [][]float32{x, z, zeros(n)}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Binary(backend.ReluBackward, t[0], t[1], t[2]) },
			expect: func(out [][]float32) string {
				for i, v := range out[2] {
					want := float32(0)
					if x[i] > 0 {
						want = z[i]
					}
					if !sameValue(v, want) {
						return fmt.Sprintf("relu backward at %d (x %g, dy %g) = %g, want %g", i, x[i], z[i], v, want)
					}
				}
				return ""
			}})
	}

	// Max pooling: overlapping windows with padding, disjoint windows, and
	// stride 1 (one NaN in many windows, several NaNs in one); one plane
	// without specials and one of −Inf only.
	pools := []backend.Pool2dParams{
		{N: 2, C: 3, H: 7, W: 9, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 1, C: 4, H: 8, W: 8, R: 2, S: 2, StrideH: 2, StrideW: 2},
		{N: 3, C: 2, H: 5, W: 6, R: 3, S: 3, StrideH: 1, StrideW: 1},
	}
	for _, p := range pools {
		p := p
		plane, xs, ys := p.H*p.W, p.N*p.C*p.H*p.W, p.N*p.C*p.P()*p.Q()
		x := sprinkle(r, randn(r, xs), 6)
		for i := 0; i < plane; i++ {
			x[plane+i] = float32(math.Inf(-1))
			x[2*plane+i] = float32(r.NormFloat64())
		}
		dy := randn(r, ys)
		add(opCase{name: fmt.Sprintf("maxpool/non_finite_n%d_c%d_%dx%d_w%d_s%d_p%d", p.N, p.C, p.H, p.W, p.R, p.StrideH, p.PadH), tol: 0,
			data:   [][]float32{x, zeros(ys), zeros(ys), dy, zeros(xs)},
			shapes: [][]int{{xs}, {ys}, {ys}, {ys}, {xs}}, outputs: []int{1, 2, 4},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.MaxPool2dForward(p, t[0], t[1], t[2])
				b.MaxPool2dBackward(p, t[3], t[2], t[4])
			},
			expect: func(out [][]float32) string {
				y, arg := torchMaxPool(p, x)
				dx := make([]float32, xs)
				for o := range y {
					nc := o / (p.P() * p.Q())
					if !sameValue(out[1][o], y[o]) || out[2][o] != float32(arg[o]) {
						return fmt.Sprintf("output %d = %g at %g, want %g at %d", o, out[1][o], out[2][o], y[o], arg[o])
					}
					dx[nc*plane+arg[o]] += dy[o]
				}
				for i, v := range out[4] {
					if !sameValue(v, dx[i]) {
						return fmt.Sprintf("dx[%d] = %g, want %g", i, v, dx[i])
					}
				}
				return ""
			}})
	}

	// The fused inference op: a NaN and ±Inf in x, NaN and ±Inf in the
	// residual, a NaN running mean (a whole channel of NaN).
	for ci, p := range convs {
		p := p
		np := p.Normalized()
		xs, ws, ys := p.N*p.C*p.H*p.W, p.K*(p.C/np.G())*p.R*p.S, p.N*p.K*np.P()*np.Q()
		x, res := randn(r, xs), randn(r, ys)
		img := p.C * p.H * p.W
		x[p.W+2] = float32(math.NaN())
		x[img+p.H*p.W/2] = float32(math.Inf(1))
		x[xs-1] = float32(math.Inf(-1))
		for i := 0; i < ys; i += 13 {
			res[i] = specialVals[(i/13)%3]
		}
		w, gamma, beta, mean, variance := randn(r, ws), randn(r, p.K), randn(r, p.K), randn(r, p.K), uniform(r, p.K, 0.5, 2)
		mean[p.K-1] = float32(math.NaN())
		for _, withRes := range []bool{false, true} {
			for _, relu := range []bool{false, true} {
				withRes, relu := withRes, relu
				var rs []float32
				if withRes {
					rs = res
				}
				want := convBNAct64(p, 1e-5, x, w, gamma, beta, mean, variance, rs, relu)
				add(opCase{name: fmt.Sprintf("conv_bn_act/non_finite_%d_res%v_relu%v", ci, withRes, relu), tol: 1e-5,
					data:    [][]float32{x, w, gamma, beta, mean, variance, res, zeros(ys)},
					shapes:  [][]int{{p.N, p.C, p.H, p.W}, {p.K, p.C / np.G(), p.R, p.S}, {p.K}, {p.K}, {p.K}, {p.K}, {p.N, p.K, np.P(), np.Q()}, {p.N, p.K, np.P(), np.Q()}},
					outputs: []int{7},
					run:     func(b backend.Backend, t []*tensor.Tensor) { runConvBNAct(b, p, t, withRes, relu) },
					expect: func(out [][]float32) string {
						for i, v := range out[7] {
							if !sameClass(float64(v), want[i]) {
								return fmt.Sprintf("y[%d] = %g, want %g (float64)", i, v, want[i])
							}
						}
						return ""
					}})
			}
		}
	}
	return cs
}
