package parallel

import (
	"sync/atomic"
	"testing"
)

// TestFor: every index exactly once, worker numbers in range, any count.
func TestFor(t *testing.T) {
	for _, c := range [][2]int{{0, 3}, {1, 3}, {7, 1}, {1000, 4}, {5, 0}, {3, 16}} {
		n, workers := c[0], c[1]
		seen := make([]atomic.Int32, n)
		var bad atomic.Bool
		ws := Workers(n, workers)
		For(n, workers, func(w, i int) {
			if w < 0 || w >= ws {
				bad.Store(true)
			}
			seen[i].Add(1)
		})
		for i := range seen {
			if seen[i].Load() != 1 {
				t.Fatalf("n=%d workers=%d: index %d ran %d times", n, workers, i, seen[i].Load())
			}
		}
		if bad.Load() {
			t.Errorf("n=%d workers=%d: a worker number outside [0, %d)", n, workers, ws)
		}
	}
}
