// Package parallel runs independent pieces of work on a few goroutines.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// For calls f(w, i) for every i in [0, n), handing out the indices in
// order to up to workers goroutines (workers ≤ 0: GOMAXPROCS); w in
// [0, Workers(n, workers)) numbers the goroutine, so that each can keep
// scratch of its own. With one worker it runs on the caller's goroutine.
func For(n, workers int, f func(w, i int)) {
	workers = Workers(n, workers)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(w, i)
			}
		}()
	}
	wg.Wait()
}

// Workers is how many goroutines For(n, workers, …) uses.
func Workers(n, workers int) int {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return max(min(workers, n), 1)
}
