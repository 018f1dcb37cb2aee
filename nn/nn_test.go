package nn

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/safetensors"
	"github.com/dmlgo/dmlgo/tensor"
)

// fixturePath finds ../shared/fixtures (beside the repository), or
// $DMLGO_FIXTURES.
func fixturePath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("DMLGO_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "fixtures")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not found (set DMLGO_FIXTURES): %v", p, err)
	}
	return p
}

func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

func mustF32(t *testing.T, f *safetensors.File, name string) ([]float32, []int) {
	t.Helper()
	st, ok := f.Get(name)
	if !ok {
		t.Fatalf("fixture lacks %s", name)
	}
	v, err := st.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return v, st.Shape
}

// TestResNet18MatchesPyTorch loads torchvision's ResNet-18 weights and
// reproduces PyTorch's eval-mode features and logits, with the direct
// convolutions, with every 3×3 one through Winograd's F(2×2, 3×3), and,
// the weights frozen, with every 3×3 one through F(4×4, 3×3) (as
// inference runs those on planes of 28×28 and more).
func TestResNet18MatchesPyTorch(t *testing.T) {
	weights := fixturePath(t, "resnet18_seed7.safetensors")
	io, err := safetensors.ReadFile(fixturePath(t, "resnet18_seed7_io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"never", "always", "F(4×4, 3×3) always"} {
		var restore func()
		switch mode {
		case "never":
			restore = cpu.SetWinograd(cpu.WinogradNever)
		case "always":
			restore = cpu.SetWinograd(cpu.WinogradAlways)
		default:
			restore = cpu.SetWinograd4(cpu.WinogradAlways)
		}
		defer restore()
		b := cpu.New(0)
		m, err := NewResNet(b, ResNetConfig{Arch: "resnet18", Out: 1000, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := LoadStateFile(weights, b, m, LoadOptions{}); err != nil {
			t.Fatal(err)
		}
		SetTraining(m, false)
		if mode != "never" && mode != "always" {
			for _, p := range Params(m) {
				backend.Freeze(b, p.V.Value)
			}
		}
		in, shape := mustF32(t, io, "input")
		wantF, _ := mustF32(t, io, "features")
		wantL, _ := mustF32(t, io, "logits")
		g := autograd.New(b)
		var feats, logits []float32
		g.NoGrad(func() {
			x := g.Constant(in, shape...)
			f := m.ForwardFeatures(g, x)
			feats = g.Values(f)
			logits = g.Values(m.FC.Forward(g, f))
		})
		if e := relErr(feats, wantF); e > 1e-5 {
			t.Errorf("features: relative error %.3g > 1e-5", e)
		}
		if e := relErr(logits, wantL); e > 1e-5 {
			t.Errorf("logits: relative error %.3g > 1e-5", e)
		}
		t.Logf("%s, Winograd %s: features rel. error %.2g, logits %.2g", b.Describe(), mode, relErr(feats, wantF), relErr(logits, wantL))
		restore()
	}
}

// TestTorchvisionNames checks parameter and buffer names, order and shapes
// against torchvision's state_dict listings.
func TestTorchvisionNames(t *testing.T) {
	b := cpu.New(0)
	for _, arch := range []string{"resnet18", "resnet50"} {
		path := fixturePath(t, "torchvision_"+arch+"_state_dict_keys.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			StateDict []struct {
				Name  string `json:"name"`
				Shape []int  `json:"shape"`
			} `json:"state_dict"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		m, err := NewResNet(b, ResNetConfig{Arch: arch, Out: 1000})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]int{}
		for _, st := range StateTensors(b, m) {
			got[st.Name] = st.Shape
		}
		if len(got) != len(doc.StateDict) {
			t.Errorf("%s: %d state tensors, torchvision has %d", arch, len(got), len(doc.StateDict))
		}
		for _, e := range doc.StateDict {
			s, ok := got[e.Name]
			if !ok {
				t.Errorf("%s: missing %s", arch, e.Name)
				continue
			}
			if !tensor.EqualShapes(s, e.Shape) {
				t.Errorf("%s: %s has shape %v, torchvision %v", arch, e.Name, s, e.Shape)
			}
		}
	}
}

// TestStateRoundTrip writes a model, reads it into a differently seeded
// one, and gets identical outputs.
func TestStateRoundTrip(t *testing.T) {
	b := cpu.New(0)
	a, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 16, Seed: 1})
	// Move the running statistics away from their initial values.
	g := autograd.New(b)
	x := tensor.RandNormal(3, 0, 1, 4, 1, 32, 32).HostData()
	a.Forward(g, g.Constant(x, 4, 1, 32, 32))
	g.Reset()
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := SaveState(path, b, a, nil, map[string]string{"arch": "resnet-s"}); err != nil {
		t.Fatal(err)
	}
	c, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 16, Seed: 2})
	if err := LoadStateFile(path, b, c, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	SetTraining(a, false)
	SetTraining(c, false)
	var ya, yc []float32
	g.NoGrad(func() {
		ya = g.Values(a.Forward(g, g.Constant(x, 4, 1, 32, 32)))
		yc = g.Values(c.Forward(g, g.Constant(x, 4, 1, 32, 32)))
	})
	for i := range ya {
		if ya[i] != yc[i] {
			t.Fatalf("output %d differs after a round trip: %g vs %g", i, ya[i], yc[i])
		}
	}
	if a.BN1.numBatchesTracked != c.BN1.numBatchesTracked || c.BN1.numBatchesTracked != 1 {
		t.Errorf("num_batches_tracked %d -> %d", a.BN1.numBatchesTracked, c.BN1.numBatchesTracked)
	}
}

// TestLoadErrors: wrong architecture, missing and extra tensors, shape
// mismatch and a truncated file are errors naming the problem.
func TestLoadErrors(t *testing.T) {
	b := cpu.New(0)
	dir := t.TempDir()
	small, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 8})
	path := filepath.Join(dir, "s.safetensors")
	if err := SaveState(path, b, small, nil, nil); err != nil {
		t.Fatal(err)
	}
	other, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 9})
	expect := func(err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want one mentioning %v", want)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
	}
	expect(LoadStateFile(path, b, other, LoadOptions{}), path, "fc.weight", "(8, 128)", "(9, 128)")
	big, _ := NewResNet(b, ResNetConfig{Arch: "resnet18", Out: 8})
	expect(LoadStateFile(path, b, big, LoadOptions{}), "missing", "layer1.0.bn1.bias", "not in the model", "another model")
	noFC, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s"})
	expect(LoadStateFile(path, b, noFC, LoadOptions{}), "not in the model", "fc.bias")
	if err := LoadStateFile(path, b, noFC, LoadOptions{Skip: []string{"fc."}}); err != nil {
		t.Errorf("skipping fc: %v", err)
	}
	raw, _ := os.ReadFile(path)
	trunc := filepath.Join(dir, "t.safetensors")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	expect(LoadStateFile(trunc, b, small, LoadOptions{}), trunc)
}

// TestParamSetGroups: one allocation, decayed and no-decay parts, and SGD
// leaving BN parameters undecayed.
func TestParamSetGroups(t *testing.T) {
	b := cpu.NewReference()
	m, _ := NewResNet(b, ResNetConfig{Arch: "resnet-s", Out: 4})
	ps := NewParamSet(b, GroupSpec{Name: "backbone", Params: Params(m)})
	if ps.Size() != NumParams(m) {
		t.Fatalf("set holds %d values, model %d", ps.Size(), NumParams(m))
	}
	if len(ps.Groups) != 2 || ps.Groups[1].Name != "backbone/no_decay" {
		t.Fatalf("groups %v", ps.Groups)
	}
	for _, p := range ps.Groups[1].Params {
		if !strings.Contains(p.Name, "bn") && !strings.HasSuffix(p.Name, "bias") && !strings.Contains(p.Name, "downsample.1") {
			t.Errorf("%s in the no-decay group", p.Name)
		}
	}
	// With zero gradients, SGD changes only decayed weights.
	before := make([]float32, ps.Size())
	b.Download(before, ps.Values())
	opt := NewSGD(ps, 0.9, 0.1, false)
	ps.ZeroGrad()
	opt.Step(1)
	after := make([]float32, ps.Size())
	b.Download(after, ps.Values())
	g1 := ps.Groups[1]
	for i := g1.Offset; i < g1.Offset+g1.Len; i++ {
		if after[i] != before[i] {
			t.Fatalf("no-decay value %d moved", i)
		}
	}
	moved := 0
	for i := 0; i < ps.Groups[0].Len; i++ {
		if after[i] != before[i] {
			moved++
		}
	}
	if moved == 0 {
		t.Error("weight decay changed nothing")
	}
}

func TestSchedules(t *testing.T) {
	const total = 100
	oc := OneCycle{}
	if f := oc.Factor(0, total); math.Abs(f-1.0/25) > 1e-9 {
		t.Errorf("one-cycle starts at %g", f)
	}
	peak := 0.0
	for s := 0; s < total; s++ {
		peak = math.Max(peak, oc.Factor(s, total))
	}
	if math.Abs(peak-1) > 1e-9 || oc.Factor(total-1, total) > 1e-5 {
		t.Errorf("one-cycle peak %g, end %g", peak, oc.Factor(total-1, total))
	}
	w := Warmup{Steps: 10, Then: Cosine{}}
	if w.Factor(0, total) != 0.1 || w.Factor(9, total) != 1 || w.Factor(10, total) != 1 || w.Factor(total-1, total) > 1e-9 {
		t.Errorf("warmup+cosine: %g %g %g %g", w.Factor(0, total), w.Factor(9, total), w.Factor(10, total), w.Factor(total-1, total))
	}
	if s := (StepDecay{Every: 30, Gamma: 0.1}); math.Abs(s.Factor(65, total)-0.01) > 1e-12 {
		t.Errorf("step decay %g", s.Factor(65, total))
	}
}
