package cpu

import (
	"fmt"
	"math"
	"os"
	"strings"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
)

// Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, 2016) for 3×3
// convolutions with unit stride and padding 1: each 2×2 block of output
// (a tile) is computed from the 4×4 block of padded input around it with
// 16 products per input and output channel instead of 36.
//
//	V = Bᵀ·d·B   (d: a tile's 4×4 input, per input channel)
//	U = G·g·Gᵀ   (g: a 3×3 filter, per output and input channel)
//	M = U ⊙ V    summed over input channels: 16 GEMMs, one per position ξ
//	y = Aᵀ·M·A   (the tile's 2×2 output)
//
// with
//
//	Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//	G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//	Aᵀ = [1 1 1 0; 0 1 −1 −1]
//
// The transforms of the input and output are sums and differences only;
// G's halves are exact. The results differ from the direct sum by
// rounding alone: measured, up to 3 units of rounding of the sum of
// |terms| (forward and backward data) and 21 (backward filter, whose sums
// run over a batch's tiles); TestWinogradConv allows 8 and 64.
//
// The input is split into its four phase planes (even and odd rows and
// columns, phased with strides 2): element (i, j) of tile (ty, tx) is then
// at offset v + (i/2)·Wpe + j/2 of plane (i mod 2, j mod 2), with
// v = ty·Wpe + tx. The GEMMs' columns are these v, Wpe per row of tiles of
// which the last (Q + 1)/2 are real ones: one extra column a row, whose
// results the output transform never reads. So both transforms run on 16
// consecutive tiles per vector, and the input transform writes the
// GEMMs' B panels directly.

// wgInputGo is the input transform of one channel's 16·chunks tiles from
// v = 0: src holds its four phase planes, pl values apart, rows of wpe;
// V_ξ (tile v) goes to dst[ξ·xs + (v/nr)·nr·kb + v%nr], the packed layout
// of panels nr wide and kb rows deep (dst starts at the channel's row of
// the first panel).
func wgInputGo(src []float32, wpe, pl, chunks int, dst []float32, xs, kb, nr int) {
	for v := 0; v < 16*chunks; v++ {
		o := v/nr*nr*kb + v%nr
		for x, vx := range wgInputTile(src, wpe, pl, v) {
			dst[x*xs+o] = vx
		}
	}
}

// wgInputTile is V = Bᵀ·d·B of tile v (V_ξ at ξ = 4i + j).
func wgInputTile(src []float32, wpe, pl, v int) [16]float32 {
	var d, t [4][4]float32
	for i := range 4 {
		for j := range 4 {
			d[i][j] = src[(2*(i%2)+j%2)*pl+v+(i/2)*wpe+j/2]
		}
	}
	for j := range 4 {
		t[0][j], t[1][j], t[2][j], t[3][j] = d[0][j]-d[2][j], d[1][j]+d[2][j], d[2][j]-d[1][j], d[1][j]-d[3][j]
	}
	var out [16]float32
	for i := range 4 {
		r := t[i]
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = r[0]-r[2], r[1]+r[2], r[2]-r[1], r[1]-r[3]
	}
	return out
}

// wgInputPairGo is wgInputGo for the bfloat16 kernel's panels, 32 wide
// and kd pairs deep: the values are rounded to bfloat16 into one half of
// their pairs, the low half (the high one set to zero) or, with hi, the
// high half (the low one kept). An even channel of a kc block, then the
// odd one after it, make the pairs pairRows makes of their float32
// transforms.
func wgInputPairGo(src []float32, wpe, pl, chunks int, dst []float32, xs, kd int, hi bool) {
	for v := 0; v < 16*chunks; v++ {
		o := v/32*32*kd + v%32
		for x, vx := range wgInputTile(src, wpe, pl, v) {
			h := uint32(roundBF16(vx))
			if hi {
				h = math.Float32bits(dst[x*xs+o])&0xffff | h<<16
			}
			dst[x*xs+o] = math.Float32frombits(h)
		}
	}
}

// wgInputSpan is how many values of dst wgInputGo reaches for nr = 32.
func wgInputSpan(chunks, xs, kb int) int {
	u := chunks - 1
	return 15*xs + u/2*32*kb + u%2*16 + 16
}

// wgInput is wgInputGo through the vector kernel where there is one (for
// panels 32 wide).
func wgInput(src []float32, wpe, pl, chunks int, dst []float32, xs, kb, nr int) {
	if nr != 32 || !wgInputVec(src, wpe, pl, chunks, dst, xs, kb) {
		wgInputGo(src, wpe, pl, chunks, dst, xs, kb, nr)
	}
}

// wgInputPair is wgInputPairGo through the vector kernel where it may
// run.
func wgInputPair(src []float32, wpe, pl, chunks int, dst []float32, xs, kd int, hi bool) {
	if !wgInputPairVec(src, wpe, pl, chunks, dst, xs, kd, hi) {
		wgInputPairGo(src, wpe, pl, chunks, dst, xs, kd, hi)
	}
}

// wgOutputGo is the output transform of a row of n tiles of one output
// channel: M_ξ of tile t is m[ξ·ms + t]; the tiles' two output rows go to
// y0 and y1 (nil: the last row of an odd height), columns 2t and 2t+1
// where they are below q.
func wgOutputGo(m []float32, ms, n int, y0, y1 []float32, q int) {
	for t := 0; t < n; t++ {
		var s [2][4]float32
		for j := range 4 {
			m0, m1, m2, m3 := m[j*ms+t], m[(4+j)*ms+t], m[(8+j)*ms+t], m[(12+j)*ms+t]
			s[0][j] = m0 + m1 + m2
			s[1][j] = m1 - m2 - m3
		}
		for r, y := range [2][]float32{y0, y1} {
			if y == nil {
				continue
			}
			a := s[r]
			if x := 2 * t; x < q {
				y[x] = a[0] + a[1] + a[2]
			}
			if x := 2*t + 1; x < q {
				y[x] = a[1] - a[2] - a[3]
			}
		}
	}
}

// wgOutput is wgOutputGo through the vector kernel where there is one.
func wgOutput(m []float32, ms, n int, y0, y1 []float32, q int) {
	if !wgOutputVec(m, ms, n, y0, y1, q) {
		wgOutputGo(m, ms, n, y0, y1, q)
	}
}

// wgGradGo is the transform of the output gradient for the filter's:
// E = A·dy·Aᵀ of a row of n tiles of one output channel, whose 2×2 blocks
// of dy are in rows dy0 and dy1 (nil: zeros), columns 2t and 2t+1 where
// they are below q (zeros past it). E_ξ of tile t goes to e[ξ·es + t].
func wgGradGo(dy0, dy1 []float32, q, n int, e []float32, es int) {
	at := func(row []float32, x int) float32 {
		if row == nil || x >= q {
			return 0
		}
		return row[x]
	}
	for t := 0; t < n; t++ {
		a, b := at(dy0, 2*t), at(dy0, 2*t+1)
		c, d := at(dy1, 2*t), at(dy1, 2*t+1)
		rows := [4][2]float32{{a, b}, {a + c, b + d}, {a - c, b - d}, {-c, -d}}
		for i, r := range rows {
			u, v := r[0], r[1]
			e[(4*i)*es+t] = u
			e[(4*i+1)*es+t] = u + v
			e[(4*i+2)*es+t] = u - v
			e[(4*i+3)*es+t] = -v
		}
	}
}

// wgGrad is wgGradGo through the vector kernel where there is one.
func wgGrad(dy0, dy1 []float32, q, n int, e []float32, es int) {
	if !wgGradVec(dy0, dy1, q, n, e, es) {
		wgGradGo(dy0, dy1, q, n, e, es)
	}
}

// wgFilters is a convolution's filter transformed (U_ξ, K×C each) and
// packed for the GEMMs' kernel, for F(2×2, 3×3) (out = 2: 16 matrices) or
// F(4×4, 3×3) (out = 4: 36, winograd4.go).
type wgFilters struct {
	kern gemmKernel
	out  int
	pa   []packedA
	all  []float32   // the matrices' buffers
	bufs [][]float32 // the matrices (pa[ξ].buf for float32)
}

var wgFilterPool freeList[wgFilters]

// set transforms the K×C filters of w (K, C, 3, 3) for F(out×out, 3×3)
// and packs them for kern, on up to threads goroutines. For float32 the
// transform goes straight into the packed layout (see packedA): U_ξ[k][c]
// to row k%MR of panel k/MR, column c of its kc block. For bfloat16 (out
// = 2 only) it makes plain K×C matrices, which packedA.pack rounds into
// pairs.
func (f *wgFilters) set(kern gemmKernel, out, K, C int, w []float32, threads int) {
	if kern.bf16 && out != 2 {
		panic("cpu: wgFilters: F(4×4, 3×3) is float32 only")
	}
	f.kern, f.out = kern, out
	np := (out + 2) * (out + 2)
	if cap(f.pa) < np {
		f.pa, f.bufs = make([]packedA, np), make([][]float32, np)
	}
	f.pa, f.bufs = f.pa[:np], f.bufs[:np]
	mr, kc := kern.mr, kern.kc()
	if kern.bf16 {
		mr, kc = 1, C
	}
	mpad := (K + mr - 1) / mr * mr
	// The buffers in one, a cache line more than a matrix apart: at a
	// power of two apart, the 16 values of a filter would fall in one set
	// of the L1 cache (3.5× slower).
	size := mpad * C
	stride := size + 16
	f.all = grow(f.all, np*stride)
	bufs := f.bufs
	for x := range f.pa {
		bufs[x] = f.all[x*stride : x*stride+size : x*stride+size]
		if mpad > K {
			clear(bufs[x]) // the rows past K
		}
		if !kern.bf16 {
			pa := &f.pa[x]
			pa.mr, pa.m, pa.k, pa.kc, pa.mpad, pa.bf16, pa.i8 = mr, K, C, kc, mpad, false, nil
			pa.buf = bufs[x]
		}
	}
	splitWith(&wgFilterSets, (K+mr-1)/mr, threads, wgFilterSet{bufs: bufs, w: w, out: out, k: K, c: C, mr: mr, kc: kc})
	if kern.bf16 {
		for x := range f.pa {
			f.pa[x] = packedA{} // its buffer is its own, not one of f.all's
			f.pa[x].pack(kern, false, K, C, bufs[x], C)
		}
	}
}

// wgFilterSet is wgFilters.set's transform of the rows of panels [lo, hi).
type wgFilterSet struct {
	bufs              [][]float32
	w                 []float32
	out, k, c, mr, kc int
}

var wgFilterSets freeList[wgFilterSet]

func (s *wgFilterSet) chunk(lo, hi int) {
	K, C, mr, kc := s.k, s.c, s.mr, s.kc
	mpad := (K + mr - 1) / mr * mr
	for pc := 0; pc < C; pc += kc {
		kb := min(kc, C-pc)
		for k := lo * mr; k < min(K, hi*mr); k++ {
			o := pc*mpad + k/mr*mr*kb + k%mr
			for c := pc; c < pc+kb; c, o = c+1, o+mr {
				if s.out == 4 {
					wg4Filter(s.w[(k*C+c)*9:(k*C+c)*9+9], s.bufs, o)
				} else {
					wgFilter(s.w[(k*C+c)*9:(k*C+c)*9+9], s.bufs, o)
				}
			}
		}
	}
}

// wgFilter writes G·g·Gᵀ of one 3×3 filter g to bufs[ξ][o].
func wgFilter(g []float32, bufs [][]float32, o int) {
	g = g[:9]
	// G·g, a column at a time: rows t0…t3 of 3
	col := func(g0, g1, g2 float32) (t0, t1, t2, t3 float32) {
		s := g0 + g2
		return g0, 0.5 * (s + g1), 0.5 * (s - g1), g2
	}
	a0, a1, a2, a3 := col(g[0], g[3], g[6])
	b0, b1, b2, b3 := col(g[1], g[4], g[7])
	c0, c1, c2, c3 := col(g[2], g[5], g[8])
	// then ·Gᵀ along each row
	row := func(x int, r0, r1, r2 float32) {
		s := r0 + r2
		bufs[x][o] = r0
		bufs[x+1][o] = 0.5 * (s + r1)
		bufs[x+2][o] = 0.5 * (s - r1)
		bufs[x+3][o] = r2
	}
	row(0, a0, b0, c0)
	row(4, a1, b1, c1)
	row(8, a2, b2, c2)
	row(12, a3, b3, c3)
}

// winograd reports whether a convolution (p normalised; backward data
// comes here as a forward one, with the flipped filter w; backward filter
// with w nil) takes the Winograd path: a 3×3 filter with unit strides and
// dilations, padding 1 and one group, on a level with the vector
// transforms, and
//
//   - planes of at least 14×14: on 7×7 the extra column per row of tiles
//     and the rounding up to whole tiles leave too little of the gain
//     (ResNet-18's 3×3 to 512 channels: 1.4× slower);
//   - at least 4M multiply-adds an image: ResNet-18/50's stride-1 3×3
//     layers on 56×56, 28×28 and 14×14 planes (12.8M) run 1.3–1.6×
//     faster, resnet-s's (1M) only 1.17×, and they stay on the direct
//     sums, whose results the demo's figures were made with;
//   - images enough to pay for the filter's transform (about 15 ns a
//     filter, as much as the savings on 4 images of 14×14 or one of
//     28×28): N·P·Q ≥ 784, or frozen weights, whose transform is made
//     once;
//   - float32 or bfloat16 GEMMs: frozen weights set to run in int8 keep
//     their own kernel (a quantised V would lose too much); in bfloat16,
//     V and U are rounded as the direct path rounds its operands.
func (b *Backend) winograd(p backend.Conv2dParams, w []float32) bool {
	switch WinogradMode(wgMode.Load()) {
	case WinogradNever:
		return false
	case WinogradAlways:
		return wgShape(p)
	}
	if !wgShape(p) || ActiveLevel() != AVX512 || p.P() < 14 || p.Q() < 14 || p.K*p.C*p.P()*p.Q() < 1<<22 {
		return false
	}
	if b.frozenWeights(w) {
		return !(Precision(b.precision.Load()) == INT8 && i8Ready())
	}
	return p.N*p.P()*p.Q() >= 784
}

// WinogradMode chooses which convolutions take the Winograd path
// (DMLGO_WINOGRAD=auto, never or always).
type WinogradMode int32

const (
	// WinogradAuto: where it is measured to pay (see Backend.winograd).
	WinogradAuto WinogradMode = iota
	// WinogradNever: the direct sums everywhere, as before it existed.
	WinogradNever
	// WinogradAlways: every convolution of its shape, at every level and
	// size (tests, and comparisons of the two).
	WinogradAlways
)

func (m WinogradMode) String() string {
	switch m {
	case WinogradAuto:
		return "auto"
	case WinogradNever:
		return "never"
	case WinogradAlways:
		return "always"
	}
	return fmt.Sprintf("WinogradMode(%d)", int32(m))
}

// ParseWinograd reads a mode as DMLGO_WINOGRAD takes it.
func ParseWinograd(s string) (WinogradMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto", "":
		return WinogradAuto, nil
	case "never", "off", "0":
		return WinogradNever, nil
	case "always", "on", "1":
		return WinogradAlways, nil
	}
	return WinogradAuto, fmt.Errorf("unknown Winograd mode %q (want auto, never or always)", s)
}

// SetWinograd switches every CPU backend to mode m and returns a function
// restoring the previous mode.
func SetWinograd(m WinogradMode) (restore func()) {
	old := wgMode.Swap(int32(m))
	return func() { wgMode.Store(old) }
}

// Winograd is the mode in force.
func Winograd() WinogradMode { return WinogradMode(wgMode.Load()) }

var (
	wgMode atomic.Int32
	wgNote string // DMLGO_WINOGRAD's effect, for Describe
)

// initWinograd sets the mode DMLGO_WINOGRAD asks for.
func initWinograd() { wgNote = initMode("DMLGO_WINOGRAD", "Winograd", &wgMode) }

// initMode stores in mode the mode environment variable env asks for
// (ParseWinograd's names) and returns Describe's note on it: what (the
// path) and a mode other than auto, or a value it cannot read (auto is
// kept); "" for auto or an unset variable.
func initMode(env, what string, mode *atomic.Int32) (note string) {
	v := os.Getenv(env)
	if v == "" {
		return ""
	}
	m, err := ParseWinograd(v)
	if err != nil {
		return env + ": " + err.Error() + "; using auto"
	}
	mode.Store(int32(m))
	if m != WinogradAuto {
		return what + " " + m.String() + " (" + env + ")"
	}
	return ""
}

// wgShape reports whether p is a convolution F(2×2, 3×3) computes.
func wgShape(p backend.Conv2dParams) bool {
	return p.R == 3 && p.S == 3 && p.StrideH == 1 && p.StrideW == 1 && p.DilH == 1 && p.DilW == 1 &&
		p.PadH == 1 && p.PadW == 1 && p.G() == 1
}

// wgBlockWidth is how many of the npad columns the GEMMs of one output
// transform take, a multiple of 32: M for K output channels, np·K values
// a column (np positions: 16 or 36), within wgBlockValues.
func wgBlockWidth(np, k, npad int) int {
	return min(npad, max(32, wgBlockValues/(np*k)/32*32))
}

var wgBlockValues = 128 << 10

// wgGeometry is the tiling of one image into tiles of out×out outputs:
// th rows of tw tiles, n = th·Wpe columns of the GEMMs (npad rounded up
// to 32), in blocks of nbw.
type wgGeometry struct {
	out, th, tw, n, npad, nbw int
}

func (k *convLoop) wgGeometry(out int) wgGeometry {
	p := k.p
	th, tw := (p.P()+out-1)/out, (p.Q()+out-1)/out
	n := th * k.geo.wpe
	npad := (n + 31) / 32 * 32
	return wgGeometry{out: out, th: th, tw: tw, n: n, npad: npad, nbw: wgBlockWidth((out+2)*(out+2), p.K, npad)}
}

// wgPlanes sizes st.pad for one image's phase planes and clears what the
// input transform reads past them (up to npad + Wpe values past the last
// channel's last plane's start).
func (k *convLoop) wgPlanes(st *convScratch, npad int) {
	size := k.geo.size()
	st.pad = grow(st.pad, size+npad+k.geo.wpe+32)
	clear(st.pad[size:])
}

// winogradForward is the Winograd forward pass (implicitLoop) for images
// [lo, hi): per image its
// phase planes, then per block of columns (on the threads left to the
// image, at batch 1 both) the block's part of the GEMMs and of the output
// transform, then the epilogue.
func (k *convLoop) winogradForward(lo, hi int) {
	p, geo := k.p, k.geo
	wg := k.wgGeometry(k.wg.out)
	st := convScratchPool.get()
	defer convScratchPool.put(st)
	k.wgPlanes(st, wg.npad)
	chw := p.C * p.H * p.W
	blocks := (wg.n + wg.nbw - 1) / wg.nbw
	for img := lo; img < hi; img++ {
		k.channelPass(st, imagePass{op: passFill, geo: geo, src: k.x[img*chw : (img+1)*chw], dst: st.pad}, p.C)
		run := wgBlockRun{k: k, pad: st.pad, img: img, wg: wg}
		if threads := min(k.gt, blocks); threads > 1 {
			splitWith(&wgBlockRuns, blocks, threads, run)
		} else {
			run.chunk(0, blocks)
		}
		k.finish(st, img, nil)
	}
}

// wgBlockRun is winogradForward's work on blocks [lo, hi) of image img's
// columns, whose phase planes are in pad.
type wgBlockRun struct {
	k   *convLoop
	pad []float32
	img int
	wg  wgGeometry
}

var wgBlockRuns freeList[wgBlockRun]

// chunk runs, per block of columns: per block of kc input channels their
// transform and the GEMMs (16 or 36) adding into M, then the output
// transform of M's tiles.
func (r *wgBlockRun) chunk(lo, hi int) {
	k, wg, pad := r.k, r.wg, r.pad
	p, geo := k.p, k.geo
	P, Q := p.P(), p.Q()
	wpe, pl, chs := geo.wpe, geo.plane(), geo.chanSize()
	kern := k.wg.kern
	kc, mc := kern.kc(), max(kern.mr, blk.mc/kern.mr*kern.mr)
	nbw := wg.nbw
	st := convScratchPool.get()
	defer convScratchPool.put(st)
	buf := bufPool.get()
	defer bufPool.put(buf)
	// V_ξ and M_ξ lie a cache line more than their size apart: at a
	// multiple of 4 KiB (64·128 values, say) a tile's 16 values would fall
	// in one set of the L1 cache. For bfloat16, each channel's transform
	// goes straight into one half of the kernel's pairs.
	np := len(k.wg.pa)
	kd := kern.depth(min(kc, p.C))
	st.wv = grow(st.wv, np*(kd*nbw+16))
	ms := p.K*nbw + 16 // M_ξ is K×nbw
	st.wm = grow(st.wm, np*ms)
	pq := P * Q
	y := k.y[r.img*p.K*pq : (r.img+1)*p.K*pq]
	for b := lo; b < hi; b++ {
		j0 := b * nbw
		nb := min(nbw, wg.n-j0)
		chunks := (nb + 31) / 32 * 2
		for pc := 0; pc < p.C; pc += kc {
			kb := min(kc, p.C-pc)
			kd := kern.depth(kb)
			xs := kd*nbw + 16
			if kern.bf16 {
				for c := pc; c < pc+kb; c++ {
					wgInputPair(pad[c*chs+j0:], wpe, pl, chunks, st.wv[(c-pc)/2*32:], xs, kd, (c-pc)%2 == 1)
				}
			} else if wg.out == 4 {
				for c := pc; c < pc+kb; c++ {
					wg4Input(pad[c*chs+j0:], wpe, pl, chunks, st.wv[(c-pc)*kern.nr:], xs, kb, kern.nr)
				}
			} else {
				for c := pc; c < pc+kb; c++ {
					wgInput(pad[c*chs+j0:], wpe, pl, chunks, st.wv[(c-pc)*kern.nr:], xs, kb, kern.nr)
				}
			}
			for x := range np {
				vb := st.wv[x*xs : (x+1)*xs]
				for ic := 0; ic < p.K; ic += mc {
					mb := min(mc, p.K-ic)
					macroKernel(kern, pc == 0, kd, k.wg.pa[x].block(ic, pc, kb), mb, vb, nb, 1, st.wm[x*ms+ic*nbw:], nbw, buf)
				}
			}
		}
		r.output(st.wm, y, j0, nb, ms)
	}
}

// output is the output transform of columns [j0, j0+nb) of the block just
// done, M_ξ in wm (ms apart), into y (the image's output), a channel at a
// time and in each the tiles' rows ty0 to ty1, row by row: M_ξ's rows
// hold the tiles read, n values from each start (below ms). Their rows of
// y, [ylo, yhi) of each channel's plane, are seldom in cache (y is the
// layer's output, read last a layer or more ago): each channel's are
// asked for while the one before is transformed, so the transform's
// stores do not wait on them (1.06–1.09× a Winograd layer at batch 32).
func (r *wgBlockRun) output(wm, y []float32, j0, nb, ms int) {
	k, wg := r.k, r.wg
	p, wpe, out := k.p, k.geo.wpe, wg.out
	P, Q := p.P(), p.Q()
	pq := P * Q
	output2, _ := wgRowKernels()
	ty0, ty1 := j0/wpe, min((j0+nb-1)/wpe, wg.th-1)
	ylo, yhi := out*ty0*Q, min(P, out*ty1+out)*Q
	for c := range p.K {
		if c+1 < p.K {
			prefetch(y[(c+1)*pq+ylo : (c+1)*pq+yhi])
		}
		yc := y[c*pq : (c+1)*pq]
		for ty := ty0; ty <= ty1; ty++ {
			tx0, tx1 := max(0, j0-ty*wpe), min(wg.tw, j0+nb-ty*wpe)
			if tx1 <= tx0 {
				continue
			}
			q := min(Q-out*tx0, out*(tx1-tx0))
			var rows [4][]float32 // nil past the plane
			for i := range out {
				if out*ty+i < P {
					rows[i] = yc[(out*ty+i)*Q+out*tx0:][:q]
				}
			}
			m := wm[c*wg.nbw+ty*wpe+tx0-j0:]
			if out == 4 {
				wg4Output(m, ms, tx1-tx0, &rows, q)
			} else {
				output2(m, ms, tx1-tx0, rows[0], rows[1], q)
			}
		}
	}
}

// convWinogradBackwardFilter is Conv2dBackwardFilter through F(2×2, 3×3)
// (wgShape(p)): with E = A·dy·Aᵀ per tile and output channel, and V the
// input's transform as in the forward pass,
//
//	dU_ξ = Σ over images and tiles of E_ξ · V_ξᵀ   (16 GEMMs, K×C each)
//	dw   = Gᵀ·dU·G                                  (per filter)
//
// The tiles' columns past each row's real ones, and past the last row,
// have E = 0, so they add nothing.
func (b *Backend) convWinogradBackwardFilter(p backend.Conv2dParams, x, dy, dw []float32) {
	ds := p.K*p.C + 16 // dU_ξ lie a cache line more than their size apart
	sums := getFrom(&wgSumPool, 16*ds)
	defer wgSumPool.put(sums)
	geo := newPhased(p.C, p.H, p.W, 1, 1, 2, 2)
	b.sumOverImages(p.N, *sums, convLoop{sum: (*convLoop).winogradBackwardFilter, p: p, geo: geo, x: x, y: dy, gt: gemmThreads(b.Threads(), p.N)})
	splitWith(&wgGradFilters, p.K, b.Threads(), wgGradFilter{sums: *sums, dw: dw, k: p.K, c: p.C, ds: ds})
}

var wgSumPool freeList[[]float32]

// wgGradFilter is convWinogradBackwardFilter's last step, dw = Gᵀ·dU·G,
// for output channels [lo, hi).
type wgGradFilter struct {
	sums, dw []float32
	k, c, ds int
}

var wgGradFilters freeList[wgGradFilter]

func (f *wgGradFilter) chunk(lo, hi int) {
	var planes [16][]float32
	for x := range planes {
		planes[x] = f.sums[x*f.ds : x*f.ds+f.k*f.c]
	}
	// Gᵀ·S (3×4), a column at a time, and ·G (3×3), a row at a time
	col := func(s0, s1, s2, s3 float32) (t0, t1, t2 float32) {
		h := 0.5 * (s1 + s2)
		return s0 + h, 0.5 * (s1 - s2), h + s3
	}
	for k := lo; k < hi; k++ {
		for c, o := 0, k*f.c; c < f.c; c, o = c+1, o+1 {
			a0, a1, a2 := col(planes[0][o], planes[4][o], planes[8][o], planes[12][o])
			b0, b1, b2 := col(planes[1][o], planes[5][o], planes[9][o], planes[13][o])
			c0, c1, c2 := col(planes[2][o], planes[6][o], planes[10][o], planes[14][o])
			d0, d1, d2 := col(planes[3][o], planes[7][o], planes[11][o], planes[15][o])
			g := f.dw[o*9 : o*9+9]
			g[0], g[1], g[2] = col(a0, b0, c0, d0)
			g[3], g[4], g[5] = col(a1, b1, c1, d1)
			g[6], g[7], g[8] = col(a2, b2, c2, d2)
		}
	}
}

// winogradBackwardFilter is convWinogradBackwardFilter's sum over images
// [lo, hi), added into acc (16 matrices K×C, K·C + 16 values apart; k.y
// is dy). Small planes put several images' tiles side by side in one
// GEMM depth (at least 256 columns where the batch allows).
func (k *convLoop) winogradBackwardFilter(acc []float32, lo, hi int) {
	p, geo := k.p, k.geo
	P, Q := p.P(), p.Q()
	wg := k.wgGeometry(2)
	th, n, npad := wg.th, wg.n, wg.npad
	wpe, pl := geo.wpe, geo.plane()
	m := max(1, min(hi-lo, 256/npad)) // images per GEMM
	cols := m * npad
	st := convScratchPool.get()
	defer convScratchPool.put(st)
	k.wgPlanes(st, npad)
	vs, es, ds := p.C*cols+16, p.K*cols+16, p.K*p.C+16
	st.wv = grow(st.wv, 16*vs)
	st.wm = grow(st.wm, 16*es)
	chw, pq, chs := p.C*p.H*p.W, P*Q, geo.chanSize()
	for n0 := lo; n0 < hi; n0 += m {
		g := min(m, hi-n0)
		for i := range g {
			img := n0 + i
			k.channelPass(st, imagePass{op: passFill, geo: geo, src: k.x[img*chw : (img+1)*chw], dst: st.pad}, p.C)
			for c := range p.C {
				// One row of V_ξ per channel: panels one row deep.
				wgInput(st.pad[c*chs:], wpe, pl, npad/16, st.wv[c*cols+i*npad:], vs, 1, 32)
			}
			dyi := k.y[img*p.K*pq : (img+1)*p.K*pq]
			_, grad := wgRowKernels() // E_ξ's rows hold wpe tiles from each start
			for kk := range p.K {
				e := st.wm[kk*cols+i*npad:]
				for ty := range th {
					var row1 []float32
					if 2*ty+1 < P {
						row1 = dyi[kk*pq+(2*ty+1)*Q:][:Q]
					}
					grad(dyi[kk*pq+2*ty*Q:][:Q], row1, Q, wpe, e[ty*wpe:], es)
				}
				for x := range 16 {
					clear(e[x*es+n : x*es+npad])
				}
			}
		}
		for x := range 16 {
			gemmDispatch(false, false, true, p.K, p.C, g*npad, 1, st.wm[x*es:], cols, nil, st.wv[x*vs:], cols, nil, nil, acc[x*ds:], p.C, k.gt)
		}
	}
}
