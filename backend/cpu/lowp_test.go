package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// The bfloat16 path is tested against float64 sums of the bfloat16-rounded
// operands (the products are exact in float32, so only the order of the
// float32 sums differs), and its rounding against the CPU's own
// conversion, bit for bit.

func needBF16(t *testing.T) func() {
	t.Helper()
	if bf16Kernel.fn == nil {
		t.Skip("no AVX-512 BF16 on this CPU or build")
	}
	restore, err := SetLevel(AVX512)
	if err != nil {
		t.Fatal(err)
	}
	return restore
}

// bf16Specials are values whose rounding is easy to get wrong: ties
// (even and odd), carries into the exponent, the largest finite values,
// denormals, infinities and NaNs with payloads.
var bf16Specials = []uint32{
	0, 0x80000000, 0x3f800000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f807fff, 0x3f808001,
	0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x00000001, 0x80000001, 0x007fffff,
	0x00800000, 0x00808000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001,
	0x7fbfffff, 0xff812345, 0x7fffffff, 0x3fffffff, 0x477fe000, 0x477ff000, 0x3effffff,
}

func TestRoundBF16Reference(t *testing.T) {
	for _, c := range []struct {
		in  uint32
		out uint16
	}{
		{0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81},
		{0x3f807fff, 0x3f80}, {0x7f7fffff, 0x7f80}, {0x00000001, 0x0000}, {0x807fffff, 0x8000},
		{0x7f800000, 0x7f80}, {0xff800000, 0xff80}, {0x7f800001, 0x7fc0}, {0xffc00001, 0xffc0},
	} {
		if got := roundBF16(math.Float32frombits(c.in)); got != c.out {
			t.Errorf("roundBF16(%#08x) = %#04x, want %#04x", c.in, got, c.out)
		}
	}
}

// TestPairRowsMatchesCPU: the AVX-512 BF16 converter and the Go rounding
// agree bit for bit on the specials and on random bit patterns, for even
// and odd depths.
func TestPairRowsMatchesCPU(t *testing.T) {
	defer needBF16(t)()
	r := rand.New(rand.NewPCG(21, 1))
	for i, kb := range []int{1, 2, 3, 8, 31, 64, 257, 2, 9, 40} {
		lds := 32
		if i >= 7 {
			lds = 45 // rows of a wider matrix
		}
		src := make([]float32, lds*kb)
		for i := range src {
			if i < len(bf16Specials) {
				src[i] = math.Float32frombits(bf16Specials[i])
			} else {
				src[i] = math.Float32frombits(r.Uint32())
			}
		}
		kd := (kb + 1) / 2
		got := make([]float32, 32*kd+5)
		want := make([]float32, 32*kd+5)
		for i := range got {
			got[i], want[i] = sentinel, sentinel
		}
		pairRows(src, lds, 32, kb, got)
		for p := 0; p < kd; p++ {
			for j := 0; j < 32; j++ {
				lo := uint32(roundBF16(src[2*p*lds+j]))
				var hi uint32
				if 2*p+1 < kb {
					hi = uint32(roundBF16(src[(2*p+1)*lds+j]))
				}
				want[p*32+j] = math.Float32frombits(lo | hi<<16)
			}
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("kb=%d lds=%d: slot %d = %#08x, want %#08x", kb, lds, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
}

// TestPackNarrowMatchesPack: a low-precision panel packed straight from
// a padded image (convB.packNarrow: gatherPairsAVX512, gatherQuadsAVX512,
// and for int8 gatherQuadsU8AVX512 from the image quantised to bytes
// first, with its Go loop) is, bit for bit, the float32 panel
// (convB.pack) paired by pairRows or quantised by quadRows: runs of 1 to
// 32 pixels (planes 1 to 40 wide), depths of every remainder, partial
// panels, bfloat16 specials, both int8 zero points, and nothing written
// past the panel.
func TestPackNarrowMatchesPack(t *testing.T) {
	t.Run("bf16", func(t *testing.T) {
		defer needBF16(t)()
		checkPackNarrow(t, bf16Kernel, nil)
	})
	t.Run("int8", func(t *testing.T) {
		defer needI8(t)()
		checkPackNarrow(t, i8Kernel, quantFromRange(-3, 2))
		checkPackNarrow(t, i8Kernel, quantFromRange(0, 2.5))
	})
}

func checkPackNarrow(t *testing.T, kern gemmKernel, q *quantB) {
	r := rand.New(rand.NewPCG(29, 5))
	nr, per := kern.nr, 2
	if kern.i8 {
		per = 4
	}
	for _, c := range []struct{ ch, h, w, rs, kb, l0 int }{
		{3, 9, 7, 3, 27, 0}, {4, 6, 1, 1, 4, 0}, {5, 12, 16, 3, 45, 0}, {2, 5, 33, 3, 17, 1},
		{6, 7, 40, 1, 5, 1}, {8, 14, 14, 3, 64, 8}, {1, 3, 3, 3, 9, 0}, {4, 5, 6, 3, 30, 2},
	} {
		geo := newPhased(c.ch, c.h, c.w, c.rs/2, c.rs/2, 1, 1)
		img := make([]float32, c.ch*c.h*c.w)
		for i := range img {
			switch {
			case q != nil:
				img[i] = float32(r.NormFloat64())
			case i < len(bf16Specials):
				img[i] = math.Float32frombits(bf16Specials[i])
			default:
				img[i] = math.Float32frombits(r.Uint32())
			}
		}
		pad := make([]float32, geo.size())
		geo.fill(img, pad)
		var cb convB
		cb.setup(c.ch, geo, c.rs, c.rs, 1, 1, c.h, c.w)
		cb.src = pad
		pixels := c.h * c.w
		kd := (c.kb + per - 1) / per
		for j0 := 0; j0 < pixels; j0 += nr {
			nb := min(nr, pixels-j0)
			wide := make([]float32, nr*c.kb)
			cb.pack(nr, c.kb, nb, c.l0, j0, wide)
			want := make([]float32, nr*kd+7)
			got := make([]float32, nr*kd+7)
			for i := range got {
				got[i], want[i] = sentinel, sentinel
			}
			if kern.i8 {
				quadRows(wide, nr, nr, c.kb, want, q)
			} else {
				pairRows(wide, nr, nr, c.kb, want)
			}
			check := func(what string) {
				t.Helper()
				for i := range want {
					col := i % nr
					if i < nr*kd && col >= nb {
						// Padding columns: zero here, the quantised zero in quadRows.
						if got[i] != 0 {
							t.Fatalf("%+v, %s, panel at %d: padding slot %d = %#08x", c, what, j0, i, math.Float32bits(got[i]))
						}
						continue
					}
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%+v, %s, panel at %d: slot %d = %#08x, want %#08x", c, what, j0, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
			if !cb.packNarrow(kern, nr, c.kb, nb, c.l0, j0, got, q) {
				t.Fatal("packNarrow did not run")
			}
			check("from float32")
			if !kern.i8 {
				continue
			}
			// From the image in bytes, as the int8 path packs taps that
			// read each value more than once.
			cb.srcU8 = make([]byte, len(pad)+16)
			quantU8Row(pad, cb.srcU8, q)
			for i := range got {
				got[i] = sentinel
			}
			if !cb.packNarrow(kern, nr, c.kb, nb, c.l0, j0, got, q) {
				t.Fatal("packNarrow did not run")
			}
			check("from bytes")
			cb.srcU8 = nil
		}
	}
}

// roundedDense is x with every value rounded to bfloat16.
func roundedDense(x []float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = bf16Float(roundBF16(v))
	}
	return y
}

// TestGemmBF16: C = alpha·A·B (and C += …) through the bfloat16 kernel,
// with A packed first (as frozen filters are) and packed per call, serial
// and parallel, odd and tiny k blocks, partial tiles, sentinels around C
// and NaN in C when it is overwritten.
func TestGemmBF16(t *testing.T) {
	defer needBF16(t)()
	r := rand.New(rand.NewPCG(22, 2))
	saved := minParallelFlops
	minParallelFlops = 1
	defer func() { minParallelFlops = saved }()
	for _, blocking := range []string{"default", "odd kc"} {
		if blocking == "odd kc" {
			defer withBlocking(24, 7, 64)()
		}
		for i := range 60 {
			m, n, k := 1+r.IntN(70), 1+r.IntN(150), 1+r.IntN(300)
			switch {
			case i < 4:
				m, n, k = 8*(i+1), 32*(i+1), 2*(i+1) // whole tiles and pairs
			case i < 6:
				m, n, k = colsCase(i - 4) // the column kernels
			}
			zero := i%2 == 0
			prepacked := i%3 == 0
			threads := 1 + i%3
			name := fmt.Sprintf("%s case %d m=%d n=%d k=%d zero=%v prepacked=%v threads=%d", blocking, i, m, n, k, zero, prepacked, threads)
			ldc := n + i%5
			a, b := randSlice(r, m*k), randSlice(r, k*n)
			if i%7 == 1 {
				b[r.IntN(len(b))] = 1e-40 // a denormal: the kernel sees zero
			}
			c := make([]float32, m*ldc+9)
			start := randSlice(r, m*n)
			for j := range c {
				c[j] = sentinel
			}
			for row := 0; row < m; row++ {
				for col := 0; col < n; col++ {
					if zero {
						c[row*ldc+col] = float32(math.NaN())
					} else {
						c[row*ldc+col] = start[row*n+col]
					}
				}
			}
			const alpha = 0.5
			var pa *packedA
			if prepacked {
				pa = &packedA{}
				pa.pack(bf16Kernel, false, m, k, a, k)
			}
			if pa != nil {
				gemmDispatch(zero, false, false, m, n, k, alpha, a, k, pa, b, n, nil, nil, c, ldc, threads)
			} else if threads == 1 {
				gemmSerial(bf16Kernel, zero, false, false, m, n, k, alpha, a, k, nil, b, n, nil, nil, c, ldc)
			} else {
				gemmParallel(bf16Kernel, zero, false, false, m, n, k, alpha, a, k, nil, b, n, nil, nil, c, ldc, threads)
			}
			ar, br := roundedDense(a), roundedDense(b)
			for j, v := range br {
				if math.Abs(float64(v)) < 1e-38 {
					br[j] = 0
				}
			}
			for row := 0; row < m; row++ {
				for col := 0; col < n; col++ {
					var s, mag float64
					for l := 0; l < k; l++ {
						p := float64(ar[row*k+l]) * float64(br[l*n+col])
						s += p
						mag += math.Abs(p)
					}
					want := alpha * s
					if !zero {
						want += float64(start[row*n+col])
						mag += math.Abs(float64(start[row*n+col]))
					}
					got := c[row*ldc+col]
					if d := math.Abs(float64(got) - want); !(d <= float64(k+4)*2*eps32*mag+1e-30) {
						t.Fatalf("%s: c[%d][%d] = %v, want %v", name, row, col, got, want)
					}
				}
			}
			for j, v := range c {
				row, col := j/ldc, j%ldc
				if (row >= m || col >= n) && !isSentinel(v) {
					t.Fatalf("%s: wrote %v at %d, outside C", name, v, j)
				}
			}
		}
	}
}

// convCase builds a frozen convolution with batch norm, residual and ReLU
// on backend be, and returns its output.
func frozenConv(t *testing.T, be *Backend, p backend.Conv2dParams, x, w []float32) []float32 {
	t.Helper()
	np := p.Normalized()
	xt := tensor.FromSlice(append([]float32(nil), x...), p.N, p.C, p.H, p.W)
	wt := tensor.FromSlice(append([]float32(nil), w...), p.K, p.C/np.G(), p.R, p.S)
	y := tensor.Full(float32(math.NaN()), p.N, p.K, np.P(), np.Q())
	g, bt := tensor.Full(1.5, p.K), tensor.Full(0.25, p.K)
	mean, vr := tensor.Full(0, p.K), tensor.Full(1, p.K)
	be.FreezeWeights(wt)
	be.ConvBNActForward(p, 0, xt, wt, g, bt, mean, vr, nil, y, false)
	return y.HostData()
}

// TestConvBF16: a frozen convolution at BF16 equals the float32
// convolution of the bfloat16-rounded image and filter (within float32
// summation error), on the implicit and the explicit (1×1) paths, one
// image and several, one thread and two; forcing a level below AVX-512,
// or fp32, gives the float32 result bit for bit.
func TestConvBF16(t *testing.T) {
	defer needBF16(t)()
	r := rand.New(rand.NewPCG(23, 3))
	cases := []backend.Conv2dParams{
		{N: 1, C: 3, H: 23, W: 19, K: 16, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
		{N: 2, C: 24, H: 14, W: 14, K: 40, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 1, C: 33, H: 9, W: 11, K: 20, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 3, C: 16, H: 8, W: 8, K: 24, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 2},
	}
	for ci, p := range cases {
		for _, threads := range []int{1, 2} {
			name := fmt.Sprintf("case %d threads %d", ci, threads)
			x := randSlice(r, p.N*p.C*p.H*p.W)
			w := randSlice(r, p.K*p.C/p.G()*p.R*p.S)
			low := New(threads)
			if eff, err := low.SetPrecision("bf16"); err != nil || eff != "bf16 (AVX-512 BF16)" {
				t.Fatalf("SetPrecision: %q, %v", eff, err)
			}
			got := frozenConv(t, low, p, x, w)
			want := frozenConv(t, New(threads), p, roundedDense(x), roundedDense(w))
			mag := frozenConv(t, New(threads), p, absAll(roundedDense(x)), absAll(roundedDense(w)))
			crs := p.C / p.G() * p.R * p.S
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= float64(crs+4)*2*eps32*float64(mag[i])+1e-30) {
					t.Fatalf("%s: y[%d] = %v, want %v", name, i, got[i], want[i])
				}
			}
			fp32 := frozenConv(t, New(threads), p, x, w)
			same := func(what string, y []float32) {
				for i := range fp32 {
					if math.Float32bits(y[i]) != math.Float32bits(fp32[i]) {
						t.Fatalf("%s, %s: y[%d] = %v, fp32 %v", name, what, i, y[i], fp32[i])
					}
				}
			}
			checkFallback(t, name, "bf16", threads, p, x, w)
			restore := SetBF16(WinogradNever)
			never := New(threads)
			if eff, _ := never.SetPrecision("bf16"); eff != "fp32 (bf16 asked for, but DMLGO_BF16=never)" {
				t.Fatalf("EffectivePrecision under DMLGO_BF16=never: %q", eff)
			}
			same("bf16 under DMLGO_BF16=never", frozenConv(t, never, p, x, w))
			restore()
			back := New(threads)
			back.SetPrecision("bf16")
			back.SetPrecision("fp32")
			same("fp32 after bf16", frozenConv(t, back, p, x, w))
		}
	}
}

func absAll(x []float32) []float32 {
	for i, v := range x {
		x[i] = float32(math.Abs(float64(v)))
	}
	return x
}

func TestSetPrecisionErrors(t *testing.T) {
	if _, err := New(1).SetPrecision("fp8"); err == nil {
		t.Fatal("SetPrecision(fp8) did not fail")
	}
	if eff, _ := NewReference().SetPrecision("bf16"); eff != "fp32" {
		t.Fatalf("reference backend at bf16 runs %q", eff)
	}
}

func needI8(t *testing.T) func() {
	t.Helper()
	if i8Kernel.fn == nil {
		t.Skip("no AVX-512 VNNI on this CPU or build")
	}
	restore, err := SetLevel(AVX512)
	if err != nil {
		t.Fatal(err)
	}
	return restore
}

// TestMinMax: the vector min/max equals the plain loop at every level,
// for every length up to 80 and a long one, with the extremes anywhere.
func TestMinMax(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(31, uint64(l)))
		for n := 1; n <= 1000; n++ {
			if n > 80 && n != 1000 {
				continue
			}
			x := randSlice(r, n)
			x[r.IntN(n)] = -7
			x[r.IntN(n)] = 9
			lo, hi := minMax(x)
			wlo, whi := x[0], x[0]
			for _, v := range x {
				wlo, whi = min(wlo, v), max(whi, v)
			}
			if lo != wlo || hi != whi {
				t.Fatalf("n=%d: minMax %v %v, want %v %v", n, lo, hi, wlo, whi)
			}
		}
		if lo, hi := minMax(nil); lo != 0 || hi != 0 {
			t.Fatalf("minMax(nil) = %v, %v", lo, hi)
		}
	})
}

// TestQuadRowsMatchesCPU: the AVX-512 quantiser and the Go one agree bit
// for bit, both zero points, values past the clamps, ties, NaN and
// infinities, strided rows, every depth remainder.
func TestQuadRowsMatchesCPU(t *testing.T) {
	defer needI8(t)()
	r := rand.New(rand.NewPCG(32, 1))
	specials := []float32{0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, 254.5, 255.5, 300, -300, 127.5, -128.5,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 3e9, -3e9, 1e-30}
	for i, kb := range []int{1, 3, 4, 5, 8, 31, 64, 259, 4, 13} {
		lds := 32
		if i >= 8 {
			lds = 50
		}
		q := &quantB{inv: 1, scale: 1}
		if i%2 == 1 {
			q = &quantB{inv: 0.75, scale: 1 / 0.75, zero: 128}
		}
		src := make([]float32, lds*kb)
		for j := range src {
			if j < len(specials) {
				src[j] = specials[j]
			} else {
				src[j] = 300*r.Float32() - 100
			}
		}
		kd := (kb + 3) / 4
		got, want := make([]float32, 32*kd+3), make([]float32, 32*kd+3)
		for j := range got {
			got[j], want[j] = sentinel, sentinel
		}
		quadRows(src, lds, 32, kb, got, q)
		for p := 0; p < kd; p++ {
			for j := 0; j < 32; j++ {
				var v uint32
				for rr := 0; rr < 4 && 4*p+rr < kb; rr++ {
					v |= quantU8(src[(4*p+rr)*lds+j], q) << (8 * rr)
				}
				want[p*32+j] = math.Float32frombits(v)
			}
		}
		for j := range want {
			if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
				t.Fatalf("kb=%d lds=%d zero=%d: slot %d = %#08x, want %#08x", kb, lds, q.zero, j, math.Float32bits(got[j]), math.Float32bits(want[j]))
			}
		}
	}
	// The Go reference on its own: clamps, ties to even, NaN.
	q := &quantB{inv: 1, scale: 1, zero: 128}
	for _, c := range []struct {
		x    float32
		want uint32
	}{{0, 128}, {-128, 0}, {-129, 0}, {127, 255}, {200, 255}, {0.5, 128}, {1.5, 130}, {-0.5, 128}, {float32(math.NaN()), 0}, {float32(math.Inf(1)), 0}} {
		if got := quantU8(c.x, q); got != c.want {
			t.Errorf("quantU8(%v, zero 128) = %d, want %d", c.x, got, c.want)
		}
	}
}

// TestQuantU8RowMatchesGo: the AVX-512 quantiser to bytes gives quantU8's
// byte for every value (clamps, ties, NaN, infinities), both zero points,
// every length from 0 to 80 (the 64- and 16-value steps and the Go tail),
// and writes nothing past y.
func TestQuantU8RowMatchesGo(t *testing.T) {
	defer needI8(t)()
	r := rand.New(rand.NewPCG(41, 2))
	specials := []float32{0, float32(math.Copysign(0, -1)), 0.5, 1.5, 2.5, -0.5, -1.5, 254.5, 255.5, 300, -300, 127.5, -128.5,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 3e9, -3e9, 1e-30}
	for _, q := range []*quantB{{inv: 1, scale: 1}, {inv: 0.75, scale: 1 / 0.75, zero: 128}} {
		for n := 0; n <= 80; n++ {
			x := make([]float32, n)
			for i := range x {
				if r.IntN(3) == 0 {
					x[i] = specials[r.IntN(len(specials))]
				} else {
					x[i] = 400*r.Float32() - 120
				}
			}
			y := make([]byte, n+5)
			for i := range y {
				y[i] = 0xa5
			}
			quantU8Row(x, y[:n], q)
			for i, v := range x {
				if want := byte(quantU8(v, q)); y[i] != want {
					t.Fatalf("n=%d zero=%d: y[%d] = %d for %v, want %d", n, q.zero, i, y[i], v, want)
				}
			}
			for i := n; i < len(y); i++ {
				if y[i] != 0xa5 {
					t.Fatalf("n=%d: byte %d past y written", n, i-n)
				}
			}
		}
	}
}

// TestGatherQuadsU8MatchesGo: the AVX-512 byte gather and its Go loop
// agree bit for bit for runs of 1 to 32 bytes (both halves of the lanes),
// rows at any offset, and neither writes past n in a row of dst.
func TestGatherQuadsU8MatchesGo(t *testing.T) {
	defer needI8(t)()
	r := rand.New(rand.NewPCG(43, 4))
	src := make([]byte, 500)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	for n := 1; n <= 32; n++ {
		quads := 1 + r.IntN(5)
		offs := make([]int, 4*quads)
		lo, hi := 1<<30, 0
		for i := range offs {
			offs[i] = r.IntN(400)
			lo, hi = min(lo, offs[i]), max(hi, offs[i])
		}
		base := r.IntN(500 - hi - 48)
		ldd := 32 + r.IntN(3)
		got, want := make([]float32, quads*ldd), make([]float32, quads*ldd)
		for i := range got {
			got[i], want[i] = sentinel, sentinel
		}
		if !gatherQuadsU8Vec(got, ldd, src, offs, lo, hi, base, n) {
			t.Fatal("gatherQuadsU8Vec did not run")
		}
		gatherQuadsU8(want, ldd, src, offs, base, n)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d base=%d: slot %d = %#08x, want %#08x", n, base, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
		// The Go loop itself: byte r of slot j is row r's byte j.
		for qq := range quads {
			for j := range n {
				v := math.Float32bits(want[qq*ldd+j])
				for rr := range 4 {
					if b := byte(v >> (8 * rr)); b != src[offs[4*qq+rr]+base+j] {
						t.Fatalf("n=%d: quad %d slot %d byte %d = %d, want %d", n, qq, j, rr, b, src[offs[4*qq+rr]+base+j])
					}
				}
			}
			for j := n; j < ldd && qq*ldd+j < len(want); j++ {
				if !isSentinel(want[qq*ldd+j]) {
					t.Fatalf("n=%d: slot %d past the run written", n, j)
				}
			}
		}
	}
}

// TestGemmI8Exact: with integer filters whose rows reach ±127 (scale 1)
// and integer images at scale 1, the int8 GEMM is exact: C = alpha·Σ
// w·(x + zero), serial and parallel, odd and tiny k blocks, partial tiles,
// sentinels around C.
func TestGemmI8Exact(t *testing.T) {
	defer needI8(t)()
	r := rand.New(rand.NewPCG(33, 2))
	saved := minParallelFlops
	minParallelFlops = 1
	defer func() { minParallelFlops = saved }()
	for _, blocking := range []string{"default", "odd kc"} {
		if blocking == "odd kc" {
			defer withBlocking(24, 7, 64)()
		}
		for i := range 40 {
			m, n, k := 1+r.IntN(40), 1+r.IntN(150), 1+r.IntN(300)
			switch {
			case i < 3:
				m, n, k = 8*(i+1), 32*(i+1), 4*(i+1)
			case i < 5:
				m, n, k = colsCase(i - 3) // the column kernels
			}
			zero := int32(0)
			lo, span := 0, 256
			if i%2 == 1 {
				zero, lo = 128, -128
			}
			a := make([]float32, m*k)
			for j := range a {
				a[j] = float32(r.IntN(255) - 127)
			}
			for row := 0; row < m; row++ {
				a[row*k+r.IntN(k)] = 127 // scale exactly 1
			}
			b := make([]float32, k*n)
			for j := range b {
				b[j] = float32(lo + r.IntN(span))
			}
			ldc := n + i%3
			c := make([]float32, m*ldc+5)
			for j := range c {
				c[j] = sentinel
			}
			var pa packedA
			pa.pack(i8Kernel, false, m, k, a, k)
			threads := 1 + i%2
			q := &quantB{inv: 1, scale: 1, zero: zero}
			gemmDispatch(true, false, false, m, n, k, 2, a, k, &pa, b, n, nil, q, c, ldc, threads)
			for row := 0; row < m; row++ {
				if pa.i8.scale[row] != 1 {
					t.Fatalf("row %d: scale %v, want 1", row, pa.i8.scale[row])
				}
				for col := 0; col < n; col++ {
					var s int64
					for l := 0; l < k; l++ {
						s += int64(a[row*k+l]) * (int64(b[l*n+col]) + int64(zero))
					}
					if got := c[row*ldc+col]; got != float32(2*s) {
						t.Fatalf("%s case %d m=%d n=%d k=%d threads=%d zero=%d: c[%d][%d] = %v, want %d", blocking, i, m, n, k, threads, zero, row, col, got, 2*s)
					}
				}
			}
			for j, v := range c {
				if row, col := j/ldc, j%ldc; (row >= m || col >= n) && !isSentinel(v) {
					t.Fatalf("case %d: wrote %v at %d, outside C", i, v, j)
				}
			}
		}
	}
}

// dequantized is x as the int8 path sees it: s·(x_q − zero).
func dequantized(x []float32, q *quantB) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = q.scale * float32(int32(quantU8(v, q))-q.zero)
	}
	return y
}

// TestConvINT8: a frozen convolution at INT8 equals the float32
// convolution of the quantised image and filter (each image at its own
// scale, each filter row at its own), within float32 summation error, on
// the implicit and explicit paths, images with and without negative
// values, one thread and two; below AVX-512 it is the float32 result bit
// for bit. And it stays close to the float32 convolution itself.
func TestConvINT8(t *testing.T) {
	defer needI8(t)()
	r := rand.New(rand.NewPCG(34, 3))
	cases := []backend.Conv2dParams{
		{N: 1, C: 3, H: 23, W: 19, K: 16, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
		{N: 2, C: 24, H: 14, W: 14, K: 40, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 1, C: 33, H: 9, W: 11, K: 20, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 3, C: 16, H: 8, W: 8, K: 24, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 2},
	}
	for ci, p := range cases {
		for _, threads := range []int{1, 2} {
			name := fmt.Sprintf("case %d threads %d", ci, threads)
			x := randSlice(r, p.N*p.C*p.H*p.W)
			if ci%2 == 1 {
				x = absAll(x) // a ReLU's output: zero point 0
			}
			w := randSlice(r, p.K*p.C/p.G()*p.R*p.S)
			low := New(threads)
			if eff, err := low.SetPrecision("int8"); err != nil || eff != "int8 (AVX-512 VNNI)" {
				t.Fatalf("SetPrecision: %q, %v", eff, err)
			}
			got := frozenConv(t, low, p, x, w)

			// The reference: the quantised values, convolved in float64.
			img := p.C * p.H * p.W
			xq := make([]float32, len(x))
			for n := 0; n < p.N; n++ {
				copy(xq[n*img:], dequantized(x[n*img:(n+1)*img], quantFromRange(minMax(x[n*img:(n+1)*img]))))
			}
			crs := p.C / p.G() * p.R * p.S
			s, wi, _ := quantizeRows(false, p.K, crs, w, crs)
			wq := make([]float32, len(w))
			for i, v := range wi {
				wq[i] = v * s.scale[i/crs]
			}
			want := frozenConv(t, New(threads), p, xq, wq)
			mag := frozenConv(t, New(threads), p, absAll(xq), absAll(wq))
			fp32 := frozenConv(t, New(threads), p, x, w)
			var errSq, refSq float64
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 1e-5*float64(mag[i])+1e-6) {
					t.Fatalf("%s: y[%d] = %v, want %v", name, i, got[i], want[i])
				}
				errSq += float64(got[i]-fp32[i]) * float64(got[i]-fp32[i])
				refSq += float64(fp32[i]) * float64(fp32[i])
			}
			if rel := math.Sqrt(errSq / refSq); rel > 0.03 {
				t.Errorf("%s: relative RMS error %.4f against float32, want < 0.03", name, rel)
			}

			checkFallback(t, name, "int8", threads, p, x, w)
		}
	}
}

// checkFallback: a backend at precision prec with the AVX2 level forced
// says it runs fp32, and gives the fp32 convolution bit for bit (skipped
// where AVX2 is not supported).
func checkFallback(t *testing.T, name, prec string, threads int, p backend.Conv2dParams, x, w []float32) {
	t.Helper()
	fallback := New(threads)
	fallback.SetPrecision(prec)
	restore, err := SetLevel(AVX2)
	if err != nil {
		return
	}
	defer restore()
	if eff := fallback.EffectivePrecision(); eff != "fp32 ("+prec+" asked for, but the SIMD level is avx2)" {
		t.Fatalf("EffectivePrecision at avx2: %q", eff)
	}
	y := frozenConv(t, fallback, p, x, w)
	ref := frozenConv(t, New(threads), p, x, w)
	for i := range ref {
		if math.Float32bits(y[i]) != math.Float32bits(ref[i]) {
			t.Fatalf("%s, %s at avx2: y[%d] = %v, fp32 at avx2 %v", name, prec, i, y[i], ref[i])
		}
	}
}

// TestBF16Choose checks the rule: never and a missing kernel give float32
// without measuring, always the kernel without measuring, auto the kernel
// only at a gain of bf16MinGain or more.
func TestBF16Choose(t *testing.T) {
	for _, c := range []struct {
		m     WinogradMode
		ready bool
		gain  float64
		want  bool
		asked bool // the gain is measured
	}{
		{WinogradAuto, true, 2.0, true, true},  // Zen 4
		{WinogradAuto, true, 0.5, false, true}, // Emerald Rapids
		{WinogradAuto, true, bf16MinGain, true, true},
		{WinogradAuto, true, 1.2, false, true},
		{WinogradAuto, false, 2.0, false, false},
		{WinogradAlways, true, 0.5, true, false},
		{WinogradAlways, false, 2.0, false, false},
		{WinogradNever, true, 2.0, false, false},
	} {
		asked := false
		got := bf16Choose(c.m, c.ready, func() float64 { asked = true; return c.gain })
		if got != c.want || asked != c.asked {
			t.Errorf("bf16Choose(%v, ready %v, gain %v) = %v (measured: %v), want %v (%v)", c.m, c.ready, c.gain, got, asked, c.want, c.asked)
		}
	}
}

// TestBF16Auto checks auto on this CPU: the kernels run exactly where the
// measured gain says, EffectivePrecision says which and why, and where
// they do not run, Precision BF16 gives the float32 result bit for bit.
func TestBF16Auto(t *testing.T) {
	defer SetBF16(WinogradAuto)()
	b := New(2)
	eff, err := b.SetPrecision("bf16")
	if err != nil {
		t.Fatal(err)
	}
	if !bf16Ready() {
		if BF16Ready() || eff == "bf16 (AVX-512 BF16)" {
			t.Fatalf("no bfloat16 kernel here, but BF16Ready %v, EffectivePrecision %q", BF16Ready(), eff)
		}
		return
	}
	gain := bf16Gain()
	if !(gain > 0.05 && gain < 20) {
		t.Fatalf("bf16Gain = %v, not a speed ratio", gain)
	}
	if gain2 := bf16Gain(); gain2 != gain {
		t.Fatalf("bf16Gain measured twice: %v, then %v", gain, gain2)
	}
	t.Logf("the bfloat16 kernel multiplies at %.2f× the float32 kernel's rate here", gain)
	runs := gain >= bf16MinGain
	if BF16Ready() != runs {
		t.Fatalf("gain %.2f: BF16Ready %v", gain, BF16Ready())
	}
	if runs {
		if eff != "bf16 (AVX-512 BF16)" {
			t.Fatalf("gain %.2f: EffectivePrecision %q", gain, eff)
		}
		return
	}
	if !strings.Contains(eff, "fp32 (bf16 asked for, but this CPU's AVX-512 BF16 kernel multiplies at") || !strings.Contains(eff, "DMLGO_BF16=always") {
		t.Fatalf("gain %.2f: EffectivePrecision %q", gain, eff)
	}
	p := backend.Conv2dParams{N: 1, C: 24, H: 14, W: 14, K: 40, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	r := rand.New(rand.NewPCG(5, 8))
	x, w := randSlice(r, p.N*p.C*p.H*p.W), randSlice(r, p.K*p.C*p.R*p.S)
	got, want := frozenConv(t, b, p, x, w), frozenConv(t, New(2), p, x, w)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("bf16 run in float32: y[%d] = %v, fp32 %v", i, got[i], want[i])
		}
	}
}

// TestBF16Env checks the mode chosen at init against DMLGO_BF16.
func TestBF16Env(t *testing.T) {
	env := os.Getenv("DMLGO_BF16")
	want, err := ParseWinograd(env)
	if err != nil && bf16Note == "" {
		t.Errorf("DMLGO_BF16=%q: %v, but Describe has no note", env, err)
	}
	if bf16EnvMode != want {
		t.Errorf("DMLGO_BF16=%q: mode %v, want %v", env, bf16EnvMode, want)
	}
}

// TestBF16NeverPaths: with the bfloat16 kernels turned off (as auto turns
// them off where they are slow), Precision BF16 is float32 bit for bit on
// each path a 3×3 convolution can take: the lanes kernels (with an odd
// number of input channels, which the bfloat16 lanes kernels refuse), both
// Winograds and the direct sums.
func TestBF16NeverPaths(t *testing.T) {
	defer needBF16(t)()
	defer SetBF16(WinogradNever)()
	conv := func(c, k, hw int) backend.Conv2dParams {
		return backend.Conv2dParams{N: 1, C: c, H: hw, W: hw, K: k, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	}
	r := rand.New(rand.NewPCG(11, 4))
	for _, c := range []struct {
		name           string
		p              backend.Conv2dParams
		lanes, wg, wg4 WinogradMode
		took           func(b *Backend, p backend.Conv2dParams, w []float32) bool
	}{
		// auto: the choices that ask whether the bfloat16 kernels run
		{"lanes, 33 channels", conv(33, 64, 14), WinogradAuto, WinogradAuto, WinogradAuto, (*Backend).lanes},
		{"F(2×2, 3×3)", conv(32, 48, 16), WinogradNever, WinogradAlways, WinogradNever, (*Backend).winograd},
		{"F(4×4, 3×3)", conv(96, 96, 28), WinogradNever, WinogradAuto, WinogradAuto, (*Backend).winograd4},
		{"direct", conv(32, 48, 16), WinogradNever, WinogradNever, WinogradNever, nil},
	} {
		func() {
			defer SetLanes(c.lanes)()
			defer SetWinograd(c.wg)()
			defer SetWinograd4(c.wg4)()
			x, w := randSlice(r, c.p.C*c.p.H*c.p.W), randSlice(r, c.p.K*c.p.C*9)
			low := New(2)
			if eff, _ := low.SetPrecision("bf16"); !strings.HasPrefix(eff, "fp32 (") {
				t.Fatalf("%s: EffectivePrecision %q", c.name, eff)
			}
			got, want := frozenConv(t, low, c.p, x, w), frozenConv(t, New(2), c.p, x, w)
			if c.took != nil {
				wt := tensor.FromSlice(w, c.p.K, c.p.C, 3, 3)
				low.FreezeWeights(wt)
				if !c.took(low, c.p.Normalized(), wt.HostData()) {
					t.Fatalf("%s: the path was not taken", c.name)
				}
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s: y[%d] = %v, fp32 %v", c.name, i, got[i], want[i])
				}
			}
		}()
	}
}
