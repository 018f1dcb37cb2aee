package dml

import (
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
		s, m float64
	}{{"cosface", 64, 0.35}, {"arcface", 64, 0.5}, {"sphereface", 30, 4}, {"normface", 30, 0}} {
		cfg, _ := DefaultConfig(tc.name)
		if cfg.S != tc.s || cfg.M != tc.m {
			t.Errorf("%s: s=%g m=%g, want s=%g m=%g", tc.name, cfg.S, cfg.M, tc.s, tc.m)
		}
	}
	cfg, _ := DefaultConfig("combined")
	if cfg.M1 != 1 || cfg.M2 != 0.3 || cfg.M3 != 0.2 {
		t.Errorf("combined: %g %g %g", cfg.M1, cfg.M2, cfg.M3)
	}
	sf, _ := DefaultConfig("sphereface")
	if !sf.Anneal || sf.LambdaBase != 1000 || sf.LambdaGamma != 0.12 || sf.LambdaPower != 1 || sf.LambdaMin != 5 {
		t.Errorf("sphereface annealing: %+v", sf)
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
	if name != NameDMLClass || cfg.MarginLR != 0.5 || cfg.MaxMargin != 0.8 || cfg.LearnMP || cfg.S != 30 {
		t.Errorf("got %s %+v", name, cfg)
	}
	if _, cfg, _ := Parse("sphereface:anneal=false,lambda=3"); cfg.lambdaAt(0) != 3 {
		t.Errorf("fixed λ not applied: %+v", cfg)
	}
}

func TestNewErrors(t *testing.T) {
	b := cpu.New(1)
	if _, err := New(b, "cosface", Config{S: 0, M: 0.35, Eps: 1e-6, NormEps: 1e-6}, 4, 4, 1); err == nil || !strings.Contains(err.Error(), "option s") {
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
