package cpu

import (
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

// isPointwise reports whether col == x for this convolution.
func isPointwise(p backend.Conv2dParams) bool {
	return p.R == 1 && p.S == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0
}

// im2col fills col (C·R·S, P·Q) from one image's channels x (C, H, W).
func im2col(p backend.Conv2dParams, c int, x, col []float32) {
	P, Q := p.P(), p.Q()
	for ci := 0; ci < c; ci++ {
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

// Conv2dForward implements backend.Ops.
func (b *Backend) Conv2dForward(p backend.Conv2dParams, x, w, y *tensor.Tensor) {
	backend.CheckConv("conv2d forward", p, x, w, y)
	p = p.Normalized()
	X, Wt, Y := x.HostData(), w.HostData(), y.HostData()
	if b.ref {
		refConvForward(p, X, Wt, Y)
		return
	}
	if implicitForward(p) {
		b.convImplicitForward(p, X, Wt, Y, nil)
		return
	}
	splitN(b, &convLoops, p.N, convLoop{pass: im2colForward, p: p, x: X, w: Wt, y: Y, gt: gemmThreads(b.Threads(), p.N)})
}

// im2colImages is the explicit path for images [lo, hi): per image and
// group, the column matrix (x itself when pointwise) goes into a GEMM with
// the filter (im2colForward: y = w·col) or with dy (im2colBackwardFilter:
// acc += dy·colᵀ, k.y being dy).
func (k *convLoop) im2colImages(acc []float32, lo, hi int) {
	p, X, gt := k.p, k.x, k.gt
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
			xs := X[(n*p.C+g*cg)*p.H*p.W:]
			col := xs
			if colBuf != nil {
				col = *colBuf
				im2col(p, cg, xs, col)
			}
			if k.pass == im2colForward {
				sgemm(false, false, kg, PQ, crs, 1, k.w[g*kg*crs:], crs, col, PQ, 0, k.y[(n*p.K+g*kg)*PQ:], PQ, gt)
			} else {
				sgemm(false, true, kg, crs, PQ, 1, k.y[(n*p.K+g*kg)*PQ:], PQ, col, PQ, 1, acc[g*kg*crs:], crs, gt)
			}
		}
	}
}

// Conv2dBackwardData implements backend.Ops.
func (b *Backend) Conv2dBackwardData(p backend.Conv2dParams, dy, w, dx *tensor.Tensor) {
	backend.CheckConv("conv2d backward data", p, dx, w, dy)
	p = p.Normalized()
	DY, Wt, DX := dy.HostData(), w.HostData(), dx.HostData()
	if b.ref {
		refConvBackwardData(p, DY, Wt, DX)
		return
	}
	if implicitBackwardData(p) {
		b.convImplicitBackwardData(p, DY, Wt, DX)
		return
	}
	splitN(b, &convLoops, p.N, convLoop{pass: col2imBackwardData, p: p, x: DX, w: Wt, y: DY, gt: gemmThreads(b.Threads(), p.N)})
}

// col2imBackwardData is Conv2dBackwardData's explicit path for images
// [lo, hi) (k.x is dx, k.y is dy).
func (k *convLoop) col2imBackwardData(lo, hi int) {
	p, DX, Wt, DY, gt := k.p, k.x, k.w, k.y, k.gt
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
			dxs := DX[(n*p.C+g*cg)*p.H*p.W : (n*p.C+(g+1)*cg)*p.H*p.W]
			dcol := dxs
			if colBuf != nil {
				dcol = *colBuf
			}
			sgemm(true, false, crs, PQ, kg, 1, Wt[g*kg*crs:], crs, DY[(n*p.K+g*kg)*PQ:], PQ, 0, dcol, PQ, gt)
			if colBuf != nil {
				clear(dxs)
				col2im(p, cg, dcol, dxs)
			}
		}
	}
}

// Conv2dBackwardFilter implements backend.Ops.
func (b *Backend) Conv2dBackwardFilter(p backend.Conv2dParams, x, dy, dw *tensor.Tensor) {
	backend.CheckConv("conv2d backward filter", p, x, dw, dy)
	p = p.Normalized()
	X, DY, DW := x.HostData(), dy.HostData(), dw.HostData()
	if b.ref {
		refConvBackwardFilter(p, X, DY, DW)
		return
	}
	if implicitForward(p) {
		b.convImplicitBackwardFilter(p, X, DY, DW)
		// The implicit path also multiplies values outside the filter's
		// reach by zero, which turns an Inf there into a NaN the direct
		// sum has not. Its sum holds every term of the direct one, so a
		// finite result is the direct sum's (in another order); only a
		// non-finite one is computed again, directly.
		if finite(DW) {
			return
		}
	}
	b.sumOverImages(p.N, DW, convLoop{pass: im2colBackwardFilter, p: p, x: X, y: DY, gt: gemmThreads(b.Threads(), p.N)})
}

// convLoop is a convolution pass's loop over images: the arguments of one
// call and which pass it is. x, w and y are the pass's input image,
// filter and output (or their gradients, as each method says).
type convLoop struct {
	pass    int
	p       backend.Conv2dParams
	geo     phased
	x, w, y []float32
	filt    []packedA     // implicit paths: each group's packed filter
	epi     *convEpilogue // implicit forward: applied to each image's output
	gt      int           // threads per GEMM
}

const (
	im2colForward = iota
	col2imBackwardData
	im2colBackwardFilter
	implicitForwardPass
	implicitBackwardFilterPass
)

var convLoops freeList[convLoop]

func (k *convLoop) chunk(lo, hi int) {
	switch k.pass {
	case im2colForward:
		k.im2colImages(nil, lo, hi)
	case col2imBackwardData:
		k.col2imBackwardData(lo, hi)
	case implicitForwardPass:
		k.implicitForward(lo, hi)
	default:
		panic("cpu: convLoop: a backward-filter pass runs through sumOverImages")
	}
}

// sumImages adds the weight gradient of images [lo, hi) into acc.
func (k *convLoop) sumImages(acc []float32, lo, hi int) {
	if k.pass == im2colBackwardFilter {
		k.im2colImages(acc, lo, hi)
	} else {
		k.implicitBackwardFilter(acc, lo, hi)
	}
}

// sumOverImages runs k.sumImages over the images split across the
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
		s.conv.sumImages(acc, s.parts[t][0], s.parts[t][1])
	}
}
