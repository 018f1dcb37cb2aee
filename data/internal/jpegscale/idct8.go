package jpegscale

// Full scale: image/jpeg's integer inverse DCT, step for step.
//
// At scale 1 a decode should give the bytes image/jpeg gives, so that a
// photo embeds alike whichever of the two decoded it (image/jpeg still
// takes what this package refuses). Since Go 1.26 image/jpeg's inverse
// DCT is a fixed-point one in int32 (Loeffler, Ligtenberg and
// Moschytz's factorisation, one pass along the rows of coefficients,
// then one down the columns): idct8 does the same operations on the
// same values, in the same order, with the same constants (each the
// rounded fixed-point value of the cosine it stands for: TestIDCT8
// Constants), wrapping on overflow as Go's int32 does, so that its
// output is image/jpeg's for every block, not only for sensible ones
// (TestIDCT8MatchesImageJPEG feeds image/jpeg extreme blocks).
//
// The coefficients are kept by columns: t[v*8+u] is F(u, v), the
// dequantised coefficient of vertical frequency u and horizontal
// frequency v. The pass along the rows then works on eight rows at once
// from eight contiguous vectors (the AVX2 kernel, idct8_amd64.s), and
// here the pass down the columns reads contiguous values.

// The fixed-point constants: round(2^b·x) for the cosine or sine x.
const (
	kC6r = 70936  // 2^18·cos(6π/16)/√2
	kS6r = 171254 // 2^18·sin(6π/16)/√2
	kR2r = 181    // 2^8/√2
	kC6c = 1108   // 2^12·cos(6π/16)/√2
	kS6c = 2676   // 2^12·sin(6π/16)/√2
	kR2c = 11585  // 2^14/√2
	kC1  = 4017   // 2^12·cos(π/16)
	kS1  = 799    // 2^12·sin(π/16)
	kC3  = 3406   // 2^12·cos(3π/16)
	kS3  = 2276   // 2^12·sin(3π/16)
)

// rotate scales and rotates (a, b) with three products: k·(a·cos θ −
// b·sin θ) and k·(a·sin θ + b·cos θ) for kc = k·cos θ, ks = k·sin θ.
func rotate(a, b, kc, ks int32) (int32, int32) {
	m := kc * (a + b)
	return m - (ks+kc)*b, m + (ks-kc)*a
}

// idct8Go is the inverse DCT of the coefficients t (by columns; t is
// left holding intermediate values) into dst's 8×8 bytes, rows stride
// apart: level-shifted by 128 and clamped to [0, 255].
func idct8Go(t *[64]int32, dst []byte, stride int) {
	// Along the rows: for each vertical frequency u, F(u, ·) becomes the
	// eight columns' values, written back to t[x*8+u].
	for u := range 8 {
		f0, f1, f2, f3 := t[u], t[8+u], t[16+u], t[24+u]
		f4, f5, f6, f7 := t[32+u], t[40+u], t[48+u], t[56+u]

		// The even half: F0, F4 and F2, F6.
		e0, e1 := f0<<17+f4<<17, f0<<17-f4<<17
		e2, e3 := rotate(f2, f6, kC6r, kS6r)
		e1, e2 = e1+e2, e1-e2
		e0, e3 = e0+e3, e0-e3

		// The odd half: F1, F7 and F3, F5.
		o7, o4 := f1<<7+f7<<7, f1<<7-f7<<7
		o6, o5 := f5*kR2r, f3*kR2r
		o7, o5 = o7+o5, o7-o5
		o4, o6 = o4+o6, o4-o6
		o4, o7 = rotate(o4>>2, o7>>2, kC3, kS3)
		o5, o6 = rotate(o5>>2, o6>>2, kC1, kS1)

		t[u], t[56+u] = e0+o7, e0-o7
		t[8+u], t[48+u] = e1+o6, e1-o6
		t[16+u], t[40+u] = e2+o5, e2-o5
		t[24+u], t[32+u] = e3+o4, e3-o4
	}
	// Down the columns: column x's eight values (contiguous now) become
	// its eight pixels.
	for x := range 8 {
		c := t[x*8 : x*8+8 : x*8+8]
		c0 := c[0] + 1<<19 // a half, for the rounding of the last shift
		e0, e1 := (c0+c[4])>>2, (c0-c[4])>>2
		e2, e3 := rotate(c[2]>>13, c[6]>>13, kC6c, kS6c)
		e1, e2 = e1+e2, e1-e2
		e0, e3 = e0+e3, e0-e3

		o7, o4 := c[1]+c[7], c[1]-c[7]
		o6, o5 := (c[5]>>13)*kR2c, (c[3]>>13)*kR2c
		o7, o5 = o7+o5, o7-o5
		o4, o6 = o4+o6, o4-o6
		o4, o7 = rotate(o4>>14, o7>>14, kC3, kS3)
		o5, o6 = rotate(o5>>14, o6>>14, kC1, kS1)

		p := dst[x:]
		p[0] = level((e0 + o7) >> 18)
		p[stride] = level((e1 + o6) >> 18)
		p[2*stride] = level((e2 + o5) >> 18)
		p[3*stride] = level((e3 + o4) >> 18)
		p[4*stride] = level((e3 - o4) >> 18)
		p[5*stride] = level((e2 - o5) >> 18)
		p[6*stride] = level((e1 - o6) >> 18)
		p[7*stride] = level((e0 - o7) >> 18)
	}
}

// level is a sample of the inverse DCT level-shifted by 128 and clamped
// to a byte.
func level(v int32) byte {
	switch {
	case v < -128:
		return 0
	case v > 127:
		return 255
	}
	return byte(v + 128)
}

// dc8 is the value of every pixel of a block whose only coefficient is
// the dequantised DC term dc: what idct8 computes for it (the rows but
// the first are zero, the first is dc·2^17 throughout, and each column
// is its first value plus the rounding, shifted by 2 and then by 18).
func dc8(dc int32) byte { return level(((dc<<17 + 1<<19) >> 2) >> 18) }

// idct8 is the kernel the decoder calls: idct8Go, or idct8Asm where the
// CPU has one (idct8_amd64.go: the same bytes).
var idct8, idct8Asm = idct8Go, (func(*[64]int32, []byte, int))(nil)
