package autograd

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// unfused hides a backend's optional interfaces (backend.ConvBNActer).
type unfused struct{ backend.Backend }

// TestConvBNAct: the fused inference op gives, to the bit, the values of
// Conv2d, BatchNorm (eval), Add and Relu in turn, on a backend with the
// fused kernel and on one without it; while recording it is those ops,
// with their gradients.
func TestConvBNAct(t *testing.T) {
	x := NewVar(tensor.RandNormal(1, 0, 1, 3, 4, 9, 9), false)
	w := NewVar(tensor.RandNormal(2, 0, 0.3, 6, 4, 3, 3), true)
	gamma, beta := NewVar(tensor.RandNormal(3, 1, 0.2, 6), true), NewVar(tensor.RandNormal(4, 0, 0.2, 6), true)
	rm, rv := tensor.RandNormal(5, 0, 0.5, 6), tensor.RandUniform(6, 0.5, 2, 6)
	res := NewVar(tensor.RandNormal(7, 0, 1, 3, 6, 5, 5), false)
	o := Conv2dOpts{Stride: 2, Padding: 1}
	for _, relu := range []bool{false, true} {
		var want []float32
		for i, b := range []backend.Backend{cpu.New(2), unfused{cpu.New(2)}} {
			g := New(b)
			var got []float32
			g.NoGrad(func() {
				got = g.Values(g.ConvBNAct(x, w, o, gamma, beta, rm, rv, 1e-5, res, relu))
				if i == 0 {
					y := g.BatchNorm(g.Conv2d(x, w, o), gamma, beta, rm, rv, BatchNormOpts{Eps: 1e-5})
					y = g.Add(y, res)
					if relu {
						y = g.Relu(y)
					}
					want = g.Values(y)
				}
			})
			for j := range want {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("backend %d relu=%v: y[%d] = %v, the ops in turn give %v", i, relu, j, got[j], want[j])
				}
			}
			g.Reset()
		}
	}
	// Recording: the ops in turn, so the output needs a gradient.
	g := New(cpu.New(1))
	if y := g.ConvBNAct(x, w, o, gamma, beta, rm, rv, 1e-5, nil, true); !y.RequiresGrad || len(g.tape) != 3 {
		t.Fatalf("recording: RequiresGrad %v, %d tape entries; want the three ops recorded", y.RequiresGrad, len(g.tape))
	}
}
