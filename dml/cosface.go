package dml

import "github.com/dmlgo/dmlgo/backend"

// CosFace is cosface's (AM-softmax's) own settings: the additive cosine
// margin f_y(c) = s·(c − m). Defaults: s = 64, m = 0.35 (the CosFace
// paper's).
type CosFace struct {
	// S is the scale s > 0.
	S float64
	// M is the cosine margin m, in [0, 1].
	M float64
}

var cosFaceHead = &headDef{
	name: NameCosFace, aliases: []string{"am-softmax", "amsoftmax"}, kind: backend.MarginCosFace,
	settings: settings(CosFace{S: 64, M: 0.35}),
	params: func(c Settings, _ int, p backend.MarginParams) backend.MarginParams {
		cf := c.(CosFace)
		p.S, p.M = float32(cf.S), float32(cf.M)
		return p
	},
	margins: func(h *head) []Stat { return []Stat{{"m", h.cfg.Head.(CosFace).M}} },
}

func (c *CosFace) options(shared *Config) []option {
	return append([]option{
		{key: "s", doc: "scale s > 0", f: &c.S},
		{key: "m", doc: "cosine margin m in [0, 1]", f: &c.M},
	}, shared.cosineOptions()...)
}

func (c CosFace) validate(bad badOption) error {
	if c.M < 0 || c.M > 1 {
		return bad("m", "the cosine margin must be in [0, 1], got %g", c.M)
	}
	return nil
}
