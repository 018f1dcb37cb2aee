package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/dml"
	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/retrieval"
)

// RunState is the trainer's part of a checkpoint: where the run stands.
type RunState struct {
	Config  TrainConfig       `json:"config"`
	Epoch   int               `json:"epoch"` // epochs completed
	Step    int               `json:"step"`  // optimizer steps done
	Loader  data.SamplerState `json:"loader"`
	Losses  []float64         `json:"losses"` // every step's loss so far
	Best    float64           `json:"best_top20"`
	Evals   []EvalRecord      `json:"evals"`
	Elapsed float64           `json:"elapsed_s"`
}

// EvalRecord is one line of metrics.jsonl.
type EvalRecord struct {
	Epoch   int                `json:"epoch"`
	Step    int                `json:"step"`
	Metrics map[string]float64 `json:"metrics"`
	Seconds float64            `json:"eval_seconds"`
}

// Trainer holds a run's parts.
type Trainer struct {
	Cfg    TrainConfig
	B      backend.Backend
	DS     *data.Dataset
	TrainT data.Transform
	EvalT  data.Transform
	Net    *nn.ResNet
	Head   dml.Head
	PS     *nn.ParamSet
	Opt    nn.Optimizer
	Sched  nn.Schedule
	State  RunState
	Stdout io.Writer
	Stderr io.Writer
	TTY    bool
	// OnStep, when set, is called after every optimizer step (tests use it
	// to interrupt a run at a chosen step).
	OnStep func(step int)

	sampler       data.Sampler
	stepsPerEpoch int
}

// NewTrainer builds everything a run needs, from scratch or from the last
// checkpoint in cfg.Out when resume is set.
func NewTrainer(cfg TrainConfig, resume bool, stdout, stderr io.Writer) (*Trainer, error) {
	t := &Trainer{Cfg: cfg, Stdout: stdout, Stderr: stderr}
	var ckptFile string
	if resume {
		ckptFile = filepath.Join(cfg.Out, "last.ckpt")
		var st RunState
		if _, err := ReadState(ckptFile, &st); err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		// The run continues with its own settings; a different device or
		// thread count is fine.
		dev, th, wk := cfg.Device, cfg.Threads, cfg.Workers
		t.Cfg = st.Config
		t.Cfg.Device, t.Cfg.Threads, t.Cfg.Workers, t.Cfg.Out = dev, th, wk, cfg.Out
		t.State = st
	}
	cfg = t.Cfg
	b, why, err := backend.Select(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("--device: %w", err)
	}
	t.B = b
	if cfg.Threads > 0 {
		desc := b.Describe()
		runtime.GOMAXPROCS(cfg.Threads)
		if c, ok := b.(*cpu.Backend); ok {
			c.SetThreads(cfg.Threads)
		}
		// The line names the thread count in use.
		why = strings.TrimSuffix(why, desc) + b.Describe()
	}
	fmt.Fprintf(stderr, "%s\n", why)
	ds, trainT, evalT, err := OpenDataset(cfg, stderr)
	if err != nil {
		return nil, err
	}
	t.DS, t.TrainT, t.EvalT = ds, trainT, evalT
	cfgM := ModelConfig{Arch: cfg.Model, Dim: cfg.Dim, InChannels: trainT.Channels, Pretrained: cfg.Pretrained}
	if resume {
		cfgM.Pretrained = ""
	}
	if t.Net, err = NewModel(b, cfgM, cfg.Seed); err != nil {
		return nil, err
	}
	hname, hc, err := HeadConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--loss: %w", err)
	}
	if t.Head, err = dml.New(b, hname, hc, cfg.Dim, ds.Train.NumClasses, seedOf(cfg.Seed, "head")); err != nil {
		return nil, fmt.Errorf("--loss: %w", err)
	}
	groups := []nn.GroupSpec{{Name: "backbone", Params: nn.Params(t.Net)}}
	for _, hg := range t.Head.Groups() {
		if hg.Name == "head" {
			hg.LRScale = float32(cfg.HeadLR)
		}
		groups = append(groups, hg)
	}
	t.PS = nn.NewParamSet(b, groups...)
	switch cfg.Optimizer {
	case "sgd":
		t.Opt = nn.NewSGD(t.PS, float32(cfg.Momentum), float32(cfg.WeightDecay), cfg.Nesterov)
	case "adamw":
		t.Opt = nn.NewAdamW(t.PS, 0, 0, 0, float32(cfg.WeightDecay))
	}
	switch cfg.Sampler {
	case "shuffle":
		t.sampler = data.ShuffleSampler{N: ds.Train.Len(), BatchSize: cfg.Batch, DropLast: ds.Train.Len() > cfg.Batch}
	case "pk":
		pk, err := data.NewPKSampler(ds.Train, cfg.PKP, cfg.PKK)
		if err != nil {
			return nil, fmt.Errorf("--sampler pk: %w", err)
		}
		t.sampler = pk
	}
	t.stepsPerEpoch = len(t.sampler.Plan(cfg.Seed, 0))
	if t.stepsPerEpoch == 0 {
		return nil, fmt.Errorf("the training set (%d images) gives no batch of %d", ds.Train.Len(), cfg.Batch)
	}
	switch cfg.Schedule {
	case "onecycle":
		t.Sched = nn.OneCycle{}
	case "cosine":
		t.Sched = nn.Warmup{Steps: cfg.Warmup, Then: nn.Cosine{}}
	case "step":
		t.Sched = nn.Warmup{Steps: cfg.Warmup, Then: nn.StepDecay{Every: cfg.StepEvery, Gamma: cfg.StepGamma}}
	case "constant":
		t.Sched = nn.Warmup{Steps: cfg.Warmup, Then: nn.Constant{}}
	}
	if resume {
		f, err := ReadState(ckptFile, &RunState{})
		if err != nil {
			return nil, err
		}
		if err := LoadCheckpoint(ckptFile, f, b, t.parts()); err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		fmt.Fprintf(stderr, "resuming %s at epoch %d, step %d (%s)\n", ckptFile, t.State.Epoch, t.State.Step, t.State.Loader)
	} else {
		t.State = RunState{Config: cfg, Loader: data.SamplerState{Seed: cfg.Seed}, Best: -1}
		// A fresh run in a used folder starts a new metrics log.
		if err := os.Remove(filepath.Join(cfg.Out, "metrics.jsonl")); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("--out: %w", err)
		}
	}
	return t, nil
}

func (t *Trainer) parts() Parts {
	return Parts{Model: t.Net, Head: t.Head.Params(), Opt: t.Opt}
}

// TotalSteps is the run's optimizer steps.
func (t *Trainer) TotalSteps() int { return t.Cfg.Epochs * t.stepsPerEpoch }

// ErrInterrupted reports a run stopped by a signal after saving.
var ErrInterrupted = errors.New("interrupted: checkpoint saved; continue with --resume")

// Run trains until the last epoch (or until ctx is cancelled, which saves a
// checkpoint and returns ErrInterrupted), evaluating as configured.
func (t *Trainer) Run(ctx context.Context) error {
	cfg := t.Cfg
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(t.Stderr, "model %s (%d parameters), head %s over %d classes, %d steps of %d epochs\n",
		cfg.Model, nn.NumParams(t.Net), t.Head.Describe(), t.DS.Train.NumClasses, t.TotalSteps(), cfg.Epochs)
	if t.State.Epoch >= cfg.Epochs {
		fmt.Fprintf(t.Stderr, "the run is already complete (%d epochs)\n", t.State.Epoch)
		return t.finish()
	}
	ld, err := data.NewLoader(t.DS.Train, t.sampler, t.TrainT, t.State.Loader, data.LoaderOptions{Workers: cfg.Workers, Epochs: cfg.Epochs})
	if err != nil {
		return err
	}
	defer ld.Close()
	g := autograd.New(t.B)
	start := time.Now()
	elapsed0 := t.State.Elapsed
	total := t.TotalSteps()
	t.State.Losses = slices.Grow(t.State.Losses, total-len(t.State.Losses))
	var bar *Progress
	epochImages, epochStart := 0, time.Now()
	for t.State.Epoch < cfg.Epochs {
		if bar == nil {
			bar = NewProgress(t.Stderr, fmt.Sprintf("epoch %d/%d", t.State.Epoch+1, cfg.Epochs), t.stepsPerEpoch, t.TTY)
			epochImages, epochStart = 0, time.Now()
		}
		select {
		case <-ctx.Done():
			bar.Finish("interrupted")
			t.State.Elapsed = elapsed0 + time.Since(start).Seconds()
			if err := t.save("last.ckpt"); err != nil {
				return err
			}
			return ErrInterrupted
		default:
		}
		bt, err := ld.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		lr := float32(cfg.LR * t.Sched.Factor(t.State.Step, total))
		t.PS.ZeroGrad()
		t.Head.SetStep(t.State.Step)
		emb := t.Net.Forward(g, g.Constant(bt.Images, bt.Shape[:]...))
		loss, err := t.Head.Forward(g, emb, bt.Labels)
		if err != nil {
			g.Reset()
			return t.diverged(err)
		}
		lv := float64(g.Item(loss))
		if math.IsNaN(lv) || math.IsInf(lv, 0) {
			g.Reset()
			return t.diverged(fmt.Errorf("the loss is %v", lv))
		}
		g.Backward(loss)
		t.Opt.Step(lr)
		g.Reset()
		t.State.Step++
		t.State.Losses = append(t.State.Losses, lv)
		t.State.Loader = ld.State()
		if t.OnStep != nil {
			t.OnStep(t.State.Step)
		}
		epochImages += len(bt.Labels)
		ips := float64(epochImages) / time.Since(epochStart).Seconds()
		if bar.Due(bt.Batch + 1) { // (the status text would allocate every step)
			bar.Update(bt.Batch+1, fmt.Sprintf("loss %.4f lr %.3g %.0f img/s", lv, lr, ips))
		}
		if bt.Batch+1 == t.stepsPerEpoch {
			bar.Finish(fmt.Sprintf("loss %.4f %.0f img/s%s", mean(t.State.Losses[len(t.State.Losses)-t.stepsPerEpoch:]), ips, marginText(t.Head)))
			bar = nil
			t.State.Epoch++
			t.State.Elapsed = elapsed0 + time.Since(start).Seconds()
			last := t.State.Epoch == cfg.Epochs
			if last || (cfg.EvalEvery > 0 && t.State.Epoch%cfg.EvalEvery == 0) {
				if err := t.evaluate(); err != nil {
					return err
				}
			}
			if err := t.save("last.ckpt"); err != nil {
				return err
			}
		}
	}
	if w := ld.Warnings(); w != nil && w.Total() > 0 {
		fmt.Fprintf(t.Stderr, "data warnings: %s\n", w)
	}
	return t.finish()
}

// diverged stops the run at a non-finite loss, keeping the last good checkpoint.
func (t *Trainer) diverged(err error) error {
	return fmt.Errorf("training diverged at step %d (epoch %d): %v; the last good checkpoint is %s. Try a lower --lr (now %g) or a smaller --s, then --resume or start again",
		t.State.Step, t.State.Epoch+1, err, filepath.Join(t.Cfg.Out, "last.ckpt"), t.Cfg.LR)
}

// marginText formats the head's current margins for the epoch line.
func marginText(h dml.Head) string {
	var s string
	for _, st := range h.Margins() {
		s += fmt.Sprintf(" %s %.3f", st.Name, st.Value)
	}
	return s
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(max(len(x), 1))
}

// evaluate runs the protocol, appends to metrics.jsonl and keeps the best checkpoint.
func (t *Trainer) evaluate() error {
	t0 := time.Now()
	fmt.Fprintf(t.Stderr, "evaluating: %d queries against %d gallery images\n", t.DS.Query.Len(), t.DS.Gallery.Len())
	m, err := Evaluate(t.B, t.Net, t.DS, t.EvalT, t.Cfg.EvalBatch, t.Cfg.Workers)
	if err != nil {
		return err
	}
	rec := EvalRecord{Epoch: t.State.Epoch, Step: t.State.Step, Metrics: m.Flat(), Seconds: time.Since(t0).Seconds()}
	t.State.Evals = append(t.State.Evals, rec)
	line, _ := json.Marshal(rec)
	f, err := os.OpenFile(filepath.Join(t.Cfg.Out, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(t.Stderr, "epoch %d: top1 %.4f top20 %.4f mAP %.4f (%.1fs)\n", t.State.Epoch, m.TopK[1], m.TopK[20], m.MAP, rec.Seconds)
	if m.TopK[20] > t.State.Best {
		t.State.Best = m.TopK[20]
		return t.save("best.ckpt")
	}
	return nil
}

func (t *Trainer) save(name string) error {
	path := filepath.Join(t.Cfg.Out, name)
	if err := SaveCheckpoint(path, t.B, t.parts(), t.State); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// finish writes metrics.json, the plots and report.md, and prints the table.
func (t *Trainer) finish() error {
	if len(t.State.Evals) == 0 {
		if err := t.evaluate(); err != nil {
			return err
		}
	}
	final := t.State.Evals[len(t.State.Evals)-1]
	out := map[string]float64{}
	for _, k := range []string{"top1", "top5", "top10", "top20", "top30", "top40", "top50", "map"} {
		out[k] = final.Metrics[k]
	}
	raw, _ := json.MarshalIndent(out, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(t.Cfg.Out, "metrics.json"), append(raw, '\n')); err != nil {
		return err
	}
	if err := WritePlots(t.Cfg.Out, t.State, t.Head.Name()+", "+t.Cfg.Model); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if err := WriteReport(t.Cfg.Out, t); err != nil {
		return err
	}
	fmt.Fprintln(t.Stdout, MetricsTable(final.Metrics))
	fmt.Fprintf(t.Stdout, "\nreport: %s\nplots:  %s, %s\nmodel:  %s (best: %s)\n",
		filepath.Join(t.Cfg.Out, "report.md"), filepath.Join(t.Cfg.Out, "loss.png"), filepath.Join(t.Cfg.Out, "topk.png"),
		filepath.Join(t.Cfg.Out, "last.ckpt"), filepath.Join(t.Cfg.Out, "best.ckpt"))
	return nil
}

// MetricsTable formats top-k accuracies and mAP as a markdown table.
func MetricsTable(m map[string]float64) string {
	s := "| metric |"
	sep := "|---|"
	row := "| value |"
	for _, k := range retrieval.Ks {
		s += fmt.Sprintf(" top-%d |", k)
		sep += "---|"
		row += fmt.Sprintf(" %.4f |", m[fmt.Sprintf("top%d", k)])
	}
	s += " mAP |"
	sep += "---|"
	row += fmt.Sprintf(" %.4f |", m["map"])
	return s + "\n" + sep + "\n" + row
}
