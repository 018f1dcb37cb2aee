package app

// An HTTP search service over an index.
//
// Routes:
//
//	POST /v1/search?k=K[&box=x1,y1,x2,y2]  image in multipart field "image", or the raw body
//	GET  /v1/gallery/{row}.png             a gallery image (thumbnail)
//	GET  /v1/info                          model and index
//	GET  /healthz                          liveness and load
//	GET  /                                 a web page to upload a photo
//
// Load: the network runs one batch at a time (its graph is not safe for
// concurrent use). A search takes one of 1+Queue slots as soon as it
// arrives; when none is free it is refused at once with 503 and
// Retry-After. Holding a slot it reads and decodes its upload (in parallel
// with other requests), then waits for the network at most QueueTimeout
// (503 with Retry-After past it), embeds and searches.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/retrieval"
)

// ServerConfig tunes the service.
type ServerConfig struct {
	// DefaultK is the number of results without ?k=; MaxK bounds ?k=.
	DefaultK, MaxK int
	// MaxUpload bounds a search request's body in bytes (413 past it).
	MaxUpload int64
	// MaxPixels bounds an uploaded image's width × height (400 past it), so
	// that a small file cannot expand into gigabytes.
	MaxPixels int
	// Queue is how many searches may wait while one runs (503 past it).
	Queue int
	// QueueTimeout bounds a search's wait for the network (503 past it).
	QueueTimeout time.Duration
	// Timeouts of the http.Server.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the wait for requests in flight on shutdown.
	ShutdownTimeout time.Duration
	// Thumb is the largest side of gallery images served.
	Thumb int
	// Log receives one line per request and the server's messages.
	Log io.Writer
}

// DefaultServerConfig returns the defaults of the serve command.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		DefaultK: 10, MaxK: 100,
		MaxUpload: 10 << 20, MaxPixels: 40_000_000,
		Queue: 16, QueueTimeout: 10 * time.Second,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		Thumb:           256,
	}
}

// Validate checks the settings.
func (c ServerConfig) Validate() error {
	switch {
	case c.DefaultK < 1:
		return fmt.Errorf("-k must be at least 1, got %d", c.DefaultK)
	case c.MaxK < c.DefaultK:
		return fmt.Errorf("-max-k (%d) must be at least -k (%d)", c.MaxK, c.DefaultK)
	case c.MaxUpload < 1:
		return fmt.Errorf("-max-upload must be positive, got %d", c.MaxUpload)
	case c.MaxPixels < 1:
		return fmt.Errorf("-max-pixels must be positive, got %d", c.MaxPixels)
	case c.Queue < 0:
		return fmt.Errorf("-queue must be 0 or more, got %d", c.Queue)
	case c.QueueTimeout <= 0:
		return fmt.Errorf("-queue-timeout must be positive, got %v", c.QueueTimeout)
	case c.Thumb < 16:
		return fmt.Errorf("-thumb must be at least 16, got %d", c.Thumb)
	}
	return nil
}

// Server is the search service (an http.Handler).
type Server struct {
	Model   *Model
	Index   *retrieval.Index
	Gallery *Gallery
	Config  ServerConfig

	mux      *http.ServeMux
	slots    chan struct{}
	names    map[int64]string
	indexID  string // hash of the index's rows, for ETags
	searches atomic.Int64
	refused  atomic.Int64
	started  time.Time
}

// NewServer checks that the index belongs to the model and returns the
// service. gal resolves gallery images (thumbnails); call gal.Prepare first
// to render in-memory views before serving.
func NewServer(m *Model, ix *retrieval.Index, indexPath string, gal *Gallery, cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := m.CheckIndex(ix, indexPath); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Server{Model: m, Index: ix, Gallery: gal, Config: cfg,
		mux: http.NewServeMux(), slots: make(chan struct{}, 1+cfg.Queue), names: ItemNames(ix), started: time.Now()}
	h := sha256.New()
	io.WriteString(h, ix.Fingerprint)
	for i, p := range ix.Paths {
		fmt.Fprintf(h, "\x00%d\x00%s", ix.Items[i], p)
	}
	s.indexID = hex.EncodeToString(h.Sum(nil))[:16]
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /v1/info", s.info)
	s.mux.HandleFunc("POST /v1/search", s.search)
	s.mux.HandleFunc("GET /v1/gallery/{file}", s.galleryImage)
	return s, nil
}

// ServeHTTP implements http.Handler, logging one line per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	fmt.Fprintf(s.Config.Log, "%s %s %s %d %dB %v\n", t0.Format("15:04:05"), r.Method, r.URL.RequestURI(), rec.status, rec.bytes, time.Since(t0).Round(time.Microsecond))
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// HTTPServer returns an http.Server for s with the configured timeouts.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.Config.ReadHeaderTimeout,
		ReadTimeout:       s.Config.ReadTimeout,
		WriteTimeout:      s.Config.WriteTimeout,
		IdleTimeout:       s.Config.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
	}
}

// Serve answers on ln until ctx is cancelled, then shuts down gracefully:
// it stops accepting, lets requests in flight finish (at most
// ShutdownTimeout) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(s.Config.Log, "serving %d gallery images on http://%s (model %s)\n", s.Index.Len(), ln.Addr(), s.Model.Fingerprint)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(s.Config.Log, "shutting down: finishing the requests in flight (at most %v)\n", s.Config.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.Config.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintf(s.Config.Log, "stopped after %d searches (%d refused)\n", s.searches.Load(), s.refused.Load())
	return nil
}

// apiError is the body of every error response.
type apiError struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, apiError{Error: fmt.Sprintf(format, a...), Status: status})
}

// SearchResponse is the body of a successful search.
type SearchResponse struct {
	K            int     `json:"k"`
	Results      []Match `json:"results"`
	Fingerprint  string  `json:"fingerprint"`
	Milliseconds float64 `json:"took_ms"`
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	k, box, err := s.searchParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.refused.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy: %d searches are running or queued (-queue %d); retry later", cap(s.slots), s.Config.Queue)
		return
	}
	defer func() { <-s.slots }()
	if r.ContentLength > s.Config.MaxUpload {
		writeError(w, http.StatusRequestEntityTooLarge, "the upload is %d bytes, more than the limit of %s (-max-upload)", r.ContentLength, FormatBytes(s.Config.MaxUpload))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.Config.MaxUpload)
	raw, err := readUpload(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "the upload is larger than the limit of %s (-max-upload)", FormatBytes(s.Config.MaxUpload))
			return
		}
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	img, err := decodeUpload(raw, s.Config.MaxPixels)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if box != (image.Rectangle{}) && !box.Overlaps(img.Bounds()) {
		writeError(w, http.StatusBadRequest, "box %v lies outside the %d×%d image", box, img.Bounds().Dx(), img.Bounds().Dy())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.Config.QueueTimeout)
	defer cancel()
	res, err := query(ctx, s.Model, s.Index, s.names, []QueryImage{{Name: "upload", Image: img, Box: box}}, k)
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		s.refused.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy: waited %v for the model (-queue-timeout); retry later", s.Config.QueueTimeout)
		return
	case r.Context().Err() != nil:
		return // the client went away
	default:
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.searches.Add(1)
	out := SearchResponse{K: k, Results: res[0].Matches, Fingerprint: s.Model.Fingerprint}
	for i := range out.Results {
		out.Results[i].Thumbnail = fmt.Sprintf("/v1/gallery/%d.png", out.Results[i].Row)
	}
	out.Milliseconds = float64(time.Since(t0).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, out)
}

// searchParams reads ?k= and ?box=.
func (s *Server) searchParams(r *http.Request) (int, image.Rectangle, error) {
	q := r.URL.Query()
	k := s.Config.DefaultK
	if v := q.Get("k"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.Config.MaxK {
			return 0, image.Rectangle{}, fmt.Errorf("k=%q: want an integer from 1 to %d", v, s.Config.MaxK)
		}
		k = n
	}
	var box image.Rectangle
	if v := q.Get("box"); v != "" {
		b, err := ParseBox(v)
		if err != nil {
			return 0, box, fmt.Errorf("box=%q: %v", v, err)
		}
		box = b
	}
	return k, box, nil
}

// ParseBox reads "x1,y1,x2,y2" (pixels, x2 and y2 exclusive).
func ParseBox(s string) (image.Rectangle, error) {
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return image.Rectangle{}, fmt.Errorf("want x1,y1,x2,y2")
	}
	var v [4]int
	for i, p := range f {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return image.Rectangle{}, fmt.Errorf("want x1,y1,x2,y2 integers: %q", p)
		}
		v[i] = n
	}
	if v[0] >= v[2] || v[1] >= v[3] {
		return image.Rectangle{}, fmt.Errorf("empty box: want x1 < x2 and y1 < y2")
	}
	return image.Rect(v[0], v[1], v[2], v[3]), nil
}

// readUpload returns the image bytes of a search request: the multipart
// field "image", or the raw body for any other content type.
func readUpload(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != "multipart/form-data" {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		if len(raw) == 0 {
			return nil, errors.New("empty body: send an image as the body, or in the multipart field \"image\"")
		}
		return raw, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("multipart form: %w", err)
	}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, errors.New("the multipart form has no field \"image\"")
		}
		if err != nil {
			return nil, fmt.Errorf("multipart form: %w", err)
		}
		if p.FormName() != "image" {
			if _, err := io.Copy(io.Discard, p); err != nil {
				return nil, fmt.Errorf("multipart form: %w", err)
			}
			continue
		}
		raw, err := readPart(p)
		if err != nil {
			return nil, err
		}
		if len(raw) == 0 {
			return nil, errors.New("the multipart field \"image\" is empty")
		}
		return raw, nil
	}
}

func readPart(p *multipart.Part) ([]byte, error) {
	raw, err := io.ReadAll(p)
	if err != nil {
		return nil, fmt.Errorf("multipart field \"image\": %w", err)
	}
	return raw, nil
}

// decodeUpload decodes a JPEG or PNG after checking its declared size.
func decodeUpload(raw []byte, maxPixels int) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("the upload is not a JPEG or PNG image (%v)", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxPixels/max(cfg.Height, 1) {
		return nil, fmt.Errorf("the image is %d×%d pixels, more than the limit of %d pixels (-max-pixels)", cfg.Width, cfg.Height, maxPixels)
	}
	img, err := data.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("the upload is not a decodable JPEG or PNG image (%v)", err)
	}
	return img, nil
}

// galleryImage serves /v1/gallery/{row}.png.
func (s *Server) galleryImage(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	num, ok := strings.CutSuffix(file, ".png")
	row, err := strconv.Atoi(num)
	if !ok || err != nil || row < 0 {
		writeError(w, http.StatusNotFound, "%q: want /v1/gallery/ROW.png with ROW a gallery row", file)
		return
	}
	if row >= s.Index.Len() {
		writeError(w, http.StatusNotFound, "row %d is outside the gallery (%d rows)", row, s.Index.Len())
		return
	}
	etag := fmt.Sprintf(`"%s-%d-%d"`, s.indexID, row, s.Config.Thumb)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	img, err := s.Gallery.Image(row)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "gallery row %d: %v", row, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", etag)
	png.Encode(w, Thumbnail(img, s.Config.Thumb))
}

// Info describes the model and the index (GET /v1/info).
type Info struct {
	Model       string            `json:"model"`
	Checkpoint  string            `json:"checkpoint"`
	Fingerprint string            `json:"fingerprint"`
	Dim         int               `json:"dim"`
	Input       string            `json:"input"`
	Rows        int               `json:"gallery_rows"`
	Items       int               `json:"gallery_items"`
	IndexMeta   map[string]string `json:"index_meta"`
	DefaultK    int               `json:"default_k"`
	MaxK        int               `json:"max_k"`
	MaxUpload   int64             `json:"max_upload_bytes"`
}

func (s *Server) infoValue() Info {
	meta := map[string]string{}
	for k, v := range s.Index.Meta {
		if k != "item_names" && k != "data" {
			meta[k] = v
		}
	}
	return Info{
		Model: s.Model.Run.Config.Model, Checkpoint: s.Model.Path, Fingerprint: s.Model.Fingerprint,
		Dim: s.Model.Dim, Input: describeTransform(s.Model.Transform),
		Rows: s.Index.Len(), Items: distinctItems(s.Index.Items), IndexMeta: meta,
		DefaultK: s.Config.DefaultK, MaxK: s.Config.MaxK, MaxUpload: s.Config.MaxUpload,
	}
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.infoValue())
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "gallery_rows": s.Index.Len(), "fingerprint": s.Model.Fingerprint,
		"in_flight": len(s.slots), "capacity": cap(s.slots),
		"searches": s.searches.Load(), "refused": s.refused.Load(),
		"uptime_s": int64(time.Since(s.started).Seconds()),
	})
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	pageTemplate.Execute(w, s.infoValue())
}

// pageTemplate is the upload page: plain HTML and inline JavaScript, no
// external assets.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"size": FormatBytes}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dmlgo shop search</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.meta { color: #666; font-size: .85em; }
#drop { border: 2px dashed #99a; border-radius: 8px; padding: 1.2em; margin: 1em 0; text-align: center; background: #f7f7fb; }
#drop.over { background: #e8ecff; }
#query img { max-width: 220px; max-height: 220px; border: 3px solid #2a5ac8; }
#results { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 1em; }
figure { margin: 0; width: 140px; text-align: center; font-size: .85em; }
figure img { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; background: #eee; border: 3px solid #ccc; }
.error { color: #b00; font-weight: bold; }
label { margin-left: 1em; }
</style></head>
<body>
<h1>Find this garment in the shop</h1>
<div class="meta">{{.Rows}} shop images of {{.Items}} items · model {{.Model}} ({{.Input}}, embedding {{.Dim}}) · fingerprint {{.Fingerprint}}</div>
<div id="drop">
  <p>Drop a photo here, or choose one: <input type="file" id="file" accept="image/jpeg,image/png">
  <label>results <input type="number" id="k" min="1" max="{{.MaxK}}" value="{{.DefaultK}}" style="width:4em"></label></p>
  <p class="meta">JPEG or PNG, at most {{size .MaxUpload}}.</p>
</div>
<div id="query"></div>
<div id="status" class="meta"></div>
<div id="results"></div>
<script>
"use strict";
const drop = document.getElementById("drop"), input = document.getElementById("file");
const status = document.getElementById("status"), results = document.getElementById("results");
function text(tag, s, cls) { const e = document.createElement(tag); e.textContent = s; if (cls) e.className = cls; return e; }
async function search(file) {
  const q = document.getElementById("query");
  q.replaceChildren();
  const img = document.createElement("img");
  img.src = URL.createObjectURL(file);
  q.append(img);
  results.replaceChildren();
  status.replaceChildren(text("span", "searching…"));
  const form = new FormData();
  form.append("image", file);
  const k = document.getElementById("k").value || "{{.DefaultK}}";
  try {
    const resp = await fetch("/v1/search?k=" + encodeURIComponent(k), { method: "POST", body: form });
    const body = await resp.json();
    if (!resp.ok) { status.replaceChildren(text("span", "error " + resp.status + ": " + body.error, "error")); return; }
    status.replaceChildren(text("span", body.results.length + " matches in " + body.took_ms.toFixed(1) + " ms"));
    for (const r of body.results) {
      const f = document.createElement("figure");
      const t = document.createElement("img");
      t.src = r.thumbnail; t.alt = "gallery row " + r.row; t.title = r.path;
      f.append(t, text("figcaption", "#" + r.rank + " · " + r.score.toFixed(3) + " · " + (r.item_name || ("item " + r.item))));
      results.append(f);
    }
  } catch (e) {
    status.replaceChildren(text("span", "error: " + e, "error"));
  }
}
input.addEventListener("change", () => { if (input.files.length) search(input.files[0]); });
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) search(e.dataTransfer.files[0]);
});
</script>
</body></html>
`))

// FormatBytes writes a size in bytes with a binary unit: 10 MiB, 512 KiB, 100 B.
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	u, v := 0, float64(n)
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}

// ParseBytes reads a size: an integer number of bytes, optionally followed
// by a unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB (all powers of 1024; case and a
// space before the unit do not matter).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes such as 10485760, 512KiB or 10MiB", s)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KiB, MiB or GiB)", s, t[i:])
	}
	n := v * mult
	if n < 1 || n > 1<<50 {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return int64(n), nil
}
