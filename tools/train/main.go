// Command train trains an embedding model with a margin-softmax head (DML
// by default) and evaluates consumer-to-shop retrieval.
//
//	go run ./tools/train [flags]                 # DML on FMNIST-C2S quick
//	go run ./tools/train -loss arcface:s=30 -epochs 10 -out runs/arc
//	go run ./tools/train -resume runs/arc        # continue where it stopped
//
// Settings come from the defaults, then a JSON -config file, then the flags
// given; every numeric setting is checked against its range first. Progress
// goes to stderr; the final table to stdout; checkpoints, metrics.json(l),
// plots and report.md into -out, which the run locks (a second run on the
// same folder stops at once, naming the first). Ctrl-C or SIGTERM, during
// training or an evaluation, saves a checkpoint and exits; -resume
// continues exactly. A second Ctrl-C ends the process at once.
//
// Exit status: 0 success, 1 failure, 2 a bad flag or setting, 130
// interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dmlgo/dmlgo/train"
)

func main() {
	ctx, stop := interruptible()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// interruptible returns a context cancelled by the first SIGINT or
// SIGTERM: the run stops at its next step or evaluation batch, saves and
// exits 130. A second signal ends the process at once (the signal's
// default action), for a phase that does not stop.
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// run executes a command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, resume, err := train.ParseTrainFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "train: %v\n", err)
		return 2
	}
	if resume != "" {
		cfg.Out = resume
	}
	t, err := train.NewTrainerContext(ctx, cfg, resume != "", stdout, stderr)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "train: interrupted while starting: nothing written")
			return 130
		}
		fmt.Fprintf(stderr, "train: %v\n", err)
		return 1
	}
	defer t.Close()
	t.TTY = isTerminal(stderr)
	if err := t.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "train: %v\n", err)
		if errors.Is(err, train.ErrInterrupted) || errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
