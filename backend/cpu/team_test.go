package cpu

import (
	"fmt"
	"math/rand/v2"
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
			parallelFor(n, threads, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("parallelFor(%d, %d): index %d visited %d times", n, threads, i, c)
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
				parallelFor(2, 2, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						if i == 0 {
							sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n, 3)
						}
					}
				})
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
