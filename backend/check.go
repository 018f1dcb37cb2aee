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

// checkNumel checks that t is contiguous and holds as many elements as the
// shape want. The message is built only on failure: the checks run on every
// op call and must not allocate.
func checkNumel(op, name string, t *tensor.Tensor, want ...int) {
	checkNumelIdx(op, name, -1, t, want...)
}

// checkNumelIdx is checkNumel for the i-th of several arguments named name.
func checkNumelIdx(op, name string, i int, t *tensor.Tensor, want ...int) {
	if t == nil {
		fail(op, "%s is nil", argName(name, i))
	}
	n := 1
	for _, d := range want {
		n *= d
	}
	if !t.Contiguous() {
		fail(op, "%s %s is not contiguous", argName(name, i), tensor.ShapeString(t.Shape()))
	}
	if t.Numel() != n {
		fail(op, "%s has shape %s (%d elements), want %s (%d elements)", argName(name, i), tensor.ShapeString(t.Shape()), t.Numel(), tensor.ShapeString(want), n)
	}
}

func argName(name string, i int) string {
	if i < 0 {
		return name
	}
	return fmt.Sprintf("%s %d", name, i)
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
	checkNumel("gemm", "A", a, batch, ar, ac)
	checkNumel("gemm", "B", b, batch, br, bc)
	checkNumel("gemm", "C", c, batch, p.M, p.N)
}

// CheckConv validates a convolution's tensors: x (N,C,H,W), w (K,C/G,R,S), y (N,K,P,Q).
func CheckConv(op string, p Conv2dParams, x, w, y *tensor.Tensor) {
	g := p.G()
	if p.N < 1 || p.C < 1 || p.K < 1 || p.R < 1 || p.S < 1 || p.P() < 1 || p.Q() < 1 || p.C%g != 0 || p.K%g != 0 {
		fail(op, "bad parameters %+v (output %d×%d)", p, p.P(), p.Q())
	}
	checkNumel(op, "x", x, p.N, p.C, p.H, p.W)
	checkNumel(op, "w", w, p.K, p.C/g, p.R, p.S)
	checkNumel(op, "y", y, p.N, p.K, p.P(), p.Q())
}

// CheckConvPool validates a convolution whose output (never a tensor of
// its own) pool reads: x and w as CheckConv, pool over (N, K, P, Q), and
// y (N, K, pool.P, pool.Q).
func CheckConvPool(op string, p Conv2dParams, pool Pool2dParams, x, w, y *tensor.Tensor) {
	g := p.G()
	if p.N < 1 || p.C < 1 || p.K < 1 || p.R < 1 || p.S < 1 || p.P() < 1 || p.Q() < 1 || p.C%g != 0 || p.K%g != 0 {
		fail(op, "bad parameters %+v (output %d×%d)", p, p.P(), p.Q())
	}
	if pool.N != p.N || pool.C != p.K || pool.H != p.P() || pool.W != p.Q() {
		fail(op, "pooling over (%d, %d, %d, %d), but the convolution's output is (%d, %d, %d, %d)", pool.N, pool.C, pool.H, pool.W, p.N, p.K, p.P(), p.Q())
	}
	if pool.R < 1 || pool.S < 1 || pool.P() < 1 || pool.Q() < 1 || 2*pool.PadH > pool.R || 2*pool.PadW > pool.S {
		fail(op, "bad pooling parameters %+v", pool)
	}
	checkNumel(op, "x", x, p.N, p.C, p.H, p.W)
	checkNumel(op, "w", w, p.K, p.C/g, p.R, p.S)
	checkNumel(op, "y", y, p.N, p.K, pool.P(), pool.Q())
}

// CheckPool validates pooling tensors: x (N,C,H,W), y (N,C,P,Q) and any extra of y's size.
func CheckPool(op string, p Pool2dParams, x, y *tensor.Tensor, extra ...*tensor.Tensor) {
	if p.N < 1 || p.C < 1 || p.R < 1 || p.S < 1 || p.P() < 1 || p.Q() < 1 || 2*p.PadH > p.R || 2*p.PadW > p.S {
		fail(op, "bad parameters %+v", p)
	}
	checkNumel(op, "x", x, p.N, p.C, p.H, p.W)
	checkNumel(op, "y", y, p.N, p.C, p.P(), p.Q())
	for _, e := range extra {
		checkNumel(op, "argmax", e, p.N, p.C, p.P(), p.Q())
	}
}

// CheckSame validates that every tensor has n elements.
func CheckSame(op string, n int, ts ...*tensor.Tensor) {
	for i, t := range ts {
		checkNumelIdx(op, "argument", i, t, n)
	}
}

// CheckUnary validates x and y of the same number of elements.
func CheckUnary(op UnaryOp, x, y *tensor.Tensor) {
	CheckSame(checkName(unaryCheckNames[:], "unary ", op, op.String), x.Numel(), x, y)
}

// CheckBinary validates x, y of equal size and z of x's size, of its trailing
// dimensions (a row repeated), or a single element.
func CheckBinary(op BinaryOp, x, z, y *tensor.Tensor) {
	name := checkName(binaryCheckNames[:], "binary ", op, op.String)
	checkContig(name, "x", x)
	checkContig(name, "z", z)
	checkNumel(name, "y", y, x.Numel())
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
	checkNumel(op, "x", x, p.N, p.C, p.L)
	checkNumel(op, "y", y, p.N, p.C, p.L)
	for i, t := range perChannel {
		if t != nil {
			checkNumelIdx(op, "per-channel argument", i, t, p.C)
		}
	}
}

// CheckReduce validates a reduction.
func CheckReduce(p ReduceParams, x, y *tensor.Tensor) {
	name := checkName(reduceCheckNames[:], "reduce ", p.Op, p.Op.String)
	if p.Outer < 1 || p.Len < 1 || p.Inner < 1 {
		fail(name, "bad sizes %+v", p)
	}
	checkNumel(name, "x", x, p.Outer, p.Len, p.Inner)
	checkNumel(name, "y", y, p.Outer, p.Inner)
}

// CheckRows validates (N, D) tensors and (N) vectors of an L2 normalisation.
func CheckRows(op string, x *tensor.Tensor, same []*tensor.Tensor, rows []*tensor.Tensor) {
	checkContig(op, "x", x)
	if x.Rank() != 2 {
		fail(op, "x must be (N, D), got %s", tensor.ShapeString(x.Shape()))
	}
	for _, t := range same {
		checkNumel(op, "argument", t, x.Dim(0), x.Dim(1))
	}
	for _, t := range rows {
		checkNumel(op, "norms", t, x.Dim(0))
	}
}

// CheckMargin validates a fused margin-softmax call.
func CheckMargin(p MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g MarginGrads) {
	op := checkName(marginCheckNames[:], "margin softmax ", p.Kind, p.Kind.String)
	if p.Kind < 0 || p.Kind >= NumMarginKinds {
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
	checkNumel(op, "cos", cos, p.N, p.C)
	checkNumel(op, "loss", loss, p.N)
	if dcos != nil {
		checkNumel(op, "dcos", dcos, p.N, p.C)
	}
	if p.Kind == MarginDMLClass {
		if p.ClassMargins == nil {
			fail(op, "ClassMargins is nil")
		}
		checkNumel(op, "ClassMargins", p.ClassMargins, p.C)
	}
	if g.ClassMargins != nil {
		checkNumel(op, "grad ClassMargins", g.ClassMargins, p.C)
	}
	if g.MP != nil {
		checkNumel(op, "grad MP", g.MP, 1)
	}
	if p.MPFrom != nil {
		checkNumel(op, "MPFrom", p.MPFrom, 1)
	}
	if p.Kind == MarginSphereFace && (p.M < 1 || p.M != float32(int(p.M))) {
		fail(op, "sphereface margin must be an integer ≥ 1, got %g", p.M)
	}
}

// The ops' names in messages, built once so the checks do not allocate.
var (
	unaryCheckNames  [NumUnaryOps]string
	binaryCheckNames [NumBinaryOps]string
	reduceCheckNames [NumReduceOps]string
	marginCheckNames [NumMarginKinds]string
)

func init() {
	for i := range unaryCheckNames {
		unaryCheckNames[i] = "unary " + UnaryOp(i).String()
	}
	for i := range binaryCheckNames {
		binaryCheckNames[i] = "binary " + BinaryOp(i).String()
	}
	for i := range reduceCheckNames {
		reduceCheckNames[i] = "reduce " + ReduceOp(i).String()
	}
	for i := range marginCheckNames {
		marginCheckNames[i] = "margin softmax " + MarginKind(i).String()
	}
}

func checkName[E ~int](names []string, prefix string, e E, str func() string) string {
	if e >= 0 && int(e) < len(names) {
		return names[e]
	}
	return prefix + str()
}

// CheckProject validates the operands of ProjectMargins.
func CheckProject(p ProjectParams, mp, rho *tensor.Tensor) {
	const op = "project margins"
	if rho == nil || rho.Numel() < 1 {
		fail(op, "no class margins")
	}
	if mp != nil {
		checkNumel(op, "mp", mp, 1)
	}
}
