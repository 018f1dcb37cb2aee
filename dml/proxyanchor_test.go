package dml

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// proxyAnchorRef is the Proxy-Anchor loss of a case in float64, straight
// from the paper's formula (no shift: exp(α(1 + δ)) fits a float64 for
// every α tested):
//
//	L = (1/|P⁺|) Σ_{p∈P⁺} ln(1 + Σ_{y_i=p} e^{−α(c_ip − δ)}) + (1/C) Σ_p ln(1 + Σ_{y_i≠p} e^{α(c_ip + δ)})
func proxyAnchorRef(rc refCase, x, w []float64) float64 {
	unit := func(v []float64, rows int) []float64 {
		out := make([]float64, len(v))
		d := len(v) / rows
		for r := 0; r < rows; r++ {
			nv := math.Max(norm(v[r*d:(r+1)*d]), rc.cfg.NormEps)
			for k := 0; k < d; k++ {
				out[r*d+k] = v[r*d+k] / nv
			}
		}
		return out
	}
	xn, wn := unit(x, rc.n), unit(w, rc.c)
	pa := rc.cfg.Head.(ProxyAnchor)
	a, delta := pa.Alpha, pa.Delta
	var pos, neg float64
	np := 0
	for p := 0; p < rc.c; p++ {
		var sp, sn float64
		has := false
		for i := 0; i < rc.n; i++ {
			var cos float64
			for k := 0; k < rc.d; k++ {
				cos += xn[i*rc.d+k] * wn[p*rc.d+k]
			}
			if int(rc.labels[i]) == p {
				sp += math.Exp(-a * (cos - delta))
				has = true
			} else {
				sn += math.Exp(a * (cos + delta))
			}
		}
		if has {
			pos += math.Log1p(sp)
			np++
		}
		neg += math.Log1p(sn)
	}
	return pos/float64(np) + neg/float64(rc.c)
}

// proxyAnchorCases: the defaults, other settings, α large enough that
// e^{α(1+δ)} overflows float32 (the shift must hold), δ = 0, and batches
// with absent classes, one class only, or every class.
func proxyAnchorCases(t *testing.T) []refCase {
	var out []refCase
	for i, spec := range []string{"proxy-anchor", "proxy-anchor:alpha=16,delta=0.2", "proxy-anchor:alpha=120", "proxy-anchor:alpha=4,delta=0"} {
		out = append(out, randomCase(t, variant{spec: spec}, 9, 5, 7, uint64(400+i)))
	}
	one := randomCase(t, variant{spec: "proxy-anchor"}, 5, 4, 3, 410)
	for i := range one.labels {
		one.labels[i] = 2
	}
	every := randomCase(t, variant{spec: "proxy-anchor:alpha=8"}, 8, 4, 4, 411)
	for i := range every.labels {
		every.labels[i] = int32(i % 4)
	}
	return append(out, one, every)
}

func caseName(rc refCase) string {
	return fmt.Sprintf("%s/n%d,c%d,labels%v", rc.cfg.Describe(rc.name), rc.n, rc.c, rc.labels)
}

// TestProxyAnchorMatchesReference: the loss against the float64
// reference (a), and the gradients wrt the embeddings and the class
// weights against central differences of that reference (b), on the
// reference backend and the threaded one, through the loss graph and
// through Forward.
func TestProxyAnchorMatchesReference(t *testing.T) {
	for _, rc := range proxyAnchorCases(t) {
		want := proxyAnchorRef(rc, rc.x, rc.w)
		// central differences in float64, step 1e-6
		diff := func(v []float64) []float64 {
			out := make([]float64, len(v))
			for k := range v {
				orig, h := v[k], 1e-6*math.Max(1, math.Abs(v[k]))
				v[k] = orig + h
				lp := proxyAnchorRef(rc, rc.x, rc.w)
				v[k] = orig - h
				lm := proxyAnchorRef(rc, rc.x, rc.w)
				v[k] = orig
				out[k] = (lp - lm) / (2 * h)
			}
			return out
		}
		dx, dw := diff(rc.x), diff(rc.w)
		for bi, be := range []backend.Backend{cpu.NewReference(), cpu.New(3)} {
			for _, viaForward := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/backend%d/forward=%v", caseName(rc), bi, viaForward), func(t *testing.T) {
					e := runEngine(t, be, rc, viaForward)
					closeTo(t, "loss", []float64{e.loss}, []float64{want}, 2e-5)
					closeTo(t, "∂/∂x", e.dx, dx, 1e-4)
					closeTo(t, "∂/∂W", e.dw, dw, 1e-4)
				})
			}
		}
	}
}

// TestProxyAnchorTrains (c): SGD on the tiny problem of train_test.go
// (a linear embedding of 6 classes × 4 samples) brings the loss down.
func TestProxyAnchorTrains(t *testing.T) {
	r := newTinyRun(t, NameProxyAnchor)
	first := r.step(t, 0.05, nil)
	var last float32
	for range 40 {
		last = r.step(t, 0.05, nil)
	}
	t.Logf("loss %.4f -> %.4f", first, last)
	if !(last < 0.5*first) {
		t.Errorf("loss %g -> %g after 40 steps: want it at least halved", first, last)
	}
}

// TestProxyAnchorConfig (d): defaults, Options, Describe and Parse agree;
// bad options are errors naming the option.
func TestProxyAnchorConfig(t *testing.T) {
	if slices.Contains(Names, NameProxyAnchor) || !slices.Contains(Composed, NameProxyAnchor) {
		t.Errorf("Names %v, Composed %v: proxy-anchor belongs to Composed", Names, Composed)
	}
	d, err := DefaultConfig(" Proxy-Anchor ")
	if err != nil || d.Head != (ProxyAnchor{Alpha: 32, Delta: 0.1}) || d.Eps != 1e-6 || d.NormEps != 1e-6 || d.CheckEvery != 1 {
		t.Errorf("defaults %+v, %v", d, err)
	}
	var keys []string
	opts, _ := Options(NameProxyAnchor)
	for _, o := range opts {
		keys = append(keys, o.Key)
	}
	if got := strings.Join(keys, ","); got != "alpha,delta,eps,norm_eps,check_every" {
		t.Errorf("Options: %s", got)
	}
	name, cfg, err := Parse("proxy-anchor:alpha=16,delta=0.2")
	if err != nil || name != NameProxyAnchor || cfg.Head != (ProxyAnchor{Alpha: 16, Delta: 0.2}) {
		t.Fatalf("Parse: %s %+v %v", name, cfg, err)
	}
	spec := cfg.Describe(name)
	if spec != "proxy-anchor:alpha=16,delta=0.2,eps=1e-06,norm_eps=1e-06,check_every=1" {
		t.Errorf("Describe: %s", spec)
	}
	if n2, cfg2, err := Parse(spec); err != nil || n2 != name || cfg2 != cfg {
		t.Errorf("Parse(Describe) = %s %+v %v, want %s %+v", n2, cfg2, err, name, cfg)
	}
	if n2, cfg2, err := Parse(d.Describe(NameProxyAnchor)); err != nil || n2 != NameProxyAnchor || cfg2 != d {
		t.Errorf("defaults round trip: %s %+v %v", n2, cfg2, err)
	}
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"proxy-anchor:alpha=0", []string{"proxy-anchor", "option alpha", "> 0"}},
		{"proxy-anchor:alpha=-3", []string{"option alpha", "> 0"}},
		{"proxy-anchor:delta=1", []string{"option delta", "[0, 1)"}},
		{"proxy-anchor:delta=-0.1", []string{"option delta", "[0, 1)"}},
		{"proxy-anchor:alpha=inf", []string{"alpha", "not a finite number"}},
		{"proxy-anchor:eps=0", []string{"option eps"}},
		{"proxy-anchor:norm_eps=2", []string{"option norm_eps"}},
		{"proxy-anchor:check_every=-1", []string{"check_every"}},
		{"proxy-anchor:s=30", []string{`"s"`, "does not apply to proxy-anchor", "alpha, delta"}},
		{"proxy-anchor:m=0.1", []string{`"m"`, "does not apply"}},
		{"proxy-anchor:beta=1", []string{"unknown option", `"beta"`}},
		{"cosface:alpha=3", []string{`"alpha"`, "does not apply to cosface"}},
	} {
		_, _, err := Parse(tc.spec)
		if err == nil {
			t.Errorf("Parse(%q): no error", tc.spec)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q): error %q does not mention %q", tc.spec, err, w)
			}
		}
	}
	if _, err := Canonical("nope"); err == nil || !strings.Contains(err.Error(), NameProxyAnchor) {
		t.Errorf("unknown head error does not list proxy-anchor: %v", err)
	}
	h, err := New(cpu.New(1), NameProxyAnchor, Config{}, 4, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Config() != d || len(h.Params()) != 1 || len(h.Groups()) != 1 {
		t.Errorf("New with the zero Config: %+v, params %v", h.Config(), h.Params())
	}
	if m := h.Margins(); len(m) != 2 || m[0] != (Stat{"alpha", 32}) || m[1] != (Stat{"delta", 0.1}) {
		t.Errorf("Margins: %v", m)
	}
}

// TestProxyAnchorLogits: inference logits are α·cos θ.
func TestProxyAnchorLogits(t *testing.T) {
	b := cpu.New(1)
	for _, name := range []string{NameProxyAnchor, NameNormFace} {
		hd, err := New(b, name, Config{}, 4, 3, 1)
		if err != nil {
			t.Fatal(err)
		}
		h := hd.(*head)
		g := autograd.New(b)
		emb := autograd.NewVar(tensor.RandNormal(2, 0, 1, 2, 4), false)
		logits, cos := g.Values(h.Logits(g, emb)), g.Values(h.cosines(g, emb))
		s := float32(refScale(h.cfg))
		if name == NameProxyAnchor {
			s = float32(h.cfg.Head.(ProxyAnchor).Alpha)
		}
		for k := range cos {
			if logits[k] != s*cos[k] {
				t.Errorf("%s: logit %d = %g, want %g·%g", name, k, logits[k], s, cos[k])
			}
		}
		g.Reset()
	}
}

// TestProxyAnchorStep: a warm training step allocates nothing on the Go
// heap, and moves the batch and the label mask to the device (one upload
// more than the fused heads) and only the loss back.
func TestProxyAnchorStep(t *testing.T) {
	cb := &counting{Backend: cpu.New(2)}
	hd, err := New(cb, NameProxyAnchor, Config{}, 16, 40, 1)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int32, 32)
	for i := range labels {
		labels[i] = int32(i * 7 % 40)
	}
	x := tensor.RandNormal(2, 0, 1, 32, 16).HostData()
	g := autograd.New(cb)
	ps := nn.NewParamSet(cb, hd.Groups()...)
	opt := nn.NewSGD(ps, 0.9, 5e-4, true)
	var ferr error
	step := func() {
		ps.ZeroGrad()
		emb := g.Constant(x, 32, 16)
		loss, err := hd.Forward(g, emb, labels)
		if err != nil {
			ferr = err
			return
		}
		g.Backward(loss)
		opt.Step(0.01)
		g.Reset()
	}
	for range 3 {
		step()
	}
	if n := allocs.PerRun(3, 5, step); n != 0 {
		t.Errorf("a warm step allocates %v objects, want 0", n)
	}
	cb.uploads, cb.downloads = 0, 0
	step()
	if ferr != nil {
		t.Fatal(ferr)
	}
	if cb.uploads != 2 || cb.downloads != 1 {
		t.Errorf("%d uploads and %d downloads, want 2 (batch, label mask) and 1 (the loss)", cb.uploads, cb.downloads)
	}
}
