//go:build amd64 && !noasm

package cpu

import "golang.org/x/sys/cpu"

// Feature sets, exactly as the assembly uses them: the AVX2 level's code
// needs AVX2 and FMA; the AVX-512 level's needs AVX-512 F and, for the
// horizontal sums and VZEROUPPER, AVX (VEX-encoded 128/256-bit forms).
// x/sys/cpu reports a feature only when the OS also saves its registers.
var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX
	// hasAVX512VL: the column kernels (gemmKernel.cols) use YMM16–31 and
	// EVEX-encoded YMM operations; AVX-512 F without VL (Xeon Phi) runs
	// the edge kernels instead.
	hasAVX512VL = hasAVX512 && cpu.X86.HasAVX512VL
)

// addAsmKernels registers the assembly micro-kernels this CPU can run.
//
// AVX-512 is the default where present: on the Zen 5 EPYC this was tuned on
// it runs the SGEMM at about twice the AVX2 speed (two 512-bit FMA pipes),
// see BenchmarkSgemm. On CPUs that lower the clock for 512-bit code the
// difference is smaller; DMLGO_SIMD=avx2 forces the other kernels.
func addAsmKernels(k map[Level]gemmKernel) {
	if hasAVX2 {
		k[AVX2] = gemmKernel{name: "avx2 6x16", mr: 6, nr: 16, fn: gemmKernelAVX2, set: gemmKernelAVX2Set, packRows: packRowsAVX2}
	}
	if hasAVX512 {
		k[AVX512] = gemmKernel{name: "avx512 8x32", mr: 8, nr: 32, fn: gemmKernelAVX512, set: gemmKernelAVX512Set,
			edge: gemmKernelAVX512Edge, halfEdge: gemmKernelAVX512HalfEdge, packRows: packRowsAVX512}
		if hasAVX512VL {
			k512 := k[AVX512]
			k512.cols = [2][colsMax]colsKernel{
				{gemmKernelAVX512Cols1x1, gemmKernelAVX512Cols1x2, gemmKernelAVX512Cols1x3, gemmKernelAVX512Cols1x4},
				{gemmKernelAVX512Cols4x1, gemmKernelAVX512Cols4x2, gemmKernelAVX512Cols4x3, gemmKernelAVX512Cols4x4}}
			k[AVX512] = k512
		}
	}
	if hasBF16 {
		bf16Kernel.fn, bf16Kernel.set, bf16Kernel.edge, bf16Kernel.packRows = gemmKernelBF16, gemmKernelBF16Set, gemmKernelBF16Edge, packRowsAVX512
		bf16Kernel.halfEdge = gemmKernelBF16HalfEdge
		if hasAVX512VL {
			bf16Kernel.cols = [2][colsMax]colsKernel{
				{gemmKernelBF16Cols1x1, gemmKernelBF16Cols1x2, gemmKernelBF16Cols1x3, gemmKernelBF16Cols1x4},
				{gemmKernelBF16Cols4x1, gemmKernelBF16Cols4x2, gemmKernelBF16Cols4x3, gemmKernelBF16Cols4x4}}
		}
	}
	if hasVNNI {
		i8Kernel.fn, i8Kernel.set, i8Kernel.edge, i8Kernel.packRows = gemmKernelI8, gemmKernelI8Set, gemmKernelI8Edge, packRowsAVX512
		i8Kernel.halfEdge = gemmKernelI8HalfEdge
		if hasAVX512VL {
			i8Kernel.cols = [2][colsMax]colsKernel{
				{gemmKernelI8Cols1x1, gemmKernelI8Cols1x2, gemmKernelI8Cols1x3, gemmKernelI8Cols1x4},
				{gemmKernelI8Cols4x1, gemmKernelI8Cols4x2, gemmKernelI8Cols4x3, gemmKernelI8Cols4x4}}
		}
	}
}

// checkPack panics unless src and dst hold what a rowPacker touches.
func checkPack(src []float32, lds, rows, kb int, dst []float32, ldd int) {
	if rows < 1 || kb < 1 || rows > ldd || len(src) < (rows-1)*lds+kb || len(dst) < (kb-1)*ldd+rows {
		panic("cpu: pack: slices too short")
	}
}

// packRowsAVX512 is packRowsGo with 16×16 register transposes.
func packRowsAVX512(src []float32, lds, rows, kb int, dst []float32, ldd int) {
	checkPack(src, lds, rows, kb, dst, ldd)
	for r0 := 0; r0 < rows; r0 += 16 {
		packT16AVX512(src[r0*lds:], lds, min(16, rows-r0), kb, dst[r0:], ldd)
	}
	if k16 := kb &^ 15; k16 < kb {
		packRowsGo(src[k16:], lds, rows, kb-k16, dst[k16*ldd:], ldd)
	}
}

// packRowsAVX2 is packRowsGo with 8×8 register transposes, for 8, 6 or 4
// rows at a time.
func packRowsAVX2(src []float32, lds, rows, kb int, dst []float32, ldd int) {
	checkPack(src, lds, rows, kb, dst, ldd)
	k8 := kb &^ 7
	for r0 := 0; r0 < rows; r0 += 8 {
		r := min(8, rows-r0)
		s, d := src[r0*lds:], dst[r0:]
		switch r {
		case 8:
			packT8x8AVX2(s, lds, kb, d, ldd)
		case 6:
			packT8x6AVX2(s, lds, kb, d, ldd)
		case 4:
			packT8x4AVX2(s, lds, kb, d, ldd)
		default:
			packRowsGo(s, lds, r, kb, d, ldd)
			continue
		}
		if k8 < kb {
			packRowsGo(s[k8:], lds, r, kb-k8, d[k8*ldd:], ldd)
		}
	}
}

// vecLen is how much of an n-element slice the elementwise kernels of
// level l take: whole vectors (0 for the generic level).
func vecLen(l Level, n int) int {
	switch l {
	case AVX512:
		return n &^ 15
	case AVX2:
		return n &^ 7
	}
	return 0
}

// The *Vec functions run the active level's elementwise kernel over the
// longest whole-vector prefix of the slices and return its length; the
// caller finishes the slice in Go. y (and z) are at least as long as x.

func axpyVec(a float32, x, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		axpyAVX512(a, x[:n], y[:n])
	} else {
		axpyAVX2(a, x[:n], y[:n])
	}
	return n
}

func scaleVec(a float32, x, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		scaleAVX512(a, x[:n], y[:n])
	} else {
		scaleAVX2(a, x[:n], y[:n])
	}
	return n
}

func affineVec(a, c float32, x, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		affineAVX512(a, c, x[:n], y[:n])
	} else {
		affineAVX2(a, c, x[:n], y[:n])
	}
	return n
}

func affineReluVec(a, c float32, x, y []float32) (n int, hi float32) {
	l := ActiveLevel()
	n = vecLen(l, len(x))
	if n == 0 {
		return 0, 0
	}
	if l == AVX512 {
		return n, affineReluAVX512(a, c, x[:n], y[:n])
	}
	return n, affineReluAVX2(a, c, x[:n], y[:n])
}

func affineAddReluVec(a, c float32, x, z, y []float32) (n int, hi float32) {
	l := ActiveLevel()
	n = vecLen(l, len(x))
	if n == 0 {
		return 0, 0
	}
	if l == AVX512 {
		return n, affineAddReluAVX512(a, c, x[:n], z[:n], y[:n])
	}
	return n, affineAddReluAVX2(a, c, x[:n], z[:n], y[:n])
}

func sgdMomentumVec(lr, wd, mu, c float32, w, g, m []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(w))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		sgdMomentumAVX512(lr, wd, mu, c, w[:n], g[:n], m[:n])
	} else {
		sgdMomentumAVX2(lr, wd, mu, c, w[:n], g[:n], m[:n])
	}
	return n
}

func addVec(x, z, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		addAVX512(x[:n], z[:n], y[:n])
	} else {
		addAVX2(x[:n], z[:n], y[:n])
	}
	return n
}

func mulVec(x, z, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		mulAVX512(x[:n], z[:n], y[:n])
	} else {
		mulAVX2(x[:n], z[:n], y[:n])
	}
	return n
}

func reluVec(x, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		reluAVX512(x[:n], y[:n])
	} else {
		reluAVX2(x[:n], y[:n])
	}
	return n
}

func reluBackwardVec(x, z, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(x))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		reluBackwardAVX512(x[:n], z[:n], y[:n])
	} else {
		reluBackwardAVX2(x[:n], z[:n], y[:n])
	}
	return n
}

func bnDxVec(p, q, r, m float32, d, x, y []float32) int {
	l := ActiveLevel()
	n := vecLen(l, len(d))
	if n == 0 {
		return 0
	}
	if l == AVX512 {
		bnDxAVX512(p, q, r, m, d[:n], x[:n], y[:n])
	} else {
		bnDxAVX2(p, q, r, m, d[:n], x[:n], y[:n])
	}
	return n
}

func bnSumsVec(m float32, d, x []float32) (n int, sd, sdx float32) {
	l := ActiveLevel()
	n = vecLen(l, len(d))
	if n == 0 {
		return 0, 0, 0
	}
	if l == AVX512 {
		sd, sdx = bnSumsAVX512(m, d[:n], x[:n])
	} else {
		sd, sdx = bnSumsAVX2(m, d[:n], x[:n])
	}
	return n, sd, sdx
}

func sum64Vec(x []float32) (n int, s float64) {
	l := ActiveLevel()
	n = vecLen(l, len(x))
	if n == 0 {
		return 0, 0
	}
	if l == AVX512 {
		return n, sum64AVX512(x[:n])
	}
	return n, sum64AVX2(x[:n])
}

func sumSqDev64Vec(m float64, x []float32) (n int, s float64) {
	l := ActiveLevel()
	n = vecLen(l, len(x))
	if n == 0 {
		return 0, 0
	}
	if l == AVX512 {
		return n, sumSqDev64AVX512(m, x[:n])
	}
	return n, sumSqDev64AVX2(m, x[:n])
}

// gatherRowsVec is, when the active level has vectors and n is a multiple
// of 8 (at the AVX-512 level also any n ≤ 32): for l, o := range offs { copy(dst[l*ldd:l*ldd+n], src[o+base:o+base+n]) }.
// It reports false, having done nothing, otherwise. lo and hi bound the
// entries of offs (convB keeps them for its tables): it panics, before
// touching memory, when a row within them would fall outside src or dst.
func gatherRowsVec(dst []float32, ldd int, src []float32, offs []int, lo, hi, base, n int) bool {
	l := ActiveLevel()
	if l == Generic || n == 0 || len(offs) == 0 || n%8 != 0 && (l != AVX512 || n > 32) {
		return false
	}
	if lo+base < 0 || hi+base+n > len(src) || ldd < n || (len(offs)-1)*ldd+n > len(dst) {
		panic("cpu: gatherRows: slices too short")
	}
	if l == AVX512 && n <= 32 {
		gatherRowsAVX512(dst, ldd, src, offs, base, n)
		return true
	}
	gatherRowsAVX2(dst, ldd, src, offs, base, n/8)
	return true
}

// packRowsOffVec is packRowsGo for rows at the element offsets offs (for
// r < len(offs), l < kb: dst[l*ldd+r] = src[offs[r]+l]) with register
// transposes: at the AVX-512 level every row, kb&^15 columns; at the AVX2
// level whole groups of 8 rows, kb&^7 columns. It returns how many rows and
// columns it packed (0, 0 at the generic level); the caller packs the
// rest. It panics (before touching memory) when a row would fall outside
// src or dst.
func packRowsOffVec(src []float32, offs []int, kb int, dst []float32, ldd int) (rows, cols int) {
	switch l := ActiveLevel(); {
	case l == AVX512:
		rows, cols = len(offs), kb&^15
	case l == AVX2:
		rows, cols = len(offs)&^7, kb&^7
	}
	if rows == 0 || cols == 0 {
		return 0, 0
	}
	lo, hi := offs[0], offs[0]
	for _, o := range offs[1:] {
		lo, hi = min(lo, o), max(hi, o)
	}
	if lo < 0 || hi+cols > len(src) || len(offs) > ldd || (cols-1)*ldd+len(offs) > len(dst) {
		panic("cpu: packRowsOff: slices too short")
	}
	if ActiveLevel() == AVX2 {
		for r0 := 0; r0 < rows; r0 += 8 {
			packT8OffAVX2(src, (*[8]int)(offs[r0:]), cols, dst[r0:], ldd)
		}
		return rows, cols
	}
	for r0 := 0; r0 < rows; r0 += 16 {
		n := min(16, rows-r0)
		var t [16]int
		for i := range t {
			t[i] = offs[r0+min(i, n-1)]
		}
		packT16OffAVX512(src, &t, n, cols, dst[r0:], ldd)
	}
	return rows, cols
}

// hasBF16 gates the bfloat16 kernels (VDPBF16PS, VCVTNEPS2BF16; their
// pairing widens words with VPMOVZXWD, an AVX-512 BW instruction, so BW
// is asked for too: every CPU with BF16 so far has it).
var hasBF16 = hasAVX512 && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512BF16

// pairRowsVec pairs the first `pairs` pairs of 32-wide rows (lds apart)
// with the AVX-512 BF16 converter when it may run, and returns how many it
// did.
func pairRowsVec(src []float32, lds, pairs int, dst []float32) int {
	if !bf16Ready() {
		return 0
	}
	if lds < 32 || len(src) < (2*pairs-1)*lds+32 || len(dst) < pairs*32 {
		panic("cpu: pairRows: slices too short")
	}
	pairBF16AVX512(src, lds, pairs, dst)
	return pairs
}

// gatherPairsVec is, when the bfloat16 kernel may run and 1 ≤ n ≤ 32,
// gatherRowsVec of the rows offs (an even number of them) into a float32
// buffer followed by pairRows of it, in one pass: n bfloat16 pairs a row
// pair, ldd apart in dst. lo and hi bound offs. It reports false, having
// done nothing, where it does not apply.
func gatherPairsVec(dst []float32, ldd int, src []float32, offs []int, lo, hi, base, n int) bool {
	pairs := len(offs) / 2
	if !bf16Ready() || n < 1 || n > 32 || pairs == 0 || len(offs)%2 != 0 {
		return false
	}
	if lo+base < 0 || hi+base+n > len(src) || ldd < n || (pairs-1)*ldd+n > len(dst) {
		panic("cpu: gatherPairs: slices too short")
	}
	gatherPairsAVX512(dst, ldd, src, offs, base, n, pairs)
	return true
}

// gatherQuadsVec is gatherPairsVec for the int8 kernel: n unsigned byte
// quads (quantised by q) a group of four rows offs, ldd apart in dst.
func gatherQuadsVec(dst []float32, ldd int, src []float32, offs []int, lo, hi, base, n int, q *quantB) bool {
	quads := len(offs) / 4
	if !i8Ready() || n < 1 || n > 32 || quads == 0 || len(offs)%4 != 0 {
		return false
	}
	if lo+base < 0 || hi+base+n > len(src) || ldd < n || (quads-1)*ldd+n > len(dst) {
		panic("cpu: gatherQuads: slices too short")
	}
	gatherQuadsAVX512(dst, ldd, src, offs, base, n, quads, q.inv, q.zero)
	return true
}

// gatherQuadsU8Vec is gatherQuadsVec from an image quantised to bytes
// already. src must hold 16 bytes past each row's n (hi+base+n rounded
// up to 16): the loads take 16 bytes at a time.
func gatherQuadsU8Vec(dst []float32, ldd int, src []byte, offs []int, lo, hi, base, n int) bool {
	quads := len(offs) / 4
	if !i8Ready() || n < 1 || n > 32 || quads == 0 || len(offs)%4 != 0 {
		return false
	}
	if lo+base < 0 || hi+base+(n+15)&^15 > len(src) || ldd < n || (quads-1)*ldd+n > len(dst) {
		panic("cpu: gatherQuadsU8: slices too short")
	}
	gatherQuadsU8AVX512(dst, ldd, src, offs, base, n, quads)
	return true
}

// quantU8RowVec quantises the longest prefix of whole 16-value vectors of
// x into y at the AVX-512 level and returns its length.
func quantU8RowVec(x []float32, y []byte, q *quantB) int {
	n := len(x) &^ 15
	if ActiveLevel() != AVX512 || n == 0 {
		return 0
	}
	if len(y) < n {
		panic("cpu: quantU8Row: y too short")
	}
	quantU8RowAVX512(x[:n], y[:n], q.inv, q.zero)
	return n
}

// hasVNNI gates the int8 kernel (VPDPBUSD).
var hasVNNI = hasAVX512 && cpu.X86.HasAVX512VNNI

// quadRowsVec quantises the first `quads` quads of 32-wide rows (lds
// apart) with the AVX-512 kernel when the int8 path may run, and returns
// how many it did.
func quadRowsVec(src []float32, lds, quads int, dst []float32, q *quantB) int {
	if !i8Ready() {
		return 0
	}
	if lds < 32 || len(src) < (4*quads-1)*lds+32 || len(dst) < quads*32 {
		panic("cpu: quadRows: slices too short")
	}
	quadU8AVX512(src, lds, quads, dst, q.inv, q.zero)
	return quads
}

// splitRowsVec is: for r < rows, k < n: even[r·ldd+k], odd[r·ldd+k] =
// src[r·lds+2k], src[r·lds+2k+1], at the AVX-512 level; it reports
// whether it did them (else it did nothing).
func splitRowsVec(src []float32, lds, n, rows int, even, odd []float32, ldd int) bool {
	if ActiveLevel() != AVX512 || n == 0 || rows == 0 {
		return false
	}
	if n < 0 || rows < 0 || lds < 0 || ldd < 0 ||
		len(src) < (rows-1)*lds+2*n || len(even) < (rows-1)*ldd+n || len(odd) < (rows-1)*ldd+n {
		panic("cpu: splitRows: slices too short")
	}
	splitRowsAVX512(src, lds, n, rows, even, odd, ldd)
	return true
}

// maxPool3x3s2Vec runs max3x3's stride-2 loop at the AVX-512 level for
// whole groups of 16 windows: window i spans columns 2i−clip … 2i+2−clip
// of rows x[0:], x[w1:], x[w2:] (w1 ≤ w2; clip 0, or 1 for a first window
// that starts at column −1, outside the plane: never read, see
// maxPool3x3s2AVX512). It returns how many windows it did: the groups
// whose loads (w2 + 34 values from each group's first column, that of
// a clipped group included) stay inside x.
func maxPool3x3s2Vec(x []float32, w1, w2, clip int, y, arg []float32, base int) int {
	if ActiveLevel() != AVX512 || w1 > w2 {
		return 0
	}
	groups := min(len(y)/16, (len(x)+clip-w2-34)/32+1)
	if len(x)+clip < w2+34 || groups <= 0 {
		return 0
	}
	if len(arg) < 16*groups {
		panic("cpu: maxPool3x3s2: arg too short")
	}
	maxPool3x3s2AVX512(x, w1, w2, groups, y, arg, base, clip)
	return 16 * groups
}

// minMaxVec is minMax over the longest prefix of whole 16-value vectors
// at the AVX-512 level: its length and the result (0 when it did nothing).
func minMaxVec(x []float32) (n int, lo, hi float32) {
	if ActiveLevel() != AVX512 || len(x) < 16 {
		return 0, 0, 0
	}
	n = len(x) &^ 15
	lo, hi = minMaxAVX512(x[:n])
	return n, lo, hi
}

// wgInputVec runs wgInputGo at the AVX-512 level and reports whether it
// did.
func wgInputVec(src []float32, wpe, pl, chunks int, dst []float32, xs, kb int) bool {
	if ActiveLevel() != AVX512 {
		return false
	}
	if chunks <= 0 {
		return true
	}
	if len(src) < 3*pl+16*chunks+wpe+1 || len(dst) < wgInputSpan(chunks, xs, kb) {
		panic("cpu: wgInput: slices too short")
	}
	wgInputAVX512(src, wpe, pl, chunks, dst, xs, kb)
	return true
}

// wgInputPairVec runs wgInputPairGo through its kernel where the
// bfloat16 kernels may run, and reports whether it did.
func wgInputPairVec(src []float32, wpe, pl, chunks int, dst []float32, xs, kd int, hi bool) bool {
	if !bf16Ready() {
		return false
	}
	if chunks <= 0 {
		return true
	}
	if len(src) < 3*pl+16*chunks+wpe+1 || len(dst) < wgInputSpan(chunks, xs, kd) {
		panic("cpu: wgInputPair: slices too short")
	}
	wgInputPairAVX512(src, wpe, pl, chunks, dst, xs, kd, hi)
	return true
}

// wgOutputVec runs wgOutputGo at the AVX-512 level and reports whether it
// did.
func wgOutputVec(m []float32, ms, n int, y0, y1 []float32, q int) bool {
	if ActiveLevel() != AVX512 {
		return false
	}
	if n <= 0 {
		return true
	}
	if len(m) < 15*ms+n || len(y0) < q || (y1 != nil && len(y1) < q) || q > 2*n {
		panic("cpu: wgOutput: slices too short")
	}
	wgOutputAVX512(m, ms, n, y0, y1, q)
	return true
}

// wgGradVec runs wgGradGo at the AVX-512 level and reports whether it
// did.
func wgGradVec(dy0, dy1 []float32, q, n int, e []float32, es int) bool {
	if ActiveLevel() != AVX512 {
		return false
	}
	if n <= 0 {
		return true
	}
	if len(dy0) < q || (dy1 != nil && len(dy1) < q) || len(e) < 15*es+n {
		panic("cpu: wgGrad: slices too short")
	}
	wgGradAVX512(dy0, dy1, q, n, e, es)
	return true
}

// wgRowKernels are the output transform and the output gradient's
// transform at the active level, for loops that call them once a row of
// tiles and keep their slices long enough (the bounds wgOutputVec and
// wgGradVec check).
func wgRowKernels() (out func(m []float32, ms, n int, y0, y1 []float32, q int), grad func(dy0, dy1 []float32, q, n int, e []float32, es int)) {
	if ActiveLevel() == AVX512 {
		return wgOutputAVX512, wgGradAVX512
	}
	return wgOutputGo, wgGradGo
}

// lanesTileVec runs lanesTileGo through its kernel where it may run
// (AVX-512; AVX-512 BF16 with bf16) and reports whether it did
// (lanesTile has checked the lengths).
func lanesTileVec(bf16 bool, stride int, x, w, out []float32, nc, chs, row, ldo int, add bool) bool {
	kernel := convLanes3x3S1AVX512
	switch {
	case bf16 && !bf16Ready(), !bf16 && ActiveLevel() != AVX512:
		return false
	case bf16 && stride == 1:
		kernel = convLanes3x3S1BF16
	case bf16:
		kernel = convLanes3x3S2BF16
	case stride == 2:
		kernel = convLanes3x3S2AVX512
	}
	kernel(&x[0], &w[0], &out[0], nc, chs, row, ldo, add)
	return true
}

// pairSpansVec runs pairSpansGo where the bfloat16 kernels may run and
// reports whether it did.
func pairSpansVec(src []float32, n, pairs int, dst []float32) bool {
	if !bf16Ready() {
		return false
	}
	if len(src) < 2*n*pairs || len(dst) < n*pairs {
		panic("cpu: pairSpans: slices too short")
	}
	if n > 0 && pairs > 0 {
		pairSpansBF16(src, n, pairs, n/16, uint16(1)<<(n%16)-1, dst)
	}
	return true
}

// copyRowsVec is copyRows at the active level for w = 32, 16 or 8 (the
// panel widths of the AVX-512 and AVX2 kernels). It reports false, having
// done nothing, for other widths and below AVX2.
func copyRowsVec(src []float32, lds, w, kb int, dst []float32) bool {
	l := ActiveLevel()
	if l < AVX2 || kb < 1 || (w == 32 && l != AVX512) || (w != 32 && w != 16 && w != 8) {
		return false
	}
	if len(src) < (kb-1)*lds+w || len(dst) < kb*w {
		panic("cpu: copyRows: slices too short")
	}
	switch {
	case w == 32:
		copyRows32AVX512(src, lds, kb, dst)
	case w == 16 && l == AVX512:
		copyRows16AVX512(src, lds, kb, dst)
	case w == 16:
		copyRows16AVX2(src, lds, kb, dst)
	default:
		copyRows8AVX2(src, lds, kb, dst)
	}
	return true
}

// dotRowsReady reports whether dotRows has its kernel: the AVX-512 level.
func dotRowsReady() bool { return ActiveLevel() == AVX512 }

// dotRows is dotRowsAVX512 (see there), its slices checked first: it
// panics, before touching memory, when a value it would read or write
// lies outside them.
func dotRows(kb int, a []float32, lda, m int, b []float32, ldb int, c []float32, ldc, n int, alpha float32, set bool) {
	if kb < 16 || kb%16 != 0 || m < 1 || m > 4 || n < 1 || n > 16 ||
		(m-1)*lda+kb > len(a) || 15*ldb+kb > len(b) || (m-1)*ldc+n > len(c) {
		panic("cpu: dotRows: slices too short")
	}
	dotRowsAVX512(kb, a, lda, m, b, ldb, c, ldc, n, alpha, set)
}

// wg4InputVec runs wg4InputGo at the AVX-512 level and reports whether
// it did.
func wg4InputVec(src []float32, wpe, pl, chunks int, dst []float32, xs, kb int) bool {
	if ActiveLevel() != AVX512 {
		return false
	}
	if chunks <= 0 {
		return true
	}
	if len(src) < 15*pl+16*chunks+wpe+1 || len(dst) < wg4InputSpan(chunks, xs, kb) {
		panic("cpu: wg4Input: slices too short")
	}
	wg4InputAVX512(src, wpe, pl, chunks, dst, xs, kb)
	return true
}

// wg4OutputVec runs wg4OutputGo at the AVX-512 level and reports whether
// it did.
func wg4OutputVec(m []float32, ms, n int, y *[4][]float32, q int) bool {
	if ActiveLevel() != AVX512 {
		return false
	}
	if n <= 0 {
		return true
	}
	if len(m) < 35*ms+(n+15)/16*16 || q > 4*n {
		panic("cpu: wg4Output: slices too short")
	}
	for _, row := range y {
		if row != nil && len(row) < q {
			panic("cpu: wg4Output: slices too short")
		}
	}
	wg4OutputAVX512(m, ms, n, y[0], y[1], y[2], y[3], q)
	return true
}

// split4RowsVec runs phased.fill's column stride 4 for rows of w values
// (lds apart) at the AVX-512 level and reports whether it did: for each
// row r and m < 4, d[m][r·ldd + k] = src[r·lds + 4k + m] for 4k + m < w.
func split4RowsVec(src []float32, lds, w, rows int, d *[4][]float32, ldd int) bool {
	if ActiveLevel() != AVX512 || w <= 0 || rows <= 0 {
		return false
	}
	if lds < 0 || ldd < 0 || len(src) < (rows-1)*lds+w {
		panic("cpu: split4Rows: slices too short")
	}
	for m, dm := range d {
		if n := (w - m + 3) / 4; n > 0 && len(dm) < (rows-1)*ldd+n {
			panic("cpu: split4Rows: slices too short")
		}
	}
	split4RowsAVX512(src, lds, w, rows, d[0], d[1], d[2], d[3], ldd)
	return true
}
