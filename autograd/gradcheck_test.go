package autograd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// Gradient checks: every op's backward against central finite differences.
// The loss is L = Σ r_i·y_i with fixed random weights r, evaluated on the
// reference backend (float64 accumulation inside each kernel) and summed in
// float64. Points at kinks (ReLU at 0, max-pool ties, clamp bounds) are
// detected by comparing differences with steps h and h/2 and skipped; at
// most maxProbe elements of each input are probed.

const maxProbe = 40

type gcInput struct {
	data  []float32
	shape []int
}

func gradCheck(t *testing.T, name string, inputs []gcInput, f func(g *Graph, in []*Var) *Var) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		b := cpu.NewReference()
		rng := rand.New(rand.NewPCG(99, 1))
		var weights []float32
		loss := func(vals [][]float32, withGrad bool) (float64, [][]float32) {
			g := New(b)
			defer g.Reset()
			vars := make([]*Var, len(vals))
			for i, v := range vals {
				vars[i] = NewVar(g.Upload(v, inputs[i].shape...), withGrad)
			}
			y := f(g, vars)
			n := y.Value.Numel()
			if weights == nil {
				weights = make([]float32, n)
				for i := range weights {
					weights[i] = float32(rng.NormFloat64())
				}
			}
			yv := g.Values(y)
			var l float64
			for i, v := range yv {
				l += float64(v) * float64(weights[i])
			}
			if !withGrad {
				return l, nil
			}
			r := g.Constant(weights, y.Value.Shape()...)
			g.Backward(g.Sum(g.Mul(y, r)))
			grads := make([][]float32, len(vars))
			for i, v := range vars {
				grads[i] = make([]float32, v.Value.Numel())
				if v.HasGrad() {
					b.Download(grads[i], v.Grad)
				}
			}
			return l, grads
		}
		vals := make([][]float32, len(inputs))
		for i, in := range inputs {
			vals[i] = append([]float32(nil), in.data...)
		}
		_, grads := loss(vals, true)
		probed, skipped := 0, 0
		for i := range inputs {
			n := len(vals[i])
			idx := rng.Perm(n)
			if len(idx) > maxProbe {
				idx = idx[:maxProbe]
			}
			for _, j := range idx {
				fd := func(h float32) float64 {
					orig := vals[i][j]
					vals[i][j] = orig + h
					lp, _ := loss(vals, false)
					vals[i][j] = orig - h
					lm, _ := loss(vals, false)
					vals[i][j] = orig
					// the step actually taken in float32
					return (lp - lm) / (float64(orig+h) - float64(orig-h))
				}
				scale := math.Max(1, math.Abs(float64(vals[i][j])))
				h := float32(1e-2 * scale)
				d1, d2 := fd(h), fd(h/2)
				if math.Abs(d1-d2) > 2e-2*math.Max(1, math.Abs(d2)) {
					skipped++ // a kink between x−h and x+h
					continue
				}
				a := float64(grads[i][j])
				if math.Abs(a-d2) > 2e-2*math.Max(1, math.Abs(d2)) {
					t.Errorf("input %d element %d: analytic %.6g, finite difference %.6g (h %.3g: %.6g)", i, j, a, d2, h, d1)
				}
				probed++
			}
		}
		if probed == 0 || skipped > probed {
			t.Errorf("probed %d elements, skipped %d as kinks: the check says too little", probed, skipped)
		}
	})
}

func rnd(seed uint64, shape ...int) gcInput {
	return gcInput{data: tensor.RandNormal(seed, 0, 1, shape...).HostData(), shape: shape}
}

func TestGradMatMulLinear(t *testing.T) {
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		m, k, n := 3, 5, 4
		as, bs := []int{m, k}, []int{k, n}
		if tr[0] {
			as = []int{k, m}
		}
		if tr[1] {
			bs = []int{n, k}
		}
		gradCheck(t, fmt.Sprintf("matmul_ta%v_tb%v", tr[0], tr[1]), []gcInput{rnd(1, as...), rnd(2, bs...)}, func(g *Graph, in []*Var) *Var {
			return g.MatMul(in[0], in[1], tr[0], tr[1])
		})
	}
	gradCheck(t, "linear", []gcInput{rnd(3, 6, 7), rnd(4, 5, 7), rnd(5, 5)}, func(g *Graph, in []*Var) *Var {
		return g.Linear(in[0], in[1], in[2])
	})
	// x used twice: gradients must accumulate.
	gradCheck(t, "matmul_shared_input", []gcInput{rnd(6, 4, 4)}, func(g *Graph, in []*Var) *Var {
		return g.MatMul(in[0], in[0], false, true)
	})
}

func TestGradElementwise(t *testing.T) {
	gradCheck(t, "add_mul", []gcInput{rnd(1, 3, 5), rnd(2, 3, 5)}, func(g *Graph, in []*Var) *Var {
		return g.Mul(g.Add(in[0], in[1]), in[0])
	})
	gradCheck(t, "add_scalar_var_affine", []gcInput{rnd(3, 7), rnd(4, 1)}, func(g *Graph, in []*Var) *Var {
		return g.Affine(g.AddScalarVar(in[0], in[1]), -1.5, 0.25)
	})
	gradCheck(t, "relu", []gcInput{rnd(5, 4, 9)}, func(g *Graph, in []*Var) *Var { return g.Relu(in[0]) })
	gradCheck(t, "softplus", []gcInput{rnd(6, 11)}, func(g *Graph, in []*Var) *Var { return g.Softplus(in[0]) })
	gradCheck(t, "clamp", []gcInput{rnd(7, 30)}, func(g *Graph, in []*Var) *Var { return g.Clamp(in[0], -0.5, 0.7) })
	gradCheck(t, "sum_mean_reshape", []gcInput{rnd(8, 2, 3, 4)}, func(g *Graph, in []*Var) *Var {
		r := g.Reshape(in[0], 6, 4)
		return g.Add(g.Sum(r), g.Mean(g.Mul(r, r)))
	})
	gradCheck(t, "add_row", []gcInput{rnd(9, 5, 2, 3), rnd(10, 6)}, func(g *Graph, in []*Var) *Var {
		return g.AddRow(in[0], in[1])
	})
	gradCheck(t, "dropout", []gcInput{rnd(11, 50)}, func(g *Graph, in []*Var) *Var {
		return g.Dropout(in[0], 0.3, true, rand.New(rand.NewPCG(5, 5)))
	})
	gradCheck(t, "l2normalize", []gcInput{rnd(12, 4, 6)}, func(g *Graph, in []*Var) *Var {
		return g.L2Normalize(in[0], 1e-12)
	})
	// Gradient buffers handed on by passGrad (Add, AddRow, Reshape) must
	// not be shared by two Vars that later receive more contributions.
	gradCheck(t, "add_self", []gcInput{rnd(14, 4, 3)}, func(g *Graph, in []*Var) *Var {
		return g.Mul(g.Add(in[0], in[0]), in[0])
	})
	gradCheck(t, "residual_chain", []gcInput{rnd(15, 2, 9), rnd(16, 9)}, func(g *Graph, in []*Var) *Var {
		h := g.Relu(in[0])
		y := g.AddRow(g.Add(h, in[0]), in[1])
		r := g.Reshape(y, 3, 6)
		return g.Add(g.Mul(r, r), g.Reshape(g.Add(y, h), 3, 6))
	})
	gradCheck(t, "l2normalize_twice_used", []gcInput{rnd(13, 3, 5)}, func(g *Graph, in []*Var) *Var {
		y := g.L2Normalize(in[0], 1e-12)
		return g.Add(y, g.L2Normalize(g.Affine(in[0], 2, 0.5), 1e-12))
	})
}

func TestGradConvPool(t *testing.T) {
	convs := []struct {
		x, w []int
		o    Conv2dOpts
	}{
		{[]int{2, 3, 5, 6}, []int{4, 3, 3, 3}, Conv2dOpts{Stride: 1, Padding: 1}},
		{[]int{1, 2, 7, 5}, []int{3, 2, 3, 3}, Conv2dOpts{Stride: 2, Padding: 1}},
		{[]int{2, 4, 4, 4}, []int{5, 4, 1, 1}, Conv2dOpts{}},
		{[]int{1, 4, 7, 7}, []int{4, 2, 3, 3}, Conv2dOpts{Stride: 1, Padding: 2, Dilation: 2, Groups: 2}},
	}
	for i, c := range convs {
		gradCheck(t, fmt.Sprintf("conv2d_%d", i), []gcInput{rnd(uint64(20+i), c.x...), rnd(uint64(30+i), c.w...)}, func(g *Graph, in []*Var) *Var {
			return g.Conv2d(in[0], in[1], c.o)
		})
	}
	gradCheck(t, "maxpool2d", []gcInput{rnd(40, 2, 3, 7, 6)}, func(g *Graph, in []*Var) *Var {
		return g.MaxPool2d(in[0], PoolOpts{Kernel: 3, Stride: 2, Padding: 1})
	})
	gradCheck(t, "avgpool2d", []gcInput{rnd(41, 2, 2, 6, 5)}, func(g *Graph, in []*Var) *Var {
		return g.AvgPool2d(in[0], PoolOpts{Kernel: 2, Stride: 1, Padding: 1})
	})
	gradCheck(t, "global_avgpool_flatten", []gcInput{rnd(42, 3, 4, 3, 5)}, func(g *Graph, in []*Var) *Var {
		return g.Flatten(g.GlobalAvgPool(in[0]))
	})
}

func TestGradBatchNorm(t *testing.T) {
	for _, shape := range [][]int{{4, 3, 3, 5}, {6, 7}} {
		c := shape[1]
		gradCheck(t, fmt.Sprintf("batchnorm_%v", shape), []gcInput{rnd(50, shape...), rnd(51, c), rnd(52, c)}, func(g *Graph, in []*Var) *Var {
			rm, rv := tensor.Zeros(c), tensor.Full(1, c)
			return g.BatchNorm(in[0], in[1], in[2], rm, rv, BatchNormOpts{Training: true, Momentum: 0.1, Eps: 1e-5})
		})
	}
}

func TestGradMarginCE(t *testing.T) {
	labels := []int32{2, 0, 4, 4, 1}
	for kind := backend.MarginSoftmax; kind < backend.NumMarginKinds; kind++ {
		p := backend.MarginParams{Kind: kind, S: 8, M: 0.3, M1: 1.1, M2: 0.2, M3: 0.05, MP: 0.1, MN: 0.2, Eps: 1e-6}
		if kind == backend.MarginSphereFace {
			p.M, p.Lambda = 3, 2
		}
		in := []gcInput{{data: tensor.RandUniform(60, -0.9, 0.9, 5, 6).HostData(), shape: []int{5, 6}}}
		if kind == backend.MarginDMLClass {
			in = append(in, gcInput{data: tensor.RandUniform(61, 0.1, 0.4, 6).HostData(), shape: []int{6}}, gcInput{data: []float32{0.15}, shape: []int{1}})
		}
		gradCheck(t, "margin_"+kind.String(), in, func(g *Graph, v []*Var) *Var {
			if kind == backend.MarginDMLClass {
				return g.MarginCE(v[0], labels, p, v[1], v[2])
			}
			return g.MarginCE(v[0], labels, p, nil, nil)
		})
	}
}

func TestShapeErrorsNameOpAndShapes(t *testing.T) {
	g := New(cpu.NewReference())
	a := NewVar(tensor.Zeros(2, 3), true)
	b := NewVar(tensor.Zeros(4, 5), true)
	msg := func(f func()) (s string) {
		defer func() { s = fmt.Sprint(recover()) }()
		f()
		return ""
	}
	cases := []struct {
		f    func()
		want []string
	}{
		{func() { g.MatMul(a, b, false, false) }, []string{"matmul", "(2, 3)", "(4, 5)"}},
		{func() { g.Add(a, b) }, []string{"add", "(2, 3)", "(4, 5)"}},
		{func() {
			g.Conv2d(NewVar(tensor.Zeros(1, 3, 8, 8), false), NewVar(tensor.Zeros(4, 2, 3, 3), true), Conv2dOpts{})
		}, []string{"conv2d", "(1, 3, 8, 8)", "(4, 2, 3, 3)"}},
	}
	for _, c := range cases {
		m := msg(c.f)
		for _, w := range c.want {
			if !contains(m, w) {
				t.Errorf("panic %q does not mention %q", m, w)
			}
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestResetDropsGraphGradsOfLeaves: a leaf's gradient allocated by the graph
// goes back to the pool on Reset, so the leaf must not keep pointing at it
// (the pool hands that storage to the next tensor).
func TestResetDropsGraphGradsOfLeaves(t *testing.T) {
	b := cpu.New(1)
	g := New(b)
	x := NewVar(tensor.FromSlice([]float32{1, 2, 3}, 3), true)
	g.Backward(g.Sum(g.Mul(x, x)))
	if got := g.Values(&Var{Value: x.Grad}); got[2] != 6 {
		t.Fatalf("grad %v", got)
	}
	g.Reset()
	if x.Grad != nil || x.HasGrad() {
		t.Fatal("the leaf still holds a gradient the graph freed")
	}
	other := g.Tensor(3)
	b.Fill(other, 7)
	g.Backward(g.Sum(g.Mul(x, x)))
	if v := g.Values(&Var{Value: other}); v[0] != 7 || v[1] != 7 || v[2] != 7 {
		t.Fatalf("an unrelated tensor was overwritten by a gradient: %v", v)
	}
}
