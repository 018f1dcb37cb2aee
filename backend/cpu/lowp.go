package cpu

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Low-precision inference: bfloat16 products summed in float32, or int8
// products summed in int32.
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
// kernel change. The kernel needs AVX-512 BF16; without it, below the
// AVX-512 level, or where it multiplies no faster than float32 (bf16Runs),
// Precision BF16 runs in float32 (EffectivePrecision says so).
//
// At Precision INT8 each filter row m (an output channel) is scaled to
// signed bytes once, w_q = round(w/s_w[m]) with s_w[m] = max|w[m,:]|/127,
// and each image is scaled to unsigned bytes as its columns are packed,
// x_q = round(x/s_x) + z: z = 0 and s_x = max(x)/255 when the image has
// no negative value (every ResNet convolution but the stem reads a ReLU's
// output), else z = 128 and s_x = max|x|/127. The scale is the image's own
// (dynamic quantisation: no calibration set, one min/max pass per image
// and layer). The kernel sums four byte products at a time into int32
// (VPDPBUSD, AVX-512 VNNI), a slot holding four k steps; the output is
// then y = s_w[m]·s_x·(Σ w_q·x_q − z·Σ w_q[m,:]), folded into the
// epilogue (convLoop.finish). The zero padding of an image quantises to z
// exactly. Without VNNI, or below the AVX-512 level, Precision INT8 runs
// in float32.

// Precision is the arithmetic of a frozen model's convolutions.
type Precision int32

const (
	FP32 Precision = iota // float32 throughout (the default)
	BF16                  // bfloat16 operands, float32 sums
	INT8                  // int8 filters, uint8 images, int32 sums
)

func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case BF16:
		return "bf16"
	case INT8:
		return "int8"
	}
	return "Precision(?)"
}

// bf16Kernel is the bfloat16 micro-kernel; its fn is nil where the CPU or
// build has none (addAsmKernels sets it).
var bf16Kernel = gemmKernel{name: "avx512-bf16 8x32", mr: 8, nr: 32, bf16: true}

// i8Kernel is the int8 micro-kernel; its fn is nil where the CPU or build
// has none.
var i8Kernel = gemmKernel{name: "avx512-vnni 8x32", mr: 8, nr: 32, i8: true}

// i8Ready is bf16Ready for the int8 kernel (AVX-512 VNNI).
func i8Ready() bool { return i8Kernel.fn != nil && ActiveLevel() == AVX512 }

// INT8Ready reports whether Precision INT8 runs on int8 kernels now.
func INT8Ready() bool { return i8Ready() }

// BF16Ready reports whether Precision BF16 runs on bfloat16 kernels now
// (see bf16Runs).
func BF16Ready() bool { return bf16Runs() }

// bf16Ready reports whether the bfloat16 kernel can run now: the CPU has
// it and the active level is AVX-512 (a test or DMLGO_SIMD that forces a
// lower level gets float32).
func bf16Ready() bool { return bf16Kernel.fn != nil && ActiveLevel() == AVX512 }

// bf16Runs reports whether Precision BF16 runs on the bfloat16 kernels:
// they can run, and DMLGO_BF16 (or SetBF16) asks for them (always) or
// leaves the choice to the CPU (auto, the default): then they run where
// they multiply at least bf16MinGain times as fast as the float32 kernel.
//
// The instruction is not as fast everywhere it exists. Zen 4 runs one
// VDPBF16PS (32 products) a cycle against one 16-wide float32 FMA, twice
// the rate; an Emerald Rapids Xeon runs two FMAs a cycle but one
// VDPBF16PS every other cycle, half the rate (measured: 177 against 89
// GFLOP/s a core, and ResNet-50 at 0.6× the speed of float32). There
// Precision BF16 runs in float32, and EffectivePrecision says why.
func bf16Runs() bool {
	return bf16Choose(WinogradMode(bf16Mode.Load()), bf16Ready(), bf16Gain)
}

// bf16Choose is bf16Runs's rule: gain is called only where it decides.
func bf16Choose(m WinogradMode, ready bool, gain func() float64) bool {
	switch {
	case !ready || m == WinogradNever:
		return false
	case m == WinogradAlways:
		return true
	}
	return gain() >= bf16MinGain
}

// bf16MinGain is the kernel speed-up below which Precision BF16 runs in
// float32 under auto: the packing rounds and the epilogue are the same,
// so a kernel only a little faster would not pay for the lost digits.
const bf16MinGain = 1.25

var (
	bf16Mode atomic.Int32
	bf16Note string // DMLGO_BF16's effect, for Describe

	bf16GainOnce sync.Once
	bf16GainVal  float64
)

// initBF16 sets the mode DMLGO_BF16 asks for.
func initBF16() { bf16Note = initMode("DMLGO_BF16", "bfloat16 kernels", &bf16Mode) }

// SetBF16 switches the bfloat16 kernels of every CPU backend to mode m
// (auto, never, always: as DMLGO_BF16) and returns what restores the
// mode before. Under always, Precision BF16 runs on them wherever they
// can run, however fast they are.
func SetBF16(m WinogradMode) (restore func()) {
	old := bf16Mode.Swap(int32(m))
	return func() { bf16Mode.Store(old) }
}

// bf16Gain is how many times as fast as the float32 micro-kernel the
// bfloat16 one multiplies on this CPU, measured once (about half a
// millisecond, the first time a BF16 choice is made): both kernels on
// the same tile in L1, in turn, the fastest of several tries of each, so
// that another process's load slows both alike.
func bf16Gain() float64 {
	bf16GainOnce.Do(func() { bf16GainVal = measureBF16Gain() })
	return bf16GainVal
}

func measureBF16Gain() float64 {
	f32 := kernels[AVX512].fn
	if bf16Kernel.fn == nil || f32 == nil {
		return 0
	}
	const kc, calls = 256, 32 // kc k steps: kc float32 slots, kc/2 bfloat16 ones
	a, b, c := make([]float32, 8*kc), make([]float32, 32*kc), make([]float32, 8*32)
	for i := range a {
		a[i] = 1.0 / 1024 // a pair of normal bfloat16 values as well
	}
	for i := range b {
		b[i] = 1.0 / 512
	}
	run := func(fn microKernel, slots int) time.Duration {
		t0 := time.Now()
		for range calls {
			fn(slots, a, b, c, 32, 1)
		}
		return time.Since(t0)
	}
	tf, tb := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 9 {
		tf = min(tf, run(f32, kc))
		tb = min(tb, run(bf16Kernel.fn, kc/2))
	}
	return float64(tf) / float64(max(tb, 1))
}

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

// packNarrow is cb.pack of one panel (nb ≤ nr columns from j0, kb deep
// from l0) for a low-precision kernel, converted as it is gathered
// (gatherPairsVec, gatherQuadsVec) instead of packed in float32 and then
// paired or quantised by q. Slots past nb are left zero (not the
// quantised zero quadRows gives them: their products only reach columns
// of C that are not stored). It reports false, having done nothing, where
// the vector kernels do not run.
func (cb *convB) packNarrow(kern gemmKernel, nr, kb, nb, l0, j0 int, dst []float32, q *quantB) bool {
	per := 2
	if kern.i8 {
		per = 4
	}
	if nr > 32 || kern.bf16 && !bf16Ready() || kern.i8 && !i8Ready() || !kern.bf16 && !kern.i8 {
		return false
	}
	rows := cb.rowOff[l0 : l0+kb]
	whole := kb / per * per
	d := dst[:nr*((kb+per-1)/per)]
	if nb < nr {
		clear(d)
	}
	for c := 0; c < nb; {
		n := min(cb.run[j0+c], nb-c)
		base := cb.colOff[j0+c]
		switch {
		case kern.i8 && cb.srcU8 != nil:
			if !gatherQuadsU8Vec(d[c:], nr, cb.srcU8, rows[:whole], cb.lo, cb.hi, base, n) {
				gatherQuadsU8(d[c:], nr, cb.srcU8, rows[:whole], base, n)
			}
		case kern.i8:
			gatherQuadsVec(d[c:], nr, cb.src, rows[:whole], cb.lo, cb.hi, base, n, q)
		default:
			gatherPairsVec(d[c:], nr, cb.src, rows[:whole], cb.lo, cb.hi, base, n)
		}
		if whole < kb {
			// The last rows: the slot's missing ones are zero.
			last := d[whole/per*nr+c:][:n]
			for t := range last {
				var v uint32
				for r, ro := range rows[whole:] {
					if cb.srcU8 != nil {
						v |= uint32(cb.srcU8[ro+base+t]) << (8 * r)
						continue
					}
					x := cb.src[ro+base+t]
					if kern.i8 {
						v |= quantU8(x, q) << (8 * r)
					} else {
						v |= uint32(roundBF16(x)) << (16 * r)
					}
				}
				last[t] = math.Float32frombits(v)
			}
		}
		c += n
	}
	return true
}

// i8Scale is what a filter packed as int8 needs besides its bytes: per
// row, the scale s_w and the sum of the quantised values.
type i8Scale struct {
	scale []float32
	sum   []int32
}

// quantB is an image's quantisation to unsigned bytes: x_q = cvt(x·inv) +
// zero, clamped to [0, 255], for x ≈ scale·(x_q − zero).
type quantB struct {
	inv, scale float32
	zero       int32
}

// quantFromRange chooses the quantisation of an image whose values span
// [lo, hi]: zero 0 over [0, hi] when it has no negative value, else zero
// 128 over [−max|x|, max|x|]. An image of zeros, or with a NaN or an
// infinity, gets scale 1 (its output is not meaningful in float32 either).
func quantFromRange(lo, hi float32) *quantB {
	q := &quantB{inv: 1, scale: 1}
	amax, levels := hi, float32(255)
	if lo < 0 {
		amax, levels, q.zero = max(-lo, hi), 127, 128
	}
	if amax > 0 && amax <= math.MaxFloat32 {
		q.scale = amax / levels
		q.inv = levels / amax
	}
	return q
}

// minMax is the smallest and largest value of x (0, 0 when it is empty).
func minMax(x []float32) (lo, hi float32) {
	if len(x) == 0 {
		return 0, 0
	}
	lo, hi = x[0], x[0]
	n, vlo, vhi := minMaxVec(x)
	if n > 0 {
		lo, hi = vlo, vhi
	}
	for _, v := range x[n:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// cvtRound is VCVTPS2DQ: x rounded to the nearest int32, ties to even;
// NaN and values out of range give math.MinInt32.
func cvtRound(x float32) int32 {
	r := math.RoundToEven(float64(x))
	if !(r >= math.MinInt32 && r <= math.MaxInt32) {
		return math.MinInt32
	}
	return int32(r)
}

// quantU8 is one value of an image in bytes under q.
func quantU8(x float32, q *quantB) uint32 {
	v := int64(cvtRound(x*q.inv)) + int64(q.zero)
	return uint32(min(max(v, 0), 255))
}

// quantU8Row is: for i, v := range x { y[i] = byte(quantU8(v, q)) }
func quantU8Row(x []float32, y []byte, q *quantB) {
	y = y[:len(x)]
	for i := quantU8RowVec(x, y, q); i < len(x); i++ {
		y[i] = byte(quantU8(x[i], q))
	}
}

// gatherQuadsU8 is gatherQuadsU8Vec's loop:
//
//	dst[q*ldd+j] = bits of Σ_r uint32(src[offs[4q+r]+base+j]) << 8r
//
// for q < len(offs)/4 and j < n.
func gatherQuadsU8(dst []float32, ldd int, src []byte, offs []int, base, n int) {
	for q := range len(offs) / 4 {
		d := dst[q*ldd : q*ldd+n]
		for j := range d {
			var v uint32
			for r, o := range offs[4*q : 4*q+4] {
				v |= uint32(src[o+base+j]) << (8 * r)
			}
			d[j] = math.Float32frombits(v)
		}
	}
}

// quadRows quantises kb rows of w values, lds apart (src[l*lds+j]), into
// (kb+3)/4 rows of unsigned byte quads: byte r of dst[p*w+j] is row 4p+r
// of column j (zero past kb).
func quadRows(src []float32, lds, w, kb int, dst []float32, q *quantB) {
	quads := kb / 4
	src, dst = src[:(kb-1)*lds+w], dst[:w*((kb+3)/4)]
	done := 0
	if w == 32 && quads > 0 {
		done = quadRowsVec(src, lds, quads, dst, q)
	}
	for p := done; p < (kb+3)/4; p++ {
		d := dst[p*w : (p+1)*w]
		for j := range d {
			var v uint32
			for r := 0; r < 4 && 4*p+r < kb; r++ {
				v |= quantU8(src[(4*p+r)*lds+j], q) << (8 * r)
			}
			d[j] = math.Float32frombits(v)
		}
	}
}

// quantizeRows scales each row of op(A) (m×k) to integers in [−127, 127]
// and returns them as a row-major m×k float32 matrix (leading dimension
// k), with the scales and the rows' sums.
func quantizeRows(trans bool, m, k int, a []float32, lda int) (*i8Scale, []float32, int) {
	at := func(i, l int) float32 {
		if trans {
			return a[l*lda+i]
		}
		return a[i*lda+l]
	}
	s := &i8Scale{scale: make([]float32, m), sum: make([]int32, m)}
	out := make([]float32, m*k)
	for i := 0; i < m; i++ {
		var amax float32
		for l := 0; l < k; l++ {
			amax = max(amax, float32(math.Abs(float64(at(i, l)))))
		}
		s.scale[i] = 1
		if amax > 0 && amax <= math.MaxFloat32 {
			s.scale[i] = amax / 127
		}
		inv := 1 / s.scale[i]
		for l := 0; l < k; l++ {
			v := max(-127, min(127, cvtRound(at(i, l)*inv)))
			out[i*k+l] = float32(v)
			s.sum[i] += v
		}
	}
	return s, out, k
}

// quadInts packs kb rows of w integer values (src[l*w+j], in [−128, 127])
// into (kb+3)/4 rows of signed byte quads, as quadRows lays them out.
func quadInts(src []float32, w, kb int, dst []float32) {
	for p := 0; p < (kb+3)/4; p++ {
		for j := 0; j < w; j++ {
			var v uint32
			for r := 0; r < 4 && 4*p+r < kb; r++ {
				v |= uint32(uint8(int8(src[(4*p+r)*w+j]))) << (8 * r)
			}
			dst[p*w+j] = math.Float32frombits(v)
		}
	}
}
