package dml

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

// SphereFace is sphereface's own settings: the multiplicative angular
// margin f_y(c) = s·(λ·ĉ + ψ(θ))/(1 + λ), ψ(θ) = (−1)^k cos(mθ) − 2k.
// Defaults: s = 30, m = 4, λ annealed from 1000 with γ = 0.12, power 1 and
// floor 5 (the SphereFace paper's Caffe settings; the paper scales by |x|,
// dmlgo normalises and scales by s like the other heads).
type SphereFace struct {
	// S is the scale s > 0.
	S float64
	// M is the angle multiplier m, an integer in [1, 16].
	M float64
	// Anneal sets λ at step t to
	// max(LambdaMin, LambdaBase·(1 + LambdaGamma·t)^(−LambdaPower));
	// without it λ = Lambda throughout (0: pure ψ). All are ≥ 0.
	Anneal                                          bool
	Lambda                                          float64
	LambdaBase, LambdaGamma, LambdaPower, LambdaMin float64
}

var sphereFaceHead = &headDef{
	name: NameSphereFace, kind: backend.MarginSphereFace,
	settings: settings(SphereFace{S: 30, M: 4, Anneal: true, LambdaBase: 1000, LambdaGamma: 0.12, LambdaPower: 1, LambdaMin: 5}),
	params: func(c Settings, step int, p backend.MarginParams) backend.MarginParams {
		sf := c.(SphereFace)
		p.S, p.M, p.Lambda = float32(sf.S), float32(sf.M), float32(sf.lambdaAt(step))
		return p
	},
	margins: func(h *head) []Stat {
		sf := h.cfg.Head.(SphereFace)
		return []Stat{{"m", sf.M}, {"lambda", sf.lambdaAt(h.step)}}
	},
}

func (c *SphereFace) options(shared *Config) []option {
	return append([]option{
		{key: "s", doc: "scale s > 0", f: &c.S},
		{key: "m", doc: "angle multiplier m, an integer in [1, 16]", f: &c.M},
		{key: "anneal", doc: "anneal λ (else λ = lambda)", b: &c.Anneal},
		{key: "lambda", doc: "fixed λ ≥ 0 when not annealing", f: &c.Lambda},
		{key: "lambda_base", doc: "annealing base ≥ 0", f: &c.LambdaBase},
		{key: "lambda_gamma", doc: "annealing γ ≥ 0", f: &c.LambdaGamma},
		{key: "lambda_power", doc: "annealing power ≥ 0", f: &c.LambdaPower},
		{key: "lambda_min", doc: "annealing floor ≥ 0", f: &c.LambdaMin},
	}, shared.cosineOptions()...)
}

func (c SphereFace) validate(bad badOption) error {
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
}

// lambdaAt is λ at a step: max(λ_min, base·(1 + γ·step)^(−power)), or the
// fixed λ.
func (c SphereFace) lambdaAt(step int) float64 {
	if !c.Anneal {
		return c.Lambda
	}
	return math.Max(c.LambdaMin, c.LambdaBase*math.Pow(1+c.LambdaGamma*float64(step), -c.LambdaPower))
}
