//go:build linux && (amd64 || arm64)

package cuda

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/dml"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// E2EEmulatedEnv lets TestTrainingMatchesCPU run, shortened, on the
// stand-in driver (DMLGO_LIBCUDA=…/libfakecuda.so): a check of the harness,
// minutes of CPU, not of the GPU.
const E2EEmulatedEnv = "DMLGO_CUDA_E2E_EMULATED"

// trainLosses trains resnet-s with the dml/class head (learned per-class
// negative margins, so the fused head's margin gradients are in the loop)
// for steps SGD steps (Nesterov momentum 0.9, weight decay 5e-4, rate lr) on
// fixed seeded data, and returns each step's loss.
//
// Data: batch images of 1×32×32, labels i mod classes, each image its
// class's random prototype plus noise, so that the loss falls.
func trainLosses(t *testing.T, b backend.Backend, batch, classes, steps int, lr float32) []float64 {
	t.Helper()
	net, err := nn.NewResNet(b, nn.ResNetConfig{Arch: "resnet-s", Out: 128, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	head, err := dml.New(b, "dml/class", dml.Config{}, 128, classes, 2)
	if err != nil {
		t.Fatal(err)
	}
	ps := nn.NewParamSet(b, append([]nn.GroupSpec{{Name: "net", Params: nn.Params(net)}}, head.Groups()...)...)
	opt := nn.NewSGD(ps, 0.9, 5e-4, true)
	proto := tensor.RandNormal(3, 0, 1, classes, 32*32).HostData()
	noise := tensor.RandNormal(4, 0, 0.5, batch, 32*32).HostData()
	x := make([]float32, batch*32*32)
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32(i % classes)
		for j := 0; j < 32*32; j++ {
			x[i*1024+j] = proto[int(labels[i])*1024+j] + noise[i*1024+j]
		}
	}
	g := autograd.New(b)
	var losses []float64
	for s := 0; s < steps; s++ {
		ps.ZeroGrad()
		emb := net.Forward(g, g.Constant(x, batch, 1, 32, 32))
		loss, err := head.Forward(g, emb, labels)
		if err != nil {
			t.Fatalf("step %d: %v", s, err)
		}
		losses = append(losses, float64(g.Item(loss)))
		g.Backward(loss)
		opt.Step(lr)
		g.Reset()
	}
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
	return losses
}

// TestTrainingMatchesCPU trains resnet-s with DML for 20 steps (batch 32,
// 16 classes) on the CPU backend and on the GPU from the same seeds and
// compares the losses step by step.
//
// Tolerance: |loss_gpu − loss_cpu| ≤ 1e-4·(1+|loss|) at step 0 (one forward
// pass: only summation order differs) and ≤ 2e-3·(1+|loss|) over the 20
// steps: differences of float32 sums taken in different orders grow through
// the updates. Calibration on the CPU alone: this run at the generic and at
// the AVX-512 SIMD level differs by at most 1.5e-4 (9e-7 at step 0); at a
// learning rate of 0.05 instead of 0.01 the dynamics amplify the same
// rounding differences to 2e-3, which is why the rate is low.
//
// It needs a GPU (skipped otherwise); see E2EEmulatedEnv for a shortened
// run on the stand-in driver.
func TestTrainingMatchesCPU(t *testing.T) {
	gpu, err := Open(Options{Device: -1})
	if err != nil {
		t.Skipf("needs a GPU: %v", err)
	}
	defer gpu.Close()
	batch, classes, steps := 32, 16, 20
	if strings.Contains(gpu.info.name, "fakecuda") {
		if os.Getenv(E2EEmulatedEnv) == "" {
			t.Skipf("the device is the CPU emulation (%s): set %s=1 to run a shortened version", gpu.info.name, E2EEmulatedEnv)
		}
		batch, classes, steps = 8, 4, 3
	}
	want := trainLosses(t, cpu.New(0), batch, classes, steps, 0.01)
	got := trainLosses(t, gpu, batch, classes, steps, 0.01)
	t.Logf("cpu  losses: %.6f", want)
	t.Logf("cuda losses: %.6f (%s)", got, gpu.Describe())
	worst := 0.0
	for s := range want {
		tol := 2e-3
		if s == 0 {
			tol = 1e-4
		}
		d := math.Abs(got[s]-want[s]) / (1 + math.Abs(want[s]))
		worst = math.Max(worst, d)
		if !(d <= tol) {
			t.Errorf("step %d: cuda loss %.6f, cpu %.6f: relative difference %.2g > %.0g", s, got[s], want[s], d, tol)
		}
	}
	if steps >= 10 && !(want[steps-1] < want[0]) {
		t.Errorf("the cpu losses do not fall: %v", want)
	}
	t.Logf("largest relative difference %.3g over %d steps", worst, steps)
}
