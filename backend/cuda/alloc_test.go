//go:build linux && (amd64 || arm64)

package cuda

import (
	"runtime"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

func TestSizeClass(t *testing.T) {
	prev := uint64(0)
	for n := uint64(1); n < 1<<22; n += 1 + n/7 {
		c := sizeClass(n)
		if c < n || c%128 != 0 {
			t.Fatalf("sizeClass(%d) = %d", n, c)
		}
		if n > 512 && float64(c) > 1.25*float64(n)+1 {
			t.Fatalf("sizeClass(%d) = %d wastes more than 25%%", n, c)
		}
		if c < prev {
			t.Fatalf("sizeClass not monotone at %d", n)
		}
		prev = c
	}
	for n, want := range map[uint64]uint64{1: 512, 512: 512, 513: 640, 1024: 1024, 1025: 1280, 4000: 4096, 6 << 20: 6 << 20, 7<<20 + 1: 8 << 20} {
		if got := sizeClass(n); got != want {
			t.Errorf("sizeClass(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestAllocatorCaches: a freed block is reused for the next request of its
// class without a driver call, and comes back zeroed.
func TestAllocatorCaches(t *testing.T) {
	b := openFake(t, "kernels")
	lib := fakeLib(t, "kernels")
	s0, f0 := b.MemStats(), readFakeStats(t, lib)
	a := b.Alloc(1000)
	at := tensor.New(a, 0, 1000)
	vals := make([]float32, 1000)
	for i := range vals {
		vals[i] = float32(i + 1)
	}
	b.Upload(at, vals)
	b.Free(a)
	c := b.Alloc(1001) // 4004 bytes: the same 4096-byte class
	ct := tensor.New(c, 0, 1001)
	got := make([]float32, 1001)
	b.Download(got, ct)
	for i, v := range got {
		if v != 0 {
			t.Fatalf("reused block not zeroed: [%d] = %g", i, v)
		}
	}
	s1, f1 := b.MemStats(), readFakeStats(t, lib)
	if s1.DriverAlloc-s0.DriverAlloc != 1 || s1.CacheHits-s0.CacheHits != 1 || f1.allocs-f0.allocs != 1 {
		t.Errorf("two allocations of one class: %d driver allocations (driver says %d), %d cache hits; want 1, 1, 1",
			s1.DriverAlloc-s0.DriverAlloc, f1.allocs-f0.allocs, s1.CacheHits-s0.CacheHits)
	}
	if s1.InUseBytes != 4096 || s1.CachedBytes != 0 {
		t.Errorf("in use %d, cached %d; want 4096, 0", s1.InUseBytes, s1.CachedBytes)
	}
	b.Free(c)
	if err := b.EmptyCache(); err != nil {
		t.Fatal(err)
	}
	s2, f2 := b.MemStats(), readFakeStats(t, lib)
	if s2.CachedBytes != 0 || s2.InUseBytes != 0 || f2.frees-f1.frees != 1 {
		t.Errorf("after EmptyCache: %+v, driver frees %d", s2, f2.frees-f1.frees)
	}
	// Zero-sized storage needs no block.
	z := b.Alloc(0)
	if z.Len() != 0 {
		t.Error("Alloc(0)")
	}
	b.Free(z)
}

// TestAllocatorOutOfMemory: when the device is full, the cache goes back to
// the driver and the allocation is retried; when nothing is cached the
// error names the call and the CUresult.
func TestAllocatorOutOfMemory(t *testing.T) {
	b := openFake(t, "kernels", "FAKECUDA_MEM_LIMIT=8388608") // 8 MiB
	a := b.Alloc(6 << 18)                                     // 6 MiB
	b.Free(a)
	s0 := b.MemStats()
	c := b.Alloc(7<<18 + 1) // the 8 MiB class: fits only once the 6 MiB block is released
	s1 := b.MemStats()
	if s1.DriverFree-s0.DriverFree != 1 || s1.CachedBytes != 0 || s1.InUseBytes != 8<<20 {
		t.Errorf("after the retry: %+v (before %+v)", s1, s0)
	}
	defer func() {
		r := recover()
		msg, _ := r.(string)
		if !strings.Contains(msg, "cuMemAlloc_v2(") || !strings.Contains(msg, "CUDA_ERROR_OUT_OF_MEMORY") {
			t.Errorf("panic %v should name the call and the error", r)
		}
		b.Free(c)
	}()
	b.Alloc(1 << 18)
}

func TestFreeChecks(t *testing.T) {
	b := openFake(t, "kernels")
	expectPanic := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			r := recover()
			if msg, _ := r.(string); !strings.Contains(msg, want) {
				t.Errorf("%s: panic %v, want %q", what, r, want)
			}
		}()
		f()
	}
	s := b.Alloc(10)
	b.Free(s)
	expectPanic("double free", "already freed", func() { b.Free(s) })
	expectPanic("use after free", "use of freed storage", func() {
		x := tensor.New(s, 0, 10)
		b.Unary(backend.Relu, x, x, 0, 0)
	})
	expectPanic("host storage", "Free of a *tensor.HostStorage", func() { b.Free(&tensor.HostStorage{}) })
}

// TestLaunchAllocatesNothing: building kernel arguments and launching, and
// an Alloc/Free pair in steady state, allocate nothing on the Go heap.
func TestLaunchAllocatesNothing(t *testing.T) {
	b := openFake(t, "kernels")
	x := tensor.New(b.Alloc(64), 0, 64)
	y := tensor.New(b.Alloc(64), 0, 64)
	px, py := b.ptr(x), b.ptr(y)
	// AllocsPerRun counts the whole process's allocations; the fewest of
	// three counts leaves out what the runtime or another goroutine
	// allocated meanwhile (a loaded machine under -race), while an
	// allocation of the code measured shows in every count.
	fewest := func(f func()) float64 {
		n := testing.AllocsPerRun(50, f)
		for range 2 {
			n = min(n, testing.AllocsPerRun(50, f))
		}
		return n
	}
	b.enter()
	n := fewest(func() {
		b.args.reset().ptr(px).ptr(py).i64(64).i32(int(backend.Scale)).f32(2).f32(0)
		b.launch(kUnary, 1, 1, 1, 64)
	})
	b.exit()
	if n != 0 {
		t.Errorf("a launch allocates %v times", n)
	}
	b.Free(b.Alloc(100))
	if n := fewest(func() { b.Free(b.Alloc(100)) }); n != 0 {
		t.Errorf("an Alloc/Free pair allocates %v times", n)
	}
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(x)
	runtime.KeepAlive(y)
}
