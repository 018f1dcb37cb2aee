package app

// Evaluating a checkpoint on a data set's protocol, and comparing runs.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/retrieval"
)

// MetricsKeys are the keys of metrics.json, as train writes it: top-k
// accuracy for every k of retrieval.Ks, then mAP, as fractions.
var MetricsKeys = []string{"top1", "top5", "top10", "top20", "top30", "top40", "top50", "map"}

// EvalResult is one evaluation of a checkpoint.
type EvalResult struct {
	Checkpoint  string `json:"checkpoint"`
	Fingerprint string `json:"fingerprint"`
	Model       string `json:"model"`
	Data        string `json:"data"`
	// Metrics holds every metric: top1…top50, recall1…recall50,
	// precision1 and map, as fractions.
	Metrics  map[string]float64 `json:"metrics"`
	Queries  int                `json:"queries"`
	Gallery  int                `json:"gallery"`
	Excluded int                `json:"excluded_queries"`
	Seconds  float64            `json:"seconds"`
}

// EvaluateData opens the data set and scores the model on its protocol
// (queries against the gallery), embedding in batches of m.Batch on
// m.Workers decoding goroutines, exactly as training evaluates. The model's
// own input transform is used whatever the data set. Progress goes to log.
// Loading and embedding stop with ctx's error when ctx is cancelled.
func (m *Model) EvaluateData(ctx context.Context, spec sets.Spec, log io.Writer) (*EvalResult, error) {
	if log == nil {
		log = io.Discard
	}
	set, err := openSet(ctx, spec, log)
	if err != nil {
		return nil, err
	}
	if set.Transform.Channels != m.Transform.Channels || set.Transform.Size != m.Transform.Size {
		fmt.Fprintf(log, "note: the data set's own transform is %s; the model's input (%s) is used\n",
			describeTransform(set.Transform), describeTransform(m.Transform))
	}
	ds := set.Dataset
	fmt.Fprintf(log, "evaluating: %d queries against %d gallery images\n", ds.Query.Len(), ds.Gallery.Len())
	t0 := time.Now()
	var met retrieval.Metrics
	err = m.Locked(ctx, func() (err error) {
		met, err = EvaluateContext(ctx, m.B, m.Net, ds, m.Transform, m.Batch, m.Workers)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &EvalResult{
		Checkpoint: m.Path, Fingerprint: m.Fingerprint, Model: m.Run.Config.Model, Data: set.Description,
		Metrics: met.Flat(), Queries: ds.Query.Len(), Gallery: ds.Gallery.Len(), Excluded: len(ds.Excluded),
		Seconds: time.Since(t0).Seconds(),
	}, nil
}

// WriteEval writes into dir (created if needed): metrics.json (the keys
// train writes: top1…top50 and map), eval.json (the whole EvalResult) and
// topk.png (top-k accuracy against k, labelled with label). Each file is
// written atomically.
func WriteEval(dir string, r *EvalResult, label string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	short := map[string]float64{}
	for _, k := range MetricsKeys {
		short[k] = r.Metrics[k]
	}
	raw, _ := json.MarshalIndent(short, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(dir, "metrics.json"), append(raw, '\n')); err != nil {
		return err
	}
	raw, _ = json.MarshalIndent(r, "", "  ")
	if err := atomicfile.WriteBytes(filepath.Join(dir, "eval.json"), append(raw, '\n')); err != nil {
		return err
	}
	return plotAtomic(filepath.Join(dir, "topk.png"), "top-k accuracy: "+r.Data, []Curve{{Label: label, Metrics: r.Metrics}})
}

// plotAtomic draws TopKPlot into a temporary file and renames it over path.
func plotAtomic(path, title string, curves []Curve) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*.png")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := TopKPlot(tmp.Name(), title, curves); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// EvalTables formats the metrics as two markdown tables: top-k accuracy
// and mAP (MetricsTable), then recall@k and precision@1.
func EvalTables(m map[string]float64) string {
	var b strings.Builder
	b.WriteString(MetricsTable(m))
	b.WriteString("\n\n| metric |")
	sep, row := "|---|", "| value |"
	for _, k := range retrieval.Ks {
		fmt.Fprintf(&b, " recall@%d |", k)
		sep += "---|"
		row += fmt.Sprintf(" %.4f |", m[fmt.Sprintf("recall%d", k)])
	}
	b.WriteString(" precision@1 |\n")
	b.WriteString(sep + "---|\n")
	b.WriteString(row + fmt.Sprintf(" %.4f |", m["precision1"]))
	return b.String()
}

// LoadRuns reads the metrics.json of each run folder, labelled by the
// folder's name (its path when two names clash). Errors name the file and
// the missing key.
func LoadRuns(dirs []string) ([]Curve, error) {
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no run folder given")
	}
	names := map[string]int{}
	for _, d := range dirs {
		names[filepath.Base(filepath.Clean(d))]++
	}
	var out []Curve
	for _, d := range dirs {
		path := filepath.Join(d, "metrics.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var m map[string]float64
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, k := range MetricsKeys {
			if _, ok := m[k]; !ok {
				return nil, fmt.Errorf("%s has no %q: not a dmlgo metrics.json", path, k)
			}
		}
		label := filepath.Base(filepath.Clean(d))
		if names[label] > 1 {
			label = filepath.Clean(d)
		}
		out = append(out, Curve{Label: label, Metrics: m})
	}
	return out, nil
}

// CompareTable formats several runs as one markdown table: a row per run,
// top-k accuracy for every k and mAP.
func CompareTable(curves []Curve) string {
	var b strings.Builder
	b.WriteString("| run |")
	sep := "|---|"
	for _, k := range retrieval.Ks {
		fmt.Fprintf(&b, " top-%d |", k)
		sep += "---|"
	}
	b.WriteString(" mAP |\n" + sep + "---|")
	for _, c := range curves {
		fmt.Fprintf(&b, "\n| %s |", c.Label)
		for _, k := range retrieval.Ks {
			fmt.Fprintf(&b, " %.4f |", c.Metrics[fmt.Sprintf("top%d", k)])
		}
		fmt.Fprintf(&b, " %.4f |", c.Metrics["map"])
	}
	return b.String()
}

// WriteCompare draws the runs on one top-k plot at path, atomically.
func WriteCompare(path string, curves []Curve) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return plotAtomic(path, "top-k accuracy", curves)
}
