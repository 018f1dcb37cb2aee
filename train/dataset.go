package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

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
	set, err := sets.OpenContext(ctx, cfg.Data, log)
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
