package main

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dmlgo/dmlgo/internal/testmodel"
)

// tinyServeBench is serveLatency's set-up with the tests' tiny model
// (resnet-s, greyscale 32×32) in place of ResNet-50, and few requests.
func tinyServeBench(t *testing.T) serveBench {
	dir := t.TempDir()
	ckpt := testmodel.SaveUntrained(t, filepath.Join(dir, "tiny.ckpt"), "resnet-s", 16, 1)
	return serveBench{
		ckpt: ckpt, dir: dir, rows: 50, k: serveK,
		levels: []serveLevel{{conc: 1, n: 3}, {conc: 4, n: 6}},
		warm:   1, device: "cpu", upload: photoJPEG(serveW, serveH),
	}
}

// TestServeLatency runs the serve figures' code path end to end and
// checks that every figure comes out, positive.
func TestServeLatency(t *testing.T) {
	sb := tinyServeBench(t)
	res, err := serveLatency(sb)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d results, want 2 (concurrency 1 and 4)", len(res))
	}
	for i, r := range res {
		if r.conc != sb.levels[i].conc || len(r.client) != sb.levels[i].n || len(r.server) != sb.levels[i].n || r.qps <= 0 {
			t.Errorf("level %d: concurrency %d, %d client and %d server latencies, %.1f requests/s; want concurrency %d, %d requests",
				i, r.conc, len(r.client), len(r.server), r.qps, sb.levels[i].conc, sb.levels[i].n)
		}
	}
	got := map[string]string{}
	for _, f := range serveFigures(servePrefix, 2, sb.rows, res) {
		got[f.name] = f.value + " " + f.unit
		if v, err := strconv.ParseFloat(f.value, 64); err != nil || v <= 0 {
			t.Errorf("%s %s %s: want a positive number", f.name, f.value, f.unit)
		}
	}
	for _, name := range []string{"threads", "gallery_rows", "p50_c1", "p99_c1", "qps_c1", "p50_c4", "p99_c4", "qps_c4", "server_p50_c4"} {
		if _, ok := got[servePrefix+"_"+name]; !ok {
			t.Errorf("no figure %s_%s; got %v", servePrefix, name, got)
		}
	}
	if got[servePrefix+"_gallery_rows"] != "50 rows" || got[servePrefix+"_threads"] != "2 threads" {
		t.Errorf("gallery rows %q, threads %q", got[servePrefix+"_gallery_rows"], got[servePrefix+"_threads"])
	}
}

// TestServeLatencyFailsLoudly: a request answered with an error, or with
// fewer results than asked for, ends the measurement with an error that
// says what came back.
func TestServeLatencyFailsLoudly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request) bool // true: answered
		want  string
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return true
		}, "status 500: injected failure"},
		{"fewer results", func(w http.ResponseWriter, r *http.Request) bool {
			r.URL.RawQuery = "k=3"
			return false
		}, "3 results"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := tinyServeBench(t)
			var n atomic.Int64
			sb.wrap = func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					// The third request (the first timed one) is faulty.
					if n.Add(1) == 3 && tc.fault(w, r) {
						return
					}
					h.ServeHTTP(w, r)
				})
			}
			_, err := serveLatency(sb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serveLatency with a faulty answer: %v; want an error saying %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "concurrency 1: request 2 of 3") {
				t.Errorf("error %q does not name the request", err)
			}
		})
	}
}
