package main

// The runs on disk: what a finished run holds, whether it can be reused,
// and the report's statistics.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/train"
)

// loadDone reads a finished run's metrics.json and recorded wall time.
func loadDone(dir string) (map[string]float64, float64, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		return nil, 0, err
	}
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", dir, err)
	}
	var secs float64
	if raw, err := os.ReadFile(filepath.Join(dir, "wall_seconds")); err == nil {
		secs, _ = strconv.ParseFloat(strings.TrimSpace(string(raw)), 64)
	}
	return m, secs, nil
}

// mismatch says how the finished run in dir differs from c, or "" when it
// does not: its head as its report resolved it against c's head as the
// current defaults resolve it, then the settings in its checkpoint (all
// but device, threads, workers, folder and evaluation batching, which do
// not change the result).
func mismatch(dir string, c train.TrainConfig) string {
	name, hc, err := train.HeadConfig(c)
	if err != nil {
		return err.Error()
	}
	want := hc.Describe(name)
	if raw, err := os.ReadFile(filepath.Join(dir, "report.md")); err == nil {
		if m := headLine.FindSubmatch(raw); m != nil && string(m[1]) != want {
			return fmt.Sprintf("head %s, here %s", m[1], want)
		}
	}
	var st train.RunState
	if _, err := model.ReadState(filepath.Join(dir, "last.ckpt"), &st); err != nil {
		return "" // an older run without a checkpoint: its report had to do
	}
	norm := func(t train.TrainConfig) map[string]any {
		t.Device, t.Threads, t.Workers, t.Out, t.EvalBatch, t.EvalEvery = "", 0, 0, "", 0, 0
		raw, _ := json.Marshal(t)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m
	}
	had, now := norm(st.Config), norm(c)
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(now)) {
		a, _ := json.Marshal(had[k])
		b, _ := json.Marshal(now[k])
		if !bytes.Equal(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s %s, here %s", k, a, b))
		}
	}
	return strings.Join(diffs, "; ")
}

// headLine finds the resolved head in a run's report.
var headLine = regexp.MustCompile(`(?m)^- loss: .* over \d+ classes: (\S+)$`)

// dataLine reads the data set's description from a finished run's report.
func dataLine(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		return ""
	}
	_, after, ok := strings.Cut(string(raw), "## Data\n\n")
	if !ok {
		return ""
	}
	line, _, _ := strings.Cut(after, "\n")
	return line
}

func writeTime(dir string, secs float64) {
	os.WriteFile(filepath.Join(dir, "wall_seconds"), []byte(fmt.Sprintf("%.1f\n", secs)), 0o644)
}

func secsAsMaps(s []float64) []map[string]float64 {
	out := make([]map[string]float64, len(s))
	for i, v := range s {
		out[i] = map[string]float64{"s": v}
	}
	return out
}

// stats returns the mean and sample standard deviation of key over the
// runs that have it.
func stats(ms []map[string]float64, key string) (mean, std float64, n int) {
	var xs []float64
	for _, m := range ms {
		if v, ok := m[key]; ok {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0, 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			std += (x - mean) * (x - mean)
		}
		std = math.Sqrt(std / float64(len(xs)-1))
	}
	return mean, std, len(xs)
}

func orDash(s string) string {
	if s == "" {
		return "(all runs reused from an earlier invocation)"
	}
	return s
}

func cpuName() string {
	return strings.SplitN(cpu.New(0).Describe(), ",", 2)[0]
}

// splitSpecs splits -losses: at semicolons when there is one, else at
// commas, where a part with "=" but no ":" is an option of the spec before
// it ("cosface:s=30,m=0.55,arcface" is two specs).
func splitSpecs(list string) []string {
	if strings.Contains(list, ";") {
		var out []string
		for _, s := range strings.Split(list, ";") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var out []string
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if len(out) > 0 && strings.Contains(part, "=") && !strings.Contains(part, ":") {
			out[len(out)-1] += "," + part
			continue
		}
		out = append(out, part)
	}
	return out
}

// shellJoin joins args as a shell would need them typed: an argument with
// a character the shell treats specially goes in single quotes.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t;&|<>()$`\\\"'*?[]#~{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
