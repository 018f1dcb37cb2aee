package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The compressed-vector tests: DecodeF16 and DecodeI8 at each SIMD level on
// lengths 0..300 and a few longer ones, at unaligned offsets of src and dst,
// with sentinels after dst, bit for bit against the Go loops they document
// (decoding rounds at most once, the same way at every level); f16ToF32 on
// all 65536 binary16 values against a float64 formula; EncodeF16 against a
// float64 rounding reference; EncodeI8's scale, rounding and error bound.

var quantLens = func() []int {
	var ns []int
	for n := 0; n <= 300; n++ {
		ns = append(ns, n)
	}
	return append(ns, 1000, 4099)
}()

// f16Float64 is the value of binary16 h in float64, from the definition
// (NaN for every NaN).
func f16Float64(h uint16) float64 {
	exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
	var v float64
	switch exp {
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		v = math.Inf(1)
	case 0:
		v = math.Ldexp(mant, -24)
	default:
		v = math.Ldexp(1024+mant, exp-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

// f16Ref is the binary16 nearest to finite or infinite f (ties to even),
// by float64 arithmetic on the value rather than bit surgery; NaN gives a
// quiet NaN.
func f16Ref(f float32) uint16 {
	x := float64(f)
	var sign uint16
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	switch {
	case x != x:
		return 0x7e00
	case x >= 65520: // halfway from 65504 to 65536: ties to even, which is 65536
		return sign | 0x7c00
	case x < 0x1p-14: // subnormal range: a multiple of 2^-24 (1024·2^-24 is 0x0400)
		return sign | uint16(math.RoundToEven(x*0x1p24))
	}
	_, e := math.Frexp(x) // x = frac·2^e, frac in [0.5, 1)
	ulp := math.Ldexp(1, e-1-10)
	q := math.RoundToEven(x / ulp) // in [1024, 2048]
	return sign | uint16(e-1+15)<<10 + uint16(q-1024)
}

func TestQuantF16Known(t *testing.T) {
	cases := []struct {
		h uint16
		f float32
	}{
		{0x0000, 0}, {0x8000, float32(math.Copysign(0, -1))},
		{0x3c00, 1}, {0xbc00, -1}, {0x4000, 2}, {0x3555, 0.333251953125},
		{0x7bff, 65504}, {0xfbff, -65504},
		{0x0001, 0x1p-24}, {0x03ff, 1023 * 0x1p-24}, {0x0400, 0x1p-14},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := f16ToF32(c.h); !sameBits(got, c.f) {
			t.Errorf("f16ToF32(%#04x) = %v (%#08x), want %v", c.h, got, math.Float32bits(got), c.f)
		}
		if got := f32ToF16(c.f); got != c.h {
			t.Errorf("f32ToF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	for _, h := range []uint16{0x7c01, 0x7e00, 0x7fff, 0xfc01, 0xfe00, 0xffff} {
		f := f16ToF32(h)
		if f == f || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Errorf("f16ToF32(%#04x) = %v (%#08x), want a NaN of the same sign", h, f, math.Float32bits(f))
		}
	}
}

// TestQuantDecodeF16All decodes every binary16 value at each level and
// compares with f16ToF32, and f16ToF32 with the float64 definition.
func TestQuantDecodeF16All(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	for i, h := range src {
		got, want := f16ToF32(h), f16Float64(h)
		if want != want {
			if got == got || math.Float32bits(got)&0x400000 == 0 || math.Float32bits(got)>>31 != uint32(h>>15) {
				t.Fatalf("f16ToF32(%#04x) = %#08x, want a quiet NaN with the sign", i, math.Float32bits(got))
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("f16ToF32(%#04x) = %v, want %v", i, got, want)
		}
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		logF16C(t, l)
		dst := make([]float32, len(src))
		DecodeF16(dst, src)
		for i, h := range src {
			if want := f16ToF32(h); math.Float32bits(dst[i]) != math.Float32bits(want) {
				t.Fatalf("DecodeF16(%#04x) = %#08x, want %#08x", h, math.Float32bits(dst[i]), math.Float32bits(want))
			}
		}
	})
}

func TestQuantDecodeF16Lengths(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range quantLens {
			for so := 0; so < 4; so++ {
				for do := 0; do < 4; do++ {
					src := make([]uint16, so+n+5)
					for i := range src {
						src[i] = uint16(r.Uint32())
					}
					src = src[so : so+n+r.IntN(5)] // src may be longer than dst
					dst, whole := elemOutput(r, n, do)
					DecodeF16(dst, src)
					what := fmt.Sprintf("DecodeF16 n=%d src+%d dst+%d", n, so, do)
					checkGuard(t, what, whole, do+n)
					for i := range dst {
						if want := f16ToF32(src[i]); math.Float32bits(dst[i]) != math.Float32bits(want) {
							t.Fatalf("%s: [%d] = %#08x from %#04x, want %#08x", what, i, math.Float32bits(dst[i]), src[i], math.Float32bits(want))
						}
					}
				}
			}
		}
	})
}

func TestQuantDecodeI8Lengths(t *testing.T) {
	scales := []float32{0.0123, -3.5, 1, 0, 1e-30, 1e-40, 3e37, float32(math.Inf(1)), float32(math.NaN())}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range quantLens {
			for so := 0; so < 4; so++ {
				for do := 0; do < 4; do++ {
					scale := scales[r.IntN(len(scales))]
					src := make([]int8, so+n+5)
					for i := range src {
						src[i] = int8(r.Uint32())
					}
					src = src[so : so+n+r.IntN(5)]
					dst, whole := elemOutput(r, n, do)
					DecodeI8(dst, src, scale)
					what := fmt.Sprintf("DecodeI8 n=%d src+%d dst+%d scale=%v", n, so, do, scale)
					checkGuard(t, what, whole, do+n)
					for i := range dst {
						if want := float32(src[i]) * scale; !sameBits(dst[i], want) {
							t.Fatalf("%s: [%d] = %v from %d, want %v", what, i, dst[i], src[i], want)
						}
					}
				}
			}
		}
	})
}

// logF16C notes when the AVX2 level decodes FP16 in Go for want of F16C.
func logF16C(t *testing.T, l Level) {
	if l == AVX2 && decodeF16Vec(make([]uint16, 8), make([]float32, 8)) == 0 {
		t.Log("no F16C: DecodeF16 runs in Go at the AVX2 level")
	}
}

// TestQuantEncodeF16RoundTrip: every binary16 value comes back from
// decode-encode with its bits; a signalling NaN comes back quiet.
func TestQuantEncodeF16RoundTrip(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	f := make([]float32, len(src))
	DecodeF16(f, src)
	back := make([]uint16, len(src)+1)
	back[len(src)] = 0xdead
	EncodeF16(back, f)
	if back[len(src)] != 0xdead {
		t.Fatal("EncodeF16 wrote past len(src)")
	}
	for i, h := range src {
		want := h
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			want |= 0x200 // quiet
		}
		if back[i] != want {
			t.Fatalf("EncodeF16(DecodeF16(%#04x)) = %#04x, want %#04x", h, back[i], want)
		}
	}
}

func TestQuantEncodeF16Rounding(t *testing.T) {
	inf := float32(math.Inf(1))
	cases := []struct {
		f float32
		h uint16
	}{
		{65504, 0x7bff}, {65519, 0x7bff}, {65519.996, 0x7bff}, {65520, 0x7c00}, {-65520, 0xfc00},
		{65536, 0x7c00}, {1e10, 0x7c00}, {math.MaxFloat32, 0x7c00}, {inf, 0x7c00}, {-inf, 0xfc00},
		// ties to even between 1 and 1+2^-10, 1+2^-10 and 1+2^-9
		{1 + 0x1p-11, 0x3c00}, {1 + 3*0x1p-11, 0x3c02}, {1 + 0x1p-11 + 0x1p-20, 0x3c01}, {1 + 0x1p-11 - 0x1p-23, 0x3c00},
		{-(1 + 0x1p-11), 0xbc00}, {2048 + 1, 0x6800}, {2048 + 3, 0x6802},
		// rounding up into the next binade (0x3fff is odd: the tie goes up)
		{2 - 0x1p-12, 0x4000}, {2 - 0x1p-11, 0x4000}, {2 - 0x1p-11 - 0x1p-20, 0x3fff},
		// subnormals: multiples of 2^-24
		{0x1p-24, 0x0001}, {0x1p-25, 0x0000}, {-0x1p-25, 0x8000}, {0x1p-25 + 0x1p-40, 0x0001},
		{3 * 0x1p-25, 0x0002}, {5 * 0x1p-25, 0x0002}, {7 * 0x1p-25, 0x0004}, {0x1p-26, 0},
		{1023 * 0x1p-24, 0x03ff}, {1023.5 * 0x1p-24, 0x0400}, {1023.49 * 0x1p-24, 0x03ff}, {0x1p-14, 0x0400},
		{1e-45, 0}, {-1e-45, 0x8000}, {0x1p-126, 0}, {float32(math.Copysign(0, -1)), 0x8000},
	}
	for _, c := range cases {
		if got := f32ToF16(c.f); got != c.h {
			t.Errorf("f32ToF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
		if got := f16Ref(c.f); got != c.h {
			t.Errorf("f16Ref(%v) = %#04x, want %#04x (the test's reference)", c.f, got, c.h)
		}
	}
	for _, b := range []uint32{0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff800001} {
		h := f32ToF16(math.Float32frombits(b))
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 || h>>15 != uint16(b>>31) {
			t.Errorf("f32ToF16(NaN %#08x) = %#04x, want a NaN of the same sign", b, h)
		}
	}
}

// TestQuantEncodeF16Random compares EncodeF16 with f16Ref on random
// float32 values: any bits, and values spread over the binary16 range.
func TestQuantEncodeF16Random(t *testing.T) {
	n := 3 << 20
	if testing.Short() {
		n = 1 << 18
	}
	r := rand.New(rand.NewPCG(3, 4))
	src := make([]float32, n)
	for i := range src {
		if i%4 == 0 {
			src[i] = math.Float32frombits(r.Uint32())
			continue
		}
		// sign, exponent in [-27, 16], any mantissa
		b := r.Uint32()&0x807fffff | uint32(127-27+r.IntN(44))<<23
		src[i] = math.Float32frombits(b)
	}
	dst := make([]uint16, n)
	EncodeF16(dst, src)
	bad := 0
	for i, v := range src {
		if want := f16Ref(v); dst[i] != want && !(v != v && dst[i]&0x7c00 == 0x7c00 && dst[i]&0x3ff != 0) {
			if bad++; bad <= 5 {
				t.Errorf("EncodeF16(%v = %#08x) = %#04x, want %#04x", v, math.Float32bits(v), dst[i], want)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d values differ", bad, n)
	}
}

func TestQuantEncodeI8(t *testing.T) {
	// scale 1: the rounding is visible, half away from zero.
	src := []float32{127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49, 126.5, -127, 0}
	want := []int8{127, 1, -1, 2, -2, 3, -3, 0, 127, -127, 0}
	dst := []int8{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 42}
	if s := EncodeI8(dst, src); s != 1 {
		t.Fatalf("EncodeI8 scale = %v, want 1", s)
	}
	for i, w := range want {
		if dst[i] != w {
			t.Errorf("EncodeI8(%v) = %d, want %d", src[i], dst[i], w)
		}
	}
	if dst[len(src)] != 42 {
		t.Error("EncodeI8 wrote past len(src)")
	}

	// The scale and the clamp: max|x| → ±127; ±Inf saturates, NaN → 0.
	inf := float32(math.Inf(1))
	dst = make([]int8, 5)
	s := EncodeI8(dst, []float32{-2.54, 1, inf, -inf, float32(math.NaN())})
	if s != float32(2.54)/127 || dst[0] != -127 || dst[1] != 50 || dst[2] != 127 || dst[3] != -127 || dst[4] != 0 {
		t.Errorf("EncodeI8 with specials = %v, scale %v, want [-127 50 127 -127 0], scale %v", dst, s, float32(2.54)/127)
	}

	// All zero (and empty): scale 0, zeros.
	dst = []int8{5, 5, 5}
	if s := EncodeI8(dst, make([]float32, 3)); s != 0 || dst[0] != 0 || dst[1] != 0 || dst[2] != 0 {
		t.Errorf("EncodeI8(zeros) = %v, scale %v", dst, s)
	}
	if s := EncodeI8(nil, nil); s != 0 {
		t.Errorf("EncodeI8(empty) scale = %v", s)
	}
}

// TestQuantI8RoundTrip: on random rows of many magnitudes, the largest
// value encodes to ±127, every value is in [-127, 127], and DecodeI8 gives
// back each value within scale/2 (plus its own rounding).
func TestQuantI8RoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	forEachLevel(t, func(t *testing.T, l Level) {
		for k := 0; k < 300; k++ {
			n := 1 + r.IntN(300)
			mag := math.Pow(10, float64(r.IntN(13)-6))
			x := make([]float32, n)
			imax := 0
			for i := range x {
				x[i] = float32(r.NormFloat64() * mag)
				if math.Abs(float64(x[i])) > math.Abs(float64(x[imax])) {
					imax = i
				}
			}
			q := make([]int8, n)
			s := EncodeI8(q, x)
			if want := float32(math.Abs(float64(x[imax]))) / 127; s != want {
				t.Fatalf("scale %v, want %v", s, want)
			}
			if q[imax] != 127 && q[imax] != -127 {
				t.Fatalf("max |x| = %v encodes to %d", x[imax], q[imax])
			}
			y := make([]float32, n)
			DecodeI8(y, q, s)
			for i, v := range x {
				if q[i] == -128 {
					t.Fatalf("x[%d] = %v encodes to -128", i, v)
				}
				err := math.Abs(float64(y[i]) - float64(v))
				if tol := float64(s)/2*(1+1e-9) + 0x1p-24*math.Abs(float64(v)); err > tol {
					t.Fatalf("n=%d scale %v: x[%d] = %v → %d → %v, error %g > %g", n, s, i, v, q[i], y[i], err, tol)
				}
			}
		}
	})
}

func TestQuantPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"EncodeF16": func() { EncodeF16(make([]uint16, 3), make([]float32, 4)) },
		"DecodeF16": func() { DecodeF16(make([]float32, 4), make([]uint16, 3)) },
		"EncodeI8":  func() { EncodeI8(make([]int8, 3), make([]float32, 4)) },
		"DecodeI8":  func() { DecodeI8(make([]float32, 4), make([]int8, 3), 1) },
	} {
		func() {
			defer func() {
				if msg, ok := recover().(string); !ok || msg[:len("cpu: "+name)] != "cpu: "+name {
					t.Errorf("%s with a short slice: panic %v, want one naming it", name, msg)
				}
			}()
			f()
		}()
	}
}

// BenchmarkDecodeF16 and BenchmarkDecodeI8 decode 128 rows of 256 values
// (one thread) at each level; the byte rate counts src read and dst written.
func BenchmarkDecodeF16(b *testing.B) {
	const n = 128 * 256
	r := rand.New(rand.NewPCG(1, 2))
	src, dst := make([]uint16, n), make([]float32, n)
	EncodeF16(src, randSlice(r, n))
	for _, l := range Supported() {
		b.Run(l.String(), func(b *testing.B) {
			restore, _ := SetLevel(l)
			defer restore()
			b.SetBytes(n * (2 + 4))
			for b.Loop() {
				DecodeF16(dst, src)
			}
		})
	}
}

func BenchmarkDecodeI8(b *testing.B) {
	const n = 128 * 256
	r := rand.New(rand.NewPCG(1, 2))
	src, dst := make([]int8, n), make([]float32, n)
	scale := EncodeI8(src, randSlice(r, n))
	for _, l := range Supported() {
		b.Run(l.String(), func(b *testing.B) {
			restore, _ := SetLevel(l)
			defer restore()
			b.SetBytes(n * (1 + 4))
			for b.Loop() {
				DecodeI8(dst, src, scale)
			}
		})
	}
}
