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
		restore()
	}
}
