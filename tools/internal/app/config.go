package app

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/dml"
)

// TrainConfig is every setting of a training run. A JSON config file
// (--config) sets any of them; flags given on the command line override it.
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
	fs.IntVar(&c.Dim, "dim", c.Dim, "embedding size")
	fs.StringVar(&c.Pretrained, "pretrained", c.Pretrained, "torchvision weights (safetensors) for the backbone; fc is replaced")
	fs.StringVar(&c.Loss, "loss", c.Loss, "head spec: NAME or NAME:key=value,... with NAME one of softmax, normface, sphereface, cosface, arcface, combined, dml, dml/fixed, dml/class, dml/adaptive (see the README for the keys)")
	fs.StringVar(&c.Optimizer, "optimizer", c.Optimizer, "sgd or adamw")
	fs.Float64Var(&c.LR, "lr", c.LR, "peak learning rate of the backbone")
	fs.Float64Var(&c.HeadLR, "head-lr", c.HeadLR, "learning-rate multiplier of the head's class weights")
	fs.Float64Var(&c.MarginLR, "margin-lr", c.MarginLR, "learning-rate multiplier of learned margins (0: the head's margin_lr)")
	fs.Float64Var(&c.Momentum, "momentum", c.Momentum, "SGD momentum")
	fs.BoolVar(&c.Nesterov, "nesterov", c.Nesterov, "SGD Nesterov momentum")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "weight decay (not on BN and biases)")
	fs.StringVar(&c.Schedule, "schedule", c.Schedule, "learning-rate schedule: onecycle, cosine, step or constant")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "linear warm-up steps (cosine, step, constant)")
	fs.IntVar(&c.StepEvery, "step-every", c.StepEvery, "step schedule: steps between decays")
	fs.Float64Var(&c.StepGamma, "step-gamma", c.StepGamma, "step schedule: decay factor")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "epochs")
	fs.IntVar(&c.Batch, "batch", c.Batch, "batch size (shuffle sampler)")
	fs.StringVar(&c.Sampler, "sampler", c.Sampler, "shuffle, or pk (P items × K images, both domains)")
	fs.IntVar(&c.PKP, "pk-p", c.PKP, "pk sampler: items per batch")
	fs.IntVar(&c.PKK, "pk-k", c.PKK, "pk sampler: images per item")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of initialisation, sampling and augmentation")
	fs.StringVar(&c.Device, "device", c.Device, "auto, cpu or cuda (default $DMLGO_DEVICE or auto)")
	fs.IntVar(&c.Threads, "threads", c.Threads, "CPU threads (0: all cores)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "data loading goroutines (0: one per core)")
	fs.StringVar(&c.Out, "out", c.Out, "output folder")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "evaluate every N epochs (0: only at the end)")
	fs.IntVar(&c.EvalBatch, "eval-batch", c.EvalBatch, "batch size for embedding during evaluation")
}

// ParseTrainFlags reads args: defaults, then the --config file, then the
// flags given. It returns the config and the --resume folder.
func ParseTrainFlags(args []string, errOut *os.File) (TrainConfig, string, error) {
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
	switch {
	case c.Epochs < 1:
		return bad("epochs", "must be at least 1, got %d", c.Epochs)
	case c.Batch < 2:
		return bad("batch", "must be at least 2 (batch norm), got %d", c.Batch)
	case c.LR <= 0:
		return bad("lr", "must be positive, got %g", c.LR)
	case c.Dim < 1:
		return bad("dim", "must be positive, got %d", c.Dim)
	case c.Threads < 0:
		return bad("threads", "must be 0 (all cores) or more, got %d", c.Threads)
	case c.Sampler == "pk" && (c.PKP < 1 || c.PKK < 1 || c.PKP*c.PKK < 2):
		return bad("pk-p", "P×K must be at least 2, got %d×%d", c.PKP, c.PKK)
	case c.Schedule == "step" && c.StepEvery < 1:
		return bad("step-every", "the step schedule needs a positive interval")
	case c.HeadLR <= 0:
		return bad("head-lr", "must be positive, got %g", c.HeadLR)
	case c.MarginLR < 0:
		return bad("margin-lr", "must be 0 (the head's) or positive, got %g", c.MarginLR)
	case c.EvalBatch < 1:
		return bad("eval-batch", "must be positive, got %d", c.EvalBatch)
	}
	if _, _, err := HeadConfig(*c); err != nil {
		return fmt.Errorf("--loss: %w", err)
	}
	return nil
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
