//go:build linux

// Command stress replays the attacks and faults of the reliability issue
// against the real binaries and prints one line per case with its figure
// (memory, latency, status and exit codes) and whether it is within its
// bound.
//
//	go run ./tools/stress                       # every case (make stress)
//	go run ./tools/stress -cases slow-bodies,decode-bombs -keep
//
// It builds tools/train and tools/retrieve into a temporary folder, trains a
// tiny model on the synthetic Fashion-MNIST archive of the data package's
// tests (about a second), indexes its gallery, and runs each case in a
// folder of its own, as subprocesses talking over 127.0.0.1 only. Every
// case runs under a deadline, and every process it starts is killed when
// it ends (and when this command is interrupted or dies: the children get
// SIGKILL with their parent). Progress goes to stderr; the case lines and
// the summary to stdout. Exit status: 0 when every case is within its
// bound, 1 otherwise, 2 for a usage error.
//
// It reads the memory of processes from /proc and wait4's rusage, so it
// runs on Linux only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// stressCase is one attack or fault: run returns an error when the case
// could not be carried out (a failure too); bounds are checked with
// r.bound.
type stressCase struct {
	name    string
	timeout time.Duration
	run     func(ctx context.Context, r *caseRun) error
}

var cases = []stressCase{
	{"slow-bodies", 60 * time.Second, caseSlowBodies},
	{"slow-grace", 30 * time.Second, caseSlowGrace},
	{"decode-bombs", 60 * time.Second, caseDecodeBombs},
	{"decode-budget", 90 * time.Second, caseDecodeBudget},
	{"gallery-flood", 90 * time.Second, caseGalleryFlood},
	{"access", 60 * time.Second, caseAccess},
	{"two-runs-same-out", 60 * time.Second, caseTwoRuns},
	{"kill-resume-log", 90 * time.Second, caseKillResume},
	{"nan-checkpoint", 60 * time.Second, caseNaNCheckpoint},
	{"bad-flags", 60 * time.Second, caseBadFlags},
	{"sigint-eval", 120 * time.Second, caseSigintEval},
	{"local-bomb", 60 * time.Second, caseLocalBomb},
	{"catalog-live", 120 * time.Second, caseCatalog},
}

// env is what every case shares: the binaries and a tiny trained model
// with its gallery index. Cases only read it.
type env struct {
	root    string // the repository
	tmp     string // this run's temporary folder
	train   string // binaries
	retr    string
	archive string // the synthetic Fashion-MNIST archive
	model   string // the tiny run's folder
	ckpt    string // its best.ckpt
	index   string // its gallery index
}

// tinyTrain are the flags of a tiny run (as app_test.go's tinyConfig): 72
// training images of 24 items, 10 queries against 10 gallery images, two
// epochs of 4 steps; about a second on 2 cores.
func (e *env) tinyTrain(out string, extra ...string) []string {
	args := []string{"-data-path", e.archive, "-train-items", "24", "-test-items", "10",
		"-epochs", "2", "-batch", "16", "-eval-every", "1", "-loss", "dml/class", "-threads", "2", "-out", out}
	return append(args, extra...)
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("stress", flag.ContinueOnError)
	only := fs.String("cases", "", "comma-separated cases to run (default: all): "+caseNames())
	keep := fs.Bool("keep", false, "keep the temporary folder (binaries, model, each case's files and logs)")
	goCmd := fs.String("go", "go", "the go command that builds the binaries")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "stress: unexpected argument %q (flags only)\n", fs.Arg(0))
		return 2
	}
	todo := cases
	if *only != "" {
		todo = nil
		for _, n := range strings.Split(*only, ",") {
			n = strings.TrimSpace(n)
			i := slices.IndexFunc(cases, func(c stressCase) bool { return c.name == n })
			if i < 0 {
				fmt.Fprintf(os.Stderr, "stress: -cases: unknown case %q (want %s)\n", n, caseNames())
				return 2
			}
			todo = append(todo, cases[i])
		}
	}

	// SIGINT or SIGTERM cancels everything; CommandContext then kills
	// the children.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Println(machine())
	e, err := setup(ctx, *goCmd, *keep)
	if e != nil && e.tmp != "" {
		if *keep {
			defer fmt.Fprintf(os.Stderr, "kept %s\n", e.tmp)
		} else {
			defer os.RemoveAll(e.tmp)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stress: %v\n", err)
		return 1
	}

	t0 := time.Now()
	var failed []string
	for _, c := range todo {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "stress: interrupted")
			return 1
		}
		fmt.Fprintf(os.Stderr, "running %s...\n", c.name)
		r := runCase(ctx, e, c)
		fmt.Println(r.line())
		if !r.ok() {
			failed = append(failed, c.name)
			if tail := r.logTail(); tail != "" {
				fmt.Fprintf(os.Stderr, "%s: the last lines of its logs (in %s):\n%s", c.name, r.dir, tail)
			}
		}
	}
	sum := fmt.Sprintf("%d passed, %d failed", len(todo)-len(failed), len(failed))
	if len(failed) > 0 {
		sum += " (" + strings.Join(failed, ", ") + ")"
	}
	fmt.Printf("%s in %s\n", sum, secs(time.Since(t0)))
	if len(failed) > 0 {
		return 1
	}
	return 0
}

func caseNames() string {
	var n []string
	for _, c := range cases {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

// machine describes the CPU, the cores and the memory.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if kb := procStatusKB("/proc/meminfo", "MemTotal"); kb > 0 {
		mem = ", " + mib(kb<<10) + " memory"
	}
	return fmt.Sprintf("machine: %s, %d cores%s, %s %s/%s", model, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// setup builds the binaries, trains the tiny model and indexes its gallery.
func setup(ctx context.Context, goCmd string, keep bool) (*env, error) {
	e := &env{}
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	if err != nil {
		return e, fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return e, errors.New("run it inside the dmlgo module (go env GOMOD is empty)")
	}
	e.root = filepath.Dir(gomod)
	e.archive = filepath.Join(e.root, "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz")
	if _, err := os.Stat(e.archive); err != nil {
		return e, fmt.Errorf("the synthetic archive: %v", err)
	}
	if e.tmp, err = os.MkdirTemp("", "dmlgo-stress-"); err != nil {
		return e, err
	}
	bin := filepath.Join(e.tmp, "bin")
	e.train, e.retr = filepath.Join(bin, "train"), filepath.Join(bin, "retrieve")

	t0 := time.Now()
	build := exec.CommandContext(ctx, goCmd, "build", "-o", bin+string(filepath.Separator), "./tools/train", "./tools/retrieve")
	build.Dir = e.root
	if out, err := build.CombinedOutput(); err != nil {
		return e, fmt.Errorf("go build: %v\n%s", err, out)
	}
	tBuild := time.Since(t0)

	e.model = filepath.Join(e.tmp, "model")
	logs := filepath.Join(e.tmp, "setup")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return e, err
	}
	res := runFor(ctx, logs, 2*time.Minute, "train", e.train, e.tinyTrain(e.model)...)
	if res.code != 0 {
		return e, fmt.Errorf("training the tiny model: %s\n%s", res.status(), tail(res.out, 20))
	}
	tTrain := res.took
	e.ckpt = filepath.Join(e.model, "best.ckpt")
	e.index = filepath.Join(e.model, "gallery.safetensors")
	res = runFor(ctx, logs, time.Minute, "index", e.retr, "index", "-ckpt", e.ckpt, "-out", e.index)
	if res.code != 0 {
		return e, fmt.Errorf("indexing the gallery: %s\n%s", res.status(), tail(res.out, 20))
	}
	fmt.Fprintf(os.Stderr, "setup: built train and retrieve in %s, trained a tiny model (2 epochs, 72 images) in %s, indexed its gallery in %s\n",
		secs(tBuild), secs(tTrain), secs(res.took))
	return e, nil
}
