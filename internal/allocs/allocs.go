// Package allocs measures allocations in tests so that a loaded machine
// cannot fail them: the Go runtime counts allocations process-wide, so a
// goroutine of another test, a timer or the loader can add one to any
// window. Such strays are sporadic; an operation that allocates does so on
// every call. The smallest count of a few rounds tells them apart.
package allocs

import (
	"math"
	"runtime"
	"testing"
)

// PerRun returns the fewest allocations per call of f seen over rounds
// measurements of testing.AllocsPerRun(runs, f): 0 when f allocates
// nothing, whatever else the process does now and then.
func PerRun(rounds, runs int, f func()) float64 {
	best := testing.AllocsPerRun(runs, f)
	for i := 1; i < rounds && best > 0; i++ {
		best = min(best, testing.AllocsPerRun(runs, f))
	}
	return best
}

// Mallocs runs f rounds times and returns the fewest heap allocations
// (runtime.MemStats.Mallocs, which counts every goroutine) one run made:
// for f that runs many steps, where a per-call average would hide one
// allocating step.
func Mallocs(rounds int, f func()) uint64 {
	var m0, m1 runtime.MemStats
	best := uint64(math.MaxUint64)
	for range rounds {
		runtime.ReadMemStats(&m0)
		f()
		runtime.ReadMemStats(&m1)
		best = min(best, m1.Mallocs-m0.Mallocs)
	}
	return best
}
