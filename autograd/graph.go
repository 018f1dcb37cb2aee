// Package autograd is dmlgo's define-by-run reverse-mode differentiation.
//
// A Graph records each op as it runs (the tape). Backward on a scalar walks
// the tape in reverse and calls each op's gradient rule. Rules are written
// with backend ops only, so they run on every backend; all of them live in
// ops.go, each next to its forward.
//
// Memory: every value and gradient the graph allocates comes from the
// backend and goes back to it on Reset, so a training loop that calls Reset
// once per step reaches a steady state without new allocations: not of
// tensor storage, and not on the Go heap either, because the graph also
// keeps its Vars, tensor headers (tensor.Headers) and tape entries and
// hands them out again after Reset. So variables made by the graph, and
// the tensors they hold, must not be used after Reset (they will be other
// variables by then); leaves (parameters, inputs) are owned by the caller
// and survive it.
//
// The tape holds plain structs (node): each op's gradient rule is a
// function of the graph and its node, not a closure, so that recording an
// op allocates nothing.
//
// Gradients accumulate (+=). A contribution is written straight into a
// gradient that has not been written yet this step and added to it
// otherwise, so the common single-consumer case costs no extra pass.
package autograd

import (
	"fmt"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Var is a node of the graph: a value, and the gradient of the loss with
// respect to it when RequiresGrad is set.
type Var struct {
	Value        *tensor.Tensor
	Grad         *tensor.Tensor
	RequiresGrad bool
	// Name labels parameters in messages.
	Name string

	gradWritten bool // Grad holds a contribution from this backward pass
	lent        bool // Grad was handed on as another Var's gradient (passGrad)
	// imageMax, when it has one value per image, is each image's largest
	// value, no value being below 0, as the backend reported it when it
	// wrote Value (ConvBNAct through backend.ConvBNActRanger); the
	// convolutions that read Value take it from here. Its storage stays
	// with the Var when the graph reuses it.
	imageMax []float32
}

// NewVar wraps a tensor (owned by the caller) as a leaf.
func NewVar(t *tensor.Tensor, requiresGrad bool) *Var {
	return &Var{Value: t, RequiresGrad: requiresGrad}
}

// Shape is the value's shape.
func (v *Var) Shape() []int { return v.Value.Shape() }

// ZeroGrad marks the gradient as empty: the next contribution overwrites it.
// (Nothing is written now; a caller reading Grad before any contribution
// should use Graph.GradOrZero.)
func (v *Var) ZeroGrad() { v.gradWritten = false }

// HasGrad reports whether the gradient received a contribution since the
// last ZeroGrad.
func (v *Var) HasGrad() bool { return v.gradWritten }

// node is a tape entry: an op's output, inputs and what its gradient rule
// needs, and the rule. Fields are shared between ops as each op's rule
// says; rule is a plain function (never a closure).
type node struct {
	name  string
	rule  func(g *Graph, n *node)
	y     *Var
	in    [3]*Var
	saved [3]*tensor.Tensor // tensors kept from the forward pass
	dims  [3]int
	flags [2]bool
	f     float32
	conv  backend.Conv2dParams
	pool  backend.Pool2dParams
	bn    backend.BatchNormParams
	red   backend.ReduceOp
}

// Graph is a tape over one backend. It is not safe for concurrent use.
type Graph struct {
	B      backend.Backend
	tape   []node
	noGrad int
	owned  []tensor.Storage
	// vars holds every Var the graph made; the first nvars are in use.
	vars  []*Var
	nvars int
	hdrs  tensor.Headers
	// gradded lists the Vars whose Grad the graph allocated; Reset drops
	// those gradients (a leaf's included: read it before Reset).
	gradded []*Var
	host    []float32 // host scratch (Dropout's mask)
	item    [1]float32
}

// New returns an empty graph on backend b.
func New(b backend.Backend) *Graph { return &Graph{B: b} }

// NoGrad runs f without recording: values only, as for inference.
func (g *Graph) NoGrad(f func()) {
	g.noGrad++
	defer func() { g.noGrad-- }()
	f()
}

// Recording reports whether ops are being recorded.
func (g *Graph) Recording() bool { return g.noGrad == 0 }

// Tensor allocates a zeroed tensor owned by the graph (freed on Reset).
func (g *Graph) Tensor(shape ...int) *tensor.Tensor {
	s := g.B.Alloc(tensor.Numel(shape))
	g.owned = append(g.owned, s)
	return g.hdrs.New(s, 0, shape...)
}

// tensorUninit is Tensor without the clearing where the backend allows it,
// for values an op overwrites whole.
func (g *Graph) tensorUninit(shape ...int) *tensor.Tensor {
	s := g.allocUninit(tensor.Numel(shape))
	return g.hdrs.New(s, 0, shape...)
}

// tensorLike is tensorUninit with the shape of like.
func (g *Graph) tensorLike(like *tensor.Tensor) *tensor.Tensor {
	return g.hdrs.NewLike(g.allocUninit(like.Numel()), 0, like)
}

// allocUninit is graph-owned storage, uncleared where the backend allows.
func (g *Graph) allocUninit(n int) tensor.Storage {
	var s tensor.Storage
	if u, ok := g.B.(backend.UninitAllocator); ok {
		s = u.AllocUninit(n)
	} else {
		s = g.B.Alloc(n)
	}
	g.owned = append(g.owned, s)
	return s
}

// Release gives v's storage back to the backend now, rather than at
// Reset, when ops are not being recorded (NoGrad) and the graph owns it;
// it does nothing otherwise. Neither v nor any view of its value may be
// read afterwards. Inference calls it on activations it is done with, so
// that the next layer's output lands in a buffer still in cache.
func (g *Graph) Release(v *Var) {
	if g.noGrad == 0 || v == nil || v.Value == nil {
		return
	}
	s := v.Value.Storage()
	for i := len(g.owned) - 1; i >= 0; i-- {
		if g.owned[i] == s {
			g.B.Free(s)
			last := len(g.owned) - 1
			g.owned[i] = g.owned[last]
			g.owned[last] = nil
			g.owned = g.owned[:last]
			v.Value = nil
			return
		}
	}
}

// Upload copies host data into a new graph-owned tensor.
func (g *Graph) Upload(data []float32, shape ...int) *tensor.Tensor {
	t := g.tensorUninit(shape...) // (the upload writes every element)
	g.B.Upload(t, data)
	return t
}

// Constant wraps a graph-owned copy of host data as a Var without gradient.
func (g *Graph) Constant(data []float32, shape ...int) *Var {
	return g.varOf(g.Upload(data, shape...))
}

// varOf returns a graph-made Var holding value, without gradient.
func (g *Graph) varOf(value *tensor.Tensor) *Var {
	if g.nvars == len(g.vars) {
		g.vars = append(g.vars, new(Var))
	}
	v := g.vars[g.nvars]
	g.nvars++
	*v = Var{Value: value, imageMax: v.imageMax[:0]}
	return v
}

// newVar makes an output Var with a fresh value; it needs a gradient when
// recording and any input needs one.
func (g *Graph) newVar(shape []int, inputs ...*Var) *Var {
	return g.addVar(g.varOf(g.tensorUninit(shape...)), inputs)
}

// newVarLike is newVar with the shape of like.
func (g *Graph) newVarLike(like *tensor.Tensor, inputs ...*Var) *Var {
	return g.addVar(g.varOf(g.tensorLike(like)), inputs)
}

// addVar sets whether v needs a gradient.
func (g *Graph) addVar(v *Var, inputs []*Var) *Var {
	if g.noGrad == 0 {
		for _, in := range inputs {
			if in != nil && in.RequiresGrad {
				v.RequiresGrad = true
				break
			}
		}
	}
	return v
}

// record appends n, the gradient rule of n.y, when n.y needs a gradient.
func (g *Graph) record(n node) {
	if n.y.RequiresGrad {
		g.tape = append(g.tape, n)
	}
}

// Backward computes d(loss)/d(v) for every v that needs it. loss must hold
// a single element; its gradient is seeded with 1.
func (g *Graph) Backward(loss *Var) {
	if loss.Value.Numel() != 1 {
		panic(fmt.Sprintf("autograd: Backward of a non-scalar %s", tensor.ShapeString(loss.Shape())))
	}
	if !loss.RequiresGrad {
		panic("autograd: Backward of a value that does not depend on any parameter")
	}
	dst := g.gradTarget(loss)
	g.B.Fill(dst, 1)
	g.gradDone(loss, dst)
	for i := len(g.tape) - 1; i >= 0; i-- {
		n := &g.tape[i]
		n.rule(g, n)
	}
	g.clearTape()
}

// clearTape empties the tape, dropping its references.
func (g *Graph) clearTape() {
	clear(g.tape)
	g.tape = g.tape[:0]
}

// Reset frees every tensor the graph allocated and forgets the tape.
// Leaves keep their values, and gradients that the graph did not allocate
// (parameters bound to an nn.ParamSet); a gradient the graph allocated for
// a leaf is dropped (Grad becomes nil), so read it before Reset.
func (g *Graph) Reset() {
	for _, s := range g.owned {
		g.B.Free(s)
	}
	clear(g.owned)
	g.owned = g.owned[:0]
	for _, v := range g.gradded {
		v.Grad, v.gradWritten = nil, false
	}
	clear(g.gradded)
	g.gradded = g.gradded[:0]
	for _, v := range g.vars[:g.nvars] {
		*v = Var{}
	}
	g.nvars = 0
	g.hdrs.Reset()
	g.clearTape()
}

// allocGrad gives v a gradient owned by the graph, not cleared: the first
// contribution overwrites it (gradTarget, betaFor) or gradAccum zeroes it.
func (g *Graph) allocGrad(v *Var) {
	v.Grad = g.tensorLike(v.Value)
	g.gradded = append(g.gradded, v)
}

// gradTarget returns where a gradient contribution to v goes, to
// pass to gradDone once it is written: v.Grad itself for the first
// contribution, else a temporary that gradDone adds into v.Grad.
func (g *Graph) gradTarget(v *Var) *tensor.Tensor {
	if v.Grad == nil {
		g.allocGrad(v)
	}
	if !v.gradWritten {
		return v.Grad
	}
	return g.tensorLike(v.Value)
}

// gradDone completes a contribution written to dst = gradTarget(v).
func (g *Graph) gradDone(v *Var, dst *tensor.Tensor) {
	if dst == v.Grad {
		v.gradWritten = true
		return
	}
	g.B.Axpy(1, dst, v.Grad)
}

// gradAccum returns v.Grad ready for an op that adds into it (+=), zeroed
// when nothing was written yet this pass.
func (g *Graph) gradAccum(v *Var) *tensor.Tensor {
	if v.Grad == nil {
		g.allocGrad(v)
	}
	if !v.gradWritten {
		g.B.Fill(v.Grad, 0)
	}
	v.gradWritten = true
	return v.Grad
}

// GradOrZero returns v's gradient, zeroed if nothing was written this pass.
func (g *Graph) GradOrZero(v *Var) *tensor.Tensor { return g.gradAccum(v) }

// Item downloads a single-element value.
func (g *Graph) Item(v *Var) float32 {
	if v.Value.Numel() != 1 {
		panic(fmt.Sprintf("autograd: Item of %s", tensor.ShapeString(v.Shape())))
	}
	g.B.Download(g.item[:], v.Value)
	return g.item[0]
}

// Values downloads a value to a new host slice.
func (g *Graph) Values(v *Var) []float32 {
	out := make([]float32, v.Value.Numel())
	g.B.Download(out, v.Value)
	return out
}
