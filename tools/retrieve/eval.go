package main

// retrieve eval: score a checkpoint on a data set's protocol, or compare
// runs' metrics.

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/report"
	"github.com/dmlgo/dmlgo/retrieval"
)

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval")
	var mf modelFlags
	mf.register(fs)
	var df decodeFlags
	df.register(fs)
	out := fs.String("out", "", "output folder (default: eval/ beside the checkpoint; with -compare, the current folder)")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of tables")
	compare := fs.String("compare", "", "comma-separated run folders holding metrics.json: one table and one plot (compare.png)")
	spec := sets.DefaultSpec()
	spec.RegisterFlags(fs)
	if _, err := parse(fs, args, stderr, evalArgs, false); err != nil {
		return err
	}
	if *compare != "" {
		if mf.ckpt != "" || sets.FlagsGiven(fs) {
			return usagef("-compare reads the runs' metrics.json: it takes no -ckpt and no data flags")
		}
		return runCompare(*compare, *out, *asJSON, stdout, stderr)
	}
	if err := mf.check(); err != nil {
		return err
	}
	if err := df.apply(); err != nil {
		return err
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	s, err := dataSpec(m, fs, spec)
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(filepath.Dir(mf.ckpt), "eval")
	}
	ctx, stop := interruptible()
	defer stop()
	res, err := m.EvaluateData(ctx, s, stderr)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("%s %s", m.Card.Loss, filepath.Base(mf.ckpt))
	if err := report.WriteEval(dir, res, label); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	fmt.Fprintf(stderr, "evaluated in %.1fs: %d queries, %d gallery images (%d queries excluded)\n", res.Seconds, res.Queries, res.Gallery, res.Excluded)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%s\n\n%s: %s\n\n%s\n", retrieval.Definitions, mf.ckpt, res.Data, report.EvalTables(res.Metrics))
	}
	fmt.Fprintf(stderr, "wrote %s, %s, %s\n", filepath.Join(dir, "metrics.json"), filepath.Join(dir, "eval.json"), filepath.Join(dir, "topk.png"))
	return nil
}

func runCompare(list, out string, asJSON bool, stdout, stderr io.Writer) error {
	var dirs []string
	for _, d := range strings.Split(list, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return usagef("-compare: give run folders separated by commas")
	}
	curves, err := report.LoadRuns(dirs)
	if err != nil {
		return fmt.Errorf("-compare: %w", err)
	}
	if out == "" {
		out = "."
	}
	plot := filepath.Join(out, "compare.png")
	if err := report.WriteCompare(plot, curves); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	if asJSON {
		runs := map[string]map[string]float64{}
		for _, c := range curves {
			runs[c.Label] = c.Metrics
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(runs); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, report.CompareTable(curves))
	}
	fmt.Fprintf(stderr, "plot: %s\n", plot)
	return nil
}
