package ivf

import (
	"cmp"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/safetensors"
)

// mixture is n unit rows (n, d) of a seeded Gaussian mixture, as the ANN
// benchmark makes them (../shared/bench/ann_anchor.py): centres ~
// N(0, 1/d), rows = a centre + noise·N(0, 1), normalised. It also returns
// each row's centre.
func mixture(r *rand.Rand, n, d int, centres []float32, noise float64) ([]float32, []int) {
	nc := len(centres) / d
	x := make([]float32, n*d)
	which := make([]int, n)
	for i := 0; i < n; i++ {
		c := r.IntN(nc)
		which[i] = c
		for j := 0; j < d; j++ {
			x[i*d+j] = centres[c*d+j] + float32(noise*r.NormFloat64())
		}
	}
	retrieval.Normalize(x, d)
	return x, which
}

func centres(r *rand.Rand, nc, d int) []float32 {
	c := make([]float32, nc*d)
	for i := range c {
		c[i] = float32(r.NormFloat64() / math.Sqrt(float64(d)))
	}
	return c
}

// recallAt10 is the mean fraction of exact's first min(10, k) rows that
// got holds.
func recallAt(got, exact [][]retrieval.Hit, k int) float64 {
	var s float64
	for i := range exact {
		want := exact[i][:min(k, len(exact[i]))]
		in := map[int]bool{}
		for _, h := range got[i] {
			in[h.Row] = true
		}
		f := 0
		for _, h := range want {
			if in[h.Row] {
				f++
			}
		}
		if len(want) > 0 {
			s += float64(f) / float64(len(want))
		} else {
			s++
		}
	}
	return s / float64(len(exact))
}

// The test corpus: 20,000 rows of dimension 32 from 200 centres (the
// benchmark's recipe, smaller and with less noise so that a fraction of the
// lists holds most neighbours, as for embeddings of a trained model).
const (
	testN, testD, testQ = 20000, 32, 300
	testNoise           = 0.15
)

func testData(t *testing.T) (rows, queries []float32, which []int) {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 5))
	c := centres(r, testN/100, testD)
	rows, which = mixture(r, testN, testD, c, testNoise)
	queries, _ = mixture(r, testQ, testD, c, testNoise)
	return rows, queries, which
}

// RecallFloor is the recall@10 that the default search must reach on the
// test corpus (its target is DefaultRecall, 0.95, by calibration).
const recallFloor = 0.9

func TestRecallAtDefaults(t *testing.T) {
	rows, qs, _ := testData(t)
	b := cpu.New(0)
	ix, err := Build(b, rows, testN, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Lists() != int(math.Round(4*math.Sqrt(testN))) || ix.Len() != testN {
		t.Fatalf("lists %d, len %d", ix.Lists(), ix.Len())
	}
	total := 0
	for _, s := range ix.ListSizes() {
		total += s
	}
	if total != testN {
		t.Fatalf("lists hold %d rows, want %d", total, testN)
	}
	exact, err := retrieval.Search(b, qs, testQ, rows, testN, testD, 10, retrieval.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Search(b, qs, testQ, 10, SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := recallAt(got, exact, 10)
	p := ix.NProbe(DefaultRecall)
	t.Logf("default nprobe %d of %d lists: recall@10 %.4f (calibrated %.4f)", p, ix.Lists(), rec, ix.Recall(p))
	if rec < recallFloor {
		t.Errorf("recall@10 %.4f at defaults (nprobe %d), want ≥ %.2f", rec, p, recallFloor)
	}
	if p >= ix.Lists()/2 {
		t.Errorf("default nprobe %d of %d lists: not approximate search", p, ix.Lists())
	}
	// Calibration predicts the measured recall within a few points.
	if c := ix.Recall(p); math.Abs(c-rec) > 0.05 {
		t.Errorf("calibrated recall %.4f, measured %.4f", c, rec)
	}
	// Scores are the rows' inner products, results sorted.
	for i, hs := range got {
		if len(hs) != 10 {
			t.Fatalf("query %d: %d hits", i, len(hs))
		}
		for j, h := range hs {
			var s float32
			for t := 0; t < testD; t++ {
				s += qs[i*testD+t] * rows[h.Row*testD+t]
			}
			if math.Abs(float64(s-h.Score)) > 1e-4 || j > 0 && h.Score > hs[j-1].Score {
				t.Fatalf("query %d hit %d: %+v (inner product %g)", i, j, h, s)
			}
		}
	}
	// More lists, more recall; every list is exact search.
	lo, _ := ix.Search(b, qs, testQ, 10, SearchOptions{NProbe: 1})
	all, _ := ix.Search(b, qs, testQ, 10, SearchOptions{NProbe: ix.Lists()})
	if r1, rAll := recallAt(lo, exact, 10), recallAt(all, exact, 10); r1 >= rec || rAll < 0.999 {
		t.Errorf("recall at nprobe 1: %.4f, every list: %.4f, default %.4f", r1, rAll, rec)
	}
	ex, _ := ix.Search(b, qs, testQ, 10, SearchOptions{Exact: true})
	if r := recallAt(ex, exact, 10); r < 0.999 {
		t.Errorf("exact: recall %.4f", r)
	}
}

// TestAddKeepsRecall: rows added after the build (half the corpus) are
// found as well as the built ones.
func TestAddKeepsRecall(t *testing.T) {
	rows, qs, _ := testData(t)
	b := cpu.New(0)
	half := testN / 2
	ix, err := Build(b, rows[:half*testD], half, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := ix.NProbe(DefaultRecall)
	// In pieces, one row at a time at first.
	for i := half; i < half+10; i++ {
		if err := ix.Add(b, rows[i*testD:(i+1)*testD], 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.Add(b, rows[(half+10)*testD:], testN-half-10); err != nil {
		t.Fatal(err)
	}
	if ix.Len() != testN {
		t.Fatalf("len %d after adds", ix.Len())
	}
	exact, _ := retrieval.Search(b, qs, testQ, rows, testN, testD, 10, retrieval.SearchOptions{})
	got, err := ix.Search(b, qs, testQ, 10, SearchOptions{NProbe: p})
	if err != nil {
		t.Fatal(err)
	}
	rec := recallAt(got, exact, 10)
	added := 0
	for _, hs := range got {
		for _, h := range hs {
			if h.Row >= half {
				added++
			}
		}
	}
	t.Logf("nprobe %d: recall@10 %.4f with half the rows added; %d of %d hits are added rows", p, rec, added, 10*testQ)
	if rec < recallFloor {
		t.Errorf("recall@10 %.4f after adds, want ≥ %.2f", rec, recallFloor)
	}
	if added < 10*testQ/4 {
		t.Errorf("only %d of %d hits are added rows", added, 10*testQ)
	}
	// A snapshot does not see later adds; the original does.
	snap := ix.Snapshot()
	extra := rows[:testD]
	if err := ix.Add(b, extra, 1); err != nil {
		t.Fatal(err)
	}
	if snap.Len() != testN || ix.Len() != testN+1 {
		t.Fatalf("snapshot %d rows, index %d", snap.Len(), ix.Len())
	}
	hs, _ := snap.Search(b, extra, 1, 2, SearchOptions{})
	if hs[0][0].Row != 0 || hs[0][1].Row == testN {
		t.Errorf("snapshot sees a later add: %+v", hs[0])
	}
	hs, _ = ix.Search(b, extra, 1, 2, SearchOptions{})
	if hs[0][0].Row != 0 || hs[0][1].Row != testN {
		t.Errorf("index after add: %+v, want rows 0 and %d", hs[0], testN)
	}
}

// TestFilteredSearch: with Allow, only allowed rows come back, k of them
// whenever k are allowed; a selective filter gives exactly the exact
// filtered search; a broad one (random or by cluster) meets the recall
// floor against exact search over the allowed rows.
func TestFilteredSearch(t *testing.T) {
	rows, qs, which := testData(t)
	b := cpu.New(0)
	ix, err := Build(b, rows, testN, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	type filter struct {
		name  string
		keep  func(row int) bool
		exact bool // expect the results of exact search
	}
	filters := []filter{
		{"random 50%", func(int) bool { return r.Float64() < 0.5 }, false},
		{"random 10%", func(int) bool { return r.Float64() < 0.1 }, false},
		// A category: a fifth of the clusters (the rows of one category
		// lie together, away from most queries).
		{"clusters 20%", func(i int) bool { return which[i]%5 == 3 }, false},
		{"random 0.3%", func(int) bool { return r.Float64() < 0.003 }, true},
		{"5 rows", func(i int) bool { return i%4000 == 17 }, true},
	}
	for _, f := range filters {
		allow := retrieval.NewBitset(testN)
		for i := 0; i < testN; i++ {
			if f.keep(i) {
				allow.Set(i)
			}
		}
		exact, err := retrieval.Search(b, qs, testQ, rows, testN, testD, 10, retrieval.SearchOptions{Allow: allow})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ix.Search(b, qs, testQ, 10, SearchOptions{Allow: allow})
		if err != nil {
			t.Fatal(err)
		}
		for i, hs := range got {
			if len(hs) != min(10, allow.Count()) {
				t.Fatalf("%s: query %d got %d hits, %d allowed", f.name, i, len(hs), allow.Count())
			}
			for _, h := range hs {
				if !allow.Has(h.Row) {
					t.Fatalf("%s: query %d got row %d, not allowed", f.name, i, h.Row)
				}
			}
		}
		rec := recallAt(got, exact, 10)
		np, ex := ix.probes(10, allow.Count(), SearchOptions{})
		t.Logf("%s (%d rows): nprobe %d, exact %v: recall@10 %.4f against exact filtered search", f.name, allow.Count(), np, ex, rec)
		if ex != f.exact {
			t.Errorf("%s: exact search %v, want %v", f.name, ex, f.exact)
		}
		if f.exact && rec < 1 || rec < recallFloor {
			t.Errorf("%s: recall@10 %.4f against exact filtered search", f.name, rec)
		}
	}
	if hs, err := ix.Search(b, qs[:2*testD], 2, 10, SearchOptions{Allow: retrieval.NewBitset(testN)}); err != nil || len(hs) != 2 || len(hs[0]) != 0 {
		t.Errorf("nothing allowed: %v, %v", hs, err)
	}
}

// TestSmallAndTies: tiny indexes, k above the rows, nprobe 1 still gives k
// rows (further lists are scanned), duplicates rank by row.
func TestSmallAndTies(t *testing.T) {
	b := cpu.New(1)
	r := rand.New(rand.NewPCG(2, 2))
	x := make([]float32, 50*4)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	retrieval.Normalize(x, 4)
	copy(x[7*4:8*4], x[3*4:4*4]) // rows 3 and 7 equal
	ix, err := Build(b, x, 50, 4, Config{Lists: 10})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := ix.Search(b, x[3*4:4*4], 1, 60, SearchOptions{NProbe: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(hs[0]) != 50 || hs[0][0].Row != 3 || hs[0][1].Row != 7 {
		t.Errorf("k above the rows, nprobe 1: %d hits, first %+v", len(hs[0]), hs[0][:2])
	}
	one, err := Build(b, x[:4], 1, 4, Config{})
	if err != nil || one.Lists() != 1 {
		t.Fatalf("one row: %v", err)
	}
	if hs, err := one.Search(b, x[:4], 1, 3, SearchOptions{}); err != nil || len(hs[0]) != 1 || hs[0][0].Row != 0 {
		t.Errorf("one row: %v %v", hs, err)
	}
}

func TestBadInputs(t *testing.T) {
	b := cpu.New(1)
	x := make([]float32, 40)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	retrieval.Normalize(x, 4)
	ix, err := Build(b, x, 10, 4, Config{Lists: 2})
	if err != nil {
		t.Fatal(err)
	}
	q := x[:4]
	for _, c := range []struct {
		name, want string
		err        error
	}{
		{"no rows", "no rows", func() error { _, err := Build(b, nil, 0, 4, Config{}); return err }()},
		{"build size", "values for 3 rows", func() error { _, err := Build(b, x, 3, 4, Config{}); return err }()},
		{"dim 0", "dimension 0", func() error { _, err := Build(b, nil, 0, 0, Config{}); return err }()},
		{"NaN", "row 1 holds NaN", func() error {
			y := append([]float32{}, x...)
			y[5] = float32(math.NaN())
			_, err := Build(b, y, 10, 4, Config{})
			return err
		}()},
		{"k 0", "k must be at least 1", func() error { _, err := ix.Search(b, q, 1, 0, SearchOptions{}); return err }()},
		{"query dim", "query values", func() error { _, err := ix.Search(b, x[:3], 1, 1, SearchOptions{}); return err }()},
		{"add dim", "values for 1 rows of dimension 4", func() error { return ix.Add(b, x[:5], 1) }()},
		{"allow size", "gallery of 9 rows", func() error {
			_, err := ix.Search(b, q, 1, 1, SearchOptions{Allow: retrieval.NewBitset(9)})
			return err
		}()},
		{"nprobe", "nprobe -1", func() error { _, err := ix.Search(b, q, 1, 1, SearchOptions{NProbe: -1}); return err }()},
		{"recall", "recall target 2", func() error { _, err := ix.Search(b, q, 1, 1, SearchOptions{Recall: 2}); return err }()},
		{"empty", "empty", func() error { _, err := (&Index{dim: 4}).Search(b, q, 1, 1, SearchOptions{}); return err }()},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, c.err, c.want)
		}
	}
	if ix.Len() != 10 {
		t.Errorf("a failed Add changed the index: %d rows", ix.Len())
	}
}

func TestSaveLoad(t *testing.T) {
	rows, qs, _ := testData(t)
	b := cpu.New(0)
	n := 5000
	ix, err := Build(b, rows[:n*testD], n, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(b, rows[n*testD:(n+100)*testD], 100); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "g.ivf")
	if err := ix.Save(p, map[string]string{"fingerprint": "abc"}); err != nil {
		t.Fatal(err)
	}
	got, meta, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if meta["fingerprint"] != "abc" || got.Len() != ix.Len() || got.Lists() != ix.Lists() || got.Dim() != testD {
		t.Fatalf("loaded: meta %v, %d rows, %d lists", meta, got.Len(), got.Lists())
	}
	if got.NProbe(0.9) != ix.NProbe(0.9) || got.Recall(3) != ix.Recall(3) {
		t.Errorf("calibration lost: nprobe %d vs %d", got.NProbe(0.9), ix.NProbe(0.9))
	}
	for _, o := range []SearchOptions{{}, {NProbe: 2}, {Exact: true}} {
		a, _ := ix.Search(b, qs, testQ, 10, o)
		c, _ := got.Search(b, qs, testQ, 10, o)
		for i := range a {
			for j := range a[i] {
				if a[i][j] != c[i][j] {
					t.Fatalf("%+v: query %d hit %d: %+v before saving, %+v after", o, i, j, a[i][j], c[i][j])
				}
			}
		}
	}
	// A loaded index grows without touching its neighbours in the file's arrays.
	if err := got.Add(b, rows[(n+100)*testD:(n+200)*testD], 100); err != nil {
		t.Fatal(err)
	}
	a, _ := got.Search(b, rows[(n+150)*testD:(n+151)*testD], 1, 1, SearchOptions{})
	if a[0][0].Row != n+150 {
		t.Errorf("added row not found after load: %+v", a[0])
	}
	// Damaged files are refused, naming the file and the problem.
	f32 := func(name string, shape []int, v []float32) safetensors.Tensor {
		return safetensors.FromFloat32(name, shape, v)
	}
	i32 := func(name string, v ...int32) safetensors.Tensor {
		b := make([]byte, 0, 4*len(v))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		return safetensors.Tensor{Name: name, DType: "I32", Shape: []int{len(v)}, Data: b}
	}
	md := map[string]string{"format": Format}
	for _, c := range []struct {
		name, want string
		offs       []int64
		rows       []int32
	}{
		{"decreasing offsets", "offsets", []int64{0, 2, 1}, []int32{0, 1}},
		{"offsets past the rows", "offsets", []int64{0, 1, 3}, []int32{0, 1}},
		{"a row twice", "row number", []int64{0, 1, 2}, []int32{1, 1}},
		{"a row out of range", "row number", []int64{0, 1, 2}, []int32{0, 2}},
	} {
		p := filepath.Join(dir, "bad.ivf")
		err := safetensors.WriteFile(p, []safetensors.Tensor{
			f32("centroids", []int{2, 2}, []float32{1, 0, 0, 1}), f32("vectors", []int{2, 2}, []float32{1, 0, 0, 1}),
			i32("rows", c.rows...), safetensors.FromInt64("offsets", []int{3}, c.offs),
		}, md)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.ivf") {
			t.Errorf("%s: %v", c.name, err)
		}
	}

	os.WriteFile(filepath.Join(dir, "junk"), []byte("junk"), 0o644)
	if _, _, err := Load(filepath.Join(dir, "junk")); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("junk: %v", err)
	}
	plain := &retrieval.Index{Dim: 2, Embeddings: []float32{1, 0}, Items: []int64{1}, Paths: []string{""}}
	plain.Save(filepath.Join(dir, "flat"))
	if _, _, err := Load(filepath.Join(dir, "flat")); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("a flat index loaded as IVF: %v", err)
	}
}

// TestTopLists: the quickselect and the sorted selection agree with a
// full sort, ties (lower list first) and NaN (last) included.
func TestTopLists(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{1, 2, 3, 7, 64, 1000} {
		sc := make([]float32, n)
		for i := range sc {
			sc[i] = float32(r.IntN(max(2, n/3))) // many ties
			if r.IntN(17) == 0 {
				sc[i] = float32(math.NaN())
			}
		}
		want := make([]int32, n)
		for i := range want {
			want[i] = int32(i)
		}
		key := func(l int32) float64 {
			if v := float64(sc[l]); v == v {
				return v
			}
			return math.Inf(-1)
		}
		slices.SortStableFunc(want, func(a, b int32) int { return -cmp.Compare(key(a), key(b)) })
		for _, m := range []int{1, n / 2, n - 1, n} {
			if m < 1 {
				continue
			}
			got, _ := topLists(sc, m, nil, nil)
			if !slices.Equal(got, want[:m]) {
				t.Fatalf("n %d, m %d: %v, want %v", n, m, got, want[:m])
			}
			set, _ := bestLists(sc, m, nil, nil)
			slices.Sort(set)
			w := slices.Clone(want[:m])
			slices.Sort(w)
			if !slices.Equal(set, w) {
				t.Fatalf("n %d, m %d: set %v, want %v", n, m, set, w)
			}
		}
	}
}

// TestConcurrentReaders: searches of a snapshot run while the index it
// came from grows (run with -race).
func TestConcurrentReaders(t *testing.T) {
	rows, qs, _ := testData(t)
	b := cpu.New(1)
	n := 4000
	ix, err := Build(b, rows[:n*testD], n, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	snap := ix.Snapshot()
	want, _ := snap.Search(b, qs[:20*testD], 20, 5, SearchOptions{})
	done := make(chan error)
	go func() {
		for i := 0; i < 10; i++ {
			got, err := snap.Search(b, qs[:20*testD], 20, 5, SearchOptions{})
			if err == nil && !slices.EqualFunc(got, want, slices.Equal[[]retrieval.Hit]) {
				err = errors.New("a snapshot's results changed while its index grew")
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := n; i < n+2000; i += 100 {
		if err := ix.Add(b, rows[i*testD:(i+100)*testD], 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSearch: the benchmark's data at 100,000 rows (see tools/bench
// ann for the full comparison): a batch of 1,000 queries and one query at
// a time, at the default recall target.
func BenchmarkSearch(bm *testing.B) {
	const n, d, nq = 100000, 128, 1000
	r := rand.New(rand.NewPCG(1, 2))
	c := centres(r, n/100, d)
	rows, _ := mixture(r, n, d, c, 0.35)
	qs, _ := mixture(r, nq, d, c, 0.35)
	b := cpu.New(0)
	ix, err := Build(b, rows, n, d, Config{})
	if err != nil {
		bm.Fatal(err)
	}
	bm.Run("batch", func(bm *testing.B) {
		for range bm.N {
			ix.Search(b, qs, nq, 10, SearchOptions{})
		}
		bm.ReportMetric(float64(nq*bm.N)/bm.Elapsed().Seconds(), "queries/s")
	})
	bm.Run("one", func(bm *testing.B) {
		for i := range bm.N {
			j := i % nq
			ix.Search(b, qs[j*d:(j+1)*d], 1, 10, SearchOptions{})
		}
	})
}

// TestCompact: dropping rows renumbers the rest in order; the compacted
// index searches the kept rows as exact search over them does (exactly
// with Exact, to the floor at defaults).
func TestCompact(t *testing.T) {
	rows, qs, _ := testData(t)
	b := cpu.New(0)
	ix, err := Build(b, rows, testN, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 8))
	keep := retrieval.NewBitset(testN)
	var kept []float32
	for i := 0; i < testN; i++ {
		if r.Float64() < 0.7 {
			keep.Set(i)
			kept = append(kept, rows[i*testD:(i+1)*testD]...)
		}
	}
	c, err := ix.Compact(keep)
	if err != nil {
		t.Fatal(err)
	}
	m := keep.Count()
	if c.Len() != m || ix.Len() != testN {
		t.Fatalf("compacted %d rows (want %d), original %d", c.Len(), m, ix.Len())
	}
	exact, _ := retrieval.Search(b, qs, testQ, kept, m, testD, 10, retrieval.SearchOptions{})
	for _, o := range []SearchOptions{{Exact: true}, {}} {
		got, err := c.Search(b, qs, testQ, 10, o)
		if err != nil {
			t.Fatal(err)
		}
		rec := recallAt(got, exact, 10)
		if o.Exact && rec < 1 || rec < recallFloor {
			t.Errorf("%+v: recall@10 %.4f against exact search of the kept rows", o, rec)
		}
		for i, hs := range got {
			for _, h := range hs {
				var s float32
				for t := 0; t < testD; t++ {
					s += qs[i*testD+t] * kept[h.Row*testD+t]
				}
				if math.Abs(float64(s-h.Score)) > 1e-4 {
					t.Fatalf("query %d: row %d scores %g, its kept row %g", i, h.Row, h.Score, s)
				}
			}
		}
	}
	if _, err := ix.Compact(retrieval.NewBitset(5)); err == nil {
		t.Error("a set of another size accepted")
	}
}
