// fakecuda: a stand-in for libcuda.so.1 for tests on machines without a GPU.
//
// It exports the driver symbols the cuda backend binds, with the driver's
// signatures and CUresult codes, and fakes one device whose "device memory"
// is host memory. With FAKECUDA_KERNELS defined (the default build of
// fakecuda.go), the kernels of backend/cuda/kernels are compiled in as host
// C++ (emu.h) and cuLaunchKernel runs them: blocks in order, the threads of a
// block as coroutines that switch at __syncthreads.
//
// Behaviour is steered by environment variables read at each call:
//   FAKECUDA_INIT         "nodevice": cuInit returns CUDA_ERROR_NO_DEVICE;
//                         "zero": cuInit succeeds, cuDeviceGetCount gives 0;
//                         a number: cuInit returns that CUresult
//   FAKECUDA_MEM_LIMIT    bytes of device memory (cuMemAlloc beyond it fails
//                         with CUDA_ERROR_OUT_OF_MEMORY)
//   FAKECUDA_SMS          multiprocessor count (default 4)
//   FAKECUDA_MAX_THREADS  max threads per block (default 1024)
//   FAKECUDA_MAX_GRID_Z   max grid z (default 65535)
// Built with FAKECUDA_OMIT_LAUNCH, it lacks cuLaunchKernel (a driver too old).
// Every call that needs a context checks that the calling OS thread has the
// primary context current (cuCtxSetCurrent) and fails with
// CUDA_ERROR_INVALID_CONTEXT otherwise, as the real driver does.
// fakecuda_stats exposes counters to the tests.

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#ifdef FAKECUDA_KERNELS
#include "emu.h"
dim3 threadIdx, blockIdx, blockDim, gridDim;
#endif

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum {
    OK = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NOT_INITIALIZED = 3,
    NO_DEVICE = 100,
    INVALID_DEVICE = 101,
    INVALID_IMAGE = 200,
    INVALID_CONTEXT = 201,
    INVALID_PTX = 218,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    ILLEGAL_ADDRESS = 700,
    LAUNCH_OUT_OF_RESOURCES = 701,
    LAUNCH_FAILED = 719,
    UNKNOWN = 999,
};

static const struct {
    int code;
    const char *name, *desc;
} kErrors[] = {
    {OK, "CUDA_SUCCESS", "no error"},
    {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

// ---- state ----

static std::mutex mu;              // guards everything below
static bool initialised;
static int primaryRefs;
static char primaryCtx[64];        // the context handle is its address
static thread_local void* current; // the calling thread's current context
static std::map<uintptr_t, size_t> live; // allocations: address -> bytes
static size_t liveBytes;
static char streamObjs[1024];
static int nextStream;
static struct Event {
    double t;
} events[1024];
static int nextEvent;

// counters for fakecuda_stats, in this order
static long long nAlloc, nFree, nLaunch, nCtxErrors, nCopies, nSetCurrent, nThreadsSeen, nBarrierErrors;
static std::map<pthread_t, int> threadsSeen;

static long envInt(const char* name, long def) {
    const char* v = getenv(name);
    if (!v || !*v) return def;
    return strtol(v, nullptr, 0);
}

static size_t memLimit() { return (size_t)envInt("FAKECUDA_MEM_LIMIT", 16L << 30); }

// needCtx: the calling thread must have the primary context current.
static CUresult needCtx() {
    if (!initialised) return NOT_INITIALIZED;
    if (current != (void*)primaryCtx) {
        nCtxErrors++;
        return INVALID_CONTEXT;
    }
    if (threadsSeen.emplace(pthread_self(), 1).second) nThreadsSeen++;
    return OK;
}

// inRange: [p, p+n) lies inside one live allocation.
static bool inRange(CUdeviceptr p, size_t n) {
    auto it = live.upper_bound((uintptr_t)p);
    if (it == live.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + n <= it->first + it->second;
}

#define LOCK std::lock_guard<std::mutex> lock(mu)
#define CTX                               \
    do {                                  \
        CUresult r_ = needCtx();          \
        if (r_ != OK) return r_;          \
    } while (0)

// ---- modules and kernels ----

typedef void (*invoker)(void* fn, void** params);
struct Kernel {
    const char* name;
    void* fn;
    invoker call;
};

#ifdef FAKECUDA_KERNELS

template <typename... A, size_t... I>
static void invokeImpl(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*static_cast<A*>(p[I])...);
}
template <typename... A>
static void invoke(void* fn, void** p) {
    invokeImpl(reinterpret_cast<void (*)(A...)>(fn), p, std::index_sequence_for<A...>{});
}
template <typename... A>
static Kernel entry(const char* name, void (*f)(A...)) {
    return Kernel{name, reinterpret_cast<void*>(f), &invoke<A...>};
}

#include "kernels_all.inc" // the .cu files, and kKernels[] (generated by fakecuda.go)
#else
static const Kernel kKernels[] = {{"", nullptr, nullptr}};
#endif


#ifdef FAKECUDA_KERNELS
// The block scheduler: one coroutine per thread of the block.
enum { READY, AT_BARRIER, DONE };
struct Coro {
    ucontext_t ctx;
    int state;
    dim3 tid;
};
static ucontext_t schedCtx;
static std::vector<Coro> coros;
static std::vector<char*> stacks;
static int cur;
static const Kernel* runKernel;
static void** runParams;
static const size_t kStack = 256 << 10;

void __syncthreads() {
    coros[cur].state = AT_BARRIER;
    swapcontext(&coros[cur].ctx, &schedCtx);
}

// The warp-level tensor-core op, emulated with per-warp scratch and two
// barriers (see emu.h). Rows of A and columns of B are accumulated in k
// order with fmaf; the hardware's internal order is unspecified.
static float mmaA[32][16][8], mmaB[32][8][8];

void emu_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2]) {
    int lane = threadIdx.x % 32, w = threadIdx.x / 32, g = lane / 4, t = lane % 4;
    auto f = [](unsigned u) {
        float x;
        memcpy(&x, &u, sizeof x);
        return x;
    };
    mmaA[w][g][t] = f(a[0]);
    mmaA[w][g + 8][t] = f(a[1]);
    mmaA[w][g][t + 4] = f(a[2]);
    mmaA[w][g + 8][t + 4] = f(a[3]);
    mmaB[w][t][g] = f(b[0]);
    mmaB[w][t + 4][g] = f(b[1]);
    __syncthreads();
    for (int r = 0; r < 4; r++) {
        int row = g + (r >= 2 ? 8 : 0), col = 2 * t + (r & 1);
        float s = d[r];
        for (int k = 0; k < 8; k++) s = fmaf(mmaA[w][row][k], mmaB[w][k][col], s);
        d[r] = s;
    }
    __syncthreads();
}

static void coroMain() {
    runKernel->call(runKernel->fn, runParams);
    coros[cur].state = DONE;
}

// runBlock runs every thread of the current block; false when the threads
// disagree about a barrier (some finished while others wait at one).
static bool runBlock(int nthreads) {
    for (int t = 0; t < nthreads; t++) {
        Coro& c = coros[t];
        getcontext(&c.ctx);
        c.ctx.uc_stack.ss_sp = stacks[t];
        c.ctx.uc_stack.ss_size = kStack;
        c.ctx.uc_link = &schedCtx;
        makecontext(&c.ctx, coroMain, 0);
        c.state = READY;
        c.tid = dim3{(unsigned)t, 0, 0};
    }
    for (;;) {
        for (int t = 0; t < nthreads; t++) {
            if (coros[t].state != READY) continue;
            cur = t;
            threadIdx = coros[t].tid;
            swapcontext(&schedCtx, &coros[t].ctx);
        }
        int done = 0, waiting = 0;
        for (int t = 0; t < nthreads; t++) {
            if (coros[t].state == DONE) done++;
            if (coros[t].state == AT_BARRIER) waiting++;
        }
        if (done == nthreads) return true;
        if (done > 0) return false; // a barrier some threads never reach
        for (int t = 0; t < nthreads; t++) coros[t].state = READY;
    }
}
#endif


extern "C" {

CUresult cuGetErrorName(CUresult e, const char** s) {
    for (auto& k : kErrors)
        if (k.code == e) {
            *s = k.name;
            return OK;
        }
    *s = nullptr;
    return INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult e, const char** s) {
    for (auto& k : kErrors)
        if (k.code == e) {
            *s = k.desc;
            return OK;
        }
    *s = nullptr;
    return INVALID_VALUE;
}

CUresult cuInit(unsigned flags) {
    LOCK;
    if (flags != 0) return INVALID_VALUE;
    const char* mode = getenv("FAKECUDA_INIT");
    if (mode && strcmp(mode, "nodevice") == 0) return NO_DEVICE;
    if (mode && *mode >= '0' && *mode <= '9') {
        int code = atoi(mode);
        if (code != 0) return code;
    }
    initialised = true;
    return OK;
}

CUresult cuDriverGetVersion(int* v) {
    *v = 12040;
    return OK;
}

CUresult cuDeviceGetCount(int* n) {
    LOCK;
    if (!initialised) return NOT_INITIALIZED;
    const char* mode = getenv("FAKECUDA_INIT");
    *n = (mode && strcmp(mode, "zero") == 0) ? 0 : 1;
    return OK;
}

CUresult cuDeviceGet(int* d, int ordinal) {
    LOCK;
    if (!initialised) return NOT_INITIALIZED;
    if (ordinal != 0) return INVALID_DEVICE;
    *d = 0;
    return OK;
}

CUresult cuDeviceGetName(char* name, int len, int dev) {
    if (dev != 0) return INVALID_DEVICE;
    snprintf(name, len, "dmlgo fakecuda (host emulation)");
    return OK;
}

CUresult cuDeviceGetAttribute(int* v, int attr, int dev) {
    if (dev != 0) return INVALID_DEVICE;
    switch (attr) {
    case 1: *v = (int)envInt("FAKECUDA_MAX_THREADS", 1024); return OK; // max threads per block
    case 2: *v = 1024; return OK;                                      // max block dim x
    case 5: *v = 2147483647; return OK;                                // max grid x
    case 6: *v = 65535; return OK;                                     // max grid y
    case 7: *v = (int)envInt("FAKECUDA_MAX_GRID_Z", 65535); return OK; // max grid z
    case 8: *v = 48 << 10; return OK;                                  // shared memory per block
    case 10: *v = 32; return OK;                                       // warp size
    case 16: *v = (int)envInt("FAKECUDA_SMS", 4); return OK;           // multiprocessors
    case 39: *v = 2048; return OK;                                     // threads per multiprocessor
    case 75: *v = 8; return OK;                                        // compute capability
    case 76: *v = 0; return OK;
    }
    return INVALID_VALUE;
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, int dev) {
    if (dev != 0) return INVALID_DEVICE;
    *bytes = memLimit();
    return OK;
}

CUresult cuDevicePrimaryCtxRetain(void** ctx, int dev) {
    LOCK;
    if (!initialised) return NOT_INITIALIZED;
    if (dev != 0) return INVALID_DEVICE;
    primaryRefs++;
    *ctx = primaryCtx;
    return OK;
}

CUresult cuDevicePrimaryCtxRelease_v2(int dev) {
    LOCK;
    if (dev != 0) return INVALID_DEVICE;
    if (primaryRefs > 0) primaryRefs--;
    return OK;
}

CUresult cuCtxSetCurrent(void* ctx) {
    if (ctx != nullptr && ctx != (void*)primaryCtx) return INVALID_CONTEXT;
    current = ctx;
    LOCK;
    nSetCurrent++;
    return OK;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    LOCK;
    CTX;
    if (bytes == 0) return INVALID_VALUE;
    if (liveBytes + bytes > memLimit()) return OUT_OF_MEMORY;
    void* m = aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (!m) return OUT_OF_MEMORY;
    memset(m, 0xA5, bytes); // garbage, as real device memory
    live[(uintptr_t)m] = bytes;
    liveBytes += bytes;
    nAlloc++;
    *p = (CUdeviceptr)(uintptr_t)m;
    return OK;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
    LOCK;
    CTX;
    auto it = live.find((uintptr_t)p);
    if (it == live.end()) return INVALID_VALUE;
    liveBytes -= it->second;
    live.erase(it);
    free((void*)(uintptr_t)p);
    nFree++;
    return OK;
}

CUresult cuMemGetInfo_v2(size_t* freeBytes, size_t* total) {
    LOCK;
    CTX;
    *total = memLimit();
    *freeBytes = *total - liveBytes;
    return OK;
}

static CUresult copyChecked(void* dst, const void* src, size_t n, bool dstDev, bool srcDev) {
    LOCK;
    CTX;
    if (dstDev && !inRange((CUdeviceptr)(uintptr_t)dst, n)) return INVALID_VALUE;
    if (srcDev && !inRange((CUdeviceptr)(uintptr_t)src, n)) return INVALID_VALUE;
    memmove(dst, src, n);
    nCopies++;
    return OK;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) { return copyChecked((void*)(uintptr_t)d, h, n, true, false); }
CUresult cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) { return copyChecked(h, (void*)(uintptr_t)d, n, false, true); }
CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) { return copyChecked((void*)(uintptr_t)d, (void*)(uintptr_t)s, n, true, true); }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, void*) { return cuMemcpyHtoD_v2(d, h, n); }
CUresult cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, void*) { return cuMemcpyDtoH_v2(h, d, n); }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void*) { return cuMemcpyDtoD_v2(d, s, n); }

CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned v, size_t n) {
    LOCK;
    CTX;
    if (!inRange(d, n * 4)) return INVALID_VALUE;
    uint32_t* p = (uint32_t*)(uintptr_t)d;
    for (size_t i = 0; i < n; i++) p[i] = v;
    return OK;
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned v, size_t n, void*) { return cuMemsetD32_v2(d, v, n); }

struct Module {
    int id;
    std::string image; // the PTX text: a kernel is found only if the image declares it
};
static Module modules[4096];
static int nextModule;

static CUresult loadModule(void** mod, const void* image) {
    LOCK;
    CTX;
    if (!image) return INVALID_VALUE;
    if (strncmp((const char*)image, "BADPTX", 6) == 0) return INVALID_PTX;
    if (nextModule >= 4096) return OUT_OF_MEMORY;
    modules[nextModule].id = nextModule;
    modules[nextModule].image = (const char*)image;
    *mod = &modules[nextModule++];
    return OK;
}

CUresult cuModuleLoadData(void** mod, const void* image) { return loadModule(mod, image); }

CUresult cuModuleLoadDataEx(void** mod, const void* image, unsigned n, int* opts, void** vals) {
    CUresult r = loadModule(mod, image);
    if (r == INVALID_PTX) {
        for (unsigned i = 0; i < n; i++)
            if (opts[i] == 5) { // CU_JIT_ERROR_LOG_BUFFER, its size in the option after
                size_t size = 0;
                for (unsigned j = 0; j < n; j++)
                    if (opts[j] == 6) size = (size_t)(uintptr_t)vals[j];
                if (size > 0) snprintf((char*)vals[i], size, "ptxas fatal   : fakecuda: image starts with BADPTX");
            }
    }
    return r;
}

CUresult cuModuleGetFunction(void** fn, void* mod, const char* name) {
    LOCK;
    CTX;
    if (!mod) return INVALID_HANDLE;
    // As the driver: only kernels that the loaded PTX declares exist.
    std::string entry = std::string(".entry ") + name + "(";
    if (((Module*)mod)->image.find(entry) == std::string::npos) return NOT_FOUND;
    for (auto& k : kKernels)
        if (k.fn && strcmp(k.name, name) == 0) {
            *fn = (void*)&k;
            return OK;
        }
#ifndef FAKECUDA_KERNELS
    // The driver-only build: a handle whose launches fail with NOT_FOUND.
    static Kernel placeholder = {"placeholder", nullptr, nullptr};
    *fn = &placeholder;
    return OK;
#else
    return NOT_FOUND;
#endif
}

CUresult cuModuleUnload(void* mod) {
    LOCK;
    CTX;
    return mod ? OK : INVALID_HANDLE;
}

CUresult cuFuncGetAttribute(int* v, int attr, void* fn) {
    LOCK;
    CTX;
    if (!fn) return INVALID_HANDLE;
    if (attr == 0) *v = (int)envInt("FAKECUDA_MAX_THREADS", 1024);
    else if (attr == 4) *v = 32;
    else *v = 0;
    return OK;
}

#ifndef FAKECUDA_OMIT_LAUNCH
CUresult cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned smem, void* stream, void** params, void** extra) {
    LOCK;
    CTX;
    if (!fn || !params || extra) return INVALID_VALUE;
    if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0) return INVALID_VALUE;
    if (gy > 65535 || gz > (unsigned)envInt("FAKECUDA_MAX_GRID_Z", 65535) || by != 1 || bz != 1) return INVALID_VALUE;
    if (bx > (unsigned)envInt("FAKECUDA_MAX_THREADS", 1024)) return INVALID_VALUE;
    if (smem != 0) return INVALID_VALUE;
    nLaunch++;
#ifdef FAKECUDA_KERNELS
    const Kernel* k = (const Kernel*)fn;
    if (coros.size() < bx) coros.resize(bx);
    while (stacks.size() < bx) stacks.push_back((char*)malloc(kStack));
    runKernel = k;
    runParams = params;
    blockDim = dim3{bx, 1, 1};
    gridDim = dim3{gx, gy, gz};
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                blockIdx = dim3{x, y, z};
                if (!runBlock((int)bx)) {
                    nBarrierErrors++;
                    fprintf(stderr, "fakecuda: %s: block (%u,%u,%u): threads diverge at __syncthreads\n", k->name, x, y, z);
                    return LAUNCH_FAILED;
                }
            }
    return OK;
#else
    return NOT_FOUND;
#endif
}
#endif // FAKECUDA_OMIT_LAUNCH

// ---- streams and events ----

CUresult cuStreamCreate(void** s, unsigned flags) {
    LOCK;
    CTX;
    if (nextStream >= 1024) return OUT_OF_MEMORY;
    *s = &streamObjs[nextStream++];
    return OK;
}
CUresult cuStreamSynchronize(void*) {
    LOCK;
    CTX;
    return OK;
}
CUresult cuStreamDestroy_v2(void* s) {
    LOCK;
    CTX;
    return s ? OK : INVALID_HANDLE;
}

static double now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
CUresult cuEventCreate(void** e, unsigned) {
    LOCK;
    CTX;
    if (nextEvent >= 1024) return OUT_OF_MEMORY;
    *e = &events[nextEvent++];
    return OK;
}
CUresult cuEventRecord(void* e, void*) {
    LOCK;
    CTX;
    ((Event*)e)->t = now();
    return OK;
}
CUresult cuEventSynchronize(void*) {
    LOCK;
    CTX;
    return OK;
}
CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
    LOCK;
    CTX;
    *ms = (float)(((Event*)b)->t - ((Event*)a)->t);
    return OK;
}
CUresult cuEventDestroy_v2(void*) {
    LOCK;
    CTX;
    return OK;
}

// fakecuda_stats fills out[0..8): allocations, frees, launches, context
// errors, copies, cuCtxSetCurrent calls, distinct OS threads that made
// context calls, barrier errors; and returns the live device bytes.
long long fakecuda_stats(long long* out) {
    LOCK;
    long long v[] = {nAlloc, nFree, nLaunch, nCtxErrors, nCopies, nSetCurrent, nThreadsSeen, nBarrierErrors};
    memcpy(out, v, sizeof v);
    return (long long)liveBytes;
}

} // extern "C"
