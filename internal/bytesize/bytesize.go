// Package bytesize reads and writes sizes in bytes with binary units
// ("10 MiB", "512KiB", "1048576"), and makes them flags.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Format writes a size in bytes with a binary unit: 10 MiB, 512 KiB, 100 B.
func Format(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	u, v := 0, float64(n)
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

// Parse reads a size: an integer number of bytes, optionally followed
// by a unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB (all powers of 1024; case and a
// space before the unit do not matter).
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes such as 10485760, 512KiB or 10MiB", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KiB, MiB or GiB)", s, t[i:])
	}
	n := v * mult
	if n < 1 || n > 1<<50 {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return int64(n), nil
}

// Value is a flag holding a size in bytes: flag.Var(&v, ...) accepts what
// Parse reads.
type Value int64

func (v *Value) String() string { return Format(int64(*v)) }

// Set parses s into v.
func (v *Value) Set(s string) error {
	n, err := Parse(s)
	if err != nil {
		return err
	}
	*v = Value(n)
	return nil
}
