package backend_test

import (
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	_ "github.com/dmlgo/dmlgo/backend/cpu"
)

func TestSelect(t *testing.T) {
	b, why, err := backend.Select("cpu")
	if err != nil || b.Name() != "cpu" || !strings.Contains(why, "cpu") {
		t.Fatalf("Select(cpu) = %v, %q, %v", b, why, err)
	}
	if b2, _, _ := backend.Select("CPU "); b2 != b {
		t.Error("the same backend should be shared")
	}
	_, _, err = backend.Select("tpu")
	if err == nil || !strings.Contains(err.Error(), `"tpu" is not available`) || !strings.Contains(err.Error(), "cpu") {
		t.Errorf("unknown backend error: %v", err)
	}
	t.Setenv("DMLGO_DEVICE", "nope")
	_, _, err = backend.Select("")
	if err == nil || !strings.Contains(err.Error(), "DMLGO_DEVICE") {
		t.Errorf("DMLGO_DEVICE error should name the variable: %v", err)
	}
	t.Setenv("DMLGO_DEVICE", "")
	b, why, err = backend.Select("auto")
	if err != nil || !strings.Contains(why, "auto") {
		t.Fatalf("auto: %v %q", err, why)
	}
	t.Log(why)
}

// TestSelectWith: options reach a backend with a thread count through the
// ThreadSetter interface, and the line describes it as configured.
func TestSelectWith(t *testing.T) {
	b, why, err := backend.SelectWith("cpu", backend.Options{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.SetThreads(b, 0)
	if !strings.Contains(why, "3 threads") || !strings.Contains(b.Describe(), "3 threads") {
		t.Errorf("SelectWith(cpu, 3 threads): %q / %q", why, b.Describe())
	}
	if _, _, err := backend.SelectWith("tpu", backend.Options{Threads: 1}); err == nil {
		t.Error("SelectWith(tpu) succeeded")
	}
}

// fp32Only is a backend without low-precision kernels (no Precisioner).
type fp32Only struct{ backend.Backend }

func (fp32Only) Name() string { return "plain" }

// TestSetPrecision: unknown names are refused whatever the backend; a
// backend without low-precision kernels takes fp32 and refuses the others,
// naming itself; the CPU says what runs.
func TestSetPrecision(t *testing.T) {
	b := backend.MustSelect("cpu")
	if _, err := backend.SetPrecision(b, "fp8"); err == nil || !strings.Contains(err.Error(), "fp32, bf16, int8") {
		t.Errorf("SetPrecision(fp8): %v", err)
	}
	if eff, err := backend.SetPrecision(b, "bf16"); err != nil || !strings.HasPrefix(eff, "bf16") && !strings.HasPrefix(eff, "fp32 (bf16 asked for") {
		t.Errorf("SetPrecision(cpu, bf16) = %q, %v", eff, err)
	}
	p := fp32Only{}
	for _, name := range []string{"", "fp32"} {
		if eff, err := backend.SetPrecision(p, name); err != nil || eff != "fp32" {
			t.Errorf("SetPrecision(plain, %q) = %q, %v", name, eff, err)
		}
	}
	if _, err := backend.SetPrecision(p, "int8"); err == nil || !strings.Contains(err.Error(), "the plain backend runs fp32 only") {
		t.Errorf("SetPrecision(plain, int8): %v", err)
	}
}
