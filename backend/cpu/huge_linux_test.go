//go:build linux

package cpu

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/dmlgo/dmlgo/tensor"
)

// TestAdviseHuge: a new buffer of 8 MiB from grow and one from the
// backend's pool lie in mappings the kernel flags for huge pages ("hg"
// in /proc/self/smaps), and their values read as zero. A kernel without
// transparent huge pages skips the test.
func TestAdviseHuge(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("no transparent huge pages in this kernel")
	}
	b := New(1)
	for name, s := range map[string][]float32{
		"grow":  grow[float32](nil, 2<<20),
		"Alloc": b.Alloc(2 << 20).(*tensor.HostStorage).Data,
	} {
		for i, v := range s {
			if v != 0 {
				t.Fatalf("%s: value %d is %v", name, i, v)
			}
		}
		p := uintptr(unsafe.Pointer(&s[0]))
		off, n := hugeRange(p, uintptr(len(s))*4)
		flags, err := vmFlags(p + off)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || !strings.Contains(" "+flags+" ", " hg ") {
			t.Errorf("%s: the mapping at %#x has flags %q, want hg", name, p+off, flags)
		}
	}
}

// vmFlags is the VmFlags line of the mapping of /proc/self/smaps that
// holds address a.
func vmFlags(a uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= a && a < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmFlags:")), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping of /proc/self/smaps holds %#x", a)
}
