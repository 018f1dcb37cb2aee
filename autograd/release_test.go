package autograd

import (
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// freeCounter is a CPU backend that counts the frees of each storage.
type freeCounter struct {
	*cpu.Backend
	freed map[tensor.Storage]int
}

func (b *freeCounter) Free(s tensor.Storage) {
	b.freed[s]++
	b.Backend.Free(s)
}

func TestRelease(t *testing.T) {
	b := &freeCounter{Backend: cpu.New(1), freed: map[tensor.Storage]int{}}
	g := New(b)
	leaf := NewVar(tensor.RandNormal(1, 0, 1, 2, 3), true)

	// Recording: a no-op; the value stays until Reset.
	y := g.Relu(leaf)
	s := y.Value.Storage()
	g.Release(y)
	if y.Value == nil || b.freed[s] != 0 {
		t.Fatalf("Release while recording freed the value (freed %d times)", b.freed[s])
	}
	g.Reset()
	if b.freed[s] != 1 {
		t.Fatalf("Reset freed the recorded value %d times, want 1", b.freed[s])
	}
	clear(b.freed) // the pool hands s out again below

	g.NoGrad(func() {
		// Not the graph's: a no-op.
		ls := leaf.Value.Storage()
		g.Release(leaf)
		if leaf.Value == nil || b.freed[ls] != 0 {
			t.Fatal("Release freed a leaf the graph does not own")
		}
		// The graph's, in inference: freed now, once; the next value of
		// the same size reuses the buffer.
		a := g.Relu(leaf)
		c := g.Affine(a, 2, 1)
		as, cs := a.Value.Storage(), c.Value.Storage()
		g.Release(a)
		if a.Value != nil || b.freed[as] != 1 {
			t.Fatalf("Release in inference: value %v, freed %d times, want nil and 1", a.Value, b.freed[as])
		}
		g.Release(a) // a second call finds nothing to free
		d := g.Affine(c, 3, 0)
		if d.Value.Storage() != as {
			t.Error("the next value of the same size did not reuse the released buffer")
		}
		want := []float32{}
		for _, v := range leaf.Value.HostData() {
			want = append(want, 3*(2*max(v, 0)+1))
		}
		for i, v := range g.Values(d) {
			if v != want[i] {
				t.Fatalf("value %d after the reuse: %v, want %v", i, v, want[i])
			}
		}
		g.Reset()
		if b.freed[as] != 2 || b.freed[cs] != 1 {
			t.Fatalf("after Reset: the released buffer freed %d times (want 2: released, then reused and reset), the other %d (want 1)", b.freed[as], b.freed[cs])
		}
	})
}
