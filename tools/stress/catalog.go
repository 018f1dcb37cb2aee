//go:build linux

package main

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dmlgo/dmlgo/catalog/live"
)

// maxReloadLag bounds how long a running service takes to see a change
// the command line made to its catalog (it checks every -reload 200ms).
const maxReloadLag = 5 * time.Second

// caseCatalog: a catalog served with -writable while the command line
// changes it and searches run throughout. retrieve add is killed -9 three
// times at random moments (the catalog then holds all of its rows or none:
// one batch is one log record); a fourth add completes, a removal and a
// compaction follow; an item is added and removed over HTTP. Every search
// answers 200; the service sees each change within its -reload.
func caseCatalog(ctx context.Context, r *caseRun) error {
	cat := filepath.Join(r.dir, "shop.catalog")
	if res := r.run(ctx, 30*time.Second, "convert", r.e.retr, "compact", "-index", r.e.index, "-out", cat); res.code != 0 {
		return fmt.Errorf("compact -out: %s: %s", res.status(), oneLine(tail(res.out, 3)))
	}
	const perAdd = 200
	arrivals := filepath.Join(r.dir, "new")
	if err := writeNoiseItems(arrivals, 900000, perAdd); err != nil {
		return err
	}
	s, err := r.serve(ctx, cat, "-writable", "-token", "stress-token", "-reload", "200ms")
	if err != nil {
		return err
	}
	s.token = "stress-token"
	rows := func() int {
		var info struct {
			Rows int `json:"gallery_rows"`
		}
		if err := s.getJSON(ctx, "/v1/info", &info); err != nil {
			return -1
		}
		return info.Rows
	}
	// waitRows waits for the service to show one of the counts.
	waitRows := func(want ...int) (int, time.Duration) {
		t0 := time.Now()
		n := -1
		for time.Since(t0) < maxReloadLag {
			n = rows()
			for _, w := range want {
				if n == w {
					return n, time.Since(t0)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return n, time.Since(t0)
	}
	base := rows()
	q, err := s.galleryPNG(ctx, 0)
	if err != nil {
		return err
	}
	// Searches throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	statuses := map[int]int{}
	var lat []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			code, _, err := s.search(ctx, q, 5)
			if err != nil {
				code = 0
			}
			lat = append(lat, time.Since(t0))
			statuses[code]++
		}
	}()
	addArgs := []string{"add", "-ckpt", r.e.ckpt, "-index", cat, "-dir", arrivals, "-items-from", "dirname", "-threads", "2"}
	// A whole add first, timed; then three killed at 60%, 90% and 100% of
	// that time, around the moment its record is written.
	res := r.run(ctx, time.Minute, "add", r.e.retr, addArgs...)
	r.bound(res.code == 0, "add: %s: %s", res.status(), oneLine(tail(res.out, 2)))
	want := base + perAdd
	n, lagAdd := waitRows(want)
	r.bound(n == want, "after a full add: %d rows, want %d", n, want)
	var killed []string
	for i, frac := range []float64{0.6, 0.9, 1.0} {
		p, err := r.start(ctx, fmt.Sprintf("add-%d", i), r.e.retr, addArgs...)
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(frac * float64(res.took)))
		p.cmd.Process.Kill()
		p.wait(10 * time.Second)
		// What the catalog holds, read from its files; the service must
		// come to show the same.
		n, err := catalogRows(cat)
		if err != nil {
			return err
		}
		r.bound(n == want || n == want+perAdd, "after add %d was killed: the catalog holds %d rows, want %d or %d", i, n, want, want+perAdd)
		if got, _ := waitRows(n); got != n {
			r.bound(false, "after add %d was killed: the service shows %d rows, the catalog holds %d", i, got, n)
		}
		state := "none"
		if n == want+perAdd {
			state = "all"
		}
		killed = append(killed, state)
		want = n
	}
	// Over HTTP: an item added, found, removed.
	code, body, err := s.do(ctx, "POST", "/v1/items?item=777777&category=stress", q, "image/png")
	r.bound(err == nil && code == 201, "POST /v1/items: %d %v %s", code, err, oneLine(string(body)))
	code, _, err = s.do(ctx, "DELETE", "/v1/items/777777", nil, "")
	r.bound(err == nil && code == 200, "DELETE /v1/items/777777: %d %v", code, err)
	// The command line removes ten items and compacts under the service.
	var items []string
	for i := range 10 {
		items = append(items, strconv.Itoa(900000+i))
	}
	res = r.run(ctx, 30*time.Second, "remove", r.e.retr, "remove", "-index", cat, "-item", strings.Join(items, ","))
	r.bound(res.code == 0, "remove: %s: %s", res.status(), oneLine(tail(res.out, 2)))
	removed := 10 * (1 + strings.Count(strings.Join(killed, " "), "all"))
	n, lagRemove := waitRows(want - removed)
	r.bound(n == want-removed, "after removing 10 items: %d rows, want %d", n, want-removed)
	res = r.run(ctx, 30*time.Second, "compact", r.e.retr, "compact", "-index", cat)
	r.bound(res.code == 0, "compact: %s: %s", res.status(), oneLine(tail(res.out, 2)))
	time.Sleep(500 * time.Millisecond) // a reload or two after the compaction
	n = rows()
	r.bound(n == want-removed, "after the compaction: %d rows, want %d", n, want-removed)
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	r.fig("killed adds left %s of their %d rows; seen by serve %s after an add, %s after a removal; %d searches during the changes: statuses %v, p99 %s",
		strings.Join(killed, "/"), perAdd, secs(lagAdd), secs(lagRemove), len(lat), codes(statuses), secs(quantile(lat, 0.99)))
	r.bound(len(statuses) == 1 && statuses[200] > 0, "a search failed during the changes: %v", statuses)
	r.bound(lagAdd < maxReloadLag && lagRemove < maxReloadLag, "the service took longer than %v to see a change", maxReloadLag)
	return nil
}

// catalogRows opens the catalog folder as another process would and
// counts its live rows.
func catalogRows(dir string) (int, error) {
	c, err := live.Open(dir, live.Options{})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.View().Rows(), nil
}

// writeNoiseItems writes n distinct noise PNGs, dir/<first+i>/a.png.
func writeNoiseItems(dir string, first, n int) error {
	for i := range n {
		rng := rand.New(rand.NewPCG(uint64(first+i), 5))
		img := image.NewGray(image.Rect(0, 0, 40, 40))
		for j := range img.Pix {
			img.Pix[j] = uint8(rng.IntN(256))
		}
		p := filepath.Join(dir, strconv.Itoa(first+i), "a.png")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
