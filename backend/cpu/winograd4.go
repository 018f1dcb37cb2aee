package cpu

import (
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
)

// Winograd's F(4×4, 3×3) for inference: each 4×4 block of output from
// the 6×6 block of padded input around it, with 36 products per input and
// output channel where F(2×2, 3×3) (winograd.go) takes 64 for the same 16
// outputs and the direct sums 144. With the points 0, ±1, ±2 and ∞:
//
//	Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
//	      0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//	G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1]
//	Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
//
// The larger constants cost accuracy: the results differ from the direct
// sums by up to 38 units of rounding (2⁻²⁴) of the sum of |terms|
// measured, about 2⁻¹⁹ (TestWinograd4Conv allows 2⁻¹⁷; F(2×2, 3×3) stays
// within 2⁻²¹). So it runs on frozen float32 weights only (inference:
// `retrieve index`, `query`, `serve`, `eval`), never in training or on
// the low-precision kernels, and only on layers large enough to pay
// (Backend.winograd4).
//
// The layout is F(2×2, 3×3)'s with phases of 4: the padded input split
// into 16 phase planes (rows and columns mod 4), Wpe = tw + 1 columns and
// th + 1 rows each, so that element (i, j) of tile v = ty·Wpe + tx is at
// offset v + (i/4)·Wpe + j/4 of plane (i mod 4, j mod 4), 16 consecutive
// tiles a vector.

// wg4Phased is the phase planes of F(4×4, 3×3) for p (normalised).
func wg4Phased(p backend.Conv2dParams) phased {
	th, tw := (p.P()+3)/4, (p.Q()+3)/4
	return phased{ch: p.C, h: p.H, w: p.W, ph: 1, pw: 1, sh: 4, sw: 4, hpe: th + 1, wpe: tw + 1}
}

// winograd4 reports whether a forward convolution (p normalised, filter w)
// takes F(4×4, 3×3): Winograd's shape at the AVX-512 level, w a frozen
// tensor's (its transform made once), GEMMs in float32 (the precision
// set, or a low one without its kernels here), planes of at least 28×28
// and, as for F(2×2, 3×3), at least 4M multiply-adds an image (so that
// resnet-s keeps the direct sums the demo's figures were made with), while
// DMLGO_WINOGRAD is auto. Under DMLGO_WINOGRAD4=always, every forward
// convolution of the shape at the AVX-512 level (tests); under never,
// none.
func (b *Backend) winograd4(p backend.Conv2dParams, w []float32) bool {
	if !wgShape(p) || ActiveLevel() != AVX512 {
		return false
	}
	switch WinogradMode(wg4Mode.Load()) {
	case WinogradNever:
		return false
	case WinogradAlways:
		return true
	}
	if WinogradMode(wgMode.Load()) != WinogradAuto || p.P() < wg4MinPlane || p.Q() < wg4MinPlane || p.K*p.C*p.P()*p.Q() < 1<<22 {
		return false
	}
	// The GEMMs in float32: the precision set, or a low one this CPU
	// has no kernels for.
	prec := Precision(b.precision.Load())
	return b.frozenWeights(w) && !(prec == BF16 && bf16Runs()) && !(prec == INT8 && i8Ready())
}

// wg4MinPlane is the smallest plane F(4×4, 3×3) takes in auto mode.
var wg4MinPlane = 28

var (
	wg4Mode atomic.Int32
	wg4Note string // DMLGO_WINOGRAD4's effect, for Describe
)

// initWinograd4 sets the mode DMLGO_WINOGRAD4 asks for.
func initWinograd4() { wg4Note = initMode("DMLGO_WINOGRAD4", "Winograd F(4×4, 3×3)", &wg4Mode) }

// SetWinograd4 switches every CPU backend's F(4×4, 3×3) to mode m and
// returns a function restoring the previous mode.
func SetWinograd4(m WinogradMode) (restore func()) {
	old := wg4Mode.Swap(int32(m))
	return func() { wg4Mode.Store(old) }
}

// wg4Filter writes G·g·Gᵀ of one 3×3 filter g to bufs[ξ][o] (ξ = 6i + j),
// computed in float64 and rounded once.
func wg4Filter(g []float32, bufs [][]float32, o int) {
	g = g[:9]
	// G·v of a column or row of three
	gv := func(v0, v1, v2 float64) [6]float64 {
		return [6]float64{
			v0 / 4,
			-(v0 + v1 + v2) / 6,
			-(v0 - v1 + v2) / 6,
			v0/24 + v1/12 + v2/6,
			v0/24 - v1/12 + v2/6,
			v2,
		}
	}
	var t [6][3]float64 // G·g
	for j := range 3 {
		c := gv(float64(g[j]), float64(g[3+j]), float64(g[6+j]))
		for i := range 6 {
			t[i][j] = c[i]
		}
	}
	for i := range 6 {
		r := gv(t[i][0], t[i][1], t[i][2])
		for j := range 6 {
			bufs[6*i+j][o] = float32(r[j])
		}
	}
}

// wg4In is Bᵀ·d of six values, in the order the vector kernel takes them:
// the products by 5 rounded before they are added (float32 conversions,
// so that no platform fuses them), those by 4 and 2 exact.
func wg4In(d0, d1, d2, d3, d4, d5 float32) (t [6]float32) {
	a, b := d4-4*d2, d3-4*d1
	c, e := d4-d2, 2*(d3-d1)
	t[0] = 4*d0 + (d4 - float32(5*d2))
	t[1] = a + b
	t[2] = a - b
	t[3] = c + e
	t[4] = c - e
	t[5] = 4*d1 + (d5 - float32(5*d3))
	return t
}

// wg4InputTile is V = Bᵀ·d·B of tile v (V_ξ at ξ = 6i + j): along each
// row of d first, then down each column.
func wg4InputTile(src []float32, wpe, pl, v int) [36]float32 {
	var r [6][6]float32
	for i := range 6 {
		var d [6]float32
		for j := range 6 {
			d[j] = src[(4*(i%4)+j%4)*pl+v+(i/4)*wpe+j/4]
		}
		r[i] = wg4In(d[0], d[1], d[2], d[3], d[4], d[5])
	}
	var out [36]float32
	for j := range 6 {
		c := wg4In(r[0][j], r[1][j], r[2][j], r[3][j], r[4][j], r[5][j])
		for i := range 6 {
			out[6*i+j] = c[i]
		}
	}
	return out
}

// wg4InputGo is wgInputGo for F(4×4, 3×3): the transform of one
// channel's 16·chunks tiles from v = 0, from its 16 phase planes (pl
// values apart, rows of wpe), V_ξ (tile v) to dst[ξ·xs + (v/nr)·nr·kb +
// v%nr].
func wg4InputGo(src []float32, wpe, pl, chunks int, dst []float32, xs, kb, nr int) {
	for v := 0; v < 16*chunks; v++ {
		o := v/nr*nr*kb + v%nr
		for x, vx := range wg4InputTile(src, wpe, pl, v) {
			dst[x*xs+o] = vx
		}
	}
}

// wg4InputSpan is how many values of dst wg4InputGo reaches for nr = 32.
func wg4InputSpan(chunks, xs, kb int) int {
	u := chunks - 1
	return 35*xs + u/2*32*kb + u%2*16 + 16
}

// wg4Input is wg4InputGo through the vector kernel where there is one
// (for panels 32 wide).
func wg4Input(src []float32, wpe, pl, chunks int, dst []float32, xs, kb, nr int) {
	if nr != 32 || !wg4InputVec(src, wpe, pl, chunks, dst, xs, kb) {
		wg4InputGo(src, wpe, pl, chunks, dst, xs, kb, nr)
	}
}

// wg4Out is Aᵀ·m of six values (all its products exact).
func wg4Out(m0, m1, m2, m3, m4, m5 float32) (y0, y1, y2, y3 float32) {
	s12, d12 := m1+m2, m1-m2
	s34, d34 := m3+m4, m3-m4
	return (m0 + s12) + s34, d12 + 2*d34, s12 + 4*s34, (d12 + 8*d34) + m5
}

// wg4OutputGo is the output transform of a row of n tiles of one output
// channel: M_ξ of tile t is m[ξ·ms + t]; the tiles' four output rows go to
// y[0…3] (nil: rows past the plane), columns 4t…4t+3 where they are
// below q. Down each column of M first, then along each row.
func wg4OutputGo(m []float32, ms, n int, y *[4][]float32, q int) {
	for t := 0; t < n; t++ {
		var u [4][6]float32
		for j := range 6 {
			u[0][j], u[1][j], u[2][j], u[3][j] = wg4Out(m[j*ms+t], m[(6+j)*ms+t], m[(12+j)*ms+t], m[(18+j)*ms+t], m[(24+j)*ms+t], m[(30+j)*ms+t])
		}
		for r, row := range y {
			if row == nil {
				continue
			}
			a := u[r]
			v0, v1, v2, v3 := wg4Out(a[0], a[1], a[2], a[3], a[4], a[5])
			for c, v := range [4]float32{v0, v1, v2, v3} {
				if x := 4*t + c; x < q {
					row[x] = v
				}
			}
		}
	}
}

// wg4Output is wg4OutputGo through the vector kernel where there is one.
func wg4Output(m []float32, ms, n int, y *[4][]float32, q int) {
	if !wg4OutputVec(m, ms, n, y, q) {
		wg4OutputGo(m, ms, n, y, q)
	}
}
