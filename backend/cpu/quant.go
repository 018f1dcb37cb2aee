package cpu

import (
	"fmt"
	"math"
)

// Compressed vectors: gallery rows stored as IEEE 754 binary16 (FP16) or
// as int8 with one scale per row, and the kernels that widen them back to
// float32 before the dot products. Encoding runs once per row added and is
// plain Go; decoding runs on every scan and hands whole vectors to the
// active level's assembly (decodeF16Vec, decodeI8Vec), finishing the tail
// with the Go loop it documents.
//
// n = len(src) (encode) or len(dst) (decode).

// EncodeF16 is: for i, v := range src { dst[i] = f32ToF16(v) }. Each value
// is rounded to the nearest binary16 (ties to even); magnitudes from 65520
// up become ±Inf, small ones keep binary16 subnormals, and a NaN stays a
// (quiet) NaN with the sign and the top 9 payload bits.
//
// src: (n), dst: (≥ n). It panics if dst is shorter than src.
func EncodeF16(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic(fmt.Sprintf("cpu: EncodeF16: dst has %d elements, src %d", len(dst), len(src)))
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = f32ToF16(v)
	}
}

// DecodeF16 is: for i := range dst { dst[i] = f16ToF32(src[i]) }, exact for
// every binary16 value (a signalling NaN comes back quiet, as x86 widens it).
//
// src: (≥ n), dst: (n). It panics if src is shorter than dst.
func DecodeF16(dst []float32, src []uint16) {
	if len(src) < len(dst) {
		panic(fmt.Sprintf("cpu: DecodeF16: src has %d elements, dst %d", len(src), len(dst)))
	}
	src = src[:len(dst)]
	for i := decodeF16Vec(src, dst); i < len(dst); i++ {
		dst[i] = f16ToF32(src[i])
	}
}

// EncodeI8 quantises src symmetrically to int8 with one scale:
//
//	scale = max|src[i]| / 127 (0 when every value is 0)
//	dst[i] = clamp(round(src[i] / scale), -127, 127)
//
// rounding half away from zero (the quotient taken in float64), so that
// float32(dst[i])*scale is within scale/2 of src[i]. Only finite values set
// the scale: ±Inf encodes as ±127 and NaN as 0.
//
// src: (n), dst: (≥ n). It panics if dst is shorter than src.
func EncodeI8(dst []int8, src []float32) (scale float32) {
	if len(dst) < len(src) {
		panic(fmt.Sprintf("cpu: EncodeI8: dst has %d elements, src %d", len(dst), len(src)))
	}
	dst = dst[:len(src)]
	var m float32
	for _, v := range src {
		if a := float32(math.Abs(float64(v))); a > m && a <= math.MaxFloat32 {
			m = a
		}
	}
	scale = m / 127
	if scale == 0 {
		clear(dst)
		return 0
	}
	s := float64(scale)
	for i, v := range src {
		q := math.Round(float64(v) / s) // NaN for NaN, ±Inf for ±Inf
		switch {
		case q >= 127:
			dst[i] = 127
		case q <= -127:
			dst[i] = -127
		case q == q:
			dst[i] = int8(q)
		default:
			dst[i] = 0
		}
	}
	return scale
}

// DecodeI8 is: for i := range dst { dst[i] = float32(src[i]) * scale }
// (one rounding per element, the same at every level).
//
// src: (≥ n), dst: (n). It panics if src is shorter than dst.
func DecodeI8(dst []float32, src []int8, scale float32) {
	if len(src) < len(dst) {
		panic(fmt.Sprintf("cpu: DecodeI8: src has %d elements, dst %d", len(src), len(dst)))
	}
	src = src[:len(dst)]
	for i := decodeI8Vec(scale, src, dst); i < len(dst); i++ {
		dst[i] = float32(src[i]) * scale
	}
}

// f16ToF32 widens binary16 h (sign 1, exponent 5, mantissa 10 bits) to
// float32, exactly. A NaN keeps its sign and payload and comes back quiet
// (mantissa bit 22 set), as VCVTPH2PS returns it.
func f16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f && mant != 0: // NaN
		return math.Float32frombits(sign | 0x7fc00000 | mant<<13)
	case exp == 0x1f: // ±Inf
		return math.Float32frombits(sign | 0x7f800000)
	case exp == 0 && mant == 0: // ±0
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant·2^-24, exact (and normal) in float32
		return math.Float32frombits(sign | math.Float32bits(float32(mant)*0x1p-24))
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// f32ToF16 rounds float32 f to the nearest binary16, ties to even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13) // NaN, quiet
		}
		return sign | 0x7c00 // ±Inf
	}
	he := exp - 127 + 15 // binary16 biased exponent
	switch {
	case he >= 0x1f: // ≥ 65536
		return sign | 0x7c00
	case he >= 1: // normal: drop 13 bits; a carry may reach the exponent (65520 → Inf)
		r := uint32(he)<<10 | mant>>13
		return sign | uint16(roundEven(r, mant&0x1fff, 13))
	case he >= -10: // subnormal (or the smallest normal, after rounding up)
		m := mant | 0x800000 // value = m·2^(exp-150); units of 2^-24: m >> (126-exp)
		shift := uint(14 - he)
		return sign | uint16(roundEven(m>>shift, m&(1<<shift-1), shift))
	}
	return sign // below 2^-25: ±0 (float32 subnormals included)
}

// roundEven rounds r, whose dropped low bits were rem (shift of them), to
// nearest, ties to even.
func roundEven(r, rem uint32, shift uint) uint32 {
	half := uint32(1) << (shift - 1)
	if rem > half || rem == half && r&1 == 1 {
		r++
	}
	return r
}
