package dml

import (
	"math"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
)

// headDef is one head: everything Names, Canonical, DefaultConfig,
// Options, Validate, New, the loss and Margins know about it. Adding a
// head is one entry in the table heads (below), and for a loss written
// with autograd ops (loss set) one file holding the entry and the loss.
type headDef struct {
	name    string
	aliases []string // lower case; Canonical maps them to name
	// kind is the fused kernel's margin kind (backend.MarginSoftmaxCE),
	// used when loss is nil.
	kind backend.MarginKind
	// linear: logits W·x + b (PyTorch Linear's init, a bias when
	// Config.Bias) instead of scaled cosines (W ~ N(0, 1/D)).
	linear bool
	// learnsMargins: dml/class's learned m_p and ρ (C) and their projection.
	learnsMargins bool
	// keys are the option keys the head reads (Options lists them in the
	// order of the options table).
	keys []string
	// defaults sets the head's defaults on top of every head's
	// (eps = norm_eps = 1e-6, check_every = 1).
	defaults func(c *Config)
	// validate checks the head's own rules, after the shared ones (every
	// float it reads finite, check_every ≥ 0, s > 0, eps and norm_eps in
	// range when it reads them); bad formats the error naming the option.
	validate func(c Config, bad badOption) error
	// params returns p, the kernel's settings with Kind, S and Eps, with
	// the head's own settings at a step added (N and C are set by
	// autograd; dml/class's margins come from Vars). (By value: a pointer
	// through a func field would make p escape, an allocation per step.)
	params func(c Config, step int, p backend.MarginParams) backend.MarginParams
	// scale is the factor of the inference logits scale·cos θ (nil: S).
	scale func(c Config) float64
	// margins reports the head's margin settings for logs (Head.Margins).
	margins func(h *head) []Stat
	// loss, when set, is the head's loss recorded with autograd ops in
	// place of the fused kernel: in is the cosines (N, C) (the logits of a
	// linear head), labels (N) are checked. It is a "composed" head
	// (see Composed).
	loss func(h *head, g *autograd.Graph, in *autograd.Var, labels []int32, step int) *autograd.Var
}

// badOption formats a Validate error naming the option key.
type badOption func(key string, format string, args ...any) error

// Shared option keys.
var (
	cosineKeys = []string{"s", "eps", "norm_eps", "check_every"}
	dmlKeys    = []string{"s", "m_p", "m_n", "eps", "norm_eps", "check_every"}
)

func withKeys(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// heads is the table of every head, in the order of Names (the fused
// heads) and then Composed.
var heads = []*headDef{
	{
		name: NameSoftmax, kind: backend.MarginSoftmax, linear: true,
		keys:     []string{"bias", "check_every"},
		defaults: func(c *Config) { c.Bias = true },
	},
	{
		name: NameNormFace, kind: backend.MarginNormFace, keys: cosineKeys,
		defaults: func(c *Config) { c.S = 30 },
	},
	{
		name: NameSphereFace, kind: backend.MarginSphereFace,
		keys: withKeys(cosineKeys, "m", "anneal", "lambda", "lambda_base", "lambda_gamma", "lambda_power", "lambda_min"),
		defaults: func(c *Config) {
			c.S, c.M = 30, 4
			c.Anneal, c.LambdaBase, c.LambdaGamma, c.LambdaPower, c.LambdaMin = true, 1000, 0.12, 1, 5
		},
		validate: func(c Config, bad badOption) error {
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
			return nil
		},
		params: func(c Config, step int, p backend.MarginParams) backend.MarginParams {
			p.M, p.Lambda = float32(c.M), float32(c.lambdaAt(step))
			return p
		},
		margins: func(h *head) []Stat { return []Stat{{"m", h.cfg.M}, {"lambda", h.cfg.lambdaAt(h.step)}} },
	},
	{
		name: NameCosFace, aliases: []string{"am-softmax", "amsoftmax"}, kind: backend.MarginCosFace,
		keys:     withKeys(cosineKeys, "m"),
		defaults: func(c *Config) { c.S, c.M = 64, 0.35 },
		validate: func(c Config, bad badOption) error {
			if c.M < 0 || c.M > 1 {
				return bad("m", "the cosine margin must be in [0, 1], got %g", c.M)
			}
			return nil
		},
		params:  marginAndEasy,
		margins: func(h *head) []Stat { return []Stat{{"m", h.cfg.M}} },
	},
	{
		name: NameArcFace, kind: backend.MarginArcFace,
		keys:     withKeys(cosineKeys, "m", "easy_margin"),
		defaults: func(c *Config) { c.S, c.M = 64, 0.5 },
		validate: func(c Config, bad badOption) error {
			if c.M < 0 || c.M >= math.Pi/2 {
				return bad("m", "the angular margin must be in [0, π/2) radians, got %g", c.M)
			}
			return nil
		},
		params:  marginAndEasy,
		margins: func(h *head) []Stat { return []Stat{{"m", h.cfg.M}} },
	},
	{
		name: NameCombined, kind: backend.MarginCombined,
		keys:     withKeys(cosineKeys, "m1", "m2", "m3"),
		defaults: func(c *Config) { c.S, c.M1, c.M2, c.M3 = 64, 1, 0.3, 0.2 },
		validate: func(c Config, bad badOption) error {
			if !(c.M1 > 0) {
				return bad("m1", "the angle multiplier must be > 0, got %g", c.M1)
			}
			if c.M2 < 0 || c.M2 >= math.Pi {
				return bad("m2", "the additive angle must be in [0, π), got %g", c.M2)
			}
			if c.M3 < 0 || c.M3 > 1 {
				return bad("m3", "the cosine margin must be in [0, 1], got %g", c.M3)
			}
			return nil
		},
		params: func(c Config, _ int, p backend.MarginParams) backend.MarginParams {
			p.M1, p.M2, p.M3 = float32(c.M1), float32(c.M2), float32(c.M3)
			return p
		},
		margins: func(h *head) []Stat { return []Stat{{"m1", h.cfg.M1}, {"m2", h.cfg.M2}, {"m3", h.cfg.M3}} },
	},
	{
		name: NameDMLFixed, kind: backend.MarginDMLFixed, keys: dmlKeys,
		defaults: func(c *Config) { c.S, c.MP, c.MN = 30, 0.1, 0.25 },
		validate: validateFixedMargins, params: fixedMargins, margins: fixedMarginStats,
	},
	{
		// "dml" names DefaultDML, which is this head.
		name: NameDMLClass, aliases: []string{"dml"}, kind: backend.MarginDMLClass, learnsMargins: true,
		keys: withKeys(dmlKeys, "delta", "m_max", "margin_reg", "margin_lr", "learn_mp"),
		defaults: func(c *Config) {
			c.S, c.MP, c.MN = 30, 0.2, 0.35
			c.Delta, c.MaxMargin, c.MarginReg, c.MarginLR, c.LearnMP = 0.05, 0.5, 60, 1, true
		},
		validate: func(c Config, bad badOption) error {
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
			return nil
		},
		margins: func(h *head) []Stat {
			mp, mn := h.marginValues()
			lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
			for _, v := range mn {
				lo, hi, sum = math.Min(lo, v), math.Max(hi, v), sum+v
			}
			mean := sum / float64(len(mn))
			return []Stat{{"m_p", mp}, {"m_n.mean", mean}, {"m_n.min", lo}, {"m_n.max", hi}, {"margin_term", -h.cfg.MarginReg * mean}}
		},
	},
	{
		name: NameDMLAdaptive, kind: backend.MarginDMLAdaptive, keys: dmlKeys,
		defaults: func(c *Config) { c.S, c.MP, c.MN = 30, 0.1, 0.4 },
		validate: validateFixedMargins, params: fixedMargins, margins: fixedMarginStats,
	},

	// Composed heads: the loss is recorded with autograd ops.
	proxyAnchor,
}

func marginAndEasy(c Config, _ int, p backend.MarginParams) backend.MarginParams {
	p.M, p.EasyMargin = float32(c.M), c.EasyMargin
	return p
}

func fixedMargins(c Config, _ int, p backend.MarginParams) backend.MarginParams {
	p.MP, p.MN = float32(c.MP), float32(c.MN)
	return p
}

func fixedMarginStats(h *head) []Stat { return []Stat{{"m_p", h.cfg.MP}, {"m_n", h.cfg.MN}} }

// validateFixedMargins: dml/fixed's and dml/adaptive's m_p and m_n.
func validateFixedMargins(c Config, bad badOption) error {
	if c.MP < 0 || c.MP > 1 {
		return bad("m_p", "must be in [0, 1], got %g", c.MP)
	}
	if c.MN > 2 {
		return bad("m_n", "must be ≤ 2, got %g", c.MN)
	}
	if c.MN <= c.MP {
		return bad("m_n", "the negative margin must be greater than m_p (%g), got %g", c.MP, c.MN)
	}
	return nil
}

// lookup finds a canonical name's entry.
func lookup(name string) *headDef {
	for _, d := range heads {
		if d.name == name {
			return d
		}
	}
	return nil
}

func (d *headDef) reads(key string) bool {
	for _, k := range d.keys {
		if k == key {
			return true
		}
	}
	return false
}

// headNames lists the table's names: the fused heads or the composed ones.
func headNames(composed bool) []string {
	var out []string
	for _, d := range heads {
		if (d.loss != nil) == composed {
			out = append(out, d.name)
		}
	}
	return out
}
