package cpu

import (
	"math"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
)

// The lanes path of a 3×3 convolution: the output channels in the
// vector lanes (a direct convolution, as oneDNN's are). The GEMM paths put an image's output pixels in the lanes
// (the columns of their tiles), which fits planes of 14×14 and more;
// on a plane of 7×7 the 49 columns fill a tile and a half, and a strided
// convolution's columns are gathered from phase planes in runs of 7–28
// values. Here a tile is 7 pixels of an output row by 64 output
// channels: its 28 sums stay in registers over every input channel and
// tap, the filter's 64 values of a tap are one load of four vectors, and
// each input value is broadcast into the multiply-adds from the padded
// image (or its phase planes at stride 2), wherever it lies.
//
// The kernels write each tile's sums pixel by pixel (a row of K channels
// per pixel, in st.out); each part of the work moves its pixels into y's
// planes as it ends and applies the epilogue to them there, while they
// are in cache (no pass of its own over the output, as finish is on the
// other paths).

// lanesBlock is the kernels' output channels per tile, lanesWidth
// their pixels per tile.
const (
	lanesBlock = 64
	lanesWidth = 7
)

// lanesChannels is how many input channels one kernel call sums before
// its sums go back to memory: the filters of a block of 64 output
// channels over 128 input channels (288 KiB) stay in L2 while every
// tile of the part reads them.
var lanesChannels = 128

// lanesShape reports whether the lanes kernels compute p: a 3×3
// convolution without groups or dilation, at stride 1 or 2 (the same
// both ways), whose output channels come in blocks of 64 and rows in
// tiles of 7, and whose taps stay inside the padded image.
func lanesShape(p backend.Conv2dParams) bool {
	return p.R == 3 && p.S == 3 && p.DilH == 1 && p.DilW == 1 && p.G() == 1 &&
		p.StrideH == p.StrideW && (p.StrideH == 1 || p.StrideH == 2) &&
		p.K%lanesBlock == 0 && p.Q()%lanesWidth == 0 &&
		(p.P()-1)*p.StrideH+2 < p.H+2*p.PadH && (p.Q()-1)*p.StrideW+2 < p.W+2*p.PadW
}

// lanes reports whether convolution p with filter w takes the lanes
// path. In auto mode: where its kernel runs (AVX-512), on frozen weights
// (the rearranged filter is made once) in float32 or, on the bfloat16
// kernels (lanesBF16), in bf16 with an even number of input channels. Each layer of
// ResNet-50 and ResNet-18 it takes ran 1.1–1.3× faster at batch 1 on two
// threads; from one image per thread on, where each GEMM runs on one
// thread, the two paths were within ±5% of each other either way. The
// choice does not depend on the batch: an image's embedding is the same
// bit for bit alone and in a batch (the service's batcher relies on it).
// In always mode: wherever lanesShape(p) holds, at every level (tests).
func (b *Backend) lanes(p backend.Conv2dParams, w []float32) bool {
	if !lanesShape(p) {
		return false
	}
	switch WinogradMode(lanesMode.Load()) {
	case WinogradNever:
		return false
	case WinogradAlways:
		return true
	}
	if ActiveLevel() != AVX512 {
		return false
	}
	switch Precision(b.precision.Load()) {
	case BF16:
		if bf16Runs() && p.C%2 != 0 {
			return false // the bfloat16 kernels take channels in pairs
		}
	case INT8:
		if i8Ready() {
			return false
		}
	}
	return b.frozenWeights(w)
}

// SetLanes switches every CPU backend's lanes path to mode m (auto, never
// or always, as for Winograd's; DMLGO_LANES) and returns a function
// restoring the previous mode.
func SetLanes(m WinogradMode) (restore func()) {
	old := lanesMode.Swap(int32(m))
	return func() { lanesMode.Store(old) }
}

// Lanes is the lanes path's mode in force.
func Lanes() WinogradMode { return WinogradMode(lanesMode.Load()) }

var (
	lanesMode atomic.Int32
	lanesNote string // DMLGO_LANES's effect, for Describe
)

// initLanes sets the mode DMLGO_LANES asks for.
func initLanes() { lanesNote = initMode("DMLGO_LANES", "lanes path", &lanesMode) }

// lanesPack rearranges a K×C×3×3 filter for the kernels: per block of
// 64 output channels, per input channel, per tap, the block's 64 values.
func lanesPack(K, C int, w, dst []float32) {
	dst = dst[:K*C*9]
	for g := 0; g < K/lanesBlock; g++ {
		for c := 0; c < C; c++ {
			d := dst[(g*C+c)*9*lanesBlock:][:9*lanesBlock]
			for o := 0; o < lanesBlock; o++ {
				src := w[((g*lanesBlock+o)*C+c)*9:][:9]
				for t, v := range src {
					d[t*lanesBlock+o] = v
				}
			}
		}
	}
}

// lanesPackBF16 is lanesPack in bfloat16 pairs of input channels (C
// even): per block of 64 output channels, per pair q, per tap, the
// block's 64 slots bf16(w[o][2q]) | bf16(w[o][2q+1])<<16, as bits.
func lanesPackBF16(K, C int, w, dst []float32) {
	dst = dst[:K*C/2*9]
	for g := 0; g < K/lanesBlock; g++ {
		for q := 0; q < C/2; q++ {
			d := dst[(g*C/2+q)*9*lanesBlock:][:9*lanesBlock]
			for o := 0; o < lanesBlock; o++ {
				lo := w[((g*lanesBlock+o)*C+2*q)*9:][:9]
				hi := w[((g*lanesBlock+o)*C+2*q+1)*9:][:9]
				for t := range 9 {
					d[t*lanesBlock+o] = math.Float32frombits(uint32(roundBF16(lo[t])) | uint32(roundBF16(hi[t]))<<16)
				}
			}
		}
	}
}

// lanesBF16 reports whether the lanes path of p runs on the bfloat16
// kernels: precision bf16 where they may run, an even number of input
// channels.
func (b *Backend) lanesBF16(p backend.Conv2dParams) bool {
	return Precision(b.precision.Load()) == BF16 && bf16Runs() && p.C%2 == 0
}

// pairSpansGo rounds pairs of spans of n values to bfloat16 pairs: span
// 2q and 2q+1 (side by side in src) into dst[q·n:], slot j holding
// bf16(src[2q·n+j]) | bf16(src[(2q+1)·n+j])<<16, as bits.
func pairSpansGo(src []float32, n, pairs int, dst []float32) {
	for q := 0; q < pairs; q++ {
		lo, hi := src[2*q*n:][:n], src[(2*q+1)*n:][:n]
		d := dst[q*n:][:n]
		for j := range d {
			d[j] = math.Float32frombits(uint32(roundBF16(lo[j])) | uint32(roundBF16(hi[j]))<<16)
		}
	}
}

// pairSpans is pairSpansGo through the vector kernel where it may run.
func pairSpans(src []float32, n, pairs int, dst []float32) {
	if !pairSpansVec(src, n, pairs, dst) {
		pairSpansGo(src, n, pairs, dst)
	}
}

// lanesTileGo is the kernels' loop: the sums of one tile, over nc input
// channels from x (the padded image by rows, lanesFill, at the tile's
// first pixel: channels chs apart, rows row apart), with w the packed
// filter at the block's first input channel; they are added to out
// (pixel j's 64 sums at out[j·ldo:]) when add is set, else written
// there. With bf16 the channels are nc pairs in bfloat16 (x and w hold
// pairs as bits, lanesPackBF16, pairSpans), and each sum takes the
// products of both halves, the upper first as VDPBF16PS does.
func lanesTileGo(bf16 bool, stride int, x, w, out []float32, nc, chs, row, ldo int, add bool) {
	var acc [lanesWidth][lanesBlock]float32
	if add {
		for j := range acc {
			copy(acc[j][:], out[j*ldo:][:lanesBlock])
		}
	}
	half := func(v float32, h int) float32 { return bf16Float(uint16(math.Float32bits(v) >> (16 * h))) }
	for c := 0; c < nc; c++ {
		xc := x[c*chs:]
		wc := w[c*9*lanesBlock:][:9*lanesBlock]
		for kh := 0; kh < 3; kh++ {
			for kw := 0; kw < 3; kw++ {
				wt := wc[(kh*3+kw)*lanesBlock:][:lanesBlock]
				for j := range acc {
					v := xc[kh*row+stride*j+kw]
					if bf16 {
						v0, v1 := half(v, 0), half(v, 1)
						for o := range acc[j] {
							acc[j][o] = acc[j][o] + half(wt[o], 1)*v1 + half(wt[o], 0)*v0
						}
						continue
					}
					for o := range acc[j] {
						acc[j][o] = acc[j][o] + wt[o]*v
					}
				}
			}
		}
	}
	for j := range acc {
		copy(out[j*ldo:][:lanesBlock], acc[j][:])
	}
}

// lanesSpan is how many values of x a tile reads from its first pixel.
func lanesSpan(stride, nc, chs, row int) int {
	return (nc-1)*chs + 2*row + stride*(lanesWidth-1) + 3
}

// lanesTile runs one tile through the kernel where it may run (AVX-512;
// AVX-512 BF16 with bf16), else the Go loop.
func lanesTile(bf16 bool, stride int, x, w, out []float32, nc, chs, row, ldo int, add bool) {
	if nc <= 0 {
		return
	}
	if len(x) < lanesSpan(stride, nc, chs, row) || len(w) < nc*9*lanesBlock ||
		len(out) < (lanesWidth-1)*ldo+lanesBlock {
		panic("cpu: lanesTile: slices too short")
	}
	if !lanesTileVec(bf16, stride, x, w, out, nc, chs, row, ldo, add) {
		lanesTileGo(bf16, stride, x, w, out, nc, chs, row, ldo, add)
	}
}

// lanesFill writes channels [c0, c1) of image x (ch planes of h×w) into
// dst, padded by ph rows and pw columns of zeros, by rows: padded row i
// of channel c at (i·ch + c)·wp, wp = w + 2·pw.
func lanesFill(x []float32, ch, h, w, ph, pw, c0, c1 int, dst []float32) {
	wp := w + 2*pw
	for i := 0; i < h+2*ph; i++ {
		if i < ph || i >= h+ph {
			clear(dst[(i*ch+c0)*wp : (i*ch+c1)*wp])
			continue
		}
		for c := c0; c < c1; c++ {
			d := dst[(i*ch+c)*wp:][:wp]
			for k := range pw {
				d[k], d[pw+w+k] = 0, 0
			}
			copy(d[pw:pw+w], x[(c*h+i-ph)*w:][:w])
		}
	}
}

// lanesFilters returns w's K×C filters packed by lanesPack, or with bf16
// by lanesPackBF16: the frozen
// tensor's, made once, when w is a frozen tensor's whole data; otherwise
// packed now into a pooled buffer, which the caller returns to
// lanesFilterPool (pooled).
func (b *Backend) lanesFilters(K, C int, w []float32, bf16 bool) (f *[]float32, pooled bool) {
	pack, size := lanesPack, K*C*9
	if bf16 {
		pack, size = lanesPackBF16, K*C/2*9
	}
	if len(w) > 0 && b.frozen.n.Load() > 0 {
		b.frozen.mu.Lock()
		e := b.frozen.lookup(w)
		if e != nil && e.n == K*C*9 {
			at := &e.lanes
			if bf16 {
				at = &e.lanesBF16
			}
			if *at == nil {
				d := makeHuge[float32](size)
				pack(K, C, w, d)
				*at = &d
			}
			b.frozen.mu.Unlock()
			return *at, false
		}
		b.frozen.mu.Unlock()
	}
	f = lanesFilterPool.get()
	*f = grow(*f, size)
	pack(K, C, w, *f)
	return f, true
}

var lanesFilterPool freeList[[]float32]

// lanesForward is the lanes path (implicitLoop) for images [lo, hi):
// per image its padded rows (lanesFill, on the threads left to the
// image; in bfloat16 then paired, pairSpans), then the parts of the
// output, each with its epilogue.
func (k *convLoop) lanesForward(lo, hi int) {
	p := k.p
	P, Q := p.P(), p.Q()
	hp, wp := p.H+2*p.PadH, p.W+2*p.PadW
	st := convScratchPool.get()
	defer convScratchPool.put(st)
	st.pad = grow(st.pad, hp*p.C*wp)
	st.out = grow(st.out, P*Q*p.K)
	chw := p.C * p.H * p.W
	run := lanesRun{k: k, pad: st.pad, out: st.out}
	if k.lanesBF16 {
		st.pairs = grow(st.pairs, hp*p.C/2*wp)
		run.pad = st.pairs
	}
	run.bands = lanesBands(p.K/lanesBlock, P, k.gt)
	units := p.K / lanesBlock * run.bands
	for img := lo; img < hi; img++ {
		src := k.x[img*chw : (img+1)*chw]
		if k.lanesBF16 {
			k.channelPass(st, imagePass{op: passLanesFill, p: p, src: src, dst: st.pad, pairs: st.pairs}, p.C/2)
		} else {
			k.channelPass(st, imagePass{op: passLanesFill, p: p, src: src, dst: st.pad}, p.C)
		}
		run.img = img
		if threads := min(k.gt, units); threads > 1 {
			splitWith(&lanesRuns, units, threads, run)
		} else {
			run.chunk(0, units)
		}
	}
}

// lanesBands is how many bands of rows each block of output channels
// is cut into: enough for the blocks times the bands to give each of
// the threads two parts.
func lanesBands(blocks, rows, threads int) int {
	return min(rows, max(1, (2*threads+blocks-1)/blocks))
}

// lanesRun is lanesForward's work on parts [lo, hi) of image img: part
// u is block u / bands of output channels over band u mod bands of rows.
type lanesRun struct {
	k        *convLoop
	pad, out []float32
	img      int
	bands    int
}

var lanesRuns freeList[lanesRun]

func (r *lanesRun) chunk(lo, hi int) {
	k := r.k
	p := k.p
	P, Q, K, C := p.P(), p.Q(), p.K, p.C
	stride := p.StrideH
	wp := p.W + 2*p.PadW
	// In bfloat16 the rows hold pairs of channels: C/2 of them, each
	// taking a 32-bit slot a value as a channel does in float32.
	if k.lanesBF16 {
		C /= 2
	}
	row := C * wp
	y := k.y[r.img*K*P*Q : (r.img+1)*K*P*Q]
	for u := lo; u < hi; u++ {
		g, band := u/r.bands, u%r.bands
		r0, r1 := band*P/r.bands, (band+1)*P/r.bands
		wg := k.lanes[g*C*9*lanesBlock : (g+1)*C*9*lanesBlock]
		for c0 := 0; c0 < C; c0 += lanesChannels {
			nc := min(lanesChannels, C-c0)
			for oh := r0; oh < r1; oh++ {
				for ow := 0; ow < Q; ow += lanesWidth {
					x := r.pad[oh*stride*row+c0*wp+ow*stride:]
					out := r.out[(oh*Q+ow)*K+g*lanesBlock:]
					lanesTile(k.lanesBF16, stride, x, wg[c0*9*lanesBlock:], out, nc, wp, row, K, c0 > 0)
				}
			}
		}
		// The part's sums into y's planes: a transpose, as the GEMMs
		// pack panels.
		pq0, pq1 := r0*Q, r1*Q
		pack := activeKernel().packRows
		if pack == nil {
			pack = packRowsGo
		}
		pack(r.out[pq0*K+g*lanesBlock:], K, pq1-pq0, lanesBlock, y[g*lanesBlock*P*Q+pq0:], P*Q)
		if k.epi != nil {
			k.epi.applySpan(r.img, y, g*lanesBlock, (g+1)*lanesBlock, pq0, pq1)
		}
	}
}
