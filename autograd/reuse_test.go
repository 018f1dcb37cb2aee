package autograd

import (
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/tensor"
)

// everyOp is a training step through every op of the package: a small
// network of convolution, batch norm, pooling, elementwise ops, reshapes,
// dropout and L2 normalisation into a dml/class margin head, with the
// loss's value read back, and gradients of all leaves.
type everyOp struct {
	x, w1, gamma, beta, w2, bias, head, margins, mp *Var
	runMean, runVar                                 *tensor.Tensor
	labels                                          []int32
	rng                                             *rand.Rand
}

func newEveryOp() *everyOp {
	leaf := func(t *tensor.Tensor) *Var { return NewVar(t, true) }
	return &everyOp{
		x:       NewVar(tensor.RandNormal(1, 0, 1, 4, 3, 8, 8), false),
		w1:      leaf(tensor.RandNormal(2, 0, 0.3, 6, 3, 3, 3)),
		gamma:   leaf(tensor.Full(1, 6)),
		beta:    leaf(tensor.Zeros(6)),
		w2:      leaf(tensor.RandNormal(3, 0, 0.3, 5, 6)),
		bias:    leaf(tensor.RandNormal(4, 0, 0.1, 5)),
		head:    leaf(tensor.RandNormal(5, 0, 1, 7, 5)),
		margins: leaf(tensor.Full(0.2, 7)),
		mp:      leaf(tensor.Full(0.1, 1)),
		runMean: tensor.Zeros(6),
		runVar:  tensor.Full(1, 6),
		labels:  []int32{0, 3, 6, 3},
		rng:     rand.New(rand.NewPCG(7, 7)),
	}
}

// step runs forward and backward on g and returns the loss; the caller
// reads the gradients before g.Reset.
func (m *everyOp) step(g *Graph) float32 {
	for _, v := range []*Var{m.w1, m.gamma, m.beta, m.w2, m.bias, m.head, m.margins, m.mp} {
		v.ZeroGrad()
	}
	h := g.Conv2d(m.x, m.w1, Conv2dOpts{Stride: 1, Padding: 1})
	h = g.BatchNorm(h, m.gamma, m.beta, m.runMean, m.runVar, BatchNormOpts{Training: true, Momentum: 0.1, Eps: 1e-5})
	h = g.Relu(h)
	h = g.Add(g.MaxPool2d(h, PoolOpts{Kernel: 2}), g.AvgPool2d(h, PoolOpts{Kernel: 2}))
	h = g.Clamp(g.Softplus(h), 0, 3)
	h = g.Dropout(h, 0.25, true, m.rng)
	f := g.Flatten(g.GlobalAvgPool(g.Mul(h, g.Affine(h, 0.5, 1))))
	e := g.L2Normalize(g.Linear(f, m.w2, m.bias), 1e-6)
	e = g.AddScalarVar(e, g.Reshape(g.Mean(m.mp), 1))
	cos := g.MatMul(e, g.L2Normalize(m.head, 1e-6), false, true)
	p := backend.MarginParams{Kind: backend.MarginDMLClass, S: 8, MN: 0.2, Eps: 1e-6}
	loss := g.MarginCE(cos, m.labels, p, m.margins, m.mp)
	l := g.Item(loss)
	g.Backward(g.Add(loss, g.Sum(g.Mul(m.mp, m.mp))))
	return l
}

// grads downloads the leaves' gradients.
func (m *everyOp) grads(g *Graph) [][]float32 {
	var out [][]float32
	for _, v := range []*Var{m.w1, m.gamma, m.beta, m.w2, m.bias, m.head, m.margins, m.mp} {
		out = append(out, g.Values(&Var{Value: g.GradOrZero(v)}))
	}
	return out
}

// TestGraphReuse: a graph that is Reset and used again (its Vars, tensor
// headers and tape entries recycled) gives bit for bit what a new graph
// gives, step after step.
func TestGraphReuse(t *testing.T) {
	b := cpu.New(2)
	reused, fresh := newEveryOp(), newEveryOp()
	g := New(b)
	for step := range 4 {
		l1 := reused.step(g)
		g1 := reused.grads(g)
		g.Reset()
		gf := New(b)
		l2 := fresh.step(gf)
		g2 := fresh.grads(gf)
		gf.Reset()
		if l1 != l2 {
			t.Fatalf("step %d: loss %v on the reused graph, %v on a new one", step, l1, l2)
		}
		for i := range g1 {
			for j := range g1[i] {
				if g1[i][j] != g2[i][j] {
					t.Fatalf("step %d: gradient %d[%d] %v on the reused graph, %v on a new one", step, i, j, g1[i][j], g2[i][j])
				}
			}
		}
	}
}

// TestStepAllocatesNothing: once warm, a step through every op on a graph
// that is Reset after each step allocates nothing on the Go heap (nor new
// tensor storage: the backend's pool serves it).
func TestStepAllocatesNothing(t *testing.T) {
	b := cpu.New(2)
	m := newEveryOp()
	g := New(b)
	step := func() {
		m.step(g)
		g.Reset()
	}
	for range 3 {
		step()
	}
	if n := allocs.PerRun(3, 5, step); n != 0 {
		t.Errorf("a warm step allocates %v objects, want 0", n)
	}
}

// TestResetClearsRecycledVars: Vars and values the graph made are cleared
// at Reset, so a stale one is not silently a live value.
func TestResetClearsRecycledVars(t *testing.T) {
	g := New(cpu.New(1))
	x := NewVar(tensor.FromSlice([]float32{1, -2, 3}, 3), true)
	y := g.Relu(x)
	v := y.Value
	g.Reset()
	if y.Value != nil || y.Grad != nil || y.RequiresGrad {
		t.Fatalf("a graph-made Var survives Reset: %+v", y)
	}
	if v.Storage() != nil {
		t.Fatal("a graph-made tensor header still points at storage after Reset")
	}
	if x.Value == nil {
		t.Fatal("Reset cleared a leaf")
	}
}
