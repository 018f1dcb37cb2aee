package cpu

import (
	"sync"
	"unsafe"
)

// freeList keeps scratch buffers (GEMM packing buffers, im2col columns)
// across calls and garbage collections. A sync.Pool drops what it holds at
// garbage collections, and buffers of megabytes would then be allocated
// again every training step; a freeList keeps at most as many as were in
// use at once, at the largest size each grew to.
type freeList[T any] struct {
	mu   sync.Mutex
	free []*T
}

// get returns a kept buffer, or a new zero one.
func (f *freeList[T]) get() *T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.free); n > 0 {
		t := f.free[n-1]
		f.free = f.free[:n-1]
		return t
	}
	return new(T)
}

// put hands a buffer back for reuse.
func (f *freeList[T]) put(t *T) {
	f.mu.Lock()
	f.free = append(f.free, t)
	f.mu.Unlock()
}

// grow returns s resized to n elements, reallocating only when its capacity
// is too small (the contents are not kept).
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// prefetch asks for the cache lines of s to be brought into the cache,
// without waiting for them.
func prefetch(s []float32) {
	if n := cacheLines(s); n > 0 {
		prefetchLines(&s[0], n)
	}
}

// cacheLines is how many 64-byte lines s touches, from its first value's
// to its last's.
func cacheLines(s []float32) int {
	if len(s) == 0 {
		return 0
	}
	first := uintptr(unsafe.Pointer(&s[0])) / 64
	last := uintptr(unsafe.Pointer(&s[len(s)-1])) / 64
	return int(last-first) + 1
}
