package npy

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func roundTrip[T Elem](t *testing.T, shape []int, data []T) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, shape, data); err != nil {
		t.Fatal(err)
	}
	hlen := int(buf.Bytes()[8]) | int(buf.Bytes()[9])<<8
	if (10+hlen)%64 != 0 {
		t.Errorf("%s: data starts at %d, not a multiple of 64", Descr[T](), 10+hlen)
	}
	a, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Shape, shape) || a.Descr != Descr[T]() {
		t.Errorf("read back %s %v, want %s %v", a.Descr, a.Shape, Descr[T](), shape)
	}
	back, err := Values[T](a)
	if err != nil || !slices.Equal(back, data) {
		t.Errorf("%s: values differ: %v", Descr[T](), err)
	}
}

type code uint8

func TestRoundTrip(t *testing.T) {
	roundTrip(t, []int{2, 3}, []uint8{1, 2, 3, 4, 5, 255})
	roundTrip(t, []int{3}, []int64{-1, 0, 1 << 40})
	roundTrip(t, []int{2, 2}, []float32{0.5, -1, 3e9, 0})
	roundTrip(t, []int{1}, []int16{-300})
	roundTrip(t, []int{2}, []float64{1.5, -2})
	roundTrip(t, []int{0}, []int32{})
	roundTrip(t, []int{2}, []code{7, 9})
	if Descr[code]() != "|u1" {
		t.Errorf("named uint8: %s", Descr[code]())
	}
	if err := Write(&bytes.Buffer{}, []int{2, 2}, []uint8{1}); err == nil {
		t.Error("shape mismatch accepted")
	}
	if _, err := Values[int64](&Array{Descr: "<f4", Data: make([]byte, 8)}); err == nil {
		t.Error("type mismatch accepted")
	}
}

func TestHeader(t *testing.T) {
	h := string(Header("<i8", []int{5}))
	if !strings.HasPrefix(h, "\x93NUMPY\x01\x00") || !strings.Contains(h, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }") || !strings.HasSuffix(h, "\n") {
		t.Errorf("header %q", h)
	}
	if !strings.Contains(string(Header("|u1", []int{70000, 32, 32})), "'shape': (70000, 32, 32)") {
		t.Error("3-d shape")
	}
}

func TestReadErrors(t *testing.T) {
	for _, in := range []string{"", "\x93NUMP", "NOTNUMPY\x01\x00", "\x93NUMPY\x09\x00", "\x93NUMPY\x01\x00\x05\x00{'de"} {
		if _, err := Read(strings.NewReader(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, []int{2, 2}, []float32{1, 2, 3, 4})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		Read(bytes.NewReader(b))
	})
}

// TestNumpyReads checks the files with numpy itself when it is installed.
func TestNumpyReads(t *testing.T) {
	py := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import numpy").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("numpy not installed")
	}
	dir := t.TempDir()
	if err := WriteFile(dir+"/a.npy", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6.5}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(dir+"/b.npy", []int{4}, []int64{-5, 0, 5, 1 << 40}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", `
import numpy as np, sys
a = np.load(sys.argv[1] + "/a.npy"); b = np.load(sys.argv[1] + "/b.npy")
print(a.dtype, a.shape, a[1, 2], b.dtype, b.tolist())`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "float32 (2, 3) 6.5 int64 [-5, 0, 5, 1099511627776]" {
		t.Errorf("numpy read %q", got)
	}
}
