package autograd

// Every differentiable op: the forward, then its gradient rule. Shapes use
// the legend of package backend (N batch, C/K channels in/out, H×W input
// plane, P×Q output plane, R×S filter, D embedding size).

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

func opPanic(op string, format string, args ...any) {
	panic(fmt.Sprintf("autograd: %s: "+format, append([]any{op}, args...)...))
}

// shapeOf writes a variable's shape for error messages: "(2, 3)".
func shapeOf(v *Var) string { return tensor.ShapeString(v.Value.Shape()) }

// MatMul: y = op(a)·op(b), a and b rank 2; op transposes when the flag is set.
func (g *Graph) MatMul(a, b *Var, transA, transB bool) *Var {
	if a.Value.Rank() != 2 || b.Value.Rank() != 2 {
		opPanic("matmul", "operands must be rank 2, got %s and %s", shapeOf(a), shapeOf(b))
	}
	m, k := a.Value.Dim(0), a.Value.Dim(1)
	if transA {
		m, k = k, m
	}
	k2, n := b.Value.Dim(0), b.Value.Dim(1)
	if transB {
		k2, n = n, k2
	}
	if k != k2 {
		opPanic("matmul", "inner dimensions differ: %s (trans %v) and %s (trans %v)", shapeOf(a), transA, shapeOf(b), transB)
	}
	y := g.newVar([]int{m, n}, a, b)
	g.B.Gemm(backend.GemmParams{TransA: transA, TransB: transB, M: m, N: n, K: k, Alpha: 1}, a.Value, b.Value, y.Value)
	g.record(node{name: "matmul", rule: matMulGrad, y: y, in: [3]*Var{a, b}, dims: [3]int{m, n, k}, flags: [2]bool{transA, transB}})
	return y
}

func matMulGrad(g *Graph, nd *node) {
	y, a, b := nd.y, nd.in[0], nd.in[1]
	m, n, k := nd.dims[0], nd.dims[1], nd.dims[2]
	transA, transB := nd.flags[0], nd.flags[1]
	dy := y.Grad
	if a.RequiresGrad {
		beta := g.betaFor(a)
		if !transA { // dA (M, K) = dy (M, N) · op(B)ᵀ
			g.B.Gemm(backend.GemmParams{TransA: false, TransB: !transB, M: m, N: k, K: n, Alpha: 1, Beta: beta}, dy, b.Value, a.Grad)
		} else { // dA (K, M) = op(B) (K, N) · dyᵀ
			g.B.Gemm(backend.GemmParams{TransA: transB, TransB: true, M: k, N: m, K: n, Alpha: 1, Beta: beta}, b.Value, dy, a.Grad)
		}
	}
	if b.RequiresGrad {
		beta := g.betaFor(b)
		if !transB { // dB (K, N) = op(A)ᵀ · dy
			g.B.Gemm(backend.GemmParams{TransA: !transA, TransB: false, M: k, N: n, K: m, Alpha: 1, Beta: beta}, a.Value, dy, b.Grad)
		} else { // dB (N, K) = dyᵀ · op(A)
			g.B.Gemm(backend.GemmParams{TransA: true, TransB: transA, M: n, N: k, K: m, Alpha: 1, Beta: beta}, dy, a.Value, b.Grad)
		}
	}
}

// betaFor prepares v.Grad for a GEMM that writes (beta 0) or adds (beta 1).
func (g *Graph) betaFor(v *Var) float32 {
	if v.Grad == nil {
		g.allocGrad(v)
	}
	if v.gradWritten {
		return 1
	}
	v.gradWritten = true
	return 0
}

// Linear: y (N, Out) = x (N, In) · wᵀ (In, Out) + b (Out); b may be nil.
func (g *Graph) Linear(x, w, b *Var) *Var {
	y := g.MatMul(x, w, false, true)
	if b != nil {
		y = g.AddRow(y, b)
	}
	return y
}

// AddRow: y (R, n) = x (R, n) + b (n), b repeated on every row (any x whose
// trailing dimensions hold n elements).
func (g *Graph) AddRow(x, b *Var) *Var {
	n := b.Value.Numel()
	if x.Value.Numel()%n != 0 {
		opPanic("add_row", "x %s and row %s do not broadcast", shapeOf(x), shapeOf(b))
	}
	y := g.newVarLike(x.Value, x, b)
	g.B.Binary(backend.Add, x.Value, b.Value, y.Value)
	g.record(node{name: "add_row", rule: addRowGrad, y: y, in: [3]*Var{x, b}})
	return y
}

func addRowGrad(g *Graph, nd *node) {
	y, x, b := nd.y, nd.in[0], nd.in[1]
	if x.RequiresGrad {
		g.passGrad(x, y)
	}
	if b.RequiresGrad {
		n := b.Value.Numel()
		rows := x.Value.Numel() / n
		g.B.Reduce(backend.ReduceParams{Op: backend.Sum, Outer: 1, Len: rows, Inner: n, Accumulate: true}, y.Grad, g.gradAccum(b))
	}
}

// passGrad adds y's gradient into v's (same number of elements). When v has
// no gradient buffer yet, y's is handed on instead of copied: y's rule is
// the last reader of y.Grad, and a buffer is handed on once, so later
// additions into v's gradient touch no other Var's.
func (g *Graph) passGrad(v, y *Var) {
	if v.Grad == nil && !y.lent && y.Grad != nil {
		y.lent = true
		v.Grad, v.gradWritten = g.hdrs.ViewAs(y.Grad, v.Value), true
		g.gradded = append(g.gradded, v)
		return
	}
	dst := g.gradTarget(v)
	g.B.Copy(dst, g.hdrs.ViewAs(y.Grad, v.Value))
	g.gradDone(v, dst)
}

// Add: y = a + b, same shapes.
func (g *Graph) Add(a, b *Var) *Var {
	if !a.Value.SameShape(b.Value) {
		opPanic("add", "shapes differ: %s and %s", shapeOf(a), shapeOf(b))
	}
	y := g.newVarLike(a.Value, a, b)
	g.B.Binary(backend.Add, a.Value, b.Value, y.Value)
	g.record(node{name: "add", rule: addGrad, y: y, in: [3]*Var{a, b}})
	return y
}

func addGrad(g *Graph, nd *node) {
	if a := nd.in[0]; a.RequiresGrad {
		g.passGrad(a, nd.y)
	}
	if b := nd.in[1]; b.RequiresGrad {
		g.passGrad(b, nd.y)
	}
}

// Mul: y = a·b elementwise, same shapes.
func (g *Graph) Mul(a, b *Var) *Var {
	if !a.Value.SameShape(b.Value) {
		opPanic("mul", "shapes differ: %s and %s", shapeOf(a), shapeOf(b))
	}
	y := g.newVarLike(a.Value, a, b)
	g.B.Binary(backend.Mul, a.Value, b.Value, y.Value)
	g.record(node{name: "mul", rule: mulGrad, y: y, in: [3]*Var{a, b}})
	return y
}

func mulGrad(g *Graph, nd *node) {
	y, a, b := nd.y, nd.in[0], nd.in[1]
	if a.RequiresGrad {
		dst := g.gradTarget(a)
		g.B.Binary(backend.Mul, y.Grad, b.Value, dst)
		g.gradDone(a, dst)
	}
	if b.RequiresGrad {
		dst := g.gradTarget(b)
		g.B.Binary(backend.Mul, y.Grad, a.Value, dst)
		g.gradDone(b, dst)
	}
}

// AddScalarVar: y = x + s, s a single-element Var broadcast over x.
func (g *Graph) AddScalarVar(x, s *Var) *Var {
	if s.Value.Numel() != 1 {
		opPanic("add_scalar_var", "s must have one element, got %s", shapeOf(s))
	}
	y := g.newVarLike(x.Value, x, s)
	g.B.Binary(backend.Add, x.Value, s.Value, y.Value)
	g.record(node{name: "add_scalar_var", rule: addScalarVarGrad, y: y, in: [3]*Var{x, s}})
	return y
}

func addScalarVarGrad(g *Graph, nd *node) {
	y, x, s := nd.y, nd.in[0], nd.in[1]
	if x.RequiresGrad {
		g.passGrad(x, y)
	}
	if s.RequiresGrad {
		g.B.Reduce(backend.ReduceParams{Op: backend.Sum, Outer: 1, Len: x.Value.Numel(), Inner: 1, Accumulate: true}, y.Grad, g.gradAccum(s))
	}
}

// Affine: y = a·x + c for constants a, c.
func (g *Graph) Affine(x *Var, a, c float32) *Var {
	y := g.newVarLike(x.Value, x)
	g.B.Unary(backend.Affine, x.Value, y.Value, a, c)
	g.record(node{name: "affine", rule: affineGrad, y: y, in: [3]*Var{x}, f: a})
	return y
}

func affineGrad(g *Graph, nd *node) {
	x := nd.in[0]
	dst := g.gradTarget(x)
	g.B.Unary(backend.Scale, nd.y.Grad, dst, nd.f, 0)
	g.gradDone(x, dst)
}

// Relu: y = max(x, 0). The gradient at 0 is 0.
func (g *Graph) Relu(x *Var) *Var {
	y := g.newVarLike(x.Value, x)
	g.B.Unary(backend.Relu, x.Value, y.Value, 0, 0)
	g.record(node{name: "relu", rule: reluGrad, y: y, in: [3]*Var{x}})
	return y
}

func reluGrad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	dst := g.gradTarget(x)
	g.B.Binary(backend.ReluBackward, y.Value, y.Grad, dst)
	g.gradDone(x, dst)
}

// Softplus: y = ln(1 + eˣ); dy/dx = sigmoid(x).
func (g *Graph) Softplus(x *Var) *Var {
	y := g.newVarLike(x.Value, x)
	g.B.Unary(backend.Softplus, x.Value, y.Value, 0, 0)
	g.record(node{name: "softplus", rule: softplusGrad, y: y, in: [3]*Var{x}})
	return y
}

func softplusGrad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	dst := g.gradTarget(x)
	g.B.Unary(backend.Sigmoid, x.Value, dst, 0, 0)
	g.B.Binary(backend.Mul, dst, y.Grad, dst)
	g.gradDone(x, dst)
}

// Clamp: y = min(max(x, lo), hi). The gradient passes where lo ≤ x ≤ hi
// (PyTorch's convention at the bounds) and is 0 outside.
func (g *Graph) Clamp(x *Var, lo, hi float32) *Var {
	y := g.newVarLike(x.Value, x)
	g.B.Unary(backend.Clamp, x.Value, y.Value, lo, hi)
	g.record(node{name: "clamp", rule: clampGrad, y: y, in: [3]*Var{x}})
	return y
}

func clampGrad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	// The mask is 1 where y == x (inside the bounds), else 0:
	// |y − x| is 0 inside and at least the smallest float32 gap outside.
	n := x.Value.Numel()
	mask := g.Tensor(n)
	g.B.Binary(backend.Sub, g.hdrs.Reshape(y.Value, n), g.hdrs.Reshape(x.Value, n), mask) // 0 inside, ≠0 outside
	g.B.Unary(backend.Abs, mask, mask, 0, 0)
	g.B.Unary(backend.Clamp, mask, mask, 0, 1e-30)  // 0 inside, 1e-30 outside
	g.B.Unary(backend.Affine, mask, mask, -1e30, 1) // 1 inside, 0 outside
	dst := g.gradTarget(x)
	g.B.Binary(backend.Mul, g.hdrs.Reshape(y.Grad, n), mask, g.hdrs.Reshape(dst, n))
	g.gradDone(x, dst)
}

// Sum: y (1) = Σ x.
func (g *Graph) Sum(x *Var) *Var { return g.reduceAll(x, backend.Sum) }

// Mean: y (1) = Σ x / numel.
func (g *Graph) Mean(x *Var) *Var { return g.reduceAll(x, backend.Mean) }

func (g *Graph) reduceAll(x *Var, op backend.ReduceOp) *Var {
	n := x.Value.Numel()
	y := g.newVar([]int{1}, x)
	g.B.Reduce(backend.ReduceParams{Op: op, Outer: 1, Len: n, Inner: 1}, x.Value, y.Value)
	g.record(node{name: op.String(), rule: reduceAllGrad, y: y, in: [3]*Var{x}, red: op})
	return y
}

func reduceAllGrad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	n := x.Value.Numel()
	dst := g.gradTarget(x)
	g.B.Fill(dst, 0)
	scale := float32(1)
	if nd.red == backend.Mean {
		scale = 1 / float32(n)
	}
	// dst = scale·dy broadcast: dst (n) = 0 + dy (1)
	flat := g.hdrs.Reshape(dst, n)
	g.B.Binary(backend.Add, flat, y.Grad, flat)
	if scale != 1 {
		g.B.Unary(backend.Scale, dst, dst, scale, 0)
	}
	g.gradDone(x, dst)
}

// Reshape returns a view of x with a new shape; gradients flow through.
func (g *Graph) Reshape(x *Var, shape ...int) *Var {
	y := g.varOf(g.hdrs.Reshape(x.Value, shape...))
	y.RequiresGrad = x.RequiresGrad && g.noGrad == 0
	g.record(node{name: "reshape", rule: reshapeGrad, y: y, in: [3]*Var{x}})
	return y
}

func reshapeGrad(g *Graph, nd *node) { g.passGrad(nd.in[0], nd.y) }

// Flatten: (N, ...) -> (N, rest).
func (g *Graph) Flatten(x *Var) *Var { return g.Reshape(x, x.Value.Dim(0), -1) }

// Conv2dOpts are a convolution's stride, padding, dilation and groups.
type Conv2dOpts struct {
	Stride, Padding, Dilation, Groups int
}

// Conv2d: x (N, C, H, W), w (K, C/G, R, S) -> y (N, K, P, Q). No bias.
func (g *Graph) Conv2d(x, w *Var, o Conv2dOpts) *Var {
	p := convParams("conv2d", x, w, o)
	y := g.newVar([]int{p.N, p.K, p.P(), p.Q()}, x, w)
	g.B.Conv2dForward(p, x.Value, w.Value, y.Value)
	g.record(node{name: "conv2d", rule: conv2dGrad, y: y, in: [3]*Var{x, w}, conv: p})
	return y
}

func conv2dGrad(g *Graph, nd *node) {
	y, x, w, p := nd.y, nd.in[0], nd.in[1], nd.conv
	if x.RequiresGrad {
		dst := g.gradTarget(x)
		g.B.Conv2dBackwardData(p, y.Grad, w.Value, dst)
		g.gradDone(x, dst)
	}
	if w.RequiresGrad {
		dst := g.gradTarget(w)
		g.B.Conv2dBackwardFilter(p, x.Value, y.Grad, dst)
		g.gradDone(w, dst)
	}
}

// ConvBNAct is the inference form of Conv2d → BatchNorm in eval mode
// (running statistics runMean, runVar; eps) → + res → Relu: x (N, C, H, W),
// w (K, C/G, R, S), gamma, beta, runMean, runVar (K), res (N, K, P, Q) or
// nil -> y (N, K, P, Q); relu may be false. Where the backend has a fused kernel
// (backend.ConvBNActer) it is one op, without the passes over memory in
// between; else, and whenever the graph is recording, it is those ops in
// turn. Both give the same values. (Gradients through eval-mode batch
// norm are not defined: see BatchNorm.)
func (g *Graph) ConvBNAct(x, w *Var, o Conv2dOpts, gamma, beta *Var, runMean, runVar *tensor.Tensor, eps float32, res *Var, relu bool) *Var {
	f, fused := g.B.(backend.ConvBNActer)
	if !fused || g.Recording() {
		y := g.BatchNorm(g.Conv2d(x, w, o), gamma, beta, runMean, runVar, BatchNormOpts{Eps: eps})
		if res != nil {
			y = g.Add(y, res)
		}
		if relu {
			y = g.Relu(y)
		}
		return y
	}
	p := convParams("conv_bn_act", x, w, o)
	y := g.newVar([]int{p.N, p.K, p.P(), p.Q()})
	if res != nil && !res.Value.SameShape(y.Value) {
		opPanic("conv_bn_act", "residual %s does not match the output %s", shapeOf(res), shapeOf(y))
	}
	var resValue *tensor.Tensor
	if res != nil {
		resValue = res.Value
	}
	r, ranges := f.(backend.ConvBNActRanger)
	if !ranges {
		f.ConvBNActForward(p, eps, x.Value, w.Value, gamma.Value, beta.Value, runMean, runVar, resValue, y.Value, relu)
		return y
	}
	// Each image's largest value goes from the convolution that writes
	// it to those that read it (the CPU's int8 path scales each image by
	// its range and so spares a pass over it).
	var xMax []float32
	if len(x.imageMax) == p.N {
		xMax = x.imageMax
	}
	y.imageMax = slices.Grow(y.imageMax[:0], p.N)[:p.N]
	if !r.ConvBNActForwardRange(p, eps, x.Value, w.Value, gamma.Value, beta.Value, runMean, runVar, resValue, y.Value, relu, xMax, y.imageMax) {
		y.imageMax = y.imageMax[:0]
	}
	return y
}

// ConvBNActMaxPool is ConvBNAct without a residual followed by
// MaxPool2d(po): a residual network's stem. Where the backend fuses the
// two (backend.ConvBNActPooler) and nothing is recorded it is one op,
// which never writes the convolution's whole output (nor the pooling's
// argmax) to memory; otherwise it is those two ops. The values are the
// same either way.
func (g *Graph) ConvBNActMaxPool(x, w *Var, o Conv2dOpts, gamma, beta *Var, runMean, runVar *tensor.Tensor, eps float32, relu bool, po PoolOpts) *Var {
	f, fused := g.B.(backend.ConvBNActPooler)
	_, conv := g.B.(backend.ConvBNActer)
	if !fused || !conv || g.Recording() {
		return g.MaxPool2d(g.ConvBNAct(x, w, o, gamma, beta, runMean, runVar, eps, nil, relu), po)
	}
	p := convParams("conv_bn_act_maxpool", x, w, o)
	s := po.Stride
	if s == 0 {
		s = po.Kernel
	}
	pool := backend.Pool2dParams{N: p.N, C: p.K, H: p.P(), W: p.Q(), R: po.Kernel, S: po.Kernel, StrideH: s, StrideW: s, PadH: po.Padding, PadW: po.Padding}
	y := g.newVar([]int{p.N, p.K, pool.P(), pool.Q()})
	y.imageMax = slices.Grow(y.imageMax[:0], p.N)[:p.N]
	if !f.ConvBNActPoolForward(p, eps, x.Value, w.Value, gamma.Value, beta.Value, runMean, runVar, relu, pool, y.Value, y.imageMax) {
		y.imageMax = y.imageMax[:0]
	}
	return y
}

// convParams checks a convolution's operands and returns its parameters.
func convParams(op string, x, w *Var, o Conv2dOpts) backend.Conv2dParams {
	if x.Value.Rank() != 4 || w.Value.Rank() != 4 {
		opPanic(op, "x %s must be (N, C, H, W) and w %s (K, C/G, R, S)", shapeOf(x), shapeOf(w))
	}
	groups := max(o.Groups, 1)
	var xShape, wShape [4]int
	for i := range 4 {
		xShape[i], wShape[i] = x.Value.Dim(i), w.Value.Dim(i)
	}
	p := backend.Conv2dParams{N: xShape[0], C: xShape[1], H: xShape[2], W: xShape[3], K: wShape[0], R: wShape[2], S: wShape[3],
		StrideH: max(o.Stride, 1), StrideW: max(o.Stride, 1), PadH: o.Padding, PadW: o.Padding,
		DilH: max(o.Dilation, 1), DilW: max(o.Dilation, 1), Groups: groups}
	if xShape[1] != wShape[1]*groups || wShape[0]%groups != 0 {
		opPanic(op, "x %s has %d channels but w %s expects %d (groups %d)", shapeOf(x), xShape[1], shapeOf(w), wShape[1]*groups, groups)
	}
	if p.P() < 1 || p.Q() < 1 {
		opPanic(op, "input %s is smaller than the filter %s (padding %d, dilation %d)", shapeOf(x), shapeOf(w), o.Padding, p.DilH)
	}
	return p
}

// PoolOpts are a pooling window, stride (0: the window) and padding.
type PoolOpts struct {
	Kernel, Stride, Padding int
}

func poolParams(op string, x *Var, o PoolOpts) backend.Pool2dParams {
	if x.Value.Rank() != 4 {
		opPanic(op, "x %s must be (N, C, H, W)", shapeOf(x))
	}
	s := o.Stride
	if s == 0 {
		s = o.Kernel
	}
	x0, x1, x2, x3 := x.Value.Dim(0), x.Value.Dim(1), x.Value.Dim(2), x.Value.Dim(3)
	p := backend.Pool2dParams{N: x0, C: x1, H: x2, W: x3, R: o.Kernel, S: o.Kernel, StrideH: s, StrideW: s, PadH: o.Padding, PadW: o.Padding}
	if o.Kernel < 1 || p.P() < 1 || p.Q() < 1 || 2*o.Padding > o.Kernel {
		opPanic(op, "window %d (stride %d, padding %d) does not fit input %s", o.Kernel, s, o.Padding, shapeOf(x))
	}
	return p
}

// MaxPool2d: x (N, C, H, W) -> y (N, C, P, Q).
func (g *Graph) MaxPool2d(x *Var, o PoolOpts) *Var {
	p := poolParams("maxpool2d", x, o)
	y := g.newVar([]int{p.N, p.C, p.P(), p.Q()}, x)
	arg := g.Tensor(p.N, p.C, p.P(), p.Q())
	g.B.MaxPool2dForward(p, x.Value, y.Value, arg)
	g.record(node{name: "maxpool2d", rule: maxPool2dGrad, y: y, in: [3]*Var{x}, pool: p, saved: [3]*tensor.Tensor{arg}})
	return y
}

func maxPool2dGrad(g *Graph, nd *node) {
	x := nd.in[0]
	dst := g.gradTarget(x)
	g.B.MaxPool2dBackward(nd.pool, nd.y.Grad, nd.saved[0], dst)
	g.gradDone(x, dst)
}

// AvgPool2d: x (N, C, H, W) -> y (N, C, P, Q), padding counted.
func (g *Graph) AvgPool2d(x *Var, o PoolOpts) *Var {
	p := poolParams("avgpool2d", x, o)
	y := g.newVar([]int{p.N, p.C, p.P(), p.Q()}, x)
	g.B.AvgPool2dForward(p, x.Value, y.Value)
	g.record(node{name: "avgpool2d", rule: avgPool2dGrad, y: y, in: [3]*Var{x}, pool: p})
	return y
}

func avgPool2dGrad(g *Graph, nd *node) {
	x := nd.in[0]
	dst := g.gradTarget(x)
	g.B.AvgPool2dBackward(nd.pool, nd.y.Grad, dst)
	g.gradDone(x, dst)
}

// GlobalAvgPool: x (N, C, H, W) -> y (N, C).
func (g *Graph) GlobalAvgPool(x *Var) *Var {
	if x.Value.Rank() != 4 {
		opPanic("global_avgpool", "x %s must be (N, C, H, W)", shapeOf(x))
	}
	y := g.newVar([]int{x.Value.Dim(0), x.Value.Dim(1)}, x)
	g.B.GlobalAvgPoolForward(x.Value, y.Value)
	g.record(node{name: "global_avgpool", rule: globalAvgPoolGrad, y: y, in: [3]*Var{x}})
	return y
}

func globalAvgPoolGrad(g *Graph, nd *node) {
	x := nd.in[0]
	dst := g.gradTarget(x)
	g.B.GlobalAvgPoolBackward(nd.y.Grad, dst)
	g.gradDone(x, dst)
}

// BatchNormOpts configure BatchNorm.
type BatchNormOpts struct {
	Training bool
	Momentum float32
	Eps      float32
}

// BatchNorm: x (N, C, H, W) or (N, C) normalised per channel, scaled by
// gamma (C) and shifted by beta (C). Training uses batch statistics and
// updates runMean and runVar (C) in place; eval uses them. Gradients are
// defined for training mode (eval mode is for inference).
func (g *Graph) BatchNorm(x, gamma, beta *Var, runMean, runVar *tensor.Tensor, o BatchNormOpts) *Var {
	rank := x.Value.Rank()
	if rank != 2 && rank != 4 {
		opPanic("batchnorm", "x %s must be (N, C) or (N, C, H, W)", shapeOf(x))
	}
	p := backend.BatchNormParams{N: x.Value.Dim(0), C: x.Value.Dim(1), L: 1, Training: o.Training, Momentum: o.Momentum, Eps: o.Eps}
	if rank == 4 {
		p.L = x.Value.Dim(2) * x.Value.Dim(3)
	}
	if gamma.Value.Numel() != p.C || beta.Value.Numel() != p.C {
		opPanic("batchnorm", "x %s has %d channels, gamma %s and beta %s", shapeOf(x), p.C, shapeOf(gamma), shapeOf(beta))
	}
	if o.Training && p.N*p.L < 2 {
		opPanic("batchnorm", "training needs more than one value per channel, got x %s", shapeOf(x))
	}
	y := g.newVarLike(x.Value, x, gamma, beta)
	var mean, inv *tensor.Tensor
	if o.Training {
		mean, inv = g.Tensor(p.C), g.Tensor(p.C)
	}
	g.B.BatchNormForward(p, x.Value, gamma.Value, beta.Value, runMean, runVar, y.Value, mean, inv)
	g.record(node{name: "batchnorm", rule: batchNormGrad, y: y, in: [3]*Var{x, gamma, beta}, bn: p, saved: [3]*tensor.Tensor{mean, inv}})
	return y
}

func batchNormGrad(g *Graph, nd *node) {
	y, x, gamma, beta, p := nd.y, nd.in[0], nd.in[1], nd.in[2], nd.bn
	if !p.Training {
		opPanic("batchnorm", "backward through eval-mode batch norm is not supported; train in training mode or freeze the layer")
	}
	// dx goes straight into x's gradient when it is the first
	// contribution (gradTarget).
	var dx *tensor.Tensor
	if x.RequiresGrad {
		dx = g.gradTarget(x)
	} else {
		dx = g.tensorLike(x.Value)
	}
	dgamma := g.gradAccumMaybe(gamma, p.C)
	dbeta := g.gradAccumMaybe(beta, p.C)
	g.B.BatchNormBackward(p, x.Value, y.Grad, gamma.Value, nd.saved[0], nd.saved[1], dx, dgamma, dbeta)
	if x.RequiresGrad {
		g.gradDone(x, dx)
	}
}

// gradAccumMaybe is gradAccum for a Var that needs a gradient, else scratch.
func (g *Graph) gradAccumMaybe(v *Var, n int) *tensor.Tensor {
	if v.RequiresGrad {
		return g.gradAccum(v)
	}
	return g.Tensor(n)
}

// Dropout zeroes each element with probability p and scales the rest by
// 1/(1−p) (inverted dropout), with a mask drawn from rng on the host.
// With training false or p == 0 it returns x.
func (g *Graph) Dropout(x *Var, p float32, training bool, rng *rand.Rand) *Var {
	if !training || p == 0 {
		return x
	}
	if p < 0 || p >= 1 {
		opPanic("dropout", "probability %g outside [0, 1)", p)
	}
	n := x.Value.Numel()
	g.host = slices.Grow(g.host[:0], n)[:n]
	m := g.host
	keep := 1 / (1 - p)
	for i := range m {
		m[i] = 0
		if rng.Float32() >= p {
			m[i] = keep
		}
	}
	mask := g.tensorLike(x.Value)
	g.B.Upload(mask, m)
	y := g.newVarLike(x.Value, x)
	g.B.Binary(backend.Mul, x.Value, mask, y.Value)
	g.record(node{name: "dropout", rule: dropoutGrad, y: y, in: [3]*Var{x}, saved: [3]*tensor.Tensor{mask}})
	return y
}

func dropoutGrad(g *Graph, nd *node) {
	x := nd.in[0]
	dst := g.gradTarget(x)
	g.B.Binary(backend.Mul, nd.y.Grad, nd.saved[0], dst)
	g.gradDone(x, dst)
}

// L2Normalize: x (N, D) -> y = x/max(|x|, eps) row by row.
func (g *Graph) L2Normalize(x *Var, eps float32) *Var {
	if x.Value.Rank() != 2 {
		opPanic("l2normalize", "x %s must be (N, D)", shapeOf(x))
	}
	y := g.newVarLike(x.Value, x)
	norms := g.Tensor(x.Value.Dim(0))
	g.B.L2NormalizeForward(eps, x.Value, y.Value, norms)
	g.record(node{name: "l2normalize", rule: l2NormalizeGrad, y: y, in: [3]*Var{x}, saved: [3]*tensor.Tensor{norms}})
	return y
}

func l2NormalizeGrad(g *Graph, nd *node) {
	y, x, norms := nd.y, nd.in[0], nd.saved[0]
	if x.gradWritten {
		g.B.L2NormalizeBackward(y.Value, norms, y.Grad, x.Grad, true)
		return
	}
	dst := g.gradTarget(x)
	g.B.L2NormalizeBackward(y.Value, norms, y.Grad, dst, false)
	g.gradDone(x, dst)
}

// MarginCE is the fused margin-softmax cross-entropy: cos (N, C), labels
// (N) on the host -> the mean loss (1). For MarginDMLClass, classMargins
// (C) supplies the negative margins (p.ClassMargins is set from it); mp,
// when not nil, is a single-element Var whose value the kernel reads on
// the device as m_p (p.MPFrom; nothing is read back) and which receives
// ∂L/∂m_p.
func (g *Graph) MarginCE(cos *Var, labels []int32, p backend.MarginParams, classMargins, mp *Var) *Var {
	if cos.Value.Rank() != 2 {
		opPanic("margin_ce", "cos %s must be (N, C)", shapeOf(cos))
	}
	p.N, p.C = cos.Value.Dim(0), cos.Value.Dim(1)
	if classMargins != nil {
		p.ClassMargins = classMargins.Value
	}
	if mp != nil {
		p.MPFrom = mp.Value
	}
	y := g.newVar([]int{1}, cos, classMargins, mp)
	loss := g.Tensor(p.N)
	var dcos *tensor.Tensor
	var grads backend.MarginGrads
	if y.RequiresGrad {
		dcos = g.Tensor(p.N, p.C)
		if classMargins != nil && classMargins.RequiresGrad {
			grads.ClassMargins = g.Tensor(p.C)
		}
		if mp != nil && mp.RequiresGrad {
			grads.MP = g.Tensor(1)
		}
	}
	g.B.MarginSoftmaxCE(p, cos.Value, labels, loss, dcos, grads)
	g.B.Reduce(backend.ReduceParams{Op: backend.Mean, Outer: 1, Len: p.N, Inner: 1}, loss, y.Value)
	g.record(node{name: "margin_ce", rule: marginCEGrad, y: y, in: [3]*Var{cos, classMargins, mp},
		saved: [3]*tensor.Tensor{dcos, grads.ClassMargins, grads.MP}})
	return y
}

// marginCEGrad scales each saved gradient (of the mean loss) by the
// upstream dy (1). saved[i] is the gradient of in[i], nil when not asked.
func marginCEGrad(g *Graph, nd *node) {
	for i, saved := range nd.saved {
		v := nd.in[i]
		if saved == nil || !v.RequiresGrad {
			continue
		}
		dst := g.gradTarget(v)
		g.B.Binary(backend.Mul, saved, nd.y.Grad, dst)
		g.gradDone(v, dst)
	}
}

// Exp: y = eˣ elementwise; dy/dx = y.
func (g *Graph) Exp(x *Var) *Var {
	y := g.newVarLike(x.Value, x)
	g.B.Unary(backend.Exp, x.Value, y.Value, 0, 0)
	g.record(node{name: "exp", rule: expGrad, y: y, in: [3]*Var{x}})
	return y
}

func expGrad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	dst := g.gradTarget(x)
	g.B.Binary(backend.Mul, y.Grad, y.Value, dst)
	g.gradDone(x, dst)
}

// Log: y = ln x elementwise (x > 0); dy/dx = 1/x.
func (g *Graph) Log(x *Var) *Var {
	y := g.newVarLike(x.Value, x)
	g.B.Unary(backend.Log, x.Value, y.Value, 0, 0)
	g.record(node{name: "log", rule: logGrad, y: y, in: [3]*Var{x}})
	return y
}

func logGrad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	dst := g.gradTarget(x)
	g.B.Binary(backend.Div, y.Grad, x.Value, dst)
	g.gradDone(x, dst)
}

// SumDim0: x (N, C) -> y (C) = Σ_i x_i, the column sums (any x of rank ≥ 2
// is viewed as (N, rest)). The gradient repeats dy on every row.
func (g *Graph) SumDim0(x *Var) *Var {
	if x.Value.Rank() < 2 {
		opPanic("sum_dim0", "x %s must have rank ≥ 2", shapeOf(x))
	}
	n := x.Value.Dim(0)
	c := x.Value.Numel() / n
	y := g.newVar([]int{c}, x)
	g.B.Reduce(backend.ReduceParams{Op: backend.Sum, Outer: 1, Len: n, Inner: c}, x.Value, y.Value)
	g.record(node{name: "sum_dim0", rule: sumDim0Grad, y: y, in: [3]*Var{x}})
	return y
}

func sumDim0Grad(g *Graph, nd *node) {
	y, x := nd.y, nd.in[0]
	dst := g.gradTarget(x)
	// dst (N, C) = 0 + dy (C) repeated on every row
	g.B.Fill(dst, 0)
	g.B.Binary(backend.Add, dst, y.Grad, dst)
	g.gradDone(x, dst)
}

// log1pSumExpOff is how far Log1pSumExp pushes masked-out entries down
// before the max and the exponentials: exp(z − 1e30 − m) is exactly 0 for
// every finite |z| ≪ 1e30, so a masked-out entry can neither set the
// shift m nor overflow.
const log1pSumExpOff = 1e30

// Log1pSumExp: z (N, C), mask (N, C) of 0s and 1s (a constant: it gets no
// gradient) -> y (C), the column-wise
//
//	y_j = ln(1 + Σ_{i: mask_ij = 1} exp(z_ij))
//
// (0 for a column with no entry). It is computed stably, with the shift
// m_j = max(0, max_{i: mask_ij = 1} z_ij):
//
//	y_j = m_j + ln(exp(−m_j) + Σ_{i: mask_ij = 1} exp(z_ij − m_j))
//
// where every exponential is at most 1 and the sum is at least 1 or
// exp(−m_j) ≥ … > 0, so nothing overflows and the log never sees 0
// (m_j ≥ 0 makes the "1 +" term one of the shifted ones). Gradient:
//
//	∂y_j/∂z_ij = mask_ij · exp(z_ij − y_j)
//
// (the softmax of the column with the "1" as an extra zero logit).
func (g *Graph) Log1pSumExp(z, mask *Var) *Var {
	if z.Value.Rank() != 2 || !z.Value.SameShape(mask.Value) {
		opPanic("log1p_sum_exp", "z %s must be (N, C) and mask %s the same", shapeOf(z), shapeOf(mask))
	}
	if mask.RequiresGrad {
		opPanic("log1p_sum_exp", "the mask must be a constant")
	}
	n, c := z.Value.Dim(0), z.Value.Dim(1)
	y := g.newVar([]int{c}, z)
	// s (N, C) = z where mask is 1, z − 1e30 where it is 0 (mask·1e30 − 1e30 is exactly 0 or −1e30)
	s := g.tensorLike(z.Value)
	g.B.Unary(backend.Affine, mask.Value, s, log1pSumExpOff, -log1pSumExpOff)
	g.B.Binary(backend.Add, z.Value, s, s)
	// m (C) = max(0, max_i s_ij)
	m := g.tensorUninit(c)
	g.B.Reduce(backend.ReduceParams{Op: backend.MaxReduce, Outer: 1, Len: n, Inner: c}, s, m)
	g.B.Unary(backend.Relu, m, m, 0, 0)
	// y = m + ln(exp(−m) + Σ_i exp(s_ij − m_j))
	e := g.tensorLike(z.Value)
	g.B.Binary(backend.Sub, s, m, e)
	g.B.Unary(backend.Exp, e, e, 0, 0)
	g.B.Reduce(backend.ReduceParams{Op: backend.Sum, Outer: 1, Len: n, Inner: c}, e, y.Value)
	t := g.tensorUninit(c)
	g.B.Unary(backend.Affine, m, t, -1, 0)
	g.B.Unary(backend.Exp, t, t, 0, 0)
	g.B.Binary(backend.Add, y.Value, t, y.Value)
	g.B.Unary(backend.Log, y.Value, y.Value, 0, 0)
	g.B.Binary(backend.Add, y.Value, m, y.Value)
	g.record(node{name: "log1p_sum_exp", rule: log1pSumExpGrad, y: y, in: [3]*Var{z}, saved: [3]*tensor.Tensor{s}})
	return y
}

func log1pSumExpGrad(g *Graph, nd *node) {
	y, z, s := nd.y, nd.in[0], nd.saved[0]
	dst := g.gradTarget(z)
	// dz_ij = dy_j · exp(s_ij − y_j): exp(z_ij − y_j) where the mask is 1, 0 where it is 0
	g.B.Binary(backend.Sub, s, y.Value, dst)
	g.B.Unary(backend.Exp, dst, dst, 0, 0)
	g.B.Binary(backend.Mul, dst, y.Grad, dst)
	g.gradDone(z, dst)
}
