package bytesize

import "testing"

func TestParseFormat(t *testing.T) {
	for s, want := range map[string]int64{"10MiB": 10 << 20, "512 KiB": 512 << 10, "1048576": 1 << 20, "2k": 2048, "1.5M": 3 << 19, "7B": 7, "1gb": 1 << 30} {
		if got, err := Parse(s); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "MiB", "10XB", "-5", "0", "1e3"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
	for n, want := range map[int64]string{10 << 20: "10 MiB", 1536: "1.5 KiB", 100: "100 B"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
	var v Value
	if err := v.Set("3KiB"); err != nil || v != 3072 || v.String() != "3 KiB" {
		t.Errorf("Value.Set(3KiB): %v %d %s", err, v, v.String())
	}
	if err := v.Set("3XB"); err == nil || v != 3072 {
		t.Errorf("Value.Set(3XB): %v, value %d", err, v)
	}
}
