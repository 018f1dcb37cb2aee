package dml

import (
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestHeadStepAllocatesNothing: once warm, a training step of every head
// (forward with its checks, backward, Reset) allocates nothing on the Go
// heap, dml/class's margin projection included, with m_p learned (its
// default) or fixed.
func TestHeadStepAllocatesNothing(t *testing.T) {
	b := cpu.New(2)
	const fixedMP = " (fixed m_p)"
	for _, name := range append(slices.Clone(Names), NameDMLClass+fixedMP) {
		cfg, _ := DefaultConfig(strings.TrimSuffix(name, fixedMP))
		cfg.CheckEvery = 1
		if strings.HasSuffix(name, fixedMP) {
			setOwn(&cfg, func(c *ClassMargins) { c.LearnMP = false })
		}
		h, err := New(b, strings.TrimSuffix(name, fixedMP), cfg, 16, 40, 1)
		if err != nil {
			t.Fatal(err)
		}
		emb := autograd.NewVar(tensor.RandNormal(2, 0, 1, 32, 16), true)
		labels := make([]int32, 32)
		for i := range labels {
			labels[i] = int32(i % 40)
		}
		g := autograd.New(b)
		params := h.Params()
		var ferr error
		step := func() {
			emb.ZeroGrad()
			for _, p := range params {
				p.V.ZeroGrad()
			}
			loss, err := h.Forward(g, emb, labels)
			if err != nil {
				ferr = err
				return
			}
			g.Backward(loss)
			g.Reset()
		}
		for range 3 {
			step()
		}
		n := allocs.PerRun(3, 5, step)
		if ferr != nil {
			t.Fatalf("%s: %v", name, ferr)
		}
		if n != 0 {
			t.Errorf("%s: a warm step allocates %v objects, want 0", name, n)
		}
	}
}
