// Package sets opens any dmlgo data set from one description (a Spec, which
// command-line tools fill from flags) and splits it into the training,
// query and gallery sets: the single entry point tools use.
//
//	spec := sets.DefaultSpec()
//	spec.RegisterFlags(flag.CommandLine)
//	flag.Parse()
//	set, err := sets.Open(spec, os.Stderr)
//	// set.Dataset.Train / Query / Gallery, set.Transform, set.Augment
package sets

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/deepfashion"
	"github.com/dmlgo/dmlgo/data/fmnist"
)

// Kinds of data set.
const (
	FMNISTC2S         = "fmnist-c2s"
	DeepFashionC2S    = "deepfashion-c2s"
	DeepFashionInShop = "deepfashion-inshop"
	TSV               = "tsv"
)

// Kinds lists the data set kinds Open knows.
var Kinds = []string{FMNISTC2S, DeepFashionC2S, DeepFashionInShop, TSV}

// Spec describes a data set. Numeric FMNIST-C2S fields left at -1 take the
// preset's value.
type Spec struct {
	// Kind is one of Kinds (default fmnist-c2s).
	Kind string
	// Path is the Fashion-MNIST archive or its folder (default: the data
	// folder, $DMLGO_DATA or .cache/data), the DeepFashion benchmark's
	// root folder, or the TSV manifest file.
	Path string
	// ImageRoot overrides the folder image paths are relative to
	// (DeepFashion, TSV).
	ImageRoot string

	// FMNIST-C2S knobs.
	Preset                string
	Shift                 string
	TrainItems, TestItems int
	TrainViews, TestViews int
	Seed                  int64

	// Check is how image files are verified before use: none, exists,
	// header or decode (default header; FMNIST-C2S is in memory).
	Check string
	// GalleryWithVal adds val shop images to the gallery (Consumer-to-Shop).
	GalleryWithVal bool
	// Strict turns skipped images, excluded queries and recoverable
	// DeepFashion list problems into errors.
	Strict bool
}

// DefaultSpec is the demo's data set: FMNIST-C2S quick, moderate shift.
func DefaultSpec() Spec {
	return Spec{Kind: FMNISTC2S, Preset: "quick", TrainItems: -1, TestItems: -1, TrainViews: -1, TestViews: -1, Seed: -1, Check: "header"}
}

// RegisterFlags defines the data flags on fs, with s's current values as
// defaults (start from DefaultSpec): -data, -data-path, -image-root,
// -preset, -shift, -train-items, -test-items, -train-views, -test-views,
// -data-seed, -check, -gallery-val, -strict.
func (s *Spec) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Kind, "data", s.Kind, "data set: "+strings.Join(Kinds, ", "))
	fs.StringVar(&s.Path, "data-path", s.Path, "Fashion-MNIST archive or folder (default $DMLGO_DATA or .cache/data), DeepFashion root folder, or TSV manifest")
	fs.StringVar(&s.ImageRoot, "image-root", s.ImageRoot, "folder image paths are relative to (default: found from the data path)")
	fs.StringVar(&s.Preset, "preset", s.Preset, "FMNIST-C2S preset: "+strings.Join(fmnist.PresetNames, ", "))
	fs.StringVar(&s.Shift, "shift", s.Shift, "FMNIST-C2S domain shift: "+strings.Join(fmnist.ShiftNames, ", ")+" (default: the preset's, moderate)")
	fs.IntVar(&s.TrainItems, "train-items", s.TrainItems, "FMNIST-C2S train items = classes (-1: preset)")
	fs.IntVar(&s.TestItems, "test-items", s.TestItems, "FMNIST-C2S test items = gallery size (-1: preset)")
	fs.IntVar(&s.TrainViews, "train-views", s.TrainViews, "FMNIST-C2S consumer views per train item (-1: preset)")
	fs.IntVar(&s.TestViews, "test-views", s.TestViews, "FMNIST-C2S consumer views per test item (-1: preset)")
	fs.Int64Var(&s.Seed, "data-seed", s.Seed, "FMNIST-C2S seed of the consumer views (-1: preset)")
	fs.StringVar(&s.Check, "check", s.Check, "how image files are verified first: none, exists, header, decode")
	fs.BoolVar(&s.GalleryWithVal, "gallery-val", s.GalleryWithVal, "add the val split's shop images to the gallery (Consumer-to-Shop)")
	fs.BoolVar(&s.Strict, "strict", s.Strict, "fail on a missing or corrupt image, a query whose item is not in the gallery, or a recoverable DeepFashion list problem (file:line)")
}

// FMNISTConfig resolves the FMNIST-C2S configuration: the preset, then
// every knob that is set.
func (s Spec) FMNISTConfig() (fmnist.Config, error) {
	preset := s.Preset
	if preset == "" {
		preset = "quick"
	}
	cfg, err := fmnist.Preset(preset)
	if err != nil {
		return cfg, fmt.Errorf("-preset: %w", err)
	}
	if s.Shift != "" {
		if cfg.Shift, err = fmnist.ShiftLevel(s.Shift); err != nil {
			return cfg, fmt.Errorf("-shift: %w", err)
		}
	}
	set := func(dst *int, v int) {
		if v >= 0 {
			*dst = v
		}
	}
	set(&cfg.TrainItems, s.TrainItems)
	set(&cfg.TestItems, s.TestItems)
	set(&cfg.TrainViews, s.TrainViews)
	set(&cfg.TestViews, s.TestViews)
	if s.Seed >= 0 {
		cfg.Seed = uint64(s.Seed)
	}
	return cfg, nil
}

// Set is an opened data set.
type Set struct {
	Spec     Spec
	Manifest *data.Manifest
	Dataset  *data.Dataset
	// Benchmark and Source are set for FMNIST-C2S.
	Benchmark *fmnist.Benchmark
	Source    *fmnist.Source
	// Transform is the evaluation transform suited to the set; Augment a
	// training augmentation (use Transform.Training(Augment)).
	Transform data.Transform
	Augment   *data.Augment
	// Description names the data set and its settings, for reports.
	Description string
	// LoadTime is the time Open took.
	LoadTime time.Duration
}

// Open loads the data set described by spec, verifies its images (Check),
// and splits it by the protocol. Progress goes to log (may be nil).
func Open(spec Spec, log io.Writer) (*Set, error) {
	if log == nil {
		log = io.Discard
	}
	start := time.Now()
	if spec.Kind == "" {
		spec.Kind = FMNISTC2S
	}
	check := data.CheckNone
	if spec.Check != "" {
		var err error
		if check, err = data.ParseCheckMode(spec.Check); err != nil {
			return nil, fmt.Errorf("-check: %w", err)
		}
	}
	set := &Set{Spec: spec}
	var m *data.Manifest
	var err error
	switch spec.Kind {
	case FMNISTC2S:
		cfg, err := spec.FMNISTConfig()
		if err != nil {
			return nil, err
		}
		path := spec.Path
		if path == "" {
			path = fmnist.DefaultDir()
		}
		fmt.Fprintf(log, "data: reading Fashion-MNIST from %s\n", path)
		if set.Source, err = fmnist.Load(path); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "data: %d images (%d invalid rows skipped) in %v; rendering %s\n",
			set.Source.Len(), set.Source.TotalSkipped(), time.Since(start).Round(time.Millisecond), cfg)
		if set.Benchmark, err = fmnist.Build(set.Source, cfg); err != nil {
			return nil, err
		}
		m = set.Benchmark.Manifest
		set.Transform, _ = Transform(spec.Kind)
		set.Augment = fmnist.TrainAugment()
		set.Description = cfg.String()
		check = data.CheckNone
	case DeepFashionC2S, DeepFashionInShop:
		if spec.Path == "" {
			return nil, fmt.Errorf("-data-path: give the DeepFashion benchmark's folder (holding Anno/ and Eval/)")
		}
		opts := deepfashion.Options{Root: spec.Path, ImageRoot: spec.ImageRoot, Strict: spec.Strict}
		if spec.Kind == DeepFashionC2S {
			m, err = deepfashion.LoadConsumer2Shop(opts)
		} else {
			m, err = deepfashion.LoadInShop(opts)
		}
		if err != nil {
			return nil, err
		}
		set.Transform, _ = Transform(spec.Kind)
		set.Augment = data.DefaultAugment()
		set.Description = fmt.Sprintf("%s (%s)", spec.Kind, spec.Path)
	case TSV:
		if spec.Path == "" {
			return nil, fmt.Errorf("-data-path: give the TSV manifest file")
		}
		if m, err = data.ReadTSV(spec.Path); err != nil {
			return nil, err
		}
		if spec.ImageRoot != "" {
			m.Root = spec.ImageRoot
		}
		set.Transform, _ = Transform(spec.Kind)
		set.Augment = data.DefaultAugment()
		set.Description = fmt.Sprintf("tsv manifest %s", spec.Path)
	default:
		return nil, fmt.Errorf("-data: unknown data set %q (want one of %s)", spec.Kind, strings.Join(Kinds, ", "))
	}
	if check != data.CheckNone {
		fmt.Fprintf(log, "data: checking %d images (%s)\n", len(m.Rows), check)
		last := time.Now()
		m, err = m.Check(data.CheckOptions{Mode: check, Strict: spec.Strict, Progress: func(done, total int) {
			if time.Since(last) > 2*time.Second {
				fmt.Fprintf(log, "data: checked %d/%d images\n", done, total)
				last = time.Now()
			}
		}})
		if err != nil {
			return nil, err
		}
	}
	set.Manifest = m
	if set.Dataset, err = data.NewDataset(m, data.ProtocolOptions{GalleryWithVal: spec.GalleryWithVal, Strict: spec.Strict}); err != nil {
		return nil, err
	}
	set.LoadTime = time.Since(start)
	if n := set.Dataset.Warnings.Total(); n > 0 {
		fmt.Fprintf(log, "data: %d warnings:\n%s\n", n, indent(set.Dataset.Warnings.String()))
	}
	fmt.Fprintf(log, "data: %s (ready in %v)\n", set.Dataset.Summary(), set.LoadTime.Round(time.Millisecond))
	return set, nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

// dataFlagNames are the flags Spec.RegisterFlags defines.
func dataFlagNames() map[string]bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	s := DefaultSpec()
	s.RegisterFlags(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// FlagsGiven reports whether any data flag (Spec.RegisterFlags)
// was set on fs.
func FlagsGiven(fs *flag.FlagSet) bool {
	names, given := dataFlagNames(), false
	fs.Visit(func(f *flag.Flag) { given = given || names[f.Name] })
	return given
}

// ApplyFlags returns base with the data flags that were set on fs
// applied over it: a checkpoint's recorded data set, changed only where the
// command line says so.
func ApplyFlags(base Spec, fs *flag.FlagSet) (Spec, error) {
	fs2 := flag.NewFlagSet("", flag.ContinueOnError)
	fs2.SetOutput(io.Discard)
	base.RegisterFlags(fs2)
	var err error
	fs.Visit(func(f *flag.Flag) {
		if g := fs2.Lookup(f.Name); g != nil && err == nil {
			if e := g.Value.Set(f.Value.String()); e != nil {
				err = fmt.Errorf("-%s: %w", f.Name, e)
			}
		}
	})
	return base, err
}

// Validate checks a spec before anything is loaded (a known kind, resolving
// the aliases manifest and inshop; a path for the kinds that need one; the
// FMNIST-C2S settings; the check mode): the errors name the flag.
func (s *Spec) Validate() error {
	switch s.Kind {
	case "manifest":
		s.Kind = TSV
	case "inshop":
		s.Kind = DeepFashionInShop
	}
	known := false
	for _, k := range Kinds {
		known = known || k == s.Kind
	}
	if !known {
		return fmt.Errorf("-data: unknown data set %q (want one of %v)", s.Kind, Kinds)
	}
	if s.Kind != FMNISTC2S && s.Path == "" {
		return fmt.Errorf("-data-path: %s needs its root folder (or the TSV file)", s.Kind)
	}
	if s.Kind == FMNISTC2S {
		if _, err := s.FMNISTConfig(); err != nil {
			return err
		}
	}
	if s.Check != "" {
		if _, err := data.ParseCheckMode(s.Check); err != nil {
			return fmt.Errorf("-check: %w", err)
		}
	}
	return nil
}

// Transform is the input transform of a data set kind: the one Open gives
// its sets and the one a model trained on it expects at inference
// (FMNIST-C2S: greyscale 32×32; the photo kinds: RGB 224×224 with
// ImageNet statistics and a 10% box margin).
func Transform(kind string) (data.Transform, error) {
	switch kind {
	case FMNISTC2S, "":
		return fmnist.Transform(), nil
	case DeepFashionC2S, DeepFashionInShop, TSV, "manifest", "inshop":
		t := data.RGBTransform(224)
		t.Margin = deepfashion.DefaultMargin
		return t, nil
	}
	return data.Transform{}, fmt.Errorf("unknown data set kind %q", kind)
}
