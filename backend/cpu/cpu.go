// Package cpu is dmlgo's CPU backend: a plain Go reference kernel for every
// op (ref.go, the oracle kept forever), and fast paths (blocked GEMM with
// SIMD micro-kernels chosen at run time, im2col convolution, parallel loops)
// selected per op.
//
// The backend registers itself as "cpu". NewReference returns a backend that
// runs only the reference kernels, which tests compare everything against.
package cpu

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

func init() {
	initLevel()
	initBlocking()
	backend.Register("cpu", func() (backend.Backend, error) { return New(0), nil })
}

// Backend is the CPU backend. It is safe for concurrent use.
type Backend struct {
	ref     bool // reference kernels only
	threads int  // 0: GOMAXPROCS at each call
	poison  bool // AllocUninit fills NaN (SetPoison)
	pool    pool
}

// New returns a fast CPU backend using threads goroutines per op (0: GOMAXPROCS).
func New(threads int) *Backend { return &Backend{threads: threads} }

// NewReference returns a backend that runs only the single-threaded
// reference kernels.
func NewReference() *Backend { return &Backend{ref: true, threads: 1} }

// Threads is the number of goroutines an op may use.
func (b *Backend) Threads() int {
	if b.threads > 0 {
		return b.threads
	}
	return runtime.GOMAXPROCS(0)
}

// SetThreads changes the thread count (0: GOMAXPROCS).
func (b *Backend) SetThreads(n int) { b.threads = n }

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cpu" }

// Describe implements backend.Backend.
func (b *Backend) Describe() string {
	if b.ref {
		return "cpu reference kernels, 1 thread"
	}
	s := fmt.Sprintf("cpu %s, SIMD %v, %d thread", cpuName(), ActiveLevel(), b.Threads())
	if b.Threads() != 1 {
		s += "s"
	}
	if levelNote != "" {
		s += " (" + levelNote + ")"
	}
	return s
}

// Level is the SIMD level this backend runs at.
func (b *Backend) Level() Level {
	if b.ref {
		return Generic
	}
	return ActiveLevel()
}

// pool recycles host storage by exact size, so steady-state training
// allocates nothing per step.
type pool struct {
	mu   sync.Mutex
	free map[int][]*tensor.HostStorage
}

// Alloc implements backend.Backend: zeroed storage.
func (b *Backend) Alloc(n int) tensor.Storage {
	s := b.take(n)
	clear(s.Data)
	return s
}

// AllocUninit implements backend.UninitAllocator: a pooled buffer as it was
// left, or NaN everywhere after SetPoison(true).
func (b *Backend) AllocUninit(n int) tensor.Storage {
	s := b.take(n)
	if b.poison {
		nan := float32(math.NaN())
		for i := range s.Data {
			s.Data[i] = nan
		}
	}
	return s
}

// SetPoison makes AllocUninit fill its buffers with NaN, so that a reader
// of memory no op has written shows in its results (for tests).
func (b *Backend) SetPoison(on bool) { b.poison = on }

// take returns a pooled buffer of n elements, or a new (zeroed) one.
func (b *Backend) take(n int) *tensor.HostStorage {
	b.pool.mu.Lock()
	if l := b.pool.free[n]; len(l) > 0 {
		s := l[len(l)-1]
		b.pool.free[n] = l[:len(l)-1]
		b.pool.mu.Unlock()
		return s
	}
	b.pool.mu.Unlock()
	return &tensor.HostStorage{Data: make([]float32, n)}
}

// Free implements backend.Backend.
func (b *Backend) Free(s tensor.Storage) {
	h, ok := s.(*tensor.HostStorage)
	if !ok || h == nil {
		panic(fmt.Sprintf("cpu: Free of a %T", s))
	}
	b.pool.mu.Lock()
	if b.pool.free == nil {
		b.pool.free = map[int][]*tensor.HostStorage{}
	}
	b.pool.free[len(h.Data)] = append(b.pool.free[len(h.Data)], h)
	b.pool.mu.Unlock()
}

// Upload implements backend.Backend.
func (b *Backend) Upload(dst *tensor.Tensor, src []float32) {
	backend.CheckSame("upload", len(src), dst)
	copy(dst.HostData(), src)
}

// Download implements backend.Backend.
func (b *Backend) Download(dst []float32, src *tensor.Tensor) {
	backend.CheckSame("download", len(dst), src)
	copy(dst, src.HostData())
}

// Copy implements backend.Backend.
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	backend.CheckSame("copy", src.Numel(), dst)
	copy(dst.HostData(), src.HostData())
}

// HostMemory reports that tensors of this backend live in Go memory, so
// callers may wrap host slices (tensor.FromSlice) instead of uploading.
func (b *Backend) HostMemory() bool { return true }

// Synchronize implements backend.Backend; CPU work is synchronous.
func (b *Backend) Synchronize() error { return nil }

// Gemm implements backend.Ops.
func (b *Backend) Gemm(p backend.GemmParams, a, bm, c *tensor.Tensor) {
	b.GemmBatched(p, 1, a, bm, c)
}

// GemmBatched implements backend.Ops.
func (b *Backend) GemmBatched(p backend.GemmParams, batch int, a, bm, c *tensor.Tensor) {
	backend.CheckGemm(p, batch, a, bm, c)
	A, B, C := a.HostData(), bm.HostData(), c.HostData()
	sa, sb, sc := p.M*p.K, p.K*p.N, p.M*p.N
	if b.ref {
		for i := 0; i < batch; i++ {
			refGemm(p, A[i*sa:(i+1)*sa], B[i*sb:(i+1)*sb], C[i*sc:(i+1)*sc])
		}
		return
	}
	lda, ldb := p.K, p.N
	if p.TransA {
		lda = p.M
	}
	if p.TransB {
		ldb = p.K
	}
	th := b.Threads()
	if batch >= th && th > 1 {
		// Many small products: one goroutine per share of the batch.
		parallelFor(batch, th, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				sgemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, A[i*sa:], lda, B[i*sb:], ldb, p.Beta, C[i*sc:], p.N, 1)
			}
		})
		return
	}
	for i := 0; i < batch; i++ {
		sgemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, A[i*sa:], lda, B[i*sb:], ldb, p.Beta, C[i*sc:], p.N, th)
	}
}

// MaxPool2dForward implements backend.Ops.
func (b *Backend) MaxPool2dForward(p backend.Pool2dParams, x, y, argmax *tensor.Tensor) {
	backend.CheckPool("maxpool2d forward", p, x, y, argmax)
	X, Y, A := x.HostData(), y.HostData(), argmax.HostData()
	in, out := p.H*p.W, p.P()*p.Q()
	b.split(p.N, func(lo, hi int) {
		q := p
		q.N = hi - lo
		refMaxPoolForward(q, X[lo*p.C*in:hi*p.C*in], Y[lo*p.C*out:hi*p.C*out], A[lo*p.C*out:hi*p.C*out])
	})
}

// MaxPool2dBackward implements backend.Ops.
func (b *Backend) MaxPool2dBackward(p backend.Pool2dParams, dy, argmax, dx *tensor.Tensor) {
	backend.CheckPool("maxpool2d backward", p, dx, dy, argmax)
	DY, A, DX := dy.HostData(), argmax.HostData(), dx.HostData()
	in, out := p.H*p.W, p.P()*p.Q()
	b.split(p.N, func(lo, hi int) {
		q := p
		q.N = hi - lo
		refMaxPoolBackward(q, DY[lo*p.C*out:hi*p.C*out], A[lo*p.C*out:hi*p.C*out], DX[lo*p.C*in:hi*p.C*in])
	})
}

// AvgPool2dForward implements backend.Ops.
func (b *Backend) AvgPool2dForward(p backend.Pool2dParams, x, y *tensor.Tensor) {
	backend.CheckPool("avgpool2d forward", p, x, y)
	X, Y := x.HostData(), y.HostData()
	in, out := p.H*p.W, p.P()*p.Q()
	b.split(p.N, func(lo, hi int) {
		q := p
		q.N = hi - lo
		refAvgPoolForward(q, X[lo*p.C*in:hi*p.C*in], Y[lo*p.C*out:hi*p.C*out])
	})
}

// AvgPool2dBackward implements backend.Ops.
func (b *Backend) AvgPool2dBackward(p backend.Pool2dParams, dy, dx *tensor.Tensor) {
	backend.CheckPool("avgpool2d backward", p, dx, dy)
	DY, DX := dy.HostData(), dx.HostData()
	in, out := p.H*p.W, p.P()*p.Q()
	b.split(p.N, func(lo, hi int) {
		q := p
		q.N = hi - lo
		refAvgPoolBackward(q, DY[lo*p.C*out:hi*p.C*out], DX[lo*p.C*in:hi*p.C*in])
	})
}

func checkGAP(op string, x, y *tensor.Tensor) (nc, l int) {
	if x.Rank() != 4 || y.Numel() != x.Dim(0)*x.Dim(1) || !x.Contiguous() || !y.Contiguous() {
		panic(fmt.Sprintf("backend: %s: x %s must be (N, C, H, W) and y %s (N, C)", op, tensor.ShapeString(x.Shape()), tensor.ShapeString(y.Shape())))
	}
	return x.Dim(0) * x.Dim(1), x.Dim(2) * x.Dim(3)
}

// GlobalAvgPoolForward implements backend.Ops.
func (b *Backend) GlobalAvgPoolForward(x, y *tensor.Tensor) {
	nc, l := checkGAP("global avgpool forward", x, y)
	X, Y := x.HostData(), y.HostData()
	b.split(nc, func(lo, hi int) { refGlobalAvgPoolForward(hi-lo, l, X[lo*l:hi*l], Y[lo:hi]) })
}

// GlobalAvgPoolBackward implements backend.Ops.
func (b *Backend) GlobalAvgPoolBackward(dy, dx *tensor.Tensor) {
	nc, l := checkGAP("global avgpool backward", dx, dy)
	DY, DX := dy.HostData(), dx.HostData()
	b.split(nc, func(lo, hi int) { refGlobalAvgPoolBackward(hi-lo, l, DY[lo:hi], DX[lo*l:hi*l]) })
}

// BatchNormForward implements backend.Ops.
func (b *Backend) BatchNormForward(p backend.BatchNormParams, x, gamma, beta, runMean, runVar, y, saveMean, saveInvStd *tensor.Tensor) {
	backend.CheckBatchNorm("batchnorm forward", p, x, y, gamma, beta, runMean, runVar, saveMean, saveInvStd)
	if p.Training && (saveMean == nil || saveInvStd == nil) {
		panic("backend: batchnorm forward: training needs saveMean and saveInvStd")
	}
	X, Y := x.HostData(), y.HostData()
	G, Bt, RM, RV := gamma.HostData(), beta.HostData(), runMean.HostData(), runVar.HostData()
	var SM, SI []float32
	if p.Training {
		SM, SI = saveMean.HostData(), saveInvStd.HostData()
	}
	if b.ref {
		refBatchNormForward(p, X, G, Bt, RM, RV, Y, SM, SI)
		return
	}
	b.split(p.C, func(lo, hi int) { bnForwardChannels(p, lo, hi, X, G, Bt, RM, RV, Y, SM, SI) })
}

// BatchNormBackward implements backend.Ops.
func (b *Backend) BatchNormBackward(p backend.BatchNormParams, x, dy, gamma, saveMean, saveInvStd, dx, dgamma, dbeta *tensor.Tensor) {
	backend.CheckBatchNorm("batchnorm backward", p, x, dx, gamma, saveMean, saveInvStd, dgamma, dbeta)
	backend.CheckSame("batchnorm backward", x.Numel(), dy)
	X, DY, G, SM, SI := x.HostData(), dy.HostData(), gamma.HostData(), saveMean.HostData(), saveInvStd.HostData()
	DX, DG, DB := dx.HostData(), dgamma.HostData(), dbeta.HostData()
	if b.ref {
		refBatchNormBackward(p, X, DY, G, SM, SI, DX, DG, DB)
		return
	}
	b.split(p.C, func(lo, hi int) { bnBackwardChannels(p, lo, hi, X, DY, G, SM, SI, DX, DG, DB) })
}

// Unary implements backend.Ops.
func (b *Backend) Unary(op backend.UnaryOp, x, y *tensor.Tensor, a, c float32) {
	backend.CheckSame("unary "+op.String(), x.Numel(), x, y)
	X, Y := x.HostData(), y.HostData()
	if b.ref {
		refUnary(op, X, Y, a, c)
		return
	}
	b.splitElems(len(X), func(lo, hi int) { unaryFast(op, X[lo:hi], Y[lo:hi], a, c) })
}

// Binary implements backend.Ops.
func (b *Backend) Binary(op backend.BinaryOp, x, z, y *tensor.Tensor) {
	backend.CheckBinary(op, x, z, y)
	X, Z, Y := x.HostData(), z.HostData(), y.HostData()
	if b.ref || len(Z) != len(X) {
		if len(Z) != len(X) && !b.ref {
			// Row broadcast: split by whole rows.
			n := len(Z)
			b.split(len(X)/n, func(lo, hi int) { refBinary(op, X[lo*n:hi*n], Z, Y[lo*n:hi*n]) })
			return
		}
		refBinary(op, X, Z, Y)
		return
	}
	b.splitElems(len(X), func(lo, hi int) { binaryFast(op, X[lo:hi], Z[lo:hi], Y[lo:hi]) })
}

// Axpy implements backend.Ops.
func (b *Backend) Axpy(alpha float32, x, y *tensor.Tensor) {
	backend.CheckSame("axpy", x.Numel(), x, y)
	X, Y := x.HostData(), y.HostData()
	if b.ref {
		for i, v := range X {
			Y[i] += alpha * v
		}
		return
	}
	b.splitElems(len(X), func(lo, hi int) { axpy(alpha, X[lo:hi], Y[lo:hi]) })
}

// Fill implements backend.Ops.
func (b *Backend) Fill(y *tensor.Tensor, v float32) {
	backend.CheckSame("fill", y.Numel(), y)
	Y := y.HostData()
	for i := range Y {
		Y[i] = v
	}
}

// Reduce implements backend.Ops.
func (b *Backend) Reduce(p backend.ReduceParams, x, y *tensor.Tensor) {
	backend.CheckReduce(p, x, y)
	X, Y := x.HostData(), y.HostData()
	if b.ref || p.Outer == 1 {
		refReduce(p, X, Y)
		return
	}
	b.split(p.Outer, func(lo, hi int) {
		q := p
		q.Outer = hi - lo
		refReduce(q, X[lo*p.Len*p.Inner:hi*p.Len*p.Inner], Y[lo*p.Inner:hi*p.Inner])
	})
}

// L2NormalizeForward implements backend.Ops.
func (b *Backend) L2NormalizeForward(eps float32, x, y, norms *tensor.Tensor) {
	backend.CheckRows("l2normalize forward", x, []*tensor.Tensor{y}, []*tensor.Tensor{norms})
	n, d := x.Dim(0), x.Dim(1)
	X, Y, NR := x.HostData(), y.HostData(), norms.HostData()
	b.split(n, func(lo, hi int) {
		refL2NormalizeForward(eps, hi-lo, d, X[lo*d:hi*d], Y[lo*d:hi*d], NR[lo:hi])
	})
}

// L2NormalizeBackward implements backend.Ops. The eps must match the
// forward's; it is recovered from the norms (a clamped norm equals eps).
func (b *Backend) L2NormalizeBackward(y, norms, dy, dx *tensor.Tensor, accumulate bool) {
	backend.CheckRows("l2normalize backward", y, []*tensor.Tensor{dy, dx}, []*tensor.Tensor{norms})
	n, d := y.Dim(0), y.Dim(1)
	Y, NR, DY, DX := y.HostData(), norms.HostData(), dy.HostData(), dx.HostData()
	b.split(n, func(lo, hi int) {
		refL2NormalizeBackward(0, hi-lo, d, Y[lo*d:hi*d], NR[lo:hi], DY[lo*d:hi*d], DX[lo*d:hi*d], accumulate)
	})
}

// MarginSoftmaxCE implements backend.Ops.
func (b *Backend) MarginSoftmaxCE(p backend.MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g backend.MarginGrads) {
	backend.CheckMargin(p, cos, labels, loss, dcos, g)
	COS, L := cos.HostData(), loss.HostData()
	var DC, CM, GCM []float32
	if dcos != nil {
		DC = dcos.HostData()
	}
	if p.ClassMargins != nil {
		CM = p.ClassMargins.HostData()
	}
	th := b.Threads()
	if b.ref {
		th = 1
	}
	parts := splitRange(p.N, th, 1)
	mp := make([]float64, len(parts))
	var cmParts [][]float32
	if g.ClassMargins != nil {
		GCM = g.ClassMargins.HostData()
		cmParts = make([][]float32, len(parts))
	}
	// Each part of the rows has its own partial sums, added in part order
	// below, so the result does not depend on which goroutine ran it.
	parallelFor(len(parts), th, func(k0, k1 int) {
		sc := marginScratch.get()
		defer marginScratch.put(sc)
		sc.z, sc.dz = grow(sc.z, p.C), grow(sc.dz, p.C)
		for k := k0; k < k1; k++ {
			var cm []float32
			if cmParts != nil {
				cm = make([]float32, p.C)
				cmParts[k] = cm
			}
			mp[k] = marginRows(&p, parts[k][0], parts[k][1], COS, labels, CM, L, DC, cm, sc.z, sc.dz)
		}
	})
	if g.MP != nil {
		var sum float64
		for _, v := range mp {
			sum += v
		}
		g.MP.HostData()[0] += float32(sum)
	}
	for _, part := range cmParts {
		for c, v := range part {
			GCM[c] += v
		}
	}
}

// marginBuffers are one goroutine's logits and their derivatives (C values
// each), kept across calls.
type marginBuffers struct{ z, dz []float64 }

var marginScratch freeList[marginBuffers]

// SGDStep implements backend.Ops.
func (b *Backend) SGDStep(p backend.SGDParams, w, g, mom *tensor.Tensor) {
	backend.CheckSame("sgd step", w.Numel(), w, g, mom)
	W, G, M := w.HostData(), g.HostData(), mom.HostData()
	if b.ref {
		refSGDStep(p, W, G, M)
		return
	}
	b.splitElems(len(W), func(lo, hi int) { refSGDStep(p, W[lo:hi], G[lo:hi], M[lo:hi]) })
}

// AdamWStep implements backend.Ops.
func (b *Backend) AdamWStep(p backend.AdamWParams, w, g, m, v *tensor.Tensor) {
	backend.CheckSame("adamw step", w.Numel(), w, g, m, v)
	if p.Step < 1 {
		panic("backend: adamw step: Step counts from 1")
	}
	W, G, M, V := w.HostData(), g.HostData(), m.HostData(), v.HostData()
	if b.ref {
		refAdamWStep(p, W, G, M, V)
		return
	}
	b.splitElems(len(W), func(lo, hi int) { refAdamWStep(p, W[lo:hi], G[lo:hi], M[lo:hi], V[lo:hi]) })
}

// split runs f over [0, n) in up to Threads() ranges.
func (b *Backend) split(n int, f func(lo, hi int)) {
	if b.ref {
		f(0, n)
		return
	}
	parallelFor(n, b.Threads(), f)
}

// splitElems is split for elementwise work: below 32K elements one thread.
func (b *Backend) splitElems(n int, f func(lo, hi int)) {
	if n < 1<<15 {
		f(0, n)
		return
	}
	parallelFor(n, b.Threads(), f)
}

// parallelFor runs f over contiguous ranges that cover [0, n), on the
// calling goroutine and up to threads-1 helpers of the team (team.go). The
// ranges (about four per thread) are handed out as goroutines ask, so a
// helper that arrives late or runs on a busy core takes fewer of them.
func parallelFor(n, threads int, f func(lo, hi int)) {
	if threads <= 1 || n <= 1 {
		f(0, n)
		return
	}
	j := &forJob{f: f, n: n, parts: int64(min(n, 4*threads))}
	j.teamJob.j = j
	teamRun(threads-1, &j.teamJob)
	for j.done.Load() < j.parts {
		relax()
	}
}

// forJob is one call of parallelFor: range t of parts is
// [t·n/parts, (t+1)·n/parts).
type forJob struct {
	teamJob
	f          func(lo, hi int)
	n          int
	parts      int64
	next, done atomic.Int64
}

func (j *forJob) run() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.parts {
			return
		}
		j.f(int(t*int64(j.n)/j.parts), int((t+1)*int64(j.n)/j.parts))
		j.done.Add(1)
	}
}
