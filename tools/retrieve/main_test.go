package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/testimg"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/train"
)

var synthetic = filepath.Join("..", "..", "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz")

// fixture is a trained tiny run, an untrained resnet18 checkpoint, and an
// index of the run's gallery, made once for all tests of the package.
var fixture struct {
	once            sync.Once
	dir, ckpt, r18  string
	index, indexErr string
}

func tinyConfig(out string) train.TrainConfig {
	c := train.DefaultTrainConfig()
	c.Data = sets.DefaultSpec()
	c.Data.Path = synthetic
	c.Data.TrainItems, c.Data.TestItems = 24, 10
	c.Epochs, c.Batch = 1, 16
	c.Out, c.Threads = out, 2
	return c
}

func setup(t *testing.T) (ckpt, r18, index string) {
	t.Helper()
	fixture.once.Do(func() {
		dir, err := os.MkdirTemp("", "retrieve-test-")
		if err != nil {
			fixture.indexErr = err.Error()
			return
		}
		fixture.dir = dir
		c := tinyConfig(filepath.Join(dir, "run"))
		if err := c.Validate(); err != nil {
			fixture.indexErr = err.Error()
			return
		}
		tr, err := train.NewTrainer(c, false, io.Discard, io.Discard)
		if err == nil {
			err = tr.Run(context.Background())
		}
		if err != nil {
			fixture.indexErr = err.Error()
			return
		}
		fixture.ckpt = filepath.Join(dir, "run", "last.ckpt")
		// An untrained resnet18 of the same embedding size.
		b := backend.MustSelect("cpu")
		c.Model = "resnet18"
		net, err := model.NewNet(b, model.NetConfig{Arch: "resnet18", Dim: c.Dim, InChannels: 1}, 7)
		if err == nil {
			fixture.r18 = filepath.Join(dir, "r18.ckpt")
			err = model.SaveCheckpoint(fixture.r18, b, model.Parts{Model: net}, train.RunState{Config: c})
		}
		if err != nil {
			fixture.indexErr = err.Error()
			return
		}
		fixture.index = filepath.Join(dir, "gallery.safetensors")
		var out, errb bytes.Buffer
		if code := run([]string{"index", "-ckpt", fixture.ckpt, "-out", fixture.index}, &out, &errb); code != 0 {
			fixture.indexErr = fmt.Sprintf("index: exit %d: %s", code, errb.String())
		}
	})
	if fixture.indexErr != "" {
		t.Fatal(fixture.indexErr)
	}
	return fixture.ckpt, fixture.r18, fixture.index
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// runCmd runs a command line and returns its exit status, stdout and stderr.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageAndFailures(t *testing.T) {
	ckpt, r18, index := setup(t)
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.txt")
	os.WriteFile(notImage, []byte("hello"), 0o644)
	bomb := filepath.Join(dir, "bomb.png") // 308 KB, 318 MB decoded
	os.WriteFile(bomb, testimg.PNG16(6300, 6300), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no subcommand"},
		{[]string{"search"}, 2, `unknown subcommand "search"`},
		{[]string{"-h"}, 0, "usage: retrieve SUBCOMMAND"},
		{[]string{"index", "-h"}, 0, "-items-from"},
		{[]string{"index", "-nope"}, 2, "flag provided but not defined: -nope"},
		{[]string{"index", "-out", "x"}, 2, "-ckpt is required"},
		{[]string{"index", "-ckpt", ckpt, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"index", "-ckpt", ckpt, "-batch", "0"}, 2, "-batch"},
		{[]string{"index", "-ckpt", ckpt, "-dir", dir, "-manifest", "m.tsv"}, 2, "not both"},
		{[]string{"index", "-ckpt", ckpt, "-dir", dir, "-items-from", "parent"}, 2, `-items-from: unknown rule "parent"`},
		{[]string{"index", "-ckpt", ckpt, "-items-from", "dirname"}, 2, "-items-from applies to -dir only"},
		{[]string{"index", "-ckpt", ckpt, "-dir", dir, "-preset", "tiny"}, 2, "-preset: data set flags do not apply"},
		{[]string{"index", "-ckpt", ckpt, "-data", "deepfashion-c2s"}, 2, "-data-path"},
		{[]string{"index", "-ckpt", ckpt, "-data", "imagenet"}, 2, `unknown data set "imagenet"`},
		{[]string{"index", "-ckpt", ckpt, "-preset", "huge"}, 2, "-preset"},
		{[]string{"index", "-ckpt", ckpt, "-train-items", "x"}, 2, "-train-items"},
		{[]string{"index", "-ckpt", ckpt, "-data", "deepfashion-c2s", "-data-path", filepath.Join(dir, "DeepFashion"), "-out", filepath.Join(dir, "o.safetensors")}, 1, "DeepFashion"},
		{[]string{"index", "-ckpt", ckpt, "-data-path", filepath.Join(dir, "no-fmnist.tgz"), "-out", filepath.Join(dir, "o.safetensors")}, 1, "no-fmnist.tgz"},
		{[]string{"index", "-ckpt", filepath.Join(dir, "missing.ckpt")}, 1, "-ckpt: "},
		{[]string{"index", "-ckpt", index}, 1, "not a dmlgo checkpoint"},
		{[]string{"index", "-ckpt", ckpt, "-dir", filepath.Join(dir, "nope")}, 1, "nope"},
		{[]string{"index", "-ckpt", ckpt, "-device", "tpu"}, 1, `-device: device "tpu"`},
		{[]string{"index", "-ckpt", ckpt, "-out", filepath.Join(dir, "no", "such", "x.safetensors")}, 1, "-out"},
		{[]string{"query", "-ckpt", ckpt}, 2, "-index is required"},
		{[]string{"query", "-ckpt", ckpt, "-index", index}, 2, "give query images"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "-k", "0", "q.png"}, 2, "-k must be at least 1"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "-box", "1,2", "q.png"}, 2, "-box"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "-item", "7", "-manifest", "m.tsv", "q.png"}, 2, "not both"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "-item", "red-top", "fmnist-c2s:row=1"}, 2, "-item"},
		{[]string{"query", "-ckpt", ckpt, "-index", ckpt, "q.png"}, 1, "not a dmlgo index"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, filepath.Join(dir, "q.png")}, 1, "q.png"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, notImage}, 1, "notes.txt"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "fmnist-c2s:row=x"}, 1, "fmnist-c2s:row=N"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, bomb}, 1, "(-max-decode-bytes)"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "-max-pixels", "1000", bomb}, 1, "(-max-pixels)"},
		{[]string{"query", "-ckpt", ckpt, "-index", index, "-max-decode-bytes", "0", bomb}, 2, "-max-decode-bytes"},
		{[]string{"index", "-ckpt", ckpt, "-threads", "100000"}, 2, "-threads must be from 0"},
		{[]string{"serve", "-ckpt", ckpt, "-index", index, "-decode-budget", "1MiB"}, 2, "-decode-budget"},
		{[]string{"serve", "-ckpt", ckpt, "-index", index, "-cors-origin", "evil"}, 2, "-cors-origin"},
		{[]string{"query", "-ckpt", r18, "-index", index, "fmnist-c2s:row=1"}, 1, "was built by model"},
		{[]string{"eval"}, 2, "-ckpt is required"},
		{[]string{"eval", "-ckpt", ckpt, "-compare", "a,b"}, 2, "-compare reads"},
		{[]string{"eval", "-compare", ",,"}, 2, "-compare: give run folders"},
		{[]string{"eval", "-compare", dir}, 1, "metrics.json"},
		{[]string{"eval", "-ckpt", ckpt, "-data", "tsv"}, 2, "-data-path"},
		{[]string{"eval", "-ckpt", ckpt, "-data", "tsv", "-data-path", filepath.Join(dir, "none.tsv")}, 1, "none.tsv"},
		{[]string{"serve", "-ckpt", ckpt}, 2, "-index is required"},
		{[]string{"serve", "-ckpt", ckpt, "-index", index, "-max-upload", "lots"}, 2, "-max-upload"},
		{[]string{"serve", "-ckpt", ckpt, "-index", index, "-k", "500"}, 2, "-max-k"},
		{[]string{"serve", "-ckpt", ckpt, "-index", index, "-read-timeout", "0s"}, 2, "timeouts must be positive"},
		{[]string{"serve", "-ckpt", r18, "-index", index}, 1, "was built by model"},
		{[]string{"serve", "-ckpt", ckpt, "-index", index, "-addr", "256.0.0.1:bad"}, 1, "-addr"},
	}
	for _, c := range cases {
		code, out, errs := runCmd(c.args...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("%v: exit %d, want %d with %q; stderr:\n%s", c.args, code, c.code, c.want, errs)
		}
	}
	// The fingerprint message names both models and both files.
	_, _, errs := runCmd("query", "-ckpt", r18, "-index", index, "fmnist-c2s:row=1")
	ix, _ := retrieval.LoadIndex(index)
	for _, s := range []string{ix.Fingerprint, r18, index, "resnet18"} {
		if !strings.Contains(errs, s) {
			t.Errorf("mismatch message does not name %s:\n%s", s, errs)
		}
	}
}

// TestNothingHalfWritten: a failed index leaves neither the output nor a
// temporary file.
func TestNothingHalfWritten(t *testing.T) {
	ckpt, _, _ := setup(t)
	dir := t.TempDir()
	shop := filepath.Join(dir, "shop")
	os.MkdirAll(filepath.Join(shop, "12"), 0o755)
	os.WriteFile(filepath.Join(shop, "12", "broken.jpg"), []byte("not a JPEG"), 0o644)
	out := filepath.Join(dir, "out", "shop.safetensors")
	os.MkdirAll(filepath.Dir(out), 0o755)
	code, _, errs := runCmd("index", "-ckpt", ckpt, "-dir", shop, "-strict", "-out", out, "-npy", filepath.Join(dir, "out", "npy"))
	if code != 1 || !strings.Contains(errs, "broken.jpg") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if left, _ := os.ReadDir(filepath.Dir(out)); len(left) != 0 {
		t.Errorf("a failed index left %v", left)
	}
	// Without -strict, nothing can be indexed: an error too.
	code, _, errs = runCmd("index", "-ckpt", ckpt, "-dir", shop, "-out", out)
	if code != 1 || !strings.Contains(errs, "no image could be indexed") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if left, _ := os.ReadDir(filepath.Dir(out)); len(left) != 0 {
		t.Errorf("a failed index left %v", left)
	}
}

func TestIndexQueryEvalCompare(t *testing.T) {
	ckpt, _, index := setup(t)
	dir := t.TempDir()

	// index with -npy.
	ix2 := filepath.Join(dir, "g.safetensors")
	npy := filepath.Join(dir, "npy")
	code, out, errs := runCmd("index", "-ckpt", ckpt, "-out", ix2, "-npy", npy)
	if code != 0 || !strings.Contains(out, "10 images of 10 items") || !strings.Contains(out, "embeddings.npy") {
		t.Fatalf("index: exit %d\n%s\n%s", code, out, errs)
	}
	for _, f := range []string{"embeddings.npy", "items.npy", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(npy, f)); err != nil {
			t.Error(err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(npy, "manifest.json"))
	var man struct {
		Count int    `json:"count"`
		Dim   int    `json:"dim"`
		FP    string `json:"fingerprint"`
	}
	if err := json.Unmarshal(raw, &man); err != nil || man.Count != 10 || man.Dim != 128 || man.FP == "" {
		t.Errorf("manifest.json: %+v %v", man, err)
	}

	// query: JSON, with data queries and a file query.
	ix, _ := retrieval.LoadIndex(index)
	code, out, errs = runCmd("query", "-ckpt", ckpt, "-index", index, "-k", "3", "-json", "-data-queries", "2", ix.Paths[0])
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, errs)
	}
	var qj struct {
		K       int                   `json:"k"`
		Queries []catalog.QueryResult `json:"queries"`
	}
	if err := json.Unmarshal([]byte(out), &qj); err != nil || qj.K != 3 || len(qj.Queries) != 3 {
		t.Fatalf("query JSON: %v\n%s", err, out)
	}
	if q := qj.Queries[0]; q.Matches[0].Row != 0 || q.Item == nil || *q.Item != ix.Items[0] || q.FirstHit != 1 || len(q.Matches) != 3 {
		t.Errorf("a gallery view does not find itself: %+v", q)
	}
	for _, q := range qj.Queries[1:] {
		if q.Item == nil || !strings.HasPrefix(q.Query, "fmnist-c2s:row=") {
			t.Errorf("data query %+v", q)
		}
	}

	// query: a PNG file with -item, a table, a grid; flags after the image.
	g4, err := catalog.NewGallery(ix, sets.Spec{}, io.Discard).Image(4)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "q.png")
	if err := catalog.WritePNG(img, g4); err != nil {
		t.Fatal(err)
	}
	grid := filepath.Join(dir, "grid.png")
	code, out, errs = runCmd("query", "-ckpt", ckpt, "-index", index, img, "-item", fmt.Sprint(ix.Items[4]), "-k", "4", "-grid", grid)
	if code != 0 || !strings.Contains(out, "rank  score") || !strings.Contains(out, "1 queries with a known item: 1 found at rank 1") {
		t.Fatalf("query table: exit %d\n%s\n%s", code, out, errs)
	}
	if st, err := os.Stat(grid); err != nil || st.Size() == 0 {
		t.Errorf("grid: %v", err)
	}

	// eval: definitions once, both tables, the files.
	evalDir := filepath.Join(dir, "eval")
	code, out, errs = runCmd("eval", "-ckpt", ckpt, "-out", evalDir)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	if strings.Count(out, "top-k accuracy:") != 1 || !strings.Contains(out, "| top-1 |") || !strings.Contains(out, "recall@50") {
		t.Errorf("eval output:\n%s", out)
	}
	runMetrics, _ := os.ReadFile(filepath.Join(filepath.Dir(ckpt), "metrics.json"))
	evalMetrics, _ := os.ReadFile(filepath.Join(evalDir, "metrics.json"))
	if !bytes.Equal(runMetrics, evalMetrics) {
		t.Errorf("eval's metrics.json differs from training's:\n%s\n%s", evalMetrics, runMetrics)
	}
	code, out, _ = runCmd("eval", "-ckpt", ckpt, "-out", evalDir, "-json")
	var ej model.EvalResult
	if code != 0 || json.Unmarshal([]byte(out), &ej) != nil || ej.Queries != 10 || len(ej.Metrics) < 16 {
		t.Errorf("eval -json: exit %d\n%s", code, out)
	}

	// compare the run and the evaluation.
	code, out, errs = runCmd("eval", "-compare", filepath.Dir(ckpt)+","+evalDir, "-out", dir)
	if code != 0 || !strings.Contains(out, "| run | top-1 |") || !strings.Contains(out, "| run |") || !strings.Contains(out, "| eval |") {
		t.Fatalf("compare: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "compare.png")); err != nil {
		t.Error(err)
	}
}

// TestServeCommand runs the serve subcommand, searches over HTTP and stops
// it with SIGTERM: it shuts down gracefully and exits 0.
func TestServeCommand(t *testing.T) {
	ckpt, _, index := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var stderr bytes.Buffer
	var mu sync.Mutex
	done := make(chan int, 1)
	go func() {
		code := run([]string{"serve", "-ckpt", ckpt, "-index", index, "-addr", addr, "-max-upload", "1KiB"}, io.Discard, &lockedWriter{w: &stderr, mu: &mu})
		done <- code
	}()
	base := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d: %s", code, stderr.String())
		default:
		}
		if i > 300 {
			t.Fatal("serve did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post(base+"/v1/search?k=2", "image/png", bytes.NewReader(bytes.Repeat([]byte{1}, 2048)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload: %d", resp.StatusCode)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		mu.Lock()
		log := stderr.String()
		mu.Unlock()
		if code != 0 || !strings.Contains(log, "shutting down") || !strings.Contains(log, "413") {
			t.Errorf("serve exited with %d:\n%s", code, log)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestManifestIndex indexes a TSV manifest with named items and queries one
// of its consumer photos, whose item -manifest gives.
func TestManifestIndex(t *testing.T) {
	ckpt, _, _ := setup(t)
	dir := t.TempDir()
	tsv := filepath.Join("..", "..", "data", "testdata", "manifest", "example.tsv")
	ix := filepath.Join(dir, "m.safetensors")
	code, out, errs := runCmd("index", "-ckpt", ckpt, "-manifest", tsv, "-out", ix)
	if code != 0 || !strings.Contains(out, "skipped 1 file ") || !strings.Contains(errs, "1 missing image") {
		t.Fatalf("index: exit %d\n%s\n%s", code, out, errs)
	}
	photo := filepath.Join("..", "..", "data", "testdata", "deepfashion", "consumer2shop", "Img", "img", "TROUSER", "Jeans", "id_00000006", "comsumer_01.jpg")
	code, out, errs = runCmd("query", "-ckpt", ckpt, "-index", ix, "-manifest", tsv, "-k", "2", photo)
	if code != 0 || !strings.Contains(out, "(cyan-jeans)") || !strings.Contains(out, "1 queries with a known item") {
		t.Fatalf("query: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs := runCmd("query", "-ckpt", ckpt, "-index", ix, "-data-queries", "2"); code != 1 || !strings.Contains(errs, "built from a TSV manifest") {
		t.Errorf("-data-queries on a manifest index: exit %d: %s", code, errs)
	}
	code, out, errs = runCmd("query", "-ckpt", ckpt, "-index", ix, "-item", "cyan-jeans", "-k", "2", "-json", photo)
	var qj struct {
		Queries []catalog.QueryResult `json:"queries"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &qj) != nil || qj.Queries[0].Item == nil || qj.Queries[0].Matches[0].ItemName == "" {
		t.Fatalf("query -item NAME: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestPrecisionFlag: -precision bf16 and int8 build indexes whose
// embeddings are within the precision's error of the fp32 ones (or, on a
// CPU without the instructions, the fp32 ones themselves, with the
// fallback said); a precision that does not exist is a usage error naming
// the flag.
func TestPrecisionFlag(t *testing.T) {
	ckpt, _, index := setup(t)
	dir := t.TempDir()
	a, err := retrieval.LoadIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prec, ran string
		minCos    float64
	}{{"bf16", "bf16 (AVX-512 BF16)", 0.995}, {"int8", "int8 (AVX-512 VNNI)", 0.99}} {
		ix2 := filepath.Join(dir, c.prec+".safetensors")
		code, out, errs := runCmd("index", "-ckpt", ckpt, "-out", ix2, "-precision", c.prec)
		if code != 0 {
			t.Fatalf("index -precision %s: exit %d\n%s\n%s", c.prec, code, out, errs)
		}
		ran := strings.Contains(errs, "precision: "+c.ran)
		if !ran && !strings.Contains(errs, "precision: fp32 ("+c.prec+" asked for") {
			t.Fatalf("index -precision %s does not say what ran:\n%s", c.prec, errs)
		}
		b, err := retrieval.LoadIndex(ix2)
		if err != nil {
			t.Fatal(err)
		}
		if a.Fingerprint != b.Fingerprint || a.Len() != b.Len() {
			t.Fatalf("%s index: fingerprint %s, %d rows; fp32: %s, %d", c.prec, b.Fingerprint, b.Len(), a.Fingerprint, a.Len())
		}
		identical := true
		for i := 0; i < a.Len(); i++ {
			var dot float64
			for j := 0; j < a.Dim; j++ {
				x, y := a.Embeddings[i*a.Dim+j], b.Embeddings[i*a.Dim+j]
				dot += float64(x) * float64(y)
				identical = identical && x == y
			}
			if dot < c.minCos {
				t.Errorf("%s row %d: cosine %.5f to the fp32 embedding", c.prec, i, dot)
			}
		}
		if ran == identical {
			t.Errorf("%s ran: %v, but the embeddings are identical to fp32's: %v", c.prec, ran, identical)
		}
	}
	code, _, errs := runCmd("index", "-ckpt", ckpt, "-out", filepath.Join(dir, "x.safetensors"), "-precision", "fp8")
	if code != 2 || !strings.Contains(errs, "-precision must be one of fp32, bf16, int8") {
		t.Errorf("-precision fp8: exit %d: %s", code, errs)
	}
}
