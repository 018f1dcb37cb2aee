package dml

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

// ClassMargins is dml/class's own settings: a learned negative margin per
// class m_n,j = min(m_p + δ + softplus(ρ_j), m_max) and a learned positive
// margin m_p = min(max(p, 0), m_max − δ), with the term −λ·mean_j m_n,j in
// the loss (see the package documentation; the learning-rate scale of the
// margins is the shared Config.MarginLR).
//
// Defaults: s = 30, m_p = 0.2, m_n = 0.35, δ = 0.05, m_max = 0.5, λ = 60
// (= 2s), m_p learned (and margin_lr = 1): the best of a sweep on
// FMNIST-C2S (s ∈ {24, 30, 48, 64}, m_p + m_n from 0.25 to 0.75,
// λ ∈ {s, 2s}; docs/dml_sweep.md). s = 48 and 64 were far worse, λ = s let
// the margins collapse, and the total margin peaked at 0.55; over 3 seeds
// it leads the old default (0.1, 0.25) by about one point of top-20, less
// than the seeds' spread.
type ClassMargins struct {
	// S is the scale s > 0.
	S float64
	// MP and MN are the initial m_p (the constant one without LearnMP), in
	// [0, 1], and the initial m_n,j of every class, > MP + Delta.
	MP, MN float64
	// Delta is the least gap δ ≥ 0 between every m_n,j and m_p.
	Delta float64
	// MaxMargin is the upper clamp on every m_n,j (and so on
	// m_p ≤ MaxMargin − Delta), in [MN, 2].
	MaxMargin float64
	// MarginReg is λ ≥ 0 of the term −λ·mean_j(m_n,j).
	MarginReg float64
	// LearnMP learns m_p; otherwise m_p stays at MP.
	LearnMP bool
}

var dmlClassHead = &headDef{
	// "dml" names DefaultDML, which is this head.
	name: NameDMLClass, aliases: []string{"dml"}, kind: backend.MarginDMLClass, learnsMargins: true,
	settings: settings(ClassMargins{S: 30, MP: 0.2, MN: 0.35, Delta: 0.05, MaxMargin: 0.5, MarginReg: 60, LearnMP: true}),
	params: func(c Settings, _ int, p backend.MarginParams) backend.MarginParams {
		p.S = float32(c.(ClassMargins).S)
		return p
	},
	margins: func(h *head) []Stat {
		mp, mn := h.marginValues()
		lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
		for _, v := range mn {
			lo, hi, sum = math.Min(lo, v), math.Max(hi, v), sum+v
		}
		mean := sum / float64(len(mn))
		return []Stat{{"m_p", mp}, {"m_n.mean", mean}, {"m_n.min", lo}, {"m_n.max", hi}, {"margin_term", -h.class().MarginReg * mean}}
	},
}

func (c *ClassMargins) options(shared *Config) []option {
	return append([]option{
		{key: "s", doc: "scale s > 0", f: &c.S},
		{key: "m_p", doc: "initial positive margin m_p in [0, 1]", f: &c.MP},
		{key: "m_n", doc: "initial negative margin m_n > m_p + δ", f: &c.MN},
		{key: "delta", doc: "least gap δ ≥ 0 between m_n,j and m_p", f: &c.Delta},
		{key: "m_max", doc: "upper clamp of m_n,j, in [m_n, 2]", f: &c.MaxMargin},
		{key: "margin_reg", doc: "λ ≥ 0 of −λ·mean_j(m_n,j)", f: &c.MarginReg},
		shared.marginLROption(),
		{key: "learn_mp", doc: "learn m_p (else fixed at m_p)", b: &c.LearnMP},
	}, shared.cosineOptions()...)
}

// validate: margin_lr > 0 is checked after these (Config.Validate).
func (c ClassMargins) validate(bad badOption) error {
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
	return nil
}
