package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/testmodel"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/report"
	"github.com/dmlgo/dmlgo/retrieval"
)

// TestRetrieveEndToEnd trains a few steps, then indexes the data set's
// gallery, a folder and a TSV manifest, queries, evaluates and checks that
// every path agrees with training's own evaluation.
func TestRetrieveEndToEnd(t *testing.T) {
	dir := t.TempDir()
	tr := testmodel.Train(t, filepath.Join(dir, "run"))
	ckpt := filepath.Join(dir, "run", "last.ckpt")
	m := testmodel.Load(t, ckpt)
	if want := model.Fingerprint(tr.B, tr.Net, "resnet-s"); m.Fingerprint != want {
		t.Fatalf("fingerprint of the loaded model %s, of the trained one %s", m.Fingerprint, want)
	}
	if m.Transform.Channels != 1 || m.Transform.Size != 32 {
		t.Fatalf("transform %+v, want FMNIST-C2S greyscale 32×32", m.Transform)
	}
	ctx := context.Background()

	// The data set's gallery: the same embeddings as training's evaluation.
	spec := m.Card.Data
	ix, rep, err := BuildIndex(ctx, m, IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ds := tr.DS
	if ix.Len() != ds.Gallery.Len() || rep.Rows != ix.Len() || rep.Skipped != 0 {
		t.Fatalf("index of %d rows (report %+v), gallery %d", ix.Len(), rep, ds.Gallery.Len())
	}
	emb, err := tr.Model().EmbedSubset(ctx, ds.Gallery, model.EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := emb.Embeddings
	for i := range want {
		if d := math.Abs(float64(want[i] - ix.Embeddings[i])); d > 1e-5 {
			t.Fatalf("embedding value %d: index %g, Embed %g", i, ix.Embeddings[i], want[i])
		}
	}
	for i, r := range ds.Gallery.Rows {
		if ix.Items[i] != ds.Manifest.Rows[r].Item || ix.Paths[i] != fmt.Sprintf("%s%d", FMNISTRowPrefix, r) {
			t.Fatalf("index row %d: item %d path %q, gallery row %d item %d", i, ix.Items[i], ix.Paths[i], r, ds.Manifest.Rows[r].Item)
		}
	}
	if ix.Meta["data"] == "" || ix.Meta["arch"] != "resnet-s" || ix.Fingerprint != m.Fingerprint {
		t.Errorf("index meta %v, fingerprint %s", ix.Meta, ix.Fingerprint)
	}
	ixPath := filepath.Join(dir, "gallery.safetensors")
	if err := ix.Save(ixPath); err != nil {
		t.Fatal(err)
	}
	ix, err = retrieval.LoadIndex(ixPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckIndex(ix, ixPath); err != nil {
		t.Fatal(err)
	}

	// Evaluation: the numbers training reported.
	res, err := m.EvaluateData(ctx, spec, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	last := tr.State.Evals[len(tr.State.Evals)-1].Metrics
	for _, k := range report.MetricsKeys {
		if math.Abs(res.Metrics[k]-last[k]) > 1e-9 {
			t.Errorf("%s: eval %g, training %g", k, res.Metrics[k], last[k])
		}
	}
	evalDir := filepath.Join(dir, "eval")
	if err := report.WriteEval(evalDir, res, "tiny"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(evalDir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mj map[string]float64
	if err := json.Unmarshal(raw, &mj); err != nil || len(mj) != len(report.MetricsKeys) {
		t.Errorf("metrics.json %s: %v", raw, err)
	}
	for _, f := range []string{"eval.json", "topk.png"} {
		if _, err := os.Stat(filepath.Join(evalDir, f)); err != nil {
			t.Error(err)
		}
	}
	if s := report.EvalTables(res.Metrics); !strings.Contains(s, "recall@10") || !strings.Contains(s, "precision@1") || !strings.Contains(s, "top-50") {
		t.Errorf("tables:\n%s", s)
	}

	// Every query of the data set through the index: the same top-k.
	gal := NewGallery(ix, sets.Spec{}, io.Discard)
	qs, err := gal.DataQueries(1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != ds.Query.Len() {
		t.Fatalf("%d data queries, the data set has %d", len(qs), ds.Query.Len())
	}
	results, err := Query(ctx, m, live.Static(ix), qs, ix.Len(), live.SearchParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 5, 10} {
		hits := 0
		for _, r := range results {
			if r.FirstHit > 0 && r.FirstHit <= k {
				hits++
			}
		}
		if got := float64(hits) / float64(len(results)); math.Abs(got-last[fmt.Sprintf("top%d", k)]) > 1e-9 {
			t.Errorf("top-%d through the index %g, training's evaluation %g", k, got, last[fmt.Sprintf("top%d", k)])
		}
	}
	for i, r := range results {
		if r.Item == nil || *r.Item != ds.Manifest.Rows[ds.Query.Rows[i]].Item {
			t.Fatalf("query %d (%s): item %v, want %d", i, r.Query, r.Item, ds.Manifest.Rows[ds.Query.Rows[i]].Item)
		}
		for j := 1; j < len(r.Matches); j++ {
			if r.Matches[j].Score > r.Matches[j-1].Score {
				t.Fatalf("query %d: results not sorted: %+v", i, r.Matches)
			}
		}
	}

	// Gallery images rendered again from the index's data spec (test items
	// only) are the data set's.
	for i, r := range ds.Gallery.Rows {
		img, err := gal.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		if !testmodel.SameImage(img, ds.Manifest.Rows[r].Image) {
			t.Fatalf("gallery row %d renders differently from manifest row %d", i, r)
		}
	}
	// EmbedImages gives the index's embeddings back.
	imgs := make([]image.Image, ix.Len())
	for i := range imgs {
		imgs[i], _ = gal.Image(i)
	}
	again, err := m.EmbedImages(ctx, imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if d := math.Abs(float64(again[i] - ix.Embeddings[i])); d > 1e-5 {
			t.Fatalf("EmbedImages value %d: %g, index %g", i, again[i], ix.Embeddings[i])
		}
	}
	q0, err := gal.LoadQuery(qs[0].Name)
	if err != nil || !q0.HasItem || q0.Item != qs[0].Item || !testmodel.SameImage(q0.Image, qs[0].Image) {
		t.Errorf("LoadQuery(%s): %+v %v", qs[0].Name, q0, err)
	}
	// A train row needs the whole benchmark.
	tq, err := gal.LoadQuery(FMNISTRowPrefix + "1")
	if err != nil || !testmodel.SameImage(tq.Image, ds.Manifest.Rows[1].Image) || tq.Item != ds.Manifest.Rows[1].Item {
		t.Errorf("train row 1: %v", err)
	}
	if _, err := gal.LoadQuery(FMNISTRowPrefix + "99999"); err == nil || !strings.Contains(err.Error(), "rows") {
		t.Errorf("row past the end: %v", err)
	}

	// The grid: a blue query frame, then green or red frames.
	grid := Grid(qs[:3], results[:3], gal, GridOptions{Thumb: 40, Title: "test"})
	cell := 40 + 2*gridBorder
	top := gridPad + 2*gridLine
	if c := grid.RGBAAt(gridPad+1, top+1); c != gridQuery {
		t.Errorf("query frame colour %v", c)
	}
	for i, r := range results[:3] {
		y := top + i*(cell+2*gridLine+4+gridPad) + 1
		for j, mt := range r.Matches {
			x := gridPad + cell + gridGap + j*(cell+gridPad) + 1
			want := gridOther
			if *mt.SameItem {
				want = gridSame
			}
			if c := grid.RGBAAt(x, y); c != want {
				t.Fatalf("query %d match %d: frame %v, want %v", i, j, c, want)
			}
		}
	}
	gridPath := filepath.Join(dir, "grid.png")
	if err := WritePNG(gridPath, grid); err != nil {
		t.Fatal(err)
	}
	if img, err := data.DecodeFile(gridPath); err != nil || img.Bounds() != grid.Bounds() {
		t.Errorf("grid.png: %v", err)
	}

	// A folder of the gallery's images, one folder per item: each image
	// finds itself first.
	shop := filepath.Join(dir, "shop")
	for i := 0; i < ix.Len(); i++ {
		img, _ := gal.Image(i)
		sub := filepath.Join(shop, fmt.Sprint(ix.Items[i]))
		if i == 0 {
			sub = filepath.Join(shop, fmt.Sprintf("id_%08d", ix.Items[i]))
		}
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, "shop_01.png"), testmodel.PNG(t, img), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(shop, "README.txt"), []byte("not an image"), 0o644)
	os.WriteFile(filepath.Join(shop, ".DS_Store"), []byte("ignored"), 0o644)
	os.WriteFile(filepath.Join(shop, "broken.jpg"), []byte("not a JPEG"), 0o644)
	fix, frep, err := BuildIndex(ctx, m, IndexSource{Dir: shop, ItemsFrom: ItemsFromDirname}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if fix.Len() != ix.Len() || frep.Skipped != 2 || frep.Warnings.Count(WarnNotImage) != 1 || frep.Warnings.Count(data.WarnCorruptImage) != 1 {
		t.Fatalf("folder index: %d rows, report %v", fix.Len(), frep)
	}
	if data.DistinctItems(fix.Items) != data.DistinctItems(ix.Items) {
		t.Errorf("folder items %v, gallery items %v", fix.Items, ix.Items)
	}
	for i, p := range fix.Paths {
		if !filepath.IsAbs(p) || !strings.HasSuffix(p, "shop_01.png") {
			t.Fatalf("folder index path %d: %q", i, p)
		}
	}
	fgal := NewGallery(fix, sets.Spec{}, io.Discard)
	var self []QueryImage
	for i := range fix.Paths {
		q, err := fgal.LoadQuery(fix.Paths[i])
		if err != nil {
			t.Fatal(err)
		}
		q.Item, q.HasItem = fix.Items[i], true
		self = append(self, q)
	}
	sr, err := Query(ctx, m, live.Static(fix), self, 3, live.SearchParams{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range sr {
		if r.Matches[0].Row != i && r.Matches[0].Score < r.Matches[1].Score+1e-6 {
			continue // an exact tie with another image
		}
		if r.Matches[0].Row != i || r.FirstHit != 1 || r.Matches[0].Score < 0.999 {
			t.Errorf("image %d finds row %d first (score %g)", i, r.Matches[0].Row, r.Matches[0].Score)
		}
	}
	if _, _, err := BuildIndex(ctx, m, IndexSource{Dir: shop}, model.EmbedOptions{Strict: true}, io.Discard); err == nil || !strings.Contains(err.Error(), "README.txt") {
		t.Errorf("strict folder index with a text file: %v", err)
	}
	os.Remove(filepath.Join(shop, "README.txt"))
	if _, _, err := BuildIndex(ctx, m, IndexSource{Dir: shop}, model.EmbedOptions{Strict: true}, io.Discard); err == nil || !strings.Contains(err.Error(), "broken.jpg") {
		t.Errorf("strict folder index with a broken JPEG: %v", err)
	}

	// A TSV manifest with named items: its test shop rows.
	tsv := filepath.Join("..", "data", "testdata", "manifest", "example.tsv")
	tix, trep, err := BuildIndex(ctx, m, IndexSource{Manifest: tsv}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	man, _ := data.ReadTSV(tsv)
	// The fixture lacks grey-dress's shop image: skipped and counted.
	if want := manifestGallery(man, false); tix.Len() != len(want)-1 || trep.Skipped != 1 || trep.Warnings.Count(data.WarnMissingImage) != 1 {
		t.Fatalf("manifest index %d rows, report %v; gallery rows %d", tix.Len(), trep, len(want))
	}
	id, err := ParseItem(tix, "cyan-jeans")
	if err != nil || ItemNames(tix)[id] != "cyan-jeans" {
		t.Errorf("item names %v: %d %v", ItemNames(tix), id, err)
	}
	known, err := ManifestItems(tsv)
	if err != nil || len(known) != len(man.Rows) {
		t.Errorf("ManifestItems: %d rows, %v", len(known), err)
	}
}

// TestRetrieveOtherModel: an index is refused by any other model, with a
// message naming both fingerprints and both files.
func TestRetrieveOtherModel(t *testing.T) {
	dir := t.TempDir()
	a := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "a.ckpt"), "resnet-s", 16, 1))
	b := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "b.ckpt"), "resnet-s", 16, 2))
	r18 := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "r18.ckpt"), "resnet18", 16, 1))
	if a.Fingerprint == b.Fingerprint || a.Fingerprint == r18.Fingerprint {
		t.Fatalf("fingerprints %s %s %s", a.Fingerprint, b.Fingerprint, r18.Fingerprint)
	}
	spec := a.Card.Data
	ix, _, err := BuildIndex(context.Background(), a, IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ixPath := filepath.Join(dir, "a.safetensors")
	if err := ix.Save(ixPath); err != nil {
		t.Fatal(err)
	}
	for _, other := range []*model.Model{b, r18} {
		err := other.CheckIndex(ix, ixPath)
		if err == nil {
			t.Fatalf("%s accepted an index of %s", other.Path, a.Path)
		}
		for _, s := range []string{a.Fingerprint, other.Fingerprint, ixPath, other.Path, a.Path} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("message %q does not name %s", err, s)
			}
		}
	}
	// Same weights, another embedding size: refused too.
	ix2 := *ix
	ix2.Dim = 8
	if err := a.CheckIndex(&ix2, ixPath); err == nil || !strings.Contains(err.Error(), "8-dimensional") {
		t.Errorf("dimension mismatch: %v", err)
	}
	// An index is not a checkpoint, and the reverse.
	if _, err := model.Load(ixPath, model.Options{Device: "cpu"}, io.Discard); err == nil || !strings.Contains(err.Error(), "not a dmlgo checkpoint") {
		t.Errorf("index as checkpoint: %v", err)
	}
	if _, err := retrieval.LoadIndex(a.Path); err == nil || !strings.Contains(err.Error(), "not a dmlgo index") {
		t.Errorf("checkpoint as index: %v", err)
	}
	if _, err := model.Load(filepath.Join(dir, "missing.ckpt"), model.Options{Device: "cpu"}, io.Discard); err == nil || !strings.Contains(err.Error(), "missing.ckpt") {
		t.Errorf("missing checkpoint: %v", err)
	}
}

func TestRetrieveIndexSourceErrors(t *testing.T) {
	dir := t.TempDir()
	m := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "a.ckpt"), "resnet-s", 8, 1))
	ctx := context.Background()
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(filepath.Join(empty, "sub"), 0o755)
	os.WriteFile(filepath.Join(empty, "sub", "notes.txt"), nil, 0o644)
	bad := sets.DefaultSpec()
	bad.Kind, bad.Path = sets.DeepFashionC2S, filepath.Join(dir, "no-such-folder")
	cases := []struct {
		src  IndexSource
		want string
	}{
		{IndexSource{Dir: filepath.Join(dir, "nope")}, "nope"},
		{IndexSource{Dir: empty}, "holds no .jpg"},
		{IndexSource{Dir: m.Path}, "not a folder"},
		{IndexSource{Dir: empty, ItemsFrom: "parent"}, "-items-from"},
		{IndexSource{Manifest: filepath.Join(dir, "none.tsv")}, "none.tsv"},
		{IndexSource{Data: &bad}, "no-such-folder"},
		{IndexSource{}, "exactly one"},
		{IndexSource{Dir: empty, Manifest: "x.tsv"}, "exactly one"},
	}
	for _, c := range cases {
		_, _, err := BuildIndex(ctx, m, c.src, model.EmbedOptions{}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.src, err, c.want)
		}
	}
	// A manifest whose images are all missing: nothing to index.
	tsv := filepath.Join(dir, "m.tsv")
	os.WriteFile(tsv, []byte("gone1.jpg\t1\tshop\ttest\ngone2.jpg\t2\tshop\ttest\n"), 0o644)
	if _, _, err := BuildIndex(ctx, m, IndexSource{Manifest: tsv}, model.EmbedOptions{}, io.Discard); err == nil || !strings.Contains(err.Error(), "no image could be indexed") {
		t.Errorf("all missing: %v", err)
	}
	if _, _, err := BuildIndex(ctx, m, IndexSource{Manifest: tsv}, model.EmbedOptions{Strict: true}, io.Discard); err == nil || !strings.Contains(err.Error(), "gone1.jpg") {
		t.Errorf("strict, missing: %v", err)
	}
	// A cancelled build stops.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	spec := m.Card.Data
	if _, _, err := BuildIndex(cctx, m, IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard); err == nil {
		t.Errorf("cancelled build returned no error")
	}
}

func TestDirItem(t *testing.T) {
	for dir, want := range map[string]int64{"12": 12, "a/b/0042": 42, "id_00000007": 7, "x/id_9": 9} {
		if got, ok := dirItem(dir); !ok || got != want {
			t.Errorf("dirItem(%q) = %d, %v; want %d", dir, got, ok, want)
		}
	}
	for _, dir := range []string{".", "", "misc", "-3", "+3", "id_", "12a", "99999999999999999999"} {
		if got, ok := dirItem(dir); ok {
			t.Errorf("dirItem(%q) = %d, want no item", dir, got)
		}
	}
}

func TestParseBox(t *testing.T) {
	if b, err := ParseBox("1, 2,30,40"); err != nil || b != image.Rect(1, 2, 30, 40) {
		t.Errorf("ParseBox: %v %v", b, err)
	}
	for _, s := range []string{"1,2,3", "1,2,1,5", "a,b,c,d", "5,5,4,9"} {
		if _, err := ParseBox(s); err == nil {
			t.Errorf("ParseBox(%q) accepted", s)
		}
	}
}

func TestGridMissingImage(t *testing.T) {
	ix := &retrieval.Index{Dim: 1, Embeddings: []float32{1}, Items: []int64{3}, Paths: []string{"/no/such/file.png"}, Meta: map[string]string{}}
	gal := NewGallery(ix, sets.Spec{}, io.Discard)
	if _, err := gal.Image(0); err == nil {
		t.Fatal("a missing gallery file gave no error")
	}
	if _, err := gal.Image(1); err == nil {
		t.Fatal("a row outside the index gave no error")
	}
	q := QueryImage{Name: "q", Image: image.NewGray(image.Rect(0, 0, 10, 20))}
	same := false
	res := []QueryResult{{Query: "q", Matches: []Match{{Rank: 1, Row: 0, Item: 3, Score: 0.5, SameItem: &same}}}}
	img := Grid([]QueryImage{q}, res, gal, GridOptions{Thumb: 32})
	if c := img.RGBAAt(gridPad+32+2*gridBorder+gridGap+1, gridPad+1); c != gridOther {
		t.Errorf("frame %v, want red", c)
	}
	if c := img.RGBAAt(gridPad+1, gridPad+1); c != (color.RGBA{R: 40, G: 90, B: 200, A: 255}) {
		t.Errorf("query frame %v", c)
	}
}

// TestBuildIndexAnswersCancel: indexing a data set or a folder stops at
// once with a cancelled context.
func TestBuildIndexAnswersCancel(t *testing.T) {
	dir := t.TempDir()
	m := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "m.ckpt"), "resnet-s", 16, 1))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	t0 := time.Now()
	spec := m.Card.Data
	if _, _, err := BuildIndex(cancelled, m, IndexSource{Data: &spec}, model.EmbedOptions{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("BuildIndex of a data set: %v", err)
	}
	if _, _, err := BuildIndex(cancelled, m, IndexSource{Dir: testmodel.TestData()}, model.EmbedOptions{}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("BuildIndex of a folder: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the cancelled phases took %v", d)
	}
}
