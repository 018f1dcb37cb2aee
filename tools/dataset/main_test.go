package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
)

const (
	synthetic = "../../data/testdata/fmnist/fashion-mnist-synthetic.tgz"
	c2sRoot   = "../../data/testdata/deepfashion/consumer2shop"
	tsvFile   = "../../data/testdata/manifest/example.tsv"
)

func runTool(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestStats(t *testing.T) {
	out, log, err := runTool(t, "stats", "-data-path", synthetic, "-train-items", "40", "-test-items", "20")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for _, want := range []string{"fmnist-c2s shift=moderate train=40 items", "train          40       40        80", "20 queries", "2 invalid source row skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runTool(t, "stats", "-data", "deepfashion-c2s", "-data-path", c2sRoot, "-json")
	if err != nil {
		t.Fatal(err)
	}
	var rep statsReport
	if err := json.Unmarshal([]byte(out), &struct {
		*statsReport
		Stats    json.RawMessage `json:"stats"`
		Warnings json.RawMessage `json:"warnings"`
	}{statsReport: &rep}); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Classes != 3 || rep.Queries != 4 || rep.Excluded != 1 || !strings.Contains(out, `"missing image"`) {
		t.Errorf("json report: %+v\n%s", rep, out)
	}
}

func TestSheet(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sheet.png")
	out, _, err := runTool(t, "sheet", "-data-path", synthetic, "-shifts", "mild,strong", "-items", "5", "-views", "2", "-o", p)
	if err != nil || strings.TrimSpace(out) != p {
		t.Fatalf("%v %q", err, out)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dy() < 5*96 {
		t.Errorf("sheet: %v %v", err, img.Bounds())
	}
	if _, _, err := runTool(t, "sheet", "-data-path", synthetic, "-shifts", "wild"); err == nil || !strings.Contains(err.Error(), "-shifts") {
		t.Errorf("bad shift: %v", err)
	}
}

func TestExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "exp")
	_, log, err := runTool(t, "export", "-data-path", synthetic, "-train-items", "30", "-test-items", "10", "-o", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for _, f := range []string{"images.npy", "item_ids.npy", "labels.npy", "domains.npy", "splits.npy", "categories.npy", "views.npy", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(log, "images.npy      uint8  [110 32 32]") {
		t.Errorf("log:\n%s", log)
	}
	if _, _, err := runTool(t, "export", "-data", "tsv", "-data-path", tsvFile); err == nil {
		t.Error("export of a file-based set accepted")
	}
}

func TestManifest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c2s.tsv")
	if _, log, err := runTool(t, "manifest", "-data-path", c2sRoot, "-check", "none", "-o", p); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	m, err := data.ReadTSV(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rows) != 21 || m.Rows[0].Box.Empty() {
		t.Errorf("%d rows, box %v", len(m.Rows), m.Rows[0].Box)
	}
	out, _, err := runTool(t, "manifest", "-data", "tsv", "-data-path", tsvFile, "-check", "exists")
	if err != nil || !strings.HasPrefix(out, "path\titem_id\tdomain\tsplit\tx1\ty1\tx2\ty2\tcategory\n") {
		t.Errorf("%v\n%s", err, out)
	}
}

func TestFetchFrom(t *testing.T) {
	dir := t.TempDir()
	// The synthetic archive does not have the pinned integrity: a clear
	// error, and nothing left behind.
	_, _, err := runTool(t, "fetch", "-dir", dir, "-from", synthetic)
	if err == nil || !strings.Contains(err.Error(), "integrity mismatch") {
		t.Errorf("fetch -from synthetic: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	// The real archive, when this checkout has fetched it.
	real := filepath.Join("..", "..", ".cache", "data", fmnist.FileName)
	if _, err := os.Stat(real); err != nil {
		t.Skip("real archive not fetched")
	}
	out, log, err := runTool(t, "fetch", "-dir", dir, "-from", real)
	if err != nil || strings.TrimSpace(out) != filepath.Join(dir, fmnist.FileName) || !strings.Contains(log, "fetched") {
		t.Errorf("%v %q %q", err, out, log)
	}
	_, log, _ = runTool(t, "fetch", "-dir", dir)
	if !strings.Contains(log, "nothing to do") {
		t.Errorf("second fetch: %q", log)
	}
}

func TestUsage(t *testing.T) {
	if _, log, err := runTool(t); err == nil || !strings.Contains(log, "usage: dataset COMMAND") {
		t.Errorf("%v %q", err, log)
	}
	if _, _, err := runTool(t, "frobnicate"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Error(err)
	}
	if _, _, err := runTool(t, "stats", "extra"); err == nil || !strings.Contains(err.Error(), "unexpected argument") {
		t.Error(err)
	}
	if _, _, err := runTool(t, "stats", "-no-such-flag"); err == nil {
		t.Error("unknown flag accepted")
	}
}
