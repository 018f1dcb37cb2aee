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
// is too small (the contents are not kept). A new buffer of hugeMin bytes
// or more is given huge pages (makeHuge).
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return makeHuge[T](n)
	}
	return s[:n]
}

// makeHuge is make([]T, n), with the pages of a buffer of hugeMin bytes or
// more asked for as transparent huge pages before anything touches them
// (adviseHuge). The backend's large buffers (activations, frozen filters,
// scratch) are read in long streams, once or a few times a pass: with 4
// KiB pages each stream crosses a page every 1024 values, and a batch of
// 32 at 224×224 moves hundreds of megabytes through them. ResNet-50 at
// batch 32, the advice on against off in alternating processes: fp32
// 1.02–1.04×, bf16 about 1.06×, int8 1.03–1.18×, a training step about
// 1.05×; batch 1 unchanged (its buffers are mostly below hugeMin).
func makeHuge[T any](n int) []T {
	s := make([]T, n)
	if n > 0 {
		adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), uintptr(n)*unsafe.Sizeof(s[0]))
	}
	return s
}

// hugeMin is the smallest buffer, in bytes, makeHuge asks huge pages for
// (two of them).
const hugeMin = 4 << 20

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// hugeRange is the part of the size bytes at address p that whole huge
// pages cover, as an offset from p and a length (0 when size < hugeMin or
// no whole page fits).
func hugeRange(p, size uintptr) (off, n uintptr) {
	if size < hugeMin {
		return 0, 0
	}
	start := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + size) &^ (hugePage - 1)
	if end <= start {
		return 0, 0
	}
	return start - p, end - start
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
