// Command train trains an embedding model with a margin-softmax head (DML
// by default) and evaluates consumer-to-shop retrieval.
//
//	go run ./tools/train [flags]                 # DML on FMNIST-C2S quick
//	go run ./tools/train -loss arcface:s=30 -epochs 10 -out runs/arc
//	go run ./tools/train -resume runs/arc        # continue where it stopped
//
// Settings come from the defaults, then a JSON -config file, then the flags
// given. Progress goes to stderr; the final table to stdout; checkpoints,
// metrics.json(l), plots and report.md into -out. Ctrl-C saves a checkpoint
// and exits; -resume continues exactly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dmlgo/dmlgo/tools/internal/app"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, resume, err := app.ParseTrainFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "train: %v\n", err)
		return 2
	}
	if resume != "" {
		cfg.Out = resume
	}
	t, err := app.NewTrainer(cfg, resume != "", os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "train: %v\n", err)
		return 1
	}
	t.TTY = isTerminal(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := t.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "train: %v\n", err)
		if errors.Is(err, app.ErrInterrupted) {
			return 130
		}
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
