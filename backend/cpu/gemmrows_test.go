package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmRowsMatchesBlocked checks gemmRows against the blocked
// algorithm bit for bit: every row count it takes, columns in whole and
// partial groups of 16, k within one kc block and across several (the
// default kc and 48), A plain and transposed, alpha 1 and not, C cleared
// first and added to. C's rows lie in a wider array of sentinels, which
// nothing may touch.
func TestGemmRowsMatchesBlocked(t *testing.T) {
	if !dotRowsReady() {
		t.Skipf("no dotRows kernel at level %v", ActiveLevel())
	}
	r := rand.New(rand.NewPCG(5, 21))
	kern := activeKernel()
	for _, kc := range []int{0, 48} {
		restore := func() {}
		if kc > 0 {
			restore = withBlocking(blk.mc, kc, blk.nc)
		}
		for _, m := range []int{1, 2, 3, 4} {
			for _, n := range []int{16, 17, 31, 48, 100, 1000} {
				for _, k := range []int{16, 32, 128, 272, 512} {
					transA := r.IntN(2) == 1
					zero := (m+n+k)%2 == 0
					alpha := float32(1)
					if (m+n)%3 == 0 {
						alpha = 0.7
					}
					name := fmt.Sprintf("kc=%d m=%d n=%d k=%d transA=%v zero=%v alpha=%g", blk.kc, m, n, k, transA, zero, alpha)
					a := randSlice(r, m*k)
					ldb := k + r.IntN(3)
					b := randSlice(r, n*ldb)
					lda := k
					if transA {
						lda = m
					}
					ldc := n + 5
					c0 := make([]float32, m*ldc)
					for i := range c0 {
						c0[i] = sentinel
					}
					for i := range m {
						copy(c0[i*ldc:i*ldc+n], randSlice(r, n))
					}
					if !gemmRowsTakes(kern, true, m, n, k, nil, nil, nil) {
						t.Fatalf("%s: gemmRowsTakes does not take it", name)
					}
					want, got := append([]float32(nil), c0...), append([]float32(nil), c0...)
					gemmSerial(kern, zero, transA, true, m, n, k, alpha, a, lda, nil, b, ldb, nil, nil, want, ldc)
					gemmRows(zero, transA, m, n, k, alpha, a, lda, b, ldb, got, ldc, 2)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s: C[%d][%d] = %g (%#x), blocked %g (%#x)", name, i/ldc, i%ldc, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
						}
					}
				}
			}
		}
		restore()
	}
}

// TestGemmRowsDispatch checks which products gemmDispatch gives gemmRows,
// and that through it a query's scores are those of the same query among
// others (rows past gemmRowsMaxM take the blocked algorithm).
func TestGemmRowsDispatch(t *testing.T) {
	if !dotRowsReady() {
		t.Skipf("no dotRows kernel at level %v", ActiveLevel())
	}
	kern := activeKernel()
	for _, c := range []struct {
		transB  bool
		m, n, k int
		want    bool
	}{
		{true, 1, 10000, 128, true},
		{true, 4, 16, 16, true},
		{true, 5, 10000, 128, false},
		{true, 1, 15, 128, false},
		{true, 1, 10000, 100, false},
		{false, 1, 10000, 128, false},
	} {
		if got := gemmRowsTakes(kern, c.transB, c.m, c.n, c.k, nil, nil, nil); got != c.want {
			t.Errorf("gemmRowsTakes(transB=%v, m=%d, n=%d, k=%d) = %v, want %v", c.transB, c.m, c.n, c.k, got, c.want)
		}
	}
	restore := withBlocking(blk.mc, 56, blk.nc)
	if gemmRowsTakes(kern, true, 1, 10000, 128, nil, nil, nil) {
		t.Error("gemmRowsTakes took a product whose kc blocks are not whole multiples of 16")
	}
	restore()
	r := rand.New(rand.NewPCG(8, 8))
	const m, n, k = 9, 3000, 128
	q, g := randSlice(r, m*k), randSlice(r, n*k)
	all := make([]float32, m*n)
	gemmDispatch(true, false, true, m, n, k, 1, q, k, nil, g, k, nil, nil, all, n, 2)
	for i := range m {
		one := make([]float32, n)
		gemmDispatch(true, false, true, 1, n, k, 1, q[i*k:(i+1)*k], k, nil, g, k, nil, nil, one, n, 2)
		for j := range one {
			if math.Float32bits(one[j]) != math.Float32bits(all[i*n+j]) {
				t.Fatalf("query %d, row %d: %g alone, %g among %d queries", i, j, one[j], all[i*n+j], m)
			}
		}
	}
}

// TestDotRowsBounds checks that dotRows refuses slices too short for what
// it would read or write, and shapes the kernel does not take.
func TestDotRowsBounds(t *testing.T) {
	if !dotRowsReady() {
		t.Skipf("no dotRows kernel at level %v", ActiveLevel())
	}
	a, b, c := make([]float32, 2*32), make([]float32, 16*32), make([]float32, 2*16)
	dotRows(32, a, 32, 2, b, 32, c, 16, 16, 1, true) // fits
	for name, f := range map[string]func(){
		"a too short": func() { dotRows(32, a[:63], 32, 2, b, 32, c, 16, 16, 1, true) },
		"b too short": func() { dotRows(32, a, 32, 2, b[:16*32-1], 32, c, 16, 16, 1, true) },
		"c too short": func() { dotRows(32, a, 32, 2, b, 32, c[:31], 16, 16, 1, true) },
		"17 columns":  func() { dotRows(32, a, 32, 2, b, 32, c, 16, 17, 1, true) },
		"5 rows":      func() { dotRows(16, a, 8, 5, b, 32, c, 4, 4, 1, true) },
		"kb 24":       func() { dotRows(24, a, 32, 2, b, 32, c, 16, 16, 1, true) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: dotRows did not panic", name)
				}
			}()
			f()
		}()
	}
}
