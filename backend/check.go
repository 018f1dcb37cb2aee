package backend

import (
	"fmt"

	"github.com/dmlgo/dmlgo/tensor"
)

// The Check functions validate an op's arguments at the edge and panic with
// a message naming the op and the shapes. Backends call them first; kernels
// behind them trust their arguments.

func fail(op string, format string, args ...any) {
	panic(fmt.Sprintf("backend: %s: "+format, append([]any{op}, args...)...))
}

func checkContig(op, name string, t *tensor.Tensor) {
	if t == nil {
		fail(op, "%s is nil", name)
	}
	if !t.Contiguous() {
		fail(op, "%s %s is not contiguous", name, tensor.ShapeString(t.Shape()))
	}
}

func checkNumel(op, name string, t *tensor.Tensor, n int, want string) {
	checkContig(op, name, t)
	if t.Numel() != n {
		fail(op, "%s has shape %s (%d elements), want %s (%d elements)", name, tensor.ShapeString(t.Shape()), t.Numel(), want, n)
	}
}

// CheckGemm validates a (batched) GEMM.
func CheckGemm(p GemmParams, batch int, a, b, c *tensor.Tensor) {
	if p.M < 0 || p.N < 0 || p.K < 0 || batch < 1 {
		fail("gemm", "bad sizes M=%d N=%d K=%d batch=%d", p.M, p.N, p.K, batch)
	}
	ar, ac := p.M, p.K
	if p.TransA {
		ar, ac = ac, ar
	}
	br, bc := p.K, p.N
	if p.TransB {
		br, bc = bc, br
	}
	checkNumel("gemm", "A", a, batch*ar*ac, fmt.Sprintf("%d×(%d, %d)", batch, ar, ac))
	checkNumel("gemm", "B", b, batch*br*bc, fmt.Sprintf("%d×(%d, %d)", batch, br, bc))
	checkNumel("gemm", "C", c, batch*p.M*p.N, fmt.Sprintf("%d×(%d, %d)", batch, p.M, p.N))
}

// CheckConv validates a convolution's tensors: x (N,C,H,W), w (K,C/G,R,S), y (N,K,P,Q).
func CheckConv(op string, p Conv2dParams, x, w, y *tensor.Tensor) {
	g := p.G()
	if p.N < 1 || p.C < 1 || p.K < 1 || p.R < 1 || p.S < 1 || p.P() < 1 || p.Q() < 1 || p.C%g != 0 || p.K%g != 0 {
		fail(op, "bad parameters %+v (output %d×%d)", p, p.P(), p.Q())
	}
	checkNumel(op, "x", x, p.N*p.C*p.H*p.W, tensor.ShapeString([]int{p.N, p.C, p.H, p.W}))
	checkNumel(op, "w", w, p.K*(p.C/g)*p.R*p.S, tensor.ShapeString([]int{p.K, p.C / g, p.R, p.S}))
	checkNumel(op, "y", y, p.N*p.K*p.P()*p.Q(), tensor.ShapeString([]int{p.N, p.K, p.P(), p.Q()}))
}

// CheckPool validates pooling tensors: x (N,C,H,W), y (N,C,P,Q) and any extra of y's size.
func CheckPool(op string, p Pool2dParams, x, y *tensor.Tensor, extra ...*tensor.Tensor) {
	if p.N < 1 || p.C < 1 || p.R < 1 || p.S < 1 || p.P() < 1 || p.Q() < 1 || 2*p.PadH > p.R || 2*p.PadW > p.S {
		fail(op, "bad parameters %+v", p)
	}
	checkNumel(op, "x", x, p.N*p.C*p.H*p.W, tensor.ShapeString([]int{p.N, p.C, p.H, p.W}))
	ys := tensor.ShapeString([]int{p.N, p.C, p.P(), p.Q()})
	checkNumel(op, "y", y, p.N*p.C*p.P()*p.Q(), ys)
	for _, e := range extra {
		checkNumel(op, "argmax", e, p.N*p.C*p.P()*p.Q(), ys)
	}
}

// CheckSame validates that every tensor has n elements.
func CheckSame(op string, n int, ts ...*tensor.Tensor) {
	for i, t := range ts {
		checkNumel(op, fmt.Sprintf("argument %d", i), t, n, fmt.Sprint(n))
	}
}

// CheckBinary validates x, y of equal size and z of x's size, of its trailing
// dimensions (a row repeated), or a single element.
func CheckBinary(op BinaryOp, x, z, y *tensor.Tensor) {
	name := "binary " + op.String()
	checkContig(name, "x", x)
	checkContig(name, "z", z)
	checkNumel(name, "y", y, x.Numel(), tensor.ShapeString(x.Shape()))
	n, zn := x.Numel(), z.Numel()
	if zn != n && zn != 1 && (zn == 0 || lastDims(x, zn) < 0) {
		fail(name, "x %s and z %s do not broadcast (z must match x or its trailing dimensions)", tensor.ShapeString(x.Shape()), tensor.ShapeString(z.Shape()))
	}
}

// lastDims returns 0 when zn equals the product of some trailing dimensions of x, else −1.
func lastDims(x *tensor.Tensor, zn int) int {
	p := 1
	for i := x.Rank() - 1; i >= 0; i-- {
		p *= x.Dim(i)
		if p == zn {
			return 0
		}
	}
	return -1
}

// CheckBatchNorm validates batch norm tensors.
func CheckBatchNorm(op string, p BatchNormParams, x, y *tensor.Tensor, perChannel ...*tensor.Tensor) {
	if p.N < 1 || p.C < 1 || p.L < 1 {
		fail(op, "bad parameters %+v", p)
	}
	if p.Training && p.N*p.L < 2 {
		fail(op, "training needs more than one value per channel, got N=%d L=%d", p.N, p.L)
	}
	checkNumel(op, "x", x, p.N*p.C*p.L, tensor.ShapeString([]int{p.N, p.C, p.L}))
	checkNumel(op, "y", y, p.N*p.C*p.L, tensor.ShapeString([]int{p.N, p.C, p.L}))
	for i, t := range perChannel {
		if t != nil {
			checkNumel(op, fmt.Sprintf("per-channel argument %d", i), t, p.C, fmt.Sprintf("(%d)", p.C))
		}
	}
}

// CheckReduce validates a reduction.
func CheckReduce(p ReduceParams, x, y *tensor.Tensor) {
	name := "reduce " + p.Op.String()
	if p.Outer < 1 || p.Len < 1 || p.Inner < 1 {
		fail(name, "bad sizes %+v", p)
	}
	checkNumel(name, "x", x, p.Outer*p.Len*p.Inner, tensor.ShapeString([]int{p.Outer, p.Len, p.Inner}))
	checkNumel(name, "y", y, p.Outer*p.Inner, tensor.ShapeString([]int{p.Outer, p.Inner}))
}

// CheckRows validates (N, D) tensors and (N) vectors of an L2 normalisation.
func CheckRows(op string, x *tensor.Tensor, same []*tensor.Tensor, rows []*tensor.Tensor) {
	checkContig(op, "x", x)
	if x.Rank() != 2 {
		fail(op, "x must be (N, D), got %s", tensor.ShapeString(x.Shape()))
	}
	for _, t := range same {
		checkNumel(op, "argument", t, x.Numel(), tensor.ShapeString(x.Shape()))
	}
	for _, t := range rows {
		checkNumel(op, "norms", t, x.Dim(0), fmt.Sprintf("(%d)", x.Dim(0)))
	}
}

// CheckMargin validates a fused margin-softmax call.
func CheckMargin(p MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g MarginGrads) {
	op := "margin softmax " + p.Kind.String()
	if p.Kind < 0 || p.Kind >= numMarginKinds {
		fail(op, "unknown kind")
	}
	if p.N < 1 || p.C < 1 {
		fail(op, "bad sizes N=%d C=%d", p.N, p.C)
	}
	if len(labels) != p.N {
		fail(op, "%d labels for a batch of %d", len(labels), p.N)
	}
	for i, l := range labels {
		if l < 0 || int(l) >= p.C {
			fail(op, "label %d of sample %d is outside [0, %d)", l, i, p.C)
		}
	}
	nc := tensor.ShapeString([]int{p.N, p.C})
	checkNumel(op, "cos", cos, p.N*p.C, nc)
	checkNumel(op, "loss", loss, p.N, fmt.Sprintf("(%d)", p.N))
	if dcos != nil {
		checkNumel(op, "dcos", dcos, p.N*p.C, nc)
	}
	if p.Kind == MarginDMLClass {
		if p.ClassMargins == nil {
			fail(op, "ClassMargins is nil")
		}
		checkNumel(op, "ClassMargins", p.ClassMargins, p.C, fmt.Sprintf("(%d)", p.C))
	}
	if g.ClassMargins != nil {
		checkNumel(op, "grad ClassMargins", g.ClassMargins, p.C, fmt.Sprintf("(%d)", p.C))
	}
	if g.MP != nil {
		checkNumel(op, "grad MP", g.MP, 1, "(1)")
	}
	if p.Kind == MarginSphereFace && (p.M < 1 || p.M != float32(int(p.M))) {
		fail(op, "sphereface margin must be an integer ≥ 1, got %g", p.M)
	}
}
