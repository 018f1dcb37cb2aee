package train

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/dml"
	"github.com/dmlgo/dmlgo/nn"
)

// TrainConfig is every setting of a training run. A JSON config file
// (--config) sets any of them; flags given on the command line override it.
// Validate holds every numeric setting to its range (see checkRanges).
type TrainConfig struct {
	// Data: the data set and its knobs (package data/sets).
	Data sets.Spec `json:"data"`
	// Augment enables the training augmentation of the data set.
	Augment bool `json:"augment"`

	// Model.
	Model      string `json:"model"`
	Dim        int    `json:"dim"`
	Pretrained string `json:"pretrained"`

	// Loss: the head's spec, "name" or "name:key=value,…" (package dml),
	// e.g. "arcface:s=30,m=0.4" or "dml/class:max_margin=0.5".
	Loss string `json:"loss"`

	// Optimisation.
	Optimizer   string  `json:"optimizer"` // sgd or adamw
	LR          float64 `json:"lr"`
	HeadLR      float64 `json:"head_lr"`   // multiplier of lr for the head's weights
	MarginLR    float64 `json:"margin_lr"` // multiplier of lr for learned margins
	Momentum    float64 `json:"momentum"`
	Nesterov    bool    `json:"nesterov"`
	WeightDecay float64 `json:"weight_decay"`
	Schedule    string  `json:"schedule"` // onecycle, cosine, step, constant
	Warmup      int     `json:"warmup"`   // warm-up steps (cosine, step, constant)
	StepEvery   int     `json:"step_every"`
	StepGamma   float64 `json:"step_gamma"`

	Epochs    int    `json:"epochs"`
	Batch     int    `json:"batch"`
	Sampler   string `json:"sampler"` // shuffle or pk
	PKP       int    `json:"pk_p"`
	PKK       int    `json:"pk_k"`
	Seed      uint64 `json:"seed"`
	Device    string `json:"device"`
	Threads   int    `json:"threads"`
	Workers   int    `json:"workers"`
	Out       string `json:"out"`
	EvalEvery int    `json:"eval_every"` // epochs between evaluations (0: only at the end)
	EvalBatch int    `json:"eval_batch"`
}

// DefaultTrainConfig is the demo's run: DML on FMNIST-C2S quick.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		Data: sets.DefaultSpec(), Augment: true,
		Model: "resnet-s", Dim: 128, Loss: "dml",
		Optimizer: "sgd", LR: 0.1, HeadLR: 1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
		Schedule: "onecycle", StepGamma: 0.1,
		Epochs: 8, Batch: 128, Sampler: "shuffle", PKP: 32, PKK: 4, Seed: 1,
		Out: "runs/demo", EvalEvery: 0, EvalBatch: 256,
	}
}

// BindFlags registers every setting on fs, writing into c.
func (c *TrainConfig) BindFlags(fs *flag.FlagSet) {
	c.Data.RegisterFlags(fs)
	fs.BoolVar(&c.Augment, "augment", c.Augment, "training augmentation")
	fs.StringVar(&c.Model, "model", c.Model, "backbone: resnet-s, resnet18, resnet34 or resnet50")
	fs.IntVar(&c.Dim, "dim", c.Dim, "embedding size, 1..65536")
	fs.StringVar(&c.Pretrained, "pretrained", c.Pretrained, "torchvision weights (safetensors) for the backbone; fc is replaced")
	fs.StringVar(&c.Loss, "loss", c.Loss, "head spec: NAME or NAME:key=value,... with NAME one of softmax, normface, sphereface, cosface, arcface, combined, dml, dml/fixed, dml/class, dml/adaptive, proxy-anchor (see the README for the keys)")
	fs.StringVar(&c.Optimizer, "optimizer", c.Optimizer, "sgd or adamw")
	fs.Float64Var(&c.LR, "lr", c.LR, "peak learning rate of the backbone, in (0, 1000]")
	fs.Float64Var(&c.HeadLR, "head-lr", c.HeadLR, "learning-rate multiplier of the head's class weights, in (0, 1000]")
	fs.Float64Var(&c.MarginLR, "margin-lr", c.MarginLR, "learning-rate multiplier of learned margins, in [0, 1000] (0: the head's margin_lr)")
	fs.Float64Var(&c.Momentum, "momentum", c.Momentum, "SGD momentum, in [0, 1)")
	fs.BoolVar(&c.Nesterov, "nesterov", c.Nesterov, "SGD Nesterov momentum")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "weight decay (not on BN and biases), in [0, 1]")
	fs.StringVar(&c.Schedule, "schedule", c.Schedule, "learning-rate schedule: onecycle, cosine, step or constant")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "linear warm-up steps (cosine, step, constant), 0 or more")
	fs.IntVar(&c.StepEvery, "step-every", c.StepEvery, "step schedule: steps between decays, 1 or more")
	fs.Float64Var(&c.StepGamma, "step-gamma", c.StepGamma, "step schedule: decay factor, in (0, 1]")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "epochs, 1..100000")
	fs.IntVar(&c.Batch, "batch", c.Batch, "batch size (shuffle sampler), 2..65536")
	fs.StringVar(&c.Sampler, "sampler", c.Sampler, "shuffle, or pk (P items × K images, both domains)")
	fs.IntVar(&c.PKP, "pk-p", c.PKP, "pk sampler: items per batch (P×K at most 65536)")
	fs.IntVar(&c.PKK, "pk-k", c.PKK, "pk sampler: images per item")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of initialisation, sampling and augmentation")
	fs.StringVar(&c.Device, "device", c.Device, "auto, cpu or cuda (default $DMLGO_DEVICE or auto)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "CPU threads, 0..1024 (0: all cores)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "data loading goroutines, 0..1024 (0: one per core)")
	fs.StringVar(&c.Out, "out", c.Out, "output folder (locked while the run writes into it)")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "evaluate every N epochs, 0..100000 (0: only at the end)")
	fs.IntVar(&c.EvalBatch, "eval-batch", c.EvalBatch, "batch size for embedding during evaluation, 1..65536")
}

// ParseTrainFlags reads args: defaults, then the --config file, then the
// flags given. It returns the config and the --resume folder.
func ParseTrainFlags(args []string, errOut io.Writer) (TrainConfig, string, error) {
	c := DefaultTrainConfig()
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(errOut)
	var configPath, resume string
	fs.StringVar(&configPath, "config", "", "JSON config file (flags given on the command line override it)")
	fs.StringVar(&resume, "resume", "", "continue the run in this output folder from its last checkpoint")
	c.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, "", err
	}
	if fs.NArg() > 0 {
		return c, "", fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if configPath != "" {
		base := DefaultTrainConfig()
		raw, err := os.ReadFile(configPath)
		if err != nil {
			return c, "", fmt.Errorf("--config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&base); err != nil {
			return c, "", fmt.Errorf("--config %s: %w", configPath, err)
		}
		// The flags given win over the file: re-apply them onto it.
		fs2 := flag.NewFlagSet("train", flag.ContinueOnError)
		base.BindFlags(fs2)
		var ferr error
		fs.Visit(func(f *flag.Flag) {
			if g := fs2.Lookup(f.Name); g != nil && ferr == nil {
				ferr = g.Value.Set(f.Value.String())
			}
		})
		if ferr != nil {
			return c, "", ferr
		}
		c = base
	}
	return c, resume, c.Validate()
}

// Validate checks the settings that do not depend on the data.
func (c *TrainConfig) Validate() error {
	bad := func(flag, format string, a ...any) error {
		return fmt.Errorf("--%s: "+format, append([]any{flag}, a...)...)
	}
	// The names for the real data sets are accepted too.
	switch c.Data.Kind {
	case "manifest":
		c.Data.Kind = sets.TSV
	case "inshop":
		c.Data.Kind = sets.DeepFashionInShop
	}
	known := false
	for _, k := range sets.Kinds {
		known = known || k == c.Data.Kind
	}
	if !known {
		return bad("data", "unknown data set %q (want %s; manifest and inshop are aliases)", c.Data.Kind, strings.Join(sets.Kinds, ", "))
	}
	if c.Data.Kind != sets.FMNISTC2S && c.Data.Path == "" {
		return bad("data-path", "%s needs its root folder (or the TSV file)", c.Data.Kind)
	}
	switch c.Optimizer {
	case "sgd", "adamw":
	default:
		return bad("optimizer", "unknown optimizer %q (want sgd or adamw)", c.Optimizer)
	}
	switch c.Schedule {
	case "onecycle", "cosine", "step", "constant":
	default:
		return bad("schedule", "unknown schedule %q (want onecycle, cosine, step or constant)", c.Schedule)
	}
	switch c.Sampler {
	case "shuffle", "pk":
	default:
		return bad("sampler", "unknown sampler %q (want shuffle or pk)", c.Sampler)
	}
	if !slices.Contains(nn.Archs, c.Model) {
		return bad("model", "unknown model %q (want %s)", c.Model, strings.Join(nn.Archs, ", "))
	}
	if err := checkDevice(c.Device); err != nil {
		return err
	}
	if err := c.checkRanges(); err != nil {
		return err
	}
	if c.Sampler == "pk" && c.PKP*c.PKK < 2 {
		return bad("pk-p", "P×K must be at least 2, got %d×%d", c.PKP, c.PKK)
	}
	if c.Sampler == "pk" && c.PKP*c.PKK > MaxBatch {
		return bad("pk-p", "P×K must be at most %d, got %d×%d", MaxBatch, c.PKP, c.PKK)
	}
	if c.Schedule == "step" && c.StepEvery < 1 {
		return bad("step-every", "the step schedule needs a positive interval")
	}
	if c.Data.Kind == sets.FMNISTC2S {
		if _, err := c.Data.FMNISTConfig(); err != nil {
			return fmt.Errorf("-%w", err) // "--preset: …", "--shift: …"
		}
	}
	if c.Data.Check != "" {
		if _, err := data.ParseCheckMode(c.Data.Check); err != nil {
			return bad("check", "%v", err)
		}
	}
	if c.Pretrained != "" {
		if _, err := os.Stat(c.Pretrained); err != nil {
			return bad("pretrained", "%v", err)
		}
	}
	if _, _, err := HeadConfig(*c); err != nil {
		return fmt.Errorf("--loss: %w", err)
	}
	return nil
}

// The ranges of the settings (see checkRanges).
const (
	MaxBatch   = 65536  // --batch, --eval-batch, P×K
	MaxDim     = 65536  // --dim
	MaxEpochs  = 100000 // --epochs, --eval-every
	MaxThreads = 1024   // --threads, --workers
	MaxSteps   = 1 << 30
	MaxLR      = 1000 // --lr, --head-lr, --margin-lr
)

// checkRanges checks every numeric setting against its range; NaN and
// infinities are out of every range. The message names the flag and the
// range.
func (c *TrainConfig) checkRanges() error {
	ints := []struct {
		flag   string
		v      int
		lo, hi int
		note   string
	}{
		{"epochs", c.Epochs, 1, MaxEpochs, ""},
		{"batch", c.Batch, 2, MaxBatch, " (batch norm needs 2 images)"},
		{"dim", c.Dim, 1, MaxDim, ""},
		{"threads", c.Threads, 0, MaxThreads, " (0: all cores)"},
		{"workers", c.Workers, 0, MaxThreads, " (0: one per core)"},
		{"warmup", c.Warmup, 0, MaxSteps, ""},
		{"step-every", c.StepEvery, 0, MaxSteps, ""},
		{"pk-p", c.PKP, 1, MaxBatch, ""},
		{"pk-k", c.PKK, 1, MaxBatch, ""},
		{"eval-every", c.EvalEvery, 0, MaxEpochs, " (0: only at the end)"},
		{"eval-batch", c.EvalBatch, 1, MaxBatch, ""},
	}
	for _, r := range ints {
		if r.v < r.lo || r.v > r.hi {
			return fmt.Errorf("--%s: must be in %d..%d%s, got %d", r.flag, r.lo, r.hi, r.note, r.v)
		}
	}
	// The FMNIST-C2S knobs: -1 takes the preset's value.
	preset := []struct {
		flag   string
		v      int
		lo, hi int
	}{
		{"train-items", c.Data.TrainItems, 1, 60000},
		{"test-items", c.Data.TestItems, 1, 10000},
		{"train-views", c.Data.TrainViews, 0, 100},
		{"test-views", c.Data.TestViews, 1, 100},
	}
	for _, r := range preset {
		if r.v != -1 && (r.v < r.lo || r.v > r.hi) {
			return fmt.Errorf("--%s: must be -1 (the preset's) or in %d..%d, got %d", r.flag, r.lo, r.hi, r.v)
		}
	}
	if c.Data.Seed < -1 {
		return fmt.Errorf("--data-seed: must be -1 (the preset's) or at least 0, got %d", c.Data.Seed)
	}
	floats := []struct {
		flag string
		v    float64
		ok   bool // (a NaN fails every comparison)
		rng  string
	}{
		{"lr", c.LR, c.LR > 0 && c.LR <= MaxLR, "(0, 1000]"},
		{"head-lr", c.HeadLR, c.HeadLR > 0 && c.HeadLR <= MaxLR, "(0, 1000]"},
		{"margin-lr", c.MarginLR, c.MarginLR >= 0 && c.MarginLR <= MaxLR, "[0, 1000] (0: the head's)"},
		{"momentum", c.Momentum, c.Momentum >= 0 && c.Momentum < 1, "[0, 1)"},
		{"weight-decay", c.WeightDecay, c.WeightDecay >= 0 && c.WeightDecay <= 1, "[0, 1]"},
		{"step-gamma", c.StepGamma, c.StepGamma > 0 && c.StepGamma <= 1, "(0, 1]"},
	}
	for _, r := range floats {
		if !r.ok || math.IsInf(r.v, 0) {
			return fmt.Errorf("--%s: must be a finite number in %s, got %g", r.flag, r.rng, r.v)
		}
	}
	return nil
}

// checkDevice refuses a device name (--device, or $DMLGO_DEVICE when the
// flag is not given) that no backend of this build has.
func checkDevice(name string) error {
	src := "--device"
	if name == "" {
		name, src = os.Getenv("DMLGO_DEVICE"), "--device (from $DMLGO_DEVICE)"
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" || name == "auto" || slices.Contains(backend.Names(), name) {
		return nil
	}
	return fmt.Errorf("%s: unknown device %q (want auto, %s)", src, name, strings.Join(backend.Names(), ", "))
}

// HeadConfig resolves the --loss spec and --margin-lr into the head's name
// and settings.
func HeadConfig(c TrainConfig) (string, dml.Config, error) {
	name, hc, err := dml.Parse(c.Loss)
	if err != nil {
		return "", hc, err
	}
	if c.MarginLR > 0 {
		hc.MarginLR = c.MarginLR
	}
	return name, hc, hc.Validate(name)
}
