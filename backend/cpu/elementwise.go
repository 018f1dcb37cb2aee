package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Elementwise ops: unary and binary maps (a binary op's z may repeat on
// each row of x), axpy and fill.

// Unary implements backend.Ops.
func (b *Backend) Unary(op backend.UnaryOp, x, y *tensor.Tensor, a, c float32) {
	backend.CheckUnary(op, x, y)
	xData, yData := x.HostData(), y.HostData()
	if b.ref {
		refUnary(op, xData, yData, a, c)
		return
	}
	splitElemsN(b, &elemLoops, len(xData), elemLoop{run: (*elemLoop).unaryRange, unary: op, x: xData, y: yData, a: a, c: c})
}

// Binary implements backend.Ops.
func (b *Backend) Binary(op backend.BinaryOp, x, z, y *tensor.Tensor) {
	backend.CheckBinary(op, x, z, y)
	xData, zData, yData := x.HostData(), z.HostData(), y.HostData()
	if b.ref || len(zData) != len(xData) {
		if len(zData) != len(xData) && !b.ref {
			// Row broadcast: split by whole rows.
			splitN(b, &elemLoops, len(xData)/len(zData), elemLoop{run: (*elemLoop).binaryRows, binary: op, x: xData, z: zData, y: yData})
			return
		}
		refBinary(op, xData, zData, yData)
		return
	}
	splitElemsN(b, &elemLoops, len(xData), elemLoop{run: (*elemLoop).binaryRange, binary: op, x: xData, z: zData, y: yData})
}

// Axpy implements backend.Ops.
func (b *Backend) Axpy(alpha float32, x, y *tensor.Tensor) {
	backend.CheckSame("axpy", x.Numel(), x, y)
	xData, yData := x.HostData(), y.HostData()
	if b.ref {
		for i, v := range xData {
			yData[i] += alpha * v
		}
		return
	}
	splitElemsN(b, &elemLoops, len(xData), elemLoop{run: (*elemLoop).axpyRange, x: xData, y: yData, a: alpha})
}

// Fill implements backend.Ops.
func (b *Backend) Fill(y *tensor.Tensor, v float32) {
	backend.CheckSame("fill", y.Numel(), y)
	yData := y.HostData()
	for i := range yData {
		yData[i] = v
	}
}

// elemLoop is the loop of the elementwise ops over elements (over rows of
// len(z) for binaryRows): run, one of the methods below, does [lo, hi).
type elemLoop struct {
	run     func(k *elemLoop, lo, hi int)
	unary   backend.UnaryOp
	binary  backend.BinaryOp
	x, z, y []float32
	a, c    float32
}

var elemLoops freeList[elemLoop]

func (k *elemLoop) chunk(lo, hi int) { k.run(k, lo, hi) }

// unaryRange: y = op(x; a, c).
func (k *elemLoop) unaryRange(lo, hi int) {
	unaryFast(k.unary, k.x[lo:hi], k.y[lo:hi], k.a, k.c)
}

// binaryRange: y = x op z.
func (k *elemLoop) binaryRange(lo, hi int) {
	binaryFast(k.binary, k.x[lo:hi], k.z[lo:hi], k.y[lo:hi])
}

// binaryRows: y = x op z, z repeated on each row (rows [lo, hi)).
func (k *elemLoop) binaryRows(lo, hi int) {
	n := len(k.z)
	refBinary(k.binary, k.x[lo*n:hi*n], k.z, k.y[lo*n:hi*n])
}

// axpyRange: y += a·x.
func (k *elemLoop) axpyRange(lo, hi int) {
	axpy(k.a, k.x[lo:hi], k.y[lo:hi])
}

// Fast paths of the elementwise ops (and the vector primitives of the
// other families: conv, norm). They compute what the reference kernels
// compute, on ranges that the Backend spreads over threads. Each hands the
// longest whole-vector prefix of its slices to the active level's assembly
// kernel (the *Vec functions of kernels_amd64.go; none in a noasm build)
// and finishes the rest with the Go loop it documents.

// axpy is: for i, v := range x { y[i] += a*v }
func axpy(a float32, x, y []float32) {
	y = y[:len(x)]
	for i := axpyVec(a, x, y); i < len(x); i++ {
		y[i] += a * x[i]
	}
}

// scale is: for i, v := range x { y[i] = a*v }
func scale(a float32, x, y []float32) {
	y = y[:len(x)]
	for i := scaleVec(a, x, y); i < len(x); i++ {
		y[i] = a * x[i]
	}
}

// affine is: for i, v := range x { y[i] = a*v + c }, with a fused
// multiply-add where the SIMD kernel runs (one rounding instead of two).
func affine(a, c float32, x, y []float32) {
	y = y[:len(x)]
	for i := affineVec(a, c, x, y); i < len(x); i++ {
		y[i] = a*x[i] + c
	}
}

// relu is: for i, v := range x { if v > 0 || v != v { y[i] = v } else { y[i] = 0 } }
// (NaN stays NaN, −0 becomes +0: Go's max(v, 0)).
func relu(x, y []float32) {
	y = y[:len(x)]
	for i := reluVec(x, y); i < len(x); i++ {
		if v := x[i]; v > 0 || v != v {
			y[i] = v
		} else {
			y[i] = 0
		}
	}
}

// reluBackward is: for i, v := range x { if v > 0 { y[i] = z[i] } else { y[i] = 0 } }
func reluBackward(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i := reluBackwardVec(x, z, y); i < len(x); i++ {
		if x[i] > 0 {
			y[i] = z[i]
		} else {
			y[i] = 0
		}
	}
}

// add is: for i, v := range x { y[i] = v + z[i] }
func add(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i := addVec(x, z, y); i < len(x); i++ {
		y[i] = x[i] + z[i]
	}
}

// affineRelu is affine(a, c, x, y) then relu(y, y) in one pass. It
// returns the largest value of y (0 when y is empty), which the int8 path
// needs to scale the next convolution's input; when y holds a NaN, hi may
// or may not be NaN (as with minMax).
func affineRelu(a, c float32, x, y []float32) (hi float32) {
	y = y[:len(x)]
	n, hi := affineReluVec(a, c, x, y)
	affine(a, c, x[n:], y[n:])
	relu(y[n:], y[n:])
	return maxFrom(hi, y[n:])
}

// affineAddRelu is affine(a, c, x, y), add(y, z, y) then relu(y, y) in
// one pass, with affineRelu's result.
func affineAddRelu(a, c float32, x, z, y []float32) (hi float32) {
	z, y = z[:len(x)], y[:len(x)]
	n, hi := affineAddReluVec(a, c, x, z, y)
	affine(a, c, x[n:], y[n:])
	add(y[n:], z[n:], y[n:])
	relu(y[n:], y[n:])
	return maxFrom(hi, y[n:])
}

// maxFrom is the largest of hi and the values of y.
func maxFrom(hi float32, y []float32) float32 {
	for _, v := range y {
		hi = max(hi, v)
	}
	return hi
}

// mul is: for i, v := range x { y[i] = v * z[i] }
func mul(x, z, y []float32) {
	z, y = z[:len(x)], y[:len(x)]
	for i := mulVec(x, z, y); i < len(x); i++ {
		y[i] = x[i] * z[i]
	}
}

// unaryFast: y = f(x) with the common ops out of the switch.
func unaryFast(op backend.UnaryOp, x, y []float32, a, b float32) {
	switch op {
	case backend.Copy:
		copy(y[:len(x)], x)
	case backend.Scale:
		scale(a, x, y)
	case backend.Relu:
		relu(x, y)
	default:
		refUnary(op, x, y, a, b)
	}
}

// binaryFast: y = x ∘ z, same lengths.
func binaryFast(op backend.BinaryOp, x, z, y []float32) {
	switch op {
	case backend.Add:
		add(x, z, y)
	case backend.Mul:
		mul(x, z, y)
	case backend.ReluBackward:
		reluBackward(x, z, y)
	default:
		refBinary(op, x, z, y)
	}
}

// The reference kernels.

// unaryFn is the scalar form of each unary op (a, b its parameters).
func unaryFn(op backend.UnaryOp, v, a, b float32) float32 {
	x := float64(v)
	switch op {
	case backend.Copy:
		return v
	case backend.Neg:
		return -v
	case backend.Scale:
		return a * v
	case backend.AddScalar:
		return v + a
	case backend.Affine:
		return a*v + b
	case backend.Relu:
		// Go's max(v, 0): NaN stays NaN (as in PyTorch, so that a
		// divergence shows), −0 becomes +0.
		if v > 0 || v != v {
			return v
		}
		return 0
	case backend.Exp:
		return float32(math.Exp(x))
	case backend.Log:
		return float32(math.Log(x))
	case backend.Sqrt:
		return float32(math.Sqrt(x))
	case backend.Rsqrt:
		return float32(1 / math.Sqrt(x))
	case backend.Square:
		return v * v
	case backend.Abs:
		return float32(math.Abs(x))
	case backend.Clamp:
		return min(max(v, a), b)
	case backend.Sigmoid:
		return float32(1 / (1 + math.Exp(-x)))
	case backend.Tanh:
		return float32(math.Tanh(x))
	case backend.Softplus:
		// ln(1+eˣ) = max(x, 0) + ln(1+e^−|x|)
		return float32(math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))))
	case backend.PowScalar:
		return float32(math.Pow(x, float64(a)))
	}
	panic("cpu: unknown unary op " + op.String())
}

// refUnary: y[i] = f(x[i]).
func refUnary(op backend.UnaryOp, x, y []float32, a, b float32) {
	for i, v := range x {
		y[i] = unaryFn(op, v, a, b)
	}
}

// binaryFn is the scalar form of each binary op.
func binaryFn(op backend.BinaryOp, x, z float32) float32 {
	switch op {
	case backend.Add:
		return x + z
	case backend.Sub:
		return x - z
	case backend.Mul:
		return x * z
	case backend.Div:
		return x / z
	case backend.Max:
		return max(x, z)
	case backend.Min:
		return min(x, z)
	case backend.ReluBackward:
		// z where x > 0: nothing passes where x is NaN or ±0.
		if x > 0 {
			return z
		}
		return 0
	}
	panic("cpu: unknown binary op " + op.String())
}

// refBinary: y[i] = x[i] ∘ z[i mod len(z)].
func refBinary(op backend.BinaryOp, x, z, y []float32) {
	for i, v := range x {
		y[i] = binaryFn(op, v, z[i%len(z)])
	}
}
