package nn

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/safetensors"
	"github.com/dmlgo/dmlgo/tensor"
)

// rowCosines is the cosine of each of the n rows of a and b.
func rowCosines(a, b []float32, n int) []float64 {
	d := len(a) / n
	out := make([]float64, n)
	for i := range out {
		var ab, aa, bb float64
		for j := i * d; j < (i+1)*d; j++ {
			ab += float64(a[j]) * float64(b[j])
			aa += float64(a[j]) * float64(a[j])
			bb += float64(b[j]) * float64(b[j])
		}
		out[i] = ab / math.Sqrt(aa*bb)
	}
	return out
}

// frozenForward runs m in eval mode with its weights frozen and the
// backend at precision, and returns the pooled features.
func frozenForward(t *testing.T, b backend.Backend, m *ResNet, precision string, in []float32, shape []int) []float32 {
	t.Helper()
	for _, p := range Params(m) {
		backend.Freeze(b, p.V.Value)
	}
	if _, err := backend.SetPrecision(b, precision); err != nil {
		t.Fatal(err)
	}
	g := autograd.New(b)
	var feats []float32
	g.NoGrad(func() { feats = g.Values(m.ForwardFeatures(g, g.Constant(in, shape...))) })
	return feats
}

// TestResNetLowPrecisionCosine: the bfloat16 and int8 paths keep ResNet
// features close to float32's, on the fixture's images: torchvision's
// ResNet-18 weights against PyTorch's own features, and a freshly
// initialised ResNet-50 against our float32 features. The figures are
// logged (BENCHMARKS.md quotes them); the bounds leave room for other
// inputs.
func TestResNetLowPrecisionCosine(t *testing.T) {
	// The bfloat16 kernels wherever they can run, even where auto would
	// run bf16 in float32 for speed (cpu.SetBF16).
	defer cpu.SetBF16(cpu.WinogradAlways)()
	io, err := safetensors.ReadFile(fixturePath(t, "resnet18_seed7_io.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	in, shape := mustF32(t, io, "input")
	wantF, _ := mustF32(t, io, "features")
	n := shape[0]
	for _, c := range []struct {
		prec     string
		ready    bool
		r18, r50 float64 // smallest cosine accepted
		winograd bool    // every 3×3 convolution through Winograd's transforms
	}{
		{"bf16", cpu.BF16Ready(), 0.999, 0.995, false},
		{"bf16", cpu.BF16Ready(), 0.999, 0.995, true},
		{"int8", cpu.INT8Ready(), 0.999, 0.998, false},
	} {
		name := c.prec
		if c.winograd {
			name += "/winograd"
		}
		t.Run(name, func(t *testing.T) {
			if !c.ready {
				t.Skipf("no %s kernels here: precision %s runs fp32", c.prec, c.prec)
			}
			if c.winograd {
				defer cpu.SetWinograd(cpu.WinogradAlways)()
			}
			b := cpu.New(0)
			r18, err := NewResNet(b, ResNetConfig{Arch: "resnet18", Out: 1000, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := LoadStateFile(fixturePath(t, "resnet18_seed7.safetensors"), b, r18, LoadOptions{}); err != nil {
				t.Fatal(err)
			}
			SetTraining(r18, false)
			got := frozenForward(t, b, r18, c.prec, in, shape)
			for i, cos := range rowCosines(got, wantF, n) {
				t.Logf("resnet18 %s image %d: cosine %.6f to PyTorch's fp32 features", name, i, cos)
				if cos < c.r18 {
					t.Errorf("resnet18 %s image %d: cosine %.6f to PyTorch's features, want ≥ %g", c.prec, i, cos, c.r18)
				}
			}

			var feats [2][]float32
			for i, prec := range []string{"fp32", c.prec} {
				be := cpu.New(0)
				m, err := NewResNet(be, ResNetConfig{Arch: "resnet50", Out: 128, Seed: 5})
				if err != nil {
					t.Fatal(err)
				}
				SetTraining(m, false)
				feats[i] = frozenForward(t, be, m, prec, in, shape)
			}
			for i, cos := range rowCosines(feats[1], feats[0], n) {
				t.Logf("resnet50 %s image %d: cosine %.6f between %s and fp32 features", name, i, cos, c.prec)
				if cos < c.r50 {
					t.Errorf("resnet50 %s image %d: cosine %.6f to fp32 features, want ≥ %g", c.prec, i, cos, c.r50)
				}
			}
		})
	}
}

// fusedOnly hides backend.ConvBNActRanger: the fused op without the
// images' ranges.
type fusedOnly struct {
	backend.Backend
	f backend.ConvBNActer
}

func (u fusedOnly) ConvBNActForward(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool) {
	u.f.ConvBNActForward(p, eps, x, w, gamma, beta, runMean, runVar, res, y, relu)
}

// rangesCounted counts the convolutions that were handed their input's
// ranges.
type rangesCounted struct {
	*cpu.Backend
	given int
}

func (c *rangesCounted) ConvBNActForwardRange(p backend.Conv2dParams, eps float32, x, w, gamma, beta, runMean, runVar, res, y *tensor.Tensor, relu bool, xMax, yMax []float32) bool {
	if xMax != nil {
		c.given++
	}
	return c.Backend.ConvBNActForwardRange(p, eps, x, w, gamma, beta, runMean, runVar, res, y, relu, xMax, yMax)
}

// TestInt8RangesMatch: at int8 the graph hands each image's largest value
// from the op that writes it (a convolution, or the stem's fused
// convolution and pooling) to the convolutions that read it (every one
// but the stem), and the features are, to the bit, those of the same
// backend without that (neither ranges nor the fused stem: each
// convolution reads its input for the range), on ResNet-18 and ResNet-50,
// batches of one and three.
func TestInt8RangesMatch(t *testing.T) {
	if !cpu.INT8Ready() {
		t.Skip("no int8 kernels here: precision int8 runs fp32")
	}
	for _, c := range []struct {
		arch  string
		given int // convolutions given their input's ranges
	}{{"resnet18", 20 - 1}, {"resnet50", 53 - 1}} {
		b := cpu.New(2)
		m, err := NewResNet(b, ResNetConfig{Arch: c.arch, Out: 16, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		SetTraining(m, false)
		for _, p := range Params(m) {
			backend.Freeze(b, p.V.Value)
		}
		if eff, err := backend.SetPrecision(b, "int8"); err != nil || eff != "int8 (AVX-512 VNNI)" {
			t.Fatalf("SetPrecision: %q, %v", eff, err)
		}
		for _, n := range []int{1, 3} {
			shape := []int{n, 3, 64, 48}
			x := tensor.RandNormal(uint64(n), 0, 1, shape...).HostData()
			counted := &rangesCounted{Backend: b}
			var outs [2][]float32
			for i, be := range []backend.Backend{counted, fusedOnly{b, b}} {
				g := autograd.New(be)
				g.NoGrad(func() { outs[i] = g.Values(m.ForwardFeatures(g, g.Constant(x, shape...))) })
				g.Reset()
			}
			if counted.given != c.given {
				t.Fatalf("%s batch %d: %d convolutions were given their input's ranges, want %d", c.arch, n, counted.given, c.given)
			}
			for j := range outs[0] {
				if math.Float32bits(outs[0][j]) != math.Float32bits(outs[1][j]) || math.IsNaN(float64(outs[0][j])) {
					t.Fatalf("%s batch %d: feature %d is %v with the ranges, %v without", c.arch, n, j, outs[0][j], outs[1][j])
				}
			}
		}
	}
}
