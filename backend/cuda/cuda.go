//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

func init() {
	backend.Register("cuda", func() (backend.Backend, error) { return Open(Options{Device: -1}) })
}

// DeviceEnv names the environment variable that picks the device ordinal
// (default 0).
const DeviceEnv = "DMLGO_CUDA_DEVICE"

// Options configure Open.
type Options struct {
	// Library is the driver library file; empty: $DMLGO_LIBCUDA, else
	// libcuda.so.1.
	Library string
	// Device is the device ordinal; negative: $DMLGO_CUDA_DEVICE, else 0
	// (the registered factory passes −1).
	Device int
	// TF32 runs the large GEMMs (and so convolutions) on the tensor cores
	// with TF32 inputs: about 3 decimal digits per product instead of 7, as
	// PyTorch's allow_tf32. Off unless set here or by DMLGO_CUDA_TF32=1.
	TF32 bool
}

// TF32Env names the environment variable that turns TF32 on ("1").
const TF32Env = "DMLGO_CUDA_TF32"

// Backend is the CUDA backend. It is safe for concurrent use: a mutex
// serialises the callers, and each call runs with its goroutine locked to
// an OS thread on which the backend's context is made current first.
//
// Work is queued on one stream in call order, so results are ready for
// any later call; Download and Synchronize wait for it. A failed driver
// call (an enqueue, or an asynchronous fault reported later) is kept as the
// backend's deferred error: later ops are skipped, Synchronize returns it,
// and Download and Alloc panic with it.
type Backend struct {
	mu sync.Mutex

	drv    *driver
	info   deviceInfo
	dev    int32
	ctx    uintptr
	stream uintptr
	ptxSrc string

	modules      []uintptr
	fns          [numKernels]uintptr
	fnMaxThreads [numKernels]int

	alloc   allocator
	args    *args
	scratch [numScratch]*Storage
	err     error
	closed  bool

	launches  int64
	perKernel [numKernels]int64 // launches per kernel (tests)
	forceGemm kernel            // tests: the GEMM kernel to use (−1: choose)
	describe  string
	tf32      bool
}

// Storage is device memory of the CUDA backend: Len float32 elements at a
// device address.
type Storage struct {
	ptr   uintptr // CUdeviceptr
	n     int
	class uint64 // the allocator's block size in bytes (0: no block)
	owner *Backend
	freed bool
}

// Len implements tensor.Storage.
func (s *Storage) Len() int { return s.n }

// Ptr is the device address (a CUdeviceptr).
func (s *Storage) Ptr() uintptr { return s.ptr }

// Open loads the driver, initialises it and opens a device. It returns an
// error (one line saying why) when the library is missing, cuInit fails or
// there is no device; it never panics for those.
func Open(o Options) (*Backend, error) {
	path := o.Library
	if path == "" {
		path = libraryPath()
	}
	ordinal := o.Device
	if ordinal < 0 {
		ordinal = 0
		if v := strings.TrimSpace(os.Getenv(DeviceEnv)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("cuda: %s=%q is not a device ordinal", DeviceEnv, v)
			}
			ordinal = n
		}
	}
	d, err := loadDriver(path)
	if err != nil {
		return nil, err
	}
	srcs, ptxFrom, err := loadPTX()
	if err != nil {
		return nil, err
	}
	b := &Backend{drv: d, args: new(args), ptxSrc: ptxFrom, tf32: o.TF32 || strings.TrimSpace(os.Getenv(TF32Env)) == "1", forceGemm: -1}
	b.args.init()
	b.alloc.b = b

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	info, dev, ctx, err := d.openDevice(ordinal)
	if err != nil {
		return nil, err
	}
	b.info, b.dev, b.ctx = info, dev, ctx
	fail := func(err error) (*Backend, error) {
		b.release()
		return nil, err
	}
	if info.ccMajor < 8 {
		return fail(fmt.Errorf("cuda: device %d (%s) is sm_%d%d; the kernels need compute capability 8.0 or newer", ordinal, info.name, info.ccMajor, info.ccMinor))
	}
	if err := d.check(call(d.fn.streamCreate, uintptr(unsafe.Pointer(&b.stream)), streamDefault), "cuStreamCreate"); err != nil {
		return fail(err)
	}
	if err := b.loadModules(srcs); err != nil {
		return fail(err)
	}
	if info.maxThreads < redThreads {
		return fail(fmt.Errorf("cuda: device %d allows %d threads per block, the kernels need %d", ordinal, info.maxThreads, redThreads))
	}
	b.describe = b.makeDescribe()
	return b, nil
}

func (b *Backend) makeDescribe() string {
	i := b.info
	s := fmt.Sprintf("cuda device %d: %s (sm_%d%d, %d SMs, %.1f GiB), driver %d.%d, %s",
		i.ordinal, i.name, i.ccMajor, i.ccMinor, i.sms, float64(i.totalMem)/(1<<30), i.driverVersion/1000, i.driverVersion%1000/10, b.ptxSrc)
	if b.tf32 {
		s += ", TF32 GEMMs"
	}
	if b.drv.path != defaultLib {
		s += ", library " + b.drv.path
	}
	if len(i.attributeFailures) > 0 {
		s += " (defaults for: " + strings.Join(i.attributeFailures, ", ") + ")"
	}
	return s
}

// release frees what Open acquired (on its thread, context current).
func (b *Backend) release() {
	d := b.drv
	b.alloc.releaseAll()
	b.scratch = [numScratch]*Storage{}
	for _, m := range b.modules {
		call(d.fn.moduleUnload, m)
	}
	if b.stream != 0 {
		call(d.fn.streamDestroy, b.stream)
	}
	call(d.fn.primaryCtxRelease, uintptr(b.dev))
}

// Close waits for queued work and releases the device memory, modules,
// stream and context reference of a backend opened with Open. The backend
// registered as "cuda" is shared and never closed.
func (b *Backend) Close() error {
	b.enter()
	defer b.exit()
	if b.closed {
		return nil
	}
	err := b.drv.check(call(b.drv.fn.streamSynchronize, b.stream), "cuStreamSynchronize")
	b.release()
	b.closed = true
	return err
}

// enter takes the backend for one call: the mutex, an OS thread, and the
// context made current on it. Every exported method pairs it with exit.
func (b *Backend) enter() {
	b.mu.Lock()
	runtime.LockOSThread()
	if b.closed {
		runtime.UnlockOSThread()
		b.mu.Unlock()
		panic("cuda: use of a closed backend")
	}
	if res := b.hot(b.drv.fn.ctxSetCurrent, b.ctx); res != cudaSuccess {
		b.fail(b.drv.errorFor(res, "cuCtxSetCurrent"))
	}
}

func (b *Backend) exit() {
	runtime.UnlockOSThread()
	b.mu.Unlock()
}

// queue runs an op's body f between enter and exit. When the backend keeps
// a deferred error, f is skipped: the op queues nothing. A driver call in f
// that fails records the deferred error (fail); a panic in f still runs exit.
func (b *Backend) queue(f func()) {
	b.enter()
	defer b.exit()
	if b.err != nil {
		return
	}
	f()
}

// SetTF32 turns the TF32 tensor-core GEMMs on or off (see Options.TF32).
func (b *Backend) SetTF32(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tf32 = on
	b.describe = b.makeDescribe()
}

// fail records the first deferred error.
func (b *Backend) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Err returns the deferred error, if any, without waiting.
func (b *Backend) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "cuda" }

// Describe implements backend.Backend.
func (b *Backend) Describe() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.describe
}

// Device describes the open device.
type Device struct {
	Ordinal             int
	Name                string
	DriverVersion       int // e.g. 12040 for CUDA 12.4
	ComputeCapability   [2]int
	Multiprocessors     int
	MaxThreadsPerBlock  int
	TotalMemory         uint64
	AttributesDefaulted []string
}

// Device returns what the backend knows of its device.
func (b *Backend) Device() Device {
	i := b.info
	return Device{i.ordinal, i.name, i.driverVersion, [2]int{i.ccMajor, i.ccMinor}, i.sms, i.maxThreads, i.totalMem, append([]string(nil), i.attributeFailures...)}
}

// ptr returns the device address of t's first element, checking that t
// lives on this backend.
func (b *Backend) ptr(t *tensor.Tensor) uintptr {
	s, ok := t.Storage().(*Storage)
	if !ok {
		panic(fmt.Sprintf("cuda: a tensor on %T storage given to the cuda backend (upload it first)", t.Storage()))
	}
	if s.owner != b {
		panic("cuda: a tensor of another cuda backend")
	}
	if s.freed {
		panic("cuda: use of freed storage")
	}
	return s.ptr + uintptr(t.Offset())*4
}

// optPtr is ptr, or 0 for a nil tensor.
func (b *Backend) optPtr(t *tensor.Tensor) uintptr {
	if t == nil {
		return 0
	}
	return b.ptr(t)
}

// Alloc implements backend.Backend: zeroed device storage for n float32
// elements, from the caching allocator. It panics when the device is out of
// memory even after the cache is emptied.
func (b *Backend) Alloc(n int) tensor.Storage {
	if n < 0 {
		panic(fmt.Sprintf("cuda: Alloc(%d)", n))
	}
	b.enter()
	defer b.exit()
	s := b.allocLocked(n)
	if n > 0 {
		if res := b.hot(b.drv.fn.memsetD32Async, s.ptr, 0, uintptr(n), b.stream); res != cudaSuccess {
			b.fail(b.drv.errorFor(res, "cuMemsetD32Async"))
		}
	}
	return s
}

// allocLocked takes a block for n elements (not zeroed).
func (b *Backend) allocLocked(n int) *Storage {
	if b.err != nil {
		panic(fmt.Sprintf("cuda: Alloc after a device error: %v", b.err))
	}
	s, err := b.alloc.get(n)
	if err != nil {
		panic(err.Error())
	}
	return s
}

// Free implements backend.Backend: the block returns to the allocator's
// cache (device memory is released by EmptyCache, or when an allocation
// would otherwise fail).
func (b *Backend) Free(st tensor.Storage) {
	s, ok := st.(*Storage)
	if !ok || s == nil {
		panic(fmt.Sprintf("cuda: Free of a %T", st))
	}
	b.enter()
	defer b.exit()
	if s.owner != b {
		panic("cuda: Free of storage of another backend")
	}
	if s.freed {
		panic("cuda: Free of storage already freed")
	}
	b.alloc.put(s)
}

// EmptyCache waits for queued work and returns every cached block to the
// driver.
func (b *Backend) EmptyCache() error {
	b.enter()
	defer b.exit()
	if res := b.hot(b.drv.fn.streamSynchronize, b.stream); res != cudaSuccess {
		b.fail(b.drv.errorFor(res, "cuStreamSynchronize"))
		return b.err
	}
	return b.alloc.releaseCached()
}

// MemStats are the allocator's counters.
type MemStats struct {
	InUseBytes  uint64 // in blocks handed out (size-class bytes)
	CachedBytes uint64 // in blocks waiting in the cache
	DriverAlloc int64  // cuMemAlloc calls
	DriverFree  int64  // cuMemFree calls
	CacheHits   int64  // allocations served from the cache
	Launches    int64  // kernel launches
}

// MemStats returns the allocator's counters.
func (b *Backend) MemStats() MemStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	a := &b.alloc
	return MemStats{a.inUse, a.cached, a.driverAllocs, a.driverFrees, a.hits, b.launches}
}

// Upload implements backend.Backend.
func (b *Backend) Upload(dst *tensor.Tensor, src []float32) {
	backend.CheckSame("upload", len(src), dst)
	if len(src) == 0 {
		return
	}
	b.enter()
	defer b.exit()
	p := b.ptr(dst)
	if b.err != nil {
		return
	}
	// From pageable memory the driver stages the data before it returns, so
	// src may change afterwards.
	if res := call(b.drv.fn.memcpyHtoDAsync, p, uintptr(unsafe.Pointer(&src[0])), uintptr(len(src)*4), b.stream); res != cudaSuccess {
		b.fail(b.drv.errorFor(res, fmt.Sprintf("cuMemcpyHtoDAsync_v2(%d bytes)", len(src)*4)))
	}
}

// uploadBytes copies raw host bytes to a device address (labels).
func (b *Backend) uploadBytes(dst uintptr, src unsafe.Pointer, n int) {
	if b.err != nil || n == 0 {
		return
	}
	if res := call(b.drv.fn.memcpyHtoDAsync, dst, uintptr(src), uintptr(n), b.stream); res != cudaSuccess {
		b.fail(b.drv.errorFor(res, fmt.Sprintf("cuMemcpyHtoDAsync_v2(%d bytes)", n)))
	}
}

// Download implements backend.Backend. It waits for the queued work; it
// panics with the deferred error if one occurred (the values would be
// meaningless).
func (b *Backend) Download(dst []float32, src *tensor.Tensor) {
	backend.CheckSame("download", len(dst), src)
	if len(dst) == 0 {
		return
	}
	b.enter()
	defer b.exit()
	p := b.ptr(src)
	if b.err == nil {
		if res := call(b.drv.fn.memcpyDtoHAsync, uintptr(unsafe.Pointer(&dst[0])), p, uintptr(len(dst)*4), b.stream); res != cudaSuccess {
			b.fail(b.drv.errorFor(res, fmt.Sprintf("cuMemcpyDtoHAsync_v2(%d bytes)", len(dst)*4)))
		} else if res := b.hot(b.drv.fn.streamSynchronize, b.stream); res != cudaSuccess {
			b.fail(b.drv.errorFor(res, "cuStreamSynchronize"))
		}
	}
	if b.err != nil {
		panic(fmt.Sprintf("cuda: Download: %v", b.err))
	}
}

// Copy implements backend.Backend.
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	backend.CheckSame("copy", src.Numel(), dst)
	if src.Numel() == 0 {
		return
	}
	b.enter()
	defer b.exit()
	d, s := b.ptr(dst), b.ptr(src)
	if b.err != nil {
		return
	}
	if res := b.hot(b.drv.fn.memcpyDtoDAsync, d, s, uintptr(src.Numel()*4), b.stream); res != cudaSuccess {
		b.fail(b.drv.errorFor(res, "cuMemcpyDtoDAsync_v2"))
	}
}

// Synchronize implements backend.Backend: it waits for the stream and
// returns the deferred error, if any (it stays: the context is unusable
// after most device faults).
func (b *Backend) Synchronize() error {
	b.enter()
	defer b.exit()
	if b.err != nil {
		return b.err
	}
	if res := b.hot(b.drv.fn.streamSynchronize, b.stream); res != cudaSuccess {
		b.fail(b.drv.errorFor(res, "cuStreamSynchronize"))
	}
	return b.err
}

// Time queues f's work between two events on the stream and returns the
// device time it took (cuEventElapsedTime: microsecond resolution). f calls
// the backend's methods as usual.
func (b *Backend) Time(f func()) (time.Duration, error) {
	var start, stop uintptr
	b.enter()
	d := b.drv
	err := d.check(call(d.fn.eventCreate, uintptr(unsafe.Pointer(&start)), eventDefault), "cuEventCreate")
	if err == nil {
		err = d.check(call(d.fn.eventCreate, uintptr(unsafe.Pointer(&stop)), eventDefault), "cuEventCreate")
	}
	if err == nil {
		err = d.check(call(d.fn.eventRecord, start, b.stream), "cuEventRecord")
	}
	b.exit()
	if err == nil {
		f()
	}
	b.enter()
	defer b.exit()
	var ms float32
	if err == nil {
		err = d.check(call(d.fn.eventRecord, stop, b.stream), "cuEventRecord")
	}
	if err == nil {
		err = d.check(call(d.fn.eventSynchronize, stop), "cuEventSynchronize")
	}
	if err == nil {
		err = d.check(call(d.fn.eventElapsed, uintptr(unsafe.Pointer(&ms)), start, stop), "cuEventElapsedTime")
	}
	for _, e := range []uintptr{start, stop} {
		if e != 0 {
			call(d.fn.eventDestroy, e)
		}
	}
	if err == nil {
		err = b.err
	}
	return time.Duration(float64(ms) * float64(time.Millisecond)), err
}

// Scratch buffers: device workspace reused across ops (stream order makes
// that safe), grown on demand.
const (
	scratchCol = iota
	scratchParts
	scratchStats
	scratchLabels
	scratchMarginG
	scratchMarginMP
	scratchSplitK
	numScratch
)

// scratchPtr returns a workspace of at least n float32 elements.
func (b *Backend) scratchPtr(slot, n int) uintptr {
	s := b.scratch[slot]
	if s == nil || s.n < n {
		if s != nil {
			b.alloc.put(s)
		}
		s = b.allocLocked(max(n, 1))
		b.scratch[slot] = s
	}
	return s.ptr
}
