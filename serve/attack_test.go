package serve

// Attacks on the search service, against a real server on 127.0.0.1: slow
// bodies, decompression bombs, gallery floods, and the access controls.
// Every request loop is bounded in count and time.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/internal/procmem"
	"github.com/dmlgo/dmlgo/internal/testimg"
	"github.com/dmlgo/dmlgo/internal/testmodel"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
)

// serveFixture is a model, an index of its data set's gallery, the gallery
// and one gallery image as a PNG upload (which finds its own row first).
type serveFixture struct {
	m      *model.Model
	ix     *retrieval.Index
	gal    *catalog.Gallery
	upload []byte
	row    int
}

func newServeFixture(t *testing.T) serveFixture {
	t.Helper()
	m := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(t.TempDir(), "a.ckpt"), "resnet-s", 8, 1))
	spec := m.Card.Data
	ix, _, err := catalog.BuildIndex(context.Background(), m, catalog.IndexSource{Data: &spec}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	gal := catalog.NewGallery(ix, spec, io.Discard)
	const row = 5
	img, err := gal.Image(row)
	if err != nil {
		t.Fatal(err)
	}
	return serveFixture{m: m, ix: ix, gal: gal, upload: testmodel.PNG(t, img), row: row}
}

// startServer serves srv on 127.0.0.1 until the test ends; it returns the
// address.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the server did not stop")
		}
	})
	return ln.Addr().String()
}

// searchOnce posts upload and returns the status, the response and the time
// taken.
func searchOnce(t *testing.T, client *http.Client, addr string, upload []byte, header http.Header) (int, SearchResponse, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/search?k=3", bytes.NewReader(upload))
	req.Header.Set("Content-Type", "image/png")
	for k, v := range header {
		req.Header[k] = v
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return -1, SearchResponse{}, time.Since(t0)
	}
	defer resp.Body.Close()
	var sr SearchResponse
	json.NewDecoder(resp.Body).Decode(&sr)
	return resp.StatusCode, sr, time.Since(t0)
}

// slowBodies opens n connections that each declare a 100,000-byte body and
// send it one byte a second, until the test ends; it returns them.
func slowBodies(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/search HTTP/1.1\r\nHost: %s\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89", addr)
		conns[i] = c
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; i < 60; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					c.Write([]byte{'P'})
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// TestServeSlowBodies: 20 sockets trickling request bodies at a byte a
// second do not hold the compute slots: 20 searches in a row all succeed,
// the slowest under 2 s, with the right answer; a body slower than
// -min-upload-rate is cut off with 408 after the grace period.
func TestServeSlowBodies(t *testing.T) {
	f := newServeFixture(t)
	srv, err := NewServer(f.m, f.ix, "a.safetensors", f.gal, DefaultServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, srv)
	slowBodies(t, addr, 20)
	for i := 0; len(srv.uploads) < 20; i++ { // every slow body is being received
		if i > 500 {
			t.Fatalf("%d of 20 slow uploads reached the server", len(srv.uploads))
		}
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var took []time.Duration
	for i := 0; i < 20; i++ {
		code, sr, d := searchOnce(t, client, addr, f.upload, nil)
		if code != 200 || len(sr.Results) == 0 || sr.Results[0].Row != f.row {
			t.Fatalf("search %d beside 20 slow uploads: status %d, results %+v", i, code, sr.Results)
		}
		took = append(took, d)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	if p99 := took[len(took)-1]; p99 > 2*time.Second {
		t.Errorf("p99 of 20 searches beside 20 slow uploads: %v, want under 2 s", p99)
	}
	t.Logf("20 searches beside 20 slow uploads: median %v, p99 %v", took[len(took)/2], took[len(took)-1])

	// A body below the minimum rate is cut off once the grace has passed.
	cfg := DefaultServerConfig()
	cfg.UploadGrace = 300 * time.Millisecond
	strict, err := NewServer(f.m, f.ix, "a.safetensors", f.gal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := slowBodies(t, startServer(t, strict), 1)[0]
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	t0 := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the slow upload got no answer: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(raw), "-min-upload-rate") || time.Since(t0) > 3*time.Second {
		t.Errorf("slow upload: %d %s after %v, want 408 naming -min-upload-rate", resp.StatusCode, raw, time.Since(t0))
	}
}

// TestServeDecodeBombs: 12 concurrent uploads of a 308 KB PNG of
// 6300×6300 16-bit pixels (320 MB each once decoded) are all answered
// within 10 s while the server's peak RSS stays under 1 GiB; searches are
// right afterwards. The server runs in a child process (this test binary)
// so that its peak RSS (VmHWM) is its own.
func TestServeDecodeBombs(t *testing.T) {
	if os.Getenv("DMLGO_SERVE_CHILD") == "1" {
		serveChild(t)
		return
	}
	if testing.Short() {
		t.Skip("starts a server process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeDecodeBombs$")
	cmd.Env = append(os.Environ(), "DMLGO_SERVE_CHILD=1", "GOMAXPROCS=2")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	}()
	var addr string
	var row int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "serving %s row %d", &addr, &row); err == nil {
			break
		}
	}
	if addr == "" {
		t.Fatal("the server process did not start")
	}
	go io.Copy(io.Discard, stdout)
	bomb := testimg.PNG16(6300, 6300)
	t0 := time.Now()
	client := &http.Client{Timeout: 10 * time.Second}
	codes := make([]int, 12)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = searchOnce(t, client, addr, bomb, nil)
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	for i, c := range codes {
		if c != 400 && c != 200 {
			t.Errorf("bomb %d: status %d, want 400 (or 200)", i, c)
		}
	}
	if took > 10*time.Second {
		t.Errorf("12 bombs answered in %v, want within 10 s", took)
	}
	hwm := vmHWM(t, cmd.Process.Pid)
	if hwm > 1<<30 {
		t.Errorf("the server's peak RSS reached %d MiB, want under 1 GiB", hwm>>20)
	}
	t.Logf("12 concurrent bombs: statuses %v in %v; server peak RSS %d MiB", codes, took, hwm>>20)
	// The server still answers right (the same fixture, built here).
	code, sr, _ := searchOnce(t, client, addr, childUpload(t), nil)
	if code != 200 || len(sr.Results) == 0 || sr.Results[0].Row != row {
		t.Errorf("search after the bombs: %d %+v, want row %d first", code, sr.Results, row)
	}
}

// childUpload is the upload the child's fixture finds first: the same
// untrained model and data, built the same way.
func childUpload(t *testing.T) []byte {
	t.Helper()
	return newServeFixture(t).upload
}

// serveChild is the server process of TestServeDecodeBombs: it serves the
// fixture with the default configuration until its stdin closes.
func serveChild(t *testing.T) {
	f := newServeFixture(t)
	srv, err := NewServer(f.m, f.ix, "a.safetensors", f.gal, DefaultServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, srv)
	fmt.Printf("serving %s row %d\n", addr, f.row)
	io.Copy(io.Discard, os.Stdin)
}

// vmHWM reads a process's peak resident set size in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := procmem.PeakRSS(pid)
	if err != nil {
		t.Skipf("no peak RSS: %v", err)
	}
	return n
}

// TestServeGalleryThumbnails: a gallery of image files, one of them large:
// eight concurrent requests for its thumbnail decode it once, and it comes
// back at most -thumb pixels a side; a file over the decoding limits is a
// 500 that names neither the path nor the file.
func TestServeGalleryThumbnails(t *testing.T) {
	dir := t.TempDir()
	shop := filepath.Join(dir, "shop")
	os.MkdirAll(shop, 0o755)
	write := func(name string, w, h int) {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y += 7 {
			for x := 0; x < w; x += 5 {
				img.Set(x, y, color.RGBA{uint8(x), uint8(y), 90, 255})
			}
		}
		fh, err := os.Create(filepath.Join(shop, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".jpg") {
			jpeg.Encode(fh, img, nil)
		} else {
			png.Encode(fh, img)
		}
		fh.Close()
	}
	write("a.png", 40, 30)
	write("big.jpg", 3000, 2000)
	write("c.png", 50, 50)
	m := testmodel.Load(t, testmodel.SaveUntrained(t, filepath.Join(dir, "a.ckpt"), "resnet-s", 8, 1))
	ix, _, err := catalog.BuildIndex(context.Background(), m, catalog.IndexSource{Dir: shop}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	big := -1
	for i, p := range ix.Paths {
		if strings.HasSuffix(p, "big.jpg") {
			big = i
		}
	}
	cfg := DefaultServerConfig()
	cfg.Thumb = 64
	srv, err := NewServer(m, ix, "shop.safetensors", catalog.NewGallery(ix, m.Card.Data, io.Discard), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	srv.Config.Log = &logBuf
	addr := startServer(t, srv)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	bodies := make([][]byte, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("http://%s/v1/gallery/%d.png", addr, big))
			if err != nil {
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			bodies[i], _ = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for i := range codes {
		cfgImg, err := png.DecodeConfig(bytes.NewReader(bodies[i]))
		if codes[i] != 200 || err != nil || max(cfgImg.Width, cfgImg.Height) != 64 {
			t.Fatalf("thumbnail %d: %d %v %dx%d", i, codes[i], err, cfgImg.Width, cfgImg.Height)
		}
	}
	if n := srv.thumbMade.Load(); n != 1 {
		t.Errorf("8 requests for one thumbnail made it %d times, want once", n)
	}

	// Over the limits: refused without decoding, with no path in the answer.
	cfg.MaxDecodeBytes, cfg.DecodeBudget = 1<<20, 1<<20
	tight, err := NewServer(m, ix, "shop.safetensors", catalog.NewGallery(ix, m.Card.Data, io.Discard), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tight.Config.Log = &logBuf
	resp, err := http.Get(fmt.Sprintf("http://%s/v1/gallery/%d.png", startServer(t, tight), big))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(raw), "big.jpg") || strings.Contains(string(raw), dir) || !strings.Contains(string(raw), "server's log") {
		t.Errorf("gallery image over the limits: %d %s", resp.StatusCode, raw)
	}
	if !strings.Contains(logBuf.String(), "-max-decode-bytes") {
		t.Errorf("the log does not say why: %s", logBuf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeAccess: paths stay private unless -expose-paths; the token
// guards the API (constant-time compare, 401 without it) but not the page;
// CORS headers only for configured origins; the favicon.
func TestServeAccess(t *testing.T) {
	dir := t.TempDir()
	shop := filepath.Join(dir, "shop", "tops")
	os.MkdirAll(shop, 0o755)
	for i := 0; i < 3; i++ {
		img := image.NewGray(image.Rect(0, 0, 20+i, 20))
		for j := range img.Pix {
			img.Pix[j] = uint8(j * (i + 3))
		}
		fh, _ := os.Create(filepath.Join(shop, fmt.Sprintf("p%d.png", i)))
		png.Encode(fh, img)
		fh.Close()
	}
	ckpt := testmodel.SaveUntrained(t, filepath.Join(dir, "a.ckpt"), "resnet-s", 8, 1)
	m := testmodel.Load(t, ckpt)
	ix, _, err := catalog.BuildIndex(context.Background(), m, catalog.IndexSource{Dir: filepath.Join(dir, "shop")}, model.EmbedOptions{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	upload, _ := os.ReadFile(filepath.Join(shop, "p1.png"))
	gal := catalog.NewGallery(ix, m.Card.Data, io.Discard)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(url string, h http.Header) (int, http.Header, string) {
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(raw)
	}

	// Defaults: no token, no CORS, no server paths.
	srv, err := NewServer(m, ix, "shop.safetensors", gal, DefaultServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, srv)
	code, sr, _ := searchOnce(t, client, addr, upload, http.Header{"Origin": {"https://evil.example"}})
	if code != 200 || len(sr.Results) == 0 {
		t.Fatalf("search: %d", code)
	}
	for _, r := range sr.Results {
		if strings.Contains(r.Path, dir) || !strings.HasPrefix(r.Path, "tops/p") {
			t.Errorf("result path %q: want it relative to the indexed folder", r.Path)
		}
	}
	code, h, body := get("http://"+addr+"/v1/info", http.Header{"Origin": {"https://evil.example"}})
	if code != 200 || strings.Contains(body, dir) || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("info: %d %s, CORS %q", code, body, h.Get("Access-Control-Allow-Origin"))
	}
	if code, h, body := get("http://"+addr+"/favicon.ico", nil); code != 200 || !strings.Contains(h.Get("Content-Type"), "svg") || !strings.Contains(body, "<svg") {
		t.Errorf("favicon: %d %s", code, h.Get("Content-Type"))
	}
	if _, _, page := get("http://"+addr+"/", nil); !strings.Contains(page, `rel="icon"`) || strings.Contains(page, `id="token"`) {
		t.Errorf("page without a token: icon link or token field wrong")
	}

	// Exposed paths on request.
	cfg := DefaultServerConfig()
	cfg.ExposePaths = true
	open, _ := NewServer(m, ix, "shop.safetensors", gal, cfg)
	if _, sr, _ := searchOnce(t, client, startServer(t, open), upload, nil); len(sr.Results) == 0 || !strings.HasPrefix(sr.Results[0].Path, dir) {
		t.Errorf("-expose-paths: %+v", sr.Results)
	}

	// A token and one allowed origin.
	cfg = DefaultServerConfig()
	cfg.Token, cfg.CORSOrigins = "s3cret-token", []string{"https://shop.example"}
	guarded, err := NewServer(m, ix, "shop.safetensors", gal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr = startServer(t, guarded)
	for _, h := range []http.Header{nil, {"Authorization": {"Bearer wrong"}}, {"Authorization": {"s3cret-token"}}} {
		if code, _, _ := searchOnce(t, client, addr, upload, h); code != 401 {
			t.Errorf("search with %v: %d, want 401", h, code)
		}
		if code, rh, _ := get("http://"+addr+"/v1/gallery/0.png", h); code != 401 || rh.Get("WWW-Authenticate") == "" {
			t.Errorf("gallery with %v: %d, want 401 with WWW-Authenticate", h, code)
		}
	}
	auth := http.Header{"Authorization": {"Bearer s3cret-token"}, "Origin": {"https://shop.example"}}
	if code, _, _ := searchOnce(t, client, addr, upload, auth); code != 200 {
		t.Errorf("search with the token: %d", code)
	}
	if code, h, _ := get("http://"+addr+"/v1/info", auth); code != 200 || h.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Errorf("info from an allowed origin: %d, CORS %q", code, h.Get("Access-Control-Allow-Origin"))
	}
	req, _ := http.NewRequest("OPTIONS", "http://"+addr+"/v1/search", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 204 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, _, page := get("http://"+addr+"/", nil); code != 200 || !strings.Contains(page, `id="token"`) {
		t.Errorf("the page needs no token but offers a field for it: %d", code)
	}
	if code, _, _ := get("http://"+addr+"/healthz", nil); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

// TestServeUploadTimeout408: an upload that ends before its declared
// length when the read deadline passes answers 408, not 400.
func TestServeUploadTimeout408(t *testing.T) {
	f := newServeFixture(t)
	cfg := DefaultServerConfig()
	cfg.ReadTimeout, cfg.MinUploadRate = 400*time.Millisecond, 0
	srv, err := NewServer(f.m, f.ix, "a.safetensors", f.gal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := slowBodies(t, startServer(t, srv), 1)[0]
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(raw), "-read-timeout") {
		t.Errorf("timed-out upload: %d %s, want 408", resp.StatusCode, raw)
	}
}
