package main

// The serve figures (issue 15): `retrieve serve` end to end. One 300×400
// JPEG uploaded as the web page uploads it (multipart field "image") to
// POST /v1/search?k=10 on a loopback listener, answered by the service
// with its default limits over a ResNet-50 checkpoint (3×224×224 → 128)
// loaded by model.Load (frozen weights) and an exact search of a gallery
// of random unit rows; the latency seen by the client (request written to
// response read) at concurrency 1 and 4, as p50 and p99, and the requests
// per second. The client runs in the same process and shares the threads.
// The service runs the network for one request at a time (its graph is not
// safe for concurrent use; decoding overlaps), so at concurrency 4 a
// request mostly waits for the three ahead of it. Issue 15's target: p50
// under 40 ms on two threads.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/serve"
)

// Shapes of the serve figures: a 300×400 upload (width × height, a phone
// photo scaled down), ResNet-50 with a 128-wide embedding, top 10.
const (
	serveArch           = "resnet50"
	serveDim            = 128
	serveW, serveH      = 300, 400
	serveK              = 10
	servePrefix         = "serve_rn50"
	serveWarmup         = 3
	serveRequestTimeout = time.Minute
)

// serveSuite makes the checkpoint and the gallery in a temporary folder,
// times the service at concurrency 1 (o.serveN requests) and 4 (twice as
// many) and prints the figures; any failed request ends the run.
func serveSuite(o options) {
	if o.serveN < 1 || o.serveRows < serveK {
		fatalf("-serve-n %d, -serve-rows %d: want at least 1 request and %d rows", o.serveN, o.serveRows, serveK)
	}
	if err := runServeSuite(o); err != nil {
		fatalf("serve: %v", err)
	}
}

// runServeSuite is serveSuite, the temporary folder removed on every path
// (fatalf exits without running deferred calls).
func runServeSuite(o options) error {
	dir, err := os.MkdirTemp("", "dmlgo-bench-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(os.Stderr, "serve: writing a %s checkpoint (random weights) and a %d-row gallery to %s\n", serveArch, o.serveRows, dir)
	ckpt, err := saveServeModel(filepath.Join(dir, "rn50.ckpt"), o.threads)
	if err != nil {
		return err
	}
	sb := serveBench{
		ckpt: ckpt, dir: dir, rows: o.serveRows, k: serveK,
		levels: []serveLevel{{conc: 1, n: o.serveN}, {conc: 4, n: 2 * o.serveN}},
		warm:   serveWarmup, threads: o.threads, device: o.device,
		upload: photoJPEG(serveW, serveH), log: os.Stderr,
	}
	fmt.Printf("# serve: %s (random weights) 3×224×224 → %d, exact top-%d of %d gallery rows, one %d×%d JPEG (%d bytes) per request as multipart, %d threads, default service limits, client in the same process\n",
		serveArch, serveDim, serveK, o.serveRows, serveW, serveH, len(sb.upload), o.threads)
	// fp32, then the low precisions the CPU has kernels for
	// (serve_rn50_bf16_*, serve_rn50_int8_*).
	for _, prec := range append([]string{"fp32"}, lowPrecisions...) {
		prefix := servePrefix
		if prec != "fp32" {
			if o.device == "cuda" {
				fmt.Printf("# serve: no %s figures: the CUDA backend runs fp32 only\n", prec)
				continue
			}
			if eff, err := cpu.New(0).SetPrecision(prec); err != nil || strings.HasPrefix(eff, "fp32") {
				fmt.Printf("# serve: no %s figures: %s\n", prec, whyNot(eff, err))
				continue
			}
			prefix += "_" + prec
		}
		sb.precision = prec
		res, err := serveLatency(sb)
		if err != nil {
			return err
		}
		for _, f := range serveFigures(prefix, o.threads, o.serveRows, res) {
			fmt.Printf("%s %s %s\n", f.name, f.value, f.unit)
		}
	}
	return nil
}

// saveServeModel writes a checkpoint of a freshly initialised ResNet-50
// for RGB 224×224 photos (a TSV manifest's transform) to path. Random
// weights are enough: a forward pass costs the same whatever the weights,
// and the gallery is random too.
func saveServeModel(path string, threads int) (string, error) {
	b := cpu.New(max(threads, 1))
	net, err := model.NewNet(b, model.NetConfig{Arch: serveArch, Dim: serveDim, InChannels: 3}, 1)
	if err != nil {
		return "", err
	}
	card := model.Card{Arch: serveArch, Dim: serveDim, InChannels: 3, Data: sets.Spec{Kind: sets.TSV}}
	state := map[string]string{"made_by": "tools/bench serve: random initialisation, not trained"}
	if err := model.SaveCheckpoint(path, b, model.Parts{Model: net, Card: card}, state); err != nil {
		return "", err
	}
	return path, nil
}

// serveBench says what serveLatency measures.
type serveBench struct {
	ckpt    string       // the checkpoint the service loads
	dir     string       // where the gallery index is written
	rows, k int          // gallery rows (random unit vectors), results asked for
	levels  []serveLevel // concurrency and timed requests, in order
	warm    int          // untimed requests before each level (at least its concurrency)
	threads int          // model.Options.Threads (0: all cores, GOMAXPROCS unchanged)
	device  string       // model.Options.Device
	// precision is model.Options.Precision ("": fp32).
	precision string
	upload    []byte // the JPEG posted
	// wrap, when set, wraps the service's handler (tests inject faults).
	wrap func(http.Handler) http.Handler
	log  io.Writer // progress
}

type serveLevel struct{ conc, n int }

// serveResult is one level's latencies, sorted, and its throughput.
type serveResult struct {
	serveLevel
	client, server []time.Duration // request to response read; the service's took_ms
	qps            float64
}

// serveLatency loads the checkpoint as retrieve serve does, writes and
// loads a gallery index of sb.rows random unit rows, starts the service on
// 127.0.0.1 and times sb.levels. A response that is not 200 with sb.k
// results from this model is an error naming the request.
func serveLatency(sb serveBench) ([]serveResult, error) {
	if sb.log == nil {
		sb.log = io.Discard
	}
	cfg := serve.DefaultServerConfig()
	// As retrieve serve: a memory limit so that decoded uploads are
	// collected before the heap doubles (GOMEMLIMIT overrides).
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(cfg.DecodeBudget + 256<<20))
	}
	m, err := model.Load(sb.ckpt, model.Options{Device: sb.device, Threads: sb.threads, Batch: 64, Precision: sb.precision}, sb.log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(sb.log, "serve: model %s\n", m.Describe())
	ixPath := filepath.Join(sb.dir, "gallery.safetensors")
	if err := randomGallery(m, sb.rows, ixPath); err != nil {
		return nil, err
	}
	ix, err := retrieval.LoadIndex(ixPath)
	if err != nil {
		return nil, err
	}
	srv, err := serve.NewServer(m, ix, ixPath, catalog.NewGallery(ix, m.Card.Data, sb.log), cfg)
	if err != nil {
		return nil, err
	}
	// The http.Server retrieve serve runs (Server.Serve adds only a
	// connection limit, 256 by default), so that a test can wrap its
	// handler.
	hs := srv.HTTPServer()
	if sb.wrap != nil {
		hs.Handler = sb.wrap(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go hs.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}()

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("image", "photo.jpg")
	if err != nil {
		return nil, err
	}
	fw.Write(sb.upload)
	if err := mw.Close(); err != nil {
		return nil, err
	}
	c := &serveClient{
		http:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: serveRequestTimeout},
		url:   "http://" + ln.Addr().String() + "/v1/search?k=" + strconv.Itoa(sb.k),
		ctype: mw.FormDataContentType(), body: body.Bytes(), k: sb.k, fingerprint: m.Fingerprint,
	}
	defer c.http.CloseIdleConnections()

	var out []serveResult
	for _, l := range sb.levels {
		fmt.Fprintf(sb.log, "serve: concurrency %d: %d warm-up requests, then %d timed\n", l.conc, max(sb.warm, l.conc), l.n)
		if _, err := c.run(l.conc, max(sb.warm, l.conc)); err != nil {
			return nil, fmt.Errorf("warm-up at concurrency %d: %w", l.conc, err)
		}
		r, err := c.run(l.conc, l.n)
		if err != nil {
			return nil, fmt.Errorf("concurrency %d: %w", l.conc, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// randomGallery writes to path an index of rows random unit rows of the
// model's dimension, with its fingerprint (as retrieve index would).
func randomGallery(m *model.Model, rows int, path string) error {
	r := rand.New(rand.NewPCG(15, 15))
	ix := &retrieval.Index{Dim: m.Dim, Fingerprint: m.Fingerprint,
		Embeddings: make([]float32, rows*m.Dim), Items: make([]int64, rows), Paths: make([]string, rows),
		Meta: map[string]string{"arch": m.Card.Arch, "checkpoint": m.Path, "source": "tools/bench serve: random unit rows"}}
	for i := range ix.Embeddings {
		ix.Embeddings[i] = float32(r.NormFloat64())
	}
	retrieval.Normalize(ix.Embeddings, m.Dim)
	for i := range ix.Items {
		ix.Items[i] = int64(i)
	}
	return ix.Save(path)
}

// serveClient posts the same upload again and again.
type serveClient struct {
	http        *http.Client
	url, ctype  string
	body        []byte
	k           int
	fingerprint string
}

// run posts n requests from conc goroutines and returns the latencies,
// sorted, and the requests per second; the first failure stops it.
func (c *serveClient) run(conc, n int) (serveResult, error) {
	res := serveResult{serveLevel: serveLevel{conc: conc, n: n}}
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	t0 := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				dc, ds, err := c.post()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("request %d of %d: %w", i+1, n, err)
				}
				stop := firstErr != nil
				res.client = append(res.client, dc)
				res.server = append(res.server, ds)
				mu.Unlock()
				if stop {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	res.qps = float64(n) / time.Since(t0).Seconds()
	slices.Sort(res.client)
	slices.Sort(res.server)
	return res, nil
}

// post sends one search and checks the answer: 200, k results, this
// model's fingerprint. It returns the time from sending the request to
// reading the whole response, and the service's own took_ms.
func (c *serveClient) post() (time.Duration, time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(c.body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", c.ctype)
	t := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	dt := time.Since(t)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("status %d: %s", resp.StatusCode, clipBody(raw, 300))
	}
	var sr serve.SearchResponse
	if err := json.Unmarshal(raw, &sr); err != nil {
		return 0, 0, fmt.Errorf("status 200 but the body is not a search response (%v): %s", err, clipBody(raw, 300))
	}
	if sr.K != c.k || len(sr.Results) != c.k || sr.Fingerprint != c.fingerprint {
		return 0, 0, fmt.Errorf("status 200 but k %d, %d results, model %s: want k %d, %d results, model %s", sr.K, len(sr.Results), sr.Fingerprint, c.k, c.k, c.fingerprint)
	}
	return dt, time.Duration(sr.Milliseconds * float64(time.Millisecond)), nil
}

func clipBody(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// servePercentile is the nearest-rank p-quantile of sorted: p99 of 100
// requests is the second slowest, of fewer the slowest.
func servePercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// serveFigure is one `name value unit` line.
type serveFigure struct{ name, value, unit string }

// serveFigures names the results: <prefix>_p50_c<conc>, _p99_, _qps_ and
// _server_p50_ (the service's own took_ms: the client and HTTP left out),
// with the threads and the gallery's rows.
func serveFigures(prefix string, threads, rows int, res []serveResult) []serveFigure {
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	out := []serveFigure{
		{prefix + "_threads", strconv.Itoa(threads), "threads"},
		{prefix + "_gallery_rows", strconv.Itoa(rows), "rows"},
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
	}
	for _, r := range res {
		c := fmt.Sprintf("_c%d", r.conc)
		out = append(out,
			serveFigure{prefix + "_p50" + c, ms(servePercentile(r.client, 0.50)), "ms"},
			serveFigure{prefix + "_p99" + c, ms(servePercentile(r.client, 0.99)), "ms"},
			serveFigure{prefix + "_qps" + c, strconv.FormatFloat(r.qps, 'f', 1, 64), "requests/s"},
			serveFigure{prefix + "_server_p50" + c, ms(servePercentile(r.server, 0.50)), "ms"},
		)
	}
	return out
}
