package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// TestParallelFor: the ranges cover [0, n) exactly once, for any thread
// count, including more threads than GOMAXPROCS allows helpers.
func TestParallelFor(t *testing.T) {
	for n := 0; n <= 50; n++ {
		for threads := 1; threads <= 5; threads++ {
			seen := make([]atomic.Int32, n)
			parallelFor(n, threads, funcKernel(func(lo, hi int) {
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			}))
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("parallelFor(%d, %d): index %d visited %d times", n, threads, i, c)
				}
			}
		}
	}
}

// TestParallelForRanges: the ranges parallelForGrain hands out are the
// same on every call, shrink from 1/(2·threads) of the loop, are at
// least the grain (or 1/16 of a thread's share), but the last, and come
// to at most seven a thread.
func TestParallelForRanges(t *testing.T) {
	ranges := func(n, threads, grain int) [][2]int {
		var mu sync.Mutex
		var rs [][2]int
		parallelForGrain(n, threads, grain, funcKernel(func(lo, hi int) {
			mu.Lock()
			rs = append(rs, [2]int{lo, hi})
			mu.Unlock()
		}))
		slices.SortFunc(rs, func(a, b [2]int) int { return a[0] - b[0] })
		return rs
	}
	for _, n := range []int{2, 3, 7, 25, 32, 98, 392, 1000, 1 << 20} {
		for threads := 2; threads <= 4; threads++ {
			for _, grain := range []int{0, 1, 3, 8} {
				rs := ranges(n, threads, grain)
				name := fmt.Sprintf("n %d threads %d grain %d", n, threads, grain)
				least := max(1, grain, (n+16*threads-1)/(16*threads))
				if want := max(least, n/(2*threads)); rs[0] != [2]int{0, min(n, want)} {
					t.Fatalf("%s: first range %v, want [0 %d)", name, rs[0], min(n, want))
				}
				for i, r := range rs {
					size := r[1] - r[0]
					switch {
					case i > 0 && r[0] != rs[i-1][1]:
						t.Fatalf("%s: range %v does not start where %v ends", name, r, rs[i-1])
					case i > 0 && size > rs[i-1][1]-rs[i-1][0]:
						t.Fatalf("%s: range %v longer than the one before, %v", name, r, rs[i-1])
					case i < len(rs)-1 && size < least:
						t.Fatalf("%s: range %v shorter than %d", name, r, least)
					}
				}
				if last := rs[len(rs)-1]; last[1] != n {
					t.Fatalf("%s: the ranges end at %d", name, last[1])
				}
				if len(rs) > 7*threads {
					t.Fatalf("%s: %d ranges, more than 7 a thread", name, len(rs))
				}
				if again := ranges(n, threads, grain); !slices.Equal(rs, again) {
					t.Fatalf("%s: ranges %v, then %v", name, rs, again)
				}
			}
		}
	}
}

// TestTeamConcurrentCallers: several goroutines run parallel GEMMs and
// parallelFor at once (one gets the team, the others fresh goroutines),
// and nested parallel work inside a parallelFor body; all results must be
// right. Run with -race to check the synchronisation.
func TestTeamConcurrentCallers(t *testing.T) {
	saved := minParallelFlops
	minParallelFlops = 1
	defer func() { minParallelFlops = saved }()
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for it := 0; it < 5; it++ {
				m, n, k := 1+r.IntN(70), 1+r.IntN(70), 1+r.IntN(90)
				a, b := randSlice(r, m*k), randSlice(r, k*n)
				c, want := make([]float32, m*n), make([]float32, m*n)
				// Nested: the GEMM runs inside a parallelFor body.
				parallelFor(2, 2, funcKernel(func(lo, hi int) {
					for i := lo; i < hi; i++ {
						if i == 0 {
							sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n, 3)
						}
					}
				}))
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var s float64
						for l := 0; l < k; l++ {
							s += float64(a[i*k+l]) * float64(b[l*n+j])
						}
						want[i*n+j] = float32(s)
					}
				}
				for i := range c {
					if d := c[i] - want[i]; d > 1e-4 || d < -1e-4 {
						errs <- fmt.Sprintf("goroutine %d: %dx%dx%d: c[%d] = %v, want %v", g, m, n, k, i, c[i], want[i])
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestTeamJobReuse: back-to-back parallel loops and GEMMs reuse their job
// state (forJob, gemmJob), and helpers may still hold a pointer to a job
// from an earlier call when it is published again. Every range must run
// exactly once, within its own call: each call's total is checked when it
// returns and again at the end, so work that ran late, twice, or in the
// wrong call shows up.
func TestTeamJobReuse(t *testing.T) {
	calls := 20000
	if testing.Short() {
		calls = 3000
	}
	saved := minParallelFlops
	minParallelFlops = 1
	defer func() { minParallelFlops = saved }()
	sums := make([]atomic.Int64, calls)
	want := func(n int) int64 { return int64(n * (n + 1) / 2) }
	a, b := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, []float32{1, 0, 0, 0, 1, 0, 0, 0, 1}
	c := make([]float32, 9)
	for i := range calls {
		n := 1 + i%9
		s := &sums[i]
		parallelFor(n, 3, funcKernel(func(lo, hi int) {
			for j := lo; j < hi; j++ {
				s.Add(int64(j + 1))
			}
		}))
		if got := s.Load(); got != want(n) {
			t.Fatalf("call %d: ranges of [0, %d) summed to %d, want %d", i, n, got, want(n))
		}
		if i%5 == 0 {
			sgemm(false, false, 3, 3, 3, 1, a, 3, b, 3, 0, c, 3, 3)
			for j, v := range c {
				if v != a[j] {
					t.Fatalf("call %d: A·I = %v, want %v", i, c, a)
				}
			}
		}
	}
	for i := range sums {
		if got := sums[i].Load(); got != want(1+i%9) {
			t.Fatalf("call %d: its total changed to %d after it returned (want %d)", i, got, want(1+i%9))
		}
	}
}
