package report

// The files of an evaluation (retrieve eval) and of a comparison of runs
// (tools/compare).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
)

// WriteEval writes into dir (created if needed): metrics.json (the keys
// train writes: top1…top50 and map), eval.json (the whole EvalResult) and
// topk.png (top-k accuracy against k, labelled with label). Each file is
// written atomically.
func WriteEval(dir string, r *model.EvalResult, label string) error {
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
