package nn

import (
	"fmt"
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// ParamSet stores every parameter of a model (and of its heads) in one
// allocation, and every gradient in another, grouped so that each group is
// one contiguous range: an optimizer update is one backend call per group.
// Groups are named by the caller ("backbone", "head", "margins"); each
// splits into a decayed part and a "/no_decay" part (BN and biases).
type ParamSet struct {
	B      backend.Backend
	Groups []*Group
	Params []Named[*Param]
	values tensor.Storage
	grads  tensor.Storage
	size   int
}

// Group is a contiguous range of a ParamSet with its own optimizer settings.
type Group struct {
	Name        string
	Offset, Len int
	Params      []Named[*Param]
	// Values and Grads view the group's range.
	Values, Grads *tensor.Tensor
	// LRScale multiplies the optimizer's learning rate; WeightDecay applies
	// to the group (0 for the no-decay parts).
	LRScale     float32
	WeightDecay float32
	NoDecay     bool
}

// GroupSpec names a set of parameters.
type GroupSpec struct {
	Name    string
	Params  []Named[*Param]
	LRScale float32 // 0 means 1
}

// NewParamSet moves the parameters into one value storage and binds one
// gradient storage. Their Var.Value and Var.Grad become views into it; the
// old storages are freed.
func NewParamSet(b backend.Backend, specs ...GroupSpec) *ParamSet {
	ps := &ParamSet{B: b}
	type plan struct {
		g  *Group
		ps []Named[*Param]
	}
	var plans []plan
	seen := map[*Param]string{}
	for _, s := range specs {
		var decay, nodecay []Named[*Param]
		for _, p := range s.Params {
			if prev, dup := seen[p.V]; dup {
				panic(fmt.Sprintf("nn: parameter %s is in groups %s and %s", p.Name, prev, s.Name))
			}
			seen[p.V] = s.Name
			if p.V.NoDecay {
				nodecay = append(nodecay, p)
			} else {
				decay = append(decay, p)
			}
		}
		scale := s.LRScale
		if scale == 0 {
			scale = 1
		}
		if len(decay) > 0 {
			plans = append(plans, plan{&Group{Name: s.Name, LRScale: scale}, decay})
		}
		if len(nodecay) > 0 {
			plans = append(plans, plan{&Group{Name: s.Name + "/no_decay", LRScale: scale, NoDecay: true}, nodecay})
		}
	}
	for _, pl := range plans {
		pl.g.Offset = ps.size
		for _, p := range pl.ps {
			ps.size += p.V.Value.Numel()
		}
		pl.g.Len = ps.size - pl.g.Offset
	}
	ps.values, ps.grads = b.Alloc(ps.size), b.Alloc(ps.size)
	for _, pl := range plans {
		g := pl.g
		g.Params = pl.ps
		g.Values = tensor.New(ps.values, g.Offset, g.Len)
		g.Grads = tensor.New(ps.grads, g.Offset, g.Len)
		off := g.Offset
		for _, p := range pl.ps {
			v := p.V.Var
			shape := v.Value.Shape()
			view := tensor.New(ps.values, off, shape...)
			b.Copy(view, v.Value)
			b.Free(v.Value.Storage())
			v.Value = view
			v.Grad = tensor.New(ps.grads, off, shape...)
			v.ZeroGrad()
			off += view.Numel()
			ps.Params = append(ps.Params, p)
		}
		ps.Groups = append(ps.Groups, g)
	}
	return ps
}

// Size is the number of scalars in the set.
func (ps *ParamSet) Size() int { return ps.size }

// ZeroGrad starts a new accumulation: the next contribution to each
// gradient overwrites it.
func (ps *ParamSet) ZeroGrad() {
	for _, p := range ps.Params {
		p.V.ZeroGrad()
	}
}

// finishGrads zeroes the gradients of parameters that received none this
// step, so that the flat update reads no stale values.
func (ps *ParamSet) finishGrads() {
	for _, p := range ps.Params {
		if !p.V.HasGrad() {
			ps.B.Fill(p.V.Grad, 0)
		}
	}
}

// groupView returns group i's part of s (laid out as the values), from
// views kept in *cache so that a step makes no new tensors.
func (ps *ParamSet) groupView(s tensor.Storage, cache *[]*tensor.Tensor, i int) *tensor.Tensor {
	if len(*cache) != len(ps.Groups) {
		*cache = make([]*tensor.Tensor, len(ps.Groups))
		for j, g := range ps.Groups {
			(*cache)[j] = tensor.New(s, g.Offset, g.Len)
		}
	}
	return (*cache)[i]
}

// Values returns a view of all parameter values (for checks such as NaN scans).
func (ps *ParamSet) Values() *tensor.Tensor { return tensor.New(ps.values, 0, ps.size) }

// Grads returns a view of all gradients.
func (ps *ParamSet) Grads() *tensor.Tensor { return tensor.New(ps.grads, 0, ps.size) }

// Optimizer updates a ParamSet from its gradients.
type Optimizer interface {
	// Step applies one update with base learning rate lr.
	Step(lr float32)
	// State lists the optimizer's tensors and counters for checkpoints.
	State() (tensors map[string]*tensor.Tensor, counters map[string]int64)
	// SetCounters restores counters saved by State.
	SetCounters(map[string]int64) error
}

// SGD is PyTorch's SGD with momentum, optional Nesterov and weight decay,
// applied per group.
type SGD struct {
	PS                               *ParamSet
	Momentum, Dampening, WeightDecay float32
	Nesterov                         bool
	mom                              tensor.Storage
	momViews                         []*tensor.Tensor // per group, made once
}

// NewSGD makes an SGD optimizer; weight decay applies to the decayed groups.
func NewSGD(ps *ParamSet, momentum, weightDecay float32, nesterov bool) *SGD {
	return &SGD{PS: ps, Momentum: momentum, WeightDecay: weightDecay, Nesterov: nesterov, mom: ps.B.Alloc(ps.size)}
}

// Step implements Optimizer.
func (o *SGD) Step(lr float32) {
	o.PS.finishGrads()
	for i, g := range o.PS.Groups {
		weightDecay := o.WeightDecay
		if g.NoDecay {
			weightDecay = 0
		}
		p := backend.SGDParams{LR: lr * g.LRScale, Momentum: o.Momentum, WeightDecay: weightDecay, Dampening: o.Dampening, Nesterov: o.Nesterov}
		o.PS.B.SGDStep(p, g.Values, g.Grads, o.PS.groupView(o.mom, &o.momViews, i))
	}
}

// State implements Optimizer.
func (o *SGD) State() (map[string]*tensor.Tensor, map[string]int64) {
	return map[string]*tensor.Tensor{"optim.momentum": tensor.New(o.mom, 0, o.PS.size)}, nil
}

// SetCounters implements Optimizer.
func (o *SGD) SetCounters(map[string]int64) error { return nil }

// AdamW is Adam with decoupled weight decay (PyTorch's AdamW).
type AdamW struct {
	PS                             *ParamSet
	Beta1, Beta2, Eps, WeightDecay float32
	step                           int64
	m, v                           tensor.Storage
	mViews, vViews                 []*tensor.Tensor // per group, made once
}

// NewAdamW makes an AdamW optimizer with PyTorch's defaults for zero values
// of beta1 (0.9), beta2 (0.999) and eps (1e-8).
func NewAdamW(ps *ParamSet, beta1, beta2, eps, weightDecay float32) *AdamW {
	if beta1 == 0 {
		beta1 = 0.9
	}
	if beta2 == 0 {
		beta2 = 0.999
	}
	if eps == 0 {
		eps = 1e-8
	}
	return &AdamW{PS: ps, Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, m: ps.B.Alloc(ps.size), v: ps.B.Alloc(ps.size)}
}

// Step implements Optimizer.
func (o *AdamW) Step(lr float32) {
	o.PS.finishGrads()
	o.step++
	for i, g := range o.PS.Groups {
		weightDecay := o.WeightDecay
		if g.NoDecay {
			weightDecay = 0
		}
		p := backend.AdamWParams{LR: lr * g.LRScale, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: weightDecay, Step: int(o.step)}
		o.PS.B.AdamWStep(p, g.Values, g.Grads, o.PS.groupView(o.m, &o.mViews, i), o.PS.groupView(o.v, &o.vViews, i))
	}
}

// State implements Optimizer.
func (o *AdamW) State() (map[string]*tensor.Tensor, map[string]int64) {
	return map[string]*tensor.Tensor{
		"optim.exp_avg":    tensor.New(o.m, 0, o.PS.size),
		"optim.exp_avg_sq": tensor.New(o.v, 0, o.PS.size),
	}, map[string]int64{"optim.step": o.step}
}

// SetCounters implements Optimizer.
func (o *AdamW) SetCounters(c map[string]int64) error {
	s, ok := c["optim.step"]
	if !ok || s < 0 {
		return fmt.Errorf("adamw: checkpoint has no valid optim.step")
	}
	o.step = s
	return nil
}

// Schedule maps a step (0-based) of a run of total steps to a learning-rate
// factor in [0, 1] that multiplies the base rate.
type Schedule interface {
	Factor(step, total int) float64
}

// Constant keeps the rate.
type Constant struct{}

// Factor implements Schedule.
func (Constant) Factor(int, int) float64 { return 1 }

// StepDecay multiplies the rate by Gamma every Every steps.
type StepDecay struct {
	Every int
	Gamma float64
}

// Factor implements Schedule.
func (s StepDecay) Factor(step, _ int) float64 {
	if s.Every <= 0 {
		return 1
	}
	return math.Pow(s.Gamma, float64(step/s.Every))
}

// Cosine anneals from 1 to Min over the run.
type Cosine struct{ Min float64 }

// Factor implements Schedule.
func (c Cosine) Factor(step, total int) float64 {
	if total <= 1 {
		return 1
	}
	t := math.Min(1, float64(step)/float64(total-1))
	return c.Min + (1-c.Min)*(1+math.Cos(math.Pi*t))/2
}

// Warmup ramps linearly from 1/Steps to 1 over the first Steps steps, then
// follows Then over the remaining steps.
type Warmup struct {
	Steps int
	Then  Schedule
}

// Factor implements Schedule.
func (w Warmup) Factor(step, total int) float64 {
	if step < w.Steps {
		return float64(step+1) / float64(w.Steps)
	}
	if w.Then == nil {
		return 1
	}
	return w.Then.Factor(step-w.Steps, max(1, total-w.Steps))
}

// OneCycle rises from 1/Div to 1 over the first PctStart of the run
// (cosine), then falls to 1/(Div·FinalDiv) (PyTorch's OneCycleLR shape with
// defaults 0.3, 25 and 1e4 for zero values).
type OneCycle struct {
	PctStart, Div, FinalDiv float64
}

// Factor implements Schedule.
func (o OneCycle) Factor(step, total int) float64 {
	pct, div, fin := o.PctStart, o.Div, o.FinalDiv
	if pct == 0 {
		pct = 0.3
	}
	if div == 0 {
		div = 25
	}
	if fin == 0 {
		fin = 1e4
	}
	up := max(1, int(pct*float64(total))-1)
	anneal := func(a, b, t float64) float64 { return b + (a-b)*(1+math.Cos(math.Pi*t))/2 }
	if step <= up {
		return anneal(1/div, 1, float64(step)/float64(up))
	}
	down := max(1, total-1-up)
	return anneal(1, 1/(div*fin), math.Min(1, float64(step-up)/float64(down)))
}
