package autograd

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
)

// Gradient checks of Exp, Log, SumDim0 and Log1pSumExp (the ops the
// composed dml heads use), in gradcheck_test.go's style.
func TestGradExpLogSumDim0(t *testing.T) {
	gradCheck(t, "exp", []gcInput{rnd(21, 4, 5)}, func(g *Graph, in []*Var) *Var { return g.Exp(in[0]) })
	gradCheck(t, "log", []gcInput{rnd(22, 4, 5)}, func(g *Graph, in []*Var) *Var {
		return g.Log(g.Affine(g.Mul(in[0], in[0]), 1, 0.5)) // ln(x² + 0.5): positive
	})
	gradCheck(t, "sum_dim0", []gcInput{rnd(23, 6, 4)}, func(g *Graph, in []*Var) *Var { return g.SumDim0(in[0]) })
	gradCheck(t, "sum_dim0_rank3", []gcInput{rnd(24, 3, 2, 4)}, func(g *Graph, in []*Var) *Var {
		return g.Mul(g.SumDim0(in[0]), g.SumDim0(in[0])) // two readers of x
	})
}

// lseMask is a 0/1 mask (5, 4): column 0 empty, column 3 full.
var lseMask = []float32{
	0, 1, 0, 1,
	0, 0, 1, 1,
	0, 1, 1, 1,
	0, 0, 0, 1,
	0, 1, 0, 1,
}

func TestGradLog1pSumExp(t *testing.T) {
	for _, scale := range []float32{1, 8, 40} { // 40: exp(z) far past float32's range
		in := rnd(25, 5, 4)
		gradCheck(t, "log1p_sum_exp", []gcInput{in}, func(g *Graph, in []*Var) *Var {
			return g.Log1pSumExp(g.Affine(in[0], scale, 0), g.Constant(lseMask, 5, 4))
		})
	}
}

// TestLog1pSumExpValues: against float64 on values where a naive
// ln(1 + Σ exp) overflows (z up to 120) or loses everything (z down to
// −120), with masked-out entries larger than every masked-in one, an
// empty column (0) and one whose entries all vanish next to the 1.
func TestLog1pSumExpValues(t *testing.T) {
	b := cpu.NewReference()
	const n, c = 5, 4
	z := []float32{
		500, 3, -80, 100,
		600, 700, 1, 120,
		900, -2, 2, -5,
		1e4, 800, 900, 0,
		-1, 0.5, 400, 7,
	}
	// column 2's masked-in entries are 1 and 2; make column 1's masked-in
	// ones tiny to check the "1 +" survives
	z[1*c+1], z[0*c+1], z[2*c+1], z[4*c+1] = 700, -120, -110, -100
	g := New(b)
	defer g.Reset()
	y := g.Values(g.Log1pSumExp(g.Constant(z, n, c), g.Constant(lseMask, n, c)))
	for j := 0; j < c; j++ {
		// float64: m + ln(e^−m + Σ e^(z−m))
		m := 0.0
		for i := 0; i < n; i++ {
			if lseMask[i*c+j] == 1 {
				m = math.Max(m, float64(z[i*c+j]))
			}
		}
		s := math.Exp(-m)
		for i := 0; i < n; i++ {
			if lseMask[i*c+j] == 1 {
				s += math.Exp(float64(z[i*c+j]) - m)
			}
		}
		want := m + math.Log(s)
		if d := math.Abs(float64(y[j]) - want); d > 1e-6*math.Max(1, math.Abs(want)) || math.IsNaN(float64(y[j])) {
			t.Errorf("column %d: got %.9g, want %.9g", j, y[j], want)
		}
	}
	if y[0] != 0 {
		t.Errorf("empty column: got %g, want 0", y[0])
	}
}

func TestLog1pSumExpNeedsConstantMask(t *testing.T) {
	b := cpu.NewReference()
	g := New(b)
	defer g.Reset()
	defer func() {
		if r := recover(); r == nil || !contains(r.(string), "log1p_sum_exp") {
			t.Errorf("panic %v, want one naming log1p_sum_exp", r)
		}
	}()
	z := NewVar(g.Upload(make([]float32, 6), 2, 3), true)
	g.Log1pSumExp(z, z)
}
