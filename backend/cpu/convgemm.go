package cpu

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

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
func (g phased) plane() int    { return g.hpe * g.wpe }
func (g phased) chanSize() int { return g.sh * g.sw * g.plane() }
func (g phased) size() int     { return g.ch * g.chanSize() }

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
	clear(dst[:g.size()])
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
	for c := 0; c < g.ch; c++ {
		src := x[c*g.h*g.w : (c+1)*g.h*g.w]
		// Row i = y + ph is row ii of row phase a.
		a, ii := g.ph%g.sh, g.ph/g.sh
		for y := 0; y < g.h; y++ {
			rowBase := c*chs + a*g.sw*pl + ii*g.wpe
			row := src[y*g.w : (y+1)*g.w]
			if g.sw == 2 && len(phases) == 2 {
				// Both column phases in one pass over the row.
				ev, od := phases[0], phases[1]
				if ev.x0 != 0 {
					ev, od = od, ev
				}
				de, do := dst[rowBase+ev.off:][:ev.n], dst[rowBase+od.off:][:od.n]
				r := row[:2*od.n]
				for k := range do {
					de[k], do[k] = r[2*k], r[2*k+1]
				}
				if ev.n > od.n {
					de[od.n] = row[2*od.n]
				}
			} else {
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
			}
			if a++; a == g.sh {
				a, ii = 0, ii+1
			}
		}
	}
}

// convB is the B operand of a convolution GEMM read from an image:
// B[l][j] = src[rowOff[l] + colOff[j]].
type convB struct {
	src    []float32
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

// implicitForward reports whether the forward convolution takes the
// implicit-GEMM path: not a pointwise convolution (those use x itself), and
// the filter's reach inside the padded plane (P rounds a negative span up
// to one row, which im2col reads as padding).
func implicitForward(p backend.Conv2dParams) bool {
	return !isPointwise(p) &&
		(p.P()-1)*p.StrideH+p.DilH*(p.R-1) < p.H+2*p.PadH &&
		(p.Q()-1)*p.StrideW+p.DilW*(p.S-1) < p.W+2*p.PadW
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
	pad, dy []float32
	cb      convB
}

var convScratchPool freeList[convScratch]

// convImplicitForward is Conv2dForward on the implicit path (p normalised),
// followed by epi on each image's output when epi is not nil.
func (b *Backend) convImplicitForward(p backend.Conv2dParams, X, Wt, Y []float32, epi *convEpilogue) {
	G := p.G()
	kg := p.K / G
	crs := p.C / G * p.R * p.S
	geo := newPhased(p.C, p.H, p.W, p.PadH, p.PadW, p.StrideH, p.StrideW)
	fp := packFilters(G, kg, crs, Wt)
	defer filterPool.put(fp)
	splitN(b, &convLoops, p.N, convLoop{pass: implicitForwardPass, p: p, geo: geo, x: X, w: Wt, y: Y, filt: *fp, epi: epi, gt: gemmThreads(b.Threads(), p.N)})
}

// implicitForward is convImplicitForward for images [lo, hi).
func (k *convLoop) implicitForward(lo, hi int) {
	p, geo, X, Wt, Y, filt, gt := k.p, k.geo, k.x, k.w, k.y, k.filt, k.gt
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
	for n := lo; n < hi; n++ {
		src := X[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		if !direct {
			geo.fill(src, st.pad)
			src = st.pad
		}
		for g := 0; g < G; g++ {
			st.cb.src = src[g*cg*chw : (g+1)*cg*chw]
			y := Y[(n*p.K+g*kg)*PQ : (n*p.K+(g+1)*kg)*PQ]
			clear(y)
			gemmDispatch(false, false, kg, PQ, crs, 1, Wt[g*kg*crs:], crs, &filt[g], nil, 0, &st.cb, y, PQ, gt)
		}
		if k.epi != nil {
			k.epi.apply(n, Y[n*p.K*PQ:(n+1)*p.K*PQ])
		}
	}
	st.cb.src = nil
}

var flipPool freeList[[]float32]

var filterPool freeList[[]packedA]

// packFilters packs each group's filter matrix (m×k at w[g·m·k:]) once for
// the GEMMs of every image.
func packFilters(groups, m, k int, w []float32) *[]packedA {
	fp := filterPool.get()
	if cap(*fp) < groups {
		*fp = make([]packedA, groups)
	}
	*fp = (*fp)[:groups]
	kern := activeKernel()
	for g := range *fp {
		(*fp)[g].pack(kern, false, m, k, w[g*m*k:], k)
	}
	return fp
}

// convImplicitBackwardData is Conv2dBackwardData on the implicit path (p
// normalised, unit strides).
func (b *Backend) convImplicitBackwardData(p backend.Conv2dParams, DY, Wt, DX []float32) {
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
			wk := Wt[(g*kg+k)*cg*rs:]
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
	b.convImplicitForward(q, DY, flip, DX, nil)
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
func (b *Backend) convImplicitBackwardFilter(p backend.Conv2dParams, X, DY, DW []float32) {
	geo := newPhased(p.C, p.H, p.W, p.PadH, p.PadW, p.StrideH, p.StrideW)
	b.sumOverImages(p.N, DW, convLoop{pass: implicitBackwardFilterPass, p: p, geo: geo, x: X, y: DY, gt: gemmThreads(b.Threads(), p.N)})
}

// implicitBackwardFilter is convImplicitBackwardFilter's sum over images
// [lo, hi), added into acc (k.y is dy).
func (k *convLoop) implicitBackwardFilter(acc []float32, lo, hi int) {
	p, geo, X, DY, gt := k.p, k.geo, k.x, k.y, k.gt
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
		geo.fill(X[n*p.C*p.H*p.W:(n+1)*p.C*p.H*p.W], st.pad)
		dy := DY[n*p.K*P*Q : (n+1)*p.K*P*Q]
		for r := 0; r < p.K*P; r++ {
			row := st.dy[r*wpe : (r+1)*wpe]
			copy(row[:Q], dy[r*Q:(r+1)*Q])
			clear(row[Q:])
		}
		for g := 0; g < G; g++ {
			st.cb.src = st.pad[g*cg*chw:]
			gemmDispatch(false, true, kg, crs, grid, 1, st.dy[g*kg*grid:], grid, nil, nil, 0, &st.cb, acc[g*kg*crs:], crs, gt)
		}
	}
	st.cb.src = nil
}
