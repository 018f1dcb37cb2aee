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
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dmlgo/dmlgo/report"
	"github.com/dmlgo/dmlgo/train"
)

// defaultLosses are the heads of the comparison, each as a spec.
var defaultLosses = "softmax,normface,sphereface,cosface,arcface,dml/fixed,dml/class,dml/adaptive"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := train.DefaultTrainConfig()
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
				t, err := train.NewTrainerContext(ctx, c, false, io.Discard, os.Stderr)
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
					if errors.Is(err, train.ErrInterrupted) || errors.Is(err, context.Canceled) {
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
	var curves []report.Curve
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
		curves = append(curves, report.Curve{Label: r.spec, Metrics: meanCurve})
	}
	plotPath := filepath.Join(filepath.Dir(*results), "results_topk.png")
	if err := report.TopKPlot(plotPath, "FMNIST-C2S: top-k accuracy (mean over seeds)", curves); err != nil {
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
