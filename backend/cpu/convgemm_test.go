package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
)

// TestGatherRows checks the row gather of the implicit convolution against
// a Go loop at every level: row counts, widths (multiples of 8 go to the
// assembly), unaligned offsets, and sentinels after the panel.
func TestGatherRows(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(21, uint64(l)))
		// Every row count and every width 1..300, the other dimension
		// random (widths that are multiples of 8 go to the assembly).
		for iter := 0; iter < 600; iter++ {
			rows, n := 1+iter%300, 8*(1+r.IntN(8))
			if iter >= 300 {
				rows, n = 1+r.IntN(40), 1+iter%300
			}
			ldd := n + r.IntN(5)
			src := randSlice(r, 20000)
			offs := make([]int, rows)
			o := r.IntN(7)
			for i := range offs {
				offs[i] = o
				o += 1 + r.IntN(30)
			}
			base := r.IntN(9)
			if offs[rows-1]+base+n > len(src) {
				continue
			}
			off := r.IntN(5)
			d, whole := elemOutput(r, (rows-1)*ldd+n, off)
			want := slices.Clone(d)
			for i, o := range offs {
				copy(want[i*ldd:i*ldd+n], src[o+base:o+base+n])
			}
			if !gatherRowsVec(d, ldd, src, offs, offs[0], offs[rows-1], base, n) {
				for i, o := range offs {
					copy(d[i*ldd:i*ldd+n], src[o+base:o+base+n])
				}
			}
			for i := range d {
				if !sameBits(d[i], want[i]) {
					t.Fatalf("rows %d n %d ldd %d: dst[%d] = %v, want %v", rows, n, ldd, i, d[i], want[i])
				}
			}
			checkGuard(t, fmt.Sprintf("gather rows %d n %d", rows, n), whole, off+len(d))
		}
	})
}

// TestPackRowsOff checks the transposing packer with a row table against
// packRowsGo's loop at every level.
func TestPackRowsOff(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(22, uint64(l)))
		// Every row count and every column count 1..300, the other
		// dimension random.
		for iter := 0; iter < 600; iter++ {
			rows, kb := 1+iter%300, 1+r.IntN(80)
			if iter >= 300 {
				rows, kb = 1+r.IntN(40), 1+iter%300
			}
			ldd := rows + r.IntN(4)
			src := randSlice(r, 3000)
			offs := make([]int, rows)
			for i := range offs {
				offs[i] = r.IntN(len(src) - kb)
			}
			off := r.IntN(5)
			d, whole := elemOutput(r, (kb-1)*ldd+rows, off)
			want := slices.Clone(d)
			for i, o := range offs {
				for c := 0; c < kb; c++ {
					want[c*ldd+i] = src[o+c]
				}
			}
			rv, cv := packRowsOffVec(src, offs, kb, d, ldd)
			var wr, wc int // what the level's packer should take
			switch l {
			case AVX512:
				wr, wc = rows, kb&^15
			case AVX2:
				wr, wc = rows&^7, kb&^7
			}
			if wr == 0 || wc == 0 {
				wr, wc = 0, 0
			}
			if rv != wr || cv != wc {
				t.Fatalf("%v: packed %d rows and %d columns of %d × %d, want %d and %d", l, rv, cv, rows, kb, wr, wc)
			}
			for i, o := range offs {
				c0 := cv
				if i >= rv {
					c0 = 0
				}
				for c := c0; c < kb; c++ {
					d[c*ldd+i] = src[o+c]
				}
			}
			for i := range d {
				if !sameBits(d[i], want[i]) {
					t.Fatalf("rows %d kb %d ldd %d: dst[%d] = %v, want %v", rows, kb, ldd, i, d[i], want[i])
				}
			}
			checkGuard(t, fmt.Sprintf("pack rows %d kb %d", rows, kb), whole, off+len(d))
		}
	})
}

// TestCopyRows checks the row copier of non-transposed panels against a
// plain loop at every level, for each panel width, every row count 0..70
// and a few longer, unaligned source and destination, sentinels after the
// destination, and that the level's vector copier took the widths it has.
func TestCopyRows(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(23, uint64(l)))
		for _, w := range []int{4, 5, 6, 8, 16, 32} {
			for _, kb := range append(seq(0, 70), 127, 256, 301) {
				lds := w + r.IntN(40)
				src := randSlice(r, r.IntN(5)+kb*lds+w)[r.IntN(5):]
				d, whole := elemOutput(r, kb*w, r.IntN(5))
				want := slices.Clone(d)
				for i := range kb {
					copy(want[i*w:(i+1)*w], src[i*lds:])
				}
				before := slices.Clone(src)
				vec := copyRowsVec(src, lds, w, kb, slices.Clone(d))
				wantVec := kb > 0 && (l == AVX512 && (w == 32 || w == 16 || w == 8) || l == AVX2 && (w == 16 || w == 8))
				if vec != wantVec {
					t.Fatalf("w %d kb %d: copyRowsVec took it: %v, want %v", w, kb, vec, wantVec)
				}
				copyRows(src, lds, w, kb, d)
				for i := range d {
					if !sameBits(d[i], want[i]) {
						t.Fatalf("w %d kb %d lds %d: dst[%d] = %v, want %v", w, kb, lds, i, d[i], want[i])
					}
				}
				if !slices.Equal(src, before) {
					t.Fatalf("w %d kb %d: src changed", w, kb)
				}
				checkGuard(t, fmt.Sprintf("copy rows w %d kb %d", w, kb), whole, len(whole)-9)
			}
		}
	})
}

// seq is lo, lo+1, …, hi.
func seq(lo, hi int) []int {
	s := make([]int, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

// TestConvBPacking checks that convB packs exactly what packB packs from
// the explicit column matrix (im2col of the same image), plain and
// transposed, for blocks at every offset.
func TestConvBPacking(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		kern := activeKernel()
		r := rand.New(rand.NewPCG(23, uint64(l)))
		for _, p := range []backend.Conv2dParams{
			{N: 1, C: 3, H: 9, W: 33, K: 1, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
			{N: 1, C: 4, H: 8, W: 8, K: 1, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
			{N: 1, C: 2, H: 16, W: 16, K: 1, R: 5, S: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1},
			{N: 1, C: 2, H: 11, W: 7, K: 1, R: 3, S: 3, StrideH: 2, StrideW: 1, PadH: 1, PadW: 1, DilH: 1, DilW: 2},
			{N: 1, C: 3, H: 32, W: 32, K: 1, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
			{N: 1, C: 2, H: 13, W: 17, K: 1, R: 1, S: 1, StrideH: 2, StrideW: 2},
			{N: 1, C: 2, H: 14, W: 19, K: 1, R: 3, S: 5, StrideH: 3, StrideW: 2, PadH: 2, PadW: 1, DilH: 2},
		} {
			p = p.Normalized()
			P, Q := p.P(), p.Q()
			geo := newPhased(p.C, p.H, p.W, p.PadH, p.PadW, p.StrideH, p.StrideW)
			x := randSlice(r, p.C*p.H*p.W)
			crs, pq := p.C*p.R*p.S, P*Q
			col := make([]float32, crs*pq)
			im2col(p, p.C, x, col)
			var cb convB
			cb.setup(p.C, geo, p.R, p.S, p.DilH, p.DilW, P, Q)
			cb.src = make([]float32, geo.size())
			geo.fill(x, cb.src)
			for _, blk := range [][4]int{{0, 0, crs, pq}, {1, 3, crs - 1, pq - 3}, {5, 17, 7, 40}} {
				l0, j0, kb, nb := blk[0], blk[1], min(blk[2], crs-blk[0]), min(blk[3], pq-blk[1])
				if kb < 1 || nb < 1 {
					continue
				}
				np := (nb + kern.nr - 1) / kern.nr
				want := make([]float32, np*kern.nr*kb)
				got := make([]float32, len(want))
				for i := range got {
					got[i] = sentinel // packing must also write the zero padding
				}
				packB(kern, false, kb, nb, col, pq, l0, j0, want)
				cb.pack(kern.nr, kb, nb, l0, j0, got)
				if !slices.Equal(got, want) {
					t.Fatalf("%+v block %v: convB.pack differs from packB of im2col", p, blk)
				}
			}
			// Transposed, on the grid of whole phase-plane rows:
			// Bᵀ[pixel][tap]. The explicit matrix reads the same values.
			grid := P * geo.wpe
			var ct convB
			ct.setupGrid(p.C, geo, p.R, p.S, p.DilH, p.DilW, P)
			ct.src = append(slices.Clone(cb.src), make([]float32, geo.wpe)...)
			bt := make([]float32, grid*crs) // Bᵀ, row-major (grid × crs)
			for j := 0; j < crs; j++ {
				for i := 0; i < grid; i++ {
					bt[i*crs+j] = ct.src[ct.rowOff[j]+i]
				}
			}
			for _, blk := range [][4]int{{0, 0, grid, crs}, {3, 2, 37, crs - 2}, {16, 31, grid - 16, 9}} {
				l0, j0, kb, nb := blk[0], blk[1], min(blk[2], grid-blk[0]), min(blk[3], crs-blk[1])
				if kb < 1 || nb < 1 {
					continue
				}
				np := (nb + kern.nr - 1) / kern.nr
				want := make([]float32, np*kern.nr*kb)
				got := make([]float32, len(want))
				for i := range got {
					got[i] = sentinel
				}
				packB(kern, false, kb, nb, bt, crs, l0, j0, want)
				ct.packT(kern.nr, kb, nb, l0, j0, got)
				if !slices.Equal(got, want) {
					t.Fatalf("%+v block %v: convB.packT differs from packB of the explicit Bᵀ", p, blk)
				}
			}
		}
	})
}

// TestIm2col checks the column matrix against its definition
// (col[(c·R+r)·S+s][oh·Q+ow] = x[c][oh·sh−ph+r·dh][ow·sw−pw+s·dw], zero
// outside the image) at every level, whole and split by channels as the
// threads split it (im2colRun), with nothing written past the matrix:
// strides 1, 2 and 3, rows of hundreds of values, odd and even widths,
// padding, dilation.
func TestIm2col(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(29, uint64(l)))
		for _, p := range []backend.Conv2dParams{
			{N: 1, C: 2, H: 3, W: 601, K: 1, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
			{N: 1, C: 1, H: 5, W: 40, K: 1, R: 1, S: 1, StrideH: 2, StrideW: 2},
			// Odd sizes: the last row's last value is the image's last.
			{N: 1, C: 2, H: 7, W: 33, K: 1, R: 1, S: 1, StrideH: 2, StrideW: 2},
			{N: 1, C: 3, H: 9, W: 67, K: 1, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
			{N: 1, C: 2, H: 4, W: 35, K: 1, R: 3, S: 3, StrideH: 1, StrideW: 3, PadH: 1, PadW: 2},
			{N: 1, C: 3, H: 9, W: 33, K: 1, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
			{N: 1, C: 5, H: 12, W: 300, K: 1, R: 1, S: 1, StrideH: 2, StrideW: 2},
			{N: 1, C: 2, H: 11, W: 40, K: 1, R: 3, S: 3, StrideH: 1, StrideW: 2, PadH: 2, PadW: 3, DilH: 1, DilW: 2},
			{N: 1, C: 2, H: 14, W: 19, K: 1, R: 3, S: 5, StrideH: 3, StrideW: 3, PadH: 2, PadW: 1, DilH: 2},
		} {
			p = p.Normalized()
			P, Q := p.P(), p.Q()
			x := randSlice(r, p.C*p.H*p.W)
			n := p.C * p.R * p.S * P * Q
			for _, parts := range []int{0, 1, 2, p.C} {
				col := make([]float32, n+16)
				for i := range col {
					col[i] = sentinel
				}
				if parts == 0 {
					im2col(p, p.C, x, col)
				} else {
					run := &im2colRun{p: p, x: x, col: col}
					for _, rg := range splitRange(p.C, parts, 1) {
						run.chunk(rg[0], rg[1])
					}
				}
				for c := range p.C {
					for i := range p.R {
						for j := range p.S {
							for oh := range P {
								for ow := range Q {
									ih, iw := oh*p.StrideH-p.PadH+i*p.DilH, ow*p.StrideW-p.PadW+j*p.DilW
									var want float32
									if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
										want = x[(c*p.H+ih)*p.W+iw]
									}
									if got := col[(((c*p.R+i)*p.S+j)*P+oh)*Q+ow]; !sameBits(got, want) {
										t.Fatalf("%v %+v parts %d: col[c %d, tap %d,%d][%d,%d] = %v, want %v", l, p, parts, c, i, j, oh, ow, got, want)
									}
								}
							}
						}
					}
				}
				for i, v := range col[n:] {
					if !isSentinel(v) {
						t.Fatalf("%v %+v parts %d: wrote %v past the matrix at %d", l, p, parts, v, n+i)
					}
				}
			}
		}
	})
}

// TestPhasedFill checks phased.fill at each level against its layout:
// every value of every phase plane is the padded image's value at that
// phase position (zero in the padding and past the padded image), over
// into a buffer of garbage, for odd and even sizes, pads and strides
// (the split of column phases in pairs at stride 2, one row phase at a
// time, included), one channel and several.
func TestPhasedFill(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(11, uint64(l)))
		type shape struct{ ch, h, w, ph, pw, sh, sw int }
		var shapes []shape
		for _, hw := range [][2]int{{1, 1}, {1, 2}, {2, 1}, {7, 7}, {14, 14}, {9, 33}, {56, 56}, {5, 40}} {
			for _, pad := range [][2]int{{0, 0}, {1, 1}, {3, 3}, {2, 1}} {
				for _, st := range [][2]int{{1, 1}, {2, 2}, {2, 1}, {1, 2}, {3, 2}, {3, 3}, {4, 4}, {1, 4}, {3, 4}} {
					shapes = append(shapes, shape{1 + r.IntN(3), hw[0], hw[1], pad[0], pad[1], st[0], st[1]})
				}
			}
		}
		for _, s := range shapes {
			g := newPhased(s.ch, s.h, s.w, s.ph, s.pw, s.sh, s.sw)
			if s.sw == 4 && r.IntN(2) == 0 {
				g.hpe, g.wpe = g.hpe+1, g.wpe+1 // as wg4Phased may make them
			}
			x := randSlice(r, s.ch*s.h*s.w)
			dst := make([]float32, g.size()+7)
			for i := range dst {
				dst[i] = float32(r.IntN(9) + 1) // garbage the fill must overwrite
			}
			dst[g.size()] = sentinel
			g.fill(x, dst)
			hp, wp := s.h+2*s.ph, s.w+2*s.pw
			for c := range s.ch {
				for a := range s.sh {
					for b := range s.sw {
						for ii := range g.hpe {
							for jj := range g.wpe {
								i, j := ii*s.sh+a, jj*s.sw+b
								want := float32(0)
								if y, xx := i-s.ph, j-s.pw; i < hp && j < wp && y >= 0 && y < s.h && xx >= 0 && xx < s.w {
									want = x[(c*s.h+y)*s.w+xx]
								}
								at := c*g.chanSize() + (a*s.sw+b)*g.plane() + ii*g.wpe + jj
								if got := dst[at]; got != want {
									t.Fatalf("%+v: channel %d phase (%d,%d) at (%d,%d) = %v, want %v", s, c, a, b, ii, jj, got, want)
								}
							}
						}
					}
				}
			}
			if !isSentinel(dst[g.size()]) {
				t.Fatalf("%+v: wrote past the phase planes", s)
			}
		}
	})
}
