package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/internal/testmodel"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

func noisePNG(t *testing.T, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	img := image.NewGray(image.Rect(0, 0, 30, 30))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	return testmodel.PNG(t, img)
}

// call sends a request with the token and decodes a JSON answer into out.
func call(t *testing.T, method, url, token string, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return resp.StatusCode
}

// TestServeCatalog: a writable service over a catalog adds and removes
// items over HTTP, with their thumbnails, category filters and info, while
// it searches; it picks up what another process adds on Reload.
func TestServeCatalog(t *testing.T) {
	dir := t.TempDir()
	m := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "m.ckpt"), "resnet-s", 16, 1))
	spec := m.Card.Data
	ix, _, err := catalog.BuildIndex(context.Background(), m, catalog.IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	catDir := filepath.Join(dir, "shop.catalog")
	cat, err := live.Create(catDir, ix, live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	cfg := DefaultServerConfig()
	cfg.Writable, cfg.Token = true, "s3cret"
	srv, err := NewCatalogServer(m, cat, catalog.NewGallery(ix, spec, io.Discard), cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + startServer(t, srv)
	const tok = "s3cret"
	n0 := ix.Len()

	hat := noisePNG(t, 1)
	var added ItemResponse
	if code := call(t, "POST", base+"/v1/items?item=77&category=hats", tok, hat, &added); code != http.StatusCreated {
		t.Fatalf("POST /v1/items: %d", code)
	}
	if added.ID != int64(n0) || added.Item != 77 || added.Rows != n0+1 || added.Category != "hats" {
		t.Errorf("added %+v", added)
	}
	var sr SearchResponse
	if code := call(t, "POST", base+"/v1/search?k=5&category=hats", tok, hat, &sr); code != 200 || len(sr.Results) != 1 || sr.Results[0].Item != 77 || sr.Results[0].Score < 0.999 {
		t.Fatalf("search category=hats: %d %+v", code, sr)
	}
	thumb := sr.Results[0].Thumbnail
	if thumb != fmt.Sprintf("/v1/gallery/%d.png", added.ID) {
		t.Errorf("thumbnail %q", thumb)
	}
	if code := call(t, "GET", base+thumb, tok, nil, nil); code != 200 {
		t.Errorf("GET %s: %d", thumb, code)
	}
	var info Info
	call(t, "GET", base+"/v1/info", tok, nil, &info)
	if !info.Catalog || !info.Writable || info.Rows != n0+1 || info.Categories["hats"] != 1 {
		t.Errorf("info %+v", info)
	}

	// The page offers the categories.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<option value="hats">hats (1)</option>`) {
		t.Error("the page offers no category filter")
	}

	// Searches go on while items are added.
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				var r SearchResponse
				if code := call(t, "POST", base+"/v1/search?k=3", tok, noisePNG(t, uint64(100+g)), &r); code != 200 || len(r.Results) != 3 {
					errs <- fmt.Sprintf("search during adds: %d, %d results", code, len(r.Results))
				}
			}
		}()
	}
	for i := range 6 {
		if code := call(t, "POST", fmt.Sprintf("%s/v1/items?item=%d&category=shoes", base, 200+i), tok, noisePNG(t, uint64(200+i)), nil); code != http.StatusCreated {
			errs <- fmt.Sprintf("add %d: %d", i, code)
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	// Another process adds a row: the service sees it on Reload.
	other, err := live.Open(catDir, live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := m.EmbedImages(context.Background(), []image.Image{image.NewGray(image.Rect(0, 0, 8, 8))}, nil)
	if _, err := other.Add(m.Fingerprint, []live.Row{{Item: 500, Category: "bags", Embedding: e}}); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	call(t, "GET", base+"/v1/info", tok, nil, &info)
	if info.Rows != n0+8 || info.Categories["bags"] != 1 {
		t.Errorf("after Reload: %d rows, categories %v", info.Rows, info.Categories)
	}

	// Removal.
	var rm map[string]any
	if code := call(t, "DELETE", base+"/v1/items/77", tok, nil, &rm); code != 200 || rm["removed"] != 1.0 {
		t.Errorf("DELETE /v1/items/77: %d %v", code, rm)
	}
	if code := call(t, "DELETE", base+"/v1/items/77", tok, nil, nil); code != http.StatusNotFound {
		t.Errorf("DELETE again: %d", code)
	}
	if code := call(t, "POST", base+"/v1/search?k=5&category=hats", tok, hat, &sr); code != 200 || len(sr.Results) != 0 {
		t.Errorf("search of a removed category: %d %+v", code, sr.Results)
	}
	if code := call(t, "GET", base+thumb, tok, nil, nil); code != http.StatusNotFound {
		t.Errorf("thumbnail of a removed row: %d", code)
	}

	// Search modes: exact and probing every list answer alike; bad values
	// are refused.
	if code := call(t, "POST", base+"/v1/search?k=5&exact=1", tok, hat, &sr); code != 200 || len(sr.Results) != 5 {
		t.Errorf("exact=1: %d, %d results", code, len(sr.Results))
	}
	for _, q := range []string{"recall=2", "recall=x", "nprobe=0", "exact=maybe"} {
		if code := call(t, "POST", base+"/v1/search?"+q, tok, hat, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}

	// Another process compacts with an approximate index of INT8 lists:
	// the service reports it, the page offers the search modes, and the
	// modes answer.
	other, err = live.Open(catDir, live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.CompactWith(live.CompactOptions{ANN: live.ANNIVF, IVF: ivf.Config{Storage: ivf.INT8}}); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	call(t, "GET", base+"/v1/info", tok, nil, &info)
	if a := info.Approximate; a == nil || a.Storage != "int8" || a.Lists < 1 {
		t.Errorf("info after an int8 compaction: %+v", a)
	}
	resp, err = http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<option value="exact=1">exact</option>`) {
		t.Error("the page offers no search mode with an approximate index")
	}
	var ex, ap SearchResponse
	if code := call(t, "POST", base+"/v1/search?k=5&exact=1", tok, hat, &ex); code != 200 || len(ex.Results) != 5 {
		t.Errorf("exact=1 on the int8 index: %d, %d results", code, len(ex.Results))
	}
	if code := call(t, "POST", fmt.Sprintf("%s/v1/search?k=5&nprobe=%d", base, info.Approximate.Lists), tok, hat, &ap); code != 200 || len(ap.Results) != 5 {
		t.Errorf("every list on the int8 index: %d, %d results", code, len(ap.Results))
	}
	for i := range min(len(ex.Results), len(ap.Results)) {
		if ex.Results[i].ID != ap.Results[i].ID {
			t.Errorf("rank %d: exact %+v, every list of the int8 index %+v", i, ex.Results[i], ap.Results[i])
		}
	}

	// Refusals.
	for _, tc := range []struct {
		method, path, token string
		body                []byte
		want                int
	}{
		{"POST", "/v1/items?item=1", "", hat, http.StatusUnauthorized},
		{"POST", "/v1/items?item=x", tok, hat, http.StatusBadRequest},
		{"POST", "/v1/items?item=1&category=%07", tok, hat, http.StatusBadRequest},
		{"POST", "/v1/items?item=1", tok, []byte("not an image"), http.StatusBadRequest},
		{"DELETE", "/v1/items/abc", tok, nil, http.StatusBadRequest},
	} {
		if code := call(t, tc.method, base+tc.path, tc.token, tc.body, nil); code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, code, tc.want)
		}
	}
	ro := cfg
	ro.Writable = false
	rosrv, err := NewCatalogServer(m, cat, catalog.NewGallery(ix, spec, io.Discard), ro)
	if err != nil {
		t.Fatal(err)
	}
	robase := "http://" + startServer(t, rosrv)
	if code := call(t, "POST", robase+"/v1/items?item=1", tok, hat, nil); code != http.StatusForbidden {
		t.Errorf("POST to a read-only service: %d", code)
	}
	nt := cfg
	nt.Token = ""
	if _, err := NewCatalogServer(m, cat, catalog.NewGallery(ix, spec, io.Discard), nt); err == nil || !strings.Contains(err.Error(), "-writable needs -token") {
		t.Errorf("writable without a token: %v", err)
	}
	if _, err := NewServer(m, ix, "g.safetensors", catalog.NewGallery(ix, spec, io.Discard), cfg); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("writable single-file index: %v", err)
	}
}
