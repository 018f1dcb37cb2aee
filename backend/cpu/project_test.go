package cpu

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestProjectMargins: m_p is clamped to [0, MaxMP] (NaN stays), every ρ_j
// is held at softplus⁻¹(room) and no lower one moves; at the top nothing
// moves.
func TestProjectMargins(t *testing.T) {
	b := New(1)
	p := backend.ProjectParams{MaxMP: 0.45, MaxMargin: 0.5, Delta: 0.05, Gap: 1e-6}
	for _, c := range []struct {
		mp, want float32
	}{{0.2, 0.2}, {-1, 0}, {0.9, 0.45}, {float32(math.NaN()), float32(math.NaN())}} {
		mp := tensor.FromSlice([]float32{c.mp}, 1)
		rho := tensor.FromSlice([]float32{-3, 0, 5}, 3)
		b.ProjectMargins(p, mp, rho)
		got := mp.HostData()[0]
		if got != c.want && !(math.IsNaN(float64(got)) && math.IsNaN(float64(c.want))) {
			t.Errorf("m_p %v: projected to %v, want %v", c.mp, got, c.want)
		}
		room := p.MaxMargin - float64(got) - p.Delta - p.Gap
		r := rho.HostData()
		if !(room > p.Gap) {
			if r[0] != -3 || r[1] != 0 || r[2] != 5 {
				t.Errorf("m_p %v at its top: ρ moved to %v", c.mp, r)
			}
			continue
		}
		hi := float32(room + math.Log(-math.Expm1(-room)))
		if r[0] != -3 || r[1] != min(0, hi) || r[2] != hi {
			t.Errorf("m_p %v: ρ %v, want [-3 %v %v]", c.mp, r, min(0, hi), hi)
		}
		// The projected margin sits just inside m_max.
		if mn := float64(got) + p.Delta + math.Log1p(math.Exp(float64(hi))); mn > p.MaxMargin || mn < p.MaxMargin-1e-5 {
			t.Errorf("m_p %v: top m_n %v, want just below %v", c.mp, mn, p.MaxMargin)
		}
	}
	// Fixed m_p: no tensor.
	rho := tensor.FromSlice([]float32{9}, 1)
	p.MP = 0.2
	b.ProjectMargins(p, nil, rho)
	if r := rho.HostData()[0]; r >= 9 {
		t.Errorf("fixed m_p: ρ %v not projected", r)
	}
}

// TestMarginMPFrom: m_p read from a device tensor gives the same loss and
// gradients as the same value passed in MarginParams.MP.
func TestMarginMPFrom(t *testing.T) {
	b := New(1)
	const n, c = 4, 7
	cos := tensor.RandNormal(1, 0, 0.3, n, c)
	labels := []int32{0, 3, 6, 2}
	run := func(p backend.MarginParams) ([]float32, []float32, float32) {
		loss, dcos, gmp := tensor.Zeros(n), tensor.Zeros(n, c), tensor.Zeros(1)
		b.MarginSoftmaxCE(p, cos, labels, loss, dcos, backend.MarginGrads{MP: gmp})
		return loss.HostData(), dcos.HostData(), gmp.HostData()[0]
	}
	base := backend.MarginParams{Kind: backend.MarginDMLFixed, N: n, C: c, S: 16, MP: 0.15, MN: 0.3, Eps: 1e-6}
	l0, d0, g0 := run(base)
	from := base
	from.MP, from.MPFrom = 9, tensor.FromSlice([]float32{0.15}, 1)
	l1, d1, g1 := run(from)
	for i := range l0 {
		if l0[i] != l1[i] {
			t.Fatalf("loss %d: %v with MP, %v with MPFrom", i, l0[i], l1[i])
		}
	}
	for i := range d0 {
		if d0[i] != d1[i] {
			t.Fatalf("dcos %d: %v with MP, %v with MPFrom", i, d0[i], d1[i])
		}
	}
	if g0 != g1 {
		t.Errorf("∂L/∂m_p: %v with MP, %v with MPFrom", g0, g1)
	}
}
