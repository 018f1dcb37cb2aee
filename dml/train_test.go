package dml

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// tinyRun is a small model (one linear layer on fixed inputs) and a head
// trained with SGD on 6 classes × 4 samples.
type tinyRun struct {
	b      backend.Backend
	h      *head
	lin    *nn.Linear
	x      *autograd.Var
	labels []int32
	ps     *nn.ParamSet
	opt    nn.Optimizer
	g      *autograd.Graph
}

func newTinyRun(t *testing.T, spec string) *tinyRun {
	t.Helper()
	b := cpu.New(2)
	const classes, per, in, dim = 6, 4, 10, 8
	rng := nn.RNG(11)
	proto := make([]float64, classes*in)
	for i := range proto {
		proto[i] = rng.NormFloat64()
	}
	xs := make([]float32, classes*per*in)
	labels := make([]int32, classes*per)
	for i := range labels {
		labels[i] = int32(i % classes)
		for k := 0; k < in; k++ {
			xs[i*in+k] = float32(proto[int(labels[i])*in+k] + 0.7*rng.NormFloat64())
		}
	}
	name, cfg, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := New(b, name, cfg, dim, classes, 5)
	if err != nil {
		t.Fatal(err)
	}
	r := &tinyRun{b: b, h: hd.(*head), lin: nn.NewLinear(b, rng, in, dim, true), labels: labels, g: autograd.New(b)}
	r.x = autograd.NewVar(tensor.FromSlice(xs, len(labels), in), false)
	r.ps = nn.NewParamSet(b, append([]nn.GroupSpec{{Name: "model", Params: nn.Params(r.lin)}}, hd.Groups()...)...)
	r.opt = nn.NewSGD(r.ps, 0.9, 0, false)
	return r
}

// step runs one training step and returns the loss; check runs after the
// forward (projection done), before the update.
func (r *tinyRun) step(t *testing.T, lr float32, check func()) float32 {
	t.Helper()
	defer r.g.Reset()
	r.ps.ZeroGrad()
	loss, err := r.h.Forward(r.g, r.lin.Forward(r.g, r.x), r.labels)
	if err != nil {
		t.Fatal(err)
	}
	if check != nil {
		check()
	}
	r.g.Backward(loss)
	r.opt.Step(lr)
	return r.g.Item(loss)
}

// checkConstraints verifies dml/class's constraints on the raw
// (projected) parameters, without the clamps: 0 ≤ p ≤ m_max − δ and
// p + δ + softplus(ρ_j) ≤ m_max, and on the margins the loss uses:
// 0 ≤ m_p ≤ m_max − δ, m_p + δ ≤ m_n,j ≤ m_max.
func (r *tinyRun) checkConstraints(t *testing.T, step int) {
	t.Helper()
	c := r.h.class()
	const tol = 1e-6
	mp := c.MP
	if r.h.mp != nil {
		mp = float64(r.h.mp.Value.HostData()[0])
		if mp > c.MaxMargin-c.Delta+tol || mp < 0 {
			t.Fatalf("step %d: the m_p parameter %g is outside [0, m_max − δ = %g]", step, mp, c.MaxMargin-c.Delta)
		}
	}
	if room := c.MaxMargin - mp - c.Delta; room > 2*projectGap {
		for j, rho := range r.h.rho.Value.HostData() {
			if u := mp + c.Delta + softplus(float64(rho)); u > c.MaxMargin+tol {
				t.Fatalf("step %d: class %d: unclamped margin %g past m_max %g: the projection did not hold it", step, j, u, c.MaxMargin)
			}
		}
	}
	// The margins as the loss computes them (the same graph ops).
	var mpv, mnv []float32
	r.g.NoGrad(func() {
		p, n := r.h.classMargins(r.g)
		mpv, mnv = r.g.Values(p), r.g.Values(n)
	})
	if m := float64(mpv[0]); m < 0 || m > c.MaxMargin-c.Delta+tol {
		t.Fatalf("step %d: m_p = %g outside [0, %g]", step, m, c.MaxMargin-c.Delta)
	}
	for j, v := range mnv {
		if float64(v) < float64(mpv[0])+c.Delta-tol || float64(v) > c.MaxMargin+tol {
			t.Fatalf("step %d: m_n,%d = %g outside [m_p + δ = %g, m_max = %g]", step, j, v, float64(mpv[0])+c.Delta, c.MaxMargin)
		}
	}
}

// TestLearnedMarginsMoveAndStayInBounds trains dml/class a few dozen
// steps: the loss falls, m_p and every m_n,j move, the m_n,j spread apart
// (they are per class), and every constraint holds at every step.
func TestLearnedMarginsMoveAndStayInBounds(t *testing.T) {
	r := newTinyRun(t, "dml/class:margin_lr=5,margin_reg=5")
	mp0, mn0 := r.h.marginValues()
	first, last := float32(0), float32(0)
	for s := 0; s < 40; s++ {
		l := r.step(t, 0.05, func() { r.checkConstraints(t, s) })
		if s == 0 {
			first = l
		}
		last = l
	}
	mp1, mn1 := r.h.marginValues()
	t.Logf("loss %.4f → %.4f; m_p %.4f → %.4f; m_n %v → %v", first, last, mp0, mp1, mn0, mn1)
	if !(last < first) {
		t.Errorf("loss did not fall: %g → %g", first, last)
	}
	if math.Abs(mp1-mp0) < 1e-3 {
		t.Errorf("m_p did not move: %g → %g", mp0, mp1)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for j := range mn1 {
		if math.Abs(mn1[j]-mn0[j]) < 1e-3 {
			t.Errorf("m_n,%d did not move: %g → %g", j, mn0[j], mn1[j])
		}
		lo, hi = math.Min(lo, mn1[j]), math.Max(hi, mn1[j])
	}
	if hi-lo < 1e-3 {
		t.Errorf("the class margins did not spread: [%g, %g]", lo, hi)
	}
}

// gradsNoStep runs a forward (which projects) and a backward without an
// update and returns m_p's and the ρ_j's gradients.
func (r *tinyRun) gradsNoStep(t *testing.T) (dmp float32, drho []float32) {
	t.Helper()
	defer r.g.Reset()
	r.ps.ZeroGrad()
	loss, err := r.h.Forward(r.g, r.lin.Forward(r.g, r.x), r.labels)
	if err != nil {
		t.Fatal(err)
	}
	r.g.Backward(loss)
	if r.h.mp != nil {
		dmp = r.g.GradOrZero(r.h.mp.Var).HostData()[0]
	}
	return dmp, append([]float32(nil), r.g.GradOrZero(r.h.rho.Var).HostData()...)
}

func meanOf(v []float64) float64 {
	var s float64
	for _, a := range v {
		s += a / float64(len(v))
	}
	return s
}

// TestMarginsReachTheClampAndComeBack: a strong λ drives the margins to
// their upper bounds, never past them. There the projection keeps them
// trainable: with λ set to 0, every margin at a bound gets a gradient
// from the cross-entropy that pulls it down (behind a bare clamp it would
// get 0), and the margins come down. First the m_n,j (m_p fixed), then
// m_p at m_max − δ (where every m_n,j is m_max).
func TestMarginsReachTheClampAndComeBack(t *testing.T) {
	t.Run("m_n", func(t *testing.T) {
		r := newTinyRun(t, "dml/class:margin_lr=5,margin_reg=20,m_max=0.4,learn_mp=false")
		for s := 0; s < 30; s++ {
			r.step(t, 0.05, func() { r.checkConstraints(t, s) })
		}
		_, mn := r.h.marginValues()
		setOwn(&r.h.cfg, func(c *ClassMargins) { c.MarginReg = 0 })
		_, drho := r.gradsNoStep(t)
		t.Logf("at the clamp: m_n %v; ∂L/∂ρ with λ = 0: %v", mn, drho)
		atTop := 0
		for j, v := range mn {
			if v > 0.4-1e-5 {
				atTop++
				if !(drho[j] > 0) {
					t.Errorf("class %d at the clamp gets ∂L/∂ρ = %g, want > 0 (pulled down)", j, drho[j])
				}
			}
		}
		if atTop == 0 {
			t.Fatalf("λ = 20: no m_n,j reached m_max 0.4: %v", mn)
		}
		for s := 30; s < 90; s++ {
			r.step(t, 0.05, func() { r.checkConstraints(t, s) })
		}
		_, mn2 := r.h.marginValues()
		t.Logf("after 60 steps with λ = 0: %v", mn2)
		if !(meanOf(mn2) < meanOf(mn)-1e-3) {
			t.Errorf("λ = 0: the mean margin did not come down from the clamp: %g → %g", meanOf(mn), meanOf(mn2))
		}
	})
	t.Run("m_p", func(t *testing.T) {
		r := newTinyRun(t, "dml/class:margin_lr=5,margin_reg=200,m_max=0.4")
		for s := 0; s < 40; s++ {
			r.step(t, 0.05, func() { r.checkConstraints(t, s) })
		}
		mp, mn := r.h.marginValues()
		if mp < 0.35-1e-5 {
			t.Fatalf("λ = 200: m_p = %g did not reach m_max − δ = 0.35", mp)
		}
		setOwn(&r.h.cfg, func(c *ClassMargins) { c.MarginReg = 0 })
		dmp, _ := r.gradsNoStep(t)
		t.Logf("m_p %g at its top, m_n %v; ∂L/∂m_p with λ = 0: %g", mp, mn, dmp)
		if !(dmp > 0) {
			t.Errorf("m_p at its top gets ∂L/∂m_p = %g, want > 0", dmp)
		}
		for s := 40; s < 100; s++ {
			r.step(t, 0.05, func() { r.checkConstraints(t, s) })
		}
		mp2, _ := r.h.marginValues()
		if !(mp2 < mp-1e-3) {
			t.Errorf("λ = 0: m_p did not come down from its top: %g → %g", mp, mp2)
		}
	})
}

// TestMarginsShrinkWithoutReg: with λ = 0 the cross-entropy lowers the
// margins, which stop at their floors m_p ≥ 0 and m_n,j ≥ m_p + δ.
func TestMarginsShrinkWithoutReg(t *testing.T) {
	r := newTinyRun(t, "dml/class:margin_lr=20,margin_reg=0,delta=0.05")
	mp0, mn0 := r.h.marginValues()
	for s := 0; s < 40; s++ {
		r.step(t, 0.05, func() { r.checkConstraints(t, s) })
	}
	mp1, mn1 := r.h.marginValues()
	if !(mp1 < mp0) {
		t.Errorf("λ = 0: m_p did not shrink: %g → %g", mp0, mp1)
	}
	for j := range mn1 {
		if !(mn1[j] < mn0[j]) {
			t.Errorf("λ = 0: m_n,%d did not shrink: %g → %g", j, mn0[j], mn1[j])
		}
	}
}

// TestFixedMP: with learn_mp=false, m_p stays put while the m_n,j learn.
func TestFixedMP(t *testing.T) {
	r := newTinyRun(t, "dml/class:margin_lr=5,learn_mp=false,m_p=0.15,m_n=0.3")
	_, mn0 := r.h.marginValues()
	for s := 0; s < 20; s++ {
		r.step(t, 0.05, func() { r.checkConstraints(t, s) })
	}
	mp1, mn1 := r.h.marginValues()
	if mp1 != 0.15 {
		t.Errorf("m_p moved to %g", mp1)
	}
	moved := false
	for j := range mn1 {
		moved = moved || math.Abs(mn1[j]-mn0[j]) > 1e-3
	}
	if !moved {
		t.Errorf("no m_n,j moved: %v → %v", mn0, mn1)
	}
}

// TestEveryHeadTrains: a few steps of every head lower the loss on tiny
// data, and the embeddings' gradients flow to the model.
func TestEveryHeadTrains(t *testing.T) {
	for _, spec := range []string{"softmax", "normface", "sphereface", "cosface:s=16", "arcface:s=16", "combined:s=16", "dml/fixed", "dml/class", "dml/adaptive"} {
		t.Run(spec, func(t *testing.T) {
			r := newTinyRun(t, spec)
			lr := float32(0.05)
			if spec == "softmax" {
				lr = 0.002 // unnormalised logits: a smaller step
			}
			first := r.step(t, lr, nil)
			var last float32
			for s := 0; s < 30; s++ {
				last = r.step(t, lr, nil)
			}
			if !(last < first) {
				t.Errorf("loss %g → %g", first, last)
			}
		})
	}
}
