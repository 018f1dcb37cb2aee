package nn

import (
	"math"
	"math/rand/v2"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
)

// Conv2d is a 2-D convolution without bias (as every ResNet uses it).
// Weight: (K, C/G, R, S). Initialisation: Kaiming normal, fan-out, ReLU gain
// (torchvision's ResNet init): std = √(2 / (K·R·S)).
type Conv2d struct {
	Weight *Param
	Opts   autograd.Conv2dOpts
}

// NewConv2d makes a k×k convolution from c to kOut channels.
func NewConv2d(b backend.Backend, rng *rand.Rand, c, kOut, k int, o autograd.Conv2dOpts) *Conv2d {
	groups := max(o.Groups, 1)
	n := kOut * (c / groups) * k * k
	std := math.Sqrt(2 / float64(kOut*k*k))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
	return &Conv2d{Weight: newParam(b, "weight", w, false, kOut, c/groups, k, k), Opts: o}
}

// Forward: x (N, C, H, W) -> (N, K, P, Q).
func (m *Conv2d) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return g.Conv2d(x, m.Weight.Var, m.Opts)
}

// Children implements Module.
func (m *Conv2d) Children() []Child { return nil }

// Own implements Module.
func (m *Conv2d) Own() ([]*Param, []*Buffer) { return []*Param{m.Weight}, nil }

// BatchNorm normalises (N, C) or (N, C, H, W) per channel (BatchNorm1d and
// BatchNorm2d). Weight 1, bias 0, running mean 0 and variance 1, momentum
// 0.1, eps 1e-5, as PyTorch.
type BatchNorm struct {
	Weight, Bias      *Param
	RunMean, RunVar   *Buffer
	NumBatches        *Buffer
	Momentum, Eps     float32
	training          bool
	numBatchesTracked int64
}

// NewBatchNorm makes a batch norm over c channels.
func NewBatchNorm(b backend.Backend, c int) *BatchNorm {
	m := &BatchNorm{
		Weight:   newParam(b, "weight", fill(c, 1), true, c),
		Bias:     newParam(b, "bias", fill(c, 0), true, c),
		RunMean:  newBuffer(b, "running_mean", fill(c, 0)),
		RunVar:   newBuffer(b, "running_var", fill(c, 1)),
		Momentum: 0.1, Eps: 1e-5, training: true,
	}
	m.NumBatches = &Buffer{Name: "num_batches_tracked", Counter: &m.numBatchesTracked}
	return m
}

// Forward normalises x with batch statistics (training) or running ones.
func (m *BatchNorm) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	if m.training {
		m.numBatchesTracked++
	}
	return g.BatchNorm(x, m.Weight.Var, m.Bias.Var, m.RunMean.T, m.RunVar.T,
		autograd.BatchNormOpts{Training: m.training, Momentum: m.Momentum, Eps: m.Eps})
}

func (m *BatchNorm) setTraining(t bool) { m.training = t }
func (m *BatchNorm) isTraining() bool   { return m.training }

// Children implements Module.
func (m *BatchNorm) Children() []Child { return nil }

// Own implements Module.
func (m *BatchNorm) Own() ([]*Param, []*Buffer) {
	return []*Param{m.Weight, m.Bias}, []*Buffer{m.RunMean, m.RunVar, m.NumBatches}
}

// Linear: y = x·Wᵀ + b, W (Out, In). PyTorch's default initialisation:
// weight and bias uniform in ±1/√In.
type Linear struct {
	Weight, Bias *Param // Bias may be nil
}

// NewLinear makes a linear layer.
func NewLinear(b backend.Backend, rng *rand.Rand, in, out int, bias bool) *Linear {
	bound := 1 / math.Sqrt(float64(in))
	w := make([]float32, in*out)
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
	l := &Linear{Weight: newParam(b, "weight", w, false, out, in)}
	if bias {
		bv := make([]float32, out)
		for i := range bv {
			bv[i] = float32((2*rng.Float64() - 1) * bound)
		}
		l.Bias = newParam(b, "bias", bv, true, out)
	}
	return l
}

// Forward: x (N, In) -> (N, Out).
func (m *Linear) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	var bias *autograd.Var
	if m.Bias != nil {
		bias = m.Bias.Var
	}
	return g.Linear(x, m.Weight.Var, bias)
}

// Children implements Module.
func (m *Linear) Children() []Child { return nil }

// Own implements Module.
func (m *Linear) Own() ([]*Param, []*Buffer) {
	if m.Bias == nil {
		return []*Param{m.Weight}, nil
	}
	return []*Param{m.Weight, m.Bias}, nil
}

// leaf is embedded by layers without parameters.
type leaf struct{}

func (leaf) Children() []Child          { return nil }
func (leaf) Own() ([]*Param, []*Buffer) { return nil, nil }

// ReLU is max(x, 0).
type ReLU struct{ leaf }

// Forward implements Module.
func (ReLU) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var { return g.Relu(x) }

// MaxPool2d is max pooling.
type MaxPool2d struct {
	leaf
	Opts autograd.PoolOpts
}

// Forward implements Module.
func (m MaxPool2d) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return g.MaxPool2d(x, m.Opts)
}

// AvgPool2d is average pooling (padding counted in the divisor).
type AvgPool2d struct {
	leaf
	Opts autograd.PoolOpts
}

// Forward implements Module.
func (m AvgPool2d) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return g.AvgPool2d(x, m.Opts)
}

// GlobalAvgPool: (N, C, H, W) -> (N, C).
type GlobalAvgPool struct{ leaf }

// Forward implements Module.
func (GlobalAvgPool) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return g.GlobalAvgPool(x)
}

// Flatten: (N, ...) -> (N, rest).
type Flatten struct{ leaf }

// Forward implements Module.
func (Flatten) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var { return g.Flatten(x) }

// Dropout zeroes elements with probability P in training mode.
type Dropout struct {
	leaf
	P        float32
	RNG      *rand.Rand
	training bool
}

// NewDropout makes a dropout layer with its own seeded generator.
func NewDropout(p float32, seed uint64) *Dropout {
	return &Dropout{P: p, RNG: RNG(seed), training: true}
}

// Forward implements Module.
func (m *Dropout) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return g.Dropout(x, m.P, m.training && g.Recording(), m.RNG)
}

func (m *Dropout) setTraining(t bool) { m.training = t }
func (m *Dropout) isTraining() bool   { return m.training }

// Sequential runs its children in order. Unnamed children are named by
// index ("0", "1", …), as torch.nn.Sequential.
type Sequential struct {
	Layers []Child
}

// Seq builds a Sequential with index names.
func Seq(ms ...Module) *Sequential {
	s := &Sequential{}
	for i, m := range ms {
		s.Layers = append(s.Layers, Child{Name: itoa(i), M: m})
	}
	return s
}

// Forward implements Module.
func (s *Sequential) Forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	for _, c := range s.Layers {
		x = c.M.Forward(g, x)
	}
	return x
}

// Children implements Module.
func (s *Sequential) Children() []Child { return s.Layers }

// Own implements Module.
func (s *Sequential) Own() ([]*Param, []*Buffer) { return nil, nil }

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
