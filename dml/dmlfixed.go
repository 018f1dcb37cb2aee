package dml

import "github.com/dmlgo/dmlgo/backend"

// FixedMargins is the own settings of the DML forms whose margins are not
// learned, dml/fixed and dml/adaptive: f_y(c) = s·(c − m_p), and
// f_o(c) = s·(c + m_n) (dml/fixed) or s·(c + m_n·(1 + c)/2)
// (dml/adaptive). Defaults: s = 30, m_p = 0.1 and m_n = 0.25 for
// dml/fixed (it is cosface with m = 0.35, which beat m = 0.55 in the
// FMNIST-C2S sweep, docs/dml_sweep.md), m_n = 0.4 for dml/adaptive (the
// map's top; not swept).
type FixedMargins struct {
	// S is the scale s > 0.
	S float64
	// MP is the positive margin m_p, in [0, 1]; MN the negative margin
	// m_n (dml/adaptive: the top of its map), in (m_p, 2].
	MP, MN float64
}

var dmlFixedHead = &headDef{
	name: NameDMLFixed, kind: backend.MarginDMLFixed,
	settings: settings(FixedMargins{S: 30, MP: 0.1, MN: 0.25}),
	params:   fixedMargins, margins: fixedMarginStats,
}

var dmlAdaptiveHead = &headDef{
	name: NameDMLAdaptive, kind: backend.MarginDMLAdaptive,
	settings: settings(FixedMargins{S: 30, MP: 0.1, MN: 0.4}),
	params:   fixedMargins, margins: fixedMarginStats,
}

func (c *FixedMargins) options(shared *Config) []option {
	return append([]option{
		{key: "s", doc: "scale s > 0", f: &c.S},
		{key: "m_p", doc: "positive margin m_p in [0, 1]", f: &c.MP},
		{key: "m_n", doc: "negative margin m_n > m_p, ≤ 2 (dml/adaptive: the map's top)", f: &c.MN},
	}, shared.cosineOptions()...)
}

func (c FixedMargins) validate(bad badOption) error {
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

func fixedMargins(c Settings, _ int, p backend.MarginParams) backend.MarginParams {
	fm := c.(FixedMargins)
	p.S, p.MP, p.MN = float32(fm.S), float32(fm.MP), float32(fm.MN)
	return p
}

func fixedMarginStats(h *head) []Stat {
	fm := h.cfg.Head.(FixedMargins)
	return []Stat{{"m_p", fm.MP}, {"m_n", fm.MN}}
}
