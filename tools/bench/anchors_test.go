package main

import "testing"

func TestOpenBLASCore(t *testing.T) {
	out := "Core not found: Cooperlake\nCore: SkylakeX\n"
	if got := openblasCore(out); got != "SkylakeX" {
		t.Errorf("openblasCore = %q, want SkylakeX", got)
	}
	if got := openblasCore("no such line\n"); got != "" {
		t.Errorf("openblasCore without a Core line = %q, want empty", got)
	}
}

func TestPinFor(t *testing.T) {
	for _, c := range []struct {
		core         string
		avx512, avx2 bool
		want         string
	}{
		{"Prescott", true, true, "SkylakeX"},
		{"Prescott", false, true, "Haswell"},
		{"Prescott", false, false, ""},
		{"Nehalem", true, true, "SkylakeX"},
		{"Zen", true, true, ""},      // OpenBLAS's own choice stands
		{"SkylakeX", true, true, ""}, // already right
		{"Haswell", true, true, ""},  // a choice it made knowingly
		{"", true, true, ""},         // no probe output
	} {
		if got := pinFor(c.core, c.avx512, c.avx2); got != c.want {
			t.Errorf("pinFor(%q, %v, %v) = %q, want %q", c.core, c.avx512, c.avx2, got, c.want)
		}
	}
}
