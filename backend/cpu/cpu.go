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
		splitWith(&batchedGemms, batch, th, batchedGemm{p, A, B, C, lda, ldb})
		return
	}
	for i := 0; i < batch; i++ {
		sgemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, A[i*sa:], lda, B[i*sb:], ldb, p.Beta, C[i*sc:], p.N, th)
	}
}

// batchedGemm is GemmBatched's loop over the batch, one thread per share.
type batchedGemm struct {
	p        backend.GemmParams
	a, b, c  []float32
	lda, ldb int
}

var batchedGemms freeList[batchedGemm]

func (k *batchedGemm) chunk(lo, hi int) {
	p := k.p
	sa, sb, sc := p.M*p.K, p.K*p.N, p.M*p.N
	for i := lo; i < hi; i++ {
		sgemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, k.a[i*sa:], k.lda, k.b[i*sb:], k.ldb, p.Beta, k.c[i*sc:], p.N, 1)
	}
}

// MaxPool2dForward implements backend.Ops.
func (b *Backend) MaxPool2dForward(p backend.Pool2dParams, x, y, argmax *tensor.Tensor) {
	backend.CheckPool("maxpool2d forward", p, x, y, argmax)
	splitN(b, &poolLoops, p.N, poolLoop{p: p, kind: maxPoolForward, x: x.HostData(), y: y.HostData(), arg: argmax.HostData()})
}

// MaxPool2dBackward implements backend.Ops.
func (b *Backend) MaxPool2dBackward(p backend.Pool2dParams, dy, argmax, dx *tensor.Tensor) {
	backend.CheckPool("maxpool2d backward", p, dx, dy, argmax)
	splitN(b, &poolLoops, p.N, poolLoop{p: p, kind: maxPoolBackward, x: dx.HostData(), y: dy.HostData(), arg: argmax.HostData()})
}

// AvgPool2dForward implements backend.Ops.
func (b *Backend) AvgPool2dForward(p backend.Pool2dParams, x, y *tensor.Tensor) {
	backend.CheckPool("avgpool2d forward", p, x, y)
	splitN(b, &poolLoops, p.N, poolLoop{p: p, kind: avgPoolForward, x: x.HostData(), y: y.HostData()})
}

// AvgPool2dBackward implements backend.Ops.
func (b *Backend) AvgPool2dBackward(p backend.Pool2dParams, dy, dx *tensor.Tensor) {
	backend.CheckPool("avgpool2d backward", p, dx, dy)
	splitN(b, &poolLoops, p.N, poolLoop{p: p, kind: avgPoolBackward, x: dx.HostData(), y: dy.HostData()})
}

// poolLoop is the pooling ops' loop over images. x and y are the input
// and output planes (their gradients for the backward kinds).
type poolLoop struct {
	p    backend.Pool2dParams
	kind int
	x, y []float32
	arg  []float32 // max pooling's argmax
}

const (
	maxPoolForward = iota
	maxPoolBackward
	avgPoolForward
	avgPoolBackward
)

var poolLoops freeList[poolLoop]

func (k *poolLoop) chunk(lo, hi int) {
	p := k.p
	in, out := p.C*p.H*p.W, p.C*p.P()*p.Q()
	x, y := k.x[lo*in:hi*in], k.y[lo*out:hi*out]
	p.N = hi - lo
	switch k.kind {
	case maxPoolForward:
		refMaxPoolForward(p, x, y, k.arg[lo*out:hi*out])
	case maxPoolBackward:
		refMaxPoolBackward(p, y, k.arg[lo*out:hi*out], x)
	case avgPoolForward:
		refAvgPoolForward(p, x, y)
	case avgPoolBackward:
		refAvgPoolBackward(p, y, x)
	}
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
	splitN(b, &gapLoops, nc, gapLoop{l: l, x: x.HostData(), y: y.HostData()})
}

// GlobalAvgPoolBackward implements backend.Ops.
func (b *Backend) GlobalAvgPoolBackward(dy, dx *tensor.Tensor) {
	nc, l := checkGAP("global avgpool backward", dx, dy)
	splitN(b, &gapLoops, nc, gapLoop{backward: true, l: l, x: dx.HostData(), y: dy.HostData()})
}

// gapLoop is global average pooling's loop over planes of l values (x)
// and their means (y), or their gradients.
type gapLoop struct {
	backward bool
	l        int
	x, y     []float32
}

var gapLoops freeList[gapLoop]

func (k *gapLoop) chunk(lo, hi int) {
	x, y := k.x[lo*k.l:hi*k.l], k.y[lo:hi]
	if k.backward {
		refGlobalAvgPoolBackward(hi-lo, k.l, y, x)
	} else {
		refGlobalAvgPoolForward(hi-lo, k.l, x, y)
	}
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
	splitN(b, &bnLoops, p.C, bnLoop{p: p, x: X, g: G, beta: Bt, rm: RM, rv: RV, y: Y, sm: SM, si: SI})
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
	splitN(b, &bnLoops, p.C, bnLoop{backward: true, p: p, x: X, dy: DY, g: G, sm: SM, si: SI, dx: DX, dg: DG, db: DB})
}

// bnLoop is batch norm's loop over channels, forward or backward.
type bnLoop struct {
	backward              bool
	p                     backend.BatchNormParams
	x, g, beta, rm, rv, y []float32
	sm, si                []float32
	dy, dx, dg, db        []float32
}

var bnLoops freeList[bnLoop]

func (k *bnLoop) chunk(lo, hi int) {
	if k.backward {
		bnBackwardChannels(k.p, lo, hi, k.x, k.dy, k.g, k.sm, k.si, k.dx, k.dg, k.db)
	} else {
		bnForwardChannels(k.p, lo, hi, k.x, k.g, k.beta, k.rm, k.rv, k.y, k.sm, k.si)
	}
}

// Unary implements backend.Ops.
func (b *Backend) Unary(op backend.UnaryOp, x, y *tensor.Tensor, a, c float32) {
	backend.CheckUnary(op, x, y)
	X, Y := x.HostData(), y.HostData()
	if b.ref {
		refUnary(op, X, Y, a, c)
		return
	}
	splitElemsN(b, &elemLoops, len(X), elemLoop{kind: elemUnary, unary: op, x: X, y: Y, a: a, c: c})
}

// Binary implements backend.Ops.
func (b *Backend) Binary(op backend.BinaryOp, x, z, y *tensor.Tensor) {
	backend.CheckBinary(op, x, z, y)
	X, Z, Y := x.HostData(), z.HostData(), y.HostData()
	if b.ref || len(Z) != len(X) {
		if len(Z) != len(X) && !b.ref {
			// Row broadcast: split by whole rows.
			splitN(b, &elemLoops, len(X)/len(Z), elemLoop{kind: elemBinaryRows, binary: op, x: X, z: Z, y: Y})
			return
		}
		refBinary(op, X, Z, Y)
		return
	}
	splitElemsN(b, &elemLoops, len(X), elemLoop{kind: elemBinary, binary: op, x: X, z: Z, y: Y})
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
	splitElemsN(b, &elemLoops, len(X), elemLoop{kind: elemAxpy, x: X, y: Y, a: alpha})
}

// elemLoop is the loop of the elementwise ops over elements (over rows of
// len(z) for elemBinaryRows).
type elemLoop struct {
	kind    int
	unary   backend.UnaryOp
	binary  backend.BinaryOp
	x, z, y []float32
	a, c    float32
}

const (
	elemUnary      = iota // y = op(x; a, c)
	elemBinary            // y = x op z
	elemBinaryRows        // y = x op z, z repeated on each row
	elemAxpy              // y += a·x
)

var elemLoops freeList[elemLoop]

func (k *elemLoop) chunk(lo, hi int) {
	switch k.kind {
	case elemUnary:
		unaryFast(k.unary, k.x[lo:hi], k.y[lo:hi], k.a, k.c)
	case elemBinary:
		binaryFast(k.binary, k.x[lo:hi], k.z[lo:hi], k.y[lo:hi])
	case elemBinaryRows:
		n := len(k.z)
		refBinary(k.binary, k.x[lo*n:hi*n], k.z, k.y[lo*n:hi*n])
	case elemAxpy:
		axpy(k.a, k.x[lo:hi], k.y[lo:hi])
	}
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
	splitN(b, &reduceLoops, p.Outer, reduceLoop{p, X, Y})
}

// reduceLoop is Reduce's loop over the outer dimension.
type reduceLoop struct {
	p    backend.ReduceParams
	x, y []float32
}

var reduceLoops freeList[reduceLoop]

func (k *reduceLoop) chunk(lo, hi int) {
	q := k.p
	q.Outer = hi - lo
	refReduce(q, k.x[lo*q.Len*q.Inner:hi*q.Len*q.Inner], k.y[lo*q.Inner:hi*q.Inner])
}

// L2NormalizeForward implements backend.Ops.
func (b *Backend) L2NormalizeForward(eps float32, x, y, norms *tensor.Tensor) {
	backend.CheckRows("l2normalize forward", x, []*tensor.Tensor{y}, []*tensor.Tensor{norms})
	n, d := x.Dim(0), x.Dim(1)
	splitN(b, &l2Loops, n, l2Loop{eps: eps, d: d, x: x.HostData(), y: y.HostData(), norms: norms.HostData()})
}

// L2NormalizeBackward implements backend.Ops. The eps must match the
// forward's; it is recovered from the norms (a clamped norm equals eps).
func (b *Backend) L2NormalizeBackward(y, norms, dy, dx *tensor.Tensor, accumulate bool) {
	backend.CheckRows("l2normalize backward", y, []*tensor.Tensor{dy, dx}, []*tensor.Tensor{norms})
	n, d := y.Dim(0), y.Dim(1)
	splitN(b, &l2Loops, n, l2Loop{backward: true, accumulate: accumulate, d: d, y: y.HostData(), norms: norms.HostData(), dy: dy.HostData(), dx: dx.HostData()})
}

// l2Loop is L2 normalisation's loop over rows of d values.
type l2Loop struct {
	backward, accumulate bool
	eps                  float32
	d                    int
	x, y, norms, dy, dx  []float32
}

var l2Loops freeList[l2Loop]

func (k *l2Loop) chunk(lo, hi int) {
	d := k.d
	if k.backward {
		refL2NormalizeBackward(0, hi-lo, d, k.y[lo*d:hi*d], k.norms[lo:hi], k.dy[lo*d:hi*d], k.dx[lo*d:hi*d], k.accumulate)
	} else {
		refL2NormalizeForward(k.eps, hi-lo, d, k.x[lo*d:hi*d], k.y[lo*d:hi*d], k.norms[lo:hi])
	}
}

// MarginSoftmaxCE implements backend.Ops.
func (b *Backend) MarginSoftmaxCE(p backend.MarginParams, cos *tensor.Tensor, labels []int32, loss, dcos *tensor.Tensor, g backend.MarginGrads) {
	backend.CheckMargin(p, cos, labels, loss, dcos, g)
	if p.MPFrom != nil {
		p.MP = p.MPFrom.HostData()[0]
	}
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
	k := marginLoops.get()
	defer marginLoops.put(k)
	k.p, k.cos, k.labels, k.cm, k.loss, k.dcos = p, COS, labels, CM, L, DC
	k.parts = splitRangeInto(k.parts[:0], p.N, th, 1)
	k.mp = grow(k.mp, len(k.parts))
	k.gcm = nil
	if g.ClassMargins != nil {
		GCM = g.ClassMargins.HostData()
		for len(k.gcmBufs) < len(k.parts) {
			k.gcmBufs = append(k.gcmBufs, nil)
		}
		k.gcm = k.gcmBufs[:len(k.parts)]
		for i := range k.gcm {
			k.gcm[i] = grow(k.gcm[i], p.C)
		}
	}
	// Each part of the rows has its own partial sums, added in part order
	// below, so the result does not depend on which goroutine ran it.
	parallelFor(len(k.parts), th, k)
	if g.MP != nil {
		var sum float64
		for _, v := range k.mp {
			sum += v
		}
		g.MP.HostData()[0] += float32(sum)
	}
	for _, part := range k.gcm {
		for c, v := range part {
			GCM[c] += v
		}
	}
	k.cos, k.labels, k.cm, k.loss, k.dcos = nil, nil, nil, nil, nil
	k.p.ClassMargins = nil
}

// marginLoop is MarginSoftmaxCE's loop over parts of the rows, with each
// part's partial sums: mp[i] of ∂L/∂m_p, gcm[i] of ∂L/∂m_n (C values,
// when the class margins need a gradient). The sums' buffers are kept
// with it across calls.
type marginLoop struct {
	p                   backend.MarginParams
	cos, cm, loss, dcos []float32
	labels              []int32
	parts               [][2]int
	mp                  []float64
	gcm                 [][]float32 // gcmBufs[:len(parts)], or nil
	gcmBufs             [][]float32
}

var marginLoops freeList[marginLoop]

func (k *marginLoop) chunk(lo, hi int) {
	sc := marginScratch.get()
	defer marginScratch.put(sc)
	sc.z, sc.dz = grow(sc.z, k.p.C), grow(sc.dz, k.p.C)
	for i := lo; i < hi; i++ {
		var gcm []float32
		if len(k.gcm) > 0 {
			gcm = k.gcm[i]
			clear(gcm)
		}
		k.mp[i] = marginRows(&k.p, k.parts[i][0], k.parts[i][1], k.cos, k.labels, k.cm, k.loss, k.dcos, gcm, sc.z, sc.dz)
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
	splitElemsN(b, &optLoops, len(W), optLoop{sgd: p, w: W, g: G, m: M})
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
	splitElemsN(b, &optLoops, len(W), optLoop{adamW: true, adam: p, w: W, g: G, m: M, v: V})
}

// optLoop is the optimizer steps' loop over elements.
type optLoop struct {
	adamW      bool
	sgd        backend.SGDParams
	adam       backend.AdamWParams
	w, g, m, v []float32
}

var optLoops freeList[optLoop]

func (k *optLoop) chunk(lo, hi int) {
	if k.adamW {
		refAdamWStep(k.adam, k.w[lo:hi], k.g[lo:hi], k.m[lo:hi], k.v[lo:hi])
	} else {
		refSGDStep(k.sgd, k.w[lo:hi], k.g[lo:hi], k.m[lo:hi])
	}
}

// kernel is the body of a parallel loop: chunk does items [lo, hi).
// Kernels are small structs of their arguments with a chunk method, kept
// in a freeList per type (splitWith), so that a call allocates nothing; a
// closure handed to another goroutine would be allocated on every call.
type kernel interface{ chunk(lo, hi int) }

// funcKernel makes a function a kernel, for code off the hot paths (and
// tests); the closure is allocated per call.
type funcKernel func(lo, hi int)

func (f funcKernel) chunk(lo, hi int) { f(lo, hi) }

// splitWith runs k over [0, n) on up to threads goroutines (parallelFor),
// through a copy kept in list.
func splitWith[K any, PK interface {
	*K
	kernel
}](list *freeList[K], n, threads int, k K) {
	p := list.get()
	*p = k
	parallelFor(n, threads, PK(p))
	var zero K
	*p = zero // keep no references to the caller's buffers
	list.put(p)
}

// splitN is splitWith over the backend's threads, on one goroutine in
// reference mode.
func splitN[K any, PK interface {
	*K
	kernel
}](b *Backend, list *freeList[K], n int, k K) {
	th := b.Threads()
	if b.ref {
		th = 1
	}
	splitWith[K, PK](list, n, th, k)
}

// splitElemsN is splitN for elementwise work: below 32K elements one
// goroutine.
func splitElemsN[K any, PK interface {
	*K
	kernel
}](b *Backend, list *freeList[K], n int, k K) {
	th := b.Threads()
	if n < 1<<15 {
		th = 1
	}
	splitWith[K, PK](list, n, th, k)
}

// parallelFor runs body over contiguous ranges that cover [0, n), on the
// calling goroutine and up to threads-1 helpers of the team (team.go). The
// ranges (about four per thread) are handed out as goroutines ask, so a
// helper that arrives late or runs on a busy core takes fewer of them.
func parallelFor(n, threads int, body kernel) {
	if threads <= 1 || n <= 1 {
		body.chunk(0, n)
		return
	}
	j := forJobs.get()
	j.body, j.n, j.parts = body, n, int64(min(n, 4*threads))
	j.next.Store(0)
	j.teamJob.j = j
	teamRun(threads-1, &j.teamJob)
	j.body = nil
	forJobs.put(j)
}

// forJob is one call of parallelFor: range t of parts is
// [t·n/parts, (t+1)·n/parts). teamRun returns when every goroutine has
// left run, so every range is done by then.
type forJob struct {
	teamJob
	body  kernel
	n     int
	parts int64
	next  atomic.Int64
}

var forJobs freeList[forJob]

func (j *forJob) run() {
	for {
		t := j.next.Add(1) - 1
		if t >= j.parts {
			return
		}
		j.body.chunk(int(t*int64(j.n)/j.parts), int((t+1)*int64(j.n)/j.parts))
	}
}
