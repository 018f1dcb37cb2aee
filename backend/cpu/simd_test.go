package cpu

import (
	"os"
	"slices"
	"testing"
)

// TestSIMDEnv checks the level chosen at init against DMLGO_SIMD. Reading
// the variable here also makes go test's cache depend on it (the read in
// the package's init is not recorded), so `DMLGO_SIMD=generic go test`
// really runs the tests again.
func TestSIMDEnv(t *testing.T) {
	env := os.Getenv("DMLGO_SIMD")
	got := ActiveLevel()
	t.Logf("DMLGO_SIMD=%q: level %v, supported %v, kernel %s", env, got, Supported(), kernels[got].name)
	if env == "" {
		if got != Best() {
			t.Fatalf("level %v, want the best, %v", got, Best())
		}
		return
	}
	l, err := ParseLevel(env)
	switch {
	case err != nil || !slices.Contains(Supported(), l):
		if got != Best() || levelNote == "" {
			t.Fatalf("DMLGO_SIMD=%q: level %v (note %q), want %v with a note", env, got, levelNote, Best())
		}
	case got != l:
		t.Fatalf("DMLGO_SIMD=%q: level %v", env, got)
	}
}

func TestSetLevel(t *testing.T) {
	before := ActiveLevel()
	for _, l := range Supported() {
		restore, err := SetLevel(l)
		if err != nil || ActiveLevel() != l || activeKernel().fn == nil {
			t.Fatalf("SetLevel(%v): %v, active %v", l, err, ActiveLevel())
		}
		restore()
		if ActiveLevel() != before {
			t.Fatalf("restore after SetLevel(%v) left %v, want %v", l, ActiveLevel(), before)
		}
	}
	if _, err := SetLevel(Level(99)); err == nil || ActiveLevel() != before {
		t.Fatalf("SetLevel(99) = %v, level %v", err, ActiveLevel())
	}
	if Supported()[0] != Generic {
		t.Fatalf("Supported() = %v, want generic first", Supported())
	}
}
