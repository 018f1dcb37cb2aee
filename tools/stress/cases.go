//go:build linux

package main

// The cases, each in a folder of its own, and the HTTP helpers of the
// service cases. Every request has a deadline; every loop is bounded in
// count and in time.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dmlgo/dmlgo/internal/testimg"
)

// The bounds.
const (
	maxServeRSS    = 1 << 30          // a serve process's peak RSS under attack
	maxSearchP99   = 2 * time.Second  // searches beside slow uploads
	maxBombAnswer  = 10 * time.Second // the slowest answer to a decode bomb
	maxLocalRSS    = 256 << 20        // retrieve query refusing a bomb file
	maxLockRefusal = 5 * time.Second  // a second run into a locked folder
	maxUsageExit   = 2 * time.Second  // a bad flag's exit 2
	maxSigintExit  = 3 * time.Second  // from SIGINT to exit 130
	slowSockets    = 20
	burst          = 12
)

// ---- service cases ----

// caseSlowBodies: 20 sockets trickle a search body at 1 B/s while 20
// searches run one after another; then the trickling sockets get 408 once
// -upload-grace (5s by default) has passed.
func caseSlowBodies(ctx context.Context, r *caseRun) error {
	s, err := r.serve(ctx, r.e.index)
	if err != nil {
		return err
	}
	q, err := s.galleryPNG(ctx, 0)
	if err != nil {
		return err
	}
	if err := s.expectRow(ctx, q, 0); err != nil { // warm up
		return fmt.Errorf("warm-up search: %w", err)
	}
	slow := s.trickle(ctx, slowSockets, 100_000, 20*time.Second)
	lat, statuses, first := s.searchLoop(ctx, q, 0, 20)
	r.fig("%d sockets at 1 B/s (Content-Length 100000)", slowSockets)
	r.fig("20 searches %s, row 0 first %d/20, p50 %s, p99 %s", codes(statuses), first, secs(quantile(lat, 0.5)), secs(quantile(lat, 0.99)))
	r.bound(only(statuses, 200) && first == 20, "want every search 200 with row 0 first")
	r.bound(quantile(lat, 0.99) < maxSearchP99, "p99 %s ≥ %s", secs(quantile(lat, 0.99)), secs(maxSearchP99))
	res := slow.wait()
	r.fig("the sockets got %s after %s", codes(res.codes), res.span())
	r.bound(only(res.codes, 408) && res.last < 8*time.Second, "want 408 for every slow socket within 8 s (-upload-grace 5s)")
	return nil
}

// caseSlowGrace: with -upload-grace 1s, trickling sockets get 408 after
// about a second, and release their upload slots.
func caseSlowGrace(ctx context.Context, r *caseRun) error {
	s, err := r.serve(ctx, r.e.index, "-upload-grace", "1s")
	if err != nil {
		return err
	}
	res := s.trickle(ctx, slowSockets, 100_000, 10*time.Second).wait()
	r.fig("-upload-grace 1s: %d sockets at 1 B/s got %s after %s", slowSockets, codes(res.codes), res.span())
	r.bound(only(res.codes, 408) && res.first >= 900*time.Millisecond && res.last < 3*time.Second, "want 408 for every socket 1 to 3 s after it began")
	var h struct {
		Uploads int `json:"uploads"`
	}
	if err := s.getJSON(ctx, "/healthz", &h); err != nil {
		return err
	}
	r.fig("uploads in progress after: %d", h.Uploads)
	r.bound(h.Uploads == 0, "%d upload slots still held", h.Uploads)
	return nil
}

// caseDecodeBombs: 12 concurrent uploads of a 308 KB PNG that decodes into
// 318 MB, past the 256 MiB per-image limit.
func caseDecodeBombs(ctx context.Context, r *caseRun) error {
	s, err := r.serve(ctx, r.e.index)
	if err != nil {
		return err
	}
	q, err := s.galleryPNG(ctx, 0)
	if err != nil {
		return err
	}
	b := bomb()
	replies, all := s.burst(ctx, burst, func(ctx context.Context) (int, error) {
		code, _, err := s.do(ctx, "POST", "/v1/search", b, "image/png")
		return code, err
	})
	st, slowest := tally(replies)
	rss := s.p.hwm()
	r.fig("%d concurrent uploads of a %s 6300×6300 16-bit PNG (%s decoded): %s, slowest %s (all in %s)",
		burst, kb(len(b)), mib(6300*6300*8), codes(st), secs(slowest), secs(all))
	r.fig("serve peak RSS %s", mib(rss))
	r.bound(only(st, 400, 200) && slowest < maxBombAnswer, "want 400 (or 200) for each within %s", secs(maxBombAnswer))
	r.bound(rss > 0 && rss < maxServeRSS, "peak RSS %s, want under %s", mib(rss), mib(maxServeRSS))
	if err := s.expectRow(ctx, q, 0); err != nil {
		r.fig("search after: %v", err)
		r.bound(false, "the search after the bombs failed")
	} else {
		r.fig("search after: 200, row 0 first")
	}
	return nil
}

// caseDecodeBudget: 12 concurrent uploads of 2800×2800 16-bit PNGs (63 MB
// decoded each, under the per-image limit; 750 MB together, past the 512
// MiB decode budget, so some wait their turn).
func caseDecodeBudget(ctx context.Context, r *caseRun) error {
	s, err := r.serve(ctx, r.e.index)
	if err != nil {
		return err
	}
	b := testimg.PNG16(2800, 2800)
	replies, all := s.burst(ctx, burst, func(ctx context.Context) (int, error) {
		code, _, err := s.do(ctx, "POST", "/v1/search", b, "image/png")
		return code, err
	})
	st, _ := tally(replies)
	rss := s.p.hwm()
	var h struct {
		DecodeBytes int64 `json:"decode_bytes"`
	}
	if err := s.getJSON(ctx, "/healthz", &h); err != nil {
		return err
	}
	r.fig("%d concurrent uploads of a %s 2800×2800 16-bit PNG (%s decoded) against the 512 MiB budget: %s, all answered in %s",
		burst, kb(len(b)), mib(2800*2800*8), codes(st), secs(all))
	r.fig("serve peak RSS %s; decode budget in use after: %d B", mib(rss), h.DecodeBytes)
	r.bound(only(st, 200), "want 200 for each")
	r.bound(rss > 0 && rss < maxServeRSS, "peak RSS %s, want under %s", mib(rss), mib(maxServeRSS))
	r.bound(h.DecodeBytes == 0, "the decode budget holds %d B after the uploads", h.DecodeBytes)
	return nil
}

// caseGalleryFlood: a gallery folder holding a 4000×3000 JPEG; 8
// concurrent requests of its thumbnail, then 8 more.
func caseGalleryFlood(ctx context.Context, r *caseRun) error {
	gal := filepath.Join(r.dir, "gallery")
	if err := writeSmallImages(gal, 3); err != nil {
		return err
	}
	big, err := bigJPEG(4000, 3000)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(gal, "big.jpg"), big, 0o644); err != nil {
		return err
	}
	index := filepath.Join(r.dir, "gallery.safetensors")
	res := r.run(ctx, time.Minute, "index", r.e.retr, "index", "-ckpt", r.e.ckpt, "-dir", gal, "-out", index)
	if res.code != 0 {
		return fmt.Errorf("retrieve index -dir: %s", res.status())
	}
	s, err := r.serve(ctx, index)
	if err != nil {
		return err
	}
	small, err := os.ReadFile(filepath.Join(gal, "a.png"))
	if err != nil {
		return err
	}
	row, err := s.rowOf(ctx, small, "big.jpg")
	if err != nil {
		return err
	}
	get := func(ctx context.Context) (int, error) {
		code, body, err := s.do(ctx, "GET", fmt.Sprintf("/v1/gallery/%d.png", row), nil, "")
		if err == nil && code == 200 && !bytes.HasPrefix(body, []byte("\x89PNG")) {
			return code, errors.New("not a PNG")
		}
		return code, err
	}
	r1, t1 := s.burst(ctx, 8, get)
	r2, t2 := s.burst(ctx, 8, get)
	st1, _ := tally(r1)
	st2, _ := tally(r2)
	rss := s.p.hwm()
	r.fig("gallery of 3 small PNGs and a %s 4000×3000 JPEG (row %d): 8 concurrent GETs of its thumbnail %s in %s, 8 more %s in %s",
		kb(len(big)), row, codes(st1), secs(t1), codes(st2), secs(t2))
	r.fig("serve peak RSS %s", mib(rss))
	r.bound(only(st1, 200) && only(st2, 200), "want 200 for each")
	r.bound(rss > 0 && rss < maxServeRSS, "peak RSS %s, want under %s", mib(rss), mib(maxServeRSS))
	return nil
}

// caseAccess: with -token, the API needs it; responses show no absolute
// path without -expose-paths.
func caseAccess(ctx context.Context, r *caseRun) error {
	gal := filepath.Join(r.dir, "gallery")
	if err := writeSmallImages(gal, 3); err != nil {
		return err
	}
	index := filepath.Join(r.dir, "gallery.safetensors")
	res := r.run(ctx, time.Minute, "index", r.e.retr, "index", "-ckpt", r.e.ckpt, "-dir", gal, "-out", index)
	if res.code != 0 {
		return fmt.Errorf("retrieve index -dir: %s", res.status())
	}
	const token = "stress-Zq7x3"
	s, err := r.serve(ctx, index, "-token", token)
	if err != nil {
		return err
	}
	q, err := os.ReadFile(filepath.Join(gal, "a.png"))
	if err != nil {
		return err
	}
	none, _, err := s.do(ctx, "POST", "/v1/search", q, "image/png")
	if err != nil {
		return err
	}
	s.token = "wrong"
	wrong, _, err := s.do(ctx, "POST", "/v1/search", q, "image/png")
	if err != nil {
		return err
	}
	s.token = ""
	infoNone, _, err := s.do(ctx, "GET", "/v1/info", nil, "")
	if err != nil {
		return err
	}
	health, _, err := s.do(ctx, "GET", "/healthz", nil, "")
	if err != nil {
		return err
	}
	s.token = token
	with, body, err := s.do(ctx, "POST", "/v1/search", q, "image/png")
	if err != nil {
		return err
	}
	infoWith, info, err := s.do(ctx, "GET", "/v1/info", nil, "")
	if err != nil {
		return err
	}
	r.fig("-token: search without it %d, wrong %d, with it %d; /v1/info %d without, %d with; /healthz %d without",
		none, wrong, with, infoNone, infoWith, health)
	r.bound(none == 401 && wrong == 401 && with == 200 && infoNone == 401 && infoWith == 200,
		"want 401 without the token or with a wrong one, 200 with it")
	var abs []string
	for _, b := range [][]byte{body, info} {
		var v any
		if json.Unmarshal(b, &v) != nil {
			continue
		}
		jsonStrings(v, func(s string) {
			if filepath.IsAbs(s) && !strings.HasPrefix(s, "/v1/") || strings.Contains(s, r.e.tmp) { // (not the thumbnails' URLs)
				abs = append(abs, s)
			}
		})
	}
	var sr struct {
		Results []struct {
			Path string `json:"path"`
		} `json:"results"`
	}
	json.Unmarshal(body, &sr)
	var paths []string
	for _, m := range sr.Results {
		paths = append(paths, m.Path)
	}
	var in struct {
		Checkpoint string `json:"checkpoint"`
	}
	json.Unmarshal(info, &in)
	r.fig("absolute paths in search and info: %d (result paths %s, checkpoint %q)", len(abs), strings.Join(paths, ","), in.Checkpoint)
	r.bound(len(abs) == 0, "absolute paths shown: %s", strings.Join(abs, ", "))
	return nil
}

// ---- training cases ----

// caseTwoRuns: a second run into the folder of a run in progress must
// exit at once, naming the other process.
func caseTwoRuns(ctx context.Context, r *caseRun) error {
	out := filepath.Join(r.dir, "run")
	first, err := r.start(ctx, "train-first", r.e.train, r.e.tinyTrain(out, "-epochs", "500")...)
	if err != nil {
		return err
	}
	if first.waitFor(ctx, "epoch 1/", 0, 30*time.Second) < 0 {
		return fmt.Errorf("the first run did not start training: %s", oneLine(tail(first.out.String(), 3)))
	}
	res := r.run(ctx, 15*time.Second, "train-second", r.e.train, r.e.tinyTrain(out)...)
	pid := strconv.Itoa(first.pid())
	msg := lineWith(res.out, "train:")
	if msg == "" {
		msg = lineWith(res.out, pid)
	}
	r.fig("second train -out (same folder) while the first (pid %s) runs: %s in %s: %q", pid, res.status(), secs(res.took), r.clean(msg, 200))
	r.bound(res.err == nil && res.code > 0, "want a non-zero exit")
	r.bound(res.took < maxLockRefusal, "took %s, want under %s", secs(res.took), secs(maxLockRefusal))
	r.bound(strings.Contains(res.out, pid), "the message does not name process %s", pid)
	r.bound(!first.exited(), "the first run stopped")
	return nil
}

// caseKillResume: kill -9 a run once its last.ckpt holds an epoch, resume
// it to its end: metrics.jsonl holds one line per evaluated epoch.
func caseKillResume(ctx context.Context, r *caseRun) error {
	const epochs = 8
	out := filepath.Join(r.dir, "run")
	p, err := r.start(ctx, "train", r.e.train, r.e.tinyTrain(out, "-epochs", strconv.Itoa(epochs))...)
	if err != nil {
		return err
	}
	ckpt := filepath.Join(out, "last.ckpt")
	killedAt := -1
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !p.exited(); time.Sleep(2 * time.Millisecond) {
		if ep, err := ckptEpoch(ckpt); err == nil && ep >= 1 {
			p.cmd.Process.Kill()
			killedAt = ep
			break
		}
	}
	if _, err := p.wait(10 * time.Second); err != nil {
		return err
	}
	if killedAt < 0 {
		return fmt.Errorf("the run ended (%d) before its last.ckpt held an epoch", p.code())
	}
	before := jsonlEpochs(filepath.Join(out, "metrics.jsonl"))
	res := r.run(ctx, time.Minute, "train-resume", r.e.train, "-resume", out, "-threads", "2")
	got := jsonlEpochs(filepath.Join(out, "metrics.jsonl"))
	var want []int
	for e := 1; e <= epochs; e++ {
		want = append(want, e)
	}
	stale := "no stale-lock note"
	if strings.Contains(res.out, "did not end cleanly") {
		stale = "stale lock noted"
	}
	r.fig("kill -9 once last.ckpt held epoch %d (metrics.jsonl had epochs %v); -resume: %s in %s, %s; metrics.jsonl epochs %v",
		killedAt, before, res.status(), secs(res.took), stale, got)
	r.bound(res.err == nil && res.code == 0, "the resumed run failed")
	r.bound(slices.Equal(got, want), "want epochs %v, one line each", want)
	return nil
}

// caseNaNCheckpoint: a checkpoint with NaNs written into a weight tensor
// is refused, by name, by both retrieve index and train -resume.
func caseNaNCheckpoint(ctx context.Context, r *caseRun) error {
	run := filepath.Join(r.dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(r.e.model, "last.ckpt"))
	if err != nil {
		return err
	}
	ckpt := filepath.Join(run, "last.ckpt")
	if err := os.WriteFile(ckpt, raw, 0o644); err != nil {
		return err
	}
	tensors, _, start, err := readHeader(ckpt)
	if err != nil {
		return err
	}
	name, size := "", int64(0)
	for n, t := range tensors {
		if sz := t.Offsets[1] - t.Offsets[0]; t.DType == "F32" && strings.HasPrefix(n, "model.") && strings.HasSuffix(n, ".weight") && (sz > size || sz == size && n < name) {
			name, size = n, sz
		}
	}
	if name == "" {
		return errors.New("no F32 model weight in the checkpoint")
	}
	t := tensors[name]
	at := start + (t.Offsets[0]+t.Offsets[1])/2&^3
	copy(raw[at:at+16], bytes.Repeat([]byte{0xFF}, 16))
	if err := os.WriteFile(ckpt, raw, 0o644); err != nil {
		return err
	}
	short0 := strings.TrimPrefix(name, "model.")
	idx := r.run(ctx, 30*time.Second, "index", r.e.retr, "index", "-ckpt", ckpt, "-out", filepath.Join(r.dir, "x.safetensors"))
	res := r.run(ctx, 30*time.Second, "train-resume", r.e.train, "-resume", run, "-threads", "2")
	r.fig("4 NaNs (0xFF) in %s: retrieve index %s %q; train -resume %s %q", name,
		idx.status(), r.clean(lineWith(idx.out, short0), 200), res.status(), r.clean(lineWith(res.out, short0), 200))
	r.bound(idx.err == nil && idx.code > 0 && strings.Contains(idx.out, short0), "retrieve index: want a non-zero exit naming %s", name)
	r.bound(res.err == nil && res.code > 0 && strings.Contains(res.out, short0), "train -resume: want a non-zero exit naming %s", name)
	return nil
}

// caseBadFlags: out-of-range flags exit 2 at once, before loading data or
// making -out.
func caseBadFlags(ctx context.Context, r *caseRun) error {
	bad := [][]string{{"-lr", "NaN"}, {"-lr", "Inf"}, {"-threads", "100000"}, {"-dim", "100000000"}, {"-train-items", "-7"},
		{"-workers", "-3"}, {"-momentum", "-5"}, {"-weight-decay", "-1"}, {"-model", "vgg"}, {"-device", "tpu"}}
	var slowest time.Duration
	slowName := ""
	var wrong []string
	note := func(what string, res result, out string, loaded bool) {
		if res.took > slowest {
			slowest, slowName = res.took, what
		}
		_, statErr := os.Stat(out)
		switch {
		case res.err != nil || res.code != 2:
			wrong = append(wrong, fmt.Sprintf("%s: %s", what, res.status()))
		case loaded:
			wrong = append(wrong, what+": loaded data or a model first")
		case out != "" && statErr == nil:
			wrong = append(wrong, what+": made "+filepath.Base(out))
		}
	}
	for i, f := range bad {
		out := filepath.Join(r.dir, fmt.Sprintf("out-%d", i))
		res := r.run(ctx, 20*time.Second, "train", r.e.train, r.e.tinyTrain(out, f...)...)
		note("train "+strings.Join(f, " "), res, out, strings.Contains(res.out, "data: reading"))
	}
	out := filepath.Join(r.dir, "x.safetensors")
	res := r.run(ctx, 20*time.Second, "index", r.e.retr, "index", "-ckpt", r.e.ckpt, "-threads", "100000", "-out", out)
	note("retrieve index -threads 100000", res, out, strings.Contains(res.out, "model:"))
	n := len(bad) + 1
	r.fig("%d command lines: %d exited 2 without loading anything, slowest %s (%s)", n, n-len(wrong), secs(slowest), slowName)
	r.bound(len(wrong) == 0, "%s", strings.Join(wrong, "; "))
	r.bound(slowest < maxUsageExit, "slowest %s, want under %s", secs(slowest), secs(maxUsageExit))
	return nil
}

// caseSigintEval: SIGINT during the final evaluation (3000 queries, about
// 5 s on 2 cores). Once: the run stops at its next batch, saves and exits
// 130 promptly, and -resume then evaluates epoch 2 once. Twice (200 ms
// apart): the process ends promptly, by exiting 130 or by the second
// signal's default action (a shell shows 130 for both).
func caseSigintEval(ctx context.Context, r *caseRun) error {
	once, err := interruptEval(ctx, r, "run-once", 1)
	if err != nil {
		return err
	}
	r.fig("SIGINT once %s: %s in %s", once.when, once.how, secs(once.took))
	r.bound(once.code == 130, "once: want exit 130")
	r.bound(once.took < maxSigintExit, "once: took %s, want under %s", secs(once.took), secs(maxSigintExit))
	out := filepath.Join(r.dir, "run-once")
	res := r.run(ctx, 90*time.Second, "train-resume", r.e.train, "-resume", out, "-threads", "2")
	got := jsonlEpochs(filepath.Join(out, "metrics.jsonl"))
	r.fig("-resume: %s in %s, metrics.jsonl epochs %v", res.status(), secs(res.took), got)
	r.bound(res.err == nil && res.code == 0 && slices.Equal(got, []int{2}), "want the resumed run to evaluate epoch 2 once")

	twice, err := interruptEval(ctx, r, "run-twice", 2)
	if err != nil {
		return err
	}
	r.fig("SIGINT twice %s: %s in %s", twice.when, twice.how, secs(twice.took))
	r.bound(twice.code == 130 || twice.how == "killed by SIGINT", "twice: want exit 130 or death by SIGINT")
	r.bound(twice.took < maxSigintExit, "twice: took %s, want under %s", secs(twice.took), secs(maxSigintExit))
	return nil
}

type interrupted struct {
	when string // during or after the final evaluation
	how  string // "exit 130", "killed by SIGINT"
	code int
	took time.Duration // from the first signal to the exit
}

// interruptEval trains a run into dir/name whose final evaluation takes
// seconds and sends it n SIGINTs, 200 ms apart, 300 ms into the evaluation.
func interruptEval(ctx context.Context, r *caseRun, name string, n int) (interrupted, error) {
	out := filepath.Join(r.dir, name)
	args := []string{"-data-path", r.e.archive, "-train-items", "24", "-test-items", "30", "-test-views", "100",
		"-epochs", "2", "-batch", "16", "-loss", "dml/class", "-threads", "2", "-out", out}
	p, err := r.start(ctx, "train-"+name, r.e.train, args...)
	if err != nil {
		return interrupted{}, err
	}
	at := p.waitFor(ctx, "evaluating:", 0, 90*time.Second)
	if at < 0 {
		return interrupted{}, fmt.Errorf("%s: no evaluation began: %s", name, oneLine(tail(p.out.String(), 3)))
	}
	time.Sleep(300 * time.Millisecond)
	res := interrupted{when: "during the final evaluation"}
	if strings.Contains(p.out.String()[at:], "epoch 2: top1") {
		res.when = "after the final evaluation had ended"
	}
	t0 := time.Now()
	for i := range n {
		if i > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		if !p.exited() {
			p.signal(syscall.SIGINT)
		}
	}
	if _, err := p.wait(30 * time.Second); err != nil {
		return res, err
	}
	res.how, res.code, res.took = p.how(), p.code(), p.end.Sub(t0)
	return res, nil
}

// caseLocalBomb: retrieve query on a decode-bomb file refuses it from its
// header.
func caseLocalBomb(ctx context.Context, r *caseRun) error {
	path := filepath.Join(r.dir, "bomb.png")
	if err := os.WriteFile(path, bomb(), 0o644); err != nil {
		return err
	}
	res := r.run(ctx, 30*time.Second, "query", r.e.retr, "query", "-ckpt", r.e.ckpt, "-index", r.e.index, path)
	msg := lineWith(res.out, "-max-decode-bytes")
	r.fig("retrieve query bomb.png (%s, 6300×6300 16-bit): %s in %s, %q; peak RSS %s",
		kb(len(bomb())), res.status(), secs(res.took), r.clean(msg, 200), mib(res.rss))
	r.bound(res.err == nil && res.code == 1 && msg != "", "want exit 1 naming -max-decode-bytes")
	r.bound(res.rss > 0 && res.rss < maxLocalRSS, "peak RSS %s, want under %s", mib(res.rss), mib(maxLocalRSS))
	return nil
}

// ---- the service ----

// server is a retrieve serve process of a case.
type server struct {
	p      *proc
	addr   string
	client *http.Client
	token  string // sent as a bearer token when set
}

// serve starts retrieve serve on a free loopback port with the tiny
// model and index, and waits until /healthz answers.
func (r *caseRun) serve(ctx context.Context, index string, extra ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"serve", "-ckpt", r.e.ckpt, "-index", index, "-addr", addr, "-shutdown-timeout", "2s"}, extra...)
	p, err := r.start(ctx, "serve", r.e.retr, args...)
	if err != nil {
		return nil, err
	}
	s := &server{p: p, addr: addr, client: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		},
	}}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p.exited() {
			return nil, fmt.Errorf("serve exited (%d): %s", p.code(), oneLine(tail(p.out.String(), 3)))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, errors.New("serve did not answer /healthz within 60 s")
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		code, _, err := s.do(cctx, "GET", "/healthz", nil, "")
		cancel()
		if err == nil && code == 200 {
			return s, nil
		}
	}
}

// do sends a request and reads the whole answer.
func (s *server) do(ctx context.Context, method, path string, body []byte, ctype string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.addr+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

func (s *server) getJSON(ctx context.Context, path string, v any) error {
	code, b, err := s.do(ctx, "GET", path, nil, "")
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", path, code, oneLine(string(b)))
	}
	return json.Unmarshal(b, v)
}

// galleryPNG fetches a gallery row's image.
func (s *server) galleryPNG(ctx context.Context, row int) ([]byte, error) {
	code, b, err := s.do(ctx, "GET", fmt.Sprintf("/v1/gallery/%d.png", row), nil, "")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("GET /v1/gallery/%d.png: %d %s", row, code, oneLine(string(b)))
	}
	return b, nil
}

type searchResult struct {
	Results []struct {
		Row  int    `json:"row"`
		Path string `json:"path"`
	} `json:"results"`
}

// search posts an image; it returns the status and the rows found.
func (s *server) search(ctx context.Context, img []byte, k int) (int, searchResult, error) {
	var sr searchResult
	code, b, err := s.do(ctx, "POST", fmt.Sprintf("/v1/search?k=%d", k), img, "image/png")
	if err == nil && code == 200 {
		err = json.Unmarshal(b, &sr)
	}
	return code, sr, err
}

// expectRow checks that a search with img answers 200 with row first.
func (s *server) expectRow(ctx context.Context, img []byte, row int) error {
	code, sr, err := s.search(ctx, img, 5)
	switch {
	case err != nil:
		return err
	case code != 200:
		return fmt.Errorf("status %d", code)
	case len(sr.Results) == 0 || sr.Results[0].Row != row:
		return fmt.Errorf("row %d is not first: %+v", row, sr.Results)
	}
	return nil
}

// rowOf finds the gallery row whose path is name.
func (s *server) rowOf(ctx context.Context, img []byte, name string) (int, error) {
	code, sr, err := s.search(ctx, img, 100)
	if err != nil || code != 200 {
		return 0, fmt.Errorf("search: %d %v", code, err)
	}
	for _, m := range sr.Results {
		if m.Path == name {
			return m.Row, nil
		}
	}
	return 0, fmt.Errorf("no gallery row shows %s", name)
}

// searchLoop runs n searches one after another: their latencies (sorted),
// statuses and how many had row first.
func (s *server) searchLoop(ctx context.Context, img []byte, row, n int) ([]time.Duration, map[int]int, int) {
	var lat []time.Duration
	st := map[int]int{}
	first := 0
	for range n {
		t0 := time.Now()
		code, sr, err := s.search(ctx, img, 5)
		lat = append(lat, time.Since(t0))
		if err != nil {
			code = 0
		}
		st[code]++
		if code == 200 && len(sr.Results) > 0 && sr.Results[0].Row == row {
			first++
		}
	}
	slices.Sort(lat)
	return lat, st, first
}

type reply struct {
	code int
	took time.Duration
	err  error
}

// burst runs f n times at once; it returns the replies and the time until
// the last.
func (s *server) burst(ctx context.Context, n int, f func(context.Context) (int, error)) ([]reply, time.Duration) {
	out := make([]reply, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			t := time.Now()
			code, err := f(cctx)
			out[i] = reply{code, time.Since(t), err}
		}()
	}
	wg.Wait()
	return out, time.Since(t0)
}

// tally counts the statuses (0: no answer) and finds the slowest reply.
func tally(rs []reply) (map[int]int, time.Duration) {
	st := map[int]int{}
	var slowest time.Duration
	for _, r := range rs {
		code := r.code
		if r.err != nil {
			code = 0
		}
		st[code]++
		slowest = max(slowest, r.took)
	}
	return st, slowest
}

// trickling is a set of sockets sending a search body one byte a second.
type trickling struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	res trickleResult
}

type trickleResult struct {
	codes       map[int]int // 0: no answer
	first, last time.Duration
}

func (t trickleResult) span() string {
	if secs(t.first) == secs(t.last) {
		return secs(t.first)
	}
	return secs(t.first) + "–" + secs(t.last)
}

// trickle opens n sockets, each sending the headers of a search with
// Content-Length length and then one byte a second, until the server
// answers or hold passes. It returns once every socket has sent its first
// byte.
func (s *server) trickle(ctx context.Context, n, length int, hold time.Duration) *trickling {
	t := &trickling{res: trickleResult{codes: map[int]int{}}}
	var opened sync.WaitGroup
	for range n {
		t.wg.Add(1)
		opened.Add(1)
		go func() {
			defer t.wg.Done()
			code, took := slowUpload(ctx, s.addr, s.token, length, hold, opened.Done)
			t.mu.Lock()
			t.res.codes[code]++
			if t.res.first == 0 || took < t.res.first {
				t.res.first = took
			}
			t.res.last = max(t.res.last, took)
			t.mu.Unlock()
		}()
	}
	opened.Wait()
	return t
}

func (t *trickling) wait() trickleResult {
	t.wg.Wait()
	return t.res
}

// slowUpload is one trickling socket: the status answered (0: none) and
// when, from the end of the headers.
func slowUpload(ctx context.Context, addr, token string, length int, hold time.Duration, opened func()) (int, time.Duration) {
	once := sync.OnceFunc(opened)
	defer once()
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hold))
	head := fmt.Sprintf("POST /v1/search HTTP/1.1\r\nHost: %s\r\nContent-Type: image/png\r\nContent-Length: %d\r\n", addr, length)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		return 0, 0
	}
	t0 := time.Now()
	answered := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for sent := 0; ; {
		if sent < length {
			if _, err := conn.Write([]byte{0x89}); err == nil {
				sent++
			}
		}
		once()
		select {
		case code := <-answered:
			return code, time.Since(t0)
		case <-ctx.Done():
			return 0, time.Since(t0)
		case <-tick.C:
		}
	}
}

// ---- images and files ----

var (
	bombOnce  sync.Once
	bombBytes []byte
)

// bomb is the 6300×6300 16-bit PNG: 308 KB, 318 MB decoded.
func bomb() []byte {
	bombOnce.Do(func() { bombBytes = testimg.PNG16(6300, 6300) })
	return bombBytes
}

// writeSmallImages writes n distinct 64×64 PNGs, a.png, b.png, … into dir.
func writeSmallImages(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 64, 64))
		for y := range 64 {
			for x := range 64 {
				var v uint8
				switch i % 3 {
				case 0: // horizontal stripes
					v = uint8(255 * (y / 8 % 2))
				case 1: // a disc
					if (x-32)*(x-32)+(y-32)*(y-32) < 20*20 {
						v = 255
					}
				case 2: // a diagonal gradient
					v = uint8((x + y) * 2)
				}
				img.SetGray(x, y, color.Gray{Y: v})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".png"), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// bigJPEG encodes a w×h photo-sized JPEG (a colour gradient with a grid).
func bigJPEG(w, h int) ([]byte, error) {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := range h {
		for x := range w {
			v := uint8((x*255/w + y*255/h) / 2)
			if x%200 < 4 || y%200 < 4 {
				v = 255 - v
			}
			img.Y[y*img.YStride+x] = v
		}
	}
	for y := range (h + 1) / 2 {
		for x := range (w + 1) / 2 {
			img.Cb[y*img.CStride+x] = uint8(x * 255 / ((w + 1) / 2))
			img.Cr[y*img.CStride+x] = uint8(y * 255 / ((h + 1) / 2))
		}
	}
	var b bytes.Buffer
	err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 85})
	return b.Bytes(), err
}

// jsonlEpochs returns the "epoch" of each line of a metrics.jsonl (-1 for
// a line that does not parse).
func jsonlEpochs(path string) []int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []int
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if l == "" {
			continue
		}
		var rec struct {
			Epoch *int `json:"epoch"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil || rec.Epoch == nil {
			out = append(out, -1)
			continue
		}
		out = append(out, *rec.Epoch)
	}
	return out
}

// jsonStrings calls f with every string in a decoded JSON value.
func jsonStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, e := range v {
			jsonStrings(e, f)
		}
	case map[string]any:
		for _, e := range v {
			jsonStrings(e, f)
		}
	}
}

func kb(n int) string { return fmt.Sprintf("%d KB", (n+500)/1000) }

// clean shortens a message for the case's line: paths relative to the
// case's folder, at most n bytes.
func (r *caseRun) clean(s string, n int) string {
	s = strings.ReplaceAll(s, r.dir+string(filepath.Separator), "")
	s = strings.ReplaceAll(s, r.e.tmp, "$TMP")
	s = strings.ReplaceAll(s, r.e.root+string(filepath.Separator), "")
	return short(s, n)
}

func short(s string, n int) string {
	s = oneLine(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
