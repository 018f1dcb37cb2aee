package cpu

import "math"

// Low-precision inference: bfloat16 products summed in float32.
//
// A convolution of a frozen model (FreezeWeights) at Precision BF16 packs
// its filters once as bfloat16, and each packed panel of the image's
// columns is rounded to bfloat16 as it is packed. The micro-kernel
// multiplies pairs of bfloat16 values and adds both products to float32
// accumulators (VDPBF16PS), so a 32-bit slot of a panel holds two k steps:
//
//	slot p of a row (or column) = bf16(x[2p]) | bf16(x[2p+1])<<16
//
// with a zero in the upper half when k is odd. Everything else (blocking,
// threads, the epilogue) is the float32 GEMM's; only packing and the
// kernel change. The kernel needs AVX-512 BF16; without it, or below the
// AVX-512 level, Precision BF16 runs in float32 (EffectivePrecision says
// so).

// Precision is the arithmetic of a frozen model's convolutions.
type Precision int32

const (
	FP32 Precision = iota // float32 throughout (the default)
	BF16                  // bfloat16 operands, float32 sums
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case BF16:
		return "bf16"
	}
	return "Precision(?)"
}

// bf16Kernel is the bfloat16 micro-kernel; its fn is nil where the CPU or
// build has none (addAsmKernels sets it).
var bf16Kernel = gemmKernel{name: "avx512-bf16 8x32", mr: 8, nr: 32, bf16: true}

// BF16Ready reports whether Precision BF16 runs on bfloat16 kernels now
// (see bf16Ready).
func BF16Ready() bool { return bf16Ready() }

// bf16Ready reports whether BF16 convolutions can run on the bfloat16
// kernel now: the CPU has it and the active level is AVX-512 (a test or
// DMLGO_SIMD that forces a lower level gets float32).
func bf16Ready() bool { return bf16Kernel.fn != nil && ActiveLevel() == AVX512 }

// roundBF16 is x rounded to bfloat16 the way VCVTNEPS2BF16 rounds: to
// nearest, ties to even; denormals become zero of the same sign; a NaN
// stays a NaN (made quiet).
func roundBF16(x float32) uint16 {
	b := math.Float32bits(x)
	switch {
	case b&0x7f800000 == 0: // zero or denormal
		return uint16(b>>16) & 0x8000
	case b&0x7fffffff > 0x7f800000: // NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// bf16Float is the float32 value of a bfloat16.
func bf16Float(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// pairRows rounds kb rows of w float32 values, lds apart (src[l*lds+j]),
// into (kb+1)/2 rows of bfloat16 pairs (dst[p*w+j] holds rows 2p and
// 2p+1 of column j, as bits).
func pairRows(src []float32, lds, w, kb int, dst []float32) {
	pairs := kb / 2
	src, dst = src[:(kb-1)*lds+w], dst[:w*((kb+1)/2)]
	done := 0
	if w == 32 && pairs > 0 {
		done = pairRowsVec(src, lds, pairs, dst)
	}
	for p := done; p < pairs; p++ {
		lo, hi := src[2*p*lds:2*p*lds+w], src[(2*p+1)*lds:(2*p+1)*lds+w]
		d := dst[p*w : (p+1)*w]
		for j := range d {
			d[j] = math.Float32frombits(uint32(roundBF16(lo[j])) | uint32(roundBF16(hi[j]))<<16)
		}
	}
	if kb%2 == 1 {
		lo := src[(kb-1)*lds : (kb-1)*lds+w]
		d := dst[pairs*w : (pairs+1)*w]
		for j := range d {
			d[j] = math.Float32frombits(uint32(roundBF16(lo[j])))
		}
	}
}
