//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestFakeChecksContext is the control for TestContextOnEveryThread: the
// stand-in driver refuses calls from a thread without the context, as the
// real driver does.
func TestFakeChecksContext(t *testing.T) {
	b := openFake(t, "kernels")
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		call(b.drv.fn.ctxSetCurrent, 0)
		var p uintptr
		done <- b.drv.check(call(b.drv.fn.memAlloc, uintptr(unsafe.Pointer(&p)), 256), "cuMemAlloc_v2")
	}()
	err := <-done
	var e *Error
	if !errors.As(err, &e) || e.Name != "CUDA_ERROR_INVALID_CONTEXT" {
		t.Fatalf("a call without a current context: %v", err)
	}
}

// TestContextOnEveryThread: goroutines on several OS threads use one
// backend at once; every driver call finds the context current.
func TestContextOnEveryThread(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	b := openFake(t, "kernels")
	lib := fakeLib(t, "kernels")
	f0 := readFakeStats(t, lib)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Pin this goroutine to its own thread for a while, so that the
			// workers' calls come from different OS threads.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for it := 0; it < 20; it++ {
				n := 37 + w
				s := b.Alloc(n)
				x := tensor.New(s, 0, n)
				vals := make([]float32, n)
				for i := range vals {
					vals[i] = float32(i*w + it)
				}
				b.Upload(x, vals)
				b.Unary(backend.Scale, x, x, 2, 0)
				got := make([]float32, n)
				b.Download(got, x)
				for i := range got {
					if got[i] != 2*vals[i] {
						errs <- fmt.Errorf("worker %d iteration %d: [%d] = %g, want %g", w, it, i, got[i], 2*vals[i])
						return
					}
				}
				b.Free(s)
				runtime.Gosched()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
	f1 := readFakeStats(t, lib)
	if f1.ctxErrors != f0.ctxErrors {
		t.Errorf("%d driver calls found no current context", f1.ctxErrors-f0.ctxErrors)
	}
	if f1.threads < 2 {
		t.Errorf("the calls came from %d OS thread(s); the test wants several", f1.threads)
	}
	t.Logf("driver calls from %d OS threads, %d cuCtxSetCurrent calls", f1.threads, f1.setCurrent-f0.setCurrent)
}
