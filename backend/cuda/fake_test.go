//go:build linux && (amd64 || arm64)

package cuda

import (
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/dmlgo/dmlgo/backend/cuda/internal/fakecuda"
)

// The tests of this package run against a stand-in driver library built
// with the C++ compiler (package fakecuda): "driver" (the symbols only),
// "kernels" (with the kernels compiled for the CPU), "nolaunch" (missing
// cuLaunchKernel). Tests skip, saying why, when no compiler is there.

var fakeLibs struct {
	sync.Mutex
	dir   string
	paths map[string]string
	errs  map[string]error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fakeLibs.dir != "" {
		os.RemoveAll(fakeLibs.dir)
	}
	os.Exit(code)
}

// fakeLib returns the path of the stand-in library variant, building it
// once per test binary.
func fakeLib(t testing.TB, variant string) string {
	t.Helper()
	fakeLibs.Lock()
	defer fakeLibs.Unlock()
	if p, ok := fakeLibs.paths[variant]; ok {
		return p
	}
	if err, ok := fakeLibs.errs[variant]; ok {
		t.Skipf("stand-in driver not available: %v", err)
	}
	if fakeLibs.paths == nil {
		fakeLibs.paths, fakeLibs.errs = map[string]string{}, map[string]error{}
	}
	if _, err := fakecuda.Compiler(); err != nil {
		fakeLibs.errs[variant] = err
		t.Skipf("stand-in driver not available: %v", err)
	}
	if _, err := fakecuda.SourceDir(); err != nil {
		fakeLibs.errs[variant] = err
		t.Skipf("stand-in driver not available: %v", err)
	}
	if fakeLibs.dir == "" {
		d, err := os.MkdirTemp("", "dmlgo-fakecuda")
		if err != nil {
			t.Fatal(err)
		}
		fakeLibs.dir = d
	}
	dir := fakeLibs.dir + "/" + variant
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var p string
	var err error
	switch variant {
	case "driver":
		p, err = fakecuda.Build(dir, false)
	case "kernels":
		p, err = fakecuda.Build(dir, true)
	case "nolaunch":
		p, err = fakecuda.Build(dir, false, "FAKECUDA_OMIT_LAUNCH")
	default:
		t.Fatalf("unknown variant %q", variant)
	}
	if err != nil {
		// The compiler is there, so a failed build is a real failure.
		fakeLibs.errs[variant] = err
		t.Fatalf("building the stand-in driver: %v", err)
	}
	fakeLibs.paths[variant] = p
	return p
}

// openFake opens a backend on a stand-in library variant after setting the
// given FAKECUDA_* variables (NAME=value), and closes it at the end.
func openFake(t *testing.T, variant string, env ...string) *Backend {
	t.Helper()
	lib := fakeLib(t, variant)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	b, err := Open(Options{Library: lib})
	if err != nil {
		t.Fatalf("Open(%s): %v", variant, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// fakeStats are the stand-in driver's counters (fakecuda_stats).
type fakeStats struct {
	allocs, frees, launches, ctxErrors, copies, setCurrent, threads, barrierErrors int64
	liveBytes                                                                      int64
}

func readFakeStats(t *testing.T, lib string) fakeStats {
	t.Helper()
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	defer purego.Dlclose(h)
	fn, err := purego.Dlsym(h, "fakecuda_stats")
	if err != nil {
		t.Fatal(err)
	}
	var out [8]int64
	live, _, _ := purego.SyscallN(fn, uintptr(unsafe.Pointer(&out[0])))
	return fakeStats{out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], int64(live)}
}
