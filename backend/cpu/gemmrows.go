package cpu

// Products of a few rows of A with a transposed B of many rows: a query's
// scores against a gallery (retrieval.Scan: scores = q·Gᵀ, one row of A,
// ten thousand or a million rows of B). The blocked algorithm packs all of
// B into panels for every such product and runs its micro-kernel on MR rows
// for the one there is: for one query against 10,000 rows of 128 values,
// about 0.5 ms with B in cache and 0.9 ms just after a forward pass, where
// reading B once takes about 0.2.
//
// Here each column of C is computed straight from its row of B
// (dotRowsAVX512): 16 rows of B, 16 k steps at a time, loaded and
// transposed in registers, so that a vector's lanes are 16 columns of C.
// Nothing is packed and no lane is wasted. Every value is summed as the
// micro-kernels sum it: one fused multiply-add per k step from zero within
// each kc block, then alpha·sum stored, or added to C in one rounding,
// block by block. So the scores are the same bits as through the blocked
// algorithm, a query alone or with others (TestGemmRowsMatchesBlocked).

// gemmRowsMaxM is the most rows of A that take this path: each group of
// B's rows is loaded and transposed once for all of them, whose sums stay
// in registers (four of the kernel's).
const gemmRowsMaxM = 4

// gemmRowsGrain is the fewest values of B a thread of gemmRows takes.
const gemmRowsGrain = 1 << 16

// gemmRowsTakes reports whether gemmRows computes the product: float32
// at the AVX-512 level, B transposed and nothing packed or quantised, at
// most gemmRowsMaxM rows, at least 16 columns, and k and the kc blocks
// whole multiples of the kernel's 16 steps (an embedding's 64, 128, 256 or
// 512 values).
func gemmRowsTakes(kern gemmKernel, transB bool, m, n, k int, pa *packedA, cb *convB, q *quantB) bool {
	return transB && pa == nil && cb == nil && q == nil && !kern.bf16 && !kern.i8 &&
		m <= gemmRowsMaxM && n >= 16 && k%16 == 0 && kern.kc()%16 == 0 && dotRowsReady()
}

// gemmRows is gemmDispatch for the products gemmRowsTakes takes.
func gemmRows(zero, transA bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, threads int) {
	if transA && m > 1 {
		// The kernel reads rows of A.
		at := make([]float32, m*k)
		for i := range m {
			for l := range k {
				at[i*k+l] = a[l*lda+i]
			}
		}
		a, lda = at, k
	} else if transA {
		lda = k // one row: a[l·lda] is a[l]
	}
	groups := (n + 15) / 16
	threads = max(1, min(threads, n*k/gemmRowsGrain))
	run := gemmRowGroups{zero: zero, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	if threads == 1 {
		run.chunk(0, groups)
		return
	}
	splitWith(&gemmRowRuns, groups, threads, run)
}

// gemmRowGroups is gemmRows' work on groups [lo, hi) of 16 columns.
type gemmRowGroups struct {
	zero          bool
	m, n, k       int
	alpha         float32
	a, b, c       []float32
	lda, ldb, ldc int
}

var gemmRowRuns freeList[gemmRowGroups]

func (g *gemmRowGroups) chunk(lo, hi int) {
	kc := blk.kc
	var last []float32
	for j := lo * 16; j < min(hi*16, g.n); j += 16 {
		nn := min(16, g.n-j)
		bj, ldb := g.b[j*g.ldb:], g.ldb
		if nn < 16 {
			// The last rows of B, with rows of zeros after them: the
			// kernel reads 16.
			last = make([]float32, 16*g.k)
			for r := range nn {
				copy(last[r*g.k:(r+1)*g.k], g.b[(j+r)*g.ldb:(j+r)*g.ldb+g.k])
			}
			bj, ldb = last, g.k
		}
		for pc := 0; pc < g.k; pc += kc {
			kb := min(kc, g.k-pc)
			dotRows(kb, g.a[pc:], g.lda, g.m, bj[pc:], ldb, g.c[j:], g.ldc, nn, g.alpha, g.zero && pc == 0)
		}
	}
}
