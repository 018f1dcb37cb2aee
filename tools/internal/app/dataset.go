package app

import (
	"fmt"
	"io"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
)

// OpenDataset opens the run's data set and returns it with the training
// and evaluation transforms.
func OpenDataset(cfg TrainConfig, log io.Writer) (*data.Dataset, data.Transform, data.Transform, error) {
	set, err := sets.Open(cfg.Data, log)
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
