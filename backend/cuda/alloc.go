//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math/bits"
	"unsafe"
)

// allocator is a caching device allocator: blocks are rounded up to a size
// class and, when freed, kept on the free list of their class for the next
// allocation of that class, so that steady-state training makes no
// cuMemAlloc/cuMemFree calls (which synchronise the device). All work runs
// on one stream, in call order, so a block freed by one op and handed to
// the next is only touched by kernels queued after every use of it.
//
// Size classes: 512 bytes and below round up to 512; above, to a multiple
// of a quarter of the power of two below (at most 25% waste): 640, 768,
// 896, 1024, 1280, …
//
// When cuMemAlloc fails with CUDA_ERROR_OUT_OF_MEMORY, the cache is
// returned to the driver and the allocation retried once.
type allocator struct {
	b     *Backend
	free  map[uint64][]*Storage // size class -> cached blocks
	all   map[uintptr]uint64    // every block the driver gave us -> class
	inUse uint64                // bytes of blocks handed out
	// cached is bytes of blocks on free lists.
	cached                          uint64
	hits, driverAllocs, driverFrees int64
}

// sizeClass returns the block size for a request of n bytes (n > 0).
func sizeClass(n uint64) uint64 {
	if n <= 512 {
		return 512
	}
	p := uint64(1) << (63 - bits.LeadingZeros64(n)) // largest power of two ≤ n
	step := p / 4
	return (n + step - 1) / step * step
}

// get returns a block for n float32 elements (n may be 0: no block).
func (a *allocator) get(n int) (*Storage, error) {
	if n == 0 {
		return &Storage{owner: a.b}, nil
	}
	class := sizeClass(uint64(n) * 4)
	if l := a.free[class]; len(l) > 0 {
		s := l[len(l)-1]
		l[len(l)-1] = nil
		a.free[class] = l[:len(l)-1]
		a.cached -= class
		a.inUse += class
		a.hits++
		s.n, s.freed = n, false
		return s, nil
	}
	ptr, err := a.driverAlloc(class)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Code == cudaErrOutOfMemory && a.cached > 0 {
			cached := a.cached
			if err2 := a.releaseCachedSynced(); err2 != nil {
				return nil, err2
			}
			ptr, err = a.driverAlloc(class)
			if err != nil {
				return nil, fmt.Errorf("%w (after returning %d cached bytes to the driver; %d bytes in use)", err, cached, a.inUse)
			}
		} else {
			return nil, fmt.Errorf("%w (%d bytes in use, %d cached)", err, a.inUse, a.cached)
		}
	}
	a.inUse += class
	return &Storage{ptr: ptr, n: n, class: class, owner: a.b}, nil
}

func (a *allocator) driverAlloc(class uint64) (uintptr, error) {
	var ptr uintptr
	d := a.b.drv
	if err := d.check(call(d.fn.memAlloc, uintptr(unsafe.Pointer(&ptr)), uintptr(class)), fmt.Sprintf("cuMemAlloc_v2(%d bytes)", class)); err != nil {
		return 0, err
	}
	if a.all == nil {
		a.all = map[uintptr]uint64{}
	}
	a.all[ptr] = class
	a.driverAllocs++
	return ptr, nil
}

// put returns a block to its class's free list.
func (a *allocator) put(s *Storage) {
	s.freed = true
	if s.class == 0 {
		return
	}
	if a.free == nil {
		a.free = map[uint64][]*Storage{}
	}
	a.free[s.class] = append(a.free[s.class], s)
	a.inUse -= s.class
	a.cached += s.class
}

// releaseCachedSynced waits for the stream (a cached block may still be read
// by queued kernels) and frees every cached block.
func (a *allocator) releaseCachedSynced() error {
	d := a.b.drv
	if err := d.check(call(d.fn.streamSynchronize, a.b.stream), "cuStreamSynchronize"); err != nil {
		return err
	}
	return a.releaseCached()
}

// releaseCached frees every cached block (the caller has synchronised).
func (a *allocator) releaseCached() error {
	d := a.b.drv
	var first error
	for class, l := range a.free {
		for i, s := range l {
			if err := d.check(call(d.fn.memFree, s.ptr), "cuMemFree_v2"); err != nil && first == nil {
				first = err
			}
			delete(a.all, s.ptr)
			a.driverFrees++
			a.cached -= class
			s.ptr, s.class = 0, 0
			l[i] = nil
		}
		delete(a.free, class)
	}
	return first
}

// releaseAll frees every block, cached or handed out (Close).
func (a *allocator) releaseAll() {
	d := a.b.drv
	for ptr := range a.all {
		call(d.fn.memFree, ptr)
		a.driverFrees++
	}
	a.all, a.free = nil, nil
	a.inUse, a.cached = 0, 0
}
