package tensor

import (
	"strings"
	"testing"
)

func panics(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), want) {
			t.Errorf("panic %v, want one containing %q", r, want)
		}
	}()
	f()
}

func TestViews(t *testing.T) {
	x := FromSlice([]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 3, 4)
	if !x.Contiguous() || x.Numel() != 12 || x.Dim(-1) != 4 {
		t.Fatal("basic shape")
	}
	s := x.Slice(1, 3)
	if got := s.HostData(); len(got) != 8 || got[0] != 4 || got[7] != 11 {
		t.Errorf("slice data %v", got)
	}
	r := s.Reshape(2, 2, -1)
	if !EqualShapes(r.Shape(), []int{2, 2, 2}) || r.Offset() != 4 {
		t.Errorf("reshape %v offset %d", r.Shape(), r.Offset())
	}
	tr := x.Transpose2D()
	if tr.Contiguous() || tr.Dim(0) != 4 {
		t.Error("transpose view")
	}
	panics(t, "non-contiguous", func() { tr.Reshape(12) })
	panics(t, "non-contiguous", func() { tr.HostData() })
	panics(t, "12 elements", func() { x.Reshape(5, 2) })
	panics(t, "Slice [2, 5)", func() { x.Slice(2, 5) })
	panics(t, "does not fit", func() { New(&HostStorage{Data: make([]float32, 3)}, 1, 3) })
	panics(t, "FromSlice", func() { FromSlice(make([]float32, 5), 2, 3) })
	v := s.ViewAs(FromSlice(make([]float32, 8), 4, 2))
	if !EqualShapes(v.Shape(), []int{4, 2}) || v.Offset() != 4 || !v.Contiguous() {
		t.Errorf("ViewAs %v offset %d", v.Shape(), v.Offset())
	}
	l := NewLike(x.Storage(), 0, tr)
	if !EqualShapes(l.Shape(), []int{4, 3}) || !l.Contiguous() {
		t.Errorf("NewLike %v contiguous %v", l.Shape(), l.Contiguous())
	}
	panics(t, "12 elements", func() { x.ViewAs(s) })
	panics(t, "non-contiguous", func() { tr.ViewAs(x) })
	panics(t, "does not fit", func() { NewLike(x.Storage(), 1, x) })
	// Rank 5 keeps its shape and strides outside the header.
	big := Zeros(2, 1, 3, 1, 2)
	if got := big.Reshape(3, 1, 1, 2, 2); !EqualShapes(got.Shape(), []int{3, 1, 1, 2, 2}) || got.Strides()[0] != 4 {
		t.Errorf("rank-5 reshape %v strides %v", got.Shape(), got.Strides())
	}
	// Shape returns a copy.
	sh := x.Shape()
	sh[0] = 99
	if x.Dim(0) != 3 {
		t.Error("Shape aliases the tensor")
	}
}

func TestSeededConstructors(t *testing.T) {
	a, b := RandNormal(7, 0, 1, 100).HostData(), RandNormal(7, 0, 1, 100).HostData()
	c := RandNormal(8, 0, 1, 100).HostData()
	same, diff := true, false
	for i := range a {
		same = same && a[i] == b[i]
		diff = diff || a[i] != c[i]
	}
	if !same || !diff {
		t.Error("seeding is not deterministic per seed")
	}
	for _, v := range RandUniform(3, -2, 5, 1000).HostData() {
		if v < -2 || v >= 5 {
			t.Fatalf("uniform value %g out of range", v)
		}
	}
	if v := Full(2.5, 2, 2).HostData(); v[3] != 2.5 {
		t.Error("Full")
	}
	if i, bad := HasNonFinite([]float32{1, 2, float32(inf())}); !bad || i != 2 {
		t.Error("HasNonFinite")
	}
}

func inf() float64 { var z float64; return 1 / z }
