package dml

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/dmlgo/dmlgo/backend"
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

// Names lists every head New builds, in the order of the loss table.
var Names = []string{NameSoftmax, NameNormFace, NameSphereFace, NameCosFace, NameArcFace, NameCombined, NameDMLFixed, NameDMLClass, NameDMLAdaptive}

var kinds = map[string]backend.MarginKind{
	NameSoftmax:     backend.MarginSoftmax,
	NameNormFace:    backend.MarginNormFace,
	NameSphereFace:  backend.MarginSphereFace,
	NameCosFace:     backend.MarginCosFace,
	NameArcFace:     backend.MarginArcFace,
	NameCombined:    backend.MarginCombined,
	NameDMLFixed:    backend.MarginDMLFixed,
	NameDMLClass:    backend.MarginDMLClass,
	NameDMLAdaptive: backend.MarginDMLAdaptive,
}

// Canonical resolves an alias ("dml", "am-softmax", upper case) to the name
// New uses, or returns an error listing the valid names.
func Canonical(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "dml":
		return DefaultDML, nil
	case "am-softmax", "amsoftmax":
		return NameCosFace, nil
	}
	if _, ok := kinds[n]; ok {
		return n, nil
	}
	return "", fmt.Errorf("dml: unknown head %q (valid: %s, or dml for %s)", name, strings.Join(Names, ", "), DefaultDML)
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
	// Delta is dml/class's least gap m_n,j − m_p.
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
//
// Every cosine head: eps = 1e-6 (cosine clamp), norm_eps = 1e-6; every head
// checks the loss for NaN/Inf every step.
func DefaultConfig(name string) (Config, error) {
	n, err := Canonical(name)
	if err != nil {
		return Config{}, err
	}
	c := Config{Eps: 1e-6, NormEps: 1e-6, CheckEvery: 1}
	switch n {
	case NameSoftmax:
		c.Bias = true
	case NameNormFace:
		c.S = 30
	case NameSphereFace:
		c.S, c.M = 30, 4
		c.Anneal, c.LambdaBase, c.LambdaGamma, c.LambdaPower, c.LambdaMin = true, 1000, 0.12, 1, 5
	case NameCosFace:
		c.S, c.M = 64, 0.35
	case NameArcFace:
		c.S, c.M = 64, 0.5
	case NameCombined:
		c.S, c.M1, c.M2, c.M3 = 64, 1, 0.3, 0.2
	case NameDMLFixed:
		c.S, c.MP, c.MN = 30, 0.1, 0.25
	case NameDMLClass:
		c.S, c.MP, c.MN = 30, 0.2, 0.35
		c.Delta, c.MaxMargin, c.MarginReg, c.MarginLR, c.LearnMP = 0.05, 0.5, 60, 1, true
	case NameDMLAdaptive:
		c.S, c.MP, c.MN = 30, 0.1, 0.4
	}
	return c, nil
}

// option is one key of the k=v option syntax.
type option struct {
	key   string
	heads []string // the heads that read it
	doc   string
	// exactly one of these is set
	f func(*Config) *float64
	b func(*Config) *bool
	i func(*Config) *int
}

var cosineHeads = []string{NameNormFace, NameSphereFace, NameCosFace, NameArcFace, NameCombined, NameDMLFixed, NameDMLClass, NameDMLAdaptive}
var dmlHeads = []string{NameDMLFixed, NameDMLClass, NameDMLAdaptive}

var options = []option{
	{key: "s", heads: cosineHeads, doc: "scale s > 0", f: func(c *Config) *float64 { return &c.S }},
	{key: "m", heads: []string{NameCosFace, NameArcFace, NameSphereFace}, doc: "margin: cosface in [0, 1], arcface in [0, π/2) rad, sphereface an integer in [1, 16]", f: func(c *Config) *float64 { return &c.M }},
	{key: "easy_margin", heads: []string{NameArcFace}, doc: "keep s·cos θ_y where cos θ_y ≤ 0 (no fallback)", b: func(c *Config) *bool { return &c.EasyMargin }},
	{key: "m1", heads: []string{NameCombined}, doc: "angle multiplier m1 > 0", f: func(c *Config) *float64 { return &c.M1 }},
	{key: "m2", heads: []string{NameCombined}, doc: "additive angle m2 ≥ 0 (radians)", f: func(c *Config) *float64 { return &c.M2 }},
	{key: "m3", heads: []string{NameCombined}, doc: "cosine margin m3 ≥ 0", f: func(c *Config) *float64 { return &c.M3 }},
	{key: "anneal", heads: []string{NameSphereFace}, doc: "anneal λ (else λ = lambda)", b: func(c *Config) *bool { return &c.Anneal }},
	{key: "lambda", heads: []string{NameSphereFace}, doc: "fixed λ ≥ 0 when not annealing", f: func(c *Config) *float64 { return &c.Lambda }},
	{key: "lambda_base", heads: []string{NameSphereFace}, doc: "annealing base ≥ 0", f: func(c *Config) *float64 { return &c.LambdaBase }},
	{key: "lambda_gamma", heads: []string{NameSphereFace}, doc: "annealing γ ≥ 0", f: func(c *Config) *float64 { return &c.LambdaGamma }},
	{key: "lambda_power", heads: []string{NameSphereFace}, doc: "annealing power ≥ 0", f: func(c *Config) *float64 { return &c.LambdaPower }},
	{key: "lambda_min", heads: []string{NameSphereFace}, doc: "annealing floor ≥ 0", f: func(c *Config) *float64 { return &c.LambdaMin }},
	{key: "m_p", heads: dmlHeads, doc: "positive margin m_p ≥ 0 (dml/class: initial value)", f: func(c *Config) *float64 { return &c.MP }},
	{key: "m_n", heads: dmlHeads, doc: "negative margin m_n > m_p (dml/class: initial value, > m_p + δ; dml/adaptive: the map's top)", f: func(c *Config) *float64 { return &c.MN }},
	{key: "delta", heads: []string{NameDMLClass}, doc: "least gap δ ≥ 0 between m_n,j and m_p", f: func(c *Config) *float64 { return &c.Delta }},
	{key: "m_max", heads: []string{NameDMLClass}, doc: "upper clamp of m_n,j, ≥ m_n", f: func(c *Config) *float64 { return &c.MaxMargin }},
	{key: "margin_reg", heads: []string{NameDMLClass}, doc: "λ ≥ 0 of −λ·mean_j(m_n,j)", f: func(c *Config) *float64 { return &c.MarginReg }},
	{key: "margin_lr", heads: []string{NameDMLClass}, doc: "learning-rate scale > 0 of the margins group (margin_p: this/C)", f: func(c *Config) *float64 { return &c.MarginLR }},
	{key: "learn_mp", heads: []string{NameDMLClass}, doc: "learn m_p (else fixed at m_p)", b: func(c *Config) *bool { return &c.LearnMP }},
	{key: "eps", heads: cosineHeads, doc: "cosine clamp ε in (0, 0.01]", f: func(c *Config) *float64 { return &c.Eps }},
	{key: "norm_eps", heads: cosineHeads, doc: "least norm in the L2 normalisation, in (0, 1]", f: func(c *Config) *float64 { return &c.NormEps }},
	{key: "bias", heads: []string{NameSoftmax}, doc: "a bias per class", b: func(c *Config) *bool { return &c.Bias }},
	{key: "check_every", heads: Names, doc: "NaN/Inf check of the loss every n steps (0: off)", i: func(c *Config) *int { return &c.CheckEvery }},
}

func (o option) appliesTo(name string) bool {
	for _, h := range o.heads {
		if h == name {
			return true
		}
	}
	return false
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
	if n == NameSoftmax {
		return nil
	}
	if !(c.S > 0) {
		return bad("s", "the scale must be > 0, got %g", c.S)
	}
	if !(c.Eps > 0 && c.Eps <= 0.01) {
		return bad("eps", "the cosine clamp must be in (0, 0.01], got %g", c.Eps)
	}
	if !(c.NormEps > 0 && c.NormEps <= 1) {
		return bad("norm_eps", "must be in (0, 1], got %g", c.NormEps)
	}
	switch n {
	case NameCosFace:
		if c.M < 0 || c.M > 1 {
			return bad("m", "the cosine margin must be in [0, 1], got %g", c.M)
		}
	case NameArcFace:
		if c.M < 0 || c.M >= math.Pi/2 {
			return bad("m", "the angular margin must be in [0, π/2) radians, got %g", c.M)
		}
	case NameSphereFace:
		if c.M < 1 || c.M > 16 || c.M != math.Trunc(c.M) {
			return bad("m", "the multiplier must be an integer in [1, 16], got %g", c.M)
		}
		for _, kv := range []struct {
			k string
			v float64
		}{{"lambda", c.Lambda}, {"lambda_base", c.LambdaBase}, {"lambda_gamma", c.LambdaGamma}, {"lambda_power", c.LambdaPower}, {"lambda_min", c.LambdaMin}} {
			if kv.v < 0 {
				return bad(kv.k, "must be ≥ 0, got %g", kv.v)
			}
		}
	case NameCombined:
		if !(c.M1 > 0) {
			return bad("m1", "the angle multiplier must be > 0, got %g", c.M1)
		}
		if c.M2 < 0 || c.M2 >= math.Pi {
			return bad("m2", "the additive angle must be in [0, π), got %g", c.M2)
		}
		if c.M3 < 0 || c.M3 > 1 {
			return bad("m3", "the cosine margin must be in [0, 1], got %g", c.M3)
		}
	case NameDMLFixed, NameDMLAdaptive:
		if c.MP < 0 || c.MP > 1 {
			return bad("m_p", "must be in [0, 1], got %g", c.MP)
		}
		if c.MN > 2 {
			return bad("m_n", "must be ≤ 2, got %g", c.MN)
		}
		if c.MN <= c.MP {
			return bad("m_n", "the negative margin must be greater than m_p (%g), got %g", c.MP, c.MN)
		}
	case NameDMLClass:
		if c.MP < 0 || c.MP > 1 {
			return bad("m_p", "must be in [0, 1], got %g", c.MP)
		}
		if c.Delta < 0 {
			return bad("delta", "must be ≥ 0, got %g", c.Delta)
		}
		if c.MN <= c.MP+c.Delta {
			return bad("m_n", "the initial negative margin must be greater than m_p + delta (%g), got %g", c.MP+c.Delta, c.MN)
		}
		if c.MaxMargin < c.MN || c.MaxMargin > 2 {
			return bad("m_max", "the clamp must be in [m_n (%g), 2], got %g", c.MN, c.MaxMargin)
		}
		if c.MarginReg < 0 {
			return bad("margin_reg", "must be ≥ 0, got %g", c.MarginReg)
		}
		if !(c.MarginLR > 0) {
			return bad("margin_lr", "must be > 0, got %g", c.MarginLR)
		}
	}
	return nil
}
