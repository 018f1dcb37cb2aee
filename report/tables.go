// Package report writes what people read of a run or an evaluation: the
// markdown tables of retrieval metrics, the top-k and loss plots, the
// files of an evaluation, and the comparison of several runs.
package report

import (
	"fmt"
	"strings"

	"github.com/dmlgo/dmlgo/retrieval"
)

// MetricsKeys are the keys of metrics.json, as train writes it: top-k
// accuracy for every k of retrieval.Ks, then mAP, as fractions.
var MetricsKeys = []string{"top1", "top5", "top10", "top20", "top30", "top40", "top50", "map"}

// MetricsTable formats top-k accuracies and mAP as a markdown table.
func MetricsTable(m map[string]float64) string {
	s := "| metric |"
	sep := "|---|"
	row := "| value |"
	for _, k := range retrieval.Ks {
		s += fmt.Sprintf(" top-%d |", k)
		sep += "---|"
		row += fmt.Sprintf(" %.4f |", m[fmt.Sprintf("top%d", k)])
	}
	s += " mAP |"
	sep += "---|"
	row += fmt.Sprintf(" %.4f |", m["map"])
	return s + "\n" + sep + "\n" + row
}

// EvalTables formats the metrics as two markdown tables: top-k accuracy
// and mAP (MetricsTable), then recall@k and precision@1.
func EvalTables(m map[string]float64) string {
	var b strings.Builder
	b.WriteString(MetricsTable(m))
	b.WriteString("\n\n| metric |")
	sep, row := "|---|", "| value |"
	for _, k := range retrieval.Ks {
		fmt.Fprintf(&b, " recall@%d |", k)
		sep += "---|"
		row += fmt.Sprintf(" %.4f |", m[fmt.Sprintf("recall%d", k)])
	}
	b.WriteString(" precision@1 |\n")
	b.WriteString(sep + "---|\n")
	b.WriteString(row + fmt.Sprintf(" %.4f |", m["precision1"]))
	return b.String()
}
