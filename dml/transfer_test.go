package dml

import (
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// counting is a backend that counts the copies between host and device.
type counting struct {
	backend.Backend
	uploads, downloads int
}

func (c *counting) Upload(dst *tensor.Tensor, src []float32) {
	c.uploads++
	c.Backend.Upload(dst, src)
}

func (c *counting) Download(dst []float32, src *tensor.Tensor) {
	c.downloads++
	c.Backend.Download(dst, src)
}

// TestStepTransfersOnlyTheLoss: a training step as the train command runs
// it (the batch in, resnet-s forward, every head's loss with its check,
// backward, SGD with momentum) moves exactly one value from the device:
// the loss, read once by the head's check and taken from LastLoss; and one
// thing to it: the batch. dml/class's margin projection and its m_p (learned
// or fixed) stay on the device.
func TestStepTransfersOnlyTheLoss(t *testing.T) {
	const fixedMP = " (fixed m_p)"
	for _, name := range append(slices.Clone(Names), NameDMLClass+fixedMP) {
		b := &counting{Backend: cpu.New(2)}
		cfg, _ := DefaultConfig(strings.TrimSuffix(name, fixedMP))
		if strings.HasSuffix(name, fixedMP) {
			setOwn(&cfg, func(c *ClassMargins) { c.LearnMP = false })
		}
		net, err := nn.NewResNet(b, nn.ResNetConfig{Arch: "resnet-s", Out: 16, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(b, strings.TrimSuffix(name, fixedMP), cfg, 16, 40, 1)
		if err != nil {
			t.Fatal(err)
		}
		ps := nn.NewParamSet(b, append([]nn.GroupSpec{{Name: "net", Params: nn.Params(net)}}, h.Groups()...)...)
		opt := nn.NewSGD(ps, 0.9, 5e-4, true)
		x := tensor.RandNormal(3, 0, 1, 8, 1, 32, 32).HostData()
		labels := []int32{0, 5, 9, 13, 21, 30, 34, 39}
		g := autograd.New(b)
		step := func() float32 {
			ps.ZeroGrad()
			emb := net.Forward(g, g.Constant(x, 8, 1, 32, 32))
			loss, err := h.Forward(g, emb, labels)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			v, read := h.LastLoss()
			if !read {
				v = g.Item(loss)
			}
			g.Backward(loss)
			opt.Step(0.01)
			g.Reset()
			return v
		}
		step() // warm-up
		for s := 0; s < 3; s++ {
			b.uploads, b.downloads = 0, 0
			v := step()
			if b.downloads != 1 || b.uploads != 1 {
				t.Errorf("%s, step %d: %d downloads and %d uploads, want 1 (the loss) and 1 (the batch)", name, s, b.downloads, b.uploads)
			}
			if !finite(v) {
				t.Errorf("%s: loss %v", name, v)
			}
		}
	}
}

// TestLastLoss: LastLoss is the value of the loss Forward recorded when
// its check read it, and says so; without a check it reports none.
func TestLastLoss(t *testing.T) {
	b := cpu.New(1)
	for _, every := range []int{1, 0} {
		cfg, _ := DefaultConfig(NameCosFace)
		cfg.CheckEvery = every
		h, err := New(b, NameCosFace, cfg, 4, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		g := autograd.New(b)
		emb := autograd.NewVar(tensor.RandNormal(1, 0, 1, 2, 4), true)
		loss, err := h.Forward(g, emb, []int32{0, 2})
		if err != nil {
			t.Fatal(err)
		}
		v, read := h.LastLoss()
		if read != (every == 1) || (read && v != g.Item(loss)) {
			t.Errorf("check every %d: LastLoss %v %v, loss %v", every, v, read, g.Item(loss))
		}
		g.Reset()
	}
}
