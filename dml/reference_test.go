package dml

// A naive per-sample float64 reference of every head, written from the
// formulas of the package documentation and independently of the backend's
// kernel (backend/cpu/margin.go): ArcFace through the expanded
// cos θ·cos m − sin θ·sin m and the threshold cos(π − m) in cosine space,
// SphereFace through Chebyshev polynomials with k counted from cosine
// thresholds, DML's margins through their own parameterisation. Its
// gradients are analytic and are themselves checked against central
// differences in float64.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
)

// refCase is one head evaluation: every input float32-representable, held
// in float64.
type refCase struct {
	name    string
	cfg     Config
	n, d, c int
	x       []float64 // (N, D)
	w       []float64 // (C, D)
	bias    []float64 // (C), softmax with Softmax.Bias
	pm      float64   // dml/class's m_p parameter (with ClassMargins.LearnMP)
	rho     []float64 // (C), dml/class
	labels  []int32
	step    int
}

// refOut is the loss and every gradient.
type refOut struct {
	loss   float64
	losses []float64 // per sample (cross-entropy only)
	dx, dw []float64
	db     []float64
	dpm    float64
	drho   []float64
	// dxScale and dwScale are the largest |∂L/∂x̂_i|/|x_i| and
	// |∂L/∂ŵ_j|/|W_j|: the size of the terms the normalisation's backward
	// subtracts, whose float32 cancellation bounds the engine's accuracy.
	dxScale, dwScale float64
	// dpmScale and drhoScale bound the terms that cancel in ∂L/∂m_p
	// (2s + λ) and ∂L/∂ρ_j (s/N + λ/C).
	dpmScale, drhoScale float64
}

// refScale is the scale s of a head's own settings (0: the head has none).
func refScale(cfg Config) float64 {
	switch c := cfg.Head.(type) {
	case NormFace:
		return c.S
	case SphereFace:
		return c.S
	case CosFace:
		return c.S
	case ArcFace:
		return c.S
	case Combined:
		return c.S
	case FixedMargins:
		return c.S
	case ClassMargins:
		return c.S
	}
	return 0
}

// learnsMP reports whether cfg is dml/class's with a learned m_p.
func learnsMP(cfg Config) bool {
	c, ok := cfg.Head.(ClassMargins)
	return ok && c.LearnMP
}

// hasBias reports whether cfg is softmax's with a bias.
func hasBias(cfg Config) bool {
	c, ok := cfg.Head.(Softmax)
	return ok && c.Bias
}

// r32 rounds a setting as the engine sees it (MarginParams are float32).
func r32(v float64) float64 { return float64(float32(v)) }

func refSigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// refChebyshev returns T_m(c) and U_{m−1}(c) by the three-term recurrences.
func refChebyshev(m int, c float64) (t, u float64) {
	t0, t1 := 1.0, c
	u0, u1 := 0.0, 1.0 // U_{−1}, U_0
	for k := 1; k < m; k++ {
		t0, t1 = t1, 2*c*t1-t0
		u0, u1 = u1, 2*c*u1-u0
	}
	if m == 0 {
		return 1, 0
	}
	return t1, u1
}

// refTarget returns the label's logit and its derivative in c. mp is the
// positive margin of the dml kinds.
func refTarget(name string, cfg Config, lambda, mp, c float64) (z, dz float64) {
	s := r32(refScale(cfg))
	switch name {
	case NameSoftmax:
		return c, 1
	case NameNormFace:
		return s * c, s
	case NameCosFace:
		return s * (c - r32(cfg.Head.(CosFace).M)), s
	case NameDMLFixed, NameDMLClass, NameDMLAdaptive:
		return s * (c - mp), s
	}
	eps := r32(cfg.Eps)
	in := 1.0
	if c < -1+eps {
		c, in = -1+eps, 0
	} else if c > 1-eps {
		c, in = 1-eps, 0
	}
	sn := math.Sqrt(1 - c*c)
	switch name {
	case NameArcFace:
		af := cfg.Head.(ArcFace)
		m := r32(af.M)
		if af.EasyMargin {
			if c <= 0 {
				return s * c, s * in
			}
		} else if c < math.Cos(math.Pi-m) { // θ > π − m: InsightFace's cos θ − mm, mm = sin(π − m)·m
			return s * (c - math.Sin(math.Pi-m)*m), s * in
		}
		// cos(θ + m) = cos θ cos m − sin θ sin m; d/dc = cos m + c·sin m / sin θ
		return s * (c*math.Cos(m) - sn*math.Sin(m)), s * in * (math.Cos(m) + c*math.Sin(m)/sn)
	case NameSphereFace:
		m := int(cfg.Head.(SphereFace).M)
		k := 0
		for j := 1; j <= m; j++ {
			if c <= math.Cos(float64(j)*math.Pi/float64(m)) {
				k = j
			}
		}
		tm, um := refChebyshev(m, c)
		sign := 1.0
		if k%2 == 1 {
			sign = -1
		}
		psi := sign*tm - 2*float64(k)
		dpsi := sign * float64(m) * um
		return s * (lambda*c + psi) / (1 + lambda), s * in * (lambda + dpsi) / (1 + lambda)
	case NameCombined:
		cm := cfg.Head.(Combined)
		m1, m2, m3 := r32(cm.M1), r32(cm.M2), r32(cm.M3)
		th := math.Acos(c)
		return s * (math.Cos(m1*th+m2) - m3), s * in * m1 * math.Sin(m1*th+m2) / sn
	}
	panic("refTarget: " + name)
}

// refOther returns a non-label logit and its derivative; mn is the class's
// negative margin for the dml kinds.
func refOther(name string, cfg Config, mn, c float64) (z, dz float64) {
	s := r32(refScale(cfg))
	switch name {
	case NameSoftmax:
		return c, 1
	case NameDMLFixed, NameDMLClass:
		return s * (c + mn), s
	case NameDMLAdaptive:
		return s * (c + mn*(1+c)/2), s * (1 + mn/2)
	}
	return s * c, s
}

// refNormalize returns v/max(|v|, eps) and the divisor.
func refNormalize(v []float64, eps float64) ([]float64, float64) {
	var ss float64
	for _, a := range v {
		ss += a * a
	}
	nrm := math.Max(math.Sqrt(ss), eps)
	out := make([]float64, len(v))
	for i, a := range v {
		out[i] = a / nrm
	}
	return out, nrm
}

// refNormalizeBackward maps ∂L/∂v̂ to ∂L/∂v.
func refNormalizeBackward(vh, dvh []float64, nrm, eps float64) []float64 {
	out := make([]float64, len(vh))
	dot := 0.0
	if nrm > eps {
		for k := range vh {
			dot += vh[k] * dvh[k]
		}
	}
	for k := range vh {
		out[k] = (dvh[k] - vh[k]*dot) / nrm
	}
	return out
}

func refSoftplus(x float64) float64 { return math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }

// ref evaluates a case: loss and gradients, sample by sample.
func ref(rc refCase) refOut {
	cfg := rc.cfg
	N, D, C := rc.n, rc.d, rc.c
	s := r32(refScale(cfg))
	out := refOut{losses: make([]float64, N), dx: make([]float64, N*D), dw: make([]float64, C*D)}
	var lambda float64
	if sf, ok := cfg.Head.(SphereFace); ok {
		lambda = r32(sf.lambdaAt(rc.step))
	}

	// Margins of the dml kinds.
	var mp float64
	mn := make([]float64, C)
	uIn := make([]float64, C) // [u_j ≤ m_max]
	mpIn := 0.0               // [0 ≤ p ≤ m_max − δ]
	switch rc.name {
	case NameDMLFixed, NameDMLAdaptive:
		fm := cfg.Head.(FixedMargins)
		mp = r32(fm.MP)
		for j := range mn {
			mn[j] = r32(fm.MN)
		}
	case NameDMLClass:
		cm := cfg.Head.(ClassMargins)
		mp = r32(cm.MP)
		delta, top := r32(cm.Delta), r32(cm.MaxMargin)
		mpTop := r32(cm.MaxMargin - cm.Delta)
		if cm.LearnMP {
			mp, mpIn = rc.pm, 1
			if mp > mpTop {
				mp, mpIn = mpTop, 0
			} else if mp < 0 {
				mp, mpIn = 0, 0
			}
		}
		for j := range mn {
			u := mp + delta + refSoftplus(rc.rho[j])
			mn[j], uIn[j] = u, 1
			if u > top {
				mn[j], uIn[j] = top, 0
			}
		}
	}

	// Cosines (or raw logits for softmax).
	xh := make([][]float64, N)
	xn := make([]float64, N)
	wh := make([][]float64, C)
	wn := make([]float64, C)
	neps := r32(cfg.NormEps)
	for i := 0; i < N; i++ {
		xh[i], xn[i] = refNormalize(rc.x[i*D:(i+1)*D], neps)
	}
	for j := 0; j < C; j++ {
		wh[j], wn[j] = refNormalize(rc.w[j*D:(j+1)*D], neps)
	}
	cosv := func(i, j int) float64 {
		var v float64
		if rc.name == NameSoftmax {
			for k := 0; k < D; k++ {
				v += rc.x[i*D+k] * rc.w[j*D+k]
			}
			if rc.bias != nil {
				v += rc.bias[j]
			}
			return v
		}
		for k := 0; k < D; k++ {
			v += xh[i][k] * wh[j][k]
		}
		return v
	}

	dcos := make([]float64, N*C) // ∂L/∂c_ij
	dmn := make([]float64, C)    // ∂CE/∂m_n,j
	dmpDirect := 0.0
	for i := 0; i < N; i++ {
		y := int(rc.labels[i])
		z := make([]float64, C)
		dz := make([]float64, C)
		for j := 0; j < C; j++ {
			if j == y {
				z[j], dz[j] = refTarget(rc.name, cfg, lambda, mp, cosv(i, j))
			} else {
				z[j], dz[j] = refOther(rc.name, cfg, mn[j], cosv(i, j))
			}
		}
		zmax := math.Inf(-1)
		for _, v := range z {
			zmax = math.Max(zmax, v)
		}
		var sum float64
		for _, v := range z {
			sum += math.Exp(v - zmax)
		}
		lse := zmax + math.Log(sum)
		out.losses[i] = lse - z[y]
		out.loss += out.losses[i] / float64(N)
		for j := 0; j < C; j++ {
			g := math.Exp(z[j]-lse) / float64(N)
			if j == y {
				g -= 1 / float64(N)
				dmpDirect += -s * g
			} else {
				dmn[j] += s * g
			}
			dcos[i*C+j] = g * dz[j]
		}
	}

	// Through the cosines to x and W.
	if rc.name == NameSoftmax {
		if rc.bias != nil {
			out.db = make([]float64, C)
		}
		for i := 0; i < N; i++ {
			for j := 0; j < C; j++ {
				g := dcos[i*C+j]
				for k := 0; k < D; k++ {
					out.dx[i*D+k] += g * rc.w[j*D+k]
					out.dw[j*D+k] += g * rc.x[i*D+k]
				}
				if out.db != nil {
					out.db[j] += g
				}
			}
		}
	} else {
		for i := 0; i < N; i++ {
			dxh := make([]float64, D)
			for j := 0; j < C; j++ {
				for k := 0; k < D; k++ {
					dxh[k] += dcos[i*C+j] * wh[j][k]
				}
			}
			copy(out.dx[i*D:], refNormalizeBackward(xh[i], dxh, xn[i], neps))
			out.dxScale = math.Max(out.dxScale, norm(dxh)/xn[i])
		}
		for j := 0; j < C; j++ {
			dwh := make([]float64, D)
			for i := 0; i < N; i++ {
				for k := 0; k < D; k++ {
					dwh[k] += dcos[i*C+j] * xh[i][k]
				}
			}
			copy(out.dw[j*D:], refNormalizeBackward(wh[j], dwh, wn[j], neps))
			out.dwScale = math.Max(out.dwScale, norm(dwh)/wn[j])
		}
	}

	// dml/class: the margin term and the margins' parameters.
	if rc.name == NameDMLClass {
		reg := r32(cfg.Head.(ClassMargins).MarginReg)
		var meanMN float64
		for _, v := range mn {
			meanMN += v / float64(C)
		}
		out.loss -= reg * meanMN
		out.drho = make([]float64, C)
		out.dpmScale, out.drhoScale = 2*s+reg, s/float64(N)+reg/float64(C)
		dmp := dmpDirect
		for j := 0; j < C; j++ {
			du := (dmn[j] - reg/float64(C)) * uIn[j]
			out.drho[j] = du * refSigmoid(rc.rho[j])
			dmp += du
		}
		if learnsMP(cfg) {
			out.dpm = dmp * mpIn
		}
	}
	return out
}

// engineOut is what a head on a backend computes for a case.
type engineOut struct {
	loss                float64
	dx, dw, db, dpm, dr []float64
	// pm and rho are dml/class's parameters after the call (Forward
	// projects them).
	pm, rho []float64
}

// runEngine evaluates a case with a head on b: through Forward (projection
// and checks included) when viaForward, else through the loss graph alone.
func runEngine(t *testing.T, b backend.Backend, rc refCase, viaForward bool) engineOut {
	t.Helper()
	hd, err := New(b, rc.name, rc.cfg, rc.d, rc.c, 7)
	if err != nil {
		t.Fatalf("%s: New: %v", rc.name, err)
	}
	h := hd.(*head)
	setParams(b, h, rc)
	g := autograd.New(b)
	defer g.Reset()
	emb := autograd.NewVar(g.Upload(f32(rc.x), rc.n, rc.d), true)
	var loss *autograd.Var
	if viaForward {
		h.SetStep(rc.step)
		loss, err = h.Forward(g, emb, rc.labels)
		if err != nil {
			t.Fatalf("%s: Forward: %v", rc.name, err)
		}
	} else {
		loss = h.loss(g, emb, rc.labels, rc.step)
	}
	g.Backward(loss)
	grad := func(v *autograd.Var) []float64 {
		d := g.GradOrZero(v)
		out := make([]float32, d.Numel())
		b.Download(out, d)
		return f64(out)
	}
	out := engineOut{loss: float64(g.Item(loss)), dx: grad(emb), dw: grad(h.weight.Var)}
	if h.bias != nil {
		out.db = grad(h.bias.Var)
	}
	if h.rho != nil {
		out.dr = grad(h.rho.Var)
		out.rho = f64(g.Values(h.rho.Var))
	}
	if h.mp != nil {
		out.dpm = grad(h.mp.Var)
		out.pm = f64(g.Values(h.mp.Var))
	}
	return out
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, a := range v {
		out[i] = float32(a)
	}
	return out
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, a := range v {
		out[i] = float64(a)
	}
	return out
}

func norm(v []float64) float64 {
	var ss float64
	for _, a := range v {
		ss += a * a
	}
	return math.Sqrt(ss)
}

// closeTo compares got with want: element k passes when
// |got−want| ≤ tol·(scale + |want_k|) + 1e-12, scale = max(floor,
// max_k |want_k|). On failure it prints the first mismatches and the
// largest error (llm.c's check_tensor).
func closeTo(t *testing.T, what string, got, want []float64, tol float64, floor ...float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	scale := 0.0
	for _, f := range floor {
		scale = math.Max(scale, f)
	}
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	bad, worst, worstK := 0, 0.0, -1
	for k := range want {
		d := math.Abs(got[k] - want[k])
		lim := tol*(scale+math.Abs(want[k])) + 1e-12
		if r := d / lim; r > worst {
			worst, worstK = r, k
		}
		if d > lim || math.IsNaN(got[k]) {
			if bad < 4 {
				t.Errorf("%s[%d]: got %.9g, want %.9g (diff %.3g, limit %.3g)", what, k, got[k], want[k], d, lim)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d mismatches; largest error %.3g× the limit at %d", what, bad, len(want), worst, worstK)
	}
}

// compare checks an engine result against the reference.
func compare(t *testing.T, what string, e engineOut, r refOut, tol float64) {
	t.Helper()
	closeTo(t, what+" loss", []float64{e.loss}, []float64{r.loss}, tol)
	closeTo(t, what+" ∂/∂x", e.dx, r.dx, tol, r.dxScale)
	closeTo(t, what+" ∂/∂W", e.dw, r.dw, tol, r.dwScale)
	if r.db != nil {
		closeTo(t, what+" ∂/∂b", e.db, r.db, tol)
	}
	if r.drho != nil {
		closeTo(t, what+" ∂/∂ρ", e.dr, r.drho, tol, r.drhoScale)
	}
	if len(e.dpm) > 0 {
		closeTo(t, what+" ∂/∂m_p", e.dpm, []float64{r.dpm}, tol, r.dpmScale)
	}
}

// variant is a head spec to test.
type variant struct {
	spec string
	step int // SphereFace's λ step
}

// variants covers every kind, its defaults and the options that change a
// formula.
var variants = []variant{
	{spec: "softmax"},
	{spec: "softmax:bias=false"},
	{spec: "normface"},
	{spec: "sphereface", step: 0},      // λ = 1000
	{spec: "sphereface", step: 100000}, // λ = λ_min = 5
	{spec: "sphereface:anneal=false"},  // pure ψ
	{spec: "sphereface:anneal=false,lambda=2,m=3"},
	{spec: "sphereface:anneal=false,m=1,s=10"},
	{spec: "cosface"},
	{spec: "cosface:s=30,m=0.2"},
	{spec: "arcface"},
	{spec: "arcface:easy_margin=true"},
	{spec: "arcface:s=30,m=0.8"},
	{spec: "combined"},
	{spec: "combined:m1=1.2,m2=0.2,m3=0.1,s=20"},
	{spec: "dml/fixed"},
	{spec: "dml/fixed:m_p=0,m_n=0.4,s=64"},
	{spec: "dml/class"},
	{spec: "dml/class:learn_mp=false,margin_reg=0"},
	{spec: "dml/class:margin_reg=3,delta=0,m_max=0.45"},
	{spec: "dml/class:m_p=0.05,m_n=0.1,delta=0.04,m_max=0.1"}, // m_p and every m_n,j at their clamps
	{spec: "dml/adaptive"},
	{spec: "dml/adaptive:m_p=0.2,m_n=0.9,s=16"},
}

// randomCase draws a case for a variant: embeddings of varied norms,
// class weights, labels, and dml/class margins spread over their range
// (some past the clamp, none at it).
func randomCase(t *testing.T, v variant, n, d, c int, seed uint64) refCase {
	t.Helper()
	name, cfg, err := Parse(v.spec)
	if err != nil {
		t.Fatalf("Parse(%q): %v", v.spec, err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	r := func() float64 { return float64(float32(rng.NormFloat64())) }
	rc := refCase{name: name, cfg: cfg, n: n, d: d, c: c, step: v.step,
		x: make([]float64, n*d), w: make([]float64, c*d), labels: make([]int32, n)}
	for i := range rc.x {
		rc.x[i] = r() * (0.5 + float64(i/d%3)) // row norms vary
	}
	for i := range rc.w {
		rc.w[i] = r() * 0.7
	}
	for i := range rc.labels {
		rc.labels[i] = int32(rng.IntN(c))
	}
	if name == NameSoftmax && hasBias(cfg) {
		rc.bias = make([]float64, c)
		for j := range rc.bias {
			rc.bias[j] = r() * 0.3
		}
	}
	if name == NameDMLClass {
		rc.pm = float64(float32(0.07))
		rc.rho = make([]float64, c)
		for j := range rc.rho {
			rc.rho[j] = float64(float32(-3 + 0.9*float64(j))) // softplus from 0.05 to past the clamp
		}
	}
	return rc
}

// TestHeadsMatchReference: every head's loss and gradients (embeddings,
// class weights, bias, learned margins) against the float64 reference, on
// random data, on the pure-Go reference backend and the threaded one.
func TestHeadsMatchReference(t *testing.T) {
	backends := []backend.Backend{cpu.NewReference(), cpu.New(3)}
	for vi, v := range variants {
		rc := randomCase(t, v, 9, 5, 7, uint64(10+vi))
		want := ref(rc)
		for bi, b := range backends {
			t.Run(fmt.Sprintf("%s@%d/backend%d", v.spec, v.step, bi), func(t *testing.T) {
				compare(t, "", runEngine(t, b, rc, false), want, 2e-5)
			})
		}
	}
}

// TestForwardMatchesReference runs the same through Forward (step
// counter, projection, NaN check); the reference sees dml/class's margins
// as Forward projected them.
func TestForwardMatchesReference(t *testing.T) {
	b := cpu.New(2)
	for vi, v := range variants {
		rc := randomCase(t, v, 6, 4, 5, uint64(50+vi))
		t.Run(fmt.Sprintf("%s@%d", v.spec, v.step), func(t *testing.T) {
			e := runEngine(t, b, rc, true)
			if rc.rho != nil {
				rc.rho = e.rho
				if e.pm != nil {
					rc.pm = e.pm[0]
				}
			}
			compare(t, "", e, ref(rc), 2e-5)
		})
	}
}

// sweepCase puts a unit embedding at angle φ (degrees) from class 0's
// proxy on the unit circle; the other proxies sit at 120° and 240° (and
// 60° for a fourth class when c = 4). Label 0.
func sweepCase(name string, cfg Config, step int, phi float64, c int) refCase {
	rad := phi * math.Pi / 180
	rc := refCase{name: name, cfg: cfg, n: 1, d: 2, c: c, step: step,
		x:      []float64{float64(float32(math.Cos(rad))), float64(float32(math.Sin(rad)))},
		labels: []int32{0}}
	for j := 0; j < c; j++ {
		a := float64(j) * 2 * math.Pi / 3
		if j == 3 {
			a = math.Pi / 3
		}
		rc.w = append(rc.w, float64(float32(math.Cos(a))), float64(float32(math.Sin(a))))
	}
	if name == NameSoftmax && hasBias(cfg) {
		rc.bias = make([]float64, c)
	}
	if name == NameDMLClass {
		rc.pm = float64(float32(0.1))
		for j := 0; j < c; j++ {
			rc.rho = append(rc.rho, float64(float32(-3+0.8*float64(j))))
		}
	}
	return rc
}

// TestAngleSweep: on 2-D unit vectors, θ_y = 0°, 1°, …, 179° (past π − m
// for every ArcFace margin tested, across every SphereFace branch k), each
// angle its own batch so that every per-sample loss and gradient is
// compared with the reference.
func TestAngleSweep(t *testing.T) {
	b := cpu.New(2)
	for _, v := range variants {
		name, cfg, err := Parse(v.spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("%s@%d", v.spec, v.step), func(t *testing.T) {
			for phi := 0; phi < 180; phi++ {
				rc := sweepCase(name, cfg, v.step, float64(phi), 4)
				want := ref(rc)
				// The engine's cosines are float32 (error ~1e-7); acos and the
				// angular logits' derivatives amplify it by up to 1/sin²θ.
				sin := math.Sin(float64(phi) * math.Pi / 180)
				tol := 2e-5 + 1e-7/math.Max(sin*sin, 1e-4)
				compare(t, fmt.Sprintf("θ=%d°", phi), runEngine(t, b, rc, false), want, tol)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestReferenceGradientsByFiniteDifferences checks the reference's
// analytic gradients against central differences of its own loss, in
// float64 (h = 1e-6): the reference is then a trustworthy oracle.
func TestReferenceGradientsByFiniteDifferences(t *testing.T) {
	for vi, v := range variants {
		rc := randomCase(t, v, 5, 4, 6, uint64(90+vi))
		t.Run(fmt.Sprintf("%s@%d", v.spec, v.step), func(t *testing.T) {
			r := ref(rc)
			fd := finiteDifferences(rc, 1e-6)
			closeTo(t, "∂/∂x", r.dx, fd.dx, 1e-6)
			closeTo(t, "∂/∂W", r.dw, fd.dw, 1e-6)
			if r.db != nil {
				closeTo(t, "∂/∂b", r.db, fd.db, 1e-6)
			}
			if r.drho != nil {
				closeTo(t, "∂/∂ρ", r.drho, fd.drho, 1e-6)
			}
			if rc.name == NameDMLClass && learnsMP(rc.cfg) {
				closeTo(t, "∂/∂m_p", []float64{r.dpm}, []float64{fd.dpm}, 1e-6)
			}
		})
	}
}

// TestGradientsByFiniteDifferences: the engine's gradients for the
// embeddings, the class weights (and bias) and the learned margins against
// central differences in float64 of the loss.
func TestGradientsByFiniteDifferences(t *testing.T) {
	b := cpu.New(2)
	for vi, v := range variants {
		rc := randomCase(t, v, 5, 4, 6, uint64(90+vi))
		t.Run(fmt.Sprintf("%s@%d", v.spec, v.step), func(t *testing.T) {
			e := runEngine(t, b, rc, false)
			fd := finiteDifferences(rc, 1e-6)
			r := ref(rc) // for the scales of the cancelling terms
			closeTo(t, "∂/∂x", e.dx, fd.dx, 2e-5, r.dxScale)
			closeTo(t, "∂/∂W", e.dw, fd.dw, 2e-5, r.dwScale)
			if fd.db != nil {
				closeTo(t, "∂/∂b", e.db, fd.db, 2e-5)
			}
			if fd.drho != nil {
				closeTo(t, "∂/∂ρ", e.dr, fd.drho, 2e-5, r.drhoScale)
			}
			if rc.name == NameDMLClass && learnsMP(rc.cfg) {
				closeTo(t, "∂/∂m_p", e.dpm, []float64{fd.dpm}, 2e-5, r.dpmScale)
			}
		})
	}
}

// finiteDifferences returns the central differences of the reference
// loss in every input, as a refOut.
func finiteDifferences(rc refCase, h float64) refOut {
	diff := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for k := range v {
			orig := v[k]
			v[k] = orig + h
			lp := ref(rc).loss
			v[k] = orig - h
			lm := ref(rc).loss
			v[k] = orig
			out[k] = (lp - lm) / (2 * h)
		}
		return out
	}
	fd := refOut{dx: diff(rc.x), dw: diff(rc.w)}
	if rc.bias != nil {
		fd.db = diff(rc.bias)
	}
	if rc.rho != nil {
		fd.drho = diff(rc.rho)
		orig := rc.pm
		rc.pm = orig + h
		lp := ref(rc).loss
		rc.pm = orig - h
		lm := ref(rc).loss
		rc.pm = orig
		fd.dpm = (lp - lm) / (2 * h)
	}
	return fd
}

// TestEngineForwardFiniteDifferences checks the engine's backward against
// central differences of the engine's own float32 forward (no reference
// involved), with steps large enough for float32 and points near a kink
// skipped (autograd's gradcheck method).
func TestEngineForwardFiniteDifferences(t *testing.T) {
	b := cpu.NewReference()
	for vi, v := range variants {
		rc := randomCase(t, v, 4, 3, 5, uint64(130+vi))
		t.Run(fmt.Sprintf("%s@%d", v.spec, v.step), func(t *testing.T) {
			e := runEngine(t, b, rc, false)
			pm := []float64{rc.pm} // m_p as a slice, for check; loss reads it back
			loss := func() float64 {
				rc.pm = pm[0]
				return runEngineLoss(t, b, rc)
			}
			probed, skipped := 0, 0
			check := func(what string, vals []float64, grad []float64) {
				for k := range vals {
					fd := func(h float64) float64 {
						orig := vals[k]
						vals[k] = float64(float32(orig + h))
						lp := loss()
						hi := vals[k]
						vals[k] = float64(float32(orig - h))
						lm := loss()
						lo := vals[k]
						vals[k] = orig
						return (lp - lm) / (hi - lo)
					}
					h := 1e-2 * math.Max(1, math.Abs(vals[k]))
					d1, d2 := fd(h), fd(h/2)
					if math.Abs(d1-d2) > 2e-2*math.Max(1, math.Abs(d2)) {
						skipped++
						continue
					}
					if math.Abs(grad[k]-d2) > 2e-2*math.Max(1, math.Abs(d2)) {
						t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g", what, k, grad[k], d2)
					}
					probed++
				}
			}
			check("x", rc.x, e.dx)
			check("W", rc.w, e.dw)
			if rc.bias != nil {
				check("b", rc.bias, e.db)
			}
			if rc.rho != nil {
				check("ρ", rc.rho, e.dr)
				if learnsMP(rc.cfg) {
					check("m_p", pm, e.dpm)
				}
			}
			if probed == 0 || skipped > probed/4 {
				t.Errorf("probed %d elements, skipped %d as kinks", probed, skipped)
			}
		})
	}
}

// runEngineLoss is the engine's loss of a case, without gradients.
func runEngineLoss(t *testing.T, b backend.Backend, rc refCase) float64 {
	t.Helper()
	hd, err := New(b, rc.name, rc.cfg, rc.d, rc.c, 7)
	if err != nil {
		t.Fatal(err)
	}
	h := hd.(*head)
	setParams(b, h, rc)
	g := autograd.New(b)
	defer g.Reset()
	var loss float64
	g.NoGrad(func() {
		emb := autograd.NewVar(g.Upload(f32(rc.x), rc.n, rc.d), false)
		loss = float64(g.Item(h.loss(g, emb, rc.labels, rc.step)))
	})
	return loss
}

// setParams uploads a case's parameters into a head.
func setParams(b backend.Backend, h *head, rc refCase) {
	b.Upload(h.weight.Value, f32(rc.w))
	if h.bias != nil {
		b.Upload(h.bias.Value, f32(rc.bias))
	}
	if h.rho != nil {
		b.Upload(h.rho.Value, f32(rc.rho))
	}
	if h.mp != nil {
		b.Upload(h.mp.Value, f32([]float64{rc.pm}))
	}
}
