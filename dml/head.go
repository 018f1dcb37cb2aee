package dml

import (
	"fmt"
	"math"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// Head is a margin-softmax classifier on embeddings: it owns the class
// weights W (C, D), one proxy per item id, and for dml/class the learned
// margins. Legend: N = batch, D = embedding size, C = classes.
type Head interface {
	// Name is the canonical head name ("cosface", "dml/class", ...).
	Name() string
	// Config is the head's settings.
	Config() Config
	// Describe is the head's spec with every setting it reads, for reports.
	Describe() string
	// Dim is D and Classes is C.
	Dim() int
	Classes() int

	// Forward records the training loss (1) of embeddings emb (N, D) with
	// labels (N) in [0, C): the mean margin-softmax cross-entropy (plus
	// dml/class's margin term −λ·mean_j m_n,j, which can make the loss
	// negative). It returns an error for bad shapes or
	// labels, and a *NonFiniteError when the loss check (Config.CheckEvery)
	// finds NaN or ±Inf. While g records, each call is one training step:
	// the step counter (SphereFace's λ annealing, error messages) advances.
	Forward(g *autograd.Graph, emb *autograd.Var, labels []int32) (*autograd.Var, error)
	// Logits are the margin-free logits for inference, emb (N, D) -> (N, C):
	// s·cos θ_j for the cosine heads, W·x + b for softmax.
	Logits(g *autograd.Graph, emb *autograd.Var) *autograd.Var

	// Params lists every learnable tensor with its full name ("head.weight",
	// "head.bias", "head.margin_p", "head.margin_rho").
	Params() []nn.Named[*nn.Param]
	// Groups splits Params for nn.NewParamSet: "head" (the class weights and
	// bias, LR scale 1) and, for dml/class, "margins" (the ρ_j, LR scale
	// Config.MarginLR) and "margin_p" (m_p, LR scale Config.MarginLR/C, as
	// its gradient is about C times a class margin's). Margins and biases
	// are exempt from weight decay.
	Groups() []nn.GroupSpec
	// Margins reports the current margin settings for logs: the fixed ones,
	// SphereFace's λ for the next step, and dml/class's learned m_p, the
	// mean, least and largest m_n,j and the loss term −λ·mean_j m_n,j
	// (downloaded from the device; the cross-entropy is the loss minus it).
	Margins() []Stat

	// LastLoss is the loss value the last Forward read from the device for
	// its check (Config.CheckEvery), and whether it read one: a training
	// loop uses it instead of reading the loss a second time.
	LastLoss() (float32, bool)

	// SetStep sets the number of the next training step (resuming a run).
	SetStep(step int)
	// Step is the number of the next training step.
	Step() int
	// CheckFinite scans emb (if not nil) and every parameter and returns a
	// *NonFiniteError for the first NaN or ±Inf, naming the step.
	CheckFinite(step int, emb *tensor.Tensor) error
}

// Stat is one named value for logs.
type Stat struct {
	Name  string
	Value float64
}

// head implements Head for every kind; the kind selects the kernel's
// logit functions and which parameters exist.
type head struct {
	name         string
	def          *headDef
	kind         backend.MarginKind
	cfg          Config
	b            backend.Backend
	dim, classes int
	weight, bias *nn.Param // W (C, D); bias (C), softmax only
	mp, rho      *nn.Param // dml/class: m_p (1) and ρ (C)
	// mpFixed holds dml/class's m_p on the device when it is not learned
	// (uploaded once, so that a step moves nothing to the device).
	mpFixed *autograd.Var
	step    int
	// lastLoss is the loss value Forward's check read (lossRead), so that
	// a caller need not read it from the device a second time.
	lastLoss float32
	lossRead bool
	// host is host scratch for composed losses (label masks), reused
	// from step to step.
	host []float32
}

// New builds the named head (see Names; "dml" means DefaultDML) for
// embeddings of size dim and classes classes, with class weights drawn
// from seed. The zero Config means DefaultConfig(name); any other is
// validated as given.
//
// Initialisation: softmax as PyTorch's Linear (weight and bias uniform in
// ±1/√D); cosine heads W ~ N(0, 1/D), so that |W_j| ≈ 1 (the cosine is
// invariant to |W_j|, but its gradient scales with 1/|W_j|); dml/class
// ρ_j = softplus⁻¹(m_n − m_p − δ), so that the margins start at
// ClassMargins.MP and ClassMargins.MN.
func New(b backend.Backend, name string, cfg Config, dim, classes int, seed uint64) (Head, error) {
	n, err := Canonical(name)
	if err != nil {
		return nil, err
	}
	if cfg.Head == nil && cfg == (Config{}) { // (Head first: == needs a comparable type)
		cfg, _ = DefaultConfig(n)
	}
	if err := cfg.Validate(n); err != nil {
		return nil, err
	}
	cfg.resolve(n) // a nil Head becomes the zero settings it was validated as
	if dim < 1 {
		return nil, fmt.Errorf("dml: %s: embedding size %d must be ≥ 1", n, dim)
	}
	if classes < 2 {
		return nil, fmt.Errorf("dml: %s: %d classes: need at least 2", n, classes)
	}
	d := lookup(n)
	h := &head{name: n, def: d, kind: d.kind, cfg: cfg, b: b, dim: dim, classes: classes}
	rng := nn.RNG(seed)
	w := make([]float32, classes*dim)
	if d.linear {
		bound := 1 / math.Sqrt(float64(dim))
		for i := range w {
			w[i] = float32((2*rng.Float64() - 1) * bound)
		}
		h.weight = newParam(b, "weight", w, false, classes, dim)
		if sm, _ := cfg.Head.(Softmax); sm.Bias {
			bv := make([]float32, classes)
			for i := range bv {
				bv[i] = float32((2*rng.Float64() - 1) * bound)
			}
			h.bias = newParam(b, "bias", bv, true, classes)
		}
	} else {
		std := 1 / math.Sqrt(float64(dim))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
		h.weight = newParam(b, "weight", w, false, classes, dim)
	}
	if d.learnsMargins {
		c := h.class()
		if c.LearnMP {
			h.mp = newParam(b, "margin_p", []float32{float32(c.MP)}, true, 1)
		} else {
			t := tensor.New(b.Alloc(1), 0, 1)
			b.Upload(t, []float32{float32(c.MP)})
			h.mpFixed = autograd.NewVar(t, false)
		}
		r := float32(softplusInv(c.MN - c.MP - c.Delta))
		rho := make([]float32, classes)
		for i := range rho {
			rho[i] = r
		}
		h.rho = newParam(b, "margin_rho", rho, true, classes)
	}
	return h, nil
}

func newParam(b backend.Backend, name string, values []float32, noDecay bool, shape ...int) *nn.Param {
	t := tensor.New(b.Alloc(tensor.Numel(shape)), 0, shape...)
	b.Upload(t, values)
	v := autograd.NewVar(t, true)
	v.Name = "head." + name
	return &nn.Param{Name: name, Var: v, NoDecay: noDecay}
}

func (h *head) Name() string       { return h.name }
func (h *head) Config() Config     { return h.cfg }
func (h *head) Describe() string   { return h.cfg.Describe(h.name) }
func (h *head) Dim() int           { return h.dim }
func (h *head) Classes() int       { return h.classes }
func (h *head) SetStep(step int)   { h.step = step }
func (h *head) Step() int          { return h.step }
func (h *head) isCosine() bool     { return !h.def.linear }
func (h *head) learnsMargin() bool { return h.def.learnsMargins }

func (h *head) Params() []nn.Named[*nn.Param] {
	var out []nn.Named[*nn.Param]
	for _, p := range []*nn.Param{h.weight, h.bias, h.mp, h.rho} {
		if p != nil {
			out = append(out, nn.Named[*nn.Param]{Name: "head." + p.Name, V: p})
		}
	}
	return out
}

func (h *head) Groups() []nn.GroupSpec {
	var hd []nn.Named[*nn.Param]
	var rho, mp []nn.Named[*nn.Param]
	for _, p := range h.Params() {
		switch p.V {
		case h.rho:
			rho = append(rho, p)
		case h.mp:
			mp = append(mp, p)
		default:
			hd = append(hd, p)
		}
	}
	out := []nn.GroupSpec{{Name: "head", Params: hd, LRScale: 1}}
	if rho != nil {
		out = append(out, nn.GroupSpec{Name: "margins", Params: rho, LRScale: float32(h.cfg.MarginLR)})
	}
	if mp != nil {
		// ∂L/∂m_p is the sum of the class margins' gradients and more
		// (O(s) against O(s/C)): 1/C of their rate makes it move like one
		// of them under SGD.
		out = append(out, nn.GroupSpec{Name: "margin_p", Params: mp, LRScale: float32(h.cfg.MarginLR / float64(h.classes))})
	}
	return out
}

// marginParams are the kernel's settings at a step (N and C are set by
// autograd; dml/class's m_p and m_n,j come from Vars).
func (h *head) marginParams(step int) backend.MarginParams {
	p := backend.MarginParams{Kind: h.kind, Eps: float32(h.cfg.Eps)}
	if h.def.params != nil {
		p = h.def.params(h.cfg.Head, step, p)
	}
	return p
}

// checkInputs validates a batch at the edge.
func (h *head) checkInputs(emb *autograd.Var, labels []int32) error {
	if emb == nil || emb.Value == nil {
		return fmt.Errorf("dml: %s: no embeddings", h.name)
	}
	if emb.Value.Rank() != 2 || emb.Value.Dim(1) != h.dim {
		return fmt.Errorf("dml: %s: embeddings %s, want (N, %d)", h.name, tensor.ShapeString(emb.Value.Shape()), h.dim)
	}
	n := emb.Value.Dim(0)
	if n < 1 {
		return fmt.Errorf("dml: %s: empty batch", h.name)
	}
	if len(labels) != n {
		return fmt.Errorf("dml: %s: %d labels for %d embeddings", h.name, len(labels), n)
	}
	for i, l := range labels {
		if l < 0 || int(l) >= h.classes {
			return fmt.Errorf("dml: %s: label %d of sample %d is outside [0, %d)", h.name, l, i, h.classes)
		}
	}
	return nil
}

// cosines: emb (N, D), W (C, D) -> cos (N, C) = normalize(emb)·normalize(W)ᵀ.
func (h *head) cosines(g *autograd.Graph, emb *autograd.Var) *autograd.Var {
	eps := float32(h.cfg.NormEps)
	xn := g.L2Normalize(emb, eps)
	wn := g.L2Normalize(h.weight.Var, eps)
	return g.MatMul(xn, wn, false, true)
}

func (h *head) Logits(g *autograd.Graph, emb *autograd.Var) *autograd.Var {
	if !h.isCosine() {
		var bias *autograd.Var
		if h.bias != nil {
			bias = h.bias.Var
		}
		return g.Linear(emb, h.weight.Var, bias)
	}
	var s float32
	if h.def.scale != nil {
		s = float32(h.def.scale(h.cfg.Head))
	} else {
		s = h.marginParams(h.step).S
	}
	return g.Affine(h.cosines(g, emb), s, 0)
}

func (h *head) Forward(g *autograd.Graph, emb *autograd.Var, labels []int32) (*autograd.Var, error) {
	if err := h.checkInputs(emb, labels); err != nil {
		return nil, err
	}
	step := h.step
	if g.Recording() {
		h.step++
		if h.learnsMargin() {
			h.project()
		}
	}
	loss := h.loss(g, emb, labels, step)
	h.lossRead = false
	if h.cfg.CheckEvery > 0 && step%h.cfg.CheckEvery == 0 {
		v := g.Item(loss)
		h.lastLoss, h.lossRead = v, true
		if !finite(v) {
			if err := h.CheckFinite(step, emb.Value); err != nil {
				return nil, err
			}
			return nil, &NonFiniteError{Step: step, What: h.name + " loss", Value: v}
		}
	}
	return loss, nil
}

// LastLoss returns the value of the loss the last Forward recorded when
// its check read it from the device (Config.CheckEvery), and whether it
// did: a training loop uses it instead of reading the loss again.
func (h *head) LastLoss() (float32, bool) { return h.lastLoss, h.lossRead }

// loss records the loss of a checked batch at a step.
func (h *head) loss(g *autograd.Graph, emb *autograd.Var, labels []int32, step int) *autograd.Var {
	if h.def.loss != nil {
		var in *autograd.Var
		if h.isCosine() {
			in = h.cosines(g, emb)
		} else {
			in = h.Logits(g, emb)
		}
		return h.def.loss(h, g, in, labels, step)
	}
	p := h.marginParams(step)
	switch {
	case !h.isCosine():
		return g.MarginCE(h.Logits(g, emb), labels, p, nil, nil)
	case h.learnsMargin():
		mp, mn := h.classMargins(g)
		loss := g.MarginCE(h.cosines(g, emb), labels, p, mn, mp)
		if reg := h.class().MarginReg; reg != 0 {
			loss = g.Add(loss, g.Affine(g.Mean(mn), float32(-reg), 0))
		}
		return loss
	}
	return g.MarginCE(h.cosines(g, emb), labels, p, nil, nil)
}

// class is dml/class's own settings (the heads that learn margins).
func (h *head) class() ClassMargins { return h.cfg.Head.(ClassMargins) }

// classMargins records dml/class's margins:
// m_p = min(max(m_p, 0), m_max − δ) (1) (or the constant m_p) and
// m_n,j = min(m_p + δ + softplus(ρ_j), m_max) (C).
func (h *head) classMargins(g *autograd.Graph) (mp, mn *autograd.Var) {
	c := h.class()
	if h.mp != nil {
		mp = g.Clamp(h.mp.Var, 0, float32(c.MaxMargin-c.Delta))
	} else {
		mp = h.mpFixed
	}
	u := g.AddScalarVar(g.Affine(g.Softplus(h.rho.Var), 1, float32(c.Delta)), mp)
	mn = g.Clamp(u, 0, float32(c.MaxMargin))
	return mp, mn
}

// projectGap keeps projected margins this far inside the upper clamps, so
// that float32 rounding does not put them past one (where the clamp's
// gradient is 0 and the margin could never come back).
const projectGap = 1e-6

// project moves m_p and ρ onto the set where the clamps are inactive
// (projected gradient descent): 0 ≤ m_p ≤ m_max − δ − gap and
// m_p + δ + softplus(ρ_j) ≤ m_max − gap. The clamps alone would hold the
// margins in range, but a margin pushed past one would get no gradient and
// stay there; after the projection it sits on the bound (where the clamp
// passes the gradient) and moves back when the loss asks for it. It runs
// on the device (backend.ProjectMargins): nothing is read back.
func (h *head) project() {
	c := h.class()
	p := backend.ProjectParams{MP: c.MP, MaxMP: float32(c.MaxMargin - c.Delta - projectGap),
		MaxMargin: c.MaxMargin, Delta: c.Delta, Gap: projectGap}
	var mp *tensor.Tensor
	if h.mp != nil {
		mp = h.mp.Value
	}
	h.b.ProjectMargins(p, mp, h.rho.Value)
}

// marginValues computes dml/class's m_p and m_n,j on the host, as the
// forward does (in float64).
func (h *head) marginValues() (mp float64, mn []float64) {
	c := h.class()
	mp = c.MP
	if h.mp != nil {
		var v [1]float32
		h.b.Download(v[:], h.mp.Value)
		mp = math.Min(math.Max(float64(v[0]), 0), c.MaxMargin-c.Delta)
	}
	rho := make([]float32, h.classes)
	h.b.Download(rho, h.rho.Value)
	mn = make([]float64, h.classes)
	for j, r := range rho {
		mn[j] = math.Min(mp+c.Delta+softplus(float64(r)), c.MaxMargin)
	}
	return mp, mn
}

func (h *head) Margins() []Stat {
	if h.def.margins == nil {
		return nil
	}
	return h.def.margins(h)
}

func (h *head) CheckFinite(step int, emb *tensor.Tensor) error {
	if emb != nil {
		if err := CheckFinite(h.b, step, "embeddings", emb); err != nil {
			return err
		}
	}
	for _, p := range h.Params() {
		if err := CheckFinite(h.b, step, p.Name, p.V.Value); err != nil {
			return err
		}
	}
	return nil
}

// softplus is ln(1 + eˣ), stable for large |x|.
func softplus(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }

// softplusInv is the inverse of softplus for y > 0: ln(eʸ − 1).
func softplusInv(y float64) float64 { return y + math.Log(-math.Expm1(-y)) }
