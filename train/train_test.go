package train

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
	"testing"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/model"
)

// tinyConfig trains resnet-s on a tiny FMNIST-C2S built from the synthetic
// archive that the data package's tests use.
func tinyConfig(t *testing.T, out string) TrainConfig {
	c := DefaultTrainConfig()
	c.Data = sets.DefaultSpec()
	c.Data.Path = filepath.Join("..", "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz")
	c.Data.TrainItems, c.Data.TestItems = 24, 10
	c.Epochs, c.Batch, c.EvalEvery = 2, 16, 1
	c.Loss = "dml/class"
	c.Out = out
	c.Threads = 2
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func newTrainer(t *testing.T, c TrainConfig, resume bool) *Trainer {
	t.Helper()
	tr, err := NewTrainer(c, resume, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestTrainResumeExactly: a run interrupted mid-epoch and resumed gives the
// same losses, step for step, as an uninterrupted run; it writes every
// output file.
func TestTrainResumeExactly(t *testing.T) {
	dir := t.TempDir()
	full := newTrainer(t, tinyConfig(t, filepath.Join(dir, "full")), false)
	if err := full.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := full.State.Losses
	if len(want) != full.TotalSteps() || len(want) < 4 {
		t.Fatalf("%d losses for %d steps", len(want), full.TotalSteps())
	}
	for _, f := range []string{"last.ckpt", "best.ckpt", "metrics.json", "metrics.jsonl", "loss.png", "topk.png", "report.md"} {
		if _, err := os.Stat(filepath.Join(dir, "full", f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "full", "metrics.json"))
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 8 {
		t.Errorf("metrics.json: %v %v", m, err)
	}

	cut := len(want)/2 + 1 // inside the second epoch
	ctx, cancel := context.WithCancel(context.Background())
	part := newTrainer(t, tinyConfig(t, filepath.Join(dir, "part")), false)
	part.OnStep = func(step int) {
		if step == cut {
			cancel()
		}
	}
	if err := part.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run returned %v", err)
	}
	c := tinyConfig(t, filepath.Join(dir, "part"))
	c.Threads = 1 // a different thread count must not change the result
	res := newTrainer(t, c, true)
	if res.State.Step != cut {
		t.Fatalf("resumed at step %d, want %d", res.State.Step, cut)
	}
	if err := res.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := res.State.Losses
	if len(got) != len(want) {
		t.Fatalf("%d losses after resuming, want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > 1e-4*math.Max(1, math.Abs(want[i])) {
			t.Errorf("step %d: loss %.6f after resuming, %.6f uninterrupted", i, got[i], want[i])
		}
	}
}

func TestTrainFlagErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "not defined: -nope"},
		{[]string{"-loss", "circleloss"}, "unknown head"},
		{[]string{"-loss", "arcface:q=1"}, `unknown option "q"`},
		{[]string{"-optimizer", "lbfgs"}, "--optimizer"},
		{[]string{"-epochs", "0"}, "--epochs"},
		{[]string{"-data", "deepfashion-c2s"}, "--data-path"},
		{[]string{"-data", "imagenet"}, "unknown data set"},
		{[]string{"-config", "/does/not/exist.json"}, "--config"},
		{[]string{"extra"}, "unexpected argument"},
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	for _, c := range cases {
		_, _, err := ParseTrainFlags(c.args, devnull)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
	// A config file, overridden by a flag.
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"epochs": 7, "lr": 0.05, "loss": "cosface"}`), 0o644)
	c, _, err := ParseTrainFlags([]string{"-config", p, "-lr", "0.2"}, devnull)
	if err != nil || c.Epochs != 7 || c.LR != 0.2 || c.Loss != "cosface" {
		t.Errorf("config + flag: %+v %v", c, err)
	}
	os.WriteFile(p, []byte(`{"epoch": 7}`), 0o644)
	if _, _, err := ParseTrainFlags([]string{"-config", p}, devnull); err == nil || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("unknown config key: %v", err)
	}
}

func TestResumeErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewTrainer(tinyConfig(t, dir), true, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "last.ckpt") {
		t.Errorf("resume without a checkpoint: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "last.ckpt"), []byte("garbage"), 0o644)
	if _, err := NewTrainer(tinyConfig(t, dir), true, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "last.ckpt") {
		t.Errorf("resume from garbage: %v", err)
	}
}

// TestDivergenceStopsWithAdvice: a run whose loss becomes NaN or Inf stops
// naming the step and suggesting a lower learning rate, and keeps the last
// good checkpoint (none is written for the diverged step).
func TestDivergenceStopsWithAdvice(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, dir)
	c.Loss, c.LR, c.Schedule, c.Epochs = "softmax", 1e6, "constant", 3
	tr := newTrainer(t, c, false)
	err := tr.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "diverged at step") || !strings.Contains(err.Error(), "--lr") {
		t.Fatalf("error %v, want the divergence message", err)
	}
	st := tr.State
	if _, statErr := os.Stat(filepath.Join(dir, "last.ckpt")); st.Epoch > 0 && statErr != nil {
		t.Errorf("the last good checkpoint (epoch %d) is missing: %v", st.Epoch, statErr)
	}
	var saved RunState
	if _, rerr := model.ReadState(filepath.Join(dir, "last.ckpt"), &saved); rerr == nil {
		for _, l := range saved.Losses {
			if math.IsNaN(l) || math.IsInf(l, 0) {
				t.Fatalf("the checkpoint holds a non-finite loss: %v", saved.Losses)
			}
		}
	}
}

// TestTrainerStepAllocatesNothing: once warm, an optimizer step of the
// trainer (model, loss head, optimizer, on two threads) on a batch already
// loaded allocates nothing on the Go heap: the fewest allocations over
// several rounds of steps is zero.
func TestTrainerStepAllocatesNothing(t *testing.T) {
	c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	c.Epochs = 100 // the schedule's horizon: every step below is inside it
	tr := newTrainer(t, c, false)
	ld, err := data.NewLoader(tr.DS.Train, tr.sampler, tr.TrainT, tr.State.Loader, data.LoaderOptions{Workers: 1, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	bt, err := ld.Next()
	if err != nil {
		t.Fatal(err)
	}
	batch := data.Batch{Images: slices.Clone(bt.Images), Shape: bt.Shape, Labels: slices.Clone(bt.Labels)}
	ld.Close() // no loader goroutine runs while measuring
	var stepErr error
	step := func() {
		if _, _, err := tr.Step(&batch); err != nil && stepErr == nil {
			stepErr = err
		}
	}
	for range 3 {
		step()
	}
	const steps = 4
	n := allocs.Mallocs(5, func() {
		for range steps {
			step()
		}
	})
	if stepErr != nil {
		t.Fatal(stepErr)
	}
	if n > 0 {
		t.Errorf("%d warm training steps made %d heap allocations in every round, want none", steps, n)
	}
}

// TestTrainStepsAllocateOnlyToDraw: once warm, a training step of the
// train command's loop (data loader, model, loss head, optimizer,
// bookkeeping) allocates nothing; only the steps that draw the progress
// line do (a tenth of an epoch apart, the output not being a terminal).
// The loader's goroutines and the runtime may allocate now and then at any
// step, so a run passes with at most 2 stray steps, and the measure is the
// fewest strays over up to three runs: a step that allocates every time
// fails all of them.
func TestTrainStepsAllocateOnlyToDraw(t *testing.T) {
	const first, last, runs = 15, 60, 3
	best := -1
	var report string
	for run := range runs {
		c := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
		c.Data.TrainItems, c.Batch, c.Epochs, c.EvalEvery = 180, 8, 1, 0
		tr := newTrainer(t, c, false)
		var ms runtime.MemStats
		mallocs := make([]uint64, last+1)
		tr.OnStep = func(step int) {
			if step >= first && step <= last {
				runtime.ReadMemStats(&ms)
				mallocs[step] = ms.Mallocs
			}
		}
		if err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		total := tr.stepsPerEpoch
		if total <= last {
			t.Fatalf("%d steps per epoch: the test needs more than %d", total, last)
		}
		// Step s's bookkeeping (its progress line included) runs after
		// OnStep(s), so what it allocates shows up at s+1.
		var strays []int
		draws := 0
		for s := first + 1; s <= last; s++ {
			drew := (s-1)*10/total > (s-2)*10/total
			if drew {
				draws++
			}
			if mallocs[s] > mallocs[s-1] && !drew {
				strays = append(strays, s)
			}
		}
		if draws == 0 {
			t.Fatalf("no step drew the progress line")
		}
		if best < 0 || len(strays) < best {
			best = len(strays)
			report = fmt.Sprintf("run %d: %d of %d warm steps that draw nothing allocated (steps %v)", run+1, len(strays), last-first-draws, strays)
		}
		if best <= 2 {
			return
		}
		t.Logf("%s: measuring again", report)
	}
	t.Errorf("%s; want none (at most 2 strays) in one of %d runs", report, runs)
}
