package dml

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
)

func TestDefaultsValidateAndRoundTrip(t *testing.T) {
	for _, name := range Names {
		cfg, err := DefaultConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(name); err != nil {
			t.Errorf("%s defaults: %v", name, err)
		}
		spec := cfg.Describe(name)
		n2, cfg2, err := Parse(spec)
		if err != nil {
			t.Errorf("Parse(Describe) of %s: %v", spec, err)
			continue
		}
		if n2 != name || cfg2 != cfg {
			t.Errorf("Parse(%q) = %s %+v, want %s %+v", spec, n2, cfg2, name, cfg)
		}
		opts, err := Options(name)
		if err != nil || len(opts) == 0 {
			t.Errorf("Options(%s) = %v, %v", name, opts, err)
		}
	}
}

func TestLiteratureDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Settings
	}{
		{"cosface", CosFace{S: 64, M: 0.35}},
		{"arcface", ArcFace{S: 64, M: 0.5}},
		{"sphereface", SphereFace{S: 30, M: 4, Anneal: true, LambdaBase: 1000, LambdaGamma: 0.12, LambdaPower: 1, LambdaMin: 5}},
		{"normface", NormFace{S: 30}},
		{"combined", Combined{S: 64, M1: 1, M2: 0.3, M3: 0.2}},
	} {
		cfg, _ := DefaultConfig(tc.name)
		if cfg.Head != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, cfg.Head, tc.want)
		}
	}
}

func TestAliases(t *testing.T) {
	for in, want := range map[string]string{"dml": DefaultDML, "DML/Fixed": NameDMLFixed, " cosface ": NameCosFace, "am-softmax": NameCosFace} {
		got, err := Canonical(in)
		if err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestParseErrors: every bad spec is an error that names the offending
// option (or head) and says what is wrong.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"dml/fixed:m_p=0.3,m_n=0.2", []string{"dml/fixed", "m_n", "greater than m_p"}},
		{"dml/fixed:m_p=0.3,m_n=0.3", []string{"m_n", "greater than m_p"}},
		{"dml/adaptive:m_n=0.05", []string{"dml/adaptive", "m_n"}},
		{"sphereface:m=2.5", []string{"sphereface", "option m", "integer"}},
		{"sphereface:m=0", []string{"option m", "integer"}},
		{"sphereface:lambda_min=-1", []string{"lambda_min", "≥ 0"}},
		{"cosface:s=0", []string{"cosface", "option s", "> 0"}},
		{"arcface:s=-3", []string{"option s", "> 0"}},
		{"arcface:m=2", []string{"option m", "π/2"}},
		{"cosface:m=-0.1", []string{"option m"}},
		{"cosface:m=35", []string{"option m"}},
		{"combined:m1=0", []string{"m1", "> 0"}},
		{"combined:m3=-1", []string{"m3"}},
		{"normface:eps=0", []string{"eps"}},
		{"normface:norm_eps=0", []string{"norm_eps"}},
		{"dml/class:delta=0.2", []string{"m_n", "m_p + delta"}},
		{"dml/class:m_max=0.2", []string{"m_max"}},
		{"dml/class:margin_lr=0", []string{"margin_lr", "> 0"}},
		{"dml/class:margin_reg=-1", []string{"margin_reg"}},
		{"dml/class:m_p=-0.1", []string{"m_p"}},
		{"dml/class:delta=-0.1", []string{"delta"}},
		{"cosface:check_every=-1", []string{"check_every"}},
		{"cosface:q=1", []string{"unknown option", `"q"`, "s, m"}},
		{"cosface:m_p=0.1", []string{"m_p", "does not apply to cosface"}},
		{"softmax:s=30", []string{`"s"`, "does not apply to softmax"}},
		{"arcface:m=abc", []string{"m=", "abc", "not a finite number"}},
		{"arcface:m=NaN", []string{"not a finite number"}},
		{"arcface:easy_margin=maybe", []string{"easy_margin", "true or false"}},
		{"cosface:check_every=1.5", []string{"check_every", "integer"}},
		{"cosface:s", []string{"not key=value"}},
		{"cosface:s=30,s=20", []string{"given twice"}},
		{"tripletloss", []string{"unknown head", "tripletloss", "dml/class"}},
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
}

func TestParseOptions(t *testing.T) {
	name, cfg, err := Parse("dml/class: margin_lr=0.5 , m_max=0.8,learn_mp=false")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Head.(ClassMargins); name != NameDMLClass || cfg.MarginLR != 0.5 || c.MaxMargin != 0.8 || c.LearnMP || c.S != 30 {
		t.Errorf("got %s %+v", name, cfg)
	}
	if _, cfg, _ := Parse("sphereface:anneal=false,lambda=3"); cfg.Head.(SphereFace).lambdaAt(0) != 3 {
		t.Errorf("fixed λ not applied: %+v", cfg)
	}
}

func TestNewErrors(t *testing.T) {
	b := cpu.New(1)
	if _, err := New(b, "cosface", Config{Head: CosFace{S: 0, M: 0.35}, Eps: 1e-6, NormEps: 1e-6}, 4, 4, 1); err == nil || !strings.Contains(err.Error(), "option s") {
		t.Errorf("s = 0: %v", err)
	}
	if _, err := New(b, "cosface", Config{}, 0, 4, 1); err == nil || !strings.Contains(err.Error(), "embedding size") {
		t.Errorf("dim 0: %v", err)
	}
	if _, err := New(b, "cosface", Config{}, 4, 1, 1); err == nil || !strings.Contains(err.Error(), "classes") {
		t.Errorf("1 class: %v", err)
	}
	if _, err := New(b, "nope", Config{}, 4, 4, 1); err == nil {
		t.Error("unknown head: no error")
	}
	// The zero Config is the defaults.
	h, err := New(b, "arcface", Config{}, 4, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := DefaultConfig("arcface"); h.Config() != d || !strings.HasPrefix(h.Describe(), "arcface:s=64,m=0.5,") {
		t.Errorf("zero Config gave %+v (%s)", h.Config(), h.Describe())
	}
}

// setOwn changes cfg's own settings, of type T, with f.
func setOwn[T Settings](cfg *Config, f func(*T)) {
	c := cfg.Head.(T)
	f(&c)
	cfg.Head = c
}

// TestSettingsRoundTrip: every head's own settings, at their defaults and
// with every option changed, come back unchanged through
// Describe → Parse, and Describe writes the keys of Options in order.
func TestSettingsRoundTrip(t *testing.T) {
	changed := map[string]Settings{
		NameSoftmax:     Softmax{Bias: false},
		NameNormFace:    NormFace{S: 12.5},
		NameSphereFace:  SphereFace{S: 20, M: 3, Anneal: false, Lambda: 2.5, LambdaBase: 500, LambdaGamma: 0.2, LambdaPower: 2, LambdaMin: 1},
		NameCosFace:     CosFace{S: 30, M: 0.4},
		NameArcFace:     ArcFace{S: 30, M: 0.3, EasyMargin: true},
		NameCombined:    Combined{S: 32, M1: 0.9, M2: 0.4, M3: 0.1},
		NameDMLFixed:    FixedMargins{S: 24, MP: 0.15, MN: 0.3},
		NameDMLAdaptive: FixedMargins{S: 24, MP: 0.05, MN: 0.5},
		NameDMLClass:    ClassMargins{S: 48, MP: 0.1, MN: 0.3, Delta: 0.1, MaxMargin: 0.6, MarginReg: 96, LearnMP: false},
		NameProxyAnchor: ProxyAnchor{Alpha: 16, Delta: 0.2},
	}
	for _, name := range append(slices.Clone(Names), Composed...) {
		def, _ := DefaultConfig(name)
		own, ok := changed[name]
		if !ok {
			t.Errorf("%s: no changed settings in the test table", name)
			continue
		}
		cfg := def
		cfg.Head = own
		opts, _ := Options(name)
		var keys []string
		for _, o := range opts {
			keys = append(keys, o.Key)
			switch o.Key { // the shared options the head reads
			case "eps":
				cfg.Eps = 1e-4
			case "norm_eps":
				cfg.NormEps = 1e-3
			case "check_every":
				cfg.CheckEvery = 3
			case "margin_lr":
				cfg.MarginLR = 2.5
			}
		}
		if err := cfg.Validate(name); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		// Every option must differ from its default, so that the round
		// trip checks its binding.
		from, to := specOptions(t, def.Describe(name)), specOptions(t, cfg.Describe(name))
		for i, k := range keys {
			if i >= len(from) || i >= len(to) || from[i][0] != k || to[i][0] != k {
				t.Fatalf("%s: Describe writes %v, %v; Options lists %v", name, from, to, keys)
			}
			if from[i][1] == to[i][1] {
				t.Errorf("%s: option %s is %s in both cases", name, k, to[i][1])
			}
		}
		if len(from) != len(keys) {
			t.Errorf("%s: Describe writes %d options, Options lists %d", name, len(from), len(keys))
		}
		for _, c := range []Config{def, cfg} {
			spec := c.Describe(name)
			n2, c2, err := Parse(spec)
			if err != nil || n2 != name || c2 != c {
				t.Errorf("Parse(%q) = %s %+v %v, want %s %+v", spec, n2, c2, err, name, c)
			}
			if fmt.Sprintf("%T", c2.Head) != fmt.Sprintf("%T", def.Head) {
				t.Errorf("%s: settings of type %T, want %T", name, c2.Head, def.Head)
			}
		}
	}
}

// specOptions splits a spec's options into key, value pairs.
func specOptions(t *testing.T, spec string) [][2]string {
	t.Helper()
	_, opts, _ := strings.Cut(spec, ":")
	var out [][2]string
	for _, kv := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

// TestSettingsType: a Config must hold the named head's settings type; a
// nil Head in a partly filled Config is the zero settings; every number
// must be finite.
func TestSettingsType(t *testing.T) {
	arc, _ := DefaultConfig(NameArcFace)
	if err := arc.Validate(NameCosFace); err == nil || !strings.Contains(err.Error(), "dml: cosface: the settings are dml.ArcFace, want dml.CosFace") {
		t.Errorf("Validate(cosface) of arcface settings: %v", err)
	}
	if _, err := New(cpu.New(1), NameCosFace, arc, 4, 4, 1); err == nil || !strings.Contains(err.Error(), "dml.ArcFace") {
		t.Errorf("New(cosface) with arcface settings: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "dml: Describe: cosface:") {
				t.Errorf("Describe(cosface) of arcface settings: panic %v", r)
			}
		}()
		_ = arc.Describe(NameCosFace)
	}()
	// FixedMargins serves dml/fixed and dml/adaptive.
	if fixed, _ := DefaultConfig(NameDMLFixed); fixed.Validate(NameDMLAdaptive) != nil {
		t.Errorf("dml/fixed's settings for dml/adaptive: %v", fixed.Validate(NameDMLAdaptive))
	}

	partial := Config{CheckEvery: 1}
	h, err := New(cpu.New(1), NameSoftmax, partial, 4, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Config().Head != (Softmax{}) || len(h.Params()) != 1 || h.Describe() != "softmax:bias=false,check_every=1" {
		t.Errorf("softmax with a nil Head: %+v, %d params, %s", h.Config(), len(h.Params()), h.Describe())
	}
	if err := (Config{Eps: 1e-6, NormEps: 1e-6}).Validate(NameCosFace); err == nil || !strings.Contains(err.Error(), "option s: the scale must be > 0, got 0") {
		t.Errorf("cosface with a nil Head: %v", err)
	}

	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
		want string
	}{
		{NameCosFace, func(c *Config) { c.Head = CosFace{S: math.NaN(), M: math.Inf(1)} }, "option m: must be finite"},
		{NameSphereFace, func(c *Config) { setOwn(c, func(s *SphereFace) { s.LambdaMin = math.NaN() }) }, "option lambda_min: must be finite"},
		{NameDMLClass, func(c *Config) { c.MarginLR = math.Inf(-1) }, "option margin_lr: must be finite"},
		{NameDMLClass, func(c *Config) { c.MarginLR = 0 }, "option margin_lr: must be > 0"},
		{NameProxyAnchor, func(c *Config) { c.NormEps = math.NaN() }, "option norm_eps: must be finite"},
	} {
		cfg, _ := DefaultConfig(tc.name)
		tc.cfg(&cfg)
		if err := cfg.Validate(tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: %v, want %q", tc.name, cfg, err, tc.want)
		}
	}
}
