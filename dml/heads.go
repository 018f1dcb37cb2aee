package dml

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dmlgo/dmlgo/autograd"
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

// Names lists the heads whose loss is the fused margin-softmax kernel
// (backend.MarginSoftmaxCE), in the order of the loss table. New also
// builds the heads of Composed.
var Names = headNames(false)

// Composed lists the heads whose loss is recorded with autograd ops
// instead of a fused kernel (proxy-anchor). Unlike the heads of Names, a
// training step of one uploads its label masks (N, C) besides the batch:
// the fused kernel takes the labels on the host, autograd ops cannot.
var Composed = headNames(true)

// Canonical resolves an alias ("dml", "am-softmax", upper case) to the name
// New uses, or returns an error listing the valid names.
func Canonical(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, d := range heads {
		if d.name == n || slices.Contains(d.aliases, n) {
			return d.name, nil
		}
	}
	return "", fmt.Errorf("dml: unknown head %q (valid: %s, or dml for %s)", name, strings.Join(append(slices.Clone(Names), Composed...), ", "), DefaultDML)
}

// headDef is one head's table entry: everything Names, Canonical,
// DefaultConfig, Options, Validate, New, the loss and Margins know about
// it. Adding a head is one file holding its settings type (see Settings)
// and its entry, plus the entry's line in the table heads (below).
type headDef struct {
	name    string
	aliases []string // lower case; Canonical maps them to name
	// kind is the fused kernel's margin kind (backend.MarginSoftmaxCE),
	// used when loss is nil.
	kind backend.MarginKind
	// linear: logits W·x + b (PyTorch Linear's init, a bias when
	// Softmax.Bias) instead of scaled cosines (W ~ N(0, 1/D)).
	linear bool
	// learnsMargins: dml/class's learned m_p and ρ (C) and their
	// projection (its settings are a ClassMargins).
	learnsMargins bool
	// settings is the head's settings type with its defaults,
	// settings(T{...}): its options and its own rules are T's methods.
	settings settingsType
	// params returns p, the kernel's settings with Kind and Eps, with the
	// head's own at a step added (s, the margins): c is the head's
	// settings (its type, which New checked). N and C are set by autograd;
	// dml/class's margins come from Vars. (By value: a pointer through a
	// func field would make p escape, an allocation per step.)
	params func(c Settings, step int, p backend.MarginParams) backend.MarginParams
	// scale is the factor of the inference logits scale·cos θ (nil: the
	// kernel's s, from params).
	scale func(c Settings) float64
	// margins reports the head's margin settings for logs (Head.Margins);
	// h.cfg.Head holds the head's settings type, for it and for loss.
	margins func(h *head) []Stat
	// loss, when set, is the head's loss recorded with autograd ops in
	// place of the fused kernel: in is the cosines (N, C) (the logits of a
	// linear head), labels (N) are checked. It is a "composed" head
	// (see Composed).
	loss func(h *head, g *autograd.Graph, in *autograd.Var, labels []int32, step int) *autograd.Var
}

// heads is the table of every head, in the order of Names (the fused
// heads) and then Composed. Each entry is in the head's file.
var heads = []*headDef{
	softmaxHead,
	normFaceHead,
	sphereFaceHead,
	cosFaceHead,
	arcFaceHead,
	combinedHead,
	dmlFixedHead,
	dmlClassHead,
	dmlAdaptiveHead,

	// Composed heads: the loss is recorded with autograd ops.
	proxyAnchorHead,
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
