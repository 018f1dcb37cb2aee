package train

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/report"
)

// WriteReport writes report.md: the settings, the data, the results table
// and the plots of a finished run.
func WriteReport(dir string, t *Trainer) error {
	var b strings.Builder
	cfg := t.Cfg
	final := t.State.Evals[len(t.State.Evals)-1]
	fmt.Fprintf(&b, "# dmlgo training report\n\n")
	fmt.Fprintf(&b, "Written %s. Device: %s.\n\n", time.Now().UTC().Format(time.RFC3339), t.B.Describe())
	fmt.Fprintf(&b, "## Data\n\n%s\n\n", t.DS.Summary())
	fmt.Fprintf(&b, "## Model and loss\n\n")
	fmt.Fprintf(&b, "- model: %s, embedding %d, %d parameters\n", cfg.Model, cfg.Dim, nn.NumParams(t.Net))
	fmt.Fprintf(&b, "- loss: %s over %d classes: %s\n", cfg.Loss, t.DS.Train.NumClasses, t.Head.Describe())
	fmt.Fprintf(&b, "- optimizer: %s, lr %g (head ×%g, margins ×%g), momentum %g, nesterov %v, weight decay %g, schedule %s\n",
		cfg.Optimizer, cfg.LR, cfg.HeadLR, t.Head.Config().MarginLR, cfg.Momentum, cfg.Nesterov, cfg.WeightDecay, cfg.Schedule)
	fmt.Fprintf(&b, "- %d epochs of %d steps, batch %d (%s sampler), seed %d, training time %.0f s\n\n",
		cfg.Epochs, t.stepsPerEpoch, cfg.Batch, cfg.Sampler, cfg.Seed, t.State.Elapsed)
	fmt.Fprintf(&b, "## Retrieval (epoch %d)\n\n%s\n\n", final.Epoch, report.MetricsTable(final.Metrics))
	fmt.Fprintf(&b, "recall@10 %.4f, precision@1 %.4f.\n\n", final.Metrics["recall10"], final.Metrics["precision1"])
	if len(t.State.Evals) > 1 {
		fmt.Fprintf(&b, "| epoch | top-1 | top-20 | mAP |\n|---|---|---|---|\n")
		for _, e := range t.State.Evals {
			fmt.Fprintf(&b, "| %d | %.4f | %.4f | %.4f |\n", e.Epoch, e.Metrics["top1"], e.Metrics["top20"], e.Metrics["map"])
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "![loss](loss.png)\n\n![top-k](topk.png)\n\nFiles: `metrics.json`, `metrics.jsonl`, `last.ckpt`, `best.ckpt` (safetensors; the model under `model.` with torchvision names).\n")
	return atomicfile.WriteBytes(filepath.Join(dir, "report.md"), []byte(b.String()))
}
