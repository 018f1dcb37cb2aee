package train

// Tests of the trainer's robustness: the output folder's lock, the metrics
// log after a crash, stale temporary files, cancellation of every long
// phase, non-finite checkpoints and the ranges of the settings.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/internal/runlock"
	"github.com/dmlgo/dmlgo/model"
)

// TestOutputFolderLocked: while a trainer holds its output folder, a
// second trainer on it (fresh or -resume) fails at once, naming the folder
// and the holder's PID; once the first is closed (or its Run returns), the
// folder is free again and no lock file is left behind.
func TestOutputFolderLocked(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, dir)
	c.Epochs = 1
	first, err := NewTrainer(c, false, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for _, resume := range []bool{false, true} {
		_, err := NewTrainer(c, resume, io.Discard, io.Discard)
		var be *runlock.BusyError
		if !errors.As(err, &be) {
			t.Fatalf("resume=%v: a second trainer on a held folder: %v", resume, err)
		}
		for _, want := range []string{dir, "process " + strconv.Itoa(os.Getpid())} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("resume=%v: message %q lacks %q", resume, err, want)
			}
		}
	}
	first.Close()
	second := newTrainer(t, c, false)
	if err := second.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, runlock.FileName)); !os.IsNotExist(err) {
		t.Errorf("lock file after Run: %v", err)
	}
	third := newTrainer(t, c, true) // Run released the folder
	third.Close()
}

// TestStaleLockReported: a lock file left by a killed run (unlocked, its
// holder gone) is taken over, with a note naming the dead process.
func TestStaleLockReported(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, runlock.FileName), []byte("pid 999999\nstarted 2020-01-02T03:04:05Z\nhost h\ncommand train -out x\n"), 0o644)
	var log bytes.Buffer
	tr, err := NewTrainer(tinyConfig(t, dir), false, io.Discard, &log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if !strings.Contains(log.String(), "process 999999") || !strings.Contains(log.String(), "did not end cleanly") {
		t.Errorf("no note about the stale lock in:\n%s", log.String())
	}
}

// TestStaleTempFilesRemoved: temporary files of interrupted atomic writes
// of the run's own files are removed when a trainer takes the folder, and
// only then: nothing is removed while another trainer holds it, and other
// files stay.
func TestStaleTempFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, dir)
	stale := []string{".last.ckpt.tmp-123456", ".best.ckpt.tmp-1", ".metrics.json.tmp-42", ".metrics.jsonl.tmp-7", ".report.md.tmp-99"}
	keep := []string{".notes.txt.tmp-1", ".last.ckpt.tmp-x1", "last.ckpt.tmp-1"}
	for _, n := range append(slices.Clone(stale), keep...) {
		os.WriteFile(filepath.Join(dir, n), []byte("half a file"), 0o644)
	}
	holder, err := runlock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTrainer(c, false, io.Discard, io.Discard); err == nil {
		t.Fatal("a trainer started in a held folder")
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed while another process held the folder", n)
		}
	}
	holder.Release()
	newTrainer(t, c, false)
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("stale %s is still there (%v)", n, err)
		}
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed", n)
		}
	}
}

func readLog(t *testing.T, dir string) []EvalRecord {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var recs []EvalRecord
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var r EvalRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("metrics.jsonl line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func epochsOf(recs []EvalRecord) []int {
	var e []int
	for _, r := range recs {
		e = append(e, r.Epoch)
	}
	return e
}

// TestResumeRewritesMetricsLog: after a crash (kill -9) between the
// evaluation of an epoch and the checkpoint of that epoch, the log holds a
// line the checkpoint does not (and maybe half a line); after a crash the
// other way round it lacks one. Resuming makes the log the checkpoint's
// evaluations again, so each epoch has one line when the run ends.
func TestResumeRewritesMetricsLog(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, dir)
	tr := newTrainer(t, c, false)
	per := tr.stepsPerEpoch
	ctx, cancel := context.WithCancel(context.Background())
	tr.OnStep = func(step int) {
		if step == per+1 { // just after epoch 1's evaluation and checkpoint
			cancel()
		}
	}
	if err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: %v", err)
	}
	// What a run killed after logging epoch 2 but before its checkpoint
	// leaves behind, and half a line of a write cut short.
	f, _ := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"epoch":2,"step":99,"metrics":{"top1":0.5},"eval_seconds":1}` + "\n" + `{"epoch":2,"st`)
	f.Close()
	res := newTrainer(t, c, true)
	if got := epochsOf(readLog(t, dir)); !slices.Equal(got, []int{1}) {
		t.Fatalf("after resuming at epoch 1 the log holds epochs %v, want [1]", got)
	}
	if err := res.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := epochsOf(readLog(t, dir)); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("the log holds epochs %v, want [1 2]", got)
	}
	// A log that lost its last line (killed between the checkpoint and
	// the log line) gets it back.
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), nil, 0o644)
	again := newTrainer(t, c, true)
	if err := again.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := readLog(t, dir)
	if got := epochsOf(recs); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("the log holds epochs %v, want [1 2]", got)
	}
	if len(recs) == 2 && recs[1].Metrics["top1"] != again.State.Evals[1].Metrics["top1"] {
		t.Errorf("the log's epoch 2 says top1 %v, the checkpoint %v", recs[1].Metrics["top1"], again.State.Evals[1].Metrics["top1"])
	}
}

// TestInterruptDuringEvaluation: a signal during the final evaluation stops
// it at once: the run returns ErrInterrupted (exit 130) with the epoch's
// training saved; -resume evaluates that epoch and finishes, one log line
// per epoch.
func TestInterruptDuringEvaluation(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, dir)
	tr := newTrainer(t, c, false)
	ctx, cancel := context.WithCancel(context.Background())
	tr.OnStep = func(step int) {
		if step == tr.TotalSteps() { // the last step: the final evaluation comes next
			cancel()
		}
	}
	if err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run with a signal before the final evaluation returned %v, want ErrInterrupted", err)
	}
	var st RunState
	if _, err := model.ReadState(filepath.Join(dir, "last.ckpt"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Epoch != c.Epochs || len(st.Evals) != 1 {
		t.Fatalf("saved at epoch %d with %d evaluations, want epoch %d with 1", st.Epoch, len(st.Evals), c.Epochs)
	}
	res := newTrainer(t, c, true)
	if err := res.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := epochsOf(res.State.Evals); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("evaluations of epochs %v, want [1 2]", got)
	}
	if got := epochsOf(readLog(t, dir)); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("the log holds epochs %v, want [1 2]", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "metrics.json")); err != nil {
		t.Error(err)
	}
}

// TestLongPhasesAnswerCancel: data loading, embedding, evaluation and
// indexing return context.Canceled promptly once their context is
// cancelled (a signal), instead of running to their end.
func TestLongPhasesAnswerCancel(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, filepath.Join(dir, "run"))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewTrainerContext(cancelled, c, false, io.Discard, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("loading the data with a cancelled context: %v", err)
	}
	tr := newTrainer(t, c, false) // the failed start released the folder
	if _, err := tr.Model().EmbedSubset(cancelled, tr.DS.Gallery, model.EmbedOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("EmbedSubset: %v", err)
	}
	if _, err := tr.Model().Evaluate(cancelled, tr.DS, model.EmbedOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Evaluate: %v", err)
	}
	ckpt := filepath.Join(dir, "m.ckpt")
	if err := model.SaveCheckpoint(ckpt, tr.B, model.Parts{Model: tr.Net, Card: tr.Card()}, tr.State); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(ckpt, model.Options{Device: "cpu"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := m.EvaluateData(cancelled, c.Data, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("EvaluateData: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the cancelled phases took %v", d)
	}
}

// corruptTensor sets the first n values of tensor name in a safetensors
// file to the bytes 0xFF (NaN).
func corruptTensor(t *testing.T, path, name string, n int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hl := binary.LittleEndian.Uint64(raw[:8])
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+hl], &hdr); err != nil {
		t.Fatal(err)
	}
	var info struct {
		Offsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal(hdr[name], &info); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	start := 8 + int(hl) + info.Offsets[0]
	for i := start; i < start+4*n; i++ {
		raw[i] = 0xFF
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNonFiniteCheckpointRefused: a checkpoint whose weights (model, head
// or optimizer) hold NaN is refused on load, -resume included, with an
// error naming the file, the tensor and the count of non-finite values.
func TestNonFiniteCheckpointRefused(t *testing.T) {
	dir := t.TempDir()
	c := tinyConfig(t, dir)
	tr := newTrainer(t, c, false)
	ctx, cancel := context.WithCancel(context.Background())
	tr.OnStep = func(int) { cancel() }
	if err := tr.Run(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatal(err)
	}
	last := filepath.Join(dir, "last.ckpt")
	good, _ := os.ReadFile(last)
	var head string
	for _, p := range tr.Head.Params() {
		head = p.Name
	}
	for _, tc := range []struct{ tensor, name string }{
		{"model.conv1.weight", "conv1.weight"},
		{"model.bn1.running_var", "bn1.running_var"},
		{head, head},
	} {
		os.WriteFile(last, good, 0o644)
		corruptTensor(t, last, tc.tensor, 3)
		_, err := NewTrainer(c, true, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%s: resumed from NaN weights", tc.tensor)
			continue
		}
		for _, want := range []string{last, tc.name, "3 "} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message %q lacks %q", tc.tensor, err, want)
			}
		}
		if tc.tensor[:6] == "model." {
			if _, err := model.Load(last, model.Options{Device: "cpu"}, io.Discard); err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("%s: model.Load: %v", tc.tensor, err)
			}
		}
	}
}

// TestTrainFlagRanges: every numeric setting outside its range, a NaN or
// an infinity, and an unknown model or device, is refused by
// ParseTrainFlags (exit 2, before any work) with a message naming the flag
// and its range.
func TestTrainFlagRanges(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-lr", "NaN"}, "--lr"},
		{[]string{"-lr", "Inf"}, "--lr"},
		{[]string{"-lr", "-1"}, "--lr"},
		{[]string{"-lr", "1e9"}, "(0, 1000]"},
		{[]string{"-head-lr", "NaN"}, "--head-lr"},
		{[]string{"-head-lr", "-1"}, "--head-lr"},
		{[]string{"-margin-lr", "Inf"}, "--margin-lr"},
		{[]string{"-margin-lr", "-0.5"}, "--margin-lr"},
		{[]string{"-momentum", "-5"}, "--momentum"},
		{[]string{"-momentum", "1"}, "[0, 1)"},
		{[]string{"-momentum", "NaN"}, "--momentum"},
		{[]string{"-weight-decay", "-1"}, "--weight-decay"},
		{[]string{"-weight-decay", "2"}, "[0, 1]"},
		{[]string{"-weight-decay", "NaN"}, "--weight-decay"},
		{[]string{"-step-gamma", "NaN"}, "--step-gamma"},
		{[]string{"-step-gamma", "0"}, "--step-gamma"},
		{[]string{"-warmup", "-1"}, "--warmup"},
		{[]string{"-step-every", "-1"}, "--step-every"},
		{[]string{"-threads", "100000"}, "--threads"},
		{[]string{"-threads", "-1"}, "0..1024"},
		{[]string{"-workers", "-3"}, "--workers"},
		{[]string{"-workers", "5000"}, "0..1024"},
		{[]string{"-dim", "100000000"}, "--dim"},
		{[]string{"-dim", "0"}, "1..65536"},
		{[]string{"-batch", "1"}, "--batch"},
		{[]string{"-batch", "1000000"}, "2..65536"},
		{[]string{"-epochs", "1000001"}, "--epochs"},
		{[]string{"-eval-every", "-1"}, "--eval-every"},
		{[]string{"-eval-batch", "0"}, "--eval-batch"},
		{[]string{"-eval-batch", "100000"}, "--eval-batch"},
		{[]string{"-sampler", "pk", "-pk-p", "100000"}, "--pk-p"},
		{[]string{"-sampler", "pk", "-pk-k", "0"}, "--pk-k"},
		{[]string{"-train-items", "-7"}, "--train-items"},
		{[]string{"-test-items", "0"}, "--test-items"},
		{[]string{"-train-views", "101"}, "--train-views"},
		{[]string{"-test-views", "-2"}, "--test-views"},
		{[]string{"-data-seed", "-5"}, "--data-seed"},
		{[]string{"-preset", "huge"}, "preset"},
		{[]string{"-check", "maybe"}, "--check"},
		{[]string{"-model", "vgg"}, "--model"},
		{[]string{"-device", "tpu"}, "--device"},
	}
	for _, c := range cases {
		_, _, err := ParseTrainFlags(c.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
	// The edges of the ranges are accepted.
	for _, args := range [][]string{
		{"-lr", "1000", "-momentum", "0", "-weight-decay", "1", "-threads", "1024", "-workers", "0", "-dim", "65536"},
		{"-momentum", "0.999", "-weight-decay", "0", "-threads", "0", "-workers", "1024", "-dim", "1", "-batch", "2"},
		{"-train-items", "-1", "-test-items", "1", "-train-views", "0", "-data-seed", "0", "-device", "cpu", "-model", "resnet50"},
		{"-device", "auto", "-model", "resnet-s", "-margin-lr", "0", "-step-gamma", "1", "-epochs", "100000"},
	} {
		if _, _, err := ParseTrainFlags(args, io.Discard); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
	// JSON configs are held to the same ranges.
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"momentum": -5}`), 0o644)
	if _, _, err := ParseTrainFlags([]string{"-config", p}, io.Discard); err == nil || !strings.Contains(err.Error(), "--momentum") {
		t.Errorf("config with momentum -5: %v", err)
	}
}
