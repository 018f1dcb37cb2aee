package dml

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestNonFiniteReported: a NaN or Inf in the embeddings, the class
// weights, the bias or the learned margins makes Forward return a
// *NonFiniteError with the step and the element, not a NaN loss.
func TestNonFiniteReported(t *testing.T) {
	b := cpu.New(2)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		spec, what string
		poison     func(h *head, emb []float32)
		index      []int
	}{
		{"cosface", "embeddings", func(h *head, emb []float32) { emb[1*4+2] = nan }, []int{1, 2}},
		{"arcface", "embeddings", func(h *head, emb []float32) { emb[0] = float32(math.Inf(-1)) }, []int{0, 0}},
		{"sphereface", "head.weight", func(h *head, _ []float32) { h.weight.Value.HostData()[2*4+3] = inf }, []int{2, 3}},
		{"softmax", "head.bias", func(h *head, _ []float32) { h.bias.Value.HostData()[4] = nan }, []int{4}},
		{"softmax", "embeddings", func(h *head, emb []float32) { emb[5] = inf }, []int{1, 1}},
		{"dml/class", "head.margin_rho", func(h *head, _ []float32) { h.rho.Value.HostData()[3] = nan }, []int{3}},
		{"dml/class", "head.margin_p", func(h *head, _ []float32) { h.mp.Value.HostData()[0] = nan }, []int{0}},
		{"dml/adaptive", "head.weight", func(h *head, _ []float32) { h.weight.Value.HostData()[0] = nan }, []int{0, 0}},
	} {
		name, cfg, err := Parse(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		hd, err := New(b, name, cfg, 4, 6, 1)
		if err != nil {
			t.Fatal(err)
		}
		h := hd.(*head)
		emb := tensor.RandNormal(2, 0, 1, 3, 4).HostData()
		tc.poison(h, emb)
		h.SetStep(41)
		g := autograd.New(b)
		loss, err := h.Forward(g, autograd.NewVar(tensor.FromSlice(emb, 3, 4), true), []int32{0, 5, 2})
		g.Reset()
		var nf *NonFiniteError
		if !errors.As(err, &nf) {
			t.Errorf("%s with a bad %s: loss %v, error %v; want a *NonFiniteError", tc.spec, tc.what, loss, err)
			continue
		}
		if nf.Step != 41 || nf.What != tc.what || tensor.ShapeString(nf.Index) != tensor.ShapeString(tc.index) {
			t.Errorf("%s: %+v, want step 41, %s at %v", tc.spec, nf, tc.what, tc.index)
		}
		if msg := err.Error(); !strings.Contains(msg, "step 41") || !strings.Contains(msg, tc.what) {
			t.Errorf("%s: message %q", tc.spec, msg)
		}
	}
}

// TestCheckEvery: with check_every=3 only steps 0, 3, 6, … are checked;
// with 0, nothing is (the caller then owns the check).
func TestCheckEvery(t *testing.T) {
	b := cpu.New(1)
	for _, tc := range []struct {
		every   int
		step    int
		wantErr bool
	}{{3, 4, false}, {3, 6, true}, {0, 0, false}, {1, 7, true}} {
		cfg, _ := DefaultConfig("cosface")
		cfg.CheckEvery = tc.every
		h, _ := New(b, "cosface", cfg, 2, 3, 1)
		h.SetStep(tc.step)
		g := autograd.New(b)
		emb := autograd.NewVar(tensor.FromSlice([]float32{float32(math.NaN()), 1}, 1, 2), true)
		_, err := h.Forward(g, emb, []int32{1})
		g.Reset()
		if (err != nil) != tc.wantErr {
			t.Errorf("check_every=%d at step %d: error %v, want error %v", tc.every, tc.step, err, tc.wantErr)
		}
	}
}

// TestZeroNormAndExtremes: a zero embedding or class weight divides by
// norm_eps, not 0; a huge scale with cosines at ±1 keeps the log-sum-exp
// finite; the loss and every gradient stay finite.
func TestZeroNormAndExtremes(t *testing.T) {
	b := cpu.New(2)
	for _, spec := range []string{"normface", "sphereface:anneal=false", "cosface:s=1000", "arcface:s=1000", "combined", "dml/class", "dml/adaptive:s=500"} {
		name, cfg, err := Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		hd, err := New(b, name, cfg, 3, 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		h := hd.(*head)
		w := h.weight.Value.HostData()
		copy(w, []float32{0, 0, 0, 1, 0, 0, -1, 0, 0, 0, 1, 0}) // class 0 zero; 1 and 2 opposite
		g := autograd.New(b)
		// zero embedding; one exactly on class 1 (cos 1, then −1 to class 2); one opposite
		emb := autograd.NewVar(tensor.FromSlice([]float32{0, 0, 0, 5, 0, 0, -1e-3, 0, 0}, 3, 3), true)
		loss, err := h.Forward(g, emb, []int32{0, 2, 1})
		if err != nil {
			t.Errorf("%s: %v", spec, err)
			g.Reset()
			continue
		}
		g.Backward(loss)
		for _, v := range []*autograd.Var{emb, h.weight.Var} {
			if i, bad := tensor.HasNonFinite(g.GradOrZero(v).HostData()); bad {
				t.Errorf("%s: non-finite gradient at %d", spec, i)
			}
		}
		if l := g.Item(loss); !finite(l) {
			t.Errorf("%s: loss %v", spec, l)
		}
		g.Reset()
	}
}

// TestInputErrors: bad shapes and labels are errors, not panics.
func TestInputErrors(t *testing.T) {
	b := cpu.New(1)
	h, _ := New(b, "cosface", Config{}, 4, 3, 1)
	g := autograd.New(b)
	defer g.Reset()
	for _, tc := range []struct {
		emb    *tensor.Tensor
		labels []int32
		want   string
	}{
		{tensor.Zeros(2, 5), []int32{0, 1}, "(2, 5)"},
		{tensor.Zeros(8), []int32{0, 1}, "(8)"},
		{tensor.Zeros(2, 4), []int32{0}, "1 labels for 2"},
		{tensor.Zeros(2, 4), []int32{0, 3}, "label 3 of sample 1"},
		{tensor.Zeros(2, 4), []int32{-1, 0}, "label -1"},
	} {
		_, err := h.Forward(g, autograd.NewVar(tc.emb, true), tc.labels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to mention %q", err, tc.want)
		}
	}
}

func TestCheckFiniteFunction(t *testing.T) {
	b := cpu.New(1)
	x := tensor.Zeros(2, 3, 4)
	if err := CheckFinite(b, 5, "x", x); err != nil {
		t.Fatal(err)
	}
	x.HostData()[1*12+2*4+3] = float32(math.Inf(-1))
	err := CheckFinite(b, 5, "x", x)
	var nf *NonFiniteError
	if !errors.As(err, &nf) || tensor.ShapeString(nf.Index) != "(1, 2, 3)" || !strings.Contains(err.Error(), "step 5: x holds -Inf at (1, 2, 3)") {
		t.Errorf("got %v", err)
	}
}

// TestKernelMPGradWithoutDcos: the kernel computes ∂L/∂m_p when asked for
// it alone (no dcos, no class-margin gradient), as with them.
func TestKernelMPGradWithoutDcos(t *testing.T) {
	b := cpu.NewReference()
	for _, kind := range []backend.MarginKind{backend.MarginDMLFixed, backend.MarginDMLAdaptive} {
		p := backend.MarginParams{Kind: kind, N: 2, C: 3, S: 10, MP: 0.1, MN: 0.2}
		cos := tensor.FromSlice([]float32{0.1, 0.5, -0.2, 0.3, 0.0, 0.7}, 2, 3)
		alone, with := tensor.Zeros(1), tensor.Zeros(1)
		b.MarginSoftmaxCE(p, cos, []int32{0, 2}, tensor.Zeros(2), nil, backend.MarginGrads{MP: alone})
		b.MarginSoftmaxCE(p, cos, []int32{0, 2}, tensor.Zeros(2), tensor.Zeros(2, 3), backend.MarginGrads{MP: with})
		if a, w := alone.HostData()[0], with.HostData()[0]; w == 0 || math.Abs(float64(a-w)) > 1e-6*math.Abs(float64(w)) {
			t.Errorf("%s: ∂L/∂m_p alone %g, with dcos %g", kind, a, w)
		}
	}
}
