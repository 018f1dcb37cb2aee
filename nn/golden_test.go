package nn

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

var update = flag.Bool("update", false, "rewrite testdata/golden_losses.json")

// goldenRun trains a tiny CNN for ten SGD steps on fixed seeded data and
// returns the loss of each step.
func goldenRun(b backend.Backend) []float64 {
	rng := RNG(11)
	net := Seq(
		NewConv2d(b, rng, 1, 4, 3, autograd.Conv2dOpts{Padding: 1}), NewBatchNorm(b, 4), ReLU{},
		MaxPool2d{Opts: autograd.PoolOpts{Kernel: 2}},
		NewConv2d(b, rng, 4, 8, 3, autograd.Conv2dOpts{Padding: 1}), NewBatchNorm(b, 8), ReLU{},
		GlobalAvgPool{}, NewLinear(b, rng, 8, 5, true),
	)
	ps := NewParamSet(b, GroupSpec{Name: "net", Params: Params(net)})
	opt := NewSGD(ps, 0.9, 1e-4, true)
	x := tensor.RandNormal(5, 0, 1, 16, 1, 8, 8).HostData()
	labels := make([]int32, 16)
	for i := range labels {
		labels[i] = int32(i % 5)
		// Make the classes learnable: brighten the image by its class.
		for j := 0; j < 64; j++ {
			x[i*64+j] += 0.5 * float32(labels[i])
		}
	}
	g := autograd.New(b)
	var losses []float64
	for step := 0; step < 10; step++ {
		ps.ZeroGrad()
		logits := net.Forward(g, g.Constant(x, 16, 1, 8, 8))
		loss := g.MarginCE(logits, labels, backend.MarginParams{Kind: backend.MarginSoftmax, S: 1}, nil, nil)
		losses = append(losses, float64(g.Item(loss)))
		g.Backward(loss)
		opt.Step(0.1)
		g.Reset()
	}
	return losses
}

func TestGoldenTraining(t *testing.T) {
	path := filepath.Join("testdata", "golden_losses.json")
	ref := goldenRun(cpu.NewReference())
	if *update {
		raw, _ := json.MarshalIndent(ref, "", "  ")
		if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []float64
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if want[len(want)-1] > 0.7*want[0] {
		t.Errorf("committed losses do not fall: %v", want)
	}
	check := func(name string, got []float64) {
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-4*math.Max(1, math.Abs(want[i])) {
				t.Errorf("%s: step %d loss %.7f, committed %.7f", name, i, got[i], want[i])
			}
		}
	}
	check("reference", ref)
	for _, l := range cpu.Supported() {
		restore, _ := cpu.SetLevel(l)
		check("cpu/"+l.String(), goldenRun(cpu.New(2)))
		// Buffers handed out uncleared hold NaN: an op that read one
		// before writing it would show in the losses.
		poisoned := cpu.New(2)
		poisoned.SetPoison(true)
		check("cpu/"+l.String()+"/poisoned", goldenRun(poisoned))
		// Every 3×3 convolution through Winograd's transforms.
		always := cpu.SetWinograd(cpu.WinogradAlways)
		check("cpu/"+l.String()+"/winograd", goldenRun(cpu.New(2)))
		check("cpu/"+l.String()+"/winograd/poisoned", goldenRun(poisoned))
		always()
		restore()
	}
}

// TestUninitBuffersResNetS trains resnet-s with a cosine head for three
// steps twice, once with uncleared buffers poisoned with NaN: every loss and
// the final weights must be equal, so no op of the model reads memory it
// has not written.
func TestUninitBuffersResNetS(t *testing.T) {
	run := func(b *cpu.Backend) ([]float32, []float32) {
		net, err := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 16, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		head := tensor.RandNormal(4, 0, 0.1, 10, 16)
		w := &autograd.Var{Value: head, RequiresGrad: true}
		params := append(Params(net), Named[*Param]{Name: "head", V: &Param{Name: "head", Var: w}})
		ps := NewParamSet(b, GroupSpec{Name: "all", Params: params})
		opt := NewSGD(ps, 0.9, 5e-4, false)
		x := tensor.RandNormal(6, 0, 1, 6, 1, 32, 32).HostData()
		labels := []int32{0, 3, 5, 9, 3, 1}
		g := autograd.New(b)
		var losses []float32
		for step := 0; step < 3; step++ {
			ps.ZeroGrad()
			emb := g.L2Normalize(net.Forward(g, g.Constant(x, 6, 1, 32, 32)), 1e-6)
			cos := g.MatMul(emb, g.L2Normalize(w, 1e-6), false, true)
			loss := g.MarginCE(cos, labels, backend.MarginParams{Kind: backend.MarginCosFace, S: 30, M: 0.35}, nil, nil)
			losses = append(losses, g.Item(loss))
			g.Backward(loss)
			opt.Step(0.05)
			g.Reset()
		}
		return losses, append([]float32(nil), head.HostData()...)
	}
	for _, l := range cpu.Supported() {
		restore, _ := cpu.SetLevel(l)
		plain := cpu.New(2)
		poisoned := cpu.New(2)
		poisoned.SetPoison(true)
		l1, w1 := run(plain)
		l2, w2 := run(poisoned)
		restore()
		for i := range l1 {
			if l1[i] != l2[i] || math.IsNaN(float64(l1[i])) {
				t.Fatalf("%v: step %d loss %v, poisoned %v", l, i, l1[i], l2[i])
			}
		}
		for i := range w1 {
			if w1[i] != w2[i] {
				t.Fatalf("%v: head weight %d %v, poisoned %v", l, i, w1[i], w2[i])
			}
		}
	}
}
