package dml

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Config is a head's settings: Head, the head's own, and the few that
// heads share. Start from DefaultConfig or Parse: the zero Config passed to
// New also means the head's defaults, but a partly filled one is taken as
// it is and validated (a nil Head then means the zero value of the head's
// settings type).
//
// What stays shared, and why: eps, norm_eps and check_every mean the same
// and obey the same rules in every head that reads them, and the code all
// heads share reads them (the normalisation, the kernel's clamp, Forward's
// NaN check). MarginLR is a training setting rather than a loss setting:
// the learning-rate scale of the parameter groups Groups builds for
// learned margins, which the trainer sets from --margin-lr for whatever
// head it trains and writes in its report. Everything else (s, the
// margins, SphereFace's λ, ...) is one head's, in its settings type.
type Config struct {
	// Head is the head's own settings, of the type its table entry names:
	// Softmax, NormFace, SphereFace, CosFace, ArcFace, Combined,
	// FixedMargins (dml/fixed, dml/adaptive), ClassMargins (dml/class) or
	// ProxyAnchor. Validate and New reject another head's type.
	Head Settings

	// Eps clamps cosines to [−1+Eps, 1−Eps] before any acos (cosine heads).
	Eps float64
	// NormEps is the least norm in the L2 normalisation of embeddings and
	// class weights: x/max(|x|, NormEps) (cosine heads).
	NormEps float64
	// CheckEvery: every CheckEvery-th training step, Forward downloads the
	// loss and, if it is NaN or ±Inf, scans embeddings and parameters and
	// returns a *NonFiniteError. 0 turns the check off.
	CheckEvery int
	// MarginLR multiplies the base learning rate for the "margins"
	// parameter group (dml/class's ρ_j); the "margin_p" group (m_p) gets
	// MarginLR/C (see Head.Groups). Heads that read margin_lr default to
	// 1; the others ignore it.
	MarginLR float64
}

// Settings is one head's own settings: a struct of plain values (so that
// Configs compare with ==), declared in the head's file next to its table
// entry, which gives its defaults (settings(T{...})). Two methods make a
// type T a settings type:
//
//   - func (c *T) options(shared *Config) []option lists the spec keys the
//     head reads, in the order Describe writes them, each bound to its
//     field of c or, for the shared ones, of shared (Config's option
//     methods: cosineOptions, marginLROption, ...);
//   - func (c T) validate(bad badOption) error checks the head's own rules.
//     Validate runs it after the rules of the keys several heads read
//     (every number finite, check_every ≥ 0, s > 0, eps, norm_eps), and
//     before margin_lr > 0.
//
// Keys bound to fields, as flag.FlagSet binds flags to variables, rather
// than a parsed key→value map that each head decodes: one list names a
// head's keys, documents them and reads and writes them, so Parse,
// Describe, Options and the checks for unknown keys cannot drift apart.
type Settings interface {
	validate(bad badOption) error
}

// badOption formats a Validate error naming the option key.
type badOption func(key string, format string, args ...any) error

// option is one spec key of a head, bound to the field it sets: exactly one
// of f, b, i is set.
type option struct {
	key, doc string
	f        *float64
	b        *bool
	i        *int
}

// String formats the option's value as Describe writes it.
func (o option) String() string {
	switch {
	case o.f != nil:
		return strconv.FormatFloat(*o.f, 'g', -1, 64)
	case o.b != nil:
		return strconv.FormatBool(*o.b)
	}
	return strconv.Itoa(*o.i)
}

// set parses v into the option's field; the error names the head n and the
// key.
func (o option) set(n, v string) error {
	switch {
	case o.f != nil:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("dml: %s: option %s=%q is not a finite number", n, o.key, v)
		}
		*o.f = x
	case o.b != nil:
		x, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("dml: %s: option %s=%q is not true or false", n, o.key, v)
		}
		*o.b = x
	default:
		x, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("dml: %s: option %s=%q is not an integer", n, o.key, v)
		}
		*o.i = x
	}
	return nil
}

// The shared options, bound to c's fields, for the heads' option lists.

// cosineOptions are eps, norm_eps and check_every, which every cosine head
// reads after its own keys.
func (c *Config) cosineOptions() []option {
	return []option{
		{key: "eps", doc: "cosine clamp ε in (0, 0.01]", f: &c.Eps},
		{key: "norm_eps", doc: "least norm in the L2 normalisation, in (0, 1]", f: &c.NormEps},
		c.checkEveryOption(),
	}
}

func (c *Config) checkEveryOption() option {
	return option{key: "check_every", doc: "NaN/Inf check of the loss every n steps (0: off)", i: &c.CheckEvery}
}

func (c *Config) marginLROption() option {
	return option{key: "margin_lr", doc: "learning-rate scale > 0 of the margins group (margin_p: this/C)", f: &c.MarginLR}
}

// settingsType is a head's settings type T, whatever it is: its defaults
// and its options. settings builds one.
type settingsType interface {
	defaults() Settings
	// bind copies cfg.Head into a new T (the zero T when cfg.Head is nil)
	// and returns the head's options, bound to the copy's fields and to
	// cfg's shared ones, and store, which writes the copy to cfg.Head (a
	// caller that sets options calls it after). It fails when cfg.Head is
	// another type.
	bind(cfg *Config) (opts []option, store func(), err error)
}

// settingsPtr is *T for a settings type T.
type settingsPtr[T any] interface {
	*T
	options(shared *Config) []option
}

type settingsOf[T Settings, P settingsPtr[T]] struct{ def T }

// settings gives a table entry its settings type and defaults:
// settings(CosFace{S: 64, M: 0.35}).
func settings[T Settings, P settingsPtr[T]](defaults T) settingsType {
	return settingsOf[T, P]{defaults}
}

func (t settingsOf[T, P]) defaults() Settings { return t.def }

func (t settingsOf[T, P]) bind(cfg *Config) ([]option, func(), error) {
	var c T
	if cfg.Head != nil {
		var ok bool
		if c, ok = cfg.Head.(T); !ok {
			return nil, nil, fmt.Errorf("the settings are %T, want %T", cfg.Head, c)
		}
	}
	p := P(&c)
	return p.options(cfg), func() { cfg.Head = *p }, nil
}

// resolve makes a nil c.Head the zero settings of the named head
// (canonical) and returns the head's options bound to c, to read (setting
// them is ParseOptions' work, through bind). The error, for another
// head's settings type, names the head.
func (c *Config) resolve(n string) ([]option, error) {
	opts, store, err := lookup(n).settings.bind(c)
	if err != nil {
		return nil, fmt.Errorf("dml: %s: %w", n, err)
	}
	store()
	return opts, nil
}

// DefaultConfig returns the defaults of the named head (aliases allowed):
// its settings type's as its table entry gives them (see the settings
// types: CosFace, ClassMargins, ...), and for every head eps = 1e-6 (cosine
// clamp), norm_eps = 1e-6 and a NaN/Inf check of the loss every step;
// margin_lr = 1 where the head reads it.
func DefaultConfig(name string) (Config, error) {
	n, err := Canonical(name)
	if err != nil {
		return Config{}, err
	}
	c := Config{Head: lookup(n).settings.defaults(), Eps: 1e-6, NormEps: 1e-6, CheckEvery: 1}
	opts, _ := c.resolve(n)
	if findOption(opts, "margin_lr") != nil {
		c.MarginLR = 1
	}
	return c, nil
}

func findOption(opts []option, key string) *option {
	for i := range opts {
		if opts[i].key == key {
			return &opts[i]
		}
	}
	return nil
}

// OptionDoc is one option key with a short description.
type OptionDoc struct {
	Key, Doc string
}

// Options lists the option keys the named head reads, in a fixed order
// (Describe's).
func Options(name string) ([]OptionDoc, error) {
	n, err := Canonical(name)
	if err != nil {
		return nil, err
	}
	d, _ := DefaultConfig(n)
	opts, _ := d.resolve(n)
	out := make([]OptionDoc, len(opts))
	for i, o := range opts {
		out[i] = OptionDoc{o.key, o.doc}
	}
	return out, nil
}

// Parse reads a head spec "name" or "name:key=value,key=value" (for
// example "arcface:s=30,m=0.4" or "dml/class:margin_lr=0.1") and returns
// the canonical name and the head's defaults with the options applied.
// Keys are those of Options(name); an unknown key, a key the head does not
// read, or a bad value is an error naming it. The result is validated.
func Parse(spec string) (string, Config, error) {
	name, opts, _ := strings.Cut(spec, ":")
	return ParseOptions(name, opts)
}

// ParseOptions applies comma-separated key=value options to the named
// head's defaults and validates the result.
func ParseOptions(name, opts string) (string, Config, error) {
	n, err := Canonical(name)
	if err != nil {
		return "", Config{}, err
	}
	cfg, _ := DefaultConfig(n)
	bound, store, _ := lookup(n).settings.bind(&cfg)
	seen := map[string]bool{}
	for _, kv := range strings.Split(opts, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || v == "" {
			return "", Config{}, fmt.Errorf("dml: %s: option %q is not key=value", n, kv)
		}
		o := findOption(bound, k)
		if o == nil && !anyHeadReads(k) {
			return "", Config{}, fmt.Errorf("dml: %s: unknown option %q (%s reads: %s)", n, k, n, keyList(bound))
		}
		if o == nil {
			return "", Config{}, fmt.Errorf("dml: %s: option %q does not apply to %s (it reads: %s)", n, k, n, keyList(bound))
		}
		if seen[k] {
			return "", Config{}, fmt.Errorf("dml: %s: option %q given twice", n, k)
		}
		seen[k] = true
		if err := o.set(n, v); err != nil {
			return "", Config{}, err
		}
	}
	store()
	if err := cfg.Validate(n); err != nil {
		return "", Config{}, err
	}
	return n, cfg, nil
}

// anyHeadReads reports whether some head reads the option key.
func anyHeadReads(key string) bool {
	for _, d := range heads {
		c, _ := DefaultConfig(d.name)
		if opts, _ := c.resolve(d.name); findOption(opts, key) != nil {
			return true
		}
	}
	return false
}

func keyList(opts []option) string {
	keys := make([]string, len(opts))
	for i, o := range opts {
		keys[i] = o.key
	}
	return strings.Join(keys, ", ")
}

// Describe formats the settings the named head reads as a spec that Parse
// reads back: "cosface:s=64,m=0.35,eps=1e-06,norm_eps=1e-06,check_every=1".
// Reports use it to state the loss settings. It panics if c.Head is
// another head's settings type (Validate reports that as an error).
func (c Config) Describe(name string) string {
	n, err := Canonical(name)
	if err != nil {
		return name
	}
	opts, err := c.resolve(n)
	if err != nil {
		panic("dml: Describe: " + strings.TrimPrefix(err.Error(), "dml: "))
	}
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = o.key + "=" + o.String()
	}
	return n + ":" + strings.Join(parts, ",")
}

// Validate checks the settings the named head reads and returns an error
// naming the first bad option: every number finite, then the rules of the
// keys several heads read (check_every ≥ 0, s > 0, eps, norm_eps), then
// the head's own (its settings type's validate), then margin_lr > 0.
func (c Config) Validate(name string) error {
	n, err := Canonical(name)
	if err != nil {
		return err
	}
	opts, err := c.resolve(n)
	if err != nil {
		return err
	}
	bad := func(key string, format string, args ...any) error {
		return fmt.Errorf("dml: %s: option %s: %s", n, key, fmt.Sprintf(format, args...))
	}
	// Every float the head reads must be finite, checked in key order.
	floats := make([]option, 0, len(opts))
	for _, o := range opts {
		if o.f != nil {
			floats = append(floats, o)
		}
	}
	sort.Slice(floats, func(i, j int) bool { return floats[i].key < floats[j].key })
	for _, o := range floats {
		if v := *o.f; math.IsNaN(v) || math.IsInf(v, 0) {
			return bad(o.key, "must be finite, got %g", v)
		}
	}
	if c.CheckEvery < 0 {
		return bad("check_every", "must be ≥ 0, got %d", c.CheckEvery)
	}
	if o := findOption(opts, "s"); o != nil && !(*o.f > 0) {
		return bad("s", "the scale must be > 0, got %g", *o.f)
	}
	if o := findOption(opts, "eps"); o != nil && !(c.Eps > 0 && c.Eps <= 0.01) {
		return bad("eps", "the cosine clamp must be in (0, 0.01], got %g", c.Eps)
	}
	if o := findOption(opts, "norm_eps"); o != nil && !(c.NormEps > 0 && c.NormEps <= 1) {
		return bad("norm_eps", "must be in (0, 1], got %g", c.NormEps)
	}
	if err := c.Head.validate(bad); err != nil {
		return err
	}
	if o := findOption(opts, "margin_lr"); o != nil && !(c.MarginLR > 0) {
		return bad("margin_lr", "must be > 0, got %g", c.MarginLR)
	}
	return nil
}
