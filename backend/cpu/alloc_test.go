package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestOpsAllocateNothing: every op of the backend, on two threads and at
// sizes that take the parallel paths, allocates nothing on the Go heap
// once warm: its parallel loop's arguments, the team's job and the
// scratch buffers are all kept between calls. Fewer allocations over all
// calls than calls: none recurs per call. runtime.MemStats counts every
// goroutine of the process, so the measure is the fewest allocations over
// several rounds: another goroutine's sporadic allocations do not land in
// every round, an op's own do.
func TestOpsAllocateNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("many calls of every op")
	}
	b := New(2)
	r := rand.New(rand.NewPCG(5, 5))
	ten := func(shape ...int) *tensor.Tensor { return tensor.FromSlice(randSlice(r, prod(shape)), shape...) }
	pos := func(shape ...int) *tensor.Tensor {
		t := ten(shape...)
		for i, v := range t.HostData() {
			t.HostData()[i] = 0.5 + v*v
		}
		return t
	}
	conv := backend.Conv2dParams{N: 4, C: 16, H: 16, W: 16, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	strided := backend.Conv2dParams{N: 4, C: 16, H: 16, W: 16, K: 32, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	x, w, y := ten(4, 16, 16, 16), ten(16, 16, 3, 3), ten(4, 16, 16, 16)
	ws, ys := ten(32, 16, 3, 3), ten(4, 32, 8, 8)
	bn := backend.BatchNormParams{N: 4, C: 16, L: 256, Training: true, Momentum: 0.1, Eps: 1e-5}
	c16 := func() *tensor.Tensor { return ten(16) }
	mean, inv, rm, rv := c16(), pos(16), c16(), pos(16)
	pool := backend.Pool2dParams{N: 4, C: 16, H: 16, W: 16, R: 2, S: 2, StrideH: 2, StrideW: 2}
	py, arg := ten(4, 16, 8, 8), ten(4, 16, 8, 8)
	big, big2, big3 := ten(1<<16), ten(1<<16), ten(1<<16)
	rows, rows2 := ten(256, 256), ten(256, 256)
	row := ten(256)
	cos, dcos := ten(64, 100), ten(64, 100)
	for i, v := range cos.HostData() {
		cos.HostData()[i] = v / 4
	}
	labels := make([]int32, 64)
	for i := range labels {
		labels[i] = int32(r.IntN(100))
	}
	loss, cm, gcm, gmp := ten(64), pos(100), ten(100), ten(1)
	m128, n128, c128 := ten(128, 128), ten(128, 128), ten(128, 128)
	ba, bb, bc := ten(16, 16, 16), ten(16, 16, 16), ten(16, 16, 16)
	gap, gamma, beta, dgamma, v := ten(4, 16), c16(), c16(), c16(), pos(1<<16)
	emb, embY, norms := ten(256, 64), ten(256, 64), ten(256)
	ops := []struct {
		name string
		f    func()
	}{
		{"gemm", func() { b.Gemm(backend.GemmParams{M: 128, N: 128, K: 128, Alpha: 1}, m128, n128, c128) }},
		{"gemm batched", func() { b.GemmBatched(backend.GemmParams{M: 16, N: 16, K: 16, Alpha: 1}, 16, ba, bb, bc) }},
		{"conv forward", func() { b.Conv2dForward(conv, x, w, y) }},
		{"conv backward data", func() { b.Conv2dBackwardData(conv, y, w, x) }},
		{"conv backward filter", func() { b.Conv2dBackwardFilter(conv, x, y, w) }},
		{"winograd conv forward", winogradOn(func() { b.Conv2dForward(conv, x, w, y) })},
		{"winograd conv backward data", winogradOn(func() { b.Conv2dBackwardData(conv, y, w, x) })},
		{"winograd conv backward filter", winogradOn(func() { b.Conv2dBackwardFilter(conv, x, y, w) })},
		{"strided conv forward", func() { b.Conv2dForward(strided, x, ws, ys) }},
		{"strided conv backward data", func() { b.Conv2dBackwardData(strided, ys, ws, x) }},
		{"strided conv backward filter", func() { b.Conv2dBackwardFilter(strided, x, ys, ws) }},
		{"batchnorm forward", func() { b.BatchNormForward(bn, x, gamma, beta, rm, rv, y, mean, inv) }},
		{"batchnorm backward", func() { b.BatchNormBackward(bn, x, y, gamma, mean, inv, x, dgamma, beta) }},
		{"maxpool forward", func() { b.MaxPool2dForward(pool, x, py, arg) }},
		{"maxpool backward", func() { b.MaxPool2dBackward(pool, py, arg, x) }},
		{"avgpool forward", func() { b.AvgPool2dForward(pool, x, py) }},
		{"avgpool backward", func() { b.AvgPool2dBackward(pool, py, x) }},
		{"global avgpool forward", func() { b.GlobalAvgPoolForward(x, gap) }},
		{"global avgpool backward", func() { b.GlobalAvgPoolBackward(gap, x) }},
		{"unary", func() { b.Unary(backend.Relu, big, big2, 0, 0) }},
		{"binary", func() { b.Binary(backend.Mul, big, big2, big3) }},
		{"binary rows", func() { b.Binary(backend.Add, rows, row, rows2) }},
		{"axpy", func() { b.Axpy(0.5, big, big2) }},
		{"reduce", func() {
			b.Reduce(backend.ReduceParams{Op: backend.Sum, Outer: 256, Len: 256, Inner: 1}, rows, norms)
		}},
		{"l2 normalize forward", func() { b.L2NormalizeForward(1e-6, emb, embY, norms) }},
		{"l2 normalize backward", func() { b.L2NormalizeBackward(embY, norms, emb, embY, false) }},
		{"margin", func() {
			p := backend.MarginParams{Kind: backend.MarginDMLClass, N: 64, C: 100, S: 8, MP: 0.1, Eps: 1e-6, ClassMargins: cm}
			b.MarginSoftmaxCE(p, cos, labels, loss, dcos, backend.MarginGrads{ClassMargins: gcm, MP: gmp})
		}},
		{"sgd", func() { b.SGDStep(backend.SGDParams{LR: 1e-3, Momentum: 0.9}, big, big2, big3) }},
		{"adamw", func() {
			b.AdamWStep(backend.AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1}, big, big2, big3, v)
		}},
	}
	for _, op := range ops {
		const calls = 10
		for range 3 {
			op.f()
		}
		n := allocs.Mallocs(3, func() {
			for range calls {
				op.f()
			}
		})
		if n >= calls {
			t.Errorf("%s: %d warm calls made %d heap allocations in every round, want fewer than one per call", op.name, calls, n)
		}
	}
}

// winogradOn is f with every convolution Winograd can compute taken
// through it.
func winogradOn(f func()) func() {
	return func() {
		old := wgMode.Swap(int32(WinogradAlways)) // SetWinograd's closure would allocate
		f()
		wgMode.Store(old)
	}
}
