package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompareTiny runs two losses over two seeds on tiny data, checks
// RESULTS.md and the plot, and that a second invocation reuses the runs.
func TestCompareTiny(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join("..", "..", "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz")
	results := filepath.Join(dir, "RESULTS.md")
	args := []string{"-data-path", archive, "-train-items", "24", "-test-items", "10", "-epochs", "1", "-batch", "16",
		"-threads", "2", "-losses", "cosface:s=16,dml/fixed", "-seeds", "1,2", "-out", filepath.Join(dir, "runs"), "-results", results}
	if code := run(args); code != 0 {
		t.Fatalf("compare exited %d", code)
	}
	raw, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{"| `cosface:s=16` |", "| `dml/fixed` |", " ± ", "seeds 1,2", "resnet-s", "results_topk.png"} {
		if !strings.Contains(text, want) {
			t.Errorf("RESULTS.md lacks %q:\n%s", want, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "results_topk.png")); err != nil {
		t.Error(err)
	}
	for _, run := range []string{"cosface:s=16/seed1", "cosface:s=16/seed2", "dml-fixed/seed1", "dml-fixed/seed2"} {
		if _, err := os.Stat(filepath.Join(dir, "runs", run, "metrics.json")); err != nil {
			t.Errorf("run %s: %v", run, err)
		}
	}
	// Finished runs are reused: a second invocation trains nothing.
	before, _ := os.Stat(filepath.Join(dir, "runs", "dml-fixed", "seed2", "last.ckpt"))
	if code := run(args); code != 0 {
		t.Fatalf("second compare exited %d", code)
	}
	after, _ := os.Stat(filepath.Join(dir, "runs", "dml-fixed", "seed2", "last.ckpt"))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("a finished run was trained again")
	}
	// Another thread count reuses the runs; other settings, or a head whose
	// defaults have changed since, are refused rather than mixed in.
	if code := run(append(slices.Clone(args), "-threads", "1")); code != 0 {
		t.Fatalf("compare with another thread count exited %d", code)
	}
	if code := run(append(slices.Clone(args), "-epochs", "2")); code != 1 {
		t.Errorf("compare with other epochs over finished runs exited %d, want 1", code)
	}
	report := filepath.Join(dir, "runs", "dml-fixed", "seed1", "report.md")
	raw, err = os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	edited := headLine.ReplaceAll(raw, []byte("- loss: dml/fixed over 24 classes: dml/fixed:s=30,m_p=0.05,m_n=0.3"))
	if err := os.WriteFile(report, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(args); code != 1 {
		t.Errorf("compare over a run of other head defaults exited %d, want 1", code)
	}
	if code := run([]string{"-losses", "cosface:s=16,m=0.2;nosuchloss"}); code != 2 {
		t.Errorf("a semicolon list with an unknown loss exited %d, want 2", code)
	}
	if code := run([]string{"-losses", "nosuchloss"}); code != 2 {
		t.Errorf("an unknown loss exited %d, want 2", code)
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"-losses", "cosface:s=16,m=0.2;dml/class", "-notes", "it's.md", ""})
	want := `-losses 'cosface:s=16,m=0.2;dml/class' -notes 'it'\''s.md' ''`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestSplitSpecs(t *testing.T) {
	for in, want := range map[string][]string{
		"softmax,cosface":     {"softmax", "cosface"},
		"cosface:s=30,m=0.55": {"cosface:s=30,m=0.55"},
		"cosface:s=30,m=0.55,arcface,dml/class:s=16,margin_reg=32": {"cosface:s=30,m=0.55", "arcface", "dml/class:s=16,margin_reg=32"},
		"cosface:s=16,m=0.2;dml/class:s=16;":                       {"cosface:s=16,m=0.2", "dml/class:s=16"},
	} {
		if got := splitSpecs(in); !slices.Equal(got, want) {
			t.Errorf("splitSpecs(%q) = %q, want %q", in, got, want)
		}
	}
}
