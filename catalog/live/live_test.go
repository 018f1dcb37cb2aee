package live

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

const testDim = 8

func unit(r *rand.Rand) []float32 {
	v := make([]float32, testDim)
	var ss float64
	for i := range v {
		v[i] = float32(r.NormFloat64())
		ss += float64(v[i]) * float64(v[i])
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(ss))
	}
	return v
}

// model is the catalog's contents by the book: the live rows in id order.
type model struct {
	rows   []modelRow
	nextID int64
}

type modelRow struct {
	id  int64
	row Row
}

// op is one scripted change.
type op struct {
	add     []Row
	kind    KeyKind
	ints    []int64
	paths   []string
	compact bool
}

func (m *model) apply(o op) {
	switch {
	case o.compact:
	case o.add != nil:
		for _, r := range o.add {
			m.rows = append(m.rows, modelRow{m.nextID, r})
			m.nextID++
		}
	default:
		m.rows = slices.DeleteFunc(m.rows, func(r modelRow) bool {
			switch o.kind {
			case ByItem:
				return slices.Contains(o.ints, r.row.Item)
			case ByID:
				return slices.Contains(o.ints, r.id)
			}
			return r.row.Path != "" && slices.Contains(o.paths, r.row.Path)
		})
	}
}

// script makes n changes from a seed: adds of 1–4 rows (items 0–19, paths
// that repeat), removals by item, path and id, and a compaction now and
// then.
func script(seed uint64, n int) []op {
	r := rand.New(rand.NewPCG(seed, 7))
	ops := make([]op, n)
	nextID := int64(3) // the catalog starts with three rows
	for i := range ops {
		switch k := r.IntN(10); {
		case k < 5:
			rows := make([]Row, 1+r.IntN(4))
			for j := range rows {
				rows[j] = Row{Item: int64(r.IntN(20)), Path: fmt.Sprintf("img/%d.jpg", r.IntN(30)), Category: []string{"", "tops", "dresses"}[r.IntN(3)], Embedding: unit(r)}
			}
			ops[i] = op{add: rows}
			nextID += int64(len(rows))
		case k < 7:
			ops[i] = op{kind: ByItem, ints: []int64{int64(r.IntN(20)), int64(r.IntN(20))}}
		case k < 8:
			ops[i] = op{kind: ByPath, paths: []string{fmt.Sprintf("img/%d.jpg", r.IntN(30))}}
		case k < 9:
			ops[i] = op{kind: ByID, ints: []int64{r.Int64N(nextID)}}
		default:
			ops[i] = op{compact: true}
		}
	}
	return ops
}

// initial is the index a scripted catalog is created from.
func initial() (*retrieval.Index, *model) {
	r := rand.New(rand.NewPCG(99, 1))
	ix := &retrieval.Index{Dim: testDim, Fingerprint: "fp1", Meta: map[string]string{"arch": "test"}}
	m := &model{}
	for i := range 3 {
		row := Row{Item: int64(100 + i), Path: fmt.Sprintf("start/%d.png", i), Category: "tops", Embedding: unit(r)}
		ix.Embeddings = append(ix.Embeddings, row.Embedding...)
		ix.Items = append(ix.Items, row.Item)
		ix.Paths = append(ix.Paths, row.Path)
		ix.Categories = append(ix.Categories, row.Category)
		m.rows = append(m.rows, modelRow{int64(i), row})
	}
	m.nextID = 3
	return ix, m
}

func run(c *Catalog, o op) error {
	switch {
	case o.compact:
		_, err := c.Compact()
		return err
	case o.add != nil:
		_, err := c.Add("fp1", o.add)
		return err
	default:
		_, err := c.Remove(o.kind, o.ints, o.paths)
		return err
	}
}

// same reports how the view's live rows differ from the model's, or "".
func same(v *View, m *model) string {
	live := v.LiveIndex()
	if live.Len() != len(m.rows) || v.Rows() != len(m.rows) {
		return fmt.Sprintf("%d live rows (Rows %d), the model has %d", live.Len(), v.Rows(), len(m.rows))
	}
	for i, r := range m.rows {
		if live.IDs[i] != r.id || live.Items[i] != r.row.Item || live.Paths[i] != r.row.Path || live.Category(i) != r.row.Category ||
			!slices.Equal(live.Embeddings[i*testDim:(i+1)*testDim], r.row.Embedding) {
			return fmt.Sprintf("row %d: id %d item %d path %q category %q; the model's id %d item %d path %q category %q",
				i, live.IDs[i], live.Items[i], live.Paths[i], live.Category(i), r.id, r.row.Item, r.row.Path, r.row.Category)
		}
	}
	return ""
}

// TestScriptMatchesModel: a long script of adds, removals and compactions
// gives, after every change and after reopening, exactly the rows the
// model keeps; a second handle on the folder sees the same after Refresh.
func TestScriptMatchesModel(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	ix, m := initial()
	c, err := Create(dir, ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i, o := range script(1, 120) {
		if err := run(c, o); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		m.apply(o)
		if d := same(c.View(), m); d != "" {
			t.Fatalf("after change %d (%+v): %s", i, o, d)
		}
		if i%10 == 9 {
			if _, err := other.Refresh(); err != nil {
				t.Fatal(err)
			}
			if d := same(other.View(), m); d != "" {
				t.Fatalf("the other handle after change %d: %s", i, d)
			}
			c.Close()
			if c, err = Open(dir, Options{}); err != nil {
				t.Fatal(err)
			}
			if d := same(c.View(), m); d != "" {
				t.Fatalf("reopened after change %d: %s", i, d)
			}
		}
	}
	// Compacted, the catalog is the index of the final rows, built afresh.
	before := c.View()
	if before.Removed == 0 {
		t.Fatal("the script left no removed row to compact away")
	}
	if _, err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	v := c.View()
	if v.Removed != 0 || v.Len() != len(m.rows) {
		t.Errorf("after compaction %d rows, %d removed", v.Len(), v.Removed)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // CURRENT, LOCK, one segment, one log
		t.Errorf("files after compaction: %v", names)
	}
	// Searches give what an index built from scratch on the final rows
	// gives, before the compaction (removed rows masked) and after.
	fresh := &retrieval.Index{Dim: testDim}
	for _, r := range m.rows {
		fresh.Embeddings = append(fresh.Embeddings, r.row.Embedding...)
	}
	r := rand.New(rand.NewPCG(77, 7))
	var qs []float32
	for range 6 {
		qs = append(qs, unit(r)...)
	}
	b := cpu.New(0)
	want, err := retrieval.Search(b, qs, 6, fresh.Embeddings, len(m.rows), testDim, 10, retrieval.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, view := range map[string]*View{"compacted": v, "uncompacted": before} {
		got, err := view.Search(b, qs, 6, 10, SearchParams{})
		if err != nil {
			t.Fatal(err)
		}
		for q := range want {
			for j := range want[q] {
				if gid, wid := view.IDs[got[q][j].Row], m.rows[want[q][j].Row].id; gid != wid || got[q][j].Score != want[q][j].Score {
					t.Fatalf("%s, query %d, rank %d: id %d (%g), from scratch id %d (%g)", name, q, j, gid, got[q][j].Score, wid, want[q][j].Score)
				}
			}
		}
	}
	c.Close()
}

// TestWritersTakeTurns: two handles writing in turn never reuse an id and
// each sees the other's rows.
func TestWritersTakeTurns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	ix, _ := initial()
	a, err := Create(dir, ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := rand.New(rand.NewPCG(5, 5))
	ida, err := a.Add("fp1", []Row{{Item: 1, Embedding: unit(r)}})
	if err != nil {
		t.Fatal(err)
	}
	idb, err := b.Add("fp1", []Row{{Item: 2, Embedding: unit(r)}})
	if err != nil {
		t.Fatal(err)
	}
	if ida[0] != 3 || idb[0] != 4 {
		t.Errorf("ids %v %v, want 3 and 4", ida, idb)
	}
	if n, err := a.Remove(ByItem, []int64{2}, nil); err != nil || n != 1 {
		t.Errorf("a removes b's row: %d, %v", n, err)
	}
	if _, err := b.Compact(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	va, vb := a.View(), b.View()
	if va.Rows() != 4 || vb.Rows() != 4 || va.Generation != 2 || va.Removed != 0 {
		t.Errorf("rows %d and %d, generation %d, removed %d", va.Rows(), vb.Rows(), va.Generation, va.Removed)
	}
	if _, ok := va.Position(4); ok {
		t.Error("the removed row is still found")
	}
	if p, ok := va.Position(3); !ok || va.Items[p] != 1 {
		t.Error("row 3 is lost")
	}
}

// TestBadChanges: another model's embeddings, a wrong dimension, a
// non-normalised or NaN embedding are refused and change nothing.
func TestBadChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	ix, m := initial()
	c, err := Create(dir, ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(6, 6))
	nan := unit(r)
	nan[2] = float32(math.NaN())
	for name, tc := range map[string]struct {
		fp   string
		rows []Row
		want string
	}{
		"model": {"other", []Row{{Embedding: unit(r)}}, "model other"},
		"dim":   {"fp1", []Row{{Embedding: unit(r)[:5]}}, "dimension is 8"},
		"norm":  {"fp1", []Row{{Embedding: make([]float32, testDim)}}, "normalised"},
		"nan":   {"fp1", []Row{{Embedding: unit(r)}, {Item: 7, Embedding: nan}}, "row 1 (item 7"},
	} {
		if _, err := c.Add(tc.fp, tc.rows); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if d := same(c.View(), m); d != "" {
		t.Error(d)
	}
	if n, err := c.Remove(ByItem, []int64{12345}, nil); n != 0 || err != nil {
		t.Errorf("removing an unknown item: %d, %v", n, err)
	}
	if _, err := Create(dir, ix, Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Create over a catalog: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "not a catalog") {
		t.Errorf("Open of an empty folder: %v", err)
	}
}

// TestTornTail: bytes of a record that was never acknowledged, at the end
// of the log, are ignored by a reader and cut off by the next writer.
func TestTornTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	ix, m := initial()
	c, err := Create(dir, ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 8))
	o := op{add: []Row{{Item: 5, Path: "a.jpg", Embedding: unit(r)}}}
	if err := run(c, o); err != nil {
		t.Fatal(err)
	}
	m.apply(o)
	c.Close()
	wal := filepath.Join(dir, "wal-000001.log")
	good, _ := os.ReadFile(wal)
	torn := encodeAdd([]Row{{Item: 6, Embedding: unit(r)}})
	for _, cut := range []int{3, 8, len(torn) - 1} {
		os.WriteFile(wal, append(slices.Clone(good), torn[:cut]...), 0o644)
		rd, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if d := same(rd.View(), m); d != "" {
			t.Errorf("cut %d, reader: %s", cut, d)
		}
		var log bytes.Buffer
		w, err := Open(dir, Options{Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		o2 := op{add: []Row{{Item: 9, Embedding: unit(r)}}}
		if err := run(w, o2); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), "torn record") {
			t.Errorf("cut %d: no warning (%q)", cut, log.String())
		}
		m2 := *m
		m2.rows = slices.Clone(m.rows)
		m2.apply(o2)
		if _, err := rd.Refresh(); err != nil {
			t.Fatal(err)
		}
		for _, v := range []*View{w.View(), rd.View()} {
			if d := same(v, &m2); d != "" {
				t.Errorf("cut %d, after the repair: %s", cut, d)
			}
		}
		rd.Close()
		w.Close()
	}
	// A damaged byte in the last record (a checksum failure) is torn too.
	os.WriteFile(wal, append(slices.Clone(good), 0), 0o644)
	bad := slices.Clone(good)
	bad[len(bad)-3] ^= 0xFF
	os.WriteFile(wal, bad, 0o644)
	rd, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rd.View().Rows() != 3 {
		t.Errorf("a damaged record was applied: %d rows", rd.View().Rows())
	}
	rd.Close()
}

// The crash test. The test binary, run again with DMLGO_LIVE_CHILD set,
// runs the script on a catalog and prints "ack N" once change N is
// acknowledged; with DMLGO_LIVE_CRASH=point:k it kills itself (SIGKILL) the
// k-th time a change reaches that point. The parent then reopens the
// catalog: it must hold the first N changes, or the first N+1 (the one in
// flight may have reached the disk before it was acknowledged), and
// nothing else.
const scriptLen = 60

func TestMain(m *testing.M) {
	if dir := os.Getenv("DMLGO_LIVE_CHILD"); dir != "" {
		os.Exit(child(dir))
	}
	os.Exit(m.Run())
}

func child(dir string) int {
	if spec := os.Getenv("DMLGO_LIVE_CRASH"); spec != "" {
		i := strings.LastIndexByte(spec, ':')
		point := spec[:i]
		left, _ := strconv.Atoi(spec[i+1:])
		crashAt = func(p string) {
			if p == point {
				if left--; left <= 0 {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					time.Sleep(time.Minute)
				}
			}
		}
	}
	c, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	for i, o := range script(3, scriptLen) {
		if err := run(c, o); err != nil {
			fmt.Println("change", i, err)
			return 1
		}
		fmt.Printf("ack %d\n", i+1)
	}
	return 0
}

func TestCrashAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary some 40 times")
	}
	ops := script(3, scriptLen)
	states := make([]*model, len(ops)+1)
	_, m := initial()
	states[0] = &model{rows: slices.Clone(m.rows), nextID: m.nextID}
	for i, o := range ops {
		m.apply(o)
		states[i+1] = &model{rows: slices.Clone(m.rows), nextID: m.nextID}
	}
	type kill struct {
		crash string        // point:k, or ""
		after time.Duration // or a kill from outside after this long
	}
	var kills []kill
	for _, p := range []string{"append:before", "append:written", "append:synced"} {
		for _, k := range []int{1, 7, 23} {
			kills = append(kills, kill{crash: fmt.Sprintf("%s:%d", p, k)})
		}
	}
	for _, p := range []string{"generation:segment", "generation:log", "compact:manifest", "compact:removed"} {
		for _, k := range []int{1, 3} {
			kills = append(kills, kill{crash: fmt.Sprintf("%s:%d", p, k)})
		}
	}
	for _, ms := range []int{5, 20, 40, 80, 150} {
		kills = append(kills, kill{after: time.Duration(ms) * time.Millisecond})
	}
	for _, k := range kills {
		name := k.crash
		if name == "" {
			name = "after " + k.after.String()
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shop")
			ix, _ := initial()
			c, err := Create(dir, ix, Options{})
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "DMLGO_LIVE_CHILD="+dir, "DMLGO_LIVE_CRASH="+k.crash)
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if k.after > 0 {
				time.Sleep(k.after)
				cmd.Process.Kill()
			}
			err = cmd.Wait()
			acked := 0
			sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
			for sc.Scan() {
				if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
					acked, _ = strconv.Atoi(n)
				} else {
					t.Fatalf("child: %s", sc.Text())
				}
			}
			if k.crash != "" && err == nil {
				t.Fatalf("the child was not killed at %s (acked %d)", k.crash, acked)
			}
			var log bytes.Buffer
			c, err = Open(dir, Options{Log: &log})
			if err != nil {
				t.Fatalf("reopening after the kill (acked %d): %v", acked, err)
			}
			defer c.Close()
			if _, err := c.Tidy(); err != nil {
				t.Fatal(err)
			}
			d0 := same(c.View(), states[acked])
			d1 := "no change in flight"
			if acked < len(ops) {
				d1 = same(c.View(), states[acked+1])
			}
			if d0 != "" && d1 != "" {
				t.Fatalf("after %d acknowledged changes: %s; with the next one: %s", acked, d0, d1)
			}
			// The catalog goes on: a change and a compaction work, and no
			// stray file is left.
			r := rand.New(rand.NewPCG(1, 2))
			if _, err := c.Add("fp1", []Row{{Item: 1, Embedding: unit(r)}}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Compact(); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 4 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("files: %v", names)
			}
		})
	}
}

// TestSearchFilters: a search of a view skips removed rows, and with a
// category returns exactly what exact search over that category's live
// rows returns.
func TestSearchFilters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	ix, _ := initial()
	c, err := Create(dir, ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(12, 3))
	var rows []Row
	for i := range 300 {
		rows = append(rows, Row{Item: int64(i % 50), Path: fmt.Sprintf("p%d", i), Category: []string{"tops", "dresses", "shoes", ""}[i%4], Embedding: unit(r)})
	}
	if _, err := c.Add("fp1", rows); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Remove(ByItem, []int64{3, 7, 11}, nil); err != nil {
		t.Fatal(err)
	}
	v := c.View()
	b := cpu.New(0)
	qs := make([]float32, 0, 5*testDim)
	for range 5 {
		qs = append(qs, unit(r)...)
	}
	for _, cat := range []string{"", "tops", "shoes", "hats"} {
		got, err := v.Search(b, qs, 5, 7, SearchParams{Category: cat})
		if err != nil {
			t.Fatal(err)
		}
		sub := v.LiveIndex()
		var keep []int
		for i := range sub.Len() {
			if cat == "" || sub.Category(i) == cat {
				keep = append(keep, i)
			}
		}
		var emb []float32
		for _, i := range keep {
			emb = append(emb, sub.Embeddings[i*testDim:(i+1)*testDim]...)
		}
		want, err := retrieval.Search(b, qs, 5, emb, len(keep), testDim, 7, retrieval.SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for q := range 5 {
			if len(got[q]) != len(want[q]) {
				t.Fatalf("category %q: %d hits, want %d", cat, len(got[q]), len(want[q]))
			}
			for j := range want[q] {
				gid := v.IDs[got[q][j].Row]
				wid := sub.IDs[keep[want[q][j].Row]]
				if gid != wid || !v.Live(got[q][j].Row) {
					t.Fatalf("category %q, query %d, rank %d: id %d, want %d", cat, q, j, gid, wid)
				}
			}
		}
	}
	if got, err := v.Search(b, qs, 5, 7, SearchParams{Category: "hats"}); err != nil || len(got[0]) != 0 {
		t.Errorf("unknown category: %v %v", got, err)
	}
}

// clustered makes n unit rows of dimension d around 40 centres.
func clustered(r *rand.Rand, n, d int) []float32 {
	centres := make([][]float64, 40)
	for i := range centres {
		centres[i] = make([]float64, d)
		for j := range centres[i] {
			centres[i][j] = r.NormFloat64()
		}
	}
	out := make([]float32, 0, n*d)
	for range n {
		c := centres[r.IntN(len(centres))]
		v := make([]float32, d)
		var ss float64
		for j := range v {
			x := c[j] + 0.3*r.NormFloat64()
			v[j] = float32(x)
			ss += x * x
		}
		for j := range v {
			v[j] = float32(float64(v[j]) / math.Sqrt(ss))
		}
		out = append(out, v...)
	}
	return out
}

// TestApproximateCatalog: a compaction builds the approximate index, which
// a reopened catalog loads; searches through it probing every list equal
// exact search (removed rows, rows added since and a category filter
// included); at the default recall they find most of the exact top 10;
// an added row finds itself; Exact bypasses the index.
func TestApproximateCatalog(t *testing.T) {
	for _, st := range ivf.Storages {
		t.Run(string(st), func(t *testing.T) { testApproximateCatalog(t, st) })
	}
}

func testApproximateCatalog(t *testing.T, st ivf.Storage) {
	const n, d = 3000, 16
	r := rand.New(rand.NewPCG(31, 1))
	all := clustered(r, n+30, d) // the rows, then 30 queries like them
	emb, queries := all[:n*d], all[n*d:]
	ix := &retrieval.Index{Dim: d, Fingerprint: "fp1", Embeddings: emb, Items: make([]int64, n), Paths: make([]string, n), Categories: make([]string, n)}
	for i := range n {
		ix.Items[i] = int64(i / 3)
		ix.Categories[i] = []string{"tops", "dresses", "shoes"}[i%3]
	}
	dir := filepath.Join(t.TempDir(), "shop")
	c, err := Create(dir, ix, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := cpu.New(0)
	rep, err := c.CompactWith(CompactOptions{ANN: ANNIVF, Backend: b, IVF: ivf.Config{Storage: st}})
	if err != nil || rep.Lists == 0 || rep.Storage != st || rep.ANNBytes <= 0 {
		t.Fatalf("compaction: %+v, %v", rep, err)
	}
	c.Close()
	if c, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if lists, rows, ok := c.View().Approximate(); !ok || rows != n || lists != rep.Lists || c.View().ANNStorage() != st {
		t.Fatalf("reopened: approximate %v, %d rows, %d lists, storage %q", ok, rows, lists, c.View().ANNStorage())
	}
	// Rows added since, rows removed.
	added := clustered(r, 40, d)
	var rows []Row
	for i := range 40 {
		rows = append(rows, Row{Item: int64(5000 + i), Category: "hats", Embedding: added[i*d : (i+1)*d]})
	}
	ids, err := c.Add("fp1", rows)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Remove(ByItem, []int64{1, 2, 3, 50, 400}, nil); err != nil {
		t.Fatal(err)
	}
	v := c.View()
	lists, _, _ := v.Approximate()
	qs := append(slices.Clone(queries), added[7*d:8*d]...)
	nq := 31
	for _, cat := range []string{"", "shoes", "hats"} {
		exact, err := v.Search(b, qs, nq, 10, SearchParams{Category: cat, Exact: true})
		if err != nil {
			t.Fatal(err)
		}
		all, err := v.Search(b, qs, nq, 10, SearchParams{Category: cat, NProbe: lists})
		if err != nil {
			t.Fatal(err)
		}
		approx, err := v.Search(b, qs, nq, 10, SearchParams{Category: cat})
		if err != nil {
			t.Fatal(err)
		}
		found, total := 0, 0
		for q := range nq {
			if len(all[q]) != len(exact[q]) {
				t.Fatalf("category %q, query %d: %d hits probing every list, %d exact", cat, q, len(all[q]), len(exact[q]))
			}
			for j := range exact[q] {
				if all[q][j].Row != exact[q][j].Row {
					t.Fatalf("category %q, query %d, rank %d: row %d probing every list, %d exact", cat, q, j, all[q][j].Row, exact[q][j].Row)
				}
			}
			want := map[int]bool{}
			for _, h := range exact[q] {
				want[h.Row] = true
			}
			for _, h := range approx[q] {
				if !v.Live(h.Row) || (cat != "" && v.Category(h.Row) != cat) {
					t.Fatalf("category %q: row %d (live %v, category %q) returned", cat, h.Row, v.Live(h.Row), v.Category(h.Row))
				}
				if want[h.Row] {
					found++
				}
			}
			total += len(exact[q])
		}
		if recall := float64(found) / float64(total); recall < 0.9 {
			t.Errorf("category %q: recall@10 %.3f at the default target", cat, recall)
		}
		if cat != "shoes" {
			if got := approx[nq-1][0]; v.IDs[got.Row] != ids[7] || got.Score < 0.999 {
				t.Errorf("category %q: the added row %d is not its own best match: %+v", cat, ids[7], got)
			}
		}
	}
	// A stray index of an unfinished compaction goes; the catalog's stays.
	os.WriteFile(filepath.Join(dir, "ann-999999.safetensors"), []byte("x"), 0o644)
	removed, err := c.Tidy()
	if err != nil || len(removed) != 1 || removed[0] != "ann-999999.safetensors" {
		t.Errorf("Tidy removed %v, %v", removed, err)
	}
	// A compaction with no index policy drops it.
	if _, err := c.CompactWith(CompactOptions{ANN: ANNNone}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.View().Approximate(); ok {
		t.Error("ANN none kept the approximate index")
	}
	if _, err := c.CompactWith(CompactOptions{ANN: "hnsw"}); err == nil {
		t.Error("an unknown index kind accepted")
	}
}
