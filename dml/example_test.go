package dml_test

import (
	"fmt"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	_ "github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/dml"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// Train a small embedding network with the DML head on eight 32×32
// greyscale images of four items (random pixels here; FMNIST-C2S or a
// shop's photos in practice), then embed one image.
func Example() {
	b := backend.MustSelect("cpu")
	net, _ := nn.NewResNet(b, nn.ResNetConfig{Arch: "resnet-s", Out: 16, Seed: 1})
	name, cfg, _ := dml.Parse("dml") // dml/class: learned margins
	head, _ := dml.New(b, name, cfg, 16, 4, 1)
	ps := nn.NewParamSet(b, append([]nn.GroupSpec{{Name: "net", Params: nn.Params(net)}}, head.Groups()...)...)
	opt := nn.NewSGD(ps, 0.9, 5e-4, true)

	images := tensor.RandNormal(7, 0, 1, 8, 1, 32, 32).HostData()
	items := []int32{0, 1, 2, 3, 0, 1, 2, 3}
	g := autograd.New(b)
	var first, last float32
	for step := 0; step < 30; step++ {
		ps.ZeroGrad()
		emb := net.Forward(g, g.Constant(images, 8, 1, 32, 32))
		loss, err := head.Forward(g, emb, items)
		if err != nil {
			panic(err)
		}
		v, _ := head.LastLoss() // read by the head's NaN check
		if step == 0 {
			first = v
		}
		last = v
		g.Backward(loss)
		opt.Step(0.05)
		g.Reset()
	}
	fmt.Println("loss went down:", last < first)

	nn.SetTraining(net, false)
	var e []float32
	g.NoGrad(func() { e = g.Values(net.Forward(g, g.Constant(images[:32*32], 1, 1, 32, 32))) })
	g.Reset()
	fmt.Println("embedding size:", len(e))
	// Output:
	// loss went down: true
	// embedding size: 16
}
