package dml

import (
	"github.com/dmlgo/dmlgo/autograd"
)

// NameProxyAnchor is the Proxy-Anchor loss (Kim, Kim, Cho, Kwak, CVPR 2020).
const NameProxyAnchor = "proxy-anchor"

// ProxyAnchor is proxy-anchor's own settings (Kim, Kim, Cho, Kwak, "Proxy
// Anchor Loss for Deep Metric Learning", CVPR 2020). Defaults are the
// paper's: α = 32, δ = 0.1.
type ProxyAnchor struct {
	// Alpha is the scale α > 0 (of the inference logits too: α·cos θ).
	Alpha float64
	// Delta is the margin δ, in [0, 1).
	Delta float64
}

// proxyAnchorHead is the Proxy-Anchor head, composed from autograd ops.
// With c_ip = cos θ_ip (N, C) as for the cosine heads, α the scale and δ
// the margin:
//
//	L = (1/|P⁺|) Σ_{p∈P⁺} ln(1 + Σ_{i: y_i=p} exp(−α(c_ip − δ)))
//	  + (1/C)    Σ_p      ln(1 + Σ_{i: y_i≠p} exp(α(c_ip + δ)))
//
// P⁺ the classes with a sample in the batch. Each proxy is an anchor that
// pulls its batch's positives and pushes every negative, weighted by how
// hard it is (the gradient of ln(1 + Σ exp) is a softmax over the batch).
var proxyAnchorHead = &headDef{
	name:     NameProxyAnchor,
	settings: settings(ProxyAnchor{Alpha: 32, Delta: 0.1}),
	scale:    func(c Settings) float64 { return c.(ProxyAnchor).Alpha },
	margins: func(h *head) []Stat {
		pa := h.cfg.Head.(ProxyAnchor)
		return []Stat{{"alpha", pa.Alpha}, {"delta", pa.Delta}}
	},
	loss: proxyAnchorLoss,
}

func (c *ProxyAnchor) options(shared *Config) []option {
	return append([]option{
		{key: "alpha", doc: "scale α > 0", f: &c.Alpha},
		{key: "delta", doc: "margin δ in [0, 1)", f: &c.Delta},
	}, shared.cosineOptions()...)
}

func (c ProxyAnchor) validate(bad badOption) error {
	if !(c.Alpha > 0) {
		return bad("alpha", "the scale must be > 0, got %g", c.Alpha)
	}
	if c.Delta < 0 || c.Delta >= 1 {
		return bad("delta", "the margin must be in [0, 1), got %g", c.Delta)
	}
	return nil
}

// proxyAnchorLoss: cos (N, C), labels (N) -> L (1). The masks P (N, C),
// P_ip = [y_i = p], and 1 − P are constants uploaded from the host (the
// one upload of a step besides the batch); each ln(1 + Σ exp) is
// autograd's Log1pSumExp, computed with the largest exponent (or 0)
// subtracted, so α·(1 + δ) of any size neither overflows nor rounds the
// "1 +" away.
func proxyAnchorLoss(h *head, g *autograd.Graph, cos *autograd.Var, labels []int32, _ int) *autograd.Var {
	n, c := cos.Value.Dim(0), cos.Value.Dim(1)
	if len(h.host) < n*c+c {
		h.host = make([]float32, n*c+c)
	}
	mask, seen := h.host[:n*c], h.host[n*c:n*c+c]
	clear(h.host[:n*c+c])
	positives := 0 // |P⁺|
	for i, y := range labels {
		mask[i*c+int(y)] = 1
		if seen[y] == 0 {
			seen[y] = 1
			positives++
		}
	}
	pos := g.Constant(mask, n, c)
	neg := g.Affine(pos, -1, 1) // exactly 0 or 1
	pa := h.cfg.Head.(ProxyAnchor)
	a, ad := float32(pa.Alpha), float32(pa.Alpha*pa.Delta)
	lp := g.Log1pSumExp(g.Affine(cos, -a, ad), pos) // (C): 0 for p ∉ P⁺
	ln := g.Log1pSumExp(g.Affine(cos, a, ad), neg)  // (C)
	return g.Add(g.Affine(g.Sum(lp), 1/float32(positives), 0), g.Mean(ln))
}
