package dml

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Head names. "dml" alone means DefaultDML.
const (
	NameSoftmax     = "softmax"
	NameNormFace    = "normface"
	NameSphereFace  = "sphereface"
	NameCosFace     = "cosface"
	NameArcFace     = "arcface"
	NameCombined    = "combined"
	NameDMLFixed    = "dml/fixed"
	NameDMLClass    = "dml/class"
	NameDMLAdaptive = "dml/adaptive"
)

// DefaultDML is the form "dml" names. Measured on FMNIST-C2S (`make
// compare`, 3 seeds, RESULTS.md): dml/class and dml/fixed tie (top-20 0.411
// ± 0.035 and 0.416 ± 0.029), dml/adaptive is worse (0.338 ± 0.032);
// dml/class is kept because it is the form that learns its margins, as the
// paper describes.
const DefaultDML = NameDMLClass

// Names lists the heads whose loss is the fused margin-softmax kernel
// (backend.MarginSoftmaxCE), in the order of the loss table. New also
// builds the heads of Composed.
var Names = headNames(false)

// Composed lists the heads whose loss is recorded with autograd ops
// instead of a fused kernel (proxy-anchor). Unlike the heads of Names, a
// training step of one uploads its label masks (N, C) besides the batch:
// the fused kernel takes the labels on the host, autograd ops cannot.
var Composed = headNames(true)

// Canonical resolves an alias ("dml", "am-softmax", upper case) to the name
// New uses, or returns an error listing the valid names.
func Canonical(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, d := range heads {
		if d.name == n || slices.Contains(d.aliases, n) {
			return d.name, nil
		}
	}
	return "", fmt.Errorf("dml: unknown head %q (valid: %s, or dml for %s)", name, strings.Join(append(slices.Clone(Names), Composed...), ", "), DefaultDML)
}

// Config holds every setting of every head; each head reads the fields its
// options name (see Options) and ignores the others. Start from
// DefaultConfig or Parse: the zero Config passed to New also means the
// head's defaults, but a partly filled one is taken as it is and validated.
type Config struct {
	// S is the scale s of the cosine heads (softmax has none).
	S float64
	// M is the cosface/arcface margin (arcface: radians) and the sphereface
	// multiplier (an integer ≥ 1).
	M float64
	// M1, M2, M3 are InsightFace's combined margins:
	// z_y = s·(cos(M1·θ_y + M2) − M3).
	M1, M2, M3 float64
	// EasyMargin (arcface) keeps z_y = s·cos θ_y wherever cos θ_y ≤ 0
	// instead of the fallback s·(cos θ_y − m·sin m) past θ_y > π − m.
	EasyMargin bool

	// Anneal (sphereface) sets λ at step t to
	// max(LambdaMin, LambdaBase·(1 + LambdaGamma·t)^(−LambdaPower));
	// without it λ = Lambda throughout (0: pure ψ).
	Anneal                                          bool
	Lambda                                          float64
	LambdaBase, LambdaGamma, LambdaPower, LambdaMin float64

	// MP and MN are DML's positive and negative margins: dml/fixed's
	// values, dml/class's initial values (MN for every class), and
	// dml/adaptive's m_p and the top of its map m_n·(1 + cos θ_j)/2.
	MP, MN float64
	// Delta is dml/class's least gap m_n,j − m_p, and proxy-anchor's
	// margin δ.
	Delta float64
	// MaxMargin is dml/class's upper clamp on every m_n,j (and so on
	// m_p ≤ MaxMargin − Delta).
	MaxMargin float64
	// MarginReg is λ of dml/class's term −λ·mean_j(m_n,j).
	MarginReg float64
	// MarginLR multiplies the base learning rate for the "margins"
	// parameter group (dml/class's ρ_j); the "margin_p" group (m_p) gets
	// MarginLR/C (see Head.Groups).
	MarginLR float64
	// LearnMP (dml/class) learns m_p; otherwise m_p stays at MP.
	LearnMP bool

	// Alpha is proxy-anchor's scale α (its margin is Delta).
	Alpha float64

	// Eps clamps cosines to [−1+Eps, 1−Eps] before any acos (cosine heads).
	Eps float64
	// NormEps is the least norm in the L2 normalisation of embeddings and
	// class weights: x/max(|x|, NormEps) (cosine heads).
	NormEps float64
	// Bias gives the softmax head a bias per class.
	Bias bool
	// CheckEvery: every CheckEvery-th training step, Forward downloads the
	// loss and, if it is NaN or ±Inf, scans embeddings and parameters and
	// returns a *NonFiniteError. 0 turns the check off.
	CheckEvery int
}

// DefaultConfig returns the defaults of the named head (aliases allowed).
//
//   - softmax: bias.
//   - normface: s = 30.
//   - sphereface: s = 30, m = 4, λ annealed from 1000 with γ = 0.12,
//     power 1, floor 5 (the SphereFace paper's Caffe settings).
//   - cosface: s = 64, m = 0.35 (CosFace paper).
//   - arcface: s = 64, m = 0.5 rad, no easy margin (InsightFace).
//   - combined: s = 64, m1 = 1, m2 = 0.3, m3 = 0.2 (InsightFace).
//   - dml/class: s = 30, m_p = 0.2, m_n = 0.35, δ = 0.05, m_max = 0.5,
//     λ = 60 (= 2s), margins' LR scale 1, learned m_p: the best of a sweep
//     on FMNIST-C2S (s ∈ {24, 30, 48, 64}, m_p + m_n from 0.25 to 0.75,
//     λ ∈ {s, 2s}; docs/dml_sweep.md). s = 48 and 64 were far worse, λ = s
//     let the margins collapse, and the total margin peaked at 0.55; over
//     3 seeds it leads the old default (0.1, 0.25) by about one point of
//     top-20, less than the seeds' spread.
//   - dml/fixed: s = 30, m_p = 0.1, m_n = 0.25 (it is cosface with
//     m = 0.35, which beat m = 0.55 in the same sweep).
//   - dml/adaptive: s = 30, m_p = 0.1, m_n = 0.4 (the map's top; not swept).
//   - proxy-anchor: α = 32, δ = 0.1 (the Proxy-Anchor paper's).
//
// Every cosine head: eps = 1e-6 (cosine clamp), norm_eps = 1e-6; every head
// checks the loss for NaN/Inf every step.
func DefaultConfig(name string) (Config, error) {
	n, err := Canonical(name)
	if err != nil {
		return Config{}, err
	}
	c := Config{Eps: 1e-6, NormEps: 1e-6, CheckEvery: 1}
	if d := lookup(n); d.defaults != nil {
		d.defaults(&c)
	}
	return c, nil
}

// option is one key of the k=v option syntax.
type option struct {
	key string
	doc string
	// exactly one of these is set
	f func(*Config) *float64
	b func(*Config) *bool
	i func(*Config) *int
}

var options = []option{
	{key: "s", doc: "scale s > 0", f: func(c *Config) *float64 { return &c.S }},
	{key: "m", doc: "margin: cosface in [0, 1], arcface in [0, π/2) rad, sphereface an integer in [1, 16]", f: func(c *Config) *float64 { return &c.M }},
	{key: "easy_margin", doc: "keep s·cos θ_y where cos θ_y ≤ 0 (no fallback)", b: func(c *Config) *bool { return &c.EasyMargin }},
	{key: "m1", doc: "angle multiplier m1 > 0", f: func(c *Config) *float64 { return &c.M1 }},
	{key: "m2", doc: "additive angle m2 ≥ 0 (radians)", f: func(c *Config) *float64 { return &c.M2 }},
	{key: "m3", doc: "cosine margin m3 ≥ 0", f: func(c *Config) *float64 { return &c.M3 }},
	{key: "anneal", doc: "anneal λ (else λ = lambda)", b: func(c *Config) *bool { return &c.Anneal }},
	{key: "lambda", doc: "fixed λ ≥ 0 when not annealing", f: func(c *Config) *float64 { return &c.Lambda }},
	{key: "lambda_base", doc: "annealing base ≥ 0", f: func(c *Config) *float64 { return &c.LambdaBase }},
	{key: "lambda_gamma", doc: "annealing γ ≥ 0", f: func(c *Config) *float64 { return &c.LambdaGamma }},
	{key: "lambda_power", doc: "annealing power ≥ 0", f: func(c *Config) *float64 { return &c.LambdaPower }},
	{key: "lambda_min", doc: "annealing floor ≥ 0", f: func(c *Config) *float64 { return &c.LambdaMin }},
	{key: "m_p", doc: "positive margin m_p ≥ 0 (dml/class: initial value)", f: func(c *Config) *float64 { return &c.MP }},
	{key: "m_n", doc: "negative margin m_n > m_p (dml/class: initial value, > m_p + δ; dml/adaptive: the map's top)", f: func(c *Config) *float64 { return &c.MN }},
	{key: "alpha", doc: "proxy-anchor's scale α > 0", f: func(c *Config) *float64 { return &c.Alpha }},
	{key: "delta", doc: "dml/class: least gap δ ≥ 0 between m_n,j and m_p; proxy-anchor: margin δ in [0, 1)", f: func(c *Config) *float64 { return &c.Delta }},
	{key: "m_max", doc: "upper clamp of m_n,j, ≥ m_n", f: func(c *Config) *float64 { return &c.MaxMargin }},
	{key: "margin_reg", doc: "λ ≥ 0 of −λ·mean_j(m_n,j)", f: func(c *Config) *float64 { return &c.MarginReg }},
	{key: "margin_lr", doc: "learning-rate scale > 0 of the margins group (margin_p: this/C)", f: func(c *Config) *float64 { return &c.MarginLR }},
	{key: "learn_mp", doc: "learn m_p (else fixed at m_p)", b: func(c *Config) *bool { return &c.LearnMP }},
	{key: "eps", doc: "cosine clamp ε in (0, 0.01]", f: func(c *Config) *float64 { return &c.Eps }},
	{key: "norm_eps", doc: "least norm in the L2 normalisation, in (0, 1]", f: func(c *Config) *float64 { return &c.NormEps }},
	{key: "bias", doc: "a bias per class", b: func(c *Config) *bool { return &c.Bias }},
	{key: "check_every", doc: "NaN/Inf check of the loss every n steps (0: off)", i: func(c *Config) *int { return &c.CheckEvery }},
}

// appliesTo reports whether the named head (canonical) reads the option.
func (o option) appliesTo(name string) bool {
	d := lookup(name)
	return d != nil && d.reads(o.key)
}

func findOption(key string) (option, bool) {
	for _, o := range options {
		if o.key == key {
			return o, true
		}
	}
	return option{}, false
}

// OptionDoc is one option key with a short description.
type OptionDoc struct {
	Key, Doc string
}

// Options lists the option keys the named head reads, in a fixed order.
func Options(name string) ([]OptionDoc, error) {
	n, err := Canonical(name)
	if err != nil {
		return nil, err
	}
	var out []OptionDoc
	for _, o := range options {
		if o.appliesTo(n) {
			out = append(out, OptionDoc{o.key, o.doc})
		}
	}
	return out, nil
}

// Parse reads a head spec "name" or "name:key=value,key=value" (for
// example "arcface:s=30,m=0.4" or "dml/class:margin_lr=0.1") and returns
// the canonical name and the head's defaults with the options applied.
// Keys are those of Options(name); an unknown key, a key the head does not
// read, or a bad value is an error naming it. The result is validated.
func Parse(spec string) (string, Config, error) {
	name, opts, _ := strings.Cut(spec, ":")
	return ParseOptions(name, opts)
}

// ParseOptions applies comma-separated key=value options to the named
// head's defaults and validates the result.
func ParseOptions(name, opts string) (string, Config, error) {
	n, err := Canonical(name)
	if err != nil {
		return "", Config{}, err
	}
	cfg, _ := DefaultConfig(n)
	seen := map[string]bool{}
	for _, kv := range strings.Split(opts, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || v == "" {
			return "", Config{}, fmt.Errorf("dml: %s: option %q is not key=value", n, kv)
		}
		o, known := findOption(k)
		if !known {
			return "", Config{}, fmt.Errorf("dml: %s: unknown option %q (%s reads: %s)", n, k, n, optionKeys(n))
		}
		if !o.appliesTo(n) {
			return "", Config{}, fmt.Errorf("dml: %s: option %q does not apply to %s (it reads: %s)", n, k, n, optionKeys(n))
		}
		if seen[k] {
			return "", Config{}, fmt.Errorf("dml: %s: option %q given twice", n, k)
		}
		seen[k] = true
		switch {
		case o.f != nil:
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return "", Config{}, fmt.Errorf("dml: %s: option %s=%q is not a finite number", n, k, v)
			}
			*o.f(&cfg) = x
		case o.b != nil:
			x, err := strconv.ParseBool(v)
			if err != nil {
				return "", Config{}, fmt.Errorf("dml: %s: option %s=%q is not true or false", n, k, v)
			}
			*o.b(&cfg) = x
		case o.i != nil:
			x, err := strconv.Atoi(v)
			if err != nil {
				return "", Config{}, fmt.Errorf("dml: %s: option %s=%q is not an integer", n, k, v)
			}
			*o.i(&cfg) = x
		}
	}
	if err := cfg.Validate(n); err != nil {
		return "", Config{}, err
	}
	return n, cfg, nil
}

func optionKeys(name string) string {
	var keys []string
	for _, o := range options {
		if o.appliesTo(name) {
			keys = append(keys, o.key)
		}
	}
	return strings.Join(keys, ", ")
}

// Describe formats the settings the named head reads as a spec that Parse
// reads back: "cosface:s=64,m=0.35,eps=1e-06,norm_eps=1e-06,check_every=1".
// Reports use it to state the loss settings.
func (c Config) Describe(name string) string {
	n, err := Canonical(name)
	if err != nil {
		return name
	}
	var parts []string
	for _, o := range options {
		if !o.appliesTo(n) {
			continue
		}
		var v string
		switch {
		case o.f != nil:
			v = strconv.FormatFloat(*o.f(&c), 'g', -1, 64)
		case o.b != nil:
			v = strconv.FormatBool(*o.b(&c))
		case o.i != nil:
			v = strconv.Itoa(*o.i(&c))
		}
		parts = append(parts, o.key+"="+v)
	}
	return n + ":" + strings.Join(parts, ",")
}

// Validate checks the settings the named head reads and returns an error
// naming the first bad option.
func (c Config) Validate(name string) error {
	n, err := Canonical(name)
	if err != nil {
		return err
	}
	bad := func(key string, format string, args ...any) error {
		return fmt.Errorf("dml: %s: option %s: %s", n, key, fmt.Sprintf(format, args...))
	}
	// Every float field the head reads must be finite.
	keys := make([]string, 0, len(options))
	for _, o := range options {
		if o.appliesTo(n) && o.f != nil {
			keys = append(keys, o.key)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, _ := findOption(k)
		if v := *o.f(&c); math.IsNaN(v) || math.IsInf(v, 0) {
			return bad(k, "must be finite, got %g", v)
		}
	}
	if c.CheckEvery < 0 {
		return bad("check_every", "must be ≥ 0, got %d", c.CheckEvery)
	}
	d := lookup(n)
	if d.reads("s") && !(c.S > 0) {
		return bad("s", "the scale must be > 0, got %g", c.S)
	}
	if d.reads("eps") && !(c.Eps > 0 && c.Eps <= 0.01) {
		return bad("eps", "the cosine clamp must be in (0, 0.01], got %g", c.Eps)
	}
	if d.reads("norm_eps") && !(c.NormEps > 0 && c.NormEps <= 1) {
		return bad("norm_eps", "must be in (0, 1], got %g", c.NormEps)
	}
	if d.validate != nil {
		return d.validate(c, bad)
	}
	return nil
}
