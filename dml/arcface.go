package dml

import (
	"math"

	"github.com/dmlgo/dmlgo/backend"
)

// ArcFace is arcface's own settings: the additive angular margin
// f_y(c) = s·cos(θ + m), with InsightFace's fallback past θ > π − m.
// Defaults: s = 64, m = 0.5 rad, no easy margin (InsightFace's).
type ArcFace struct {
	// S is the scale s > 0.
	S float64
	// M is the angular margin m in radians, in [0, π/2).
	M float64
	// EasyMargin keeps z_y = s·cos θ_y wherever cos θ_y ≤ 0 instead of
	// the fallback s·(cos θ_y − m·sin m) past θ_y > π − m.
	EasyMargin bool
}

var arcFaceHead = &headDef{
	name: NameArcFace, kind: backend.MarginArcFace,
	settings: settings(ArcFace{S: 64, M: 0.5}),
	params: func(c Settings, _ int, p backend.MarginParams) backend.MarginParams {
		af := c.(ArcFace)
		p.S, p.M, p.EasyMargin = float32(af.S), float32(af.M), af.EasyMargin
		return p
	},
	margins: func(h *head) []Stat { return []Stat{{"m", h.cfg.Head.(ArcFace).M}} },
}

func (c *ArcFace) options(shared *Config) []option {
	return append([]option{
		{key: "s", doc: "scale s > 0", f: &c.S},
		{key: "m", doc: "angular margin m in [0, π/2) rad", f: &c.M},
		{key: "easy_margin", doc: "keep s·cos θ_y where cos θ_y ≤ 0 (no fallback)", b: &c.EasyMargin},
	}, shared.cosineOptions()...)
}

func (c ArcFace) validate(bad badOption) error {
	if c.M < 0 || c.M >= math.Pi/2 {
		return bad("m", "the angular margin must be in [0, π/2) radians, got %g", c.M)
	}
	return nil
}
