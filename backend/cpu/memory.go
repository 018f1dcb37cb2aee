// Package cpu is dmlgo's CPU backend: a plain Go reference kernel for every
// op (the oracle, kept forever), and fast paths (blocked GEMM with SIMD
// micro-kernels chosen at run time, im2col and implicit-GEMM convolution,
// parallel loops) selected per op.
//
// The backend registers itself as "cpu". NewReference returns a backend that
// runs only the reference kernels, which tests compare everything against.
//
// The files follow the op families of backend/cuda (kernels/*.cu): each of
// gemm.go, conv.go, pool.go, norm.go (batch norm, L2 normalisation),
// elementwise.go, reduce.go, margin.go and optim.go holds its family's
// ops, their parallel loops and their reference kernels (the ref*
// functions: plain loops, one per op, written to be read; they run
// single-threaded on host slices and trust their arguments, the Backend
// methods having checked the shapes). memory.go holds the Backend and its
// storage, parallel.go the parallel-for engine and its helper team,
// simd.go and *_amd64.go the SIMD levels and the assembly kernels' stubs.
package cpu

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
	"github.com/klauspost/cpuid/v2"
)

func init() {
	initLevel()
	initBlocking()
	initWinograd()
	initWinograd4()
	initLanes()
	initBF16()
	backend.Register("cpu", func() (backend.Backend, error) { return New(0), nil })
}

// Backend is the CPU backend. It is safe for concurrent use.
type Backend struct {
	ref     bool // reference kernels only
	threads int  // 0: GOMAXPROCS at each call
	poison  bool // AllocUninit fills NaN (SetPoison)
	pool    pool
	frozen  frozenSet // weights declared unchanging, and their packed filters
	// precision of frozen convolutions (a Precision; see lowp.go)
	precision atomic.Int32
}

// New returns a fast CPU backend using threads goroutines per op (0: GOMAXPROCS).
func New(threads int) *Backend { return &Backend{threads: threads} }

// NewReference returns a backend that runs only the single-threaded
// reference kernels.
func NewReference() *Backend { return &Backend{ref: true, threads: 1} }

// Threads is the number of goroutines an op may use.
func (b *Backend) Threads() int {
	if b.threads > 0 {
		return b.threads
	}
	return runtime.GOMAXPROCS(0)
}

// SetThreads changes the thread count (0: GOMAXPROCS).
func (b *Backend) SetThreads(n int) { b.threads = n }

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cpu" }

// Describe implements backend.Backend.
func (b *Backend) Describe() string {
	if b.ref {
		return "cpu reference kernels, 1 thread"
	}
	s := fmt.Sprintf("cpu %s, SIMD %v, %d thread", cpuName(), ActiveLevel(), b.Threads())
	if b.Threads() != 1 {
		s += "s"
	}
	for _, note := range []string{levelNote, wgNote, wg4Note, lanesNote, bf16Note} {
		if note != "" {
			s += " (" + note + ")"
		}
	}
	return s
}

// Level is the SIMD level this backend runs at.
func (b *Backend) Level() Level {
	if b.ref {
		return Generic
	}
	return ActiveLevel()
}

// pool recycles host storage by exact size, so steady-state training
// allocates nothing per step.
type pool struct {
	mu   sync.Mutex
	free map[int][]*tensor.HostStorage
}

// Alloc implements backend.Backend: zeroed storage.
func (b *Backend) Alloc(n int) tensor.Storage {
	s := b.take(n)
	clear(s.Data)
	return s
}

// AllocUninit implements backend.UninitAllocator: a pooled buffer as it was
// left, or NaN everywhere after SetPoison(true).
func (b *Backend) AllocUninit(n int) tensor.Storage {
	s := b.take(n)
	if b.poison {
		nan := float32(math.NaN())
		for i := range s.Data {
			s.Data[i] = nan
		}
	}
	return s
}

// SetPoison makes AllocUninit fill its buffers with NaN, so that a reader
// of memory no op has written shows in its results (for tests).
func (b *Backend) SetPoison(on bool) { b.poison = on }

// take returns a pooled buffer of n elements, or a new (zeroed) one.
func (b *Backend) take(n int) *tensor.HostStorage {
	b.pool.mu.Lock()
	if l := b.pool.free[n]; len(l) > 0 {
		s := l[len(l)-1]
		b.pool.free[n] = l[:len(l)-1]
		b.pool.mu.Unlock()
		return s
	}
	b.pool.mu.Unlock()
	return &tensor.HostStorage{Data: makeHuge[float32](n)}
}

// Free implements backend.Backend.
func (b *Backend) Free(s tensor.Storage) {
	h, ok := s.(*tensor.HostStorage)
	if !ok || h == nil {
		panic(fmt.Sprintf("cpu: Free of a %T", s))
	}
	b.pool.mu.Lock()
	if b.pool.free == nil {
		b.pool.free = map[int][]*tensor.HostStorage{}
	}
	b.pool.free[len(h.Data)] = append(b.pool.free[len(h.Data)], h)
	b.pool.mu.Unlock()
}

// Upload implements backend.Backend.
func (b *Backend) Upload(dst *tensor.Tensor, src []float32) {
	backend.CheckSame("upload", len(src), dst)
	if b.frozen.n.Load() > 0 {
		b.thaw(dst.HostData())
	}
	copy(dst.HostData(), src)
}

// Download implements backend.Backend.
func (b *Backend) Download(dst []float32, src *tensor.Tensor) {
	backend.CheckSame("download", len(dst), src)
	copy(dst, src.HostData())
}

// Copy implements backend.Backend.
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	backend.CheckSame("copy", src.Numel(), dst)
	copy(dst.HostData(), src.HostData())
}

// HostMemory reports that tensors of this backend live in Go memory, so
// callers may wrap host slices (tensor.FromSlice) instead of uploading.
func (b *Backend) HostMemory() bool { return true }

// Synchronize implements backend.Backend; CPU work is synchronous.
func (b *Backend) Synchronize() error { return nil }

// cpuName is the processor's brand string.
func cpuName() string {
	if n := cpuid.CPU.BrandName; n != "" {
		return n
	}
	return "unknown CPU"
}
