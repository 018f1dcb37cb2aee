package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/testmodel"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
)

// TestServeEndToEnd trains the tiny model, indexes its data set's gallery
// and exercises the service over HTTP (testServe).
func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	testmodel.Train(t, filepath.Join(dir, "run"))
	m := testmodel.Load(t, filepath.Join(dir, "run", "last.ckpt"))
	spec := m.Card.Data
	ix, _, err := catalog.BuildIndex(context.Background(), m, catalog.IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ixPath := filepath.Join(dir, "gallery.safetensors")
	if err := ix.Save(ixPath); err != nil {
		t.Fatal(err)
	}
	testServe(t, m, ix, ixPath, catalog.NewGallery(ix, sets.Spec{}, io.Discard))
}

// TestServerRefusesOtherModel: NewServer refuses an index that another
// model made.
func TestServerRefusesOtherModel(t *testing.T) {
	dir := t.TempDir()
	a := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "a.ckpt"), "resnet-s", 16, 1))
	b := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "b.ckpt"), "resnet-s", 16, 2))
	spec := a.Card.Data
	ix, _, err := catalog.BuildIndex(context.Background(), a, catalog.IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServer(b, ix, "a.safetensors", catalog.NewGallery(ix, spec, io.Discard), DefaultServerConfig()); err == nil || !strings.Contains(err.Error(), a.Fingerprint) {
		t.Errorf("NewServer with an index of another model: %v", err)
	}
}

// testServe exercises the service over HTTP with a trained model and the
// index of its gallery.
func testServe(t *testing.T, m *model.Model, ix *retrieval.Index, ixPath string, gal *catalog.Gallery) {
	cfg := DefaultServerConfig()
	cfg.MaxUpload = 64 << 10
	srv, err := NewServer(m, ix, ixPath, gal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	img3, err := gal.Image(3)
	if err != nil {
		t.Fatal(err)
	}
	upload := testmodel.PNG(t, img3)
	multipartBody := func(field string, content []byte) (*bytes.Buffer, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("note", "ignored")
		fw, _ := mw.CreateFormFile(field, "photo.png")
		fw.Write(content)
		mw.Close()
		return &buf, mw.FormDataContentType()
	}
	post := func(url, ctype string, body io.Reader) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Post(ts.URL+url, ctype, body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}

	// A gallery image finds itself first, multipart or raw body.
	body, ctype := multipartBody("image", upload)
	resp, raw := post("/v1/search?k=4", ctype, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("search: %d %s", resp.StatusCode, raw)
	}
	var sr SearchResponse
	if err := json.Unmarshal(raw, &sr); err != nil {
		t.Fatal(err)
	}
	if sr.K != 4 || len(sr.Results) != 4 || sr.Results[0].Row != 3 || sr.Results[0].Score < 0.999 ||
		sr.Results[0].Thumbnail != "/v1/gallery/3.png" || sr.Results[0].Item != ix.Items[3] || sr.Fingerprint != m.Fingerprint {
		t.Fatalf("search results: %s", raw)
	}
	want, err := catalog.Query(context.Background(), m, live.Static(ix), []catalog.QueryImage{{Image: img3}}, 4, live.SearchParams{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range sr.Results {
		if r.Row != want[0].Matches[i].Row || r.Score != want[0].Matches[i].Score {
			t.Errorf("result %d: HTTP %+v, catalog.Query %+v", i, r, want[0].Matches[i])
		}
	}
	resp, raw = post("/v1/search", "image/png", bytes.NewReader(upload))
	if err := json.Unmarshal(raw, &sr); resp.StatusCode != http.StatusOK || err != nil || len(sr.Results) != min(cfg.DefaultK, ix.Len()) || sr.Results[0].Row != 3 {
		t.Fatalf("raw-body search: %d %s", resp.StatusCode, raw)
	}

	// Concurrent searches all succeed with the same answer.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.URL+"/v1/search?k=2", "application/octet-stream", bytes.NewReader(upload))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			var r SearchResponse
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 || r.Results[0].Row != 3 {
				errs <- errors.New("concurrent search: status " + resp.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Bad requests: a JSON error with the right status.
	big := bytes.Repeat([]byte{0x89}, int(cfg.MaxUpload)+1)
	bigBody, bigType := multipartBody("image", big)
	noImage, noImageType := multipartBody("photo", upload)
	cases := []struct {
		name, url, ctype string
		body             io.Reader
		status           int
		want             string
	}{
		{"oversized", "/v1/search", "image/png", bytes.NewReader(big), 413, "-max-upload"},
		{"oversized multipart", "/v1/search", bigType, bigBody, 413, "-max-upload"},
		{"oversized, no length", "/v1/search", "image/png", io.MultiReader(bytes.NewReader(big)), 413, "-max-upload"},
		{"undecodable", "/v1/search", "image/jpeg", strings.NewReader("this is not a JPEG"), 400, "not a JPEG or PNG"},
		{"truncated png", "/v1/search", "image/png", bytes.NewReader(upload[:len(upload)/2]), 400, "not a decodable"},
		{"empty", "/v1/search", "image/png", strings.NewReader(""), 400, "empty body"},
		{"no image field", "/v1/search", noImageType, noImage, 400, `no field "image"`},
		{"bad k", "/v1/search?k=many", "image/png", bytes.NewReader(upload), 400, "k="},
		{"k too large", "/v1/search?k=101", "image/png", bytes.NewReader(upload), 400, "1 to 100"},
		{"bad box", "/v1/search?box=1,2,3", "image/png", bytes.NewReader(upload), 400, "box="},
		{"box outside", "/v1/search?box=500,500,600,600", "image/png", bytes.NewReader(upload), 400, "outside"},
		{"bad multipart", "/v1/search", "multipart/form-data", strings.NewReader("x"), 400, "multipart"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("POST", ts.URL+c.url, c.body)
		req.Header.Set("Content-Type", c.ctype)
		if c.name == "oversized, no length" {
			req.ContentLength = -1
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e apiError
		if resp.StatusCode != c.status || json.Unmarshal(raw, &e) != nil || e.Status != c.status || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, resp.StatusCode, raw, c.status, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: content type %q", c.name, ct)
		}
	}
	// A decompression bomb is refused before decoding.
	small := DefaultServerConfig()
	small.MaxPixels = 100
	bomb, _ := NewServer(m, ix, ixPath, gal, small)
	rec := httptest.NewRecorder()
	bomb.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/search", bytes.NewReader(upload)))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "-max-pixels") {
		t.Errorf("too many pixels: %d %s", rec.Code, rec.Body)
	}

	// Gallery images, health, info, the page.
	get := func(url string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(ts.URL + url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp, raw
	}
	resp, raw = get("/v1/gallery/3.png")
	if g, err := png.Decode(bytes.NewReader(raw)); resp.StatusCode != 200 || err != nil || !testmodel.SameImage(g, img3) {
		t.Errorf("gallery image: %d %v", resp.StatusCode, err)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/v1/gallery/3.png", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if r2, err := http.DefaultClient.Do(req); err != nil || r2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional gallery request: %v %v", r2.Status, err)
	}
	for _, u := range []string{"/v1/gallery/999.png", "/v1/gallery/x.png", "/v1/gallery/3.jpg"} {
		if resp, raw := get(u); resp.StatusCode != 404 || !strings.Contains(string(raw), "error") {
			t.Errorf("%s: %d %s", u, resp.StatusCode, raw)
		}
	}
	resp, raw = get("/healthz")
	var health map[string]any
	if err := json.Unmarshal(raw, &health); resp.StatusCode != 200 || err != nil || health["status"] != "ok" || health["gallery_rows"] != float64(ix.Len()) {
		t.Errorf("healthz: %d %s", resp.StatusCode, raw)
	}
	resp, raw = get("/v1/info")
	var info Info
	if err := json.Unmarshal(raw, &info); err != nil || info.Fingerprint != m.Fingerprint || info.Rows != ix.Len() || info.Precision != "fp32" {
		t.Errorf("info: %s", raw)
	}
	resp, raw = get("/")
	page := string(raw)
	if resp.StatusCode != 200 || !strings.Contains(page, "<script>") || !strings.Contains(page, "/v1/search") || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page: %d %.200s", resp.StatusCode, page)
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "src=\"//") {
		t.Errorf("the page loads external assets")
	}
	if resp, _ := get("/v1/search"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/search: %d", resp.StatusCode)
	}
}

// TestServeLoad: a full queue answers 503 with Retry-After at once; a
// search waiting past the queue timeout too; shutdown lets the search in
// flight finish.
func TestServeLoad(t *testing.T) {
	m, ix, gal := smallService(t)
	img, _ := gal.Image(0)
	upload := testmodel.PNG(t, img)
	// Hold the model as a long search would.
	hold := func() (release func()) {
		got, done := make(chan struct{}), make(chan struct{})
		go m.Locked(context.Background(), func() error { close(got); <-done; return nil })
		<-got
		return func() { close(done) }
	}
	post := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(url, "image/png", bytes.NewReader(upload))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(raw)
	}
	release := hold()

	// Waiting past the queue timeout: 503.
	cfg := DefaultServerConfig()
	cfg.QueueTimeout = 150 * time.Millisecond
	quick, err := NewServer(m, ix, "a.safetensors", gal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(quick)
	resp, raw := post(ts.URL + "/v1/search")
	ts.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(raw, "-queue-timeout") {
		t.Errorf("queue timeout: %d %s", resp.StatusCode, raw)
	}

	// One slot (no queue), taken: the next search is refused at once.
	cfg.Queue, cfg.QueueTimeout = 0, 10*time.Second
	srv, err := NewServer(m, ix, "a.safetensors", gal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String() + "/v1/search"
	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(url, "image/png", bytes.NewReader(upload))
		if err != nil {
			first <- -1
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	for i := 0; len(srv.slots) != 1; i++ {
		if i > 2000 {
			t.Fatal("the first search never took its slot")
		}
		time.Sleep(2 * time.Millisecond)
	}
	t0 := time.Now()
	resp, raw = post(url)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(raw, "busy") || time.Since(t0) > 2*time.Second {
		t.Errorf("full queue: %d %s after %v", resp.StatusCode, raw, time.Since(t0))
	}

	// Shut down while the first search waits for the model: it completes.
	cancel()
	time.Sleep(50 * time.Millisecond)
	release()
	if code := <-first; code != 200 {
		t.Errorf("the search in flight during shutdown: status %d", code)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
	if resp, err := http.Post(url, "image/png", bytes.NewReader(upload)); err == nil {
		resp.Body.Close()
		t.Error("the server still answers after shutdown")
	}
	if srv.refused.Load() != 1 || srv.searches.Load() != 1 {
		t.Errorf("counters: %d refused, %d searches", srv.refused.Load(), srv.searches.Load())
	}
}

func TestServerConfigValidate(t *testing.T) {
	for name, mod := range map[string]func(*ServerConfig){
		"-k":             func(c *ServerConfig) { c.DefaultK = 0 },
		"-max-k":         func(c *ServerConfig) { c.MaxK = 5 },
		"-max-upload":    func(c *ServerConfig) { c.MaxUpload = 0 },
		"-max-pixels":    func(c *ServerConfig) { c.MaxPixels = 0 },
		"-queue":         func(c *ServerConfig) { c.Queue = -1 },
		"-queue-timeout": func(c *ServerConfig) { c.QueueTimeout = 0 },
		"-max-batch":     func(c *ServerConfig) { c.MaxBatch = 0 },
		"-thumb":         func(c *ServerConfig) { c.Thumb = 4 },
	} {
		c := DefaultServerConfig()
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := DefaultServerConfig().Validate(); err != nil {
		t.Error(err)
	}
}

// smallService is an untrained resnet-s, its index of the built-in
// benchmark's shop images and their gallery.
func smallService(t *testing.T) (*model.Model, *retrieval.Index, *catalog.Gallery) {
	t.Helper()
	m := testmodel.Load(t, testmodel.SaveUntrained(t, t.TempDir()+"/a.ckpt", "resnet-s", 8, 1))
	spec := m.Card.Data
	ix, _, err := catalog.BuildIndex(context.Background(), m, catalog.IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return m, ix, catalog.NewGallery(ix, spec, io.Discard)
}

// TestServeBatchesWaitingSearches: searches that wait for the network
// together run as one batch (-max-batch; /healthz counts the forward
// passes) and answer what each answers alone.
func TestServeBatchesWaitingSearches(t *testing.T) {
	m, ix, gal := smallService(t)
	srv, err := NewServer(m, ix, "a.safetensors", gal, DefaultServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	const n = 3
	uploads := make([][]byte, n)
	for i := range uploads {
		img, err := gal.Image(i)
		if err != nil {
			t.Fatal(err)
		}
		uploads[i] = testmodel.PNG(t, img)
	}
	search := func(i int) (SearchResponse, error) {
		resp, err := http.Post(ts.URL+"/v1/search?k=5", "image/png", bytes.NewReader(uploads[i]))
		if err != nil {
			return SearchResponse{}, err
		}
		defer resp.Body.Close()
		var sr SearchResponse
		if resp.StatusCode != 200 {
			raw, _ := io.ReadAll(resp.Body)
			return sr, fmt.Errorf("status %d: %s", resp.StatusCode, raw)
		}
		return sr, json.NewDecoder(resp.Body).Decode(&sr)
	}
	alone := make([]SearchResponse, n)
	for i := range n {
		if alone[i], err = search(i); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]SearchResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	// Hold the network until the n searches wait for it.
	err = m.Locked(context.Background(), func() error {
		for i := range n {
			wg.Go(func() { got[i], errs[i] = search(i) })
		}
		for j := 0; srv.batcher.Waiting() < n; j++ {
			if j > 5000 {
				return fmt.Errorf("%d searches wait for the network, want %d", srv.batcher.Waiting(), n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// The searches alone took n forward passes, the n waiting ones one.
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var health struct {
		Searches      int64 `json:"searches"`
		ForwardPasses int64 `json:"forward_passes"`
		Waiting       int   `json:"waiting_for_network"`
	}
	err = json.NewDecoder(resp.Body).Decode(&health)
	resp.Body.Close()
	if err != nil || health.Searches != 2*n || health.ForwardPasses != n+1 || health.Waiting != 0 {
		t.Errorf("healthz after %d searches alone and %d together: %+v (%v), want %d searches in %d forward passes", n, n, health, err, 2*n, n+1)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("search %d: %v", i, errs[i])
		}
		if len(got[i].Results) != len(alone[i].Results) {
			t.Fatalf("search %d: %d results batched, %d alone", i, len(got[i].Results), len(alone[i].Results))
		}
		for j, r := range got[i].Results {
			if a := alone[i].Results[j]; r.ID != a.ID || r.Score != a.Score {
				t.Errorf("search %d result %d: row %d score %v batched, row %d score %v alone", i, j, r.ID, r.Score, a.ID, a.Score)
			}
		}
	}
}
