// Command compare runs the paper's comparison on one data set: the same
// model, data and budget for every loss, several seeds each, and writes
// RESULTS.md (mean ± std of top-1/5/10/20/50 and mAP per loss, the
// settings, the wall time, the machine) and one top-k plot with every loss.
//
//	go run ./tools/compare [-losses a,b,c] [-seeds 1,2,3] [-out runs/compare] [-results RESULTS.md] [train flags]
//
// Every train flag (see tools/train) sets the shared budget. Runs that
// already have a metrics.json in their folder are not run again, so an
// interrupted comparison continues where it stopped.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tools/internal/app"
)

// defaultLosses are the heads of the comparison, each as a spec.
var defaultLosses = "softmax,normface,sphereface,cosface,arcface,dml/fixed,dml/class,dml/adaptive"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := app.DefaultTrainConfig()
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	losses := fs.String("losses", defaultLosses, "head specs separated by commas or semicolons (\"cosface:s=16,m=0.2,dml/class:s=16\"); each run gets -loss SPEC")
	seeds := fs.String("seeds", "1,2,3", "comma-separated seeds")
	results := fs.String("results", "RESULTS.md", "the report to write")
	notes := fs.String("notes", "", "a markdown file appended to the report (what the numbers say)")
	cfg.BindFlags(fs)
	cfg.Out = filepath.Join("runs", "compare")
	fs.Lookup("out").DefValue = cfg.Out
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var seedList []uint64
	for _, s := range strings.Split(*seeds, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: -seeds: %q is not a seed\n", s)
			return 2
		}
		seedList = append(seedList, v)
	}
	specs := splitSpecs(*losses)
	for _, spec := range specs {
		c := cfg
		c.Loss = strings.TrimSpace(spec)
		if err := c.Validate(); err != nil {
			fmt.Fprintf(os.Stderr, "compare: %v\n", err)
			return 2
		}
	}
	// The first SIGINT or SIGTERM stops the run in progress (it saves and
	// exits 130); a second one ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	type result struct {
		spec    string
		metrics []map[string]float64
		seconds []float64
	}
	var all []result
	start := time.Now()
	var desc string
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		r := result{spec: spec}
		for _, seed := range seedList {
			c := cfg
			c.Loss, c.Seed = spec, seed
			c.Out = filepath.Join(cfg.Out, strings.ReplaceAll(spec, "/", "-"), fmt.Sprintf("seed%d", seed))
			m, secs, err := loadDone(c.Out)
			if err == nil {
				// A finished run is reused only if it was trained as this
				// comparison would train it.
				if why := mismatch(c.Out, c); why != "" {
					fmt.Fprintf(os.Stderr, "compare: %s holds a finished run with other settings (%s): remove it, or pass another -out\n", c.Out, why)
					return 1
				}
				if desc == "" {
					desc = dataLine(c.Out)
				}
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "compare: %s seed %d\n", spec, seed)
				t, err := app.NewTrainerContext(ctx, c, false, io.Discard, os.Stderr)
				if err != nil {
					fmt.Fprintf(os.Stderr, "compare: %v\n", err)
					if errors.Is(err, context.Canceled) {
						return 130
					}
					return 1
				}
				if desc == "" {
					desc = t.DS.Summary()
				}
				t0 := time.Now()
				if err := t.Run(ctx); err != nil {
					fmt.Fprintf(os.Stderr, "compare: %s seed %d: %v\n", spec, seed, err)
					if errors.Is(err, app.ErrInterrupted) || errors.Is(err, context.Canceled) {
						return 130
					}
					// A diverged run counts as a result of its loss: recorded, not hidden.
					m = map[string]float64{"diverged": 1}
				} else if m, _, err = loadDone(c.Out); err != nil {
					fmt.Fprintf(os.Stderr, "compare: %v\n", err)
					return 1
				}
				secs = time.Since(t0).Seconds()
				writeTime(c.Out, secs)
			}
			r.metrics = append(r.metrics, m)
			r.seconds = append(r.seconds, secs)
		}
		all = append(all, r)
	}
	// The report.
	var b strings.Builder
	fmt.Fprintf(&b, "# FMNIST-C2S: the loss comparison\n\n")
	var total float64
	runs := 0
	for _, r := range all {
		for _, s := range r.seconds {
			total += s
			runs++
		}
	}
	threads := fmt.Sprintf("%d threads", runtime.GOMAXPROCS(0))
	if runtime.GOMAXPROCS(0) == 1 {
		threads = "1 thread"
	}
	fmt.Fprintf(&b, "Produced by `go run ./tools/compare %s` on %s, %s, %s, on %s.\n",
		shellJoin(args), cpuName(), runtime.GOARCH, threads, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Training and evaluation took %.0f minutes for the %d runs (the s/run column; this invocation itself took %.0f s, reusing finished runs).\n\n",
		total/60, runs, time.Since(start).Seconds())
	fmt.Fprintf(&b, "## Settings (the same for every loss)\n\n")
	fmt.Fprintf(&b, "- data: %s\n", orDash(desc))
	fmt.Fprintf(&b, "- model %s, embedding %d; %d epochs, batch %d, %s sampler; %s lr %g (%s), momentum %g, nesterov %v, weight decay %g\n",
		cfg.Model, cfg.Dim, cfg.Epochs, cfg.Batch, cfg.Sampler, cfg.Optimizer, cfg.LR, cfg.Schedule, cfg.Momentum, cfg.Nesterov, cfg.WeightDecay)
	fmt.Fprintf(&b, "- seeds %s; evaluation: queries = consumer views of the test items, gallery = their shop views\n\n", *seeds)
	fmt.Fprintf(&b, "## Results (mean ± std over seeds)\n\n| loss | top-1 | top-5 | top-10 | top-20 | top-50 | mAP | s/run |\n|---|---|---|---|---|---|---|---|\n")
	var curves []app.Curve
	for _, r := range all {
		row := fmt.Sprintf("| `%s` |", r.spec)
		meanCurve := map[string]float64{}
		for _, k := range []string{"top1", "top5", "top10", "top20", "top50", "map"} {
			mu, sd, n := stats(r.metrics, k)
			if n == 0 {
				row += " diverged |"
				continue
			}
			if n == 1 {
				row += fmt.Sprintf(" %.4f |", mu)
				continue
			}
			row += fmt.Sprintf(" %.4f ± %.4f |", mu, sd)
		}
		for _, k := range []string{"top1", "top5", "top10", "top20", "top30", "top40", "top50"} {
			meanCurve[k], _, _ = stats(r.metrics, k)
		}
		mt, _, _ := stats(secsAsMaps(r.seconds), "s")
		row += fmt.Sprintf(" %.0f |", mt)
		fmt.Fprintln(&b, row)
		curves = append(curves, app.Curve{Label: r.spec, Metrics: meanCurve})
	}
	plotPath := filepath.Join(filepath.Dir(*results), "results_topk.png")
	if err := app.TopKPlot(plotPath, "FMNIST-C2S: top-k accuracy (mean over seeds)", curves); err != nil {
		fmt.Fprintf(os.Stderr, "compare: plot: %v\n", err)
		return 1
	}
	fmt.Fprintf(&b, "\n![top-k accuracy of every loss](%s)\n\nEach run's report, metrics and checkpoints are under `%s/<loss>/seed<N>/`.\n", filepath.Base(plotPath), cfg.Out)
	if *notes != "" {
		raw, err := os.ReadFile(*notes)
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: -notes: %v\n", err)
			return 2
		}
		b.WriteString("\n" + string(raw))
	}
	if err := os.WriteFile(*results, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		return 1
	}
	fmt.Print(b.String())
	return 0
}

// loadDone reads a finished run's metrics.json and recorded wall time.
func loadDone(dir string) (map[string]float64, float64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		return nil, 0, err
	}
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", dir, err)
	}
	var secs float64
	if raw, err := os.ReadFile(filepath.Join(dir, "wall_seconds")); err == nil {
		secs, _ = strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
	}
	return m, secs, nil
}

// mismatch says how the finished run in dir differs from c, or "" when it
// does not: its head as its report resolved it against c's head as the
// current defaults resolve it, then the settings in its checkpoint (all
// but device, threads, workers, folder and evaluation batching, which do
// not change the result).
func mismatch(dir string, c app.TrainConfig) string {
	name, hc, err := app.HeadConfig(c)
	if err != nil {
		return err.Error()
	}
	want := hc.Describe(name)
	if raw, err := os.ReadFile(filepath.Join(dir, "report.md")); err == nil {
		if m := headLine.FindSubmatch(raw); m != nil && string(m[1]) != want {
			return fmt.Sprintf("head %s, here %s", m[1], want)
		}
	}
	var st app.RunState
	if _, err := app.ReadState(filepath.Join(dir, "last.ckpt"), &st); err != nil {
		return "" // an older run without a checkpoint: its report had to do
	}
	norm := func(t app.TrainConfig) map[string]any {
		t.Device, t.Threads, t.Workers, t.Out, t.EvalBatch, t.EvalEvery = "", 0, 0, "", 0, 0
		raw, _ := json.Marshal(t)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m
	}
	had, now := norm(st.Config), norm(c)
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		a, _ := json.Marshal(had[k])
		b, _ := json.Marshal(now[k])
		if !bytes.Equal(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s %s, here %s", k, a, b))
		}
	}
	return strings.Join(diffs, "; ")
}

// headLine finds the resolved head in a run's report.
var headLine = regexp.MustCompile(`(?m)^- loss: .* over \d+ classes: (\S+)$`)

// dataLine reads the data set's description from a finished run's report.
func dataLine(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		return ""
	}
	_, after, ok := strings.Cut(string(raw), "## Data\n\n")
	if !ok {
		return ""
	}
	line, _, _ := strings.Cut(after, "\n")
	return line
}

func writeTime(dir string, secs float64) {
	os.WriteFile(filepath.Join(dir, "wall_seconds"), []byte(fmt.Sprintf("%.1f\n", secs)), 0o644)
}

func secsAsMaps(s []float64) []map[string]float64 {
	out := make([]map[string]float64, len(s))
	for i, v := range s {
		out[i] = map[string]float64{"s": v}
	}
	return out
}

// stats returns the mean and sample standard deviation of key over the
// runs that have it.
func stats(ms []map[string]float64, key string) (mean, std float64, n int) {
	var xs []float64
	for _, m := range ms {
		if v, ok := m[key]; ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0, 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			std += (x - mean) * (x - mean)
		}
		std = math.Sqrt(std / float64(len(xs)-1))
	}
	return mean, std, len(xs)
}

func orDash(s string) string {
	if s == "" {
		return "(all runs reused from an earlier invocation)"
	}
	return s
}

func cpuName() string {
	return strings.SplitN(cpu.New(0).Describe(), ",", 2)[0]
}

// splitSpecs splits -losses: at semicolons when there is one, else at
// commas, where a part with "=" but no ":" is an option of the spec before
// it ("cosface:s=30,m=0.55,arcface" is two specs).
func splitSpecs(list string) []string {
	if strings.Contains(list, ";") {
		var out []string
		for _, s := range strings.Split(list, ";") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var out []string
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if len(out) > 0 && strings.Contains(part, "=") && !strings.Contains(part, ":") {
			out[len(out)-1] += "," + part
			continue
		}
		out = append(out, part)
	}
	return out
}

// shellJoin joins args as a shell would need them typed: an argument with
// a character the shell treats specially goes in single quotes.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t;&|<>()$`\\\"'*?[]#~{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
