package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	_ "github.com/dmlgo/dmlgo/backend/cuda"
	"github.com/dmlgo/dmlgo/tensor"
)

// opCase is one row of the table: buffers (inputs, and outputs that start
// with given contents), the op run over them, and which buffers to compare.
type opCase struct {
	name    string
	tol     float64
	data    [][]float32
	shapes  [][]int
	outputs []int
	run     func(b backend.Backend, t []*tensor.Tensor)
	// expect, when set, checks the outputs (all buffers, as runCase returns
	// them) against an oracle of the row's own, on the reference and on
	// every backend, and returns "" or what is wrong (nonfinite_test.go).
	expect func(out [][]float32) string
}

func randn(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func uniform(r *rand.Rand, n int, lo, hi float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = lo + (hi-lo)*r.Float32()
	}
	return s
}

func zeros(n int) []float32 { return make([]float32, n) }

func cases() []opCase {
	r := rand.New(rand.NewPCG(1, 2))
	var cs []opCase
	add := func(c opCase) { cs = append(cs, c) }

	// GEMM: odd sizes and tails around any block size, all transposes, alpha/beta.
	sizes := [][3]int{{1, 1, 1}, {1, 7, 3}, {5, 1, 9}, {3, 3, 1}, {17, 13, 11}, {33, 65, 31}, {64, 64, 64}, {97, 35, 130}, {130, 257, 67}, {7, 300, 5}, {300, 6, 129}}
	for _, s := range sizes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			for _, ab := range [][2]float32{{1, 0}, {-0.5, 1.25}} {
				m, n, k := s[0], s[1], s[2]
				p := backend.GemmParams{TransA: tr[0], TransB: tr[1], M: m, N: n, K: k, Alpha: ab[0], Beta: ab[1]}
				add(opCase{
					name: fmt.Sprintf("gemm/m%d_n%d_k%d_ta%v_tb%v_a%g_b%g", m, n, k, tr[0], tr[1], ab[0], ab[1]), tol: 1e-5,
					data:   [][]float32{randn(r, m*k), randn(r, k*n), randn(r, m*n)},
					shapes: [][]int{{m * k}, {k * n}, {m * n}}, outputs: []int{2},
					run: func(b backend.Backend, t []*tensor.Tensor) { b.Gemm(p, t[0], t[1], t[2]) },
				})
			}
		}
	}
	{
		p := backend.GemmParams{TransB: true, M: 9, N: 11, K: 13, Alpha: 1}
		add(opCase{name: "gemm_batched/5x9x11x13", tol: 1e-5,
			data:   [][]float32{randn(r, 5*9*13), randn(r, 5*11*13), randn(r, 5*9*11)},
			shapes: [][]int{{5 * 9 * 13}, {5 * 11 * 13}, {5 * 9 * 11}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.GemmBatched(p, 5, t[0], t[1], t[2]) },
		})
	}

	// Convolution: strides, padding, dilation, groups, 1×1, odd planes.
	convs := []backend.Conv2dParams{
		{N: 2, C: 3, H: 7, W: 9, K: 5, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 3, C: 4, H: 11, W: 10, K: 6, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 2, C: 8, H: 6, W: 6, K: 16, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 2, C: 8, H: 9, W: 7, K: 4, R: 1, S: 1, StrideH: 2, StrideW: 2},
		{N: 1, C: 3, H: 19, W: 17, K: 8, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
		{N: 2, C: 6, H: 9, W: 9, K: 6, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 2, DilW: 2},
		{N: 2, C: 6, H: 8, W: 5, K: 9, R: 3, S: 2, StrideH: 1, StrideW: 2, PadH: 1, PadW: 0, Groups: 3},
		{N: 5, C: 1, H: 32, W: 32, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
	}
	for _, p := range convs {
		p := p
		np := p.Normalized()
		xs, ws, ys := p.N*p.C*p.H*p.W, p.K*(p.C/np.G())*p.R*p.S, p.N*p.K*np.P()*np.Q()
		tag := fmt.Sprintf("n%d_c%d_%dx%d_k%d_%dx%d_s%d_p%d_d%d_g%d", p.N, p.C, p.H, p.W, p.K, p.R, p.S, np.StrideH, p.PadH, np.DilH, np.G())
		add(opCase{name: "conv_fwd/" + tag, tol: 1e-5,
			data: [][]float32{randn(r, xs), randn(r, ws), randn(r, ys)}, shapes: [][]int{{xs}, {ws}, {ys}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dForward(p, t[0], t[1], t[2]) }})
		add(opCase{name: "conv_bwd_data/" + tag, tol: 1e-5,
			data: [][]float32{randn(r, ys), randn(r, ws), randn(r, xs)}, shapes: [][]int{{ys}, {ws}, {xs}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardData(p, t[0], t[1], t[2]) }})
		add(opCase{name: "conv_bwd_filter/" + tag, tol: 1e-5,
			data: [][]float32{randn(r, xs), randn(r, ys), randn(r, ws)}, shapes: [][]int{{xs}, {ys}, {ws}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardFilter(p, t[0], t[1], t[2]) }})
	}
	// An Inf or NaN in x: the weight gradient must hold ±Inf and NaN where
	// the direct sum does (a fast path that multiplies values outside the
	// filter's reach by zero would make NaN of an Inf there).
	for i, p := range convs[:2] {
		p := p
		np := p.Normalized()
		xs, ws, ys := p.N*p.C*p.H*p.W, p.K*(p.C/np.G())*p.R*p.S, p.N*p.K*np.P()*np.Q()
		x := randn(r, xs)
		x[p.W+2] = float32(math.Inf(1))
		x[xs-1] = float32(math.Inf(-1)) // the last pixel: outside a stride-2 filter's reach
		if i == 1 {
			x[xs/2] = float32(math.NaN())
		}
		add(opCase{name: fmt.Sprintf("conv_bwd_filter/non_finite_x_%d", i), tol: 1e-5,
			data: [][]float32{x, randn(r, ys), randn(r, ws)}, shapes: [][]int{{xs}, {ys}, {ws}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardFilter(p, t[0], t[1], t[2]) }})
	}

	// Pooling.
	pools := []backend.Pool2dParams{
		{N: 2, C: 3, H: 7, W: 9, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 1, C: 4, H: 8, W: 8, R: 2, S: 2, StrideH: 2, StrideW: 2},
		{N: 3, C: 2, H: 5, W: 6, R: 3, S: 3, StrideH: 1, StrideW: 1},
		{N: 1, C: 2, H: 10, W: 7, R: 3, S: 2, StrideH: 3, StrideW: 2, PadH: 1, PadW: 1},
		{N: 1, C: 5, H: 12, W: 12, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
	}
	for _, p := range pools {
		// Values from {-1, 0, 1}: windows with ties, whose first maximum
		// (row-major) must win on every backend.
		p := p
		xs, ys := p.N*p.C*p.H*p.W, p.N*p.C*p.P()*p.Q()
		ties := make([]float32, xs)
		for i := range ties {
			ties[i] = float32(r.IntN(3) - 1)
		}
		add(opCase{name: fmt.Sprintf("maxpool/ties_n%d_c%d_%dx%d_w%d_s%d_p%d", p.N, p.C, p.H, p.W, p.R, p.StrideH, p.PadH), tol: 0,
			data: [][]float32{ties, zeros(ys), zeros(ys), zeros(xs)}, shapes: [][]int{{xs}, {ys}, {ys}, {xs}}, outputs: []int{1, 2, 3},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.MaxPool2dForward(p, t[0], t[1], t[2])
				b.MaxPool2dBackward(p, t[1], t[2], t[3])
			}})
	}
	for _, p := range pools {
		p := p
		xs, ys := p.N*p.C*p.H*p.W, p.N*p.C*p.P()*p.Q()
		tag := fmt.Sprintf("n%d_c%d_%dx%d_w%d_s%d_p%d", p.N, p.C, p.H, p.W, p.R, p.StrideH, p.PadH)
		add(opCase{name: "maxpool/" + tag, tol: 0,
			data: [][]float32{randn(r, xs), zeros(ys), zeros(ys), zeros(xs)}, shapes: [][]int{{xs}, {ys}, {ys}, {xs}}, outputs: []int{1, 2, 3},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.MaxPool2dForward(p, t[0], t[1], t[2])
				b.MaxPool2dBackward(p, t[1], t[2], t[3])
			}})
		add(opCase{name: "avgpool/" + tag, tol: 1e-6,
			data: [][]float32{randn(r, xs), zeros(ys), zeros(xs)}, shapes: [][]int{{xs}, {ys}, {xs}}, outputs: []int{1, 2},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.AvgPool2dForward(p, t[0], t[1])
				b.AvgPool2dBackward(p, t[1], t[2])
			}})
	}
	add(opCase{name: "global_avgpool/3x5x7x3", tol: 1e-6,
		data: [][]float32{randn(r, 3*5*21), zeros(15), zeros(3 * 5 * 21)}, shapes: [][]int{{3, 5, 7, 3}, {3, 5}, {3, 5, 7, 3}}, outputs: []int{1, 2},
		run: func(b backend.Backend, t []*tensor.Tensor) {
			b.GlobalAvgPoolForward(t[0], t[1])
			b.GlobalAvgPoolBackward(t[1], t[2])
		}})

	// The fused inference convolution (backend.ConvBNActer), against the
	// reference's ops in turn; a backend without it runs those ops.
	for ci, p := range convs[:4] {
		p := p
		np := p.Normalized()
		xs, ws, ys := p.N*p.C*p.H*p.W, p.K*(p.C/np.G())*p.R*p.S, p.N*p.K*np.P()*np.Q()
		for _, relu := range []bool{false, true} {
			relu := relu
			add(opCase{name: fmt.Sprintf("conv_bn_act/%d_relu%v", ci, relu), tol: 1e-5,
				data:    [][]float32{randn(r, xs), randn(r, ws), randn(r, p.K), randn(r, p.K), randn(r, p.K), uniform(r, p.K, 0.5, 2), randn(r, ys), randn(r, ys)},
				shapes:  [][]int{{p.N, p.C, p.H, p.W}, {p.K, p.C / np.G(), p.R, p.S}, {p.K}, {p.K}, {p.K}, {p.K}, {p.N, p.K, np.P(), np.Q()}, {p.N, p.K, np.P(), np.Q()}},
				outputs: []int{7},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					res := t[6]
					if ci%2 == 1 {
						res = nil
					}
					if f, ok := b.(backend.ConvBNActer); ok {
						f.ConvBNActForward(p, 1e-5, t[0], t[1], t[2], t[3], t[4], t[5], res, t[7], relu)
						return
					}
					b.Conv2dForward(p, t[0], t[1], t[7])
					bn := backend.BatchNormParams{N: p.N, C: p.K, L: np.P() * np.Q(), Eps: 1e-5}
					b.BatchNormForward(bn, t[7], t[2], t[3], t[4], t[5], t[7], nil, nil)
					if res != nil {
						b.Binary(backend.Add, t[7], res, t[7])
					}
					if relu {
						b.Unary(backend.Relu, t[7], t[7], 0, 0)
					}
				}})
		}
	}

	// Batch norm, training (with backward) and eval.
	for _, s := range [][3]int{{4, 3, 25}, {7, 5, 1}, {2, 33, 9}} {
		n, c, l := s[0], s[1], s[2]
		for _, training := range []bool{true, false} {
			p := backend.BatchNormParams{N: n, C: c, L: l, Training: training, Momentum: 0.1, Eps: 1e-5}
			x := randn(r, n*c*l)
			for i := range x {
				x[i] = 3*x[i] + 1.5
			}
			add(opCase{name: fmt.Sprintf("batchnorm/n%d_c%d_l%d_train%v", n, c, l, training), tol: 1e-5,
				data: [][]float32{x, randn(r, c), randn(r, c), randn(r, c), uniform(r, c, 0.5, 2), zeros(n * c * l), zeros(c), zeros(c),
					randn(r, n*c*l), zeros(n * c * l), randn(r, c), randn(r, c)},
				shapes:  [][]int{{n * c * l}, {c}, {c}, {c}, {c}, {n * c * l}, {c}, {c}, {n * c * l}, {n * c * l}, {c}, {c}},
				outputs: []int{3, 4, 5, 6, 7, 9, 10, 11},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					var sm, si *tensor.Tensor
					if training {
						sm, si = t[6], t[7]
					}
					b.BatchNormForward(p, t[0], t[1], t[2], t[3], t[4], t[5], sm, si)
					if training {
						b.BatchNormBackward(p, t[0], t[8], t[1], t[6], t[7], t[9], t[10], t[11])
					}
				}})
		}
	}

	// Elementwise, with lengths around vector widths and thread splits.
	for _, n := range []int{1, 7, 16, 33, 1000, 70001} {
		for op := backend.Copy; op < backend.NumUnaryOps; op++ {
			op := op
			x := randn(r, n)
			switch op {
			case backend.Log, backend.Sqrt, backend.Rsqrt, backend.PowScalar:
				x = uniform(r, n, 0.1, 4)
			}
			add(opCase{name: fmt.Sprintf("unary_%v/%d", op, n), tol: 1e-6,
				data: [][]float32{x, zeros(n)}, shapes: [][]int{{n}, {n}}, outputs: []int{1},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Unary(op, t[0], t[1], 0.75, 1.5) }})
		}
		for op := backend.Add; op < backend.NumBinaryOps; op++ {
			op := op
			z := randn(r, n)
			if op == backend.Div {
				z = uniform(r, n, 0.5, 2)
			}
			add(opCase{name: fmt.Sprintf("binary_%v/%d", op, n), tol: 1e-6,
				data: [][]float32{randn(r, n), z, zeros(n)}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Binary(op, t[0], t[1], t[2]) }})
		}
		add(opCase{name: fmt.Sprintf("axpy_fill/%d", n), tol: 1e-6,
			data: [][]float32{randn(r, n), randn(r, n), zeros(n)}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{1, 2},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.Axpy(-0.3, t[0], t[1])
				b.Fill(t[2], 2.5)
			}})
	}
	add(opCase{name: "binary_add/row_broadcast", tol: 1e-6,
		data: [][]float32{randn(r, 6*35), randn(r, 35), zeros(6 * 35)}, shapes: [][]int{{6, 35}, {35}, {6, 35}}, outputs: []int{2},
		run: func(b backend.Backend, t []*tensor.Tensor) { b.Binary(backend.Add, t[0], t[1], t[2]) }})
	add(opCase{name: "binary_mul/scalar_broadcast", tol: 1e-6,
		data: [][]float32{randn(r, 40001), randn(r, 1), zeros(40001)}, shapes: [][]int{{40001}, {1}, {40001}}, outputs: []int{2},
		run: func(b backend.Backend, t []*tensor.Tensor) { b.Binary(backend.Mul, t[0], t[1], t[2]) }})
	add(opCase{name: "non_finite/propagation", tol: 1e-6,
		data:   [][]float32{{1, float32(math.NaN()), float32(math.Inf(1)), -2, float32(math.Inf(-1))}, zeros(5), zeros(5)},
		shapes: [][]int{{5}, {5}, {5}}, outputs: []int{1, 2},
		run: func(b backend.Backend, t []*tensor.Tensor) {
			b.Unary(backend.Exp, t[0], t[1], 0, 0)
			b.Binary(backend.Mul, t[0], t[0], t[2])
		}})

	// Reductions along each axis position, with and without accumulation.
	for _, s := range [][3]int{{1, 100, 1}, {3, 7, 5}, {4, 1, 9}, {2, 300, 33}} {
		for op := backend.Sum; op < backend.NumReduceOps; op++ {
			for _, acc := range []bool{false, true} {
				p := backend.ReduceParams{Op: op, Outer: s[0], Len: s[1], Inner: s[2], Accumulate: acc}
				add(opCase{name: fmt.Sprintf("reduce_%v/%dx%dx%d_acc%v", op, s[0], s[1], s[2], acc), tol: 1e-6,
					data: [][]float32{randn(r, s[0]*s[1]*s[2]), randn(r, s[0]*s[2])}, shapes: [][]int{{s[0] * s[1] * s[2]}, {s[0] * s[2]}}, outputs: []int{1},
					run: func(b backend.Backend, t []*tensor.Tensor) { b.Reduce(p, t[0], t[1]) }})
			}
		}
	}

	// L2 normalisation, including a zero row (clamped norm).
	for _, s := range [][2]int{{1, 1}, {5, 3}, {17, 128}, {64, 37}} {
		n, d := s[0], s[1]
		x := randn(r, n*d)
		for j := 0; j < d; j++ {
			x[j] = 0
		}
		for _, acc := range []bool{false, true} {
			acc := acc
			add(opCase{name: fmt.Sprintf("l2normalize/%dx%d_acc%v", n, d, acc), tol: 1e-5,
				data: [][]float32{x, zeros(n * d), zeros(n), randn(r, n*d), randn(r, n*d)}, shapes: [][]int{{n, d}, {n, d}, {n}, {n, d}, {n, d}}, outputs: []int{1, 2, 4},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					b.L2NormalizeForward(1e-12, t[0], t[1], t[2])
					b.L2NormalizeBackward(t[1], t[2], t[3], t[4], acc)
				}})
		}
	}

	// The fused margin heads.
	for kind := backend.MarginSoftmax; kind < backend.NumMarginKinds; kind++ {
		for _, s := range [][2]int{{1, 2}, {9, 31}, {64, 1000}} {
			n, c := s[0], s[1]
			labels := make([]int32, n)
			for i := range labels {
				labels[i] = int32(r.IntN(c))
			}
			cosv := uniform(r, n*c, -1, 1)
			p := backend.MarginParams{Kind: kind, S: 16, M: 0.35, M1: 1, M2: 0.3, M3: 0.1, MP: 0.1, MN: 0.25, Lambda: 0, Eps: 1e-7}
			if kind == backend.MarginSphereFace {
				p.M, p.Lambda = 4, 5
			}
			add(opCase{name: fmt.Sprintf("margin_%v/%dx%d", kind, n, c), tol: 1e-5,
				data:   [][]float32{cosv, zeros(n), zeros(n * c), uniform(r, c, 0.2, 0.5), randn(r, c), randn(r, 1)},
				shapes: [][]int{{n, c}, {n}, {n, c}, {c}, {c}, {1}}, outputs: []int{1, 2, 4, 5},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					q := p
					q.N, q.C, q.ClassMargins = n, c, t[3]
					g := backend.MarginGrads{MP: t[5]}
					if kind == backend.MarginDMLClass {
						g.ClassMargins = t[4]
					}
					b.MarginSoftmaxCE(q, t[0], labels, t[1], t[2], g)
				}})
			if kind == backend.MarginDMLClass || kind == backend.MarginDMLFixed {
				// m_p read from the device: the same as MP = 0.1.
				add(opCase{name: fmt.Sprintf("margin_%v_mpfrom/%dx%d", kind, n, c), tol: 1e-5,
					data:   [][]float32{cosv, zeros(n), zeros(n * c), uniform(r, c, 0.2, 0.5), randn(r, c), randn(r, 1), {0.1}},
					shapes: [][]int{{n, c}, {n}, {n, c}, {c}, {c}, {1}, {1}}, outputs: []int{1, 2, 4, 5},
					run: func(b backend.Backend, t []*tensor.Tensor) {
						q := p
						q.N, q.C, q.ClassMargins, q.MP, q.MPFrom = n, c, t[3], 7, t[6]
						g := backend.MarginGrads{MP: t[5]}
						if kind == backend.MarginDMLClass {
							g.ClassMargins = t[4]
						}
						b.MarginSoftmaxCE(q, t[0], labels, t[1], t[2], g)
					}})
			}
		}
	}

	// dml/class's margin projection: m_p learned (inside, below and above
	// its range) or fixed (with room, and at its top: nothing moves).
	for _, c := range []struct {
		name    string
		mp      float32
		learned bool
		fixed   float64
	}{{"learned", 0.15, true, 0}, {"learned_low", -0.3, true, 0}, {"learned_high", 0.7, true, 0}, {"fixed", 0, false, 0.2}, {"fixed_top", 0, false, 0.45}} {
		for _, n := range []int{1, 37, 5000} {
			p := backend.ProjectParams{MP: c.fixed, MaxMP: float32(0.5 - 0.05 - 1e-6), MaxMargin: 0.5, Delta: 0.05, Gap: 1e-6}
			add(opCase{name: fmt.Sprintf("project_margins/%s/%d", c.name, n), tol: 1e-6,
				data: [][]float32{{c.mp}, uniform(r, n, -4, 2)}, shapes: [][]int{{1}, {n}}, outputs: []int{0, 1},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					var mp *tensor.Tensor
					if c.learned {
						mp = t[0]
					}
					b.ProjectMargins(p, mp, t[1])
				}})
		}
	}

	// Optimizers.
	for _, n := range []int{5, 40000} {
		for _, nest := range []bool{false, true} {
			p := backend.SGDParams{LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4, Nesterov: nest}
			add(opCase{name: fmt.Sprintf("sgd/%d_nesterov%v", n, nest), tol: 1e-6,
				data: [][]float32{randn(r, n), randn(r, n), randn(r, n)}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{0, 2},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					b.SGDStep(p, t[0], t[1], t[2])
					b.SGDStep(p, t[0], t[1], t[2])
				}})
		}
		add(opCase{name: fmt.Sprintf("adamw/%d", n), tol: 1e-5,
			data: [][]float32{randn(r, n), randn(r, n), zeros(n), zeros(n)}, shapes: [][]int{{n}, {n}, {n}, {n}}, outputs: []int{0, 2, 3},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				for step := 1; step <= 3; step++ {
					b.AdamWStep(backend.AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Step: step}, t[0], t[1], t[2], t[3])
				}
			}})
	}
	return append(cs, nonFiniteCases(convs[:4])...)
}

// runCase runs c on b and returns the outputs, or an error for a damaged sentinel.
func runCase(c opCase, b backend.Backend) ([][]float32, error) {
	bufs := make([]*Buf, len(c.data))
	ts := make([]*tensor.Tensor, len(c.data))
	for i := range c.data {
		bufs[i] = NewBuf(b, c.data[i], c.shapes[i]...)
		ts[i] = bufs[i].T
	}
	c.run(b, ts)
	if err := b.Synchronize(); err != nil {
		return nil, err
	}
	var outs [][]float32
	for i, bf := range bufs {
		d, err := bf.Host()
		if err != nil {
			return nil, fmt.Errorf("buffer %d: %w", i, err)
		}
		outs = append(outs, d)
	}
	for _, bf := range bufs {
		bf.Free()
	}
	return outs, nil
}

// TestConformance runs the whole table on every backend (and on the
// reference itself, for the sentinels) against the reference kernels.
func TestConformance(t *testing.T) {
	ref := cpu.NewReference()
	cs := cases()
	want := make([][][]float32, len(cs))
	for i, c := range cs {
		out, err := runCase(c, ref)
		if err != nil {
			t.Fatalf("%s on the reference: %v", c.name, err)
		}
		if c.expect != nil {
			if msg := c.expect(out); msg != "" {
				t.Errorf("%s on the reference: %s", c.name, msg)
			}
		}
		want[i] = out
	}
	ForEachBackend(t, func(t *testing.T, b backend.Backend) {
		levels := []string{"default"}
		if b.Name() == "cpu" {
			levels = nil
			for _, l := range cpu.Supported() {
				levels = append(levels, l.String())
			}
		}
		for _, lv := range levels {
			t.Run(lv, func(t *testing.T) {
				if b.Name() == "cpu" {
					l, _ := cpu.ParseLevel(lv)
					restore, err := cpu.SetLevel(l)
					if err != nil {
						t.Fatal(err)
					}
					defer restore()
				}
				failures := 0
				for i, c := range cs {
					got, err := runCase(c, b)
					if err != nil {
						t.Errorf("%s: %v", c.name, err)
						failures++
						continue
					}
					for _, o := range c.outputs {
						if msg := Compare(got[o], want[i][o], c.tol); msg != "" {
							t.Errorf("%s: output %d: %s", c.name, o, msg)
							failures++
						}
					}
					if c.expect != nil {
						if msg := c.expect(got); msg != "" {
							t.Errorf("%s: %s", c.name, msg)
							failures++
						}
					}
					if failures > 20 {
						t.Fatal("too many failures")
					}
				}
				t.Logf("%d op cases checked", len(cs))
			})
		}
	})
}

// TestSizeSweep runs the length-dependent ops over every size 1..200 on
// every backend against the reference: tails of any vector width or split.
func TestSizeSweep(t *testing.T) {
	ref := cpu.NewReference()
	r := rand.New(rand.NewPCG(3, 4))
	ForEachBackend(t, func(t *testing.T, b backend.Backend) {
		for n := 1; n <= 200; n++ {
			x, z, y0 := randn(r, n), randn(r, n), randn(r, n)
			var cs []opCase
			for _, op := range []backend.BinaryOp{backend.Add, backend.Mul, backend.ReluBackward} {
				op := op
				cs = append(cs, opCase{name: fmt.Sprintf("binary_%v/%d", op, n), tol: 1e-6, data: [][]float32{x, z, y0}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{2},
					run: func(b backend.Backend, t []*tensor.Tensor) { b.Binary(op, t[0], t[1], t[2]) }})
			}
			for _, op := range []backend.UnaryOp{backend.Relu, backend.Scale, backend.Copy} {
				op := op
				cs = append(cs, opCase{name: fmt.Sprintf("unary_%v/%d", op, n), tol: 1e-6, data: [][]float32{x, y0}, shapes: [][]int{{n}, {n}}, outputs: []int{1},
					run: func(b backend.Backend, t []*tensor.Tensor) { b.Unary(op, t[0], t[1], -1.5, 0) }})
			}
			cs = append(cs, opCase{name: fmt.Sprintf("axpy/%d", n), tol: 1e-6, data: [][]float32{x, y0}, shapes: [][]int{{n}, {n}}, outputs: []int{1},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Axpy(0.7, t[0], t[1]) }})
			cs = append(cs, opCase{name: fmt.Sprintf("l2/%d", n), tol: 1e-5, data: [][]float32{x, y0, zeros(1)}, shapes: [][]int{{1, n}, {1, n}, {1}}, outputs: []int{1, 2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.L2NormalizeForward(1e-12, t[0], t[1], t[2]) }})
			cs = append(cs, opCase{name: fmt.Sprintf("sgd/%d", n), tol: 1e-6, data: [][]float32{x, z, y0}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{0, 2},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					b.SGDStep(backend.SGDParams{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3, Nesterov: true}, t[0], t[1], t[2])
				}})
			for _, c := range cs {
				want, err := runCase(c, ref)
				if err != nil {
					t.Fatal(err)
				}
				got, err := runCase(c, b)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				for _, o := range c.outputs {
					if msg := Compare(got[o], want[o], c.tol); msg != "" {
						t.Fatalf("%s: output %d: %s", c.name, o, msg)
					}
				}
			}
		}
	})
}

// TestConvRandomShapes runs convolutions of random shapes (padding up to the
// filter size, strides, dilations, groups, planes smaller than the filter's
// reach) on every backend against the reference, all three passes.
func TestConvRandomShapes(t *testing.T) {
	ref := cpu.NewReference()
	r := rand.New(rand.NewPCG(7, 7))
	var cs []opCase
	for len(cs) < 3*150 {
		g := 1 + r.IntN(2)
		p := backend.Conv2dParams{N: 1 + r.IntN(3), C: g * (1 + r.IntN(4)), H: 1 + r.IntN(12), W: 1 + r.IntN(12),
			K: g * (1 + r.IntN(4)), R: 1 + r.IntN(5), S: 1 + r.IntN(5), StrideH: 1 + r.IntN(3), StrideW: 1 + r.IntN(3),
			DilH: 1 + r.IntN(2), DilW: 1 + r.IntN(2), Groups: g}
		p.PadH, p.PadW = r.IntN(p.R), r.IntN(p.S)
		if p.P() < 1 || p.Q() < 1 {
			continue
		}
		xs, ws, ys := p.N*p.C*p.H*p.W, p.K*(p.C/g)*p.R*p.S, p.N*p.K*p.P()*p.Q()
		tag := fmt.Sprintf("%+v", p)
		cs = append(cs,
			opCase{name: "conv_fwd/" + tag, tol: 1e-5, data: [][]float32{randn(r, xs), randn(r, ws), randn(r, ys)}, shapes: [][]int{{xs}, {ws}, {ys}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dForward(p, t[0], t[1], t[2]) }},
			opCase{name: "conv_bwd_data/" + tag, tol: 1e-5, data: [][]float32{randn(r, ys), randn(r, ws), randn(r, xs)}, shapes: [][]int{{ys}, {ws}, {xs}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardData(p, t[0], t[1], t[2]) }},
			opCase{name: "conv_bwd_filter/" + tag, tol: 1e-5, data: [][]float32{randn(r, xs), randn(r, ys), randn(r, ws)}, shapes: [][]int{{xs}, {ys}, {ws}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardFilter(p, t[0], t[1], t[2]) }})
	}
	ForEachBackend(t, func(t *testing.T, b backend.Backend) {
		for _, c := range cs {
			want, err := runCase(c, ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runCase(c, b)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if msg := Compare(got[2], want[2], c.tol); msg != "" {
				t.Fatalf("%s: %s", c.name, msg)
			}
		}
	})
}
