package cpu

import (
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
	"github.com/klauspost/cpuid/v2"
)

// The fast SGEMM: BLIS-style blocking with packed panels around a
// register-blocked micro-kernel.
//
//	for jc in N by nc:            B block (kc × nc) packed into NR-wide panels, kept in L2
//	  for pc in K by kc:
//	    for ic in M by mc:        A block (mc × kc) packed into MR-tall panels
//	      for each MR-tall panel: kept in L1 while
//	        for each NR-wide panel:   micro-kernel: C_tile += alpha · Apanel · Bpanel
//
// The micro-kernels broadcast one value of the A panel per row and k step
// and multiply it into vectors of the B panel, so a C tile is MR rows of NR
// contiguous values. The A panel (MR·kc values) is the one re-read from L1
// for every tile of a row of tiles; the B panels stream from L2.
//
// The micro-kernel and the packers are the only parts that change per SIMD
// level (see simd.go and kernels_amd64.go); everything here is plain Go.
// On several threads (gemmParallel) the goroutines share each packed B
// block and take row groups of C from a counter.

// Gemm implements backend.Ops.
func (b *Backend) Gemm(p backend.GemmParams, a, bm, c *tensor.Tensor) {
	b.GemmBatched(p, 1, a, bm, c)
}

// GemmBatched implements backend.Ops.
func (b *Backend) GemmBatched(p backend.GemmParams, batch int, a, bm, c *tensor.Tensor) {
	backend.CheckGemm(p, batch, a, bm, c)
	aData, bData, cData := a.HostData(), bm.HostData(), c.HostData()
	sa, sb, sc := p.M*p.K, p.K*p.N, p.M*p.N
	if b.ref {
		for i := 0; i < batch; i++ {
			refGemm(p, aData[i*sa:(i+1)*sa], bData[i*sb:(i+1)*sb], cData[i*sc:(i+1)*sc])
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
	threads := b.Threads()
	if batch >= threads && threads > 1 {
		// Many small products: one goroutine per share of the batch.
		splitWith(&batchedGemms, batch, threads, batchedGemm{p, aData, bData, cData, lda, ldb})
		return
	}
	for i := 0; i < batch; i++ {
		sgemm(p.TransA, p.TransB, p.M, p.N, p.K, p.Alpha, aData[i*sa:], lda, bData[i*sb:], ldb, p.Beta, cData[i*sc:], p.N, threads)
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

// refGemm: c = alpha·op(a)·op(b) + beta·c, row-major, op(a) (M, K), op(b) (K, N).
func refGemm(p backend.GemmParams, a, b, c []float32) {
	for i := 0; i < p.M; i++ {
		for j := 0; j < p.N; j++ {
			var s float64
			for l := 0; l < p.K; l++ {
				var av, bv float32
				if p.TransA {
					av = a[l*p.M+i]
				} else {
					av = a[i*p.K+l]
				}
				if p.TransB {
					bv = b[j*p.K+l]
				} else {
					bv = b[l*p.N+j]
				}
				s += float64(av) * float64(bv)
			}
			v := p.Alpha * float32(s)
			if p.Beta != 0 {
				v += p.Beta * c[i*p.N+j]
			}
			c[i*p.N+j] = v
		}
	}
}

// microKernel computes C[0:MR, 0:NR] += alpha · a · b where a is an MR-tall
// packed panel (kc columns of MR values) and b an NR-wide packed panel (kc
// rows of NR values); c has row stride ldc.
type microKernel func(kc int, a, b []float32, c []float32, ldc int, alpha float32)

// edgeKernel is a microKernel for a partial tile: it computes the whole
// zero-padded tile but reads and writes only C[0:mm, 0:nn].
type edgeKernel func(kc int, a, b []float32, c []float32, ldc int, alpha float32, mm, nn int)

// colsKernel adds to the last n ≤ colsMax columns of a partial tile (c
// and b start at the first of them) what edgeKernel adds there, bit for
// bit, for one or colsPanels panels of a (rows < mm of them).
type colsKernel func(kc int, a, b []float32, c []float32, ldc int, alpha float32, mm int)

// colsMax is the widest remainder the column kernels take, colsPanels
// how many of a's panels one call of gemmKernel.cols[1] goes through.
const (
	colsMax    = 4
	colsPanels = 4
)

// rowPacker is: for r < rows, l < kb: dst[l*ldd+r] = src[r*lds+l]
// (it moves rows of a row-major matrix into the interleaved panel layout).
type rowPacker func(src []float32, lds, rows, kb int, dst []float32, ldd int)

// gemmKernel is one micro-kernel, its tile size and its helpers.
type gemmKernel struct {
	name   string
	mr, nr int
	fn     microKernel
	// edge, when set, handles partial tiles in place; without it they are
	// computed into a scratch tile whose valid part is added to C.
	edge edgeKernel
	// halfEdge, when set, is edge for tiles at most nr/2 wide, at about
	// 60% of its cost (the first 16 of the 17 columns past 32 of a 7×7
	// plane's 49).
	halfEdge edgeKernel
	// cols, when set, are the column kernels for the last n ≤ colsMax
	// columns of a partial tile (cols[0][n-1] for one of a's panels,
	// cols[1][n-1] for colsPanels of them). With m = 2048, k = 512 on
	// Zen 5, the 4 columns past 192 of 196 (a 14×14 plane) took them
	// about 47% of halfEdge's time, and the 17 past 32 of 49 (7×7),
	// halfEdge's 16 and their 1, 81% of edge's: products 1.05× and 1.11×
	// faster.
	cols [2][colsMax]colsKernel
	// set, when set, is fn storing alpha·a·b without reading C (a whole
	// tile's first k block when beta = 0).
	set microKernel
	// packRows, when set, is a faster packRowsGo for whole panels (rows =
	// MR of a non-transposed A, or NR of a transposed B).
	packRows rowPacker
	// bf16: the kernel multiplies bfloat16 values, two k steps per 32-bit
	// slot of its panels (see lowp.go); the packers round float32 panels
	// into that layout, and a block of kb k steps is depth(kb) slots deep.
	bf16 bool
	// i8: the kernel multiplies signed bytes of A by unsigned bytes of B,
	// four k steps per slot (see lowp.go); B is quantised as it is packed,
	// A only comes packed (packedA, with its scales).
	i8 bool
}

// perSlot is how many k steps a 32-bit slot of the kernel's panels holds.
func (k gemmKernel) perSlot() int {
	switch {
	case k.bf16:
		return 2
	case k.i8:
		return 4
	}
	return 1
}

// depth is how many slots deep the kernel's panels are for kb k steps.
func (k gemmKernel) depth(kb int) int {
	s := k.perSlot()
	return (kb + s - 1) / s
}

// kc is the k blocking for this kernel: blk.kc, rounded up to whole slots
// so that every block but the last fills its slots.
func (k gemmKernel) kc() int {
	s := k.perSlot()
	return (blk.kc + s - 1) / s * s
}

// Block sizes, set from the cache sizes by initBlocking: kc·MR values of A
// stay in L1 across a row of tiles, the kc×nc block of B in L2. mc bounds
// the packed A block (its panels are each used for one row of tiles).
var blk = struct{ mc, kc, nc int }{mc: 1024, kc: 256, nc: 512}

// initBlocking sizes the GEMM blocks from the cache sizes. kc = 256 keeps
// an A panel (MR·kc values, 8 KiB for MR = 8) in L1 with room for the B
// panels streaming through; the kc×nc block of B takes half of the core's
// L2 (1 MiB L2: nc = 512). mc only bounds the packed A block (1 MiB).
// Measured on Zen 5 (48 KiB L1D, 1 MiB L2): kc from 192 to 384 and nc from
// 384 to 768 are within a few percent of this choice.
func initBlocking() {
	l2 := cpuid.CPU.Cache.L2
	if l2 <= 0 {
		l2 = 512 << 10
	}
	kc := 256
	nc := (l2 / 2) / (4 * kc)
	blk.kc, blk.nc, blk.mc = kc, max(128, min(nc, 4096)), 1024
}

// gemmKernelGeneric is the pure-Go micro-kernel: a 4×4 register block.
func gemmKernelGeneric(kc int, a, b []float32, c []float32, ldc int, alpha float32) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for l := 0; l < kc; l++ {
		a0, a1, a2, a3 := a[l*4], a[l*4+1], a[l*4+2], a[l*4+3]
		b0, b1, b2, b3 := b[l*4], b[l*4+1], b[l*4+2], b[l*4+3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := c[0:4]
	r[0] += alpha * c00
	r[1] += alpha * c01
	r[2] += alpha * c02
	r[3] += alpha * c03
	r = c[ldc : ldc+4]
	r[0] += alpha * c10
	r[1] += alpha * c11
	r[2] += alpha * c12
	r[3] += alpha * c13
	r = c[2*ldc : 2*ldc+4]
	r[0] += alpha * c20
	r[1] += alpha * c21
	r[2] += alpha * c22
	r[3] += alpha * c23
	r = c[3*ldc : 3*ldc+4]
	r[0] += alpha * c30
	r[1] += alpha * c31
	r[2] += alpha * c32
	r[3] += alpha * c33
}

var genericKernel = gemmKernel{name: "generic 4x4", mr: 4, nr: 4, fn: gemmKernelGeneric}

// gemmBuffers are one thread's packing buffers (wide: a float32 panel
// on its way to a low-precision layout).
type gemmBuffers struct {
	a, b, tile, wide []float32
}

var bufPool freeList[gemmBuffers]

// sharedBPool holds gemmParallel's packed chunks of B, apart from bufPool:
// they are larger than a thread's buffers, and mixing the two would keep
// growing whichever buffer came back into the other role.
var sharedBPool freeList[[]float32]

// minParallelFlops: below this a second goroutine costs more than it saves
// (a variable so tests can reach the parallel code with small products).
var minParallelFlops = 1 << 21

// sgemm computes C = alpha·op(A)·op(B) + beta·C with leading dimensions
// (BLAS semantics, row-major), on up to `threads` goroutines.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, threads int) {
	if m == 0 || n == 0 {
		return
	}
	if beta != 0 || k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		if k == 0 || alpha == 0 {
			return
		}
	}
	// beta = 0: the kernels clear each tile of C as they first reach it,
	// while it is in cache, rather than in a pass of its own.
	gemmDispatch(beta == 0, transA, transB, m, n, k, alpha, a, lda, nil, b, ldb, nil, nil, c, ldc, threads)
}

// gemmDispatch is C += alpha·op(A)·op(B) on up to `threads` goroutines
// (C = alpha·op(A)·op(B) when zero: C's old values, NaN included, are not
// read), with B read through cb when it is not nil (then b and ldb are
// unused; see convB), and A taken from pa when it is not nil and was
// packed for the kernel that runs. Filters packed for a low-precision
// kernel (packedA.bf16, packedA.i8) choose it; the int8 one needs q, the
// quantisation of B (lowp.go).
func gemmDispatch(zero, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, pa *packedA, b []float32, ldb int, cb *convB, q *quantB, c []float32, ldc int, threads int) {
	kern := activeKernel()
	switch {
	case pa != nil && pa.bf16:
		// Filters packed for a low-precision kernel run on it
		// (packedFilters makes them only where it exists).
		kern = bf16Kernel
	case pa != nil && pa.i8 != nil:
		kern = i8Kernel
		if q == nil || pa.m != m || pa.k != k || pa.kc != kern.kc() {
			panic("cpu: int8 GEMM without its quantisation, or with filters packed for another shape")
		}
	case q != nil:
		panic("cpu: a quantised B needs int8-packed filters")
	}
	if gemmRowsTakes(kern, transB, m, n, k, pa, cb, q) {
		gemmRows(zero, transA, m, n, k, alpha, a, lda, b, ldb, c, ldc, threads)
		return
	}
	threads = max(1, min(threads, 2*m*n*k/minParallelFlops))
	if pa != nil && (pa.mr != kern.mr || pa.m != m || pa.k != k || pa.kc != kern.kc()) {
		pa = nil
	}
	if threads == 1 {
		gemmSerial(kern, zero, transA, transB, m, n, k, alpha, a, lda, pa, b, ldb, cb, q, c, ldc)
		return
	}
	if m*k <= colSplitMaxA && n >= 4*threads*kern.nr {
		splitWith(&gemmColumnRuns, (n+kern.nr-1)/kern.nr, threads, gemmColumns{gemmArgs: gemmArgs{kern: kern, zero: zero, transA: transA, transB: transB,
			m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, pa: pa, b: b, ldb: ldb, cb: cb, q: q, c: c, ldc: ldc}})
		return
	}
	gemmParallel(kern, zero, transA, transB, m, n, k, alpha, a, lda, pa, b, ldb, cb, q, c, ldc, threads)
}

// colSplitMaxA bounds the A of the products whose threads split the
// columns (gemmColumns) rather than share packed B panels
// (gemmParallel): 256K values, 1 MB (a core's L2 here), that every
// thread then reads.
var colSplitMaxA = 256 << 10

// gemmColumns is a product with a small A and many columns, its threads
// each taking whole panels of columns and doing them as gemmSerial does
// (packing their own B), without the shared panels' phases and waits: a
// ResNet's stem (64×147 filters, 12544 pixels) and first stage at batch
// 1. Each value is computed as gemmSerial computes it.
type gemmColumns struct {
	gemmArgs
}

var gemmColumnRuns freeList[gemmColumns]

// chunk does the panels [lo, hi) of columns.
func (g *gemmColumns) chunk(lo, hi int) {
	nr := g.kern.nr
	j0, j1 := lo*nr, min(hi*nr, g.n)
	gemmSerialCols(g.kern, g.zero, g.transA, g.transB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.pa, g.b, g.ldb, g.cb, g.q, g.c, g.ldc, j0, j1)
}

// gemmSerial is the blocked algorithm on one goroutine: C += alpha·op(A)·op(B)
// (C = … when zero).
func gemmSerial(kern gemmKernel, zero, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, pa *packedA, b []float32, ldb int, cb *convB, q *quantB, c []float32, ldc int) {
	gemmSerialCols(kern, zero, transA, transB, m, n, k, alpha, a, lda, pa, b, ldb, cb, q, c, ldc, 0, n)
}

// gemmSerialCols is gemmSerial for columns [j0, j1) of C (j0 a multiple
// of NR).
func gemmSerialCols(kern gemmKernel, zero, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, pa *packedA, b []float32, ldb int, cb *convB, q *quantB, c []float32, ldc int, j0, j1 int) {
	mr, nr := kern.mr, kern.nr
	mc := max(mr, blk.mc/mr*mr)
	nc := max(nr, blk.nc/nr*nr)
	kc := kern.kc()
	buf := bufPool.get()
	defer bufPool.put(buf)
	for jc := j0; jc < j1; jc += nc {
		nb := min(nc, j1-jc)
		np := (nb + nr - 1) / nr
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			kd := kern.depth(kb)
			buf.b = grow(buf.b, np*nr*kd)
			packBOp(kern, cb, transB, kb, nb, b, ldb, pc, jc, buf.b, buf, q)
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				var ap []float32
				if pa != nil {
					ap = pa.block(ic, pc, kb)
				} else {
					buf.a = grow(buf.a, (mb+mr-1)/mr*mr*kd)
					packAOp(kern, transA, mb, kb, a, lda, ic, pc, buf.a, buf)
					ap = buf.a
				}
				macroKernel(kern, zero && pc == 0, kd, ap, mb, buf.b, nb, alpha, c[ic*ldc+jc:], ldc, buf)
			}
		}
	}
}

// packedA is op(A) packed once into the micro-kernel's panels, for many
// products with the same A (a convolution's filter over the images of a
// batch): the kc block at depth pc starts at depth(pc)·mpad slots (mpad =
// M rounded up to MR; depth counts the slots of the kernel's layout, see
// gemmKernel.depth), laid out as packAOp lays out a block of all M rows.
type packedA struct {
	mr, m, k, kc, mpad int
	bf16               bool     // for the bfloat16 kernel: depths in pairs
	i8                 *i8Scale // for the int8 kernel: depths in quads
	buf                []float32
}

// pack fills p with op(A) (m×k) for kern, reusing p's buffer.
func (p *packedA) pack(kern gemmKernel, trans bool, m, k int, a []float32, lda int) {
	p.mr, p.m, p.k, p.kc, p.bf16, p.i8 = kern.mr, m, k, kern.kc(), kern.bf16, nil
	p.mpad = (m + kern.mr - 1) / kern.mr * kern.mr
	p.buf = grow(p.buf, p.mpad*kern.depth(k))
	var buf *gemmBuffers
	if kern.i8 {
		// The rows scaled to integers first; packAOp makes the quads.
		p.i8, a, lda = quantizeRows(trans, m, k, a, lda)
		trans = false
	}
	if kern.bf16 || kern.i8 {
		buf = bufPool.get()
		defer bufPool.put(buf)
	}
	for pc := 0; pc < k; pc += p.kc {
		kb := min(p.kc, k-pc)
		o := kern.depth(pc) * p.mpad
		packAOp(kern, trans, m, kb, a, lda, 0, pc, p.buf[o:o+p.mpad*kern.depth(kb)], buf)
	}
}

// kernel is the micro-kernel p was packed for, as far as its layout goes.
func (p *packedA) kernel() gemmKernel {
	return gemmKernel{mr: p.mr, bf16: p.bf16, i8: p.i8 != nil}
}

// block is the packed rows from ic (a multiple of MR) of the kc block at
// depth pc, kb deep.
func (p *packedA) block(ic, pc, kb int) []float32 {
	k := p.kernel()
	o, kd := k.depth(pc)*p.mpad, k.depth(kb)
	return p.buf[o+ic*kd : o+p.mpad*kd]
}

// macroKernel runs the micro-kernel over an mb×nb block of C (c at its
// top-left corner) from mb/MR packed A panels and nb/NR packed B panels of
// depth kb: each A panel stays in L1 while it meets every B panel. With
// zero, each tile of C is cleared just before the micro-kernel adds to
// it.
func macroKernel(kern gemmKernel, zero bool, kb int, ap []float32, mb int, bp []float32, nb int, alpha float32, c []float32, ldc int, buf *gemmBuffers) {
	mr, nr := kern.mr, kern.nr
	jn := kern.colsFrom(nb)
	for i := 0; i < mb; i += mr {
		if jn < nb && i%(colsPanels*mr) == 0 && i > 0 {
			// The column kernels' part of the panels just done, while
			// they are in L1.
			macroCols(kern, zero, kb, ap, i-colsPanels*mr, i, bp, jn, nb, alpha, c, ldc)
		}
		mm := min(mr, mb-i)
		a := ap[i*kb : i*kb+mr*kb]
		for j := 0; j < jn; j += nr {
			nn := min(nr, jn-j)
			b := bp[j*kb : j*kb+nr*kb]
			// The slice bounds check that the whole tile is in c.
			ct := c[i*ldc+j : (i+mm-1)*ldc+j+nn]
			full := mm == mr && nn == nr
			if full && zero && kern.set != nil {
				kern.set(kb, a, b, ct, ldc, alpha)
				continue
			}
			if zero {
				for r := 0; r < mm; r++ {
					clear(ct[r*ldc : r*ldc+nn])
				}
			}
			switch {
			case full:
				kern.fn(kb, a, b, ct, ldc, alpha)
			case kern.halfEdge != nil && 2*nn <= nr:
				kern.halfEdge(kb, a, b, ct, ldc, alpha, mm, nn)
			case kern.edge != nil:
				kern.edge(kb, a, b, ct, ldc, alpha, mm, nn)
			default:
				buf.tile = grow(buf.tile, mr*nr)
				edgeScratch(kern, kb, a, b, ct, ldc, alpha, mm, nn, buf.tile)
			}
		}
	}
	if jn < nb {
		macroCols(kern, zero, kb, ap, (mb-1)/(colsPanels*mr)*(colsPanels*mr), mb, bp, jn, nb, alpha, c, ldc)
	}
}

// colsFrom is where the column kernels take over the last partial tile
// of nb columns: nb when they do not (no kernels, or a remainder wider
// than colsMax past the half tile halfEdge covers).
func (k gemmKernel) colsFrom(nb int) int {
	part := nb % k.nr
	if part == 0 || k.cols[0][0] == nil {
		return nb
	}
	if part > k.nr/2 && k.halfEdge != nil {
		part -= k.nr / 2
	}
	if part > colsMax {
		return nb
	}
	return nb - part
}

// macroCols is macroKernel's columns [jn, nb) (nb − jn ≤ colsMax, in the
// last panel of bp) for rows [i0, mb), on the column kernels: colsPanels
// of a's panels at a time, then one.
func macroCols(kern gemmKernel, zero bool, kb int, ap []float32, i0, mb int, bp []float32, jn, nb int, alpha float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	n := nb - jn
	jt := jn / nr * nr
	b := bp[jt*kb+jn-jt : jt*kb+nr*kb]
	for i := i0; i < mb; {
		panels, fn := 1, kern.cols[0][n-1]
		if mb-i >= colsPanels*mr {
			panels, fn = colsPanels, kern.cols[1][n-1]
		}
		rows := min(panels*mr, mb-i)
		ct := c[i*ldc+jn : (i+rows-1)*ldc+nb]
		if zero {
			for r := 0; r < rows; r++ {
				clear(ct[r*ldc : r*ldc+n])
			}
		}
		fn(kb, ap[i*kb:(i+panels*mr)*kb], b, ct, ldc, alpha, rows)
		i += rows
	}
}

// gemmParallel is the blocked algorithm on `threads` goroutines that share
// the packed B. For each chunk of nc columns of C, two phases:
//
//	pack:    all of op(B)[:, chunk] into NR-wide panels, one (kc block,
//	         panel) per task;
//	compute: C[rows, cols] += alpha·op(A)[rows, :]·op(B)[:, cols] for a grid
//	         of row groups (whole MR panels) × column groups (whole NR
//	         panels), each task packing its own rows of A.
//
// The goroutines are the caller and the helper team (parallel.go). Tasks are
// handed out from an atomic counter, so the calling goroutine starts at
// once and a helper that arrives late (or shares a busy core) simply takes
// fewer; a phase begins when every task of the previous one is done.
func gemmParallel(kern gemmKernel, zero, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, pa *packedA, b []float32, ldb int, cb *convB, q *quantB, c []float32, ldc int, threads int) {
	mr, nr := kern.mr, kern.nr
	// The job's state is kept across calls; its teamJob is left alone (a
	// helper may still look at it, see teamJob).
	g := gemmJobs.get()
	g.gemmArgs = gemmArgs{kern: kern, zero: zero, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, pa: pa, b: b, ldb: ldb, cb: cb, q: q, c: c, ldc: ldc, kc: kern.kc()}
	// A packed chunk holds all k rows: narrower chunks keep it within
	// maxSharedB values when k is long.
	nc := max(nr, min(blk.nc, maxSharedB/k)/nr*nr)
	kblocks := (k + g.kc - 1) / g.kc
	// Task grid of the compute phase: about 4 tasks per thread, row groups
	// first (they pack disjoint rows of A), column groups when M is short.
	mp := (m + mr - 1) / mr
	rowGroups := min(mp, 4*threads)
	g.rowsPer = (mp + rowGroups - 1) / rowGroups * mr
	rowGroups = (m + g.rowsPer - 1) / g.rowsPer

	g.phases = grow(g.phases, 2*((n+nc-1)/nc))
	for i := 0; i < len(g.phases); i += 2 {
		pack, comp := &g.phases[i], &g.phases[i+1]
		jc := i / 2 * nc
		nb := min(nc, n-jc)
		np := (nb + nr - 1) / nr
		colGroups := min(np, max(1, (4*threads+rowGroups-1)/rowGroups))
		colsPer := (np + colGroups - 1) / colGroups * nr
		colGroups = (nb + colsPer - 1) / colsPer
		pack.gemmPhaseArgs = gemmPhaseArgs{pack: true, jc: jc, nb: nb, np: np, tasks: kblocks * np}
		comp.gemmPhaseArgs = gemmPhaseArgs{jc: jc, nb: nb, np: np, colGroups: colGroups, colsPer: colsPer, tasks: rowGroups * colGroups}
		pack.next.Store(0)
		pack.done.Store(0)
		comp.next.Store(0)
		comp.done.Store(0)
	}
	shared := sharedBPool.get()
	*shared = grow(*shared, kern.depth(k)*min(nc, (n+nr-1)/nr*nr))
	g.bp = *shared
	g.teamJob.j = g
	teamRun(threads-1, &g.teamJob)
	sharedBPool.put(shared)
	g.gemmArgs = gemmArgs{} // no references to this call's matrices
	gemmJobs.put(g)
}

var gemmJobs freeList[gemmJob]

// maxSharedB bounds the packed B chunk of gemmParallel (4 MiB).
const maxSharedB = 1 << 20

// gemmJob is one call of gemmParallel.
type gemmJob struct {
	teamJob
	gemmArgs
	phases []gemmPhase
}

// gemmArgs are a gemmJob's operands and blocking.
type gemmArgs struct {
	kern           gemmKernel
	transA, transB bool
	zero           bool // C = alpha·op(A)·op(B): each tile cleared first
	m, n, k        int
	alpha          float32
	a, b, c        []float32
	lda, ldb, ldc  int
	cb             *convB   // when set, B is read through it
	q              *quantB  // the int8 kernel's quantisation of B
	pa             *packedA // when set, A packed already (for this kernel and blk.kc)
	kc, rowsPer    int
	bp             []float32 // the packed chunk of B: kc block pb at depth(pb·kc)·np·NR, its panel q at q·NR·depth(kb)
}

// gemmPhase is one phase of a gemmJob: packing or computing one chunk of
// columns jc..jc+nb (np panels; column groups of colsPer columns).
type gemmPhase struct {
	gemmPhaseArgs
	next, done atomic.Int64
}

// gemmPhaseArgs say what a gemmPhase does.
type gemmPhaseArgs struct {
	pack                      bool
	jc, nb, np                int
	colGroups, colsPer, tasks int
}

// run takes tasks phase after phase until none is left, and returns
// when the last phase is complete. A goroutine that arrives late finds
// earlier phases taken and done, and runs nothing of them.
func (g *gemmJob) run() {
	var buf *gemmBuffers
	for i := range g.phases {
		ph := &g.phases[i]
		for {
			t := int(ph.next.Add(1) - 1)
			if t >= ph.tasks {
				break
			}
			if buf == nil {
				buf = bufPool.get()
			}
			g.task(ph, t, buf)
			ph.done.Add(1)
		}
		// The other goroutines finish their last tasks of this phase: at
		// most one task's time, too short to park for.
		for ph.done.Load() < int64(ph.tasks) {
			relax()
		}
	}
	if buf != nil {
		bufPool.put(buf)
	}
}

// task runs task t of phase ph.
func (g *gemmJob) task(ph *gemmPhase, t int, buf *gemmBuffers) {
	mr, nr, kc, np := g.kern.mr, g.kern.nr, g.kc, ph.np
	if ph.pack {
		pc, j := t/np*kc, t%np*nr
		kb := min(kc, g.k-pc)
		packBOp(g.kern, g.cb, g.transB, kb, min(nr, ph.nb-j), g.b, g.ldb, pc, ph.jc+j, g.bp[g.kern.depth(pc)*np*nr+j*g.kern.depth(kb):], buf, g.q)
		return
	}
	i0, j0 := (t/ph.colGroups)*g.rowsPer, (t%ph.colGroups)*ph.colsPer
	mb, cb := min(g.rowsPer, g.m-i0), min(ph.colsPer, ph.nb-j0)
	for pc := 0; pc < g.k; pc += kc {
		kb := min(kc, g.k-pc)
		kd := g.kern.depth(kb)
		ap := buf.a
		if g.pa != nil {
			ap = g.pa.block(i0, pc, kb)
		} else {
			buf.a = grow(buf.a, (mb+mr-1)/mr*mr*kd)
			ap = buf.a
			packAOp(g.kern, g.transA, mb, kb, g.a, g.lda, i0, pc, ap, buf)
		}
		macroKernel(g.kern, g.zero && pc == 0, kd, ap, mb, g.bp[g.kern.depth(pc)*np*nr+j0*kd:], cb, g.alpha, g.c[i0*g.ldc+ph.jc+j0:], g.ldc, buf)
	}
}

// scaleC applies C = beta·C (beta = 0 clears, ignoring NaN).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		scale(beta, row, row)
	}
}

// edgeScratch computes a partial tile into the scratch tile t and adds its
// valid mm×nn part to c.
func edgeScratch(kern gemmKernel, kb int, ap, bp, c []float32, ldc int, alpha float32, mm, nn int, t []float32) {
	nr := kern.nr
	clear(t)
	kern.fn(kb, ap, bp, t, nr, alpha)
	for ii := 0; ii < mm; ii++ {
		row := c[ii*ldc : ii*ldc+nn]
		for jj, v := range t[ii*nr : ii*nr+nn] {
			row[jj] += v
		}
	}
}

// packRowsGo is: for r < rows, l < kb: dst[l*ldd+r] = src[r*lds+l]
func packRowsGo(src []float32, lds, rows, kb int, dst []float32, ldd int) {
	for r := 0; r < rows; r++ {
		s := src[r*lds : r*lds+kb]
		for l, v := range s {
			dst[l*ldd+r] = v
		}
	}
}

// copyRows is: for l < kb: dst[l*w : l*w+w] = src[l*lds : l*lds+w],
// in vector registers for the panel widths of the AVX-512 and AVX2
// kernels. Go compiles a fixed-size copy of more than four values into a
// runtime.memmove call, no better than copy; four (the generic kernel's
// panels) stay inline.
func copyRows(src []float32, lds, w, kb int, dst []float32) {
	if copyRowsVec(src, lds, w, kb, dst) {
		return
	}
	if w == 4 {
		for l := 0; l < kb; l++ {
			*(*[4]float32)(dst[l*4:]) = *(*[4]float32)(src[l*lds:])
		}
		return
	}
	for l := 0; l < kb; l++ {
		copy(dst[l*w:l*w+w], src[l*lds:l*lds+w])
	}
}

// packA copies the mb×kb block of op(A) at (i0, l0) into MR-tall panels:
// panel p holds, for each l, the MR values op(A)[i0+p·MR+r][l0+l], zero-padded.
func packA(kern gemmKernel, trans bool, mb, kb int, a []float32, lda, i0, l0 int, dst []float32) {
	mr := kern.mr
	for p := 0; p*mr < mb; p++ {
		d := dst[p*mr*kb : (p+1)*mr*kb]
		rows := min(mr, mb-p*mr)
		i := i0 + p*mr
		switch {
		case rows < mr:
			clear(d)
			if trans {
				for l := 0; l < kb; l++ {
					copy(d[l*mr:l*mr+rows], a[(l0+l)*lda+i:])
				}
			} else {
				packRowsGo(a[i*lda+l0:], lda, rows, kb, d, mr)
			}
		case trans:
			copyRows(a[l0*lda+i:], lda, mr, kb, d)
		case kern.packRows != nil:
			kern.packRows(a[i*lda+l0:], lda, mr, kb, d, mr)
		default:
			packRowsGo(a[i*lda+l0:], lda, mr, kb, d, mr)
		}
	}
}

// packBOp is packB, or cb's packer when B is a convolution's image, for
// kern: for a low-precision kernel each panel is packed in float32 into
// buf.wide, then paired (bfloat16) or quantised by q (int8).
func packBOp(kern gemmKernel, cb *convB, trans bool, kb, nb int, b []float32, ldb, l0, j0 int, dst []float32, buf *gemmBuffers, q *quantB) {
	if !kern.bf16 && !kern.i8 {
		packBF32(kern, cb, trans, kb, nb, b, ldb, l0, j0, dst)
		return
	}
	nr, kd := kern.nr, kern.depth(kb)
	convert := func(src []float32, lds int, d []float32) {
		if kern.bf16 {
			pairRows(src, lds, nr, kb, d)
		} else {
			quadRows(src, lds, nr, kb, d, q)
		}
	}
	buf.wide = grow(buf.wide, nr*kb)
	for j := 0; j < nb; j += nr {
		d := dst[j*kd : j*kd+nr*kd]
		if cb == nil && !trans && nb-j >= nr {
			// Whole panel of rows of B: converted straight from B.
			convert(b[l0*ldb+j0+j:], ldb, d)
			continue
		}
		if cb != nil && !trans && cb.packNarrow(kern, nr, kb, min(nr, nb-j), l0, j0+j, d, q) {
			continue
		}
		if cb != nil && cb.srcU8 != nil {
			// Images in bytes are set up only where packNarrow runs; q
			// may be another image's (implicitForwardImages).
			panic("cpu: an image in bytes packed without packNarrow")
		}
		packBF32(kern, cb, trans, kb, min(nr, nb-j), b, ldb, l0, j0+j, buf.wide)
		convert(buf.wide, nr, d)
	}
}

func packBF32(kern gemmKernel, cb *convB, trans bool, kb, nb int, b []float32, ldb, l0, j0 int, dst []float32) {
	if cb != nil {
		cb.packOp(trans, kern.nr, kb, nb, l0, j0, dst)
		return
	}
	packB(kern, trans, kb, nb, b, ldb, l0, j0, dst)
}

// packAOp is packA for kern: for a low-precision kernel the panels are
// packed in float32 into buf.wide, then paired (bfloat16) or packed as
// signed bytes (int8: a holds integers already, see quantizeRows).
func packAOp(kern gemmKernel, trans bool, mb, kb int, a []float32, lda, i0, l0 int, dst []float32, buf *gemmBuffers) {
	if !kern.bf16 && !kern.i8 {
		packA(kern, trans, mb, kb, a, lda, i0, l0, dst)
		return
	}
	if kern.i8 && buf == nil {
		panic("cpu: int8 A is packed only once, with its scales (packedA)")
	}
	mr, kd := kern.mr, kern.depth(kb)
	np := (mb + mr - 1) / mr
	buf.wide = grow(buf.wide, np*mr*kb)
	packA(kern, trans, mb, kb, a, lda, i0, l0, buf.wide)
	for q := 0; q < np; q++ {
		if kern.i8 {
			quadInts(buf.wide[q*mr*kb:(q+1)*mr*kb], mr, kb, dst[q*mr*kd:(q+1)*mr*kd])
		} else {
			pairRows(buf.wide[q*mr*kb:(q+1)*mr*kb], mr, mr, kb, dst[q*mr*kd:(q+1)*mr*kd])
		}
	}
}

// packB copies the kb×nb block of op(B) at (l0, j0) into NR-wide panels:
// panel p holds, for each l, the NR values op(B)[l0+l][j0+p·NR+c], zero-padded.
func packB(kern gemmKernel, trans bool, kb, nb int, b []float32, ldb, l0, j0 int, dst []float32) {
	nr := kern.nr
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		cols := min(nr, nb-p*nr)
		j := j0 + p*nr
		switch {
		case cols < nr:
			clear(d)
			if trans {
				packRowsGo(b[j*ldb+l0:], ldb, cols, kb, d, nr)
			} else {
				for l := 0; l < kb; l++ {
					copy(d[l*nr:l*nr+cols], b[(l0+l)*ldb+j:])
				}
			}
		case !trans:
			copyRows(b[l0*ldb+j:], ldb, nr, kb, d)
		case kern.packRows != nil:
			kern.packRows(b[j*ldb+l0:], ldb, nr, kb, d, nr)
		default:
			packRowsGo(b[j*ldb+l0:], ldb, nr, kb, d, nr)
		}
	}
}
