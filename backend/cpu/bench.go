package cpu

import (
	"fmt"
	"time"
)

// SgemmBench measures the fast SGEMM on square n×n matrices (C = A·B, no
// transposes, alpha 1, beta 0) with up to threads goroutines, at the active
// SIMD level (SetLevel picks another). It runs the product once to warm up,
// then repeatedly for at least d, and returns the best rate of the runs in
// GFLOP/s (2·n³ floating-point operations per product), as numpy-based
// anchors report best-of runs. It is meant for tools/bench and for
// comparing with a BLAS on the same machine; it panics if n or threads is
// below 1.
func SgemmBench(n, threads int, d time.Duration) (gflops float64) {
	if n < 1 || threads < 1 {
		panic(fmt.Sprintf("cpu: SgemmBench(%d, %d): n and threads must be positive", n, threads))
	}
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		// Small integers: every product is exact, and no page is left
		// untouched (reading never-written memory maps one shared zero
		// page, which some CPUs handle much more slowly).
		a[i] = float32(i%7 - 3)
		b[i] = float32(i%5 - 2)
	}
	run := func() time.Duration {
		t0 := time.Now()
		sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n, threads)
		return time.Since(t0)
	}
	run()
	best := time.Duration(1<<63 - 1)
	for start := time.Now(); time.Since(start) < d || best == 1<<63-1; {
		best = min(best, run())
	}
	return 2 * float64(n) * float64(n) * float64(n) / best.Seconds() / 1e9
}
