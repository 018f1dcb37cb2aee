package dml

import "github.com/dmlgo/dmlgo/backend"

// Softmax is the softmax head's own settings: logits W·x + b, no
// normalisation, no scale, no margin. By default it has a bias.
type Softmax struct {
	// Bias gives the head a bias per class.
	Bias bool
}

var softmaxHead = &headDef{
	name: NameSoftmax, kind: backend.MarginSoftmax, linear: true,
	settings: settings(Softmax{Bias: true}),
}

func (c *Softmax) options(shared *Config) []option {
	return []option{
		{key: "bias", doc: "a bias per class", b: &c.Bias},
		shared.checkEveryOption(),
	}
}

func (Softmax) validate(badOption) error { return nil }
