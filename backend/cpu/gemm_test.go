package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
)

// The SGEMM tests compare every SIMD level's kernels with plain loops and
// the whole sgemm with refGemm, the oracle. Outputs live inside larger
// buffers whose other cells hold a sentinel NaN that must come back
// bit-identical, so a write out of bounds fails the test.

// sentinel is a NaN with a payload no arithmetic produces.
var sentinel = math.Float32frombits(0x7fc0dead)

func isSentinel(v float32) bool { return math.Float32bits(v) == 0x7fc0dead }

// forEachLevel runs f once per SIMD level this machine and build support,
// with that level active.
func forEachLevel(t *testing.T, f func(t *testing.T, l Level)) {
	t.Helper()
	for _, l := range Supported() {
		t.Run(l.String(), func(t *testing.T) {
			restore, err := SetLevel(l)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			f(t, l)
		})
	}
}

// withBlocking sets the GEMM block sizes until the returned function runs.
func withBlocking(mc, kc, nc int) (restore func()) {
	saved := blk
	blk.mc, blk.kc, blk.nc = mc, kc, nc
	return func() { blk = saved }
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 2*r.Float32() - 1
	}
	return s
}

// eps32 is the float32 unit roundoff.
const eps32 = 1.0 / (1 << 24)

func TestGemmMicroKernels(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		k := kernels[l]
		r := rand.New(rand.NewPCG(1, uint64(l)))
		mr, nr := k.mr, k.nr
		kcs := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 64, 255, 256, 257, 513}
		for _, kc := range kcs {
			a, b := randSlice(r, kc*mr), randSlice(r, kc*nr)
			alpha := float32(0.75)
			// The tile sits at row 1, column 3 of a buffer with ldc = NR+5,
			// one spare row below it.
			ldc := nr + 5
			buf := make([]float32, (mr+2)*ldc)
			for i := range buf {
				buf[i] = sentinel
			}
			want := make([]float64, mr*nr)
			for i := 0; i < mr; i++ {
				for j := 0; j < nr; j++ {
					c0 := 2*r.Float32() - 1
					buf[(i+1)*ldc+3+j] = c0
					var s float64
					for p := 0; p < kc; p++ {
						s += float64(a[p*mr+i]) * float64(b[p*nr+j])
					}
					want[i*nr+j] = float64(c0) + float64(alpha)*s
				}
			}
			k.fn(kc, a, b, buf[ldc+3:ldc+3+(mr-1)*ldc+nr], ldc, alpha)
			checkTile(t, fmt.Sprintf("%s kc=%d", k.name, kc), buf, ldc, mr, nr, mr, nr, want, kc)
			if k.set == nil {
				continue
			}
			// The storing variant: C's old values (NaN here) are not read.
			for i := 0; i < mr; i++ {
				for j := 0; j < nr; j++ {
					buf[(i+1)*ldc+3+j] = float32(math.NaN())
				}
			}
			for i := range want {
				var s float64
				for p := 0; p < kc; p++ {
					s += float64(a[p*mr+i/nr]) * float64(b[p*nr+i%nr])
				}
				want[i] = float64(alpha) * s
			}
			k.set(kc, a, b, buf[ldc+3:ldc+3+(mr-1)*ldc+nr], ldc, alpha)
			checkTile(t, fmt.Sprintf("%s set kc=%d", k.name, kc), buf, ldc, mr, nr, mr, nr, want, kc)
		}
	})
}

// checkTile checks the mm×nn corner of the tile at (1, 3) in buf against
// want, the rest of the tile (MR×NR) and the buffer around it against
// the sentinel or its earlier contents.
func checkTile(t *testing.T, what string, buf []float32, ldc, mr, nr, mm, nn int, want []float64, kc int) {
	t.Helper()
	bad := 0
	for idx, v := range buf {
		i, j := idx/ldc-1, idx%ldc-3
		if i >= 0 && i < mm && j >= 0 && j < nn {
			w := want[i*nr+j]
			if d := math.Abs(float64(v) - w); !(d <= float64(kc+4)*2*eps32*(1+float64(kc))) {
				if bad++; bad <= 5 {
					t.Errorf("%s: c[%d][%d] = %v, want %v", what, i, j, v, w)
				}
			}
			continue
		}
		if i >= 0 && i < mr && j >= 0 && j < nr {
			continue // outside mm×nn: checked by the callers that care
		}
		if !isSentinel(v) {
			if bad++; bad <= 5 {
				t.Errorf("%s: wrote %v at row %d, column %d outside the tile", what, v, i, j)
			}
		}
	}
}

func TestGemmEdgeKernel(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		k := kernels[l]
		if k.edge == nil {
			t.Skipf("%s has no edge kernel (partial tiles use a scratch tile)", k.name)
		}
		r := rand.New(rand.NewPCG(2, uint64(l)))
		mr, nr := k.mr, k.nr
		for _, kc := range []int{1, 6, 33} {
			a, b := randSlice(r, kc*mr), randSlice(r, kc*nr)
			for mm := 1; mm <= mr; mm++ {
				for nn := 1; nn <= nr; nn++ {
					ldc := nr + 5
					buf := make([]float32, (mr+2)*ldc)
					for i := range buf {
						buf[i] = sentinel
					}
					want := make([]float64, mr*nr)
					for i := 0; i < mm; i++ {
						for j := 0; j < nn; j++ {
							c0 := 2*r.Float32() - 1
							buf[(i+1)*ldc+3+j] = c0
							var s float64
							for p := 0; p < kc; p++ {
								s += float64(a[p*mr+i]) * float64(b[p*nr+j])
							}
							want[i*nr+j] = float64(c0) - 1.5*s
						}
					}
					// c ends at the last valid element, as gemmSerial slices it.
					k.edge(kc, a, b, buf[ldc+3:ldc+3+(mm-1)*ldc+nn], ldc, -1.5, mm, nn)
					what := fmt.Sprintf("%s edge kc=%d mm=%d nn=%d", k.name, kc, mm, nn)
					checkTile(t, what, buf, ldc, mr, nr, mm, nn, want, kc)
					for i := 0; i < mr; i++ {
						for j := 0; j < nr; j++ {
							if (i >= mm || j >= nn) && !isSentinel(buf[(i+1)*ldc+3+j]) {
								t.Fatalf("%s: wrote c[%d][%d] outside mm×nn", what, i, j)
							}
						}
					}
				}
			}
		}
	})
}

func TestGemmPackers(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		k := kernels[l]
		if k.packRows == nil {
			t.Skipf("%s packs in Go (packRowsGo)", k.name)
		}
		r := rand.New(rand.NewPCG(3, uint64(l)))
		kbs := []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 63, 64, 65, 256}
		for rows := 1; rows <= 40; rows++ {
			for _, kb := range kbs {
				lds := kb + r.IntN(5)
				ldd := rows + r.IntN(3)
				src := randSlice(r, (rows-1)*lds+kb)
				dst := make([]float32, (kb-1)*ldd+rows+7)
				for i := range dst {
					dst[i] = sentinel
				}
				k.packRows(src, lds, rows, kb, dst[:(kb-1)*ldd+rows], ldd)
				for idx, v := range dst {
					l, rr := idx/ldd, idx%ldd
					if l < kb && rr < rows {
						if want := src[rr*lds+l]; v != want {
							t.Fatalf("%s rows=%d kb=%d lds=%d ldd=%d: dst[%d·ldd+%d] = %v, want %v", k.name, rows, kb, lds, ldd, l, rr, v, want)
						}
					} else if !isSentinel(v) {
						t.Fatalf("%s rows=%d kb=%d lds=%d ldd=%d: wrote dst[%d] outside the panel", k.name, rows, kb, lds, ldd, idx)
					}
				}
			}
		}
	})
}

// gemmCase is one sgemm call: the product, the padding of each leading
// dimension beyond its row, and the offset of each matrix in its buffer.
type gemmCase struct {
	transA, transB   bool
	m, n, k          int
	alpha, beta      float32
	padA, padB, padC int
	offA, offB, offC int
	threads          int
	nanC             bool // C starts as NaN (beta must be 0)
	name             string
}

// runGemmCase runs c through sgemm and checks it against refGemm. It
// reports whether the case passed.
func runGemmCase(t *testing.T, r *rand.Rand, c gemmCase) bool {
	t.Helper()
	m, n, k := c.m, c.n, c.k
	ar, ac := m, k // stored A: ar rows of ac
	if c.transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if c.transB {
		br, bc = n, k
	}
	lda, ldb, ldc := max(1, ac+c.padA), max(1, bc+c.padB), max(1, n+c.padC)
	const guard = 17
	aBuf := randSlice(r, c.offA+max(0, ar*lda)+guard)
	bBuf := randSlice(r, c.offB+max(0, br*ldb)+guard)
	cBuf := make([]float32, c.offC+m*ldc+guard)
	for i := range cBuf {
		cBuf[i] = sentinel
	}
	// Compact copies for the oracle, and C's starting values.
	aDense, bDense := make([]float32, m*k), make([]float32, k*n)
	for i := 0; i < ar; i++ {
		copy(aDense[i*ac:(i+1)*ac], aBuf[c.offA+i*lda:])
	}
	for i := 0; i < br; i++ {
		copy(bDense[i*bc:(i+1)*bc], bBuf[c.offB+i*ldb:])
	}
	cStart := randSlice(r, m*n)
	if c.nanC {
		for i := range cStart {
			cStart[i] = float32(math.NaN())
		}
	}
	for i := 0; i < m; i++ {
		copy(cBuf[c.offC+i*ldc:], cStart[i*n:(i+1)*n])
	}
	aCopy, bCopy := append([]float32(nil), aBuf...), append([]float32(nil), bBuf...)

	sgemm(c.transA, c.transB, m, n, k, c.alpha, aBuf[c.offA:], lda, bBuf[c.offB:], ldb, c.beta, cBuf[c.offC:], ldc, max(1, c.threads))

	p := backend.GemmParams{TransA: c.transA, TransB: c.transB, M: m, N: n, K: k, Alpha: c.alpha, Beta: c.beta}
	want := append([]float32(nil), cStart...)
	refGemm(p, aDense, bDense, want)
	// Error bound of a float32 dot product of length k: about k·u times
	// the sum of the magnitudes of its terms.
	absA, absB, bound := make([]float32, len(aDense)), make([]float32, len(bDense)), make([]float32, len(cStart))
	for i, v := range aDense {
		absA[i] = float32(math.Abs(float64(v)))
	}
	for i, v := range bDense {
		absB[i] = float32(math.Abs(float64(v)))
	}
	for i, v := range cStart {
		if !c.nanC {
			bound[i] = float32(math.Abs(float64(v)))
		}
	}
	pa := p
	pa.Alpha = float32(math.Abs(float64(c.alpha)))
	pa.Beta = float32(math.Abs(float64(c.beta)))
	refGemm(pa, absA, absB, bound)

	ok := true
	bad := 0
	for idx, v := range cBuf {
		i, j := (idx-c.offC)/ldc, (idx-c.offC)%ldc
		if idx < c.offC || i >= m || j >= n {
			if !isSentinel(v) {
				ok = false
				if bad++; bad <= 5 {
					t.Errorf("%s: wrote %v at buffer index %d, outside C", c.name, v, idx)
				}
			}
			continue
		}
		w := want[i*n+j]
		tol := float64(k+4)*2*eps32*float64(bound[i*n+j]) + 1e-30
		if d := math.Abs(float64(v) - float64(w)); !(d <= tol) {
			ok = false
			if bad++; bad <= 5 {
				t.Errorf("%s: c[%d][%d] = %v, want %v (tolerance %.3g)", c.name, i, j, v, w, tol)
			}
		}
	}
	for i := range aBuf {
		if math.Float32bits(aBuf[i]) != math.Float32bits(aCopy[i]) {
			t.Fatalf("%s: sgemm wrote into A", c.name)
		}
	}
	for i := range bBuf {
		if math.Float32bits(bBuf[i]) != math.Float32bits(bCopy[i]) {
			t.Fatalf("%s: sgemm wrote into B", c.name)
		}
	}
	return ok
}

var transposes = [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}}

// TestGemmSweeps runs sizes 1..300 of each dimension with the others fixed
// (odd sizes that leave partial tiles), all transposes, alpha/beta not 0/1
// and odd leading dimensions and offsets. Short mode takes every 7th size.
func TestGemmSweeps(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(4, uint64(l)))
		step := 1
		if testing.Short() {
			step = 7
		}
		for _, tr := range transposes {
			fails := 0
			for dim := 0; dim < 3; dim++ {
				for s := 1; s <= 300; s += step {
					mnk := [][3]int{{s, 50, 29}, {19, s, 23}, {13, 35, s}}[dim]
					c := gemmCase{transA: tr[0], transB: tr[1], m: mnk[0], n: mnk[1], k: mnk[2],
						alpha: 0.75, beta: -1.25, padA: s % 3, padB: s % 5, padC: s % 4,
						offA: s % 7, offB: s % 3, offC: s % 5, threads: 1}
					c.name = fmt.Sprintf("%v ta=%v tb=%v m=%d n=%d k=%d", l, tr[0], tr[1], c.m, c.n, c.k)
					if !runGemmCase(t, r, c) {
						if fails++; fails > 3 {
							t.Fatal("too many failures")
						}
					}
				}
			}
		}
	})
}

// TestGemmRandom runs random shapes with random alpha, beta, paddings and
// offsets: with the default blocks, with tiny blocks (so every loop of the
// blocked algorithm runs several times), and on several threads (the
// parallel path forced for small products).
func TestGemmRandom(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(5, uint64(l)))
		alphas := []float32{1, -1, 0.5, 2.25, 0}
		betas := []float32{0, 1, -0.5, 1.75}
		n := 60
		if testing.Short() {
			n = 20
		}
		for _, mode := range []string{"default", "tiny blocks", "threads"} {
			t.Run(mode, func(t *testing.T) {
				switch mode {
				case "tiny blocks":
					defer withBlocking(16, 7, 64)()
				case "threads":
					saved := minParallelFlops
					minParallelFlops = 1
					defer func() { minParallelFlops = saved }()
				}
				for i := 0; i < n; i++ {
					tr := transposes[i%4]
					c := gemmCase{transA: tr[0], transB: tr[1],
						m: 1 + r.IntN(150), n: 1 + r.IntN(150), k: 1 + r.IntN(300),
						alpha: alphas[r.IntN(len(alphas))], beta: betas[r.IntN(len(betas))],
						padA: r.IntN(4), padB: r.IntN(4), padC: r.IntN(4),
						offA: r.IntN(16), offB: r.IntN(16), offC: r.IntN(16), threads: 1}
					if mode == "threads" {
						c.threads = 2 + r.IntN(3)
					}
					if c.beta == 0 && i%3 == 0 {
						c.nanC = true // beta = 0 must ignore NaN in C
					}
					c.name = fmt.Sprintf("%v %s ta=%v tb=%v m=%d n=%d k=%d alpha=%g beta=%g threads=%d", l, mode, tr[0], tr[1], c.m, c.n, c.k, c.alpha, c.beta, c.threads)
					if !runGemmCase(t, r, c) {
						t.FailNow()
					}
				}
			})
		}
	})
}

// TestGemmLarge runs a few products big enough to cross every default
// block (kc, nc, mc) serially and in parallel.
func TestGemmLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large products")
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(6, uint64(l)))
		shapes := [][3]int{{1100, 530, 270}, {70, 1300, 520}}
		for i, s := range shapes {
			for _, th := range []int{1, 2} {
				tr := transposes[(2*i+th)%4]
				c := gemmCase{transA: tr[0], transB: tr[1], m: s[0], n: s[1], k: s[2], alpha: 1.5, beta: 0.5,
					padA: 1, padB: 2, padC: 3, offA: 1, offB: 2, offC: 3, threads: th}
				c.name = fmt.Sprintf("%v ta=%v tb=%v m=%d n=%d k=%d threads=%d", l, tr[0], tr[1], c.m, c.n, c.k, th)
				runGemmCase(t, r, c)
			}
		}
	})
}

// TestGemmZeroSizes: empty products leave C alone or scale it by beta.
func TestGemmZeroSizes(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(7, uint64(l)))
		for _, s := range [][3]int{{0, 5, 3}, {4, 0, 3}, {4, 5, 0}, {0, 0, 0}} {
			for _, tr := range transposes {
				c := gemmCase{transA: tr[0], transB: tr[1], m: s[0], n: s[1], k: s[2], alpha: 1, beta: 0.5, threads: 2}
				c.name = fmt.Sprintf("%v m=%d n=%d k=%d", l, s[0], s[1], s[2])
				runGemmCase(t, r, c)
			}
		}
	})
}

// TestSplitRange: the ranges cover [0, n) in order, on unit boundaries.
func TestSplitRange(t *testing.T) {
	for n := 0; n < 70; n++ {
		for parts := 1; parts < 9; parts++ {
			for _, unit := range []int{1, 3, 8} {
				rs := splitRange(n, parts, unit)
				next := 0
				for _, rg := range rs {
					if rg[0] != next || rg[1] <= rg[0] || (rg[1] != n && rg[1]%unit != 0) {
						t.Fatalf("splitRange(%d, %d, %d) = %v", n, parts, unit, rs)
					}
					next = rg[1]
				}
				if next != n || len(rs) > parts {
					t.Fatalf("splitRange(%d, %d, %d) = %v", n, parts, unit, rs)
				}
			}
		}
	}
}

// TestGemmPrepackedA: C += A·B with A packed beforehand (packedA, as the
// convolutions pass their filters) equals the product that packs A itself,
// bit for bit, on one thread and on several, with blocks that split k and
// m, at every level.
func TestGemmPrepackedA(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(13, uint64(l)))
		for _, mode := range []string{"default", "tiny blocks"} {
			if mode == "tiny blocks" {
				defer withBlocking(16, 7, 64)()
			}
			saved := minParallelFlops
			minParallelFlops = 1
			for i := range 30 {
				m, n, k := 1+r.IntN(90), 1+r.IntN(120), 1+r.IntN(200)
				a, b := randSlice(r, m*k), randSlice(r, k*n)
				var pa packedA
				pa.pack(activeKernel(), false, m, k, a, k)
				for _, threads := range []int{1, 2, 3} {
					want, got := make([]float32, m*n), make([]float32, m*n)
					gemmDispatch(false, false, false, m, n, k, 1, a, k, nil, b, n, nil, nil, want, n, threads)
					gemmDispatch(false, false, false, m, n, k, 1, a, k, &pa, b, n, nil, nil, got, n, threads)
					for j := range want {
						if got[j] != want[j] {
							t.Fatalf("%v %s case %d m=%d n=%d k=%d threads=%d: C[%d] %g, without packing first %g", l, mode, i, m, n, k, threads, j, got[j], want[j])
						}
					}
				}
			}
			minParallelFlops = saved
		}
	})
}

// TestGemmColumnsMatchSerial: products with a small A and many columns,
// whose threads split the columns (gemmColumns), give bit for bit what
// one thread gives, at every level, for each transpose, with A packed
// first or not, with the default blocks and tiny ones (several column
// blocks per thread), on 2 and 3 threads.
func TestGemmColumnsMatchSerial(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(17, uint64(l)))
		nr := activeKernel().nr
		for _, mode := range []string{"default", "tiny blocks"} {
			restore := func() {}
			if mode == "tiny blocks" {
				restore = withBlocking(16, 7, 64)
			}
			for i := range 12 {
				tr := transposes[i%4]
				m, k := 1+r.IntN(70), 1+r.IntN(300)
				threads := 2 + i%2
				n := 4*threads*nr + r.IntN(5*nr)
				if m*k > colSplitMaxA {
					t.Fatalf("m=%d k=%d: A is too large to split the columns", m, k)
				}
				a, b := randSlice(r, m*k), randSlice(r, k*n)
				lda, ldb := k, n
				if tr[0] {
					lda = m
				}
				if tr[1] {
					ldb = k
				}
				var pa *packedA
				if i%3 == 0 && !tr[0] {
					pa = new(packedA)
					pa.pack(activeKernel(), false, m, k, a, k)
				}
				want, got := make([]float32, m*n), make([]float32, m*n)
				gemmDispatch(true, tr[0], tr[1], m, n, k, 1, a, lda, pa, b, ldb, nil, nil, want, n, 1)
				gemmDispatch(true, tr[0], tr[1], m, n, k, 1, a, lda, pa, b, ldb, nil, nil, got, n, threads)
				for j := range want {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%v %s ta=%v tb=%v m=%d n=%d k=%d threads=%d packed=%v: C[%d] %g, one thread %g", l, mode, tr[0], tr[1], m, n, k, threads, pa != nil, j, got[j], want[j])
					}
				}
			}
			restore()
		}
	})
}

// colsCase is a product whose last tile of columns the column kernels
// finish: for i = 0, 16 + 2 columns past a whole tile over five of a's
// panels and half of another (colsPanels at once, then one at a time);
// for i = 1, 4 columns past two tiles over 37 rows.
func colsCase(i int) (m, n, k int) {
	if i == 0 {
		return 44, 50, 37
	}
	return 37, 68, 18
}

// TestGemmColsKernelsMatchEdge checks each column kernel (fp32, bf16 and
// int8, where the CPU has them) against its kernel's Edge, bit for bit:
// every width n ≤ colsMax starting at several columns of the panel, one
// panel and colsPanels, every row count, depths on both sides of the
// unrolled loop. c sits at an odd offset among sentinels, and nothing
// outside rows < mm and the n columns may change.
func TestGemmColsKernelsMatchEdge(t *testing.T) {
	ks := map[string]gemmKernel{}
	if k, ok := kernels[AVX512]; ok {
		ks["fp32"] = k
	}
	if bf16Ready() {
		ks["bf16"] = bf16Kernel
	}
	if i8Ready() {
		ks["int8"] = i8Kernel
	}
	if len(ks) == 0 || ks["fp32"].cols[0][0] == nil {
		t.Skip("no column kernels on this CPU")
	}
	for name, k := range ks {
		r := rand.New(rand.NewPCG(7, uint64(len(name))))
		slot := func() float32 {
			switch {
			case k.bf16:
				return math.Float32frombits(uint32(roundBF16(2*r.Float32()-1)) | uint32(roundBF16(2*r.Float32()-1))<<16)
			case k.i8:
				return math.Float32frombits(r.Uint32())
			}
			return 2*r.Float32() - 1
		}
		mr, nr := k.mr, k.nr
		for _, kc := range []int{1, 3, 4, 5, 8, 13} {
			for pi, panels := range []int{1, colsPanels} {
				a, b := make([]float32, panels*mr*kc), make([]float32, nr*kc)
				for i := range a {
					a[i] = slot()
				}
				for i := range b {
					b[i] = slot()
				}
				for n := 1; n <= colsMax; n++ {
					for _, j0 := range []int{0, 1, 16, 19, nr - n} {
						for mm := 1; mm <= panels*mr; mm++ {
							ldc := nr + 7
							rows := panels*mr + 2
							want := make([]float32, rows*ldc)
							for i := range want {
								want[i] = sentinel
							}
							for i := 0; i < mm; i++ {
								for j := j0; j < j0+n; j++ {
									want[(i+1)*ldc+3+j] = 2*r.Float32() - 1
								}
							}
							got := append([]float32(nil), want...)
							for p := 0; p*mr < mm; p++ {
								pm := min(mr, mm-p*mr)
								off := (p*mr+1)*ldc + 3
								k.edge(kc, a[p*mr*kc:(p+1)*mr*kc], b, want[off:off+(pm-1)*ldc+j0+n], ldc, -1.5, pm, j0+n)
							}
							off := ldc + 3 + j0
							k.cols[pi][n-1](kc, a, b[j0:], got[off:off+(mm-1)*ldc+n], ldc, -1.5, mm)
							for idx := range got {
								i, j := idx/ldc-1, idx%ldc-3
								if i >= 0 && i < mm && j >= 0 && j < j0 {
									// The edge kernel's columns before j0.
									if !isSentinel(got[idx]) {
										t.Fatalf("%s cols[%d][%d] kc=%d j0=%d mm=%d: wrote c[%d][%d] before its columns", name, pi, n-1, kc, j0, mm, i, j)
									}
									continue
								}
								if math.Float32bits(got[idx]) != math.Float32bits(want[idx]) {
									t.Fatalf("%s cols[%d][%d] kc=%d j0=%d mm=%d: c[%d][%d] = %v, edge kernel gives %v", name, pi, n-1, kc, j0, mm, i, j, got[idx], want[idx])
								}
							}
						}
					}
				}
			}
		}
	}
}
