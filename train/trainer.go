// Package train runs a training of an embedding network with a loss head
// of package dml: its settings (TrainConfig, the flags of tools/train), the
// Trainer that steps, evaluates through the model's one embedding path
// (package model), checkpoints atomically and resumes exactly, and the
// report and plots a finished run writes.
package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
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
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/dml"
	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/internal/progress"
	"github.com/dmlgo/dmlgo/internal/runlock"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/report"
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
	g             *autograd.Graph
	model         *model.Model  // the network for evaluation (see Model)
	lock          *runlock.Lock // of cfg.Out, held from NewTrainer to the end of Run
	closed        bool
	madeOut       bool // NewTrainer created cfg.Out
	resumed       bool
}

// OutputFiles are the files a run writes into its output folder.
var OutputFiles = []string{"last.ckpt", "best.ckpt", "metrics.json", "metrics.jsonl", "loss.png", "topk.png", "report.md"}

// NewTrainer is NewTrainerContext without cancellation.
func NewTrainer(cfg TrainConfig, resume bool, stdout, stderr io.Writer) (*Trainer, error) {
	return NewTrainerContext(context.Background(), cfg, resume, stdout, stderr)
}

// NewTrainerContext builds everything a run needs, from scratch or from
// the last checkpoint in cfg.Out when resume is set. It first locks the
// output folder (see package runlock; the lock is held until Run returns or
// Close is called): a folder another run holds is an error naming that
// process. Holding it, it removes the temporary files that interrupted
// writes of OutputFiles left, and, when resuming, rewrites metrics.jsonl
// to hold the checkpoint's evaluations (a run killed between an evaluation
// and its checkpoint left a line too many, or one too few). Loading the
// data stops with ctx's error when ctx is cancelled.
func NewTrainerContext(ctx context.Context, cfg TrainConfig, resume bool, stdout, stderr io.Writer) (_ *Trainer, err error) {
	t := &Trainer{Cfg: cfg, Stdout: stdout, Stderr: stderr, resumed: resume}
	if err := t.takeFolder(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.abandon()
		}
	}()
	var ckptFile string
	if resume {
		ckptFile = filepath.Join(cfg.Out, "last.ckpt")
		var st RunState
		if _, err := model.ReadState(ckptFile, &st); err != nil {
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
	b, why, err := backend.SelectWith(cfg.Device, backend.Options{Threads: cfg.Threads})
	if err != nil {
		return nil, fmt.Errorf("--device: %w", err)
	}
	t.B = b
	if cfg.Threads > 0 {
		runtime.GOMAXPROCS(cfg.Threads)
	}
	fmt.Fprintf(stderr, "%s\n", why)
	ds, trainT, evalT, err := OpenDataset(ctx, cfg, stderr)
	if err != nil {
		return nil, err
	}
	t.DS, t.TrainT, t.EvalT = ds, trainT, evalT
	cfgM := model.NetConfig{Arch: cfg.Model, Dim: cfg.Dim, InChannels: trainT.Channels, Pretrained: cfg.Pretrained}
	if resume {
		cfgM.Pretrained = ""
	}
	if t.Net, err = model.NewNet(b, cfgM, cfg.Seed); err != nil {
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
		f, err := model.ReadState(ckptFile, &RunState{})
		if err != nil {
			return nil, err
		}
		if err := model.LoadCheckpoint(ckptFile, f, b, t.parts()); err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		fmt.Fprintf(stderr, "resuming %s at epoch %d, step %d (%s)\n", ckptFile, t.State.Epoch, t.State.Step, t.State.Loader)
		if err := t.rewriteLog(); err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
	} else {
		t.State = RunState{Config: cfg, Loader: data.SamplerState{Seed: cfg.Seed}, Best: -1}
		// A fresh run in a used folder starts a new metrics log.
		if err := os.Remove(filepath.Join(cfg.Out, "metrics.jsonl")); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("--out: %w", err)
		}
	}
	return t, nil
}

// takeFolder creates the output folder (a fresh run), locks it and removes
// stale temporary files.
func (t *Trainer) takeFolder() error {
	dir, flag := t.Cfg.Out, "--out"
	if t.resumed {
		flag = "--resume"
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	} else {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			t.madeOut = true
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	l, err := runlock.Acquire(dir)
	if err != nil {
		t.abandon()
		return fmt.Errorf("%s: %w", flag, err)
	}
	t.lock = l
	if l.Stale != nil {
		fmt.Fprintf(t.Stderr, "note: %s was locked by %s, which did not end cleanly (killed?); taking it over\n", dir, l.Stale)
	}
	removed, err := atomicfile.RemoveStale(dir, OutputFiles...)
	if len(removed) > 0 {
		what := "files"
		if len(removed) == 1 {
			what = "file"
		}
		fmt.Fprintf(t.Stderr, "removed %d temporary %s of interrupted writes: %s\n", len(removed), what, strings.Join(removed, ", "))
	}
	if err != nil {
		t.abandon()
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}

// abandon undoes takeFolder after a failed start: it releases the lock and
// removes the output folder if NewTrainer made it and it is still empty.
func (t *Trainer) abandon() {
	t.Close()
	if t.madeOut {
		os.Remove(t.Cfg.Out) // only if empty
	}
}

// Close releases the output folder's lock. Run calls it when it returns; a
// Trainer that is not run should be closed. A closed Trainer cannot run.
func (t *Trainer) Close() error {
	t.closed = true
	if t.lock == nil {
		return nil
	}
	err := t.lock.Release()
	t.lock = nil
	return err
}

func (t *Trainer) parts() model.Parts {
	return model.Parts{Model: t.Net, Card: t.Card(), Head: t.Head.Params(), Opt: t.Opt}
}

// Card describes the network the run trains.
func (t *Trainer) Card() model.Card {
	return model.Card{Arch: t.Cfg.Model, Dim: t.Cfg.Dim, InChannels: t.TrainT.Channels, Data: t.Cfg.Data, Loss: t.Cfg.Loss}
}

// TotalSteps is the run's optimizer steps.
func (t *Trainer) TotalSteps() int { return t.Cfg.Epochs * t.stepsPerEpoch }

// ErrInterrupted reports a run stopped by a signal after saving.
var ErrInterrupted = errors.New("interrupted: checkpoint saved; continue with --resume")

// Run trains until the last epoch, evaluating as configured, then writes
// the run's files. When ctx is cancelled (a signal), training or an
// evaluation stops at its next step or batch, a checkpoint is saved and Run
// returns ErrInterrupted; an evaluation so cut short is done first when the
// run is resumed. Run releases the output folder's lock when it returns.
func (t *Trainer) Run(ctx context.Context) (err error) {
	if t.closed {
		return errors.New("app: Run of a closed Trainer")
	}
	defer func() {
		if cerr := t.Close(); err == nil {
			err = cerr
		}
	}()
	cfg := t.Cfg
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(t.Stderr, "model %s (%d parameters), head %s over %d classes, %d steps of %d epochs\n",
		cfg.Model, nn.NumParams(t.Net), t.Head.Describe(), t.DS.Train.NumClasses, t.TotalSteps(), cfg.Epochs)
	if t.evalPending() {
		fmt.Fprintf(t.Stderr, "epoch %d was not evaluated (interrupted): evaluating it first\n", t.State.Epoch)
		if err := t.evaluate(ctx); err != nil {
			return t.stopped(ctx, err)
		}
	} else if t.State.Epoch >= cfg.Epochs {
		fmt.Fprintf(t.Stderr, "the run is already complete (%d epochs)\n", t.State.Epoch)
	}
	if t.State.Epoch >= cfg.Epochs {
		return t.finish(ctx)
	}
	ld, err := data.NewLoader(t.DS.Train, t.sampler, t.TrainT, t.State.Loader, data.LoaderOptions{Workers: cfg.Workers, Epochs: cfg.Epochs})
	if err != nil {
		return err
	}
	defer ld.Close()
	start := time.Now()
	elapsed0 := t.State.Elapsed
	total := t.TotalSteps()
	t.State.Losses = slices.Grow(t.State.Losses, total-len(t.State.Losses))
	var bar *progress.Bar
	epochImages, epochStart := 0, time.Now()
	for t.State.Epoch < cfg.Epochs {
		if bar == nil {
			bar = progress.New(t.Stderr, fmt.Sprintf("epoch %d/%d", t.State.Epoch+1, cfg.Epochs), t.stepsPerEpoch, t.TTY)
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
		lv, lr, err := t.Step(bt)
		if err != nil {
			return err
		}
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
			if t.evalDue() {
				// evaluate saves the checkpoint.
				if err := t.evaluate(ctx); err != nil {
					return t.stopped(ctx, err)
				}
			} else if err := t.save("last.ckpt"); err != nil {
				return err
			}
		}
	}
	if w := ld.Warnings(); w != nil && w.Total() > 0 {
		fmt.Fprintf(t.Stderr, "data warnings: %s\n", w)
	}
	return t.finish(ctx)
}

// Step runs one optimizer step on a batch: forward, loss, backward and the
// optimizer's update at the schedule's learning rate, and counts it
// (State.Step). It returns the loss and the learning rate. A non-finite
// loss stops the run (t.diverged) before the update. Once warm it
// allocates nothing.
func (t *Trainer) Step(bt *data.Batch) (float64, float32, error) {
	if t.g == nil {
		t.g = autograd.New(t.B)
	}
	g := t.g
	lr := float32(t.Cfg.LR * t.Sched.Factor(t.State.Step, t.TotalSteps()))
	t.PS.ZeroGrad()
	t.Head.SetStep(t.State.Step)
	emb := t.Net.Forward(g, g.Constant(bt.Images, bt.Shape[:]...))
	loss, err := t.Head.Forward(g, emb, bt.Labels)
	if err != nil {
		g.Reset()
		return 0, lr, t.diverged(err)
	}
	// The loss is read from the device once a step: the head's check
	// has usually read it already.
	v, read := t.Head.LastLoss()
	if !read {
		v = g.Item(loss)
	}
	lv := float64(v)
	if math.IsNaN(lv) || math.IsInf(lv, 0) {
		g.Reset()
		return lv, lr, t.diverged(fmt.Errorf("the loss is %v", lv))
	}
	g.Backward(loss)
	t.Opt.Step(lr)
	g.Reset()
	t.State.Step++
	return lv, lr, nil
}

// evalDue reports whether the epoch just completed (State.Epoch) is one to
// evaluate: the last, or every EvalEvery.
func (t *Trainer) evalDue() bool {
	e := t.State.Epoch
	return e > 0 && (e == t.Cfg.Epochs || (t.Cfg.EvalEvery > 0 && e%t.Cfg.EvalEvery == 0))
}

// evalPending reports whether the completed epoch's evaluation is due but
// missing: a signal stopped it.
func (t *Trainer) evalPending() bool {
	ev := t.State.Evals
	return t.evalDue() && (len(ev) == 0 || ev[len(ev)-1].Epoch != t.State.Epoch)
}

// stopped turns an error of a phase stopped by ctx into ErrInterrupted,
// after saving the checkpoint; other errors pass unchanged.
func (t *Trainer) stopped(ctx context.Context, err error) error {
	if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return err
	}
	if err := t.save("last.ckpt"); err != nil {
		return err
	}
	return ErrInterrupted
}

// diverged stops the run at a non-finite loss, keeping the last good checkpoint.
func (t *Trainer) diverged(err error) error {
	if !t.resumed && t.State.Epoch == 0 {
		return fmt.Errorf("training diverged at step %d (epoch %d): %v; no checkpoint was saved yet. Try a lower --lr (now %g) or a smaller --s, and start again",
			t.State.Step, t.State.Epoch+1, err, t.Cfg.LR)
	}
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

// evaluate runs the protocol (stopping with ctx's error when ctx is
// cancelled) and records the result: best.ckpt when it is the best so far,
// then last.ckpt, then a line of metrics.jsonl. The log is written last so
// that it never holds an evaluation the checkpoint lacks; a crash before
// the line is written is mended on resume (rewriteLog).
func (t *Trainer) evaluate(ctx context.Context) error {
	t0 := time.Now()
	fmt.Fprintf(t.Stderr, "evaluating: %d queries against %d gallery images\n", t.DS.Query.Len(), t.DS.Gallery.Len())
	m, err := t.Model().Evaluate(ctx, t.DS, model.EmbedOptions{})
	if err != nil {
		return err
	}
	rec := EvalRecord{Epoch: t.State.Epoch, Step: t.State.Step, Metrics: m.Flat(), Seconds: time.Since(t0).Seconds()}
	t.State.Evals = append(t.State.Evals, rec)
	fmt.Fprintf(t.Stderr, "epoch %d: top1 %.4f top20 %.4f mAP %.4f (%.1fs)\n", t.State.Epoch, m.TopK[1], m.TopK[20], m.MAP, rec.Seconds)
	if m.TopK[20] > t.State.Best {
		t.State.Best = m.TopK[20]
		if err := t.save("best.ckpt"); err != nil {
			return err
		}
	}
	if err := t.save("last.ckpt"); err != nil {
		return err
	}
	line, _ := json.Marshal(rec)
	f, err := os.OpenFile(filepath.Join(t.Cfg.Out, "metrics.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rewriteLog makes metrics.jsonl hold the evaluations of the state, one
// line each, atomically: after a crash the log may hold lines of
// evaluations the checkpoint does not have (or half a line), or lack the
// checkpoint's last one.
func (t *Trainer) rewriteLog() error {
	path := filepath.Join(t.Cfg.Out, "metrics.jsonl")
	if len(t.State.Evals) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		for _, rec := range t.State.Evals {
			line, _ := json.Marshal(rec)
			if _, err := w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
}

func (t *Trainer) save(name string) error {
	path := filepath.Join(t.Cfg.Out, name)
	if err := model.SaveCheckpoint(path, t.B, t.parts(), t.State); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// finish writes metrics.json, the plots and report.md, and prints the table.
func (t *Trainer) finish(ctx context.Context) error {
	if len(t.State.Evals) == 0 {
		if err := t.evaluate(ctx); err != nil {
			return t.stopped(ctx, err)
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
	fmt.Fprintln(t.Stdout, report.MetricsTable(final.Metrics))
	fmt.Fprintf(t.Stdout, "\nreport: %s\nplots:  %s, %s\nmodel:  %s (best: %s)\n",
		filepath.Join(t.Cfg.Out, "report.md"), filepath.Join(t.Cfg.Out, "loss.png"), filepath.Join(t.Cfg.Out, "topk.png"),
		filepath.Join(t.Cfg.Out, "last.ckpt"), filepath.Join(t.Cfg.Out, "best.ckpt"))
	return nil
}

// Model is the network being trained as a model.Model: the embedding path
// every retrieval command takes, in batches of EvalBatch on Workers
// decoding goroutines. It is made once and shares the network's weights.
func (t *Trainer) Model() *model.Model {
	if t.model == nil {
		m, err := model.Wrap(t.B, t.Net, t.Card(), model.Options{Batch: t.Cfg.EvalBatch, Workers: t.Cfg.Workers})
		if err != nil {
			panic("train: " + err.Error()) // the card's data kind was opened already
		}
		t.model = m
	}
	return t.model
}

// seedOf mixes a run seed with a purpose tag.
func seedOf(seed uint64, tag string) uint64 {
	h := sha256.Sum256([]byte(tag))
	return seed ^ binary.LittleEndian.Uint64(h[:8])
}
