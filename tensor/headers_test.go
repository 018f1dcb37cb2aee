package tensor

import (
	"testing"

	"github.com/dmlgo/dmlgo/internal/allocs"
)

// TestHeaders: views from Headers equal those of the package functions,
// are cleared by Reset, and reuse their memory afterwards without
// allocating.
func TestHeaders(t *testing.T) {
	s := &HostStorage{Data: make([]float32, 120)}
	var h Headers
	views := func() []*Tensor {
		a := h.New(s, 0, 2, 3, 4)
		return []*Tensor{
			a,
			h.NewLike(s, 24, a),
			h.Reshape(a, 6, -1),
			h.ViewAs(h.New(s, 96, 24), a),
			h.New(s, 0, 1, 2, 3, 4, 5), // rank 5: shape and strides outside the header
		}
	}
	want := []*Tensor{New(s, 0, 2, 3, 4), New(s, 24, 2, 3, 4), New(s, 0, 6, 4), New(s, 96, 2, 3, 4), New(s, 0, 1, 2, 3, 4, 5)}
	for round := range 3 {
		got := views()
		for i, v := range got {
			w := want[i]
			if !EqualShapes(v.Shape(), w.Shape()) || !EqualShapes(v.Strides(), w.Strides()) || v.Offset() != w.Offset() || v.Storage() != w.Storage() {
				t.Fatalf("round %d view %d: %v strides %v offset %d, want %v strides %v offset %d",
					round, i, v.Shape(), v.Strides(), v.Offset(), w.Shape(), w.Strides(), w.Offset())
			}
		}
		if h.Len() != 6 {
			t.Fatalf("round %d: %d headers handed out, want 6", round, h.Len())
		}
		first := got[0]
		h.Reset()
		if first.Storage() != nil || first.Rank() != 0 {
			t.Fatalf("round %d: a header survives Reset: %v", round, first)
		}
		if again := h.New(s, 0, 5); again != first {
			t.Fatal("Reset did not make the headers' memory free for reuse")
		}
		h.Reset()
	}
	if n := allocs.PerRun(3, 10, func() {
		h.New(s, 0, 2, 3, 4)
		h.Reshape(h.New(s, 0, 24), 4, 6)
		h.Reset()
	}); n != 0 {
		t.Errorf("reused headers allocate %v objects, want 0", n)
	}
}

// TestHeadersChunks: more headers than one chunk holds stay valid.
func TestHeadersChunks(t *testing.T) {
	s := &HostStorage{Data: make([]float32, 1000)}
	var h Headers
	var all []*Tensor
	for i := range 3*headerChunk + 5 {
		all = append(all, h.New(s, i%900, 1+i%7))
	}
	for i, v := range all {
		if v.Offset() != i%900 || v.Dim(0) != 1+i%7 {
			t.Fatalf("header %d changed: offset %d shape %v", i, v.Offset(), v.Shape())
		}
	}
}
