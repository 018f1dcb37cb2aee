package cpu

import (
	"fmt"
	"math"
	"slices"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Convolution through GEMM. Per image n and group g:
//
//	col   (C/G·R·S, P·Q)  = im2col(x[n, g])
//	y[n, g]  (K/G, P·Q)   = w[g] (K/G, C/G·R·S) · col
//	dcol                  = w[g]ᵀ · dy[n, g];   dx[n, g] = col2im(dcol)
//	dw[g]   += dy[n, g] · colᵀ
//
// A 1×1 convolution with stride 1 and no padding uses x itself as col.
// Images are spread over the threads; each GEMM then runs on one thread, so
// threads never wait on each other inside a layer. A batch smaller than the
// thread count gives each image's GEMMs the threads left over (gemmThreads).
// Two paths compute this: the explicit one (im2col, col2im) and, where the
// geometry allows, the implicit GEMM below, which packs the GEMM's B
// operand straight from a padded image. ConvBNActForward fuses batch
// norm's affine map, a residual and a ReLU into the forward pass
// (convEpilogue).

// Conv2dForward implements backend.Ops.
func (b *Backend) Conv2dForward(p backend.Conv2dParams, x, w, y *tensor.Tensor) {
	backend.CheckConv("conv2d forward", p, x, w, y)
	p = p.Normalized()
	xData, wData, yData := x.HostData(), w.HostData(), y.HostData()
	if b.ref {
		refConvForward(p, xData, wData, yData)
		return
	}
	b.convForward(p, xData, wData, yData, nil)
}

// convForward is Conv2dForward (p normalised) on the path forwardLoop
// chooses, with epilogue applied to each image's output when it is not
// nil.
func (b *Backend) convForward(p backend.Conv2dParams, x, w, y []float32, epilogue *convEpilogue) {
	k, t := b.forwardLoop(p, w, epilogue)
	defer t.release()
	b.runForward(k, x, y)
}

// Conv2dBackwardData implements backend.Ops.
func (b *Backend) Conv2dBackwardData(p backend.Conv2dParams, dy, w, dx *tensor.Tensor) {
	backend.CheckConv("conv2d backward data", p, dx, w, dy)
	p = p.Normalized()
	dyData, wData, dxData := dy.HostData(), w.HostData(), dx.HostData()
	if b.ref {
		refConvBackwardData(p, dyData, wData, dxData)
		return
	}
	if implicitBackwardData(p) {
		b.convImplicitBackwardData(p, dyData, wData, dxData)
		return
	}
	// Each group's filter transposed (C/G·R·S × K/G), packed once for
	// every image's GEMM rather than per image and column block.
	G := p.G()
	fp := packGroups(true, G, p.C/G*p.R*p.S, p.K/G, wData)
	defer filterPool.put(fp)
	splitN(b, &convLoops, p.N, convLoop{run: (*convLoop).col2imBackwardData, p: p, x: dxData, w: wData, y: dyData, filt: *fp, gt: gemmThreads(b.Threads(), p.N)})
}

// Conv2dBackwardFilter implements backend.Ops.
func (b *Backend) Conv2dBackwardFilter(p backend.Conv2dParams, x, dy, dw *tensor.Tensor) {
	backend.CheckConv("conv2d backward filter", p, x, dw, dy)
	p = p.Normalized()
	xData, dyData, dwData := x.HostData(), dy.HostData(), dw.HostData()
	if b.ref {
		refConvBackwardFilter(p, xData, dyData, dwData)
		return
	}
	indirect := true
	switch {
	case b.winograd(p, nil):
		b.convWinogradBackwardFilter(p, xData, dyData, dwData)
	case implicitBackwardFilter(p):
		b.convImplicitBackwardFilter(p, xData, dyData, dwData)
	default:
		indirect = false
	}
	// The implicit path also multiplies values outside the filter's reach
	// by zero, and Winograd's adds and subtracts a tile's values before
	// the products, which turns an Inf into a NaN the direct sum has not.
	// A finite result is the direct sum's (in another order, or through
	// the transforms); only a non-finite one is computed again, directly.
	if indirect && finite(dwData) {
		return
	}
	b.sumOverImages(p.N, dwData, convLoop{sum: (*convLoop).im2colBackwardFilter, p: p, x: xData, y: dyData, gt: gemmThreads(b.Threads(), p.N)})
}

// ConvBNActForward implements backend.ConvBNActer: the convolution, then
// per image, while its output is still in cache, batch norm's affine map
// (the same scale and shift, through the same kernel, as
// BatchNormForward), the residual and the ReLU, row by row.
func (b *Backend) ConvBNActForward(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool) {
	b.convBNAct(p, eps, x, w, gamma, beta, runMean, runVar, res, y, relu, nil, nil)
}

// ConvBNActForwardRange implements backend.ConvBNActRanger. The ranges are
// the int8 path's: a convolution that scales its images to bytes takes
// each one's largest value from xMax instead of a pass over it (x then has
// no negative value, so its zero point is 0), and one that ends in a ReLU
// notes each image's largest output value as the epilogue writes it, row
// by row while the row is in L1. The other paths use neither and return
// false; so does an image whose largest value is not finite (a NaN or an
// infinity), whose reader then reads it as it would without xMax.
func (b *Backend) ConvBNActForwardRange(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool, xMax, yMax []float32) bool {
	const op = "conv-bn-act forward"
	if xMax != nil && len(xMax) != p.N {
		panic(fmt.Sprintf("cpu: %s: %d ranges of x for %d images", op, len(xMax), p.N))
	}
	if len(yMax) != p.N {
		panic(fmt.Sprintf("cpu: %s: room for %d ranges of y for %d images", op, len(yMax), p.N))
	}
	if !relu {
		yMax = nil
	}
	return b.convBNAct(p, eps, x, w, gamma, beta, runMean, runVar, res, y, relu, xMax, yMax)
}

// convBNAct is ConvBNActForwardRange (xMax and yMax may be nil).
func (b *Backend) convBNAct(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool, xMax, yMax []float32) bool {
	const op = "conv-bn-act forward"
	backend.CheckConv(op, p, x, w, y)
	np := p.Normalized()
	bn := backend.BatchNormParams{N: p.N, C: p.K, L: np.P() * np.Q(), Eps: eps}
	backend.CheckBatchNorm(op, bn, y, y, gamma, beta, runMean, runVar)
	if res != nil {
		backend.CheckSame(op+" residual", y.Numel(), res)
	}
	if b.ref {
		b.Conv2dForward(p, x, w, y)
		b.BatchNormForward(bn, y, gamma, beta, runMean, runVar, y, nil, nil)
		if res != nil {
			b.Binary(backend.Add, y, res, y)
		}
		if relu {
			b.Unary(backend.Relu, y, y, 0, 0)
		}
		return false
	}
	e := epilogues.get()
	defer epilogues.put(e)
	e.set(bn, gamma.HostData(), beta.HostData(), runMean.HostData(), runVar.HostData(), relu)
	if res != nil {
		e.res = res.HostData()
	}
	// The int8 path's finish writes each image's value; one left NaN
	// was not written (another path) or is not finite.
	for i := range yMax {
		yMax[i] = float32(math.NaN())
	}
	e.inMax, e.outMax = xMax, yMax
	defer func() { e.res, e.inMax, e.outMax = nil, nil, nil }()
	xData, wData, yData := x.HostData(), w.HostData(), y.HostData()
	b.convForward(np, xData, wData, yData, e)
	return rangesReported(yMax)
}

// rangesReported reports whether yMax (nil: not asked for) holds a finite,
// non-negative largest value for every image: what the ranged ops return.
// A NaN marks one that was not written.
func rangesReported(yMax []float32) bool {
	for _, v := range yMax {
		if !(v >= 0 && v <= math.MaxFloat32) {
			return false
		}
	}
	return yMax != nil
}

// convLoop is a convolution pass's loop over images: the arguments of one
// call and its pass, one of the methods below. x, w and y are the pass's
// input image, filter and output (or their gradients, as each method
// says). A pass that writes each image's output is run, on images split
// over the threads (splitN: im2colForward, col2imBackwardData,
// implicitForward); a weight-gradient pass is sum, adding the gradient of
// images [lo, hi) into acc (sumOverImages: im2colBackwardFilter,
// implicitBackwardFilter).
type convLoop struct {
	run     func(k *convLoop, lo, hi int)
	sum     func(k *convLoop, acc []float32, lo, hi int)
	p       backend.Conv2dParams
	geo     phased // implicit paths: the padded image's phase planes
	x, w, y []float32
	filt    []packedA  // each group's packed filter (backward data: transposed)
	wg      *wgFilters // Winograd forward: the transformed filter
	lanes   []float32  // lanes forward: the filter by lanesPack (lanesPackBF16 with lanesBF16)
	// lanesBF16: the lanes path on the bfloat16 kernels.
	lanesBF16 bool
	epi       *convEpilogue // forward: applied to each image's output
	gt        int           // threads per GEMM
}

var convLoops freeList[convLoop]

func (k *convLoop) chunk(lo, hi int) {
	if k.run == nil {
		panic("cpu: convLoop: a backward-filter pass runs through sumOverImages")
	}
	k.run(k, lo, hi)
}

// sumOverImages runs k.sum over the images split across the
// threads, each part adding into its own zeroed accumulator (the first
// part into dw itself), then adds the others into dw: a weight gradient
// summed over the batch without threads writing the same memory.
func (b *Backend) sumOverImages(n int, dw []float32, k convLoop) {
	s := imageSums.get()
	defer imageSums.put(s)
	s.conv = convLoops.get()
	*s.conv = k
	s.dw = dw
	s.parts = splitRangeInto(s.parts[:0], n, b.Threads(), 1)
	s.partials = grow(s.partials, len(s.parts))
	parallelFor(len(s.parts), b.Threads(), s)
	for _, part := range s.partials[1:] {
		axpy(1, *part, dw)
		partialPool.put(part)
	}
	*s.conv = convLoop{}
	convLoops.put(s.conv)
	s.conv, s.dw = nil, nil
	clear(s.partials)
}

// imageSum is sumOverImages' loop over its parts of the batch.
type imageSum struct {
	conv     *convLoop
	dw       []float32
	parts    [][2]int
	partials []*[]float32 // accumulators of parts 1…
}

var imageSums freeList[imageSum]

func (s *imageSum) chunk(t0, t1 int) {
	for t := t0; t < t1; t++ {
		acc := s.dw
		if t > 0 {
			s.partials[t] = getFrom(&partialPool, len(s.dw))
			acc = *s.partials[t]
		}
		clear(acc)
		s.conv.sum(s.conv, acc, s.parts[t][0], s.parts[t][1])
	}
}

// im2colForward is Conv2dForward's explicit path for images [lo, hi).
func (k *convLoop) im2colForward(lo, hi int) { k.im2colImages(nil, lo, hi, true) }

// im2colBackwardFilter is Conv2dBackwardFilter's explicit path: it adds
// the weight gradient of images [lo, hi) into acc (k.y is dy).
func (k *convLoop) im2colBackwardFilter(acc []float32, lo, hi int) {
	k.im2colImages(acc, lo, hi, false)
}

// im2colImages is the explicit path for images [lo, hi): per image and
// group, the column matrix (x itself when pointwise) goes into a GEMM with
// the filter (forward: y = w·col) or with dy (not forward: acc += dy·colᵀ,
// k.y being dy).
func (k *convLoop) im2colImages(acc []float32, lo, hi int, forward bool) {
	p, x, threads := k.p, k.x, k.gt
	G, PQ := p.G(), p.P()*p.Q()
	cg, kg := p.C/G, p.K/G
	crs := cg * p.R * p.S
	var colBuf *[]float32
	if !isPointwise(p) {
		colBuf = getCol(crs * PQ)
		defer colPool.put(colBuf)
	}
	var st *convScratch
	if forward {
		// A pool of its own: the implicit path's scratch keeps its large
		// padded image, which this one would leave to be grown again.
		st = explicitScratchPool.get()
		defer explicitScratchPool.put(st)
	}
	for n := lo; n < hi; n++ {
		var q *quantB
		if forward && k.filt != nil && k.filt[0].i8 != nil {
			q = k.imageQuant(st, n, x[n*p.C*p.H*p.W:(n+1)*p.C*p.H*p.W])
		}
		for g := 0; g < G; g++ {
			xs := x[(n*p.C+g*cg)*p.H*p.W:]
			col := xs
			if colBuf != nil {
				col = *colBuf
				if threads > 1 {
					splitWith(&im2colRuns, cg, threads, im2colRun{p: p, x: xs, col: col})
				} else {
					im2col(p, cg, xs, col)
				}
			}
			if forward {
				out := k.y[(n*p.K+g*kg)*PQ : (n*p.K+(g+1)*kg)*PQ]
				var pa *packedA
				if k.filt != nil {
					pa = &k.filt[g]
				}
				gemmDispatch(true, false, false, kg, PQ, crs, 1, k.w[g*kg*crs:], crs, pa, col, PQ, nil, q, out, PQ, threads)
			} else {
				sgemm(false, true, kg, crs, PQ, 1, k.y[(n*p.K+g*kg)*PQ:], PQ, col, PQ, 1, acc[g*kg*crs:], crs, threads)
			}
		}
		if forward {
			k.finish(st, n, q)
		}
	}
}

// col2imBackwardData is Conv2dBackwardData's explicit path for images
// [lo, hi) (k.x is dx, k.y is dy, k.filt each group's filter transposed).
func (k *convLoop) col2imBackwardData(lo, hi int) {
	p, dx, w, dy, threads := k.p, k.x, k.w, k.y, k.gt
	G, PQ := p.G(), p.P()*p.Q()
	cg, kg := p.C/G, p.K/G
	crs := cg * p.R * p.S
	var colBuf *[]float32
	if !isPointwise(p) {
		colBuf = getCol(crs * PQ)
		defer colPool.put(colBuf)
	}
	for n := lo; n < hi; n++ {
		for g := 0; g < G; g++ {
			dxs := dx[(n*p.C+g*cg)*p.H*p.W : (n*p.C+(g+1)*cg)*p.H*p.W]
			dcol := dxs
			if colBuf != nil {
				dcol = *colBuf
			}
			gemmDispatch(true, true, false, crs, PQ, kg, 1, w[g*kg*crs:], crs, &k.filt[g], dy[(n*p.K+g*kg)*PQ:], PQ, nil, nil, dcol, PQ, threads)
			if colBuf != nil {
				clear(dxs)
				col2im(p, cg, dcol, dxs)
			}
		}
	}
}

// implicitForward is convImplicitForward for images [lo, hi).
func (k *convLoop) implicitForward(lo, hi int) {
	p, geo, x, w, y, filt, threads := k.p, k.geo, k.x, k.w, k.y, k.filt, k.gt
	G, P, Q := p.G(), p.P(), p.Q()
	PQ := P * Q
	cg, kg := p.C/G, p.K/G
	crs := cg * p.R * p.S
	chw := geo.chanSize()
	st := convScratchPool.get()
	defer convScratchPool.put(st)
	st.cb.setup(cg, geo, p.R, p.S, p.DilH, p.DilW, P, Q)
	// An unpadded image with unit strides is its own phase plane.
	direct := p.PadH == 0 && p.PadW == 0 && p.StrideH == 1 && p.StrideW == 1
	if !direct {
		st.pad = grow(st.pad, geo.size())
	}
	// Where the GEMM's columns read each value of the image more than
	// once (R·S taps over sh·sw phases), the int8 path quantises the
	// image to bytes once and gathers the bytes.
	bytes := filt[0].i8 != nil && i8Ready() && p.R*p.S > p.StrideH*p.StrideW
	if bytes {
		st.padU8 = grow(st.padU8, geo.size()+16)
	}
	for n := lo; n < hi; n++ {
		if m := imagesPerGEMM(filt[0].i8 == nil || bytes, p.K, PQ, hi-n); m > 1 {
			k.implicitForwardImages(st, n, m, direct, bytes)
			n += m - 1
			continue
		}
		src := x[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		var q *quantB
		if filt[0].i8 != nil {
			// The padding is zero, which the quantisation keeps exact.
			q = k.imageQuant(st, n, src)
		}
		switch {
		case !direct && bytes:
			k.channelPass(st, imagePass{op: passFill, geo: geo, src: src, dst: st.pad, bytes: st.padU8, q: q}, p.C)
			src = st.pad
		case !direct:
			k.channelPass(st, imagePass{op: passFill, geo: geo, src: src, dst: st.pad}, p.C)
			src = st.pad
		case bytes:
			k.channelPass(st, imagePass{op: passQuant, src: src, plane: chw, bytes: st.padU8, q: q}, p.C)
		}
		for g := 0; g < G; g++ {
			st.cb.src = src[g*cg*chw : (g+1)*cg*chw]
			if bytes {
				st.cb.srcU8 = st.padU8[g*cg*chw:]
			}
			out := y[(n*p.K+g*kg)*PQ : (n*p.K+(g+1)*kg)*PQ]
			gemmDispatch(true, false, false, kg, PQ, crs, 1, w[g*kg*crs:], crs, &filt[g], nil, 0, &st.cb, q, out, PQ, threads)
		}
		k.finish(st, n, q)
	}
	st.cb.src, st.cb.srcU8 = nil, nil
}

// implicitForwardImages is implicitForward for the m images from n in
// one GEMM per group: its columns are the images' pixels side by side
// (convB.repeat), its output goes to st.out, and finishImages moves each
// image's part into y. st.cb is set up for one image. With bytes (the
// int8 path) each image is quantised to bytes by its own scale, side by
// side in st.padU8, and scaled back by it.
func (k *convLoop) implicitForwardImages(st *convScratch, n, m int, direct, bytes bool) {
	p, geo, w, filt := k.p, k.geo, k.w, k.filt
	G, PQ := p.G(), p.P()*p.Q()
	cg, kg := p.C/G, p.K/G
	crs, chw, size := cg*p.R*p.S, geo.chanSize(), geo.size()
	chans := p.C * p.H * p.W
	src := k.x[n*chans : (n+m)*chans]
	var qs []*quantB
	if bytes {
		st.padU8 = grow(st.padU8, m*size+16)
		st.quants = grow(st.quants, m)[:m]
		qs = st.quants
		for i := range m {
			qs[i] = k.imageQuant(st, n+i, src[i*chans:(i+1)*chans])
		}
	}
	if !direct {
		st.pad = grow(st.pad, m*size)
	}
	for i := range m {
		xi := src[i*chans : (i+1)*chans]
		var ip imagePass
		switch {
		case !direct:
			ip = imagePass{op: passFill, geo: geo, src: xi, dst: st.pad[i*size : (i+1)*size]}
		case bytes:
			ip = imagePass{op: passQuant, src: xi, plane: chw}
		default:
			continue
		}
		if bytes {
			ip.bytes, ip.q = st.padU8[i*size:(i+1)*size], qs[i]
		}
		k.channelPass(st, ip, p.C)
	}
	if !direct {
		src = st.pad[:m*size]
	}
	one := len(st.cb.colOff)
	st.cb.repeat(m, size)
	cols := m * PQ
	st.out = grow(st.out, p.K*cols)
	var q *quantB
	if bytes {
		// packNarrow reads the bytes and not q; the GEMM wants one.
		q = qs[0]
	}
	for g := 0; g < G; g++ {
		st.cb.src = src[g*cg*chw:]
		if bytes {
			st.cb.srcU8 = st.padU8[g*cg*chw:]
		}
		gemmDispatch(true, false, false, kg, cols, crs, 1, w[g*kg*crs:], crs, &filt[g], nil, 0, &st.cb, q, st.out[g*kg*cols:], cols, k.gt)
	}
	st.cb.colOff, st.cb.run = st.cb.colOff[:one], st.cb.run[:one]
	st.cb.src, st.cb.srcU8 = nil, nil
	k.finishImages(st, st.out, n, m, qs)
	clear(qs)
}

// imagesPerGEMM is how many of the avail images next in line one forward
// GEMM with k output channels should take when each image has pq output
// pixels (one image when grouped is false: the int8 path takes several
// only from images quantised to bytes, each by its own scale). The
// columns of C are cut into tiles of the micro-kernel's width, and a
// last partial tile costs a whole one: an image of 49 pixels
// (7×7) fills two tiles of 32 to 77%. Taken m at a time, the avail images
// cost ⌊avail/m⌋ groups' tiles plus the rest's; the answer is the
// smallest m with the fewest, within maxImageOut values of output (the
// GEMMs' scratch, kept near L2). Images that fill their tiles to 85% or
// more go one at a time: for 196 pixels (88%) the copy into y cost what
// the fuller tiles saved (ResNet-18's shapes, one thread: 3×3 on 7×7
// +15–25% forward, +20% backward data; on 14×14 −2% to +1%). The same
// line holds for int8: ResNet-50 at batch 32 with 14×14 planes grouped
// too took 299.7 ms against 290.2.
func imagesPerGEMM(grouped bool, k, pq, avail int) int {
	const maxImageOut = 512 << 10
	nr := activeKernel().nr
	tiles := func(cols int) int { return (cols + nr - 1) / nr }
	if !grouped || avail < 2 || 100*pq >= 85*tiles(pq)*nr {
		return 1
	}
	best, fewest := 1, avail*tiles(pq)
	for m := 2; m <= avail && k*m*pq <= maxImageOut; m++ {
		if t := avail/m*tiles(m*pq) + tiles(avail%m*pq); t < fewest {
			best, fewest = m, t
		}
	}
	return best
}

// finishImages completes the forward output of the m images from n, which
// a GEMM over their pixels side by side left in out (K rows of m·P·Q):
// each image's part goes to its place in y, through the epilogue if there
// is one. With qs (the int8 path), image i's sums are scaled back by
// qs[i] first, in the same pass (as finish does for one image).
func (k *convLoop) finishImages(st *convScratch, out []float32, n, m int, qs []*quantB) {
	p := k.p
	PQ := p.P() * p.Q()
	cols := m * PQ
	for i := range m {
		y := k.y[(n+i)*p.K*PQ : (n+i+1)*p.K*PQ]
		part := out[i*PQ:]
		if qs != nil {
			scale, shift := k.scaleBack(st, qs[i])
			if k.epi == nil {
				for c := range p.K {
					affine(scale[c], shift[c], part[c*cols:c*cols+PQ], y[c*PQ:(c+1)*PQ])
				}
				continue
			}
			wantMax := k.epi.outMax != nil
			hi := k.epi.applyRows(n+i, y, part, cols, scale, shift, 0, p.K, wantMax)
			if wantMax {
				k.epi.outMax[n+i] = hi
			}
			continue
		}
		if k.epi == nil {
			for c := range p.K {
				copy(y[c*PQ:(c+1)*PQ], part[c*cols:c*cols+PQ])
			}
			continue
		}
		k.epi.applyRows(n+i, y, part, cols, k.epi.scale, k.epi.shift, 0, p.K, false)
	}
}

// scaleBack is the per-channel affine map that takes the int8 GEMM's sums
// for an image quantised by q to the convolution's output, composed with
// the epilogue's scale and shift if there is one (in st.scale, st.shift):
// for channel c of group g, y = a·sum + b with a = s_w·s_x and
// b = −a·zero·Σw_q.
func (k *convLoop) scaleBack(st *convScratch, q *quantB) (scale, shift []float32) {
	p := k.p
	G := p.G()
	kg := p.K / G
	st.scale, st.shift = grow(st.scale, p.K), grow(st.shift, p.K)
	for g := 0; g < G; g++ {
		s := k.filt[g].i8
		for c := 0; c < kg; c++ {
			a := s.scale[c] * q.scale
			st.scale[g*kg+c], st.shift[g*kg+c] = a, -a*float32(q.zero)*float32(s.sum[c])
		}
	}
	if k.epi != nil {
		for c := range st.scale[:p.K] {
			es, eb := k.epi.scale[c], k.epi.shift[c]
			st.scale[c], st.shift[c] = es*st.scale[c], es*st.shift[c]+eb
		}
	}
	return st.scale[:p.K], st.shift[:p.K]
}

// finish completes image n's forward output after its GEMMs: the int8
// path's scaling back (q not nil), then the epilogue, in one pass per
// channel (the two affine maps composed) while the output is in cache.
func (k *convLoop) finish(st *convScratch, n int, q *quantB) {
	p := k.p
	PQ := p.P() * p.Q()
	y := k.y[n*p.K*PQ : (n+1)*p.K*PQ]
	if q == nil {
		if k.epi != nil {
			k.channelPass(st, imagePass{op: passFinish, y: y, n: n, epi: k.epi, scale: k.epi.scale, shift: k.epi.shift, plane: PQ}, p.K)
		}
		return
	}
	scale, shift := k.scaleBack(st, q)
	if k.epi == nil {
		k.channelPass(st, imagePass{op: passFinish, y: y, n: n, scale: scale, shift: shift, plane: PQ}, p.K)
		return
	}
	wantMax := k.epi.outMax != nil
	k.channelPass(st, imagePass{op: passFinish, y: y, n: n, epi: k.epi, scale: scale, shift: shift, plane: PQ, wantMax: wantMax}, p.K)
	if wantMax {
		hi := st.lohi[0][1]
		for _, r := range st.lohi[1:len(st.parts)] {
			hi = max(hi, r[1])
		}
		k.epi.outMax[n] = hi
	}
}

// imageQuant is the quantisation of image n (src, p.C channels) to
// bytes: from its largest value where the epilogue has it (inMax, an
// image without negative values), else from a pass over it.
func (k *convLoop) imageQuant(st *convScratch, n int, src []float32) *quantB {
	if k.epi != nil && k.epi.inMax != nil {
		return quantFromRange(0, k.epi.inMax[n])
	}
	return quantFromRange(k.imageRange(st, src, k.p.C))
}

// The passes over one image around its GEMMs, by channel, split over the
// threads the batch leaves to each image (convLoop.gt: at batch 1 all of
// them) so that they do not run on one thread while the others wait.
const (
	passRange     = iota // the smallest and largest value of src (plane values a channel)
	passFill             // geo.fill of src into dst (then quantised into bytes by q, if bytes is set)
	passQuant            // src quantised into bytes by q (plane values a channel)
	passFinish           // y = scale·y + shift per channel, then epi's residual and ReLU (epi may be nil); with wantMax, the largest value written per part
	passLanesFill        // lanesFill of src (k.p's image) into dst; with pairs, parts are of pairs of channels, rounded into pairs by pairSpans
)

// imagePass is one of those passes; parts are its channel ranges.
type imagePass struct {
	op       int
	p        backend.Conv2dParams // passLanesFill: the convolution
	pairs    []float32            // passLanesFill: the bfloat16 pairs, or nil
	geo      phased
	src, dst []float32
	bytes    []byte  // passFill, passQuant: the quantised image
	q        *quantB // its quantisation
	y        []float32
	n, plane int
	epi      *convEpilogue
	scale    []float32
	shift    []float32
	parts    [][2]int
	wantMax  bool         // passFinish: note each part's largest output value in lohi
	lohi     [][2]float32 // passRange, passFinish with wantMax: per part
}

var imagePasses freeList[imagePass]

func (ip *imagePass) chunk(lo, hi int) {
	for i := lo; i < hi; i++ {
		c0, c1 := ip.parts[i][0], ip.parts[i][1]
		switch ip.op {
		case passRange:
			l, h := minMax(ip.src[c0*ip.plane : c1*ip.plane])
			ip.lohi[i] = [2]float32{l, h}
		case passFill:
			g := ip.geo
			g.ch = c1 - c0
			dst := ip.dst[c0*g.chanSize() : c1*g.chanSize()]
			g.fill(ip.src[c0*g.h*g.w:c1*g.h*g.w], dst)
			if ip.bytes != nil {
				quantU8Row(dst, ip.bytes[c0*g.chanSize():], ip.q)
			}
		case passLanesFill:
			p := ip.p
			if ip.pairs == nil {
				lanesFill(ip.src, p.C, p.H, p.W, p.PadH, p.PadW, c0, c1, ip.dst)
				continue
			}
			// Parts of pairs of channels: each padded row's pairs
			// rounded to bfloat16 after the float32 fill.
			lanesFill(ip.src, p.C, p.H, p.W, p.PadH, p.PadW, 2*c0, 2*c1, ip.dst)
			wp := p.W + 2*p.PadW
			for i := range p.H + 2*p.PadH {
				pairSpans(ip.dst[(i*p.C+2*c0)*wp:], wp, c1-c0, ip.pairs[(i*p.C/2+c0)*wp:])
			}
		case passQuant:
			quantU8Row(ip.src[c0*ip.plane:c1*ip.plane], ip.bytes[c0*ip.plane:], ip.q)
		case passFinish:
			if ip.epi != nil {
				hi := ip.epi.applyRows(ip.n, ip.y, ip.y, ip.plane, ip.scale, ip.shift, c0, c1, ip.wantMax)
				if ip.wantMax {
					ip.lohi[i] = [2]float32{0, hi}
				}
				continue
			}
			for c := c0; c < c1; c++ {
				row := ip.y[c*ip.plane : (c+1)*ip.plane]
				affine(ip.scale[c], ip.shift[c], row, row)
			}
		}
	}
}

// channelPass runs pass ip over ch channels, in parts of an eighth of a
// thread's share: parallelFor hands the last ones to whichever thread is
// free (with two parts a thread, one of the passes around each GEMM at
// batch 1 left a thread waiting an eighth of the pass).
func (k *convLoop) channelPass(st *convScratch, ip imagePass, ch int) {
	threads := max(1, k.gt)
	st.parts = splitRangeInto(st.parts[:0], ch, 8*threads, 1)
	ip.parts = st.parts
	if ip.op == passRange || ip.wantMax {
		st.lohi = grow(st.lohi, len(ip.parts))
		ip.lohi = st.lohi
	}
	if threads == 1 {
		ip.chunk(0, len(ip.parts))
		return
	}
	splitWith(&imagePasses, len(ip.parts), threads, ip)
}

// imageRange is the smallest and largest value of the ch channels of src.
func (k *convLoop) imageRange(st *convScratch, src []float32, ch int) (lo, hi float32) {
	k.channelPass(st, imagePass{op: passRange, src: src, plane: len(src) / ch}, ch)
	lo, hi = st.lohi[0][0], st.lohi[0][1]
	for _, r := range st.lohi[1:len(st.parts)] {
		lo, hi = min(lo, r[0]), max(hi, r[1])
	}
	return lo, hi
}

// implicitBackwardFilter is convImplicitBackwardFilter's sum over images
// [lo, hi), added into acc (k.y is dy).
func (k *convLoop) implicitBackwardFilter(acc []float32, lo, hi int) {
	p, geo, x, dy, threads := k.p, k.geo, k.x, k.y, k.gt
	G, P, Q := p.G(), p.P(), p.Q()
	cg, kg := p.C/G, p.K/G
	crs := cg * p.R * p.S
	chw, wpe := geo.chanSize(), geo.wpe
	grid := P * wpe
	// The runs of the last taps end up to Wpe values past the last plane.
	tail := wpe
	st := convScratchPool.get()
	defer convScratchPool.put(st)
	st.cb.setupGrid(cg, geo, p.R, p.S, p.DilH, p.DilW, P)
	st.pad = grow(st.pad, geo.size()+tail)
	clear(st.pad[geo.size():])
	st.dy = grow(st.dy, p.K*grid)
	for n := lo; n < hi; n++ {
		geo.fill(x[n*p.C*p.H*p.W:(n+1)*p.C*p.H*p.W], st.pad)
		dyImage := dy[n*p.K*P*Q : (n+1)*p.K*P*Q]
		for r := 0; r < p.K*P; r++ {
			row := st.dy[r*wpe : (r+1)*wpe]
			copy(row[:Q], dyImage[r*Q:(r+1)*Q])
			clear(row[Q:])
		}
		for g := 0; g < G; g++ {
			st.cb.src = st.pad[g*cg*chw:]
			gemmDispatch(false, false, true, kg, crs, grid, 1, st.dy[g*kg*grid:], grid, nil, nil, 0, &st.cb, nil, acc[g*kg*crs:], crs, threads)
		}
	}
	st.cb.src = nil
}

// convImplicitForward is Conv2dForward on the implicit path (p normalised),
// followed by epilogue on each image's output when epilogue is not nil.
func (b *Backend) convImplicitForward(p backend.Conv2dParams, x, w, y []float32, epilogue *convEpilogue) {
	k, t := b.implicitLoop(p, w, epilogue)
	defer t.release()
	b.runForward(k, x, y)
}

// runForward runs the forward pass k (from forwardLoop) on all images of
// x into y, split over the threads.
func (b *Backend) runForward(k convLoop, x, y []float32) {
	k.x, k.y, k.gt = x, y, gemmThreads(b.Threads(), k.p.N)
	// Ranges of at least a quarter of a thread's share of the images: on
	// small planes a range's images go side by side into one GEMM
	// (imagesPerGEMM), which single images at the loop's end would not.
	splitGrainN(b, &convLoops, k.p.N, k.p.N/(4*b.Threads()), k)
}

// taken is what a forward pass took from the pools for its filters, to be
// given back when it is done (a value, so that it costs no allocation).
type taken struct {
	filt  *[]packedA // packed filters of weights not frozen
	wg    *wgFilters // transformed filters of weights not frozen
	lanes *[]float32 // the lanes path's filters of weights not frozen
}

func (t taken) release() {
	if t.filt != nil {
		filterPool.put(t.filt)
	}
	if t.wg != nil {
		wgFilterPool.put(t.wg)
	}
	if t.lanes != nil {
		lanesFilterPool.put(t.lanes)
	}
}

// forwardLoop is the forward pass of convolution p (normalised) with
// filter w and epilogue epi, as Conv2dForward runs it (the same path and
// filters), for a caller to run on images of its choosing (runForward
// takes them all); t.release gives back what it took.
func (b *Backend) forwardLoop(p backend.Conv2dParams, w []float32, epi *convEpilogue) (k convLoop, t taken) {
	if implicitForward(p) {
		return b.implicitLoop(p, w, epi)
	}
	G := p.G()
	filt, fp := b.packedFilters(G, p.K/G, p.C/G*p.R*p.S, w)
	return convLoop{run: (*convLoop).im2colForward, p: p, w: w, filt: filt, epi: epi}, taken{filt: fp}
}

// implicitLoop is forwardLoop on the implicit path: Winograd's
// F(4×4, 3×3) where b.winograd4 takes p, F(2×2, 3×3) where b.winograd
// does, the lanes path where b.lanes does, else the direct
// sums from the phase planes.
func (b *Backend) implicitLoop(p backend.Conv2dParams, w []float32, epi *convEpilogue) (k convLoop, t taken) {
	if b.winograd4(p, w) {
		f, pooled := b.winogradFilters(4, p.K, p.C, w)
		if pooled {
			t.wg = f
		}
		return convLoop{run: (*convLoop).winogradForward, p: p, geo: wg4Phased(p), w: w, wg: f, epi: epi}, t
	}
	if b.winograd(p, w) {
		f, pooled := b.winogradFilters(2, p.K, p.C, w)
		if pooled {
			t.wg = f
		}
		return convLoop{run: (*convLoop).winogradForward, p: p, geo: newPhased(p.C, p.H, p.W, 1, 1, 2, 2), w: w, wg: f, epi: epi}, t
	}
	if b.lanes(p, w) {
		bf16 := b.lanesBF16(p)
		f, pooled := b.lanesFilters(p.K, p.C, w, bf16)
		if pooled {
			t.lanes = f
		}
		return convLoop{run: (*convLoop).lanesForward, p: p, w: w, lanes: *f, lanesBF16: bf16, epi: epi}, t
	}
	G := p.G()
	filt, fp := b.packedFilters(G, p.K/G, p.C/G*p.R*p.S, w)
	geo := newPhased(p.C, p.H, p.W, p.PadH, p.PadW, p.StrideH, p.StrideW)
	return convLoop{run: (*convLoop).implicitForward, p: p, geo: geo, w: w, filt: filt, epi: epi}, taken{filt: fp}
}

// packFilters packs each group's filter matrix (m×k at w[g·m·k:]) once for
// the GEMMs of every image.
func packFilters(groups, m, k int, w []float32) *[]packedA {
	return packGroups(false, groups, m, k, w)
}

// packGroups packs op(A) of each group (A at w[g·m·k:], m×k, or k×m
// transposed) for the active kernel into a buffer from filterPool.
func packGroups(trans bool, groups, m, k int, w []float32) *[]packedA {
	fp := filterPool.get()
	if cap(*fp) < groups {
		*fp = make([]packedA, groups)
	}
	*fp = (*fp)[:groups]
	kern := activeKernel()
	lda := k
	if trans {
		lda = m
	}
	for g := range *fp {
		(*fp)[g].pack(kern, trans, m, k, w[g*m*k:], lda)
	}
	return fp
}

var flipPool freeList[[]float32]

var filterPool freeList[[]packedA]

// convImplicitBackwardData is Conv2dBackwardData on the implicit path (p
// normalised, unit strides).
func (b *Backend) convImplicitBackwardData(p backend.Conv2dParams, dy, w, dx []float32) {
	G, P, Q := p.G(), p.P(), p.Q()
	cg, kg := p.C/G, p.K/G
	rs := p.R * p.S
	krs := kg * rs
	// The flipped filter: per group, a cg × (kg·R·S) matrix.
	fb := flipPool.get()
	defer flipPool.put(fb)
	*fb = grow(*fb, G*cg*krs)
	flip := *fb
	for g := 0; g < G; g++ {
		for k := 0; k < kg; k++ {
			wk := w[(g*kg+k)*cg*rs:]
			for c := 0; c < cg; c++ {
				dst := flip[(g*cg+c)*krs+k*rs:]
				src := wk[c*rs : (c+1)*rs]
				for i := range rs {
					dst[i] = src[rs-1-i]
				}
			}
		}
	}
	// dx is the unit-stride convolution of dy (K channels, P×Q) with the
	// flipped filter (C outputs), padded by the filter's reach less the
	// padding on each side: the forward path computes it.
	q := backend.Conv2dParams{N: p.N, C: p.K, H: P, W: Q, K: p.C, R: p.R, S: p.S,
		StrideH: 1, StrideW: 1, PadH: p.DilH*(p.R-1) - p.PadH, PadW: p.DilW*(p.S-1) - p.PadW,
		DilH: p.DilH, DilW: p.DilW, Groups: G}
	b.convImplicitForward(q, dy, flip, dx, nil)
}

// convImplicitBackwardFilter is Conv2dBackwardFilter on the implicit path
// (p normalised). Per image and group,
//
//	dw += dy' · Bᵀ
//
// on the grid of P whole phase-plane rows of Wpe pixels: dy' is dy with
// each row widened to Wpe by zeros, and B (taps × pixels) reads the phased
// image with one contiguous run per tap, packed by transposing tap rows
// (convB.packT).
func (b *Backend) convImplicitBackwardFilter(p backend.Conv2dParams, x, dy, dw []float32) {
	geo := newPhased(p.C, p.H, p.W, p.PadH, p.PadW, p.StrideH, p.StrideW)
	b.sumOverImages(p.N, dw, convLoop{sum: (*convLoop).implicitBackwardFilter, p: p, geo: geo, x: x, y: dy, gt: gemmThreads(b.Threads(), p.N)})
}

// isPointwise reports whether col == x for this convolution.
func isPointwise(p backend.Conv2dParams) bool {
	return p.R == 1 && p.S == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0
}

// gemmThreads is how many threads each image's GEMMs get when n images
// share threads.
func gemmThreads(threads, n int) int { return max(1, threads/max(1, n)) }

// colPool holds im2col's column buffers, partialPool sumOverImages'
// per-thread weight gradients: kept apart, so that neither keeps growing a
// buffer that came back from the other.
var colPool, partialPool freeList[[]float32]

func getCol(n int) *[]float32 { return getFrom(&colPool, n) }

// getFrom takes a buffer of n values from l.
func getFrom(l *freeList[[]float32], n int) *[]float32 {
	b := l.get()
	*b = grow(*b, n)
	return b
}

// im2col fills col (C·R·S, P·Q) from one image's channels x (C, H, W).
func im2col(p backend.Conv2dParams, c int, x, col []float32) {
	im2colChannels(p, x, col, 0, c)
}

// im2colChannels is im2col for channels [c0, c1): rows [c0·R·S, c1·R·S)
// of col.
func im2colChannels(p backend.Conv2dParams, x, col []float32, c0, c1 int) {
	P, Q := p.P(), p.Q()
	for ci := c0; ci < c1; ci++ {
		plane := x[ci*p.H*p.W : (ci+1)*p.H*p.W]
		for r := 0; r < p.R; r++ {
			for s := 0; s < p.S; s++ {
				dst := col[((ci*p.R+r)*p.S+s)*P*Q:]
				// Output columns [q0, q1) read inside the row; the rest is padding.
				off := s*p.DilW - p.PadW
				q0, q1 := validRange(off, p.StrideW, p.W, Q)
				for oh := 0; oh < P; oh++ {
					ih := oh*p.StrideH - p.PadH + r*p.DilH
					row := dst[oh*Q : (oh+1)*Q]
					if ih < 0 || ih >= p.H || q0 >= q1 {
						clear(row)
						continue
					}
					src := plane[ih*p.W : (ih+1)*p.W]
					clear(row[:q0])
					clear(row[q1:])
					if p.StrideW == 1 {
						copy(row[q0:q1], src[off+q0:off+q1])
						continue
					}
					iw := off + q0*p.StrideW
					for ow := q0; ow < q1; ow++ {
						row[ow] = src[iw]
						iw += p.StrideW
					}
				}
			}
		}
	}
}

// im2colRun is im2colImages' im2col of one image split over the threads
// by channels (at batch 1 both threads have the one image).
type im2colRun struct {
	p      backend.Conv2dParams
	x, col []float32
}

var im2colRuns freeList[im2colRun]

func (r *im2colRun) chunk(lo, hi int) { im2colChannels(r.p, r.x, r.col, lo, hi) }

// validRange returns the output columns [q0, q1) of a filter column whose
// input column ow·stride + off falls inside [0, w).
func validRange(off, stride, w, q int) (q0, q1 int) {
	// ow·stride + off ≥ 0  ⇔  ow ≥ ⌈−off/stride⌉
	if off < 0 {
		q0 = (-off + stride - 1) / stride
	}
	// ow·stride + off ≤ w − 1  ⇔  ow ≤ ⌊(w − 1 − off)/stride⌋
	if last := w - 1 - off; last < 0 {
		q1 = 0
	} else {
		q1 = min(q, last/stride+1)
	}
	return min(q0, q), max(q1, min(q0, q))
}

// col2im adds col (C·R·S, P·Q) into one image's dx (C, H, W), which the
// caller has zeroed.
func col2im(p backend.Conv2dParams, c int, col, dx []float32) {
	P, Q := p.P(), p.Q()
	for ci := 0; ci < c; ci++ {
		plane := dx[ci*p.H*p.W : (ci+1)*p.H*p.W]
		for r := 0; r < p.R; r++ {
			for s := 0; s < p.S; s++ {
				src := col[((ci*p.R+r)*p.S+s)*P*Q:]
				off := s*p.DilW - p.PadW
				q0, q1 := validRange(off, p.StrideW, p.W, Q)
				if q0 >= q1 {
					continue
				}
				for oh := 0; oh < P; oh++ {
					ih := oh*p.StrideH - p.PadH + r*p.DilH
					if ih < 0 || ih >= p.H {
						continue
					}
					row := src[oh*Q : (oh+1)*Q]
					dst := plane[ih*p.W : (ih+1)*p.W]
					if p.StrideW == 1 {
						axpy(1, row[q0:q1], dst[off+q0:off+q1])
						continue
					}
					iw := off + q0*p.StrideW
					for ow := q0; ow < q1; ow++ {
						dst[iw] += row[ow]
						iw += p.StrideW
					}
				}
			}
		}
	}
}

// Implicit-GEMM convolution. Instead of expanding an image into the
// (C·R·S)×(P·Q) column matrix and then packing that matrix again for the
// GEMM, the GEMM's B packer reads the column matrix straight from a
// zero-padded copy of the image.
//
// Strides are taken out first: the padded image is split into sh×sw phase
// planes by row and column remainder (space-to-depth),
//
//	phase (i mod sh, j mod sw), position (i div sh, j div sw)  ←  xpad[i][j]
//
// so that the tap (c, r, s) of output pixel (oh, ow), which reads
// xpad[c][oh·sh + r·dilH][ow·sw + s·dilW], reads its phase plane at
// (oh + ⌊r·dilH/sh⌋, ow + ⌊s·dilW/sw⌋):
//
//	B[(c, r, s)][(oh, ow)] = src[rowOff[(c, r, s)] + colOff[(oh, ow)]],  colOff = oh·Wpe + ow
//
// Along a row of output pixels colOff steps by one, so a packed panel row
// is one or a few contiguous copies (one per output row it spans). With
// unit strides the phase plane is the padded image itself. The copy costs
// C·Hp·Wp values per image against im2col's C·R·S·P·Q.
//
// Backward data with unit strides is the same computation on the padded
// output gradient with the filter flipped and its two channel axes swapped:
//
//	dx[c][h][w] = Σ_k Σ_r' Σ_s' w[k][c][R−1−r'][S−1−s'] · dypad[k][h + r'·dilH][w + s'·dilW]
//
// with dy padded by dil·(R−1) − pad rows (and the same for columns), so
// dx = w' · B with no col2im and no clearing of dx beforehand. (Strided
// backward data keeps col2im.)
//
// Backward filter takes the output on the grid of whole phase-plane rows
// (P rows of Wpe pixels, dy widened by zeros), where the pixels of a tap
// are one contiguous run, and packs Bᵀ by transposing tap rows.

// implicitForward reports whether the forward convolution takes the
// implicit-GEMM path: not a pointwise convolution (those use x itself), and
// the filter's reach inside the padded plane (P rounds a negative span up
// to one row, which im2col reads as padding).
//
// A large strided 1×1 convolution does not: its column matrix is a
// subsample of the image, smaller than the phase planes the implicit path
// would copy (all sh·sw of them, for one to be read), and a plain GEMM
// reads it. Measured per image: ResNet-18's downsampling shortcuts (6.4M
// multiply-adds an image) 1.3–1.8× faster explicit, resnet-s's (0.5M)
// 1.3× slower; the line is drawn at 2M.
func implicitForward(p backend.Conv2dParams) bool {
	if p.R == 1 && p.S == 1 && p.K*p.C/p.G()*p.P()*p.Q() >= 1<<21 {
		return false
	}
	return !isPointwise(p) &&
		(p.P()-1)*p.StrideH+p.DilH*(p.R-1) < p.H+2*p.PadH &&
		(p.Q()-1)*p.StrideW+p.DilW*(p.S-1) < p.W+2*p.PadW
}

// implicitBackwardFilter reports whether backward filter takes the
// implicit path: where forward does, unless the grid of whole phase-plane
// rows it sums over does more extra work than im2col's copy costs. The
// extra is K·(Wpe − Q)/Q multiply-adds per value of the column matrix,
// the copy about 64 (measured): a 3×3 convolution to 512 channels of 7×7
// planes (rows of 9 for 7 pixels) is 1.1× faster on im2col, one to 128
// channels of 8×8 planes 1.15× slower.
func implicitBackwardFilter(p backend.Conv2dParams) bool {
	if !implicitForward(p) {
		return false
	}
	wpe := newPhased(p.C, p.H, p.W, p.PadH, p.PadW, p.StrideH, p.StrideW).wpe
	return p.K/p.G()*(wpe-p.Q()) <= 64*p.Q()
}

// implicitBackwardData reports whether backward data takes the implicit
// path: unit strides and padding no larger than the filter's reach.
func implicitBackwardData(p backend.Conv2dParams) bool {
	return p.StrideH == 1 && p.StrideW == 1 && !isPointwise(p) &&
		p.PadH <= p.DilH*(p.R-1) && p.PadW <= p.DilW*(p.S-1)
}

// finite reports whether every value of x is finite.
func finite(x []float32) bool {
	s := sum64(x)
	return !math.IsNaN(s) && !math.IsInf(s, 0)
}

// convScratch is one goroutine's state for the implicit path.
type convScratch struct {
	pad, dy      []float32
	padU8        []byte    // implicitForward: the int8 path's images in bytes
	quants       []*quantB // implicitForwardImages: their quantisations
	out          []float32 // implicitForwardImages: the GEMMs' output
	wv, wm       []float32 // winogradForward: the GEMMs' B panels and output
	pairs        []float32 // lanesForward in bfloat16: the padded rows' pairs
	cb           convB
	scale, shift []float32 // finish: the composed per-channel maps
	parts        [][2]int  // channelPass: channel ranges
	lohi         [][2]float32
}

var convScratchPool, explicitScratchPool freeList[convScratch]

// phased is the geometry of a padded image split into phase planes.
type phased struct {
	ch, h, w, ph, pw, sh, sw int
	hpe, wpe                 int // a phase plane's rows and columns
}

func newPhased(ch, h, w, ph, pw, sh, sw int) phased {
	hp, wp := h+2*ph, w+2*pw
	return phased{ch: ch, h: h, w: w, ph: ph, pw: pw, sh: sh, sw: sw,
		hpe: (hp + sh - 1) / sh, wpe: (wp + sw - 1) / sw}
}

// plane is the size of one phase plane, chanSize that of one channel.
func (g phased) plane() int { return g.hpe * g.wpe }

func (g phased) chanSize() int { return g.sh * g.sw * g.plane() }

func (g phased) size() int { return g.ch * g.chanSize() }

// at is the offset of padded position (i, j) of channel c.
func (g phased) at(c, i, j int) int {
	return c*g.chanSize() + ((i%g.sh)*g.sw+j%g.sw)*g.plane() + i/g.sh*g.wpe + j/g.sw
}

// fill writes the ch planes of h×w of x into dst (size()), zeros around.
func (g phased) fill(x, dst []float32) {
	if g.sh == 1 && g.sw == 1 {
		padImage(x, g.ch, g.h, g.w, g.ph, g.pw, dst)
		return
	}
	pl, chs := g.plane(), g.chanSize()
	// Per column phase b: the first x with (x + pw) mod sw = b, how many
	// columns it has, and where they start in the phase row.
	type colPhase struct{ x0, n, off int }
	phases := make([]colPhase, 0, 4)
	for b := 0; b < g.sw; b++ {
		x0 := ((b-g.pw)%g.sw + g.sw) % g.sw
		if x0 < g.w {
			phases = append(phases, colPhase{x0, (g.w - x0 + g.sw - 1) / g.sw, b*pl + (x0+g.pw)/g.sw})
		}
	}
	// At column stride 2 with both column phases read, each row splits
	// into its even and odd columns in one pass.
	pairs := g.sw == 2 && len(phases) == 2
	var ev, od colPhase
	if pairs {
		ev, od = phases[0], phases[1]
		if ev.x0 != 0 {
			ev, od = od, ev
		}
	}
	for c := 0; c < g.ch; c++ {
		src := x[c*g.h*g.w : (c+1)*g.h*g.w]
		clear(dst[c*chs : (c+1)*chs]) // while it is in cache
		if g.sw == 4 && g.splitChannel4(src, dst[c*chs:]) {
			continue
		}
		if pairs {
			g.splitChannel(src, dst[c*chs:], ev.off, od.off, od.n, ev.n > od.n)
			continue
		}
		// Row i = y + ph is row ii of row phase a.
		a, ii := g.ph%g.sh, g.ph/g.sh
		for y := 0; y < g.h; y++ {
			rowBase := c*chs + a*g.sw*pl + ii*g.wpe
			row := src[y*g.w : (y+1)*g.w]
			for _, cp := range phases {
				d := dst[rowBase+cp.off:][:cp.n]
				r := row[cp.x0:]
				if g.sw == 2 {
					r = r[:2*cp.n-1]
					for k := range d {
						d[k] = r[2*k]
					}
					continue
				}
				for k := range d {
					d[k] = r[k*g.sw]
				}
			}
			if a++; a == g.sh {
				a, ii = 0, ii+1
			}
		}
	}
}

// rowPhase is where the image rows of row phase a go: rows y0, y0+sh, …
// (rows of them) are the phase's rows from (y0+ph)/sh on, which start at
// base in a channel's planes (column phase 0); ok is false when no image
// row falls in the phase.
func (g phased) rowPhase(a int) (y0, rows, base int, ok bool) {
	y0 = ((a-g.ph)%g.sh + g.sh) % g.sh
	if y0 >= g.h {
		return 0, 0, 0, false
	}
	rows = (g.h - y0 + g.sh - 1) / g.sh
	return y0, rows, a*g.sw*g.plane() + (y0+g.ph)/g.sh*g.wpe, true
}

// splitChannel4 is fill's column stride 4 for one channel (src, h×w) into
// its phase planes at dst, the rows of each row phase in one call of
// split4RowsVec; false, having done nothing, without its kernel.
func (g phased) splitChannel4(src, dst []float32) bool {
	pl := g.plane()
	for a := 0; a < g.sh; a++ {
		y0, rows, base, ok := g.rowPhase(a)
		if !ok {
			continue
		}
		// Column x = 4k + m is padded column 4k + m + pw: phase
		// (m + pw) mod 4, index k + (m + pw)/4.
		var d [4][]float32
		for m := range d {
			d[m] = dst[base+(m+g.pw)%4*pl+(m+g.pw)/4:]
		}
		if !split4RowsVec(src[y0*g.w:], g.sh*g.w, g.w, rows, &d, g.wpe) {
			return false
		}
	}
	return true
}

// splitChannel is fill's column stride 2 for one channel (src, h×w) into
// its phase planes at dst: the even columns of each row to the column
// phase at evOff, the odd ones to that at odOff, n pairs a row and, with
// last, the even column left over at the end. The rows of each row phase
// go in one call of splitRowsVec.
func (g phased) splitChannel(src, dst []float32, evOff, odOff, n int, last bool) {
	for a := 0; a < g.sh; a++ {
		y0, rows, base, ok := g.rowPhase(a)
		if !ok {
			continue
		}
		de, do, r := dst[base+evOff:], dst[base+odOff:], src[y0*g.w:]
		lds := g.sh * g.w
		if !splitRowsVec(r, lds, n, rows, de, do, g.wpe) {
			for i := range rows {
				ri, ei, oi := r[i*lds:][:2*n], de[i*g.wpe:][:n], do[i*g.wpe:][:n]
				for k := range ei {
					ei[k], oi[k] = ri[2*k], ri[2*k+1]
				}
			}
		}
		if last {
			for i := range rows {
				de[i*g.wpe+n] = r[i*lds+2*n]
			}
		}
	}
}

// convB is the B operand of a convolution GEMM read from an image:
// B[l][j] = src[rowOff[l] + colOff[j]].
type convB struct {
	src []float32
	// srcU8, when set, is src quantised to bytes by the int8 kernel's
	// quantB (with 16 bytes to spare at the end), which packNarrow
	// gathers from instead.
	srcU8  []byte
	rowOff []int
	lo, hi int // the smallest and largest rowOff
	colOff []int
	// run[j] is how many columns from j on are contiguous in src (colOff
	// stepping by one), so a panel row is copied run by run.
	run []int
}

// setup fills the offset tables for the first ch channels of the phased
// image g, filters r×s with dilations dh, dw, and an output of p×q pixels
// (colOff = oh·Wpe + ow).
func (cb *convB) setup(ch int, g phased, r, s, dh, dw, p, q int) {
	cb.rowOff = grow(cb.rowOff, ch*r*s)
	l := 0
	for c := 0; c < ch; c++ {
		for i := 0; i < r; i++ {
			for j := 0; j < s; j++ {
				cb.rowOff[l] = g.at(c, i*dh, j*dw)
				l++
			}
		}
	}
	cb.lo, cb.hi = cb.rowOff[0], cb.rowOff[0]
	for _, o := range cb.rowOff {
		cb.lo, cb.hi = min(cb.lo, o), max(cb.hi, o)
	}
	cb.colOff = grow(cb.colOff, p*q)
	cb.run = grow(cb.run, p*q)
	for oh := 0; oh < p; oh++ {
		for ow := 0; ow < q; ow++ {
			cb.colOff[oh*q+ow] = oh*g.wpe + ow
			cb.run[oh*q+ow] = q - ow
		}
	}
}

// repeat extends the columns of one image (setup's) to m images whose
// phased copies lie stride values apart: column i·P·Q + j reads image i
// where column j reads the first.
func (cb *convB) repeat(m, stride int) {
	one := len(cb.colOff)
	cb.colOff = slices.Grow(cb.colOff, (m-1)*one)[:m*one]
	cb.run = slices.Grow(cb.run, (m-1)*one)[:m*one]
	for i := 1; i < m; i++ {
		for j := range one {
			cb.colOff[i*one+j] = cb.colOff[j] + i*stride
			cb.run[i*one+j] = cb.run[j]
		}
	}
}

// setupGrid is setup with the output taken on the grid of p whole rows of
// Wpe pixels: the columns are one contiguous run, and the extra pixels of
// each row read values the caller cancels (backward filter multiplies them
// by zero gradients).
func (cb *convB) setupGrid(ch int, g phased, r, s, dh, dw, p int) {
	cb.setup(ch, g, r, s, dh, dw, 1, p*g.wpe)
}

// packOp packs op(B): B itself (pack) or its transpose (packT).
func (cb *convB) packOp(trans bool, nr, kb, nb, l0, j0 int, dst []float32) {
	if trans {
		cb.packT(nr, kb, nb, l0, j0, dst)
	} else {
		cb.pack(nr, kb, nb, l0, j0, dst)
	}
}

// packT is packB of Bᵀ: the kb×nb block of Bᵀ at (l0, j0), i.e. taps
// j0..j0+nb of pixels l0..l0+kb, which must be one contiguous run
// (setupGrid). Each panel is a transpose of nr tap rows.
func (cb *convB) packT(nr, kb, nb, l0, j0 int, dst []float32) {
	if cb.run[l0] < kb || nr > 32 {
		panic("cpu: convB: transposed packing needs contiguous pixels")
	}
	base := cb.colOff[l0]
	var offs [32]int
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		cols := min(nr, nb-p*nr)
		j := j0 + p*nr
		if cols < nr {
			clear(d)
		}
		o := offs[:cols]
		for c := range o {
			o[c] = cb.rowOff[j+c] + base
		}
		// The vector packer does rows [0, rv) × columns [0, cv); Go the rest.
		rv, cv := packRowsOffVec(cb.src, o, kb, d, nr)
		for c, off := range o {
			l0 := cv
			if c >= rv {
				l0 = 0
			}
			for l, v := range cb.src[off+l0 : off+kb] {
				d[(l0+l)*nr+c] = v
			}
		}
	}
}

// pack is packB for this operand: the kb×nb block at (l0, j0) into
// nr-wide panels, zero-padded.
func (cb *convB) pack(nr, kb, nb, l0, j0 int, dst []float32) {
	rows := cb.rowOff[l0 : l0+kb]
	src := cb.src
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		cols := min(nr, nb-p*nr)
		j := j0 + p*nr
		if cols < nr {
			clear(d)
		}
		for c := 0; c < cols; {
			n := min(cb.run[j+c], cols-c)
			base := cb.colOff[j+c]
			switch {
			case gatherRowsVec(d[c:], nr, src, rows, cb.lo, cb.hi, base, n):
			case n == 8:
				for l, ro := range rows {
					*(*[8]float32)(d[l*nr+c:]) = *(*[8]float32)(src[ro+base:])
				}
			default:
				for l, ro := range rows {
					copy(d[l*nr+c:l*nr+c+n], src[ro+base:ro+base+n])
				}
			}
			c += n
		}
	}
}

// padImage copies ch planes of h×w from x into dst as planes of
// (h+2·ph)×(w+2·pw) with zero borders.
func padImage(x []float32, ch, h, w, ph, pw int, dst []float32) {
	hp, wp := h+2*ph, w+2*pw
	for c := 0; c < ch; c++ {
		plane := dst[c*hp*wp : (c+1)*hp*wp]
		clear(plane[:ph*wp+pw])
		clear(plane[(ph+h)*wp-pw:])
		src := x[c*h*w : (c+1)*h*w]
		for i := 0; i < h; i++ {
			row := plane[(ph+i)*wp+pw:]
			copy(row[:w], src[i*w:(i+1)*w])
			if i < h-1 {
				clear(row[w : w+2*pw])
			}
		}
	}
}

// convEpilogue is what ConvBNActForward applies to each image's output:
// per channel k, y = scale[k]·y + shift[k], then + res, then the ReLU.
type convEpilogue struct {
	scale, shift []float32
	res          []float32 // all images' residual, or nil
	relu         bool
	plane        int // values per channel and image (P·Q)
	// The int8 path's image ranges (ConvBNActForwardRange): each image's
	// largest input value (nil: unknown), and room for each one's largest
	// output value (nil: not wanted).
	inMax, outMax []float32
}

var epilogues freeList[convEpilogue]

// set computes the per-channel scale and shift of eval-mode batch norm
// bn, as bnForwardChannels does.
func (e *convEpilogue) set(bn backend.BatchNormParams, gamma, beta, runMean, runVar []float32, relu bool) {
	e.scale, e.shift = grow(e.scale, bn.C), grow(e.shift, bn.C)
	for c := range bn.C {
		invStd := 1 / math.Sqrt(float64(runVar[c])+float64(bn.Eps))
		e.scale[c], e.shift[c] = bnAffine(gamma[c], beta[c], float64(runMean[c]), invStd)
	}
	e.relu, e.plane = relu, bn.L
}

// applySpan finishes values [j0, j1) of channels [c0, c1) of image n,
// whose output is y (K planes), in place, with the epilogue's own scale
// and shift: per value what applyRows does, for a caller that has just
// written them.
func (e *convEpilogue) applySpan(n int, y []float32, c0, c1, j0, j1 int) {
	l := e.plane
	var res []float32
	if e.res != nil {
		res = e.res[n*len(y) : (n+1)*len(y)]
	}
	for k := c0; k < c1; k++ {
		row := y[k*l+j0 : k*l+j1]
		var r []float32
		if res != nil {
			r = res[k*l+j0 : k*l+j1]
		}
		e.applyRow(e.scale[k], e.shift[k], row, r, row, false)
	}
}

// applyRows finishes channels [c0, c1) of image n, whose output is y (K
// planes), with the per-channel affine map scale, shift (batch norm's, or
// composed with the int8 path's scaling back), reading the convolution's
// output from src, channel k's row at src[k·lds:] (src may be y, lds the
// plane). With wantMax it returns the largest value written (0 when
// larger).
func (e *convEpilogue) applyRows(n int, y, src []float32, lds int, scale, shift []float32, c0, c1 int, wantMax bool) (hi float32) {
	l := e.plane
	var res []float32
	if e.res != nil {
		res = e.res[n*len(y) : (n+1)*len(y)]
	}
	for k := c0; k < c1; k++ {
		var r []float32
		if res != nil {
			r = res[k*l : (k+1)*l]
		}
		hi = max(hi, e.applyRow(scale[k], shift[k], src[k*lds:k*lds+l], r, y[k*l:(k+1)*l], wantMax))
	}
	return hi
}

// applyRow writes row = scale·in + shift, + res (nil: none), then the
// ReLU if the epilogue has one. It returns the largest value written
// when there is a ReLU (its kernels give it as they write) or wantMax
// (taken while the row is in L1), else 0.
func (e *convEpilogue) applyRow(scale, shift float32, in, res, row []float32, wantMax bool) (hi float32) {
	switch {
	case e.relu && res != nil:
		return affineAddRelu(scale, shift, in, res, row)
	case e.relu:
		return affineRelu(scale, shift, in, row)
	}
	affine(scale, shift, in, row)
	if res != nil {
		add(row, res, row)
	}
	if wantMax {
		_, hi = minMax(row)
	}
	return hi
}

// The reference kernels.

// refConvForward: x (N, C, H, W), w (K, C/G, R, S) -> y (N, K, P, Q).
func refConvForward(p backend.Conv2dParams, x, w, y []float32) {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			g := k / kg
			for oh := 0; oh < P; oh++ {
				for ow := 0; ow < Q; ow++ {
					var s float64
					for c := 0; c < cg; c++ {
						ci := g*cg + c
						for r := 0; r < p.R; r++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for q := 0; q < p.S; q++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								s += float64(x[((n*p.C+ci)*p.H+ih)*p.W+iw]) * float64(w[((k*cg+c)*p.R+r)*p.S+q])
							}
						}
					}
					y[((n*p.K+k)*P+oh)*Q+ow] = float32(s)
				}
			}
		}
	}
}

// refConvBackwardData: dy (N, K, P, Q), w (K, C/G, R, S) -> dx (N, C, H, W).
func refConvBackwardData(p backend.Conv2dParams, dy, w, dx []float32) {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	acc := make([]float64, len(dx))
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			g := k / kg
			for oh := 0; oh < P; oh++ {
				for ow := 0; ow < Q; ow++ {
					d := float64(dy[((n*p.K+k)*P+oh)*Q+ow])
					for c := 0; c < cg; c++ {
						ci := g*cg + c
						for r := 0; r < p.R; r++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for q := 0; q < p.S; q++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								acc[((n*p.C+ci)*p.H+ih)*p.W+iw] += d * float64(w[((k*cg+c)*p.R+r)*p.S+q])
							}
						}
					}
				}
			}
		}
	}
	for i, v := range acc {
		dx[i] = float32(v)
	}
}

// refConvBackwardFilter: x (N, C, H, W), dy (N, K, P, Q) -> dw (K, C/G, R, S).
func refConvBackwardFilter(p backend.Conv2dParams, x, dy, dw []float32) {
	p = p.Normalized()
	P, Q, G := p.P(), p.Q(), p.G()
	cg, kg := p.C/G, p.K/G
	for k := 0; k < p.K; k++ {
		g := k / kg
		for c := 0; c < cg; c++ {
			ci := g*cg + c
			for r := 0; r < p.R; r++ {
				for q := 0; q < p.S; q++ {
					var s float64
					for n := 0; n < p.N; n++ {
						for oh := 0; oh < P; oh++ {
							ih := oh*p.StrideH - p.PadH + r*p.DilH
							if ih < 0 || ih >= p.H {
								continue
							}
							for ow := 0; ow < Q; ow++ {
								iw := ow*p.StrideW - p.PadW + q*p.DilW
								if iw < 0 || iw >= p.W {
									continue
								}
								s += float64(x[((n*p.C+ci)*p.H+ih)*p.W+iw]) * float64(dy[((n*p.K+k)*P+oh)*Q+ow])
							}
						}
					}
					dw[((k*cg+c)*p.R+r)*p.S+q] = float32(s)
				}
			}
		}
	}
}
