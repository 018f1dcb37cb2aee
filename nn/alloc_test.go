package nn

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestTrainingStepAllocatesNothing: resnet-s training steps on two
// threads (the parallel kernels and the helper team included), once warm,
// allocate nothing on the Go heap: fewer allocations over the measured
// steps than steps, so no allocation recurs per step. (A scratch buffer
// may still be made once when two threads first need one at the same
// time.) runtime.MemStats counts every goroutine of the process, so the
// measure is the fewest allocations over several rounds: another
// goroutine's sporadic allocations do not land in every round, a step's
// own do.
func TestTrainingStepAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("trains resnet-s")
	}
	b := cpu.New(2)
	net, err := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 16, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	w := autograd.NewVar(tensor.RandNormal(2, 0, 0.1, 10, 16), true)
	ps := NewParamSet(b, GroupSpec{Name: "net", Params: Params(net)}, GroupSpec{Name: "head", Params: []Named[*Param]{{Name: "head", V: &Param{Name: "head", Var: w}}}})
	opt := NewSGD(ps, 0.9, 5e-4, false)
	x := tensor.RandNormal(3, 0, 1, 16, 1, 32, 32).HostData()
	labels := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5}
	g := autograd.New(b)
	step := func() {
		ps.ZeroGrad()
		emb := g.L2Normalize(net.Forward(g, g.Constant(x, 16, 1, 32, 32)), 1e-6)
		cos := g.MatMul(emb, g.L2Normalize(w, 1e-6), false, true)
		loss := g.MarginCE(cos, labels, backend.MarginParams{Kind: backend.MarginCosFace, S: 30, M: 0.35}, nil, nil)
		g.Item(loss)
		g.Backward(loss)
		opt.Step(0.05)
		g.Reset()
	}
	for range 3 {
		step()
	}
	const steps = 8
	n := allocs.Mallocs(3, func() {
		for range steps {
			step()
		}
	})
	if n >= steps {
		t.Errorf("%d warm training steps made %d heap allocations in every round, want fewer than one per step", steps, n)
	}
}

// unfused hides a backend's optional interfaces (backend.ConvBNActer).
type unfused struct{ backend.Backend }

// TestEvalFusionMatches: in eval mode the residual networks run conv → BN
// (→ + shortcut) → ReLU as one fused op; their outputs equal, to the bit,
// those of a backend without the fused kernel (the ops in turn), for the
// basic and bottleneck blocks, a strided stem with max pooling and
// identity and downsample shortcuts.
func TestEvalFusionMatches(t *testing.T) {
	for _, c := range []struct {
		arch  string
		shape []int
	}{{"resnet-s", []int{3, 1, 32, 32}}, {"resnet18", []int{2, 3, 40, 40}}, {"resnet50", []int{1, 3, 36, 36}}} {
		b := cpu.New(2)
		net, err := NewResNet(b, ResNetConfig{Arch: c.arch, Out: 8, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		// Running statistics away from their initial 0 and 1.
		g := autograd.New(b)
		for range 2 {
			net.Forward(g, g.Constant(tensor.RandNormal(9, 0.5, 2, c.shape...).HostData(), c.shape...))
			g.Reset()
		}
		SetTraining(net, false)
		x := tensor.RandNormal(10, 0, 1, c.shape...).HostData()
		var outs [2][]float32
		for i, be := range []backend.Backend{b, unfused{b}} {
			g := autograd.New(be)
			g.NoGrad(func() { outs[i] = g.Values(net.Forward(g, g.Constant(x, c.shape...))) })
			g.Reset()
		}
		for j := range outs[0] {
			if math.Float32bits(outs[0][j]) != math.Float32bits(outs[1][j]) || math.IsNaN(float64(outs[0][j])) {
				t.Fatalf("%s: output %d fused %v, unfused %v", c.arch, j, outs[0][j], outs[1][j])
			}
		}
	}
}
