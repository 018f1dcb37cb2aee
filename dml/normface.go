package dml

import "github.com/dmlgo/dmlgo/backend"

// NormFace is normface's own settings: scaled cosines without a margin,
// f_y(c) = f_o(c) = s·c. Default s = 30.
type NormFace struct {
	// S is the scale s > 0.
	S float64
}

var normFaceHead = &headDef{
	name: NameNormFace, kind: backend.MarginNormFace,
	settings: settings(NormFace{S: 30}),
	params: func(c Settings, _ int, p backend.MarginParams) backend.MarginParams {
		p.S = float32(c.(NormFace).S)
		return p
	},
}

func (c *NormFace) options(shared *Config) []option {
	return append([]option{{key: "s", doc: "scale s > 0", f: &c.S}}, shared.cosineOptions()...)
}

// validate: s > 0 is a rule of every head that reads s (Config.Validate).
func (NormFace) validate(badOption) error { return nil }
