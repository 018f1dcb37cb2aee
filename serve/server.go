// Package serve is the HTTP search service over a gallery index (retrieve
// serve), meant to face the internet.
package serve

//
// Routes:
//
//	POST /v1/search?k=K[&box=x1,y1,x2,y2][&category=C]  image in multipart field "image", or the raw body
//	GET  /v1/gallery/{id}.png              a gallery image (thumbnail) by its row id
//	POST /v1/items?item=ID[&category=C][&box=…]  add an image to a catalog (-writable)
//	DELETE /v1/items/{item}                remove an item's images from a catalog (-writable)
//	GET  /v1/info                          model and index
//	GET  /healthz                          liveness and load
//	GET  /                                 a web page to upload a photo
//
// Load: every resource a client can make the server spend is bounded on
// its own. Connections: at most MaxConns open. Uploads: at most
// MaxUploads received at once, MaxUpload bytes each, arriving at least
// MinUploadRate bytes/s after UploadGrace (408 otherwise), all within
// ReadTimeout. Memory: an image's decoded size is computed from its header
// and refused past MaxPixels or MaxDecodeBytes (400); the decodes in
// progress share DecodeBudget bytes. Compute: the network runs one batch at
// a time (its graph is not safe for concurrent use); decoded searches wait
// in 1+Queue slots (503 with Retry-After when full) and for the network at
// most QueueTimeout (503 past it), and those waiting when it comes free
// run together, up to MaxBatch in a batch (model.Batcher). Gallery
// thumbnails are made once, two at a time, within the same limits, and
// cached. A client that goes away cancels its work.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed" // the page and its icon
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/internal/bytesize"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

// ServerConfig tunes the service.
type ServerConfig struct {
	// DefaultK is the number of results without ?k=; MaxK bounds ?k=.
	DefaultK, MaxK int
	// MaxUpload bounds a search request's body in bytes (413 past it).
	MaxUpload int64
	// MaxUploads bounds the uploads being received at once (503 past it):
	// bodies are read outside the compute slots, so slow clients hold
	// upload slots only.
	MaxUploads int
	// MinUploadRate is the slowest a body may arrive, in bytes per second,
	// once UploadGrace has passed since the request began (408 below it;
	// 0: only ReadTimeout bounds the upload).
	MinUploadRate int64
	UploadGrace   time.Duration
	// MaxPixels bounds an uploaded image's width × height and
	// MaxDecodeBytes the memory its decoding takes (400 past either), so
	// that a small file cannot expand into gigabytes.
	MaxPixels      int
	MaxDecodeBytes int64
	// DecodeBudget bounds the memory of all decodes in progress (uploads
	// and gallery thumbnails); a decode waits for its share, at most
	// QueueTimeout (503 past it).
	DecodeBudget int64
	// Queue is how many decoded searches may wait while one runs (503
	// past it).
	Queue int
	// QueueTimeout bounds a search's wait for memory and for the network
	// (503 past it).
	QueueTimeout time.Duration
	// MaxBatch is how many of the searches waiting for the network one
	// forward pass may take together (model.Batcher); 1 runs them one at
	// a time.
	MaxBatch int
	// MaxConns bounds the open connections (further clients wait to be
	// accepted).
	MaxConns int
	// Timeouts of the http.Server.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// ShutdownTimeout bounds the wait for requests in flight on shutdown.
	ShutdownTimeout time.Duration
	// Thumb is the largest side of gallery images served; ThumbCache
	// bounds the memory of the encoded thumbnails kept.
	Thumb      int
	ThumbCache int64
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every /v1/ route (401 without it).
	Token string
	// CORSOrigins are the origins allowed to call the API from a browser
	// ("*" for any); none: no CORS headers, so browsers refuse other
	// sites' scripts.
	CORSOrigins []string
	// Writable enables POST /v1/items and DELETE /v1/items/{item} on a
	// catalog; it needs Token (Validate refuses it without one).
	Writable bool
	// Reload is how often a catalog is checked for changes other processes
	// made (0: only on Server.Reload, which serve calls on SIGHUP).
	Reload time.Duration
	// ExposePaths shows the server's file paths (gallery images, the
	// checkpoint, the index's sources) in responses; without it responses
	// give paths relative to the indexed folder or file names only.
	ExposePaths bool
	// Log receives one line per request and the server's messages.
	Log io.Writer
}

// DefaultServerConfig returns the defaults of the serve command.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		DefaultK: 10, MaxK: 100,
		MaxUpload: 10 << 20, MaxUploads: 32, MinUploadRate: 8 << 10, UploadGrace: 5 * time.Second,
		MaxPixels: 40_000_000, MaxDecodeBytes: 256 << 20, DecodeBudget: 512 << 20,
		Queue: 16, QueueTimeout: 10 * time.Second, MaxBatch: 8,
		MaxConns:          256,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		Thumb:           256, ThumbCache: 32 << 20,
	}
}

// Validate checks the settings.
func (c ServerConfig) Validate() error {
	switch {
	case c.DefaultK < 1:
		return fmt.Errorf("-k must be at least 1, got %d", c.DefaultK)
	case c.MaxK < c.DefaultK:
		return fmt.Errorf("-max-k (%d) must be at least -k (%d)", c.MaxK, c.DefaultK)
	case c.MaxK > 100_000:
		return fmt.Errorf("-max-k must be at most 100000, got %d", c.MaxK)
	case c.MaxUpload < 1:
		return fmt.Errorf("-max-upload must be positive, got %d", c.MaxUpload)
	case c.MaxUploads < 1 || c.MaxUploads > 100_000:
		return fmt.Errorf("-max-uploads must be from 1 to 100000, got %d", c.MaxUploads)
	case c.MinUploadRate < 0:
		return fmt.Errorf("-min-upload-rate must be 0 or more, got %d", c.MinUploadRate)
	case c.UploadGrace < 0:
		return fmt.Errorf("-upload-grace must be 0 or more, got %v", c.UploadGrace)
	case c.MaxPixels < 1:
		return fmt.Errorf("-max-pixels must be positive, got %d", c.MaxPixels)
	case c.MaxDecodeBytes < 1:
		return fmt.Errorf("-max-decode-bytes must be positive, got %d", c.MaxDecodeBytes)
	case c.DecodeBudget < c.MaxDecodeBytes:
		return fmt.Errorf("-decode-budget (%s) must be at least -max-decode-bytes (%s)", bytesize.Format(c.DecodeBudget), bytesize.Format(c.MaxDecodeBytes))
	case c.Queue < 0 || c.Queue > 100_000:
		return fmt.Errorf("-queue must be from 0 to 100000, got %d", c.Queue)
	case c.QueueTimeout <= 0:
		return fmt.Errorf("-queue-timeout must be positive, got %v", c.QueueTimeout)
	case c.MaxBatch < 1 || c.MaxBatch > 256:
		return fmt.Errorf("-max-batch must be from 1 to 256, got %d", c.MaxBatch)
	case c.MaxConns < 1 || c.MaxConns > 1_000_000:
		return fmt.Errorf("-max-conns must be from 1 to 1000000, got %d", c.MaxConns)
	case c.Thumb < 16 || c.Thumb > 4096:
		return fmt.Errorf("-thumb must be from 16 to 4096, got %d", c.Thumb)
	case c.ThumbCache < 0:
		return fmt.Errorf("-thumb-cache must be 0 or more, got %d", c.ThumbCache)
	}
	if c.Writable && c.Token == "" {
		return fmt.Errorf("-writable needs -token (or $DMLGO_TOKEN): changes to the catalog must not be open to anyone")
	}
	if c.Reload < 0 {
		return fmt.Errorf("-reload must be 0 or more, got %v", c.Reload)
	}
	for _, o := range c.CORSOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("-cors-origin %q: want an origin such as https://shop.example, or *", o)
		}
	}
	return nil
}

// limits returns the per-image decoding limits.
func (c ServerConfig) limits() data.DecodeLimits {
	return data.DecodeLimits{MaxPixels: int64(c.MaxPixels), MaxBytes: c.MaxDecodeBytes}
}

// Server is the search service (an http.Handler).
type Server struct {
	Model *model.Model
	// Index is the single-file index served; Catalog the live catalog
	// (one of the two is nil).
	Index   *retrieval.Index
	Catalog *live.Catalog
	// Gallery resolves gallery images (of the first view; later views
	// share what it renders).
	Gallery *catalog.Gallery
	Config  ServerConfig

	mux       *http.ServeMux
	uploads   chan struct{} // uploads being received
	slots     chan struct{} // decoded searches running or queued
	batcher   *model.Batcher
	decode    *budget // memory of the decodes in progress
	thumbs    *thumbCache
	makers    chan struct{} // thumbnails being made
	names     map[int64]string
	indexID   string // hash of the index's rows, for ETags
	searches  atomic.Int64
	refused   atomic.Int64
	failures  atomic.Int64 // 500s, numbered in the log
	thumbMade atomic.Int64 // thumbnails made (not from the cache)
	added     atomic.Int64 // rows added over HTTP
	started   time.Time
	static    *live.View // the single-file index as a view
}

// view is what a request searches: the catalog as it stands, or the
// single-file index.
func (s *Server) view() *live.View {
	if s.Catalog != nil {
		return s.Catalog.View()
	}
	return s.static
}

// NewServer checks that the index belongs to the model and returns the
// service. gal resolves gallery images (thumbnails); call gal.Prepare first
// to render in-memory views before serving.
func NewServer(m *model.Model, ix *retrieval.Index, indexPath string, gal *catalog.Gallery, cfg ServerConfig) (*Server, error) {
	if err := m.CheckIndex(ix, indexPath); err != nil {
		return nil, err
	}
	if cfg.Writable {
		return nil, fmt.Errorf("-writable: %s is a single-file index, which is read-only; make it a catalog first (retrieve compact -index %s -out FOLDER)", indexPath, indexPath)
	}
	h := sha256.New()
	io.WriteString(h, ix.Fingerprint)
	for i, p := range ix.Paths {
		fmt.Fprintf(h, "\x00%d\x00%s", ix.Items[i], p)
	}
	return newServer(m, ix, nil, gal, cfg, hex.EncodeToString(h.Sum(nil))[:16])
}

// NewCatalogServer is NewServer for a live catalog: searches see every
// change as soon as it is made here, or by another process once Reload
// (or the Reload interval) picks it up; with Config.Writable the service
// adds and removes items itself.
func NewCatalogServer(m *model.Model, cat *live.Catalog, gal *catalog.Gallery, cfg ServerConfig) (*Server, error) {
	if err := m.CheckIndex(cat.View().Index, cat.Dir()); err != nil {
		return nil, err
	}
	// Row ids are never reused, so an id's image never changes: the ETag
	// of a thumbnail is the catalog's and the id's.
	dir, _ := filepath.Abs(cat.Dir())
	h := sha256.Sum256([]byte(cat.Fingerprint() + "\x00" + dir))
	return newServer(m, nil, cat, gal, cfg, hex.EncodeToString(h[:])[:16])
}

func newServer(m *model.Model, ix *retrieval.Index, cat *live.Catalog, gal *catalog.Gallery, cfg ServerConfig, id string) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Server{Model: m, Index: ix, Catalog: cat, Gallery: gal, Config: cfg,
		mux: http.NewServeMux(), uploads: make(chan struct{}, cfg.MaxUploads), slots: make(chan struct{}, 1+cfg.Queue),
		decode: newBudget(cfg.DecodeBudget), thumbs: newThumbCache(cfg.ThumbCache), makers: make(chan struct{}, 2),
		started: time.Now(), indexID: id, batcher: model.NewBatcher(m, cfg.MaxBatch)}
	if ix != nil {
		s.static = live.Static(ix)
	}
	s.names = catalog.ItemNames(s.view().Index)
	s.mux.HandleFunc("GET /{$}", s.page)
	s.mux.HandleFunc("GET /favicon.svg", s.favicon)
	s.mux.HandleFunc("GET /favicon.ico", s.favicon)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /v1/info", s.info)
	s.mux.HandleFunc("POST /v1/search", s.search)
	s.mux.HandleFunc("GET /v1/gallery/{file}", s.galleryImage)
	s.mux.HandleFunc("POST /v1/items", s.addItem)
	s.mux.HandleFunc("DELETE /v1/items/{item}", s.removeItem)
	return s, nil
}

// ServeHTTP implements http.Handler, logging one line per request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.route(rec, r)
	fmt.Fprintf(s.Config.Log, "%s %s %s %d %dB %v\n", t0.Format("15:04:05"), r.Method, r.URL.RequestURI(), rec.status, rec.bytes, time.Since(t0).Round(time.Microsecond))
}

// route answers CORS preflights, checks the access token on the API, and
// hands the request to its route.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	api := strings.HasPrefix(r.URL.Path, "/v1/")
	if origin := r.Header.Get("Origin"); origin != "" && api && s.corsAllowed(origin) {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if api && s.Config.Token != "" && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dmlgo"`)
		writeError(w, http.StatusUnauthorized, "this service needs an access token: send the header \"Authorization: Bearer TOKEN\"")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) corsAllowed(origin string) bool {
	for _, o := range s.Config.CORSOrigins {
		if o == "*" || o == origin {
			return true
		}
	}
	return false
}

// authorized compares the request's bearer token with the configured one
// in constant time.
func (s *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256([]byte(s.Config.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
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

// Unwrap lets http.ResponseController reach the connection (read deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// HTTPServer returns an http.Server for s with the configured timeouts.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.Config.ReadHeaderTimeout,
		ReadTimeout:       s.Config.ReadTimeout,
		WriteTimeout:      s.Config.WriteTimeout,
		IdleTimeout:       s.Config.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          log.New(s.Config.Log, "http: ", 0),
	}
}

// Serve answers on ln (at most MaxConns connections at once) until ctx is
// cancelled, then shuts down gracefully: it stops accepting, lets requests
// in flight finish (at most ShutdownTimeout) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(newLimitListener(ln, s.Config.MaxConns)) }()
	fmt.Fprintf(s.Config.Log, "serving %d gallery images on http://%s (model %s)\n", s.view().Rows(), ln.Addr(), s.Model.Fingerprint)
	if s.Catalog != nil && s.Config.Reload > 0 {
		go s.watch(ctx)
	}
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

// internalError logs err with a number and answers 500 with that number
// only: details (paths, internals) stay in the server's log.
func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	n := s.failures.Add(1)
	fmt.Fprintf(s.Config.Log, "error %d: %s: %v\n", n, what, err)
	writeError(w, http.StatusInternalServerError, "%s failed (error %d in the server's log)", what, n)
}

// busy answers 503 with Retry-After.
func (s *Server) busy(w http.ResponseWriter, format string, a ...any) {
	s.refused.Add(1)
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, format, a...)
}

// SearchResponse is the body of a successful search.
type SearchResponse struct {
	K            int             `json:"k"`
	Results      []catalog.Match `json:"results"`
	Fingerprint  string          `json:"fingerprint"`
	Milliseconds float64         `json:"took_ms"`
}

// search answers POST /v1/search in three stages, each bounded on its own:
// receive the upload (an upload slot, the size limit and the minimum
// rate), decode and transform it (its share of the decode budget, waited
// for at most QueueTimeout), then embed and search (a compute slot and the
// network, waited for at most QueueTimeout). Only decoded, transformed
// work takes a compute slot, so slow or large uploads cannot starve
// searches; the request's context cancels every stage when the client
// goes away.
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	k, box, err := s.searchParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	params, err := searchMode(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	raw, status, err := s.receive(w, r, t0)
	if err != nil {
		if status == http.StatusServiceUnavailable {
			s.busy(w, "%v", err)
		} else {
			writeError(w, status, "%v", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.Config.QueueTimeout)
	defer cancel()
	x, status, err := s.prepare(ctx, raw, box)
	raw = nil
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			return // the client went away
		case status == http.StatusServiceUnavailable:
			s.busy(w, "%v", err)
		case status == http.StatusInternalServerError:
			s.internalError(w, "decoding the upload", err)
		default:
			writeError(w, status, "%v", err)
		}
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.busy(w, "busy: %d searches are running or queued (-queue %d); retry later", cap(s.slots), s.Config.Queue)
		return
	}
	defer func() { <-s.slots }()
	e, err := s.batcher.Embed(ctx, x)
	var res []catalog.QueryResult
	if err == nil {
		res, err = catalog.QueryEmbeddings(ctx, s.Model, s.view(), s.names, []catalog.QueryImage{{Name: "upload"}}, e, k, params)
	}
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		return // the client went away
	case errors.Is(err, context.DeadlineExceeded):
		s.busy(w, "busy: waited %v for the model (-queue-timeout); retry later", s.Config.QueueTimeout)
		return
	default:
		s.internalError(w, "the search", err)
		return
	}
	s.searches.Add(1)
	out := SearchResponse{K: k, Results: res[0].Matches, Fingerprint: s.Model.Fingerprint}
	for i := range out.Results {
		out.Results[i].Thumbnail = fmt.Sprintf("/v1/gallery/%d.png", out.Results[i].ID)
		out.Results[i].Path = s.shownPath(out.Results[i].Path)
	}
	out.Milliseconds = float64(time.Since(t0).Microseconds()) / 1000
	writeJSON(w, http.StatusOK, out)
}

// receive reads the upload of a search request holding an upload slot:
// the image bytes and 200, or an error and the status to answer.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, t0 time.Time) ([]byte, int, error) {
	if r.ContentLength > s.Config.MaxUpload {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the upload is %d bytes, more than the limit of %s (-max-upload)", r.ContentLength, bytesize.Format(s.Config.MaxUpload))
	}
	select {
	case s.uploads <- struct{}{}:
	default:
		return nil, http.StatusServiceUnavailable, fmt.Errorf("busy: %d uploads are being received (-max-uploads); retry later", cap(s.uploads))
	}
	defer func() { <-s.uploads }()
	rr := &rateReader{body: r.Body, rc: http.NewResponseController(w), start: t0,
		grace: s.Config.UploadGrace, minRate: s.Config.MinUploadRate}
	if s.Config.ReadTimeout > 0 {
		rr.deadline = t0.Add(s.Config.ReadTimeout)
	}
	r.Body = http.MaxBytesReader(w, rr, s.Config.MaxUpload)
	raw, err := readUpload(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the upload is larger than the limit of %s (-max-upload)", bytesize.Format(s.Config.MaxUpload))
		case errors.Is(err, errSlowUpload):
			return nil, http.StatusRequestTimeout, fmt.Errorf("the upload stopped arriving or came slower than %s/s after %v (-min-upload-rate, -upload-grace)", bytesize.Format(s.Config.MinUploadRate), s.Config.UploadGrace)
		case isTimeout(err):
			return nil, http.StatusRequestTimeout, fmt.Errorf("the upload took longer than %v (-read-timeout)", s.Config.ReadTimeout)
		}
		return nil, http.StatusBadRequest, err
	}
	return raw, http.StatusOK, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// prepare decodes an upload within the limits, holding its share of the
// decode budget, and applies the model's transform: the network's input
// (1, C, S, S), or an error and the status to answer. The decoded image is
// dropped before prepare returns.
func (s *Server) prepare(ctx context.Context, raw []byte, box image.Rectangle) ([]float32, int, error) {
	cost, err := data.DecodeCost(raw)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("the upload is not a JPEG or PNG image (%v)", err)
	}
	if err := s.Config.limits().Check(cost); err != nil {
		return nil, http.StatusBadRequest, err
	}
	// The box is checked against the image as shown (EXIF orientation
	// applied), before any decoding.
	w, h := cost.Width, cost.Height
	if data.JPEGOrientation(raw) >= 5 {
		w, h = h, w
	}
	if box != (image.Rectangle{}) && !box.Overlaps(image.Rect(0, 0, w, h)) {
		return nil, http.StatusBadRequest, fmt.Errorf("box %v lies outside the %d×%d image", box, w, h)
	}
	if err := s.decode.acquire(ctx, cost.Bytes); err != nil {
		return nil, http.StatusServiceUnavailable, fmt.Errorf("busy: waited %v for memory to decode the upload (-decode-budget %s); retry later", s.Config.QueueTimeout, bytesize.Format(s.Config.DecodeBudget))
	}
	defer s.decode.release(cost.Bytes)
	// A large JPEG is decoded at the scale the transform needs, its box
	// with it (data.DecodeFor).
	img, box, err := data.DecodeFor(ctx, raw, s.Config.limits(), s.Model.Transform, box)
	if err != nil {
		if ctx.Err() != nil {
			return nil, http.StatusServiceUnavailable, fmt.Errorf("busy: the upload could not be decoded within %v (-queue-timeout); retry later", s.Config.QueueTimeout)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("the upload is not a decodable JPEG or PNG image (%v)", err)
	}
	return s.Model.TransformImages([]image.Image{img}, []image.Rectangle{box}), http.StatusOK, nil
}

// searchMode reads ?category=, ?exact=, ?recall= and ?nprobe=.
func searchMode(r *http.Request) (live.SearchParams, error) {
	q := r.URL.Query()
	var p live.SearchParams
	p.Category = q.Get("category")
	if len(p.Category) > 256 {
		return p, fmt.Errorf("category=: at most 256 bytes")
	}
	switch v := q.Get("exact"); v {
	case "", "0", "false":
	case "1", "true":
		p.Exact = true
	default:
		return p, fmt.Errorf("exact=%q: want 1 or 0", v)
	}
	if v := q.Get("recall"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 1) {
			return p, fmt.Errorf("recall=%q: want a recall@10 target in (0, 1]", v)
		}
		p.Recall = f
	}
	if v := q.Get("nprobe"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<20 {
			return p, fmt.Errorf("nprobe=%q: want the lists to scan per query, 1 or more", v)
		}
		p.NProbe = n
	}
	return p, nil
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
		b, err := catalog.ParseBox(v)
		if err != nil {
			return 0, box, fmt.Errorf("box=%q: %v", v, err)
		}
		box = b
	}
	return k, box, nil
}

// readUpload returns the image bytes of a search request: the multipart
// field "image", or the raw body for any other content type.
func readUpload(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != "multipart/form-data" {
		raw, err := readAll(r.Body, r.ContentLength)
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
		raw, err := readAll(p, r.ContentLength)
		if err != nil {
			return nil, fmt.Errorf("multipart field \"image\": %w", err)
		}
		if len(raw) == 0 {
			return nil, errors.New("the multipart field \"image\" is empty")
		}
		return raw, nil
	}
}

// readAll reads r to its end (bounded by the caller's MaxBytesReader). It
// starts from the declared length but at most readAhead bytes, so that a
// client that declares a large body and sends none holds little memory;
// a real upload past that grows the buffer as it arrives.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, min(max(declared+1, 512), readAhead)))
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// readAhead is the most readAll reserves before the bytes arrive.
const readAhead = 256 << 10

// galleryImage serves /v1/gallery/{id}.png: a thumbnail of at most Thumb
// pixels a side of the row with that id (a single-file index: its
// position), made once (within the decode limits and budget, two at a
// time) and kept in a cache of ThumbCache bytes.
func (s *Server) galleryImage(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	num, ok := strings.CutSuffix(file, ".png")
	id, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || id < 0 {
		writeError(w, http.StatusNotFound, "%q: want /v1/gallery/ID.png with ID a gallery row id", file)
		return
	}
	v := s.view()
	pos, ok := v.Position(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no gallery row has id %d (%d rows)", id, v.Rows())
		return
	}
	etag := fmt.Sprintf(`"%s-%d-%d"`, s.indexID, id, s.Config.Thumb)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.Config.QueueTimeout)
	defer cancel()
	b, err := s.thumbs.get(ctx, int(id), func() ([]byte, error) { return s.makeThumb(v, pos) })
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		return
	case errors.Is(err, context.DeadlineExceeded):
		s.busy(w, "busy: waited %v for the gallery image (-queue-timeout); retry later", s.Config.QueueTimeout)
		return
	default:
		s.internalError(w, fmt.Sprintf("gallery row %d", id), err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", etag)
	w.Write(b)
}

// makeThumb renders a gallery row's thumbnail as PNG. Image files are
// decoded within the upload limits, holding their share of the decode
// budget; at most two thumbnails are made at once. It runs on for the
// cache even when the request that started it goes away, but no longer
// than QueueTimeout for its turn.
func (s *Server) makeThumb(v *live.View, row int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.Config.QueueTimeout)
	defer cancel()
	select {
	case s.makers <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.makers }()
	s.thumbMade.Add(1)
	var img image.Image
	p := v.Paths[row]
	gal := s.Gallery.With(v.Index)
	if gal.Rendered(row) {
		var err error
		if img, err = gal.Image(row); err != nil {
			return nil, err
		}
	} else {
		cost, err := data.DecodeFileCost(p)
		if err != nil {
			return nil, err
		}
		if err := s.Config.limits().Check(cost); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if err := s.decode.acquire(ctx, cost.Bytes); err != nil {
			return nil, err
		}
		// A large JPEG at the scale the thumbnail needs (data.DecodeFor:
		// a 12-megapixel photo at a quarter for a side of 256).
		img, _, err = data.DecodeFileFor(p, s.Config.limits(), data.Transform{Size: s.Config.Thumb, Fit: data.FitPad}, image.Rectangle{})
		s.decode.release(cost.Bytes)
		if err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, catalog.Thumbnail(img, s.Config.Thumb)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shownPath is how a response shows a server path: as it is with
// ExposePaths; otherwise relative to the indexed folder when under it, or
// the file name alone. FMNIST-C2S rows ("fmnist-c2s:row=N") are not paths.
func (s *Server) shownPath(p string) string {
	if s.Config.ExposePaths || p == "" || strings.HasPrefix(p, "fmnist-c2s:") {
		return p
	}
	if root := s.view().Meta["root"]; root != "" {
		if rel, err := filepath.Rel(root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.Base(p)
}

// Info describes the model and the index (GET /v1/info).
type Info struct {
	Model       string `json:"model"`
	Checkpoint  string `json:"checkpoint"`
	Fingerprint string `json:"fingerprint"`
	Dim         int    `json:"dim"`
	Input       string `json:"input"`
	// Precision is what the model's convolutions run in ("fp32", or
	// "bf16 (AVX-512 BF16)", or a float32 fallback and its reason).
	Precision string            `json:"precision"`
	Rows      int               `json:"gallery_rows"`
	Items     int               `json:"gallery_items"`
	IndexMeta map[string]string `json:"index_meta"`
	DefaultK  int               `json:"default_k"`
	MaxK      int               `json:"max_k"`
	MaxUpload int64             `json:"max_upload_bytes"`
	// TokenRequired says whether the API needs an access token.
	TokenRequired bool `json:"token_required"`
	// Catalog says whether the gallery is a live catalog; Writable whether
	// this service adds and removes items; Categories counts the live rows
	// of each category (catalogs and indexes that have categories).
	Catalog    bool  `json:"catalog"`
	Generation int64 `json:"generation,omitempty"`
	// Approximate describes the approximate index searches use (nil:
	// exact search): its lists and the rows it covers; the rows added
	// since are searched exactly.
	Approximate *ApproximateInfo `json:"approximate,omitempty"`
	Writable    bool             `json:"writable"`
	Categories  map[string]int   `json:"categories,omitempty"`
}

// pathMeta are the index meta keys that hold server paths.
var pathMeta = map[string]bool{"checkpoint": true, "root": true, "manifest": true}

func (s *Server) infoValue() Info {
	v := s.view()
	meta := map[string]string{}
	for k, v := range v.Meta {
		if k == "item_names" || k == "data" {
			continue
		}
		if pathMeta[k] && !s.Config.ExposePaths && v != "" {
			v = filepath.Base(v)
		}
		meta[k] = v
	}
	ckpt := s.Model.Path
	if !s.Config.ExposePaths {
		ckpt = filepath.Base(ckpt)
	}
	return Info{
		Model: s.Model.Card.Arch, Checkpoint: ckpt, Fingerprint: s.Model.Fingerprint,
		Dim: s.Model.Dim, Input: model.DescribeTransform(s.Model.Transform), Precision: precision(s.Model),
		Rows: v.Rows(), Items: liveItems(v), IndexMeta: meta,
		DefaultK: s.Config.DefaultK, MaxK: s.Config.MaxK, MaxUpload: s.Config.MaxUpload,
		TokenRequired: s.Config.Token != "",
		Catalog:       s.Catalog != nil, Generation: v.Generation, Writable: s.Catalog != nil && s.Config.Writable,
		Categories:  categories(v),
		Approximate: approximate(v),
	}
}

func precision(m *model.Model) string {
	if m.Precision == "" {
		return "fp32"
	}
	return m.Precision
}

func approximate(v *live.View) *ApproximateInfo {
	lists, rows, ok := v.Approximate()
	if !ok {
		return nil
	}
	return &ApproximateInfo{Kind: "ivf", Lists: lists, Rows: rows, Storage: string(v.ANNStorage()), DefaultRecall: ivf.DefaultRecall}
}

// ApproximateInfo is Info's description of an approximate index.
type ApproximateInfo struct {
	Kind          string  `json:"kind"`
	Lists         int     `json:"lists"`
	Rows          int     `json:"rows"`
	Storage       string  `json:"storage"` // fp32, fp16 or int8 (re-ranked with the exact rows)
	DefaultRecall float64 `json:"default_recall"`
}

// liveItems counts the distinct items of the live rows.
func liveItems(v *live.View) int {
	if v.Removed == 0 {
		return data.DistinctItems(v.Items)
	}
	seen := map[int64]bool{}
	for i, it := range v.Items {
		if v.Live(i) {
			seen[it] = true
		}
	}
	return len(seen)
}

// categories counts the live rows by category; nil when no row has one.
func categories(v *live.View) map[string]int {
	if v.Categories == nil {
		return nil
	}
	c := v.CategoryCounts()
	if len(c) == 1 && c[""] > 0 {
		return nil
	}
	return c
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.infoValue())
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok", "gallery_rows": s.view().Rows(), "fingerprint": s.Model.Fingerprint,
		"in_flight": len(s.slots), "capacity": cap(s.slots),
		"uploads": len(s.uploads), "upload_capacity": cap(s.uploads),
		"decode_bytes": s.decode.inUse(), "thumb_cache_bytes": s.thumbs.bytes(),
		"searches": s.searches.Load(), "refused": s.refused.Load(),
		"forward_passes": s.batcher.Batches(), "waiting_for_network": s.batcher.Waiting(),
		"uptime_s": int64(time.Since(s.started).Seconds()),
	})
}

//go:embed page.html
var pageHTML string

//go:embed favicon.svg
var faviconSVG []byte

// pageTemplate is the upload page: plain HTML and inline JavaScript, no
// external assets.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"size": bytesize.Format}).Parse(pageHTML))

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	pageTemplate.Execute(w, s.infoValue())
}

func (s *Server) favicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "max-age=86400")
	w.Write(faviconSVG)
}
