//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The driver layer: libcuda.so.1 loaded at run time with purego (no cgo,
// no cuda.h at build time), the versioned symbols bound by name, and every
// CUresult turned into an *Error naming the call and the result.
//
// Calls go through purego.SyscallN with uintptr arguments. None of the
// driver functions used here takes a float by value, so the integer-register
// convention SyscallN implements is the right one for all of them.

// LibEnv names the environment variable that points the backend at another
// driver library file (tests load a stand-in through it).
const LibEnv = "DMLGO_LIBCUDA"

// defaultLib is the driver's soname, as the NVIDIA driver installs it.
const defaultLib = "libcuda.so.1"

// CUresult codes the Go side acts on (cuda.h, CUresult).
const (
	cudaSuccess        = 0
	cudaErrOutOfMemory = 2
)

// Device and function attributes, JIT options and flags (cuda.h).
const (
	attrMaxThreadsPerBlock      = 1  // CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK
	attrMaxGridDimX             = 5  // …_MAX_GRID_DIM_X
	attrMaxGridDimY             = 6  // …_MAX_GRID_DIM_Y
	attrMaxGridDimZ             = 7  // …_MAX_GRID_DIM_Z
	attrMaxSharedMemoryPerBlock = 8  // …_MAX_SHARED_MEMORY_PER_BLOCK
	attrWarpSize                = 10 // …_WARP_SIZE
	attrMultiprocessorCount     = 16 // …_MULTIPROCESSOR_COUNT
	attrMaxThreadsPerMultiproc  = 39 // …_MAX_THREADS_PER_MULTIPROCESSOR
	attrComputeCapabilityMajor  = 75 // …_COMPUTE_CAPABILITY_MAJOR
	attrComputeCapabilityMinor  = 76 // …_COMPUTE_CAPABILITY_MINOR
	funcAttrMaxThreadsPerBlock  = 0  // CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK
	jitErrorLogBuffer           = 5  // CU_JIT_ERROR_LOG_BUFFER
	jitErrorLogBufferSizeBytes  = 6  // CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
	streamDefault               = 0  // CU_STREAM_DEFAULT: ordered with the legacy stream
	eventDefault                = 0  // CU_EVENT_DEFAULT: with timing
)

// Limits of this package, and the values used when the driver does not
// report an attribute.
const (
	maxKernelArgs                = 32
	errorLogBytes                = 8192
	deviceNameBytes              = 256
	defaultMaxThreadsPerBlock    = 1024
	defaultMultiprocessorCount   = 1
	defaultMaxGridDimYZ          = 65535
	defaultMaxGridDimX           = 1<<31 - 1
	defaultMaxSharedMemPerBlock  = 48 << 10
	defaultWarpSize              = 32
	defaultMaxThreadsPerMultipro = 2048
)

// Error is a failed driver call: the call (with what it acted on) and the
// CUresult's name from cuGetErrorName.
type Error struct {
	Call string // e.g. "cuMemAlloc_v2(4096 bytes)"
	Code int    // the CUresult
	Name string // e.g. "CUDA_ERROR_OUT_OF_MEMORY"
	Desc string // cuGetErrorString, when available
}

func (e *Error) Error() string {
	s := fmt.Sprintf("cuda: %s: %s (%d)", e.Call, e.Name, e.Code)
	if e.Desc != "" {
		s += ": " + e.Desc
	}
	return s
}

// driver holds the library handle and one address per bound symbol.
type driver struct {
	path   string
	handle uintptr
	fn     struct {
		getErrorName, getErrorString                                           uintptr
		init, driverGetVersion                                                 uintptr
		deviceGetCount, deviceGet, deviceGetName, deviceGetAttribute, devMem   uintptr
		primaryCtxRetain, primaryCtxRelease, ctxSetCurrent                     uintptr
		memAlloc, memFree, memGetInfo                                          uintptr
		memcpyHtoD, memcpyDtoH, memcpyDtoD                                     uintptr
		memcpyHtoDAsync, memcpyDtoHAsync, memcpyDtoDAsync                      uintptr
		memsetD32, memsetD32Async                                              uintptr
		moduleLoadData, moduleLoadDataEx, moduleGetFunction, moduleUnload      uintptr
		funcGetAttribute, launchKernel                                         uintptr
		streamCreate, streamSynchronize, streamDestroy                         uintptr
		eventCreate, eventRecord, eventSynchronize, eventElapsed, eventDestroy uintptr
	}
}

// symbols pairs each driver symbol (the versioned name where the driver has
// several) with its slot. Every one must be present; a library lacking one
// is refused with the missing names.
func (d *driver) symbols() []struct {
	name string
	slot *uintptr
} {
	f := &d.fn
	return []struct {
		name string
		slot *uintptr
	}{
		{"cuGetErrorName", &f.getErrorName}, {"cuGetErrorString", &f.getErrorString},
		{"cuInit", &f.init}, {"cuDriverGetVersion", &f.driverGetVersion},
		{"cuDeviceGetCount", &f.deviceGetCount}, {"cuDeviceGet", &f.deviceGet}, {"cuDeviceGetName", &f.deviceGetName},
		{"cuDeviceGetAttribute", &f.deviceGetAttribute}, {"cuDeviceTotalMem_v2", &f.devMem},
		{"cuDevicePrimaryCtxRetain", &f.primaryCtxRetain}, {"cuDevicePrimaryCtxRelease_v2", &f.primaryCtxRelease},
		{"cuCtxSetCurrent", &f.ctxSetCurrent},
		{"cuMemAlloc_v2", &f.memAlloc}, {"cuMemFree_v2", &f.memFree}, {"cuMemGetInfo_v2", &f.memGetInfo},
		{"cuMemcpyHtoD_v2", &f.memcpyHtoD}, {"cuMemcpyDtoH_v2", &f.memcpyDtoH}, {"cuMemcpyDtoD_v2", &f.memcpyDtoD},
		{"cuMemcpyHtoDAsync_v2", &f.memcpyHtoDAsync}, {"cuMemcpyDtoHAsync_v2", &f.memcpyDtoHAsync}, {"cuMemcpyDtoDAsync_v2", &f.memcpyDtoDAsync},
		{"cuMemsetD32_v2", &f.memsetD32}, {"cuMemsetD32Async", &f.memsetD32Async},
		{"cuModuleLoadData", &f.moduleLoadData}, {"cuModuleLoadDataEx", &f.moduleLoadDataEx},
		{"cuModuleGetFunction", &f.moduleGetFunction}, {"cuModuleUnload", &f.moduleUnload},
		{"cuFuncGetAttribute", &f.funcGetAttribute}, {"cuLaunchKernel", &f.launchKernel},
		{"cuStreamCreate", &f.streamCreate}, {"cuStreamSynchronize", &f.streamSynchronize}, {"cuStreamDestroy_v2", &f.streamDestroy},
		{"cuEventCreate", &f.eventCreate}, {"cuEventRecord", &f.eventRecord}, {"cuEventSynchronize", &f.eventSynchronize},
		{"cuEventElapsedTime", &f.eventElapsed}, {"cuEventDestroy_v2", &f.eventDestroy},
	}
}

// SymbolNames lists the driver symbols the backend binds.
func SymbolNames() []string {
	var d driver
	var names []string
	for _, s := range d.symbols() {
		names = append(names, s.name)
	}
	return names
}

// libraryPath is the file to load: $DMLGO_LIBCUDA, else the soname.
func libraryPath() string {
	if p := strings.TrimSpace(os.Getenv(LibEnv)); p != "" {
		return p
	}
	return defaultLib
}

// loadDriver opens the library and binds every symbol. The error is one
// line a person can act on.
func loadDriver(path string) (*driver, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		msg := err.Error()
		if path == defaultLib {
			return nil, fmt.Errorf("cuda: no NVIDIA driver library: cannot load %s (%s)", path, oneLine(msg))
		}
		return nil, fmt.Errorf("cuda: cannot load %s (from %s): %s", path, LibEnv, oneLine(msg))
	}
	d := &driver{path: path, handle: h}
	var missing []string
	for _, s := range d.symbols() {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			missing = append(missing, s.name)
			continue
		}
		*s.slot = addr
	}
	if len(missing) > 0 {
		_ = purego.Dlclose(h)
		return nil, fmt.Errorf("cuda: %s lacks driver symbols %s (driver too old?)", path, strings.Join(missing, ", "))
	}
	return d, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// call runs one driver function and returns its CUresult. As for
// purego.SyscallN, a Go pointer converted to uintptr in the argument list
// of a call to call is moved to the heap and kept alive for the call
// (go:uintptrescapes): the driver may write through it even if the
// goroutine's stack moves meanwhile. That costs an allocation per call; the
// hot paths use Backend.hot instead.
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) int {
	r, _, _ := purego.SyscallN(fn, args...)
	return int(int32(r))
}

// check turns a CUresult into nil or an *Error for the named call.
func (d *driver) check(res int, callName string) error {
	if res == cudaSuccess {
		return nil
	}
	return d.errorFor(res, callName)
}

func (d *driver) errorFor(res int, callName string) *Error {
	e := &Error{Call: callName, Code: res}
	var p *byte
	if call(d.fn.getErrorName, uintptr(res), uintptr(unsafe.Pointer(&p))) == cudaSuccess && p != nil {
		e.Name = cString(p)
	} else {
		e.Name = fmt.Sprintf("unknown CUresult %d", res)
	}
	var q *byte
	if call(d.fn.getErrorString, uintptr(res), uintptr(unsafe.Pointer(&q))) == cudaSuccess && q != nil {
		if s := cString(q); s != "" && s != e.Name {
			e.Desc = s
		}
	}
	return e
}

// cString copies a NUL-terminated C string (at most 4 KiB of it).
func cString(p *byte) string {
	var b []byte
	for i := 0; i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// deviceInfo is what the backend needs to know of its device.
type deviceInfo struct {
	ordinal           int
	name              string
	driverVersion     int // e.g. 12040 for 12.4
	ccMajor, ccMinor  int
	sms               int
	maxThreads        int // per block
	maxThreadsPerSM   int
	maxGrid           [3]int
	maxShared         int // bytes per block
	warp              int
	totalMem          uint64
	attributeFailures []string // attributes the driver refused (defaults used)
}

// openDevice initialises the driver, picks device ordinal and retains its
// primary context. It must run on a locked OS thread; on success the
// context is current on that thread.
func (d *driver) openDevice(ordinal int) (info deviceInfo, dev int32, ctx uintptr, err error) {
	if err := d.check(call(d.fn.init, 0), "cuInit(0)"); err != nil {
		return info, 0, 0, err
	}
	var ver int32
	if err := d.check(call(d.fn.driverGetVersion, uintptr(unsafe.Pointer(&ver))), "cuDriverGetVersion"); err != nil {
		return info, 0, 0, err
	}
	var count int32
	if err := d.check(call(d.fn.deviceGetCount, uintptr(unsafe.Pointer(&count))), "cuDeviceGetCount"); err != nil {
		return info, 0, 0, err
	}
	if count < 1 {
		return info, 0, 0, fmt.Errorf("cuda: the driver (%s) reports no CUDA device", d.path)
	}
	if ordinal < 0 || ordinal >= int(count) {
		return info, 0, 0, fmt.Errorf("cuda: device %d asked for, the driver reports %d", ordinal, count)
	}
	if err := d.check(call(d.fn.deviceGet, uintptr(unsafe.Pointer(&dev)), uintptr(ordinal)), fmt.Sprintf("cuDeviceGet(%d)", ordinal)); err != nil {
		return info, 0, 0, err
	}
	var name [deviceNameBytes]byte
	if err := d.check(call(d.fn.deviceGetName, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)-1), uintptr(dev)), "cuDeviceGetName"); err != nil {
		return info, 0, 0, err
	}
	info.ordinal, info.driverVersion = ordinal, int(ver)
	info.name = cString(&name[0])
	attr := func(a int, def int, what string) int {
		var v int32
		res := call(d.fn.deviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a), uintptr(dev))
		if a == attrComputeCapabilityMinor && res == cudaSuccess && v == 0 {
			return 0
		}
		if res != cudaSuccess || v <= 0 {
			info.attributeFailures = append(info.attributeFailures, what)
			return def
		}
		return int(v)
	}
	info.maxThreads = attr(attrMaxThreadsPerBlock, defaultMaxThreadsPerBlock, "max threads per block")
	info.sms = attr(attrMultiprocessorCount, defaultMultiprocessorCount, "multiprocessor count")
	info.maxThreadsPerSM = attr(attrMaxThreadsPerMultiproc, defaultMaxThreadsPerMultipro, "max threads per multiprocessor")
	info.maxGrid = [3]int{attr(attrMaxGridDimX, defaultMaxGridDimX, "max grid x"), attr(attrMaxGridDimY, defaultMaxGridDimYZ, "max grid y"), attr(attrMaxGridDimZ, defaultMaxGridDimYZ, "max grid z")}
	info.maxShared = attr(attrMaxSharedMemoryPerBlock, defaultMaxSharedMemPerBlock, "max shared memory per block")
	info.warp = attr(attrWarpSize, defaultWarpSize, "warp size")
	info.ccMajor = attr(attrComputeCapabilityMajor, 0, "compute capability major")
	info.ccMinor = attr(attrComputeCapabilityMinor, 0, "compute capability minor")
	var total uint64
	if call(d.fn.devMem, uintptr(unsafe.Pointer(&total)), uintptr(dev)) == cudaSuccess {
		info.totalMem = total
	}
	if err := d.check(call(d.fn.primaryCtxRetain, uintptr(unsafe.Pointer(&ctx)), uintptr(dev)), "cuDevicePrimaryCtxRetain"); err != nil {
		return info, 0, 0, err
	}
	if err := d.check(call(d.fn.ctxSetCurrent, ctx), "cuCtxSetCurrent"); err != nil {
		call(d.fn.primaryCtxRelease, uintptr(dev))
		return info, 0, 0, err
	}
	return info, dev, ctx, nil
}
