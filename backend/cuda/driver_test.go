//go:build linux && (amd64 || arm64)

package cuda

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	_ "github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// Opening fails with one line naming the cause, never a panic.

func TestOpenMissingLibrary(t *testing.T) {
	_, err := Open(Options{Library: "/nonexistent/libcuda.so.1"})
	if err == nil || !strings.Contains(err.Error(), "cannot load /nonexistent/libcuda.so.1") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q should name the file, on one line", err)
	}
	t.Setenv(LibEnv, "/nonexistent/libcuda.so.1")
	_, err = Open(Options{})
	if err == nil || !strings.Contains(err.Error(), LibEnv) {
		t.Fatalf("error %q should name %s", err, LibEnv)
	}
}

func TestOpenInitFailures(t *testing.T) {
	lib := fakeLib(t, "driver")
	for _, c := range []struct{ mode, want string }{
		{"nodevice", "cuda: cuInit(0): CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected"},
		{"999", "cuda: cuInit(0): CUDA_ERROR_UNKNOWN (999)"},
		{"12345", "cuda: cuInit(0): unknown CUresult 12345 (12345)"},
		{"zero", "reports no CUDA device"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			t.Setenv("FAKECUDA_INIT", c.mode)
			_, err := Open(Options{Library: lib})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to contain %q", err, c.want)
			}
			var e *Error
			if c.mode != "zero" && (!errors.As(err, &e) || e.Call != "cuInit(0)") {
				t.Errorf("error %v should be an *Error naming the call", err)
			}
		})
	}
}

func TestMissingSymbol(t *testing.T) {
	lib := fakeLib(t, "nolaunch")
	_, err := Open(Options{Library: lib})
	if err == nil || !strings.Contains(err.Error(), "lacks driver symbols cuLaunchKernel") {
		t.Fatalf("error %q should name the missing symbol", err)
	}
}

func TestBadDeviceOrdinal(t *testing.T) {
	lib := fakeLib(t, "driver")
	if _, err := Open(Options{Library: lib, Device: 3}); err == nil || !strings.Contains(err.Error(), "device 3 asked for, the driver reports 1") {
		t.Fatalf("error %q", err)
	}
	t.Setenv(DeviceEnv, "x")
	if _, err := Open(Options{Library: lib, Device: -1}); err == nil || !strings.Contains(err.Error(), DeviceEnv) {
		t.Fatalf("error %q should name %s", err, DeviceEnv)
	}
}

// TestAutoFallsBack: through the registry, "auto" picks the CPU and says
// why cuda did not open; asking for cuda by name is an error.
func TestAutoFallsBack(t *testing.T) {
	lib := fakeLib(t, "driver")
	t.Setenv(LibEnv, lib)
	t.Setenv("FAKECUDA_INIT", "nodevice")
	t.Setenv("DMLGO_DEVICE", "")
	b, why, err := backend.Select("auto")
	if err != nil || b.Name() != "cpu" {
		t.Fatalf("auto: %v, %v", b, err)
	}
	if !strings.Contains(why, "chose cpu (cuda: cuInit(0): CUDA_ERROR_NO_DEVICE") {
		t.Errorf("auto's reason %q should carry the driver's", why)
	}
	if _, _, err := backend.Select("cuda"); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_NO_DEVICE") {
		t.Errorf("Select(cuda): %v", err)
	}
	t.Log(why)
}

// TestRealDriverHere opens the machine's own driver, whatever it is: on a
// machine without a GPU that must fail with a named reason, on a GPU
// machine it must open.
func TestRealDriverHere(t *testing.T) {
	t.Setenv(LibEnv, "")
	b, err := Open(Options{Device: -1})
	if err != nil {
		if !strings.HasPrefix(err.Error(), "cuda: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q should be one line starting with cuda:", err)
		}
		t.Skipf("no usable GPU here (expected on a CPU machine): %v", err)
	}
	defer b.Close()
	t.Logf("opened: %s", b.Describe())
}

func TestDescribeAndDevice(t *testing.T) {
	b := openFake(t, "driver", "FAKECUDA_SMS=7")
	d := b.Device()
	if d.Multiprocessors != 7 || d.MaxThreadsPerBlock != 1024 || d.ComputeCapability != [2]int{8, 0} || !strings.Contains(d.Name, "fakecuda") {
		t.Errorf("device %+v", d)
	}
	if len(d.AttributesDefaulted) != 0 {
		t.Errorf("attributes defaulted: %v", d.AttributesDefaulted)
	}
	s := b.Describe()
	for _, want := range []string{"fakecuda", "sm_80", "7 SMs", "driver 12.4", "embedded PTX (nvcc release 11.8"} {
		if !strings.Contains(s, want) {
			t.Errorf("Describe %q lacks %q", s, want)
		}
	}
}

// TestBadPTX: a PTX the driver refuses fails Open with the error's name and
// the JIT log; a PTX folder without some kernel names the kernel.
func TestBadPTX(t *testing.T) {
	lib := fakeLib(t, "driver")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.ptx"), []byte("BADPTX\n.version 7.8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PTXDirEnv, dir)
	_, err := Open(Options{Library: lib})
	if err == nil || !strings.Contains(err.Error(), "cuModuleLoadDataEx(bad.ptx): CUDA_ERROR_INVALID_PTX") || !strings.Contains(err.Error(), "JIT log: ptxas fatal") {
		t.Fatalf("error %q", err)
	}
	// A folder with only the elementwise kernels: the others are missing.
	src, err := embeddedPTX.ReadFile("kernels/elementwise.ptx")
	if err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "elementwise.ptx"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PTXDirEnv, dir2)
	_, err = Open(Options{Library: lib})
	if err == nil || !strings.Contains(err.Error(), "kernel reduce_inner is in none of the PTX modules") {
		t.Fatalf("error %q", err)
	}
	t.Setenv(PTXDirEnv, t.TempDir())
	if _, err = Open(Options{Library: lib}); err == nil || !strings.Contains(err.Error(), "holds no .ptx files") {
		t.Fatalf("error %q", err)
	}
}

// TestDeferredError: a failed launch is kept, later ops are skipped,
// Synchronize reports it with the call and the CUresult's name, and
// Download refuses to return values.
func TestDeferredError(t *testing.T) {
	b := openFake(t, "driver") // the driver-only stand-in: launches fail with CUDA_ERROR_NOT_FOUND
	x := tensor.New(b.Alloc(4), 0, 4)
	b.Unary(backend.Relu, x, x, 0, 0)
	err := b.Synchronize()
	var e *Error
	if !errors.As(err, &e) || e.Name != "CUDA_ERROR_NOT_FOUND" || e.Call != "cuLaunchKernel(unary_f32)" {
		t.Fatalf("Synchronize: %v", err)
	}
	if err2 := b.Synchronize(); err2 != err {
		t.Errorf("the error should stay: %v", err2)
	}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "cuLaunchKernel(unary_f32): CUDA_ERROR_NOT_FOUND") {
			t.Errorf("Download after an error: panic %v", r)
		}
	}()
	b.Download(make([]float32, 4), x)
}

// TestForeignTensor: host tensors are refused with a clear message.
func TestForeignTensor(t *testing.T) {
	b := openFake(t, "kernels")
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "upload it first") {
			t.Errorf("panic %v", r)
		}
	}()
	x := tensor.Zeros(3)
	b.Unary(backend.Relu, x, x, 0, 0)
}

// TestTime: the event-timed section runs f and reports a duration.
func TestTime(t *testing.T) {
	b := openFake(t, "kernels")
	x := tensor.New(b.Alloc(1000), 0, 1000)
	ran := false
	d, err := b.Time(func() {
		b.Unary(backend.Exp, x, x, 0, 0)
		ran = true
	})
	if err != nil || !ran || d < 0 {
		t.Fatalf("Time: %v, %v, ran %v", d, err, ran)
	}
}
