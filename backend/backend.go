// Package backend defines the contract between dmlgo's autograd and the
// devices it runs on: memory (allocate, free, copy in and out, synchronise)
// plus a small closed set of ops. Every backend implements all of them; an op
// a backend lacks fails loudly (it panics with ErrUnsupported), nothing falls
// back silently to another device.
//
// Conventions for every op:
//   - tensors are contiguous and live on the backend that runs the op;
//   - outputs are overwritten unless the op says it accumulates;
//   - shapes are checked at this edge (package-prefixed panics naming the op
//     and the shapes); kernels behind it trust their arguments.
//
// Legend used in shape comments: N = batch, C = channels (in), K = channels
// (out), H×W input plane, P×Q output plane, R×S filter, D = embedding size.
package backend

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dmlgo/dmlgo/tensor"
)

// ErrUnsupported is the panic value (wrapped) of an op a backend lacks.
var ErrUnsupported = errors.New("backend: op not supported")

// UninitAllocator is implemented by backends that can hand out storage
// without clearing it, for outputs an op overwrites whole (every op of the
// set writes all of its outputs). Callers that need zeros use Alloc.
type UninitAllocator interface {
	// AllocUninit returns storage for n float32 elements with unspecified
	// contents.
	AllocUninit(n int) tensor.Storage
}

// ConvBNActer is implemented by backends with a fused inference kernel
// for a convolution followed by batch norm in eval mode (running
// statistics) over its output channels, an optional residual and an
// optional ReLU:
//
//	y = act(gamma·(conv(x, w) − runMean)/√(runVar + eps) + beta + res)
//
// with x (N, C, H, W), w (K, C/G, R, S), gamma, beta, runMean, runVar (K)
// -> y (N, K, P, Q); res (N, K, P, Q) may be nil; act is max(·, 0) when
// relu is set, else the identity. The result equals, to the bit, that of
// Conv2dForward, BatchNormForward (eval), Binary Add and Unary Relu in
// turn, without their passes over memory in between; callers use those
// ops where a backend lacks it (autograd.Graph.ConvBNAct).
type ConvBNActer interface {
	ConvBNActForward(p Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool)
}

// ConvBNActRanger is a ConvBNActer that can hand each image's largest
// output value on to the convolution that reads it, sparing that one a
// pass over the image (the CPU's int8 path scales each image by its own
// range). ConvBNActForwardRange is ConvBNActForward, and besides:
//
//   - xMax, when not nil, holds N values: xMax[n] is the largest value of
//     image n of x, and no value of that image is below 0. The caller
//     vouches for it (it is what an earlier call returned in yMax for x,
//     whose data has not changed since); the backend may use it in place
//     of reading the image.
//   - yMax (N values) receives the largest value of each image of y when
//     the result is true. Only a call with relu can return true, and a
//     backend returns false where it has no use for the ranges (yMax's
//     contents are then unspecified). For an image holding a NaN the
//     value may be any, or the result false.
//
// y is the same, to the bit, whether or not xMax is given.
type ConvBNActRanger interface {
	ConvBNActer
	ConvBNActForwardRange(p Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool, xMax, yMax []float32) bool
}

// ConvBNActPooler is implemented by backends that fuse a ConvBNAct
// without residual with the max pooling of its output (a residual
// network's stem in inference): y = MaxPool2d(act(bn(conv(x, w)))), with
// pool reading the convolution's output (pool.N, C, H, W = p.N, K, P, Q)
// and y (N, K, pool.P, pool.Q). The result equals, to the bit, that of
// ConvBNActForward and MaxPool2dForward in turn, without the convolution's
// whole output or the argmax in memory (callers use those ops where a
// backend lacks it: autograd.Graph.ConvBNActMaxPool). yMax is as in
// ConvBNActRanger: nil, or room for each image's largest value of y,
// filled when the result is true.
type ConvBNActPooler interface {
	ConvBNActPoolForward(p Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar *tensor.Tensor, relu bool, pool Pool2dParams, y *tensor.Tensor, yMax []float32) bool
}

// WeightFreezer is implemented by backends that can keep derived forms of
// weights that no longer change (the CPU keeps convolution filters packed
// for its GEMM instead of packing them on every call). A model loaded
// for inference freezes its weights (see Freeze); training never does.
// Writing to a frozen tensor through Upload drops what was derived from
// it; writing to it through ops is a mistake the backend does not see.
type WeightFreezer interface {
	FreezeWeights(ts ...*tensor.Tensor)
}

// Freeze declares ts unchanging to b when b can use it (WeightFreezer),
// and reports whether it could.
func Freeze(b Backend, ts ...*tensor.Tensor) bool {
	f, ok := b.(WeightFreezer)
	if ok {
		f.FreezeWeights(ts...)
	}
	return ok
}

// Precisioner is implemented by backends that can run a frozen model's
// convolutions in a lower precision than float32 (the CPU: bfloat16 with
// AVX-512 BF16, int8 with AVX-512 VNNI). SetPrecision takes one of
// Precisions and returns what will run, in words: a backend or CPU that
// lacks the kernels runs float32 and says why.
type Precisioner interface {
	SetPrecision(name string) (effective string, err error)
}

// Precisions are the names SetPrecision takes.
var Precisions = []string{"fp32", "bf16", "int8"}

// SetPrecision sets the precision of b's frozen convolutions ("" is
// fp32) and returns what will run. A backend without low-precision
// kernels runs fp32, and asking it for another precision is an error.
func SetPrecision(b Backend, name string) (string, error) {
	if !slices.Contains(Precisions, name) && name != "" {
		return "", fmt.Errorf("unknown precision %q (want %s)", name, strings.Join(Precisions, ", "))
	}
	if p, ok := b.(Precisioner); ok {
		return p.SetPrecision(name)
	}
	if name == "" || name == "fp32" {
		return "fp32", nil
	}
	return "", fmt.Errorf("precision %s: the %s backend runs fp32 only", name, b.Name())
}

// Backend is memory plus the op set.
type Backend interface {
	// Name is the registry name ("cpu", "cuda").
	Name() string
	// Describe is one human line: device, SIMD level or card, threads.
	Describe() string

	// Alloc returns zeroed storage for n float32 elements.
	Alloc(n int) tensor.Storage
	// Free hands storage back (to a pool). The storage must not be used after.
	Free(s tensor.Storage)
	// Upload copies host values into dst (len(src) == dst.Numel()).
	Upload(dst *tensor.Tensor, src []float32)
	// Download copies src's values into host memory.
	Download(dst []float32, src *tensor.Tensor)
	// Copy copies src into dst (same number of elements, same backend).
	Copy(dst, src *tensor.Tensor)
	// Synchronize waits for queued work and reports a deferred device error.
	Synchronize() error

	Ops
}

// Ops is the closed op set.
type Ops interface {
	// Gemm: C = alpha·op(A)·op(B) + beta·C, row-major.
	// op(A): (M, K) — A is (M, K), or (K, M) when TransA.
	// op(B): (K, N) — B is (K, N), or (N, K) when TransB. C: (M, N).
	// With beta == 0, C's previous contents are ignored (NaN included).
	Gemm(p GemmParams, a, b, c *tensor.Tensor)
	// GemmBatched runs Batch independent GEMMs over consecutive matrices:
	// A: (Batch, ...op(A)), B: (Batch, ...op(B)), C: (Batch, M, N).
	GemmBatched(p GemmParams, batch int, a, b, c *tensor.Tensor)

	// Conv2dForward: x (N, C, H, W), w (K, C/G, R, S) -> y (N, K, P, Q).
	Conv2dForward(p Conv2dParams, x, w, y *tensor.Tensor)
	// Conv2dBackwardData: dy (N, K, P, Q), w (K, C/G, R, S) -> dx (N, C, H, W).
	Conv2dBackwardData(p Conv2dParams, dy, w, dx *tensor.Tensor)
	// Conv2dBackwardFilter: x (N, C, H, W), dy (N, K, P, Q) -> dw (K, C/G, R, S).
	Conv2dBackwardFilter(p Conv2dParams, x, dy, dw *tensor.Tensor)

	// MaxPool2dForward: x (N, C, H, W) -> y (N, C, P, Q); argmax (N, C, P, Q)
	// receives the index within the H×W plane of each maximum (as float32).
	MaxPool2dForward(p Pool2dParams, x, y, argmax *tensor.Tensor)
	// MaxPool2dBackward: dy, argmax (N, C, P, Q) -> dx (N, C, H, W).
	MaxPool2dBackward(p Pool2dParams, dy, argmax, dx *tensor.Tensor)
	// AvgPool2dForward: x (N, C, H, W) -> y (N, C, P, Q). Padding counts in
	// the divisor (PyTorch's count_include_pad=True).
	AvgPool2dForward(p Pool2dParams, x, y *tensor.Tensor)
	// AvgPool2dBackward: dy (N, C, P, Q) -> dx (N, C, H, W).
	AvgPool2dBackward(p Pool2dParams, dy, dx *tensor.Tensor)
	// GlobalAvgPoolForward: x (N, C, H, W) -> y (N, C).
	GlobalAvgPoolForward(x, y *tensor.Tensor)
	// GlobalAvgPoolBackward: dy (N, C) -> dx (N, C, H, W).
	GlobalAvgPoolBackward(dy, dx *tensor.Tensor)

	// BatchNormForward normalises x (N, C, L) per channel (L = H·W, or 1 for
	// BatchNorm1d) into y. Training: batch statistics, saved into
	// saveMean/saveInvStd (C), running statistics updated with momentum
	// (unbiased variance, as PyTorch). Eval: running statistics.
	BatchNormForward(p BatchNormParams, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd *tensor.Tensor)
	// BatchNormBackward (training statistics): x, dy (N, C, L) ->
	// dx (N, C, L); dgamma, dbeta (C) accumulate (+=).
	BatchNormBackward(p BatchNormParams, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta *tensor.Tensor)

	// Unary: y = f(x) elementwise, with op's parameters a, b (see UnaryOp).
	Unary(op UnaryOp, x, y *tensor.Tensor, a, b float32)
	// Binary: y = x ∘ z elementwise. z has x's shape, or z has n elements
	// equal to the product of x's trailing dimensions and x is viewed as
	// (rows, n): z repeats along rows (a bias row; n = 1 is a scalar).
	Binary(op BinaryOp, x, z, y *tensor.Tensor)
	// Axpy: y += alpha·x.
	Axpy(alpha float32, x, y *tensor.Tensor)
	// Fill sets every element of y to v.
	Fill(y *tensor.Tensor, v float32)
	// Reduce: x viewed as (Outer, Len, Inner) -> y (Outer, Inner), reducing
	// the middle axis. With Accumulate, y += result.
	Reduce(p ReduceParams, x, y *tensor.Tensor)

	// L2NormalizeForward: x (N, D) -> y = x/max(|x|, eps) (N, D), norms (N)
	// receives max(|x_i|, eps).
	L2NormalizeForward(eps float32, x, y, norms *tensor.Tensor)
	// L2NormalizeBackward: y, norms, dy -> dx = (dy − y·<y, dy>)/norm, for
	// rows whose norm exceeded eps (else dx = dy/eps). dx accumulates (+=)
	// when accumulate is true.
	L2NormalizeBackward(y, norms, dy, dx *tensor.Tensor, accumulate bool)

	// MarginSoftmaxCE is the fused margin-softmax cross-entropy head:
	// cos (N, C) cosines (or raw logits for the plain softmax kind), labels
	// (N) on the host. It writes loss (N) per sample and dcos (N, C) =
	// ∂(mean loss)/∂cos, and the margin gradients p.Margins asks for.
	MarginSoftmaxCE(p MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g MarginGrads)
	// ProjectMargins moves dml/class's learned margins, in place, onto the
	// set where their clamps are inactive (projected gradient descent,
	// without leaving the device): mp (1; nil: m_p is p.MP, not learned)
	// to min(max(mp, 0), p.MaxMP); then, with room = p.MaxMargin − m_p −
	// p.Delta − p.Gap in float64, when room > p.Gap (false for NaN), every
	// ρ_j of rho (C) to at most float32(softplus⁻¹(room)) =
	// float32(room + ln(−expm1(−room))). NaN stays NaN.
	ProjectMargins(p ProjectParams, mp, rho *tensor.Tensor)

	// SGDStep updates w in place from g with momentum buffer mom
	// (PyTorch's SGD: d = g + wd·w; mom = μ·mom + d; step = d + μ·mom
	// with Nesterov, else mom; w -= lr·step).
	SGDStep(p SGDParams, w, g, mom *tensor.Tensor)
	// AdamWStep updates w in place (decoupled weight decay, bias-corrected
	// moments m and v; p.Step counts from 1).
	AdamWStep(p AdamWParams, w, g, m, v *tensor.Tensor)
}

// GemmParams describes one GEMM.
type GemmParams struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float32
}

// Conv2dParams describes a 2-D convolution (cross-correlation, as PyTorch).
type Conv2dParams struct {
	N, C, H, W       int // input
	K, R, S          int // output channels, filter height and width
	StrideH, StrideW int
	PadH, PadW       int
	DilH, DilW       int
	Groups           int // 0 or 1: dense
}

// P is the output height.
func (p Conv2dParams) P() int { return (p.H+2*p.PadH-p.dilH()*(p.R-1)-1)/p.strideH() + 1 }

// Q is the output width.
func (p Conv2dParams) Q() int { return (p.W+2*p.PadW-p.dilW()*(p.S-1)-1)/p.strideW() + 1 }

// G is the number of groups (at least 1).
func (p Conv2dParams) G() int {
	if p.Groups <= 1 {
		return 1
	}
	return p.Groups
}

func (p Conv2dParams) strideH() int { return max(p.StrideH, 1) }
func (p Conv2dParams) strideW() int { return max(p.StrideW, 1) }
func (p Conv2dParams) dilH() int    { return max(p.DilH, 1) }
func (p Conv2dParams) dilW() int    { return max(p.DilW, 1) }

// Normalized returns p with zero strides and dilations set to 1.
func (p Conv2dParams) Normalized() Conv2dParams {
	p.StrideH, p.StrideW, p.DilH, p.DilW = p.strideH(), p.strideW(), p.dilH(), p.dilW()
	p.Groups = p.G()
	return p
}

// Pool2dParams describes max or average pooling.
type Pool2dParams struct {
	N, C, H, W       int
	R, S             int // window
	StrideH, StrideW int
	PadH, PadW       int
}

// P is the output height (floor mode).
func (p Pool2dParams) P() int { return (p.H+2*p.PadH-p.R)/max(p.StrideH, 1) + 1 }

// Q is the output width (floor mode).
func (p Pool2dParams) Q() int { return (p.W+2*p.PadW-p.S)/max(p.StrideW, 1) + 1 }

// BatchNormParams describes batch normalisation over x viewed as (N, C, L).
type BatchNormParams struct {
	N, C, L  int
	Training bool
	Momentum float32 // running = (1−momentum)·running + momentum·batch
	Eps      float32
}

// UnaryOp selects an elementwise function y = f(x; a, b).
type UnaryOp int

// Unary ops. Parameters a and b are ignored unless named.
const (
	Copy      UnaryOp = iota // y = x
	Neg                      // y = −x
	Scale                    // y = a·x
	AddScalar                // y = x + a
	Affine                   // y = a·x + b
	Relu                     // y = max(x, 0)
	Exp                      // y = eᕽ
	Log                      // y = ln x
	Sqrt                     // y = √x
	Rsqrt                    // y = 1/√x
	Square                   // y = x²
	Abs                      // y = |x|
	Clamp                    // y = min(max(x, a), b)
	Sigmoid                  // y = 1/(1+e⁻ˣ)
	Tanh                     // y = tanh x
	Softplus                 // y = ln(1+eˣ), stable
	PowScalar                // y = xᵃ
	// NumUnaryOps is the number of unary ops: the bound of tables and loops over them.
	NumUnaryOps
)

var unaryNames = [...]string{"copy", "neg", "scale", "add_scalar", "affine", "relu", "exp", "log", "sqrt", "rsqrt", "square", "abs", "clamp", "sigmoid", "tanh", "softplus", "pow_scalar"}

func (op UnaryOp) String() string {
	if op >= 0 && op < NumUnaryOps {
		return unaryNames[op]
	}
	return fmt.Sprintf("UnaryOp(%d)", int(op))
}

// BinaryOp selects an elementwise y = x ∘ z.
type BinaryOp int

// Binary ops.
const (
	Add          BinaryOp = iota // y = x + z
	Sub                          // y = x − z
	Mul                          // y = x·z
	Div                          // y = x/z
	Max                          // y = max(x, z)
	Min                          // y = min(x, z)
	ReluBackward                 // y = z where x > 0, else 0 (x: forward output or input, z: upstream gradient)
	// NumBinaryOps is the number of binary ops: the bound of tables and loops over them.
	NumBinaryOps
)

var binaryNames = [...]string{"add", "sub", "mul", "div", "max", "min", "relu_backward"}

func (op BinaryOp) String() string {
	if op >= 0 && op < NumBinaryOps {
		return binaryNames[op]
	}
	return fmt.Sprintf("BinaryOp(%d)", int(op))
}

// ReduceOp selects a reduction.
type ReduceOp int

// Reductions.
const (
	Sum ReduceOp = iota
	Mean
	MaxReduce
	// NumReduceOps is the number of reductions: the bound of tables and loops over them.
	NumReduceOps
)

var reduceNames = [...]string{"sum", "mean", "max"}

func (op ReduceOp) String() string {
	if op >= 0 && op < NumReduceOps {
		return reduceNames[op]
	}
	return fmt.Sprintf("ReduceOp(%d)", int(op))
}

// ReduceParams describes x viewed as (Outer, Len, Inner) reduced over Len.
type ReduceParams struct {
	Op                ReduceOp
	Outer, Len, Inner int
	Accumulate        bool
}

// SGDParams are PyTorch SGD's settings for one parameter group.
type SGDParams struct {
	LR, Momentum, WeightDecay, Dampening float32
	Nesterov                             bool
}

// AdamWParams are AdamW's settings for one step of one parameter group.
type AdamWParams struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Step                               int // 1-based
}

// HostMemory is implemented by backends whose tensors are Go memory
// (tensor.HostStorage): host slices can then be used in place.
type HostMemory interface {
	HostMemory() bool
}

// OnDevice returns a tensor holding data on b: the slice itself when b
// computes in host memory, else an uploaded copy. free releases what was
// allocated (a no-op for the host case).
func OnDevice(b Backend, data []float32, shape ...int) (t *tensor.Tensor, free func()) {
	if h, ok := b.(HostMemory); ok && h.HostMemory() {
		return tensor.FromSlice(data, shape...), func() {}
	}
	s := b.Alloc(tensor.Numel(shape))
	t = tensor.New(s, 0, shape...)
	b.Upload(t, data)
	return t, func() { b.Free(s) }
}
