package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
)

// BasicBlock is ResNet's two-3×3 block (ResNet-18/34 and resnet-s):
// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the shortcut a 1×1
// strided conv + BN ("downsample") when the shape changes.
type BasicBlock struct {
	Conv1, Conv2 *Conv2d
	BN1, BN2     *BatchNorm
	Downsample   *Sequential // nil: identity
}

// NewBasicBlock makes a block from cin to cout channels.
func NewBasicBlock(b backend.Backend, rng *rand.Rand, cin, cout, stride int) *BasicBlock {
	m := &BasicBlock{
		Conv1: NewConv2d(b, rng, cin, cout, 3, autograd.Conv2dOpts{Stride: stride, Padding: 1}),
		BN1:   NewBatchNorm(b, cout),
		Conv2: NewConv2d(b, rng, cout, cout, 3, autograd.Conv2dOpts{Stride: 1, Padding: 1}),
		BN2:   NewBatchNorm(b, cout),
	}
	if stride != 1 || cin != cout {
		m.Downsample = Seq(NewConv2d(b, rng, cin, cout, 1, autograd.Conv2dOpts{Stride: stride}), NewBatchNorm(b, cout))
	}
	return m
}

// Forward implements Module.
func (m *BasicBlock) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	skip := m.shortcut(g, x)
	y := convBN(g, m.Conv1, m.BN1, x, nil, true)
	out := convBN(g, m.Conv2, m.BN2, y, skip, true)
	releaseBlock(g, x, skip, y)
	return out
}

// releaseBlock gives a residual block's intermediate activations back to
// the backend once its output is made, in inference (autograd.Graph.Release
// does nothing while ops are recorded): the next layers' outputs reuse
// buffers still in cache instead of a fresh one each. The shortcut is
// released unless it is the block's input x, which the caller owns.
func releaseBlock(g *autograd.Graph, x, skip *autograd.Var, ys ...*autograd.Var) {
	for _, y := range ys {
		g.Release(y)
	}
	if skip != x {
		g.Release(skip)
	}
}

func (m *BasicBlock) shortcut(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return shortcut(g, m.Downsample, x)
}

// shortcut is a residual block's identity or downsample (conv + BN).
func shortcut(g *autograd.Graph, downsample *Sequential, x *autograd.Var) *autograd.Var {
	if downsample == nil {
		return x
	}
	if len(downsample.Layers) == 2 {
		conv, ok1 := downsample.Layers[0].M.(*Conv2d)
		bn, ok2 := downsample.Layers[1].M.(*BatchNorm)
		if ok1 && ok2 {
			return convBN(g, conv, bn, x, nil, false)
		}
	}
	return downsample.Forward(g, x)
}

// convBN is conv → bn → + res (res may be nil) → ReLU (when relu): in eval
// mode one fused op where the backend has it (autograd.Graph.ConvBNAct),
// with the same values as the ops in turn.
func convBN(g *autograd.Graph, conv *Conv2d, bn *BatchNorm, x, res *autograd.Var, relu bool) *autograd.Var {
	if !bn.training {
		return g.ConvBNAct(x, conv.Weight.Var, conv.Opts, bn.Weight.Var, bn.Bias.Var, bn.RunMean.T, bn.RunVar.T, bn.Eps, res, relu)
	}
	y := bn.Forward(g, conv.Forward(g, x))
	if res != nil {
		y = g.Add(y, res)
	}
	if relu {
		y = g.Relu(y)
	}
	return y
}

// Children implements Module.
func (m *BasicBlock) Children() []Child {
	c := []Child{{"conv1", m.Conv1}, {"bn1", m.BN1}, {"conv2", m.Conv2}, {"bn2", m.BN2}}
	if m.Downsample != nil {
		c = append(c, Child{"downsample", m.Downsample})
	}
	return c
}

// Own implements Module.
func (m *BasicBlock) Own() ([]*Param, []*Buffer) { return nil, nil }

// Bottleneck is ResNet-50's 1×1 → 3×3 → 1×1 block with expansion 4; the
// stride sits on the 3×3 conv (torchvision's "ResNet v1.5").
type Bottleneck struct {
	Conv1, Conv2, Conv3 *Conv2d
	BN1, BN2, BN3       *BatchNorm
	Downsample          *Sequential
}

// NewBottleneck makes a block from cin channels through width to 4·width.
func NewBottleneck(b backend.Backend, rng *rand.Rand, cin, width, stride int) *Bottleneck {
	cout := width * 4
	m := &Bottleneck{
		Conv1: NewConv2d(b, rng, cin, width, 1, autograd.Conv2dOpts{}),
		BN1:   NewBatchNorm(b, width),
		Conv2: NewConv2d(b, rng, width, width, 3, autograd.Conv2dOpts{Stride: stride, Padding: 1}),
		BN2:   NewBatchNorm(b, width),
		Conv3: NewConv2d(b, rng, width, cout, 1, autograd.Conv2dOpts{}),
		BN3:   NewBatchNorm(b, cout),
	}
	if stride != 1 || cin != cout {
		m.Downsample = Seq(NewConv2d(b, rng, cin, cout, 1, autograd.Conv2dOpts{Stride: stride}), NewBatchNorm(b, cout))
	}
	return m
}

// Forward implements Module.
func (m *Bottleneck) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	skip := shortcut(g, m.Downsample, x)
	y1 := convBN(g, m.Conv1, m.BN1, x, nil, true)
	y2 := convBN(g, m.Conv2, m.BN2, y1, nil, true)
	g.Release(y1)
	out := convBN(g, m.Conv3, m.BN3, y2, skip, true)
	releaseBlock(g, x, skip, y2)
	return out
}

// Children implements Module.
func (m *Bottleneck) Children() []Child {
	c := []Child{{"conv1", m.Conv1}, {"bn1", m.BN1}, {"conv2", m.Conv2}, {"bn2", m.BN2}, {"conv3", m.Conv3}, {"bn3", m.BN3}}
	if m.Downsample != nil {
		c = append(c, Child{"downsample", m.Downsample})
	}
	return c
}

// Own implements Module.
func (m *Bottleneck) Own() ([]*Param, []*Buffer) { return nil, nil }

// ResNet is a backbone with torchvision's names: conv1, bn1, (maxpool),
// layer1…layerN, global average pooling, and fc. For embedding models fc
// maps the pooled features to the embedding (Out).
type ResNet struct {
	Arch    string
	Conv1   *Conv2d
	BN1     *BatchNorm
	MaxPool bool
	Layers  []*Sequential
	FC      *Linear // nil: Forward returns the pooled features
	// Features is the width of the pooled features (fc's input).
	Features int
}

// ResNetConfig chooses a model.
type ResNetConfig struct {
	Arch       string // resnet18, resnet34, resnet50, resnet-s
	InChannels int    // 3 for RGB, 1 for greyscale (default: 3, resnet-s: 1)
	Out        int    // fc output size (torchvision: 1000 classes); 0: no fc
	Seed       uint64
}

// Archs lists the architectures NewResNet builds.
var Archs = []string{"resnet-s", "resnet18", "resnet34", "resnet50"}

// NewResNet builds a model with torchvision's initialisation (Kaiming
// normal convs, BN weight 1 and bias 0, PyTorch's default Linear).
//
//   - resnet18/34/50: torchvision's layouts (7×7/2 stem and 3×3/2 max pool,
//     four stages of 64, 128, 256, 512 channels; BasicBlock ×[2,2,2,2] or
//     ×[3,4,6,3], Bottleneck ×[3,4,6,3]).
//   - resnet-s: for 1×32×32 inputs, as ../shared/bench/torch_anchor.py:
//     a 3×3 stem 1→32 with BN and ReLU, BasicBlocks 32→32 (stride 1),
//     32→64 (2), 64→128 (2), global average pooling, fc 128→Out.
func NewResNet(b backend.Backend, cfg ResNetConfig) (*ResNet, error) {
	rng := RNG(cfg.Seed)
	in := cfg.InChannels
	m := &ResNet{Arch: cfg.Arch}
	switch cfg.Arch {
	case "resnet-s":
		if in == 0 {
			in = 1
		}
		m.Conv1 = NewConv2d(b, rng, in, 32, 3, autograd.Conv2dOpts{Stride: 1, Padding: 1})
		m.BN1 = NewBatchNorm(b, 32)
		m.Layers = []*Sequential{Seq(
			NewBasicBlock(b, rng, 32, 32, 1),
			NewBasicBlock(b, rng, 32, 64, 2),
			NewBasicBlock(b, rng, 64, 128, 2),
		)}
		m.Features = 128
	case "resnet18", "resnet34", "resnet50":
		if in == 0 {
			in = 3
		}
		m.Conv1 = NewConv2d(b, rng, in, 64, 7, autograd.Conv2dOpts{Stride: 2, Padding: 3})
		m.BN1 = NewBatchNorm(b, 64)
		m.MaxPool = true
		blocks := map[string][]int{"resnet18": {2, 2, 2, 2}, "resnet34": {3, 4, 6, 3}, "resnet50": {3, 4, 6, 3}}[cfg.Arch]
		cin := 64
		for stage, n := range blocks {
			width := 64 << stage
			s := &Sequential{}
			for i := 0; i < n; i++ {
				stride := 1
				if i == 0 && stage > 0 {
					stride = 2
				}
				var blk Module
				if cfg.Arch == "resnet50" {
					blk = NewBottleneck(b, rng, cin, width, stride)
					cin = width * 4
				} else {
					blk = NewBasicBlock(b, rng, cin, width, stride)
					cin = width
				}
				s.Layers = append(s.Layers, Child{itoa(i), blk})
			}
			m.Layers = append(m.Layers, s)
		}
		m.Features = cin
	default:
		return nil, fmt.Errorf("unknown model %q (want one of %v)", cfg.Arch, Archs)
	}
	if cfg.Out > 0 {
		m.FC = NewLinear(b, rng, m.Features, cfg.Out, true)
	}
	return m, nil
}

// Forward: x (N, C, H, W) -> fc output (N, Out), or pooled features (N, Features) without fc.
func (m *ResNet) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	f := m.ForwardFeatures(g, x)
	if m.FC == nil {
		return f
	}
	return m.FC.Forward(g, f)
}

// ForwardFeatures returns the globally pooled features (N, Features).
func (m *ResNet) ForwardFeatures(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	var y *autograd.Var
	switch pool := (autograd.PoolOpts{Kernel: 3, Stride: 2, Padding: 1}); {
	case m.MaxPool && !m.BN1.training:
		y = g.ConvBNActMaxPool(x, m.Conv1.Weight.Var, m.Conv1.Opts, m.BN1.Weight.Var, m.BN1.Bias.Var, m.BN1.RunMean.T, m.BN1.RunVar.T, m.BN1.Eps, true, pool)
	case m.MaxPool:
		y = g.MaxPool2d(convBN(g, m.Conv1, m.BN1, x, nil, true), pool)
	default:
		y = convBN(g, m.Conv1, m.BN1, x, nil, true)
	}
	// In inference each block's input is released once the block is
	// done (the stem's output on; never x, the caller's).
	for _, l := range m.Layers {
		for _, c := range l.Layers {
			in := y
			if y = c.M.Forward(g, y); y != in {
				g.Release(in)
			}
		}
	}
	f := g.GlobalAvgPool(y)
	g.Release(y)
	return f
}

// Children implements Module, with torchvision's names.
func (m *ResNet) Children() []Child {
	c := []Child{{"conv1", m.Conv1}, {"bn1", m.BN1}}
	if m.Arch == "resnet-s" {
		// torch_anchor.py keeps its blocks in one Sequential named "layers".
		c = append(c, Child{"layers", m.Layers[0]})
	} else {
		for i, l := range m.Layers {
			c = append(c, Child{"layer" + itoa(i+1), l})
		}
	}
	if m.FC != nil {
		c = append(c, Child{"fc", m.FC})
	}
	return c
}

// Own implements Module.
func (m *ResNet) Own() ([]*Param, []*Buffer) { return nil, nil }
