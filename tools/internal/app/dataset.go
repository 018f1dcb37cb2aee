package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
	"github.com/dmlgo/dmlgo/data/sets"
)

// OpenDataset opens the run's data set and returns it with the training
// and evaluation transforms. It returns ctx's error as soon as ctx is
// cancelled (see openSet).
func OpenDataset(ctx context.Context, cfg TrainConfig, log io.Writer) (*data.Dataset, data.Transform, data.Transform, error) {
	if cfg.Data.Kind == sets.FMNISTC2S || cfg.Data.Kind == "" {
		path := cfg.Data.Path
		if path == "" {
			path = fmnist.DefaultDir()
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, data.Transform{}, data.Transform{}, fmt.Errorf("data: Fashion-MNIST: %s does not exist: run `make data` (go run ./tools/dataset fetch) to fetch it, or point --data-path (or $DMLGO_DATA) at the archive %s, a folder holding it, or the IDX files", path, fmnist.FileName)
		}
	}
	set, err := openSet(ctx, cfg.Data, log)
	if err != nil {
		return nil, data.Transform{}, data.Transform{}, fmt.Errorf("data: %w", err)
	}
	evalT := set.Transform
	trainT := evalT
	if cfg.Augment && set.Augment != nil {
		trainT = evalT.Training(set.Augment)
	}
	return set.Dataset, trainT, evalT, nil
}

// openSet is sets.Open, but returns ctx's error as soon as ctx is
// cancelled. sets.Open itself cannot be stopped: it goes on in the
// background with its log muted and its result is dropped (the command
// then exits).
func openSet(ctx context.Context, spec sets.Spec, log io.Writer) (*sets.Set, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil {
		return sets.Open(spec, log)
	}
	mw := &muteWriter{w: log}
	type result struct {
		set *sets.Set
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := sets.Open(spec, mw)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.set, r.err
	case <-ctx.Done():
		mw.mute()
		return nil, ctx.Err()
	}
}

// muteWriter passes writes to w until muted, then drops them.
type muteWriter struct {
	mu    sync.Mutex
	w     io.Writer
	muted bool
}

func (m *muteWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.muted || m.w == nil {
		return len(p), nil
	}
	return m.w.Write(p)
}

func (m *muteWriter) mute() {
	m.mu.Lock()
	m.muted = true
	m.mu.Unlock()
}
