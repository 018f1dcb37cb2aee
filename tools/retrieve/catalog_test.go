package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeShop writes a folder of noise PNGs, one per item: dir/<item>/front.png.
func writeShop(t *testing.T, dir string, items ...int) {
	t.Helper()
	for _, it := range items {
		r := rand.New(rand.NewPCG(uint64(it), 9))
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		for i := range img.Pix {
			img.Pix[i] = uint8(r.IntN(256))
		}
		p := filepath.Join(dir, fmt.Sprint(it), "front.png")
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
}

type queryJSON struct {
	Queries []struct {
		Matches []struct {
			ID       int64   `json:"id"`
			Item     int64   `json:"item"`
			Category string  `json:"category"`
			Score    float32 `json:"score"`
		} `json:"results"`
	} `json:"queries"`
}

func queryCatalog(t *testing.T, args ...string) queryJSON {
	t.Helper()
	code, out, errs := runCmd(append([]string{"query", "-json"}, args...)...)
	if code != 0 {
		t.Fatalf("query %v: exit %d: %s", args, code, errs)
	}
	var q queryJSON
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		t.Fatalf("query -json: %v\n%s", err, out)
	}
	return q
}

// TestCatalogCommands: a catalog made by index -catalog, grown by add,
// shrunk by remove and compacted, searched by query with and without a
// category; and the mistakes a user can make with it.
func TestCatalogCommands(t *testing.T) {
	ckpt, r18, index := setup(t)
	dir := t.TempDir()
	shop, arrivals, cat := filepath.Join(dir, "shop"), filepath.Join(dir, "new"), filepath.Join(dir, "shop.catalog")
	writeShop(t, shop, 1, 2, 3, 4, 5, 6)
	writeShop(t, arrivals, 7, 8, 9)
	if code, out, errs := runCmd("index", "-ckpt", ckpt, "-dir", shop, "-items-from", "dirname", "-category", "tops", "-catalog", cat); code != 0 || !strings.Contains(out, "6 images of 6 items") {
		t.Fatalf("index -catalog: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, errs := runCmd("add", "-ckpt", ckpt, "-index", cat, "-dir", arrivals, "-items-from", "dirname", "-category", "dresses"); code != 0 || !strings.Contains(out, "added 3 images") || !strings.Contains(out, "now 9 images") {
		t.Fatalf("add: exit %d\n%s\n%s", code, out, errs)
	}
	seven := filepath.Join(arrivals, "7", "front.png")
	q := queryCatalog(t, "-ckpt", ckpt, "-index", cat, "-k", "9", seven)
	if m := q.Queries[0].Matches; len(m) != 9 || m[0].Item != 7 || m[0].Score < 0.999 || m[0].ID != 6 {
		t.Fatalf("the added image is not its own best match: %+v", m)
	}
	q = queryCatalog(t, "-ckpt", ckpt, "-index", cat, "-k", "9", "-category", "dresses", filepath.Join(shop, "1", "front.png"))
	if m := q.Queries[0].Matches; len(m) != 3 {
		t.Fatalf("category dresses: %d matches, want 3: %+v", len(m), m)
	}
	for _, m := range q.Queries[0].Matches {
		if m.Category != "dresses" || m.Item < 7 {
			t.Errorf("category dresses gave %+v", m)
		}
	}
	if code, out, errs := runCmd("remove", "-index", cat, "-item", "7,2"); code != 0 || !strings.Contains(out, "removed 2 images; now 7 images") {
		t.Fatalf("remove: exit %d\n%s\n%s", code, out, errs)
	}
	q = queryCatalog(t, "-ckpt", ckpt, "-index", cat, "-k", "9", seven)
	for _, m := range q.Queries[0].Matches {
		if m.Item == 7 || m.Item == 2 {
			t.Errorf("a removed item is found: %+v", m)
		}
	}
	if len(q.Queries[0].Matches) != 7 {
		t.Errorf("%d matches after the removal, want 7", len(q.Queries[0].Matches))
	}
	if code, out, errs := runCmd("compact", "-index", cat); code != 0 || !strings.Contains(out, "7 images kept, 2 removed ones dropped") {
		t.Fatalf("compact: exit %d\n%s\n%s", code, out, errs)
	}
	q2 := queryCatalog(t, "-ckpt", ckpt, "-index", cat, "-k", "9", seven)
	if fmt.Sprint(q2) != fmt.Sprint(q) {
		t.Errorf("compaction changed the results:\n%v\n%v", q, q2)
	}

	// An approximate index (forced: the catalog is small): probing every
	// list, and -exact, answer as exact search did.
	// The same with compressed lists (re-ranked with the exact rows).
	for _, storage := range []string{"fp32", "fp16", "int8"} {
		code, out, errs := runCmd("compact", "-index", cat, "-ann", "ivf", "-lists", "3", "-storage", storage)
		if code != 0 || !strings.Contains(out, "approximate index: 3 lists over the 7 images, "+storage) {
			t.Fatalf("compact -ann ivf -storage %s: exit %d\n%s\n%s", storage, code, out, errs)
		}
		for _, mode := range [][]string{{"-exact"}, {"-nprobe", "3"}} {
			q3 := queryCatalog(t, append([]string{"-ckpt", ckpt, "-index", cat, "-k", "9", seven}, mode...)...)
			a, b := q.Queries[0].Matches, q3.Queries[0].Matches
			same := len(a) == len(b)
			for i := 0; same && i < len(a); i++ {
				// The index scans its lists with another GEMM: scores may
				// differ in the last bit, ranks may not.
				same = a[i].ID == b[i].ID && math.Abs(float64(a[i].Score-b[i].Score)) < 1e-5
			}
			if !same {
				t.Errorf("-storage %s %v changed the results:\n%v\n%v", storage, mode, a, b)
			}
		}
	}
	if code, _, errs := runCmd("compact", "-index", cat, "-ann", "ivf", "-storage", "int4"); code != 2 || !strings.Contains(errs, "-storage") {
		t.Errorf("-storage int4: exit %d: %s", code, errs)
	}
	if code, _, errs := runCmd("query", "-ckpt", ckpt, "-index", cat, "-recall", "2", seven); code != 2 || !strings.Contains(errs, "-recall") {
		t.Errorf("-recall 2: exit %d: %s", code, errs)
	}
	if code, _, errs := runCmd("compact", "-index", cat, "-ann", "hnsw"); code != 2 || !strings.Contains(errs, "-ann") {
		t.Errorf("-ann hnsw: exit %d: %s", code, errs)
	}

	// A single-file index made a catalog, and searched the same.
	conv := filepath.Join(dir, "gallery.catalog")
	if code, out, errs := runCmd("compact", "-index", index, "-out", conv); code != 0 || !strings.Contains(out, "catalog "+conv) {
		t.Fatalf("compact -out: exit %d\n%s\n%s", code, out, errs)
	}
	a := queryCatalog(t, "-ckpt", ckpt, "-index", index, "-k", "5", "fmnist-c2s:row=1")
	b := queryCatalog(t, "-ckpt", ckpt, "-index", conv, "-k", "5", "fmnist-c2s:row=1")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the converted catalog answers differently:\n%v\n%v", a, b)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"add", "-ckpt", ckpt, "-index", index, "-dir", arrivals}, 1, "read-only"},
		{[]string{"add", "-ckpt", r18, "-index", cat, "-dir", arrivals}, 1, "embeddings of different models cannot be compared"},
		{[]string{"add", "-ckpt", ckpt, "-dir", arrivals}, 2, "-index is required"},
		{[]string{"remove", "-index", cat, "-item", "12345"}, 1, "nothing removed"},
		{[]string{"remove", "-index", cat}, 2, "exactly one of -item, -path and -id"},
		{[]string{"remove", "-index", cat, "-item", "x"}, 2, `"x" is not an integer`},
		{[]string{"remove", "-index", index, "-item", "1"}, 1, "read-only"},
		{[]string{"compact", "-index", index}, 2, "give -out FOLDER"},
		{[]string{"compact", "-index", cat, "-out", conv}, 2, "compacted in place"},
		{[]string{"compact", "-index", index, "-out", conv}, 1, "not empty"},
		{[]string{"index", "-ckpt", ckpt, "-dir", shop, "-catalog", cat}, 1, "not empty"},
		{[]string{"query", "-ckpt", ckpt, "-index", dir, "x.png"}, 1, "not a catalog"},
	} {
		code, _, errs := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, errs)
		}
	}
}
