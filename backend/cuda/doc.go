// Package cuda is dmlgo's CUDA backend, registered as "cuda".
//
// The NVIDIA driver library (libcuda.so.1, or the file named by
// $DMLGO_LIBCUDA) is loaded at run time with github.com/ebitengine/purego:
// no cgo, no CUDA headers or toolkit at build time, so the same binary runs
// on machines with and without a GPU. When the library is missing, cuInit
// fails or there is no device, the registered factory returns an error of
// one line saying so, and backend.Select("auto") falls back to the CPU with
// that reason.
//
// The kernels are CUDA C (kernels/*.cu), compiled to PTX for sm_80 by
// kernels/gen.sh and committed; the PTX is embedded and JIT-compiled by the
// driver for the device at hand when the backend opens ($DMLGO_PTX_DIR
// points at a folder of fresh PTX instead). Their formulas mirror the CPU
// reference kernels (the ref* functions of backend/cpu, one file per op
// family, and backend/cpu/margin.go): float64
// where the reference sums in float64 (reductions, statistics, the margin
// head), float32 elsewhere, and no atomics, so every result is
// deterministic.
//
// Threading: a CUDA context is current per OS thread. Every method takes
// the backend's mutex, locks its goroutine to its OS thread and makes the
// backend's (primary) context current before any driver call.
//
// Memory: a caching allocator with size classes (alloc.go); kernel
// arguments are packed into a buffer owned by the backend, so a launch
// allocates nothing on the Go heap.
//
// Status: the driver bindings, the allocator and every kernel's arithmetic
// are tested on machines without a GPU against a stand-in driver that runs
// the kernels' C++ on the CPU (internal/fakecuda). Whether the PTX loads
// and gives the same results on a real GPU is checked by scripts/gpu-check.sh
// on a GPU machine; see the README's CUDA section for what has and has not run there.
package cuda
