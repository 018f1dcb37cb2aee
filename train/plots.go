package train

import (
	"path/filepath"

	"github.com/dmlgo/dmlgo/report"
)

// WritePlots draws, for the run labelled label, loss.png (the loss of every
// step, and its moving average) and topk.png (top-k accuracy against k at
// the last evaluation).
func WritePlots(dir string, st RunState, label string) error {
	if len(st.Losses) > 0 {
		if err := report.LossPlot(filepath.Join(dir, "loss.png"), label, st.Losses); err != nil {
			return err
		}
	}
	if len(st.Evals) > 0 {
		return report.TopKPlot(filepath.Join(dir, "topk.png"), "top-k accuracy: "+label, []report.Curve{{Label: label, Metrics: st.Evals[len(st.Evals)-1].Metrics}})
	}
	return nil
}
