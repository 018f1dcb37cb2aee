package dml

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

// Combined is InsightFace's combined margin's own settings:
// f_y(c) = s·(cos(M1·θ + M2) − M3). Defaults: s = 64, m1 = 1, m2 = 0.3,
// m3 = 0.2 (InsightFace's).
type Combined struct {
	// S is the scale s > 0.
	S float64
	// M1 > 0 multiplies the angle, M2 in [0, π) is added to it (radians),
	// M3 in [0, 1] is subtracted from the cosine.
	M1, M2, M3 float64
}

var combinedHead = &headDef{
	name: NameCombined, kind: backend.MarginCombined,
	settings: settings(Combined{S: 64, M1: 1, M2: 0.3, M3: 0.2}),
	params: func(c Settings, _ int, p backend.MarginParams) backend.MarginParams {
		cm := c.(Combined)
		p.S, p.M1, p.M2, p.M3 = float32(cm.S), float32(cm.M1), float32(cm.M2), float32(cm.M3)
		return p
	},
	margins: func(h *head) []Stat {
		cm := h.cfg.Head.(Combined)
		return []Stat{{"m1", cm.M1}, {"m2", cm.M2}, {"m3", cm.M3}}
	},
}

func (c *Combined) options(shared *Config) []option {
	return append([]option{
		{key: "s", doc: "scale s > 0", f: &c.S},
		{key: "m1", doc: "angle multiplier m1 > 0", f: &c.M1},
		{key: "m2", doc: "additive angle m2 in [0, π) (radians)", f: &c.M2},
		{key: "m3", doc: "cosine margin m3 in [0, 1]", f: &c.M3},
	}, shared.cosineOptions()...)
}

func (c Combined) validate(bad badOption) error {
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
}
