package dml

import (
	"fmt"
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestDMLFixedIsCosFace: dml/fixed with (m_p, m_n) gives the loss and the
// gradients (embeddings, class weights) of cosface with m = m_p + m_n,
// because adding s·m_n to every logit of a row leaves the softmax as it is.
func TestDMLFixedIsCosFace(t *testing.T) {
	b := cpu.New(2)
	for i, mm := range [][3]float64{{0.1, 0.25, 30}, {0, 0.35, 64}, {0.2, 0.6, 16}, {0.05, 0.1, 64}} {
		fixed := randomCase(t, variant{spec: fmt.Sprintf("dml/fixed:m_p=%g,m_n=%g,s=%g", mm[0], mm[1], mm[2])}, 12, 6, 9, uint64(200+i))
		cos := fixed
		cos.name = NameCosFace
		cos.cfg, _ = DefaultConfig(NameCosFace)
		cos.cfg.Head = CosFace{S: mm[2], M: mm[0] + mm[1]}
		t.Run(fmt.Sprintf("m_p=%g,m_n=%g,s=%g", mm[0], mm[1], mm[2]), func(t *testing.T) {
			ef, ec := runEngine(t, b, fixed, true), runEngine(t, b, cos, true)
			closeTo(t, "loss", []float64{ef.loss}, []float64{ec.loss}, 1e-6)
			closeTo(t, "∂/∂x", ef.dx, ec.dx, 1e-6)
			closeTo(t, "∂/∂W", ef.dw, ec.dw, 1e-6)
			// and so does the reference, to float64 precision
			rf, rcos := ref(fixed), ref(cos)
			// (to the float32 rounding of m_p + m_n against m_p and m_n)
			closeTo(t, "reference loss", []float64{rf.loss}, []float64{rcos.loss}, 1e-6)
			closeTo(t, "reference ∂/∂x", rf.dx, rcos.dx, 1e-6)
		})
	}
}

// marginCE runs the fused kernel on host cosines: per-sample losses and
// ∂(mean loss)/∂cos.
func marginCE(b backend.Backend, p backend.MarginParams, cos []float32, labels []int32, classMargins []float32) (loss, dcos []float32) {
	n := len(labels)
	c := len(cos) / n
	p.N, p.C = n, c
	if classMargins != nil {
		p.ClassMargins = tensor.FromSlice(classMargins, c)
	}
	l, d := tensor.Zeros(n), tensor.Zeros(n, c)
	b.MarginSoftmaxCE(p, tensor.FromSlice(cos, n, c), labels, l, d, backend.MarginGrads{})
	return l.HostData(), d.HostData()
}

func mean32(v []float32) float64 {
	var s float64
	for _, a := range v {
		s += float64(a)
	}
	return s / float64(len(v))
}

// TestClassAndAdaptiveAreNotCosFace: for dml/class (margins that differ
// between classes) and dml/adaptive, the cosface margin m* that gives the
// same mean loss on a batch still gives different gradients ∂L/∂cos, so no
// cosface reproduces them. dml/fixed, run through the same procedure, is
// matched to 1e-6 (the procedure can find an equality when one exists).
func TestClassAndAdaptiveAreNotCosFace(t *testing.T) {
	b := cpu.NewReference()
	const n, c, s = 6, 7, 30
	cos := tensor.RandUniform(300, -0.8, 0.9, n, c).HostData()
	labels := []int32{0, 3, 6, 2, 2, 5}
	cases := []struct {
		name    string
		p       backend.MarginParams
		margins []float32
		differ  bool
	}{
		{"dml/class", backend.MarginParams{Kind: backend.MarginDMLClass, S: s, MP: 0.1}, []float32{0.15, 0.5, 0.2, 0.45, 0.3, 0.6, 0.25}, true},
		{"dml/adaptive", backend.MarginParams{Kind: backend.MarginDMLAdaptive, S: s, MP: 0.1, MN: 0.6}, nil, true},
		{"dml/fixed (control)", backend.MarginParams{Kind: backend.MarginDMLFixed, S: s, MP: 0.1, MN: 0.3}, nil, false},
		{"dml/class, equal margins (control)", backend.MarginParams{Kind: backend.MarginDMLClass, S: s, MP: 0.1}, []float32{0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, d := marginCE(b, tc.p, cos, labels, tc.margins)
			target := mean32(l)
			cosface := func(m float64) (float64, []float32) {
				l, d := marginCE(b, backend.MarginParams{Kind: backend.MarginCosFace, S: s, M: float32(m)}, cos, labels, nil)
				return mean32(l), d
			}
			lo, hi := -2.0, 4.0 // the cosface loss increases with m
			for range 100 {
				mid := (lo + hi) / 2
				if v, _ := cosface(mid); v < target {
					lo = mid
				} else {
					hi = mid
				}
			}
			m := (lo + hi) / 2
			lm, dm := cosface(m)
			if math.Abs(lm-target) > 1e-5*math.Max(1, target) {
				t.Fatalf("bisection found m*=%g with loss %g, want %g", m, lm, target)
			}
			var diff, scale float64
			for k := range d {
				diff = math.Max(diff, math.Abs(float64(d[k]-dm[k])))
				scale = math.Max(scale, math.Abs(float64(d[k])))
			}
			t.Logf("m* = %.6f: loss %.6f, largest |Δ∂L/∂cos| = %.3g of %.3g", m, target, diff, scale)
			if tc.differ && diff < 1e-2*scale {
				t.Errorf("gradients agree with cosface(m=%g) to %.3g: the loss reduces to cosface here", m, diff/scale)
			}
			if !tc.differ && diff > 1e-5*scale {
				t.Errorf("control: gradients differ from cosface(m=%g) by %.3g", m, diff/scale)
			}
		})
	}
}

// targetSweep runs the kernel on cos θ for n+1 angles θ_k = kπ/n with one
// other class at cosine 0 and returns θ and the per-sample losses
// ℓ = softplus(z_o − z_y) = softplus(−z_y), strictly decreasing in z_y.
func targetSweep(b backend.Backend, p backend.MarginParams, n int) (theta []float64, loss []float32) {
	cos := make([]float32, 2*(n+1))
	labels := make([]int32, n+1)
	theta = make([]float64, n+1)
	for k := range theta {
		theta[k] = float64(k) * math.Pi / float64(n)
		cos[2*k] = float32(math.Cos(theta[k]))
	}
	loss, _ = marginCE(b, p, cos, labels, nil)
	return theta, loss
}

// targetLogit recovers z_y from ℓ = softplus(−z_y).
func targetLogit(l float32) float64 { return -math.Log(math.Expm1(float64(l))) }

// TestTargetLogitMonotone: ArcFace's (without easy margin) and
// SphereFace's target logits are non-increasing in θ over [0, π],
// sampled at 20,001 angles through the kernel; ArcFace past θ > π − m is
// DESIGN.md's fallback s·(cos θ − m·sin m) and SphereFace follows
// s·(λ cos θ + ψ(θ))/(1 + λ), ψ(θ) = (−1)^k cos(mθ) − 2k. The logits are
// linear in s; s = 1 keeps every loss well away from 0, so that z_y can
// be read back from it.
func TestTargetLogitMonotone(t *testing.T) {
	b := cpu.New(2)
	const n = 20000
	var ps []backend.MarginParams
	for _, m := range []float32{0.1, 0.35, 0.5, 0.8, 1.2, 1.5} {
		ps = append(ps, backend.MarginParams{Kind: backend.MarginArcFace, S: 1, M: m, Eps: 1e-6})
	}
	for _, m := range []float32{1, 2, 3, 4, 5} {
		for _, lam := range []float32{0, 5, 1000} {
			ps = append(ps, backend.MarginParams{Kind: backend.MarginSphereFace, S: 1, M: m, Lambda: lam, Eps: 1e-6})
		}
	}
	for _, p := range ps {
		t.Run(fmt.Sprintf("%s_m%g_lambda%g", p.Kind, p.M, p.Lambda), func(t *testing.T) {
			theta, loss := targetSweep(b, p, n)
			s, m := float64(p.S), float64(p.M)
			for k := 1; k <= n; k++ {
				// z_y non-increasing ⇔ ℓ non-decreasing (float32 rounding aside)
				if float64(loss[k]) < float64(loss[k-1])*(1-1e-6)-1e-30 {
					t.Fatalf("target logit increases from θ=%.5f to %.5f: %.7g → %.7g", theta[k-1], theta[k], targetLogit(loss[k-1]), targetLogit(loss[k]))
				}
			}
			checked := 0
			for k, th := range theta {
				c := math.Cos(th)
				if c > 1-1e-6 || c < -1+1e-6 {
					continue // the clamp
				}
				var want float64
				switch p.Kind {
				case backend.MarginArcFace:
					if th > math.Pi-m {
						want = s * (c - m*math.Sin(m)) // DESIGN.md's fallback
					} else {
						want = s * math.Cos(th+m)
					}
				case backend.MarginSphereFace:
					kk := math.Floor(m * th / math.Pi)
					psi := math.Pow(-1, kk)*math.Cos(m*th) - 2*kk
					lam := float64(p.Lambda)
					want = s * (lam*c + psi) / (1 + lam)
				}
				got := targetLogit(loss[k])
				// float32 cosines and losses: allow for the input's rounding
				if math.Abs(got-want) > 1e-4*s*(1+m)/math.Max(math.Sin(th), 1e-2) {
					t.Fatalf("θ=%.6f: target logit %.7g, want %.7g", th, got, want)
				}
				checked++
			}
			if checked < n/2 {
				t.Fatalf("checked only %d angles", checked)
			}
		})
	}
}

// TestEasyMarginIsNotMonotone documents the easy-margin rule: the target
// logit jumps up at θ = π/2 (from s·cos(π/2 + m) < 0 to s·0), as in
// InsightFace.
func TestEasyMarginIsNotMonotone(t *testing.T) {
	p := backend.MarginParams{Kind: backend.MarginArcFace, S: 1, M: 0.5, EasyMargin: true, Eps: 1e-6}
	theta, loss := targetSweep(cpu.New(2), p, 2000)
	rises := 0
	for k := 1; k < len(theta); k++ {
		if targetLogit(loss[k]) > targetLogit(loss[k-1])+0.1 {
			rises++
			if math.Abs(theta[k]-math.Pi/2) > 2e-3 {
				t.Errorf("easy margin jumps at θ=%.4f, want π/2", theta[k])
			}
		}
	}
	if rises != 1 {
		t.Errorf("easy margin: %d jumps up, want 1", rises)
	}
}

// TestLogits: the inference logits are s·cos θ (cosine heads) and
// W·x + b (softmax), with no margin.
func TestLogits(t *testing.T) {
	b := cpu.New(2)
	for _, spec := range []string{"softmax", "softmax:bias=false", "cosface", "arcface:s=30", "dml/class", "sphereface"} {
		rc := randomCase(t, variant{spec: spec}, 5, 4, 6, 400)
		hd, err := New(b, rc.name, rc.cfg, rc.d, rc.c, 1)
		if err != nil {
			t.Fatal(err)
		}
		h := hd.(*head)
		setParams(b, h, rc)
		g := autograd.New(b)
		var got []float32
		g.NoGrad(func() {
			got = g.Values(h.Logits(g, autograd.NewVar(g.Upload(f32(rc.x), rc.n, rc.d), false)))
		})
		g.Reset()
		want := make([]float64, rc.n*rc.c)
		for i := 0; i < rc.n; i++ {
			xh, _ := refNormalize(rc.x[i*rc.d:(i+1)*rc.d], r32(rc.cfg.NormEps))
			for j := 0; j < rc.c; j++ {
				wh, _ := refNormalize(rc.w[j*rc.d:(j+1)*rc.d], r32(rc.cfg.NormEps))
				var v float64
				for k := 0; k < rc.d; k++ {
					if rc.name == NameSoftmax {
						v += rc.x[i*rc.d+k] * rc.w[j*rc.d+k]
					} else {
						v += xh[k] * wh[k]
					}
				}
				if rc.name == NameSoftmax {
					if rc.bias != nil {
						v += rc.bias[j]
					}
				} else {
					v *= refScale(rc.cfg)
				}
				want[i*rc.c+j] = v
			}
		}
		closeTo(t, spec+" logits", f64(got), want, 1e-6)
	}
}

// TestSphereFaceAnnealing: λ(t) = max(λ_min, base·(1 + γ·t)^(−power)),
// used by Forward at the head's step, which advances only while recording.
func TestSphereFaceAnnealing(t *testing.T) {
	d, _ := DefaultConfig(NameSphereFace)
	cfg := d.Head.(SphereFace)
	for _, tc := range []struct {
		step int
		want float64
	}{{0, 1000}, {1, 1000 / 1.12}, {100, 1000 / 13.0}, {1000, 1000 / 121.0}, {1650, 1000 / 199.0}, {1700, 5}, {1e6, 5}} {
		if got := cfg.lambdaAt(tc.step); math.Abs(got-tc.want) > 1e-9*tc.want {
			t.Errorf("λ(%d) = %g, want %g", tc.step, got, tc.want)
		}
	}
	cfg.Anneal, cfg.Lambda = false, 2.5
	if got := cfg.lambdaAt(1234); got != 2.5 {
		t.Errorf("fixed λ = %g, want 2.5", got)
	}

	b := cpu.New(2)
	hd, _ := New(b, "sphereface", Config{}, 3, 4, 1)
	emb := autograd.NewVar(tensor.RandNormal(1, 0, 1, 2, 3), true)
	labels := []int32{1, 3}
	g := autograd.New(b)
	defer g.Reset()
	if _, err := hd.Forward(g, emb, labels); err != nil {
		t.Fatal(err)
	}
	if hd.Step() != 1 {
		t.Errorf("after one training Forward, Step() = %d, want 1", hd.Step())
	}
	g.NoGrad(func() {
		if _, err := hd.Forward(g, emb, labels); err != nil {
			t.Fatal(err)
		}
	})
	if hd.Step() != 1 {
		t.Errorf("a NoGrad Forward advanced the step to %d", hd.Step())
	}
	hd.SetStep(100)
	stats := hd.Margins()
	if len(stats) != 2 || stats[1].Name != "lambda" || math.Abs(stats[1].Value-1000/13.0) > 1e-9 {
		t.Errorf("Margins() = %v, want m and λ(100) = %g", stats, 1000/13.0)
	}
}

// TestParamsAndGroups: names, the head/margins split and its LR scale,
// weight-decay exemptions.
func TestParamsAndGroups(t *testing.T) {
	b := cpu.New(1)
	for _, tc := range []struct {
		spec   string
		params []string
		groups []string
	}{
		{"softmax", []string{"head.weight", "head.bias"}, []string{"head"}},
		{"softmax:bias=false", []string{"head.weight"}, []string{"head"}},
		{"arcface", []string{"head.weight"}, []string{"head"}},
		{"dml/fixed", []string{"head.weight"}, []string{"head"}},
		{"dml/class:margin_lr=0.25", []string{"head.weight", "head.margin_p", "head.margin_rho"}, []string{"head", "margins", "margin_p"}},
		{"dml/class:learn_mp=false", []string{"head.weight", "head.margin_rho"}, []string{"head", "margins"}},
	} {
		name, cfg, err := Parse(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(b, name, cfg, 8, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range h.Params() {
			got = append(got, p.Name)
			if p.Name == "head.weight" && p.V.NoDecay || p.Name != "head.weight" && !p.V.NoDecay {
				t.Errorf("%s: %s NoDecay = %v", tc.spec, p.Name, p.V.NoDecay)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.params) {
			t.Errorf("%s: Params %v, want %v", tc.spec, got, tc.params)
		}
		var gs []string
		for _, g := range h.Groups() {
			gs = append(gs, g.Name)
			if g.Name == "margins" && g.LRScale != float32(cfg.MarginLR) {
				t.Errorf("%s: margins LR scale %g, want %g", tc.spec, g.LRScale, cfg.MarginLR)
			}
			if g.Name == "margin_p" && g.LRScale != float32(cfg.MarginLR/5) {
				t.Errorf("%s: margin_p LR scale %g, want %g", tc.spec, g.LRScale, cfg.MarginLR/5)
			}
		}
		if fmt.Sprint(gs) != fmt.Sprint(tc.groups) {
			t.Errorf("%s: Groups %v, want %v", tc.spec, gs, tc.groups)
		}
		if h.Dim() != 8 || h.Classes() != 5 || h.Name() != name {
			t.Errorf("%s: Dim/Classes/Name = %d/%d/%s", tc.spec, h.Dim(), h.Classes(), h.Name())
		}
	}
}

// TestInitialMargins: dml/class starts at the configured m_p and m_n.
func TestInitialMargins(t *testing.T) {
	h, err := New(cpu.New(1), "dml", Config{}, 4, 9, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != NameDMLClass {
		t.Fatalf(`"dml" built %s, want %s`, h.Name(), NameDMLClass)
	}
	c, err := DefaultConfig(NameDMLClass)
	if err != nil {
		t.Fatal(err)
	}
	cm := c.Head.(ClassMargins)
	want := map[string]float64{"m_p": cm.MP, "m_n.mean": cm.MN, "m_n.min": cm.MN, "m_n.max": cm.MN, "margin_term": -cm.MN * cm.MarginReg}
	for _, s := range h.Margins() {
		if math.Abs(s.Value-want[s.Name]) > 1e-6 {
			t.Errorf("%s = %g, want %g", s.Name, s.Value, want[s.Name])
		}
	}
}
