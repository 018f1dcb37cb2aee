package allocs

import "testing"

var sink []byte

func TestPerRun(t *testing.T) {
	if n := PerRun(3, 10, func() { sink = make([]byte, 64) }); n < 1 {
		t.Errorf("an allocating call counts %v allocations, want 1", n)
	}
	buf := make([]byte, 64)
	if n := PerRun(3, 10, func() { sink = buf[:32] }); n != 0 {
		t.Errorf("a call that allocates nothing counts %v", n)
	}
}
