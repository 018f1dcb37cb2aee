package retrieval

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
)

func randUnit(r *rand.Rand, n, d int) []float32 {
	x := make([]float32, n*d)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	Normalize(x, d)
	return x
}

// naiveRanking sorts all gallery rows for one query (score desc, row asc).
func naiveRanking(q []float32, g []float32, d int) []Hit {
	n := len(g) / d
	hits := make([]Hit, n)
	for i := 0; i < n; i++ {
		var s float64
		for t := 0; t < d; t++ {
			s += float64(q[t]) * float64(g[i*d+t])
		}
		hits[i] = Hit{i, float32(s)}
	}
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].Score > hits[b].Score })
	return hits
}

func TestSearchMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	b := cpu.New(0)
	for _, c := range []struct{ q, g, d, k, qb, gb int }{{7, 50, 5, 3, 2, 7}, {33, 1000, 16, 50, 8, 128}, {3, 4, 3, 10, 0, 0}, {1, 1, 1, 1, 0, 0}} {
		qs, gs := randUnit(r, c.q, c.d), randUnit(r, c.g, c.d)
		res, err := Search(b, qs, c.q, gs, c.g, c.d, c.k, SearchOptions{QueryBlock: c.qb, GalleryBlock: c.gb})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < c.q; i++ {
			want := naiveRanking(qs[i*c.d:(i+1)*c.d], gs, c.d)[:min(c.k, c.g)]
			if len(res[i]) != len(want) {
				t.Fatalf("query %d: %d hits, want %d", i, len(res[i]), len(want))
			}
			for j := range want {
				if res[i][j].Row != want[j].Row && math.Abs(float64(res[i][j].Score-want[j].Score)) > 1e-6 {
					t.Fatalf("query %d rank %d: %+v, want %+v", i, j, res[i][j], want[j])
				}
			}
		}
	}
	if _, err := Search(b, nil, 0, nil, 0, 4, 0, SearchOptions{}); err == nil {
		t.Error("k = 0 accepted")
	}
}

func TestSearchTiesAndDuplicates(t *testing.T) {
	g := []float32{1, 0, 0, 1, 1, 0, 1, 0} // rows 0, 2, 3 equal
	res, err := Search(cpu.New(1), []float32{1, 0}, 1, g, 4, 2, 3, SearchOptions{GalleryBlock: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res[0][0].Row != 0 || res[0][1].Row != 2 || res[0][2].Row != 3 {
		t.Errorf("ties should rank by row: %+v", res[0])
	}
}

func TestEvaluateMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const q, gn, d = 40, 120, 8
	gs := randUnit(r, gn, d)
	gItems := make([]int64, gn)
	for i := range gItems {
		gItems[i] = int64(i / 3) // three images per item
	}
	qs := make([]float32, q*d)
	qItems := make([]int64, q)
	for i := 0; i < q; i++ {
		qItems[i] = int64(r.IntN(45)) // items 40..44 have no gallery image
		base := int(qItems[i]) * 3 % gn
		for t := 0; t < d; t++ {
			qs[i*d+t] = gs[base*d+t] + 0.8*float32(r.NormFloat64())
		}
	}
	Normalize(qs, d)
	m, err := Evaluate(cpu.New(0), qs, qItems, gs, gItems, d, Ks, SearchOptions{QueryBlock: 7, GalleryBlock: 50})
	if err != nil {
		t.Fatal(err)
	}
	// Naive: full ranking per query.
	topk := map[int]float64{}
	var mAP float64
	counted, excluded := 0, 0
	for i := 0; i < q; i++ {
		rank := naiveRanking(qs[i*d:(i+1)*d], gs, d)
		nrel := 0
		for _, it := range gItems {
			if it == qItems[i] {
				nrel++
			}
		}
		if nrel == 0 {
			excluded++
			continue
		}
		counted++
		first := -1
		var ap float64
		seen := 0
		for pos, h := range rank {
			if gItems[h.Row] == qItems[i] {
				seen++
				ap += float64(seen) / float64(pos+1)
				if first < 0 {
					first = pos
				}
			}
		}
		mAP += ap / float64(nrel)
		for _, k := range Ks {
			if first < k {
				topk[k]++
			}
		}
	}
	if m.Excluded != excluded {
		t.Errorf("excluded %d, want %d", m.Excluded, excluded)
	}
	for _, k := range Ks {
		if math.Abs(m.TopK[k]-topk[k]/float64(counted)) > 1e-9 {
			t.Errorf("top%d %g, naive %g", k, m.TopK[k], topk[k]/float64(counted))
		}
	}
	if math.Abs(m.MAP-mAP/float64(counted)) > 1e-6 {
		t.Errorf("mAP %g, naive %g", m.MAP, mAP/float64(counted))
	}
	if m.P1 != m.TopK[1] || m.RecallK[50] < m.RecallK[1] {
		t.Errorf("precision@1 %g top1 %g; recall %v", m.P1, m.TopK[1], m.RecallK)
	}
	flat := m.Flat()
	for _, key := range []string{"top1", "top5", "top10", "top20", "top30", "top40", "top50", "map"} {
		if _, ok := flat[key]; !ok {
			t.Errorf("metrics.json key %s missing", key)
		}
	}
	if _, err := Evaluate(cpu.New(0), qs[:d], []int64{999}, gs, gItems, d, Ks, SearchOptions{}); err == nil {
		t.Error("a query set with no item in the gallery should be an error")
	}
}

func TestIndexRoundTripAndExport(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	ix := &Index{Dim: 4, Embeddings: randUnit(r, 3, 4), Items: []int64{5, 6, 5}, Paths: []string{"a.jpg", "b.jpg", "c d.jpg"}, Fingerprint: "abc123", Meta: map[string]string{"model": "resnet-s"}}
	dir := t.TempDir()
	p := filepath.Join(dir, "g.index")
	if err := ix.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIndex(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != "abc123" || got.Paths[2] != "c d.jpg" || got.Items[1] != 6 || got.Embeddings[5] != ix.Embeddings[5] || got.Meta["model"] != "resnet-s" {
		t.Errorf("round trip: %+v", got)
	}
	if err := ix.ExportNPY(filepath.Join(dir, "npy")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "npy", "embeddings.npy"))
	if !strings.HasPrefix(string(raw), "\x93NUMPY\x01\x00") || !strings.Contains(string(raw[:128]), "'shape': (3, 4)") || (len(raw)-48)%64 != 0 && len(raw) != 64+48 {
		t.Errorf("npy header %q", raw[:80])
	}
	if hl := int(raw[8]) | int(raw[9])<<8; (10+hl)%64 != 0 || len(raw) != 10+hl+48 {
		t.Errorf("npy data offset %d, size %d", 10+hl, len(raw))
	}
	bad := &Index{Dim: 2, Embeddings: []float32{3, 4}, Items: []int64{1}, Paths: []string{""}}
	if err := bad.Save(filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "norm") {
		t.Errorf("unnormalised index saved: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk"), []byte("not an index"), 0o644)
	if _, err := LoadIndex(filepath.Join(dir, "junk")); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("junk index: %v", err)
	}
}

// TestIndexIDsAndCategories: stable ids and categories survive a round
// trip; ids must increase; an index without them reads as before.
func TestIndexIDsAndCategories(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	ix := &Index{Dim: 4, Embeddings: randUnit(r, 3, 4), Items: []int64{5, 6, 5}, Paths: []string{"a", "b", "c"},
		Categories: []string{"tops", "", "dresses"}, IDs: []int64{2, 9, 40}}
	p := filepath.Join(t.TempDir(), "g.index")
	if err := ix.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := LoadIndex(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID(2) != 40 || got.Category(0) != "tops" || got.Category(1) != "" || len(got.IDs) != 3 {
		t.Errorf("ids %v categories %q", got.IDs, got.Categories)
	}
	ix.IDs = []int64{2, 2, 3}
	if err := ix.Save(p); err == nil || !strings.Contains(err.Error(), "increasing") {
		t.Errorf("repeated ids: %v", err)
	}
	ix.IDs, ix.Categories = nil, []string{"x"}
	if err := ix.Save(p); err == nil {
		t.Error("one category for three rows accepted")
	}
	plain := &Index{Dim: 4, Embeddings: randUnit(r, 2, 4), Items: []int64{1, 2}, Paths: []string{"", ""}}
	if err := plain.Save(p); err != nil {
		t.Fatal(err)
	}
	if got, err = LoadIndex(p); err != nil || got.IDs != nil || got.Categories != nil || got.ID(1) != 1 || got.Category(1) != "" {
		t.Errorf("plain index: %+v, %v", got, err)
	}
}

// TestSearchAllow: a filtered search returns the k best allowed rows,
// whatever the filter keeps (most rows, a few, one, none).
func TestSearchAllow(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 1))
	const n, d, q = 700, 16, 9
	gs, qs := randUnit(r, n, d), randUnit(r, q, d)
	b := cpu.New(0)
	for _, keep := range []float64{0.9, 0.05, 0} {
		allow := NewBitset(n)
		for i := range n {
			if r.Float64() < keep {
				allow.Set(i)
			}
		}
		if keep == 0 {
			allow.Set(321)
		}
		got, err := Search(b, qs, q, gs, n, d, 10, SearchOptions{Allow: allow, GalleryBlock: 128})
		if err != nil {
			t.Fatal(err)
		}
		for i := range q {
			var want []Hit
			for _, h := range naiveRanking(qs[i*d:(i+1)*d], gs, d) {
				if allow.Has(h.Row) {
					want = append(want, h)
				}
			}
			want = want[:min(10, len(want))]
			if len(got[i]) != len(want) {
				t.Fatalf("keep %g, query %d: %d hits, want %d", keep, i, len(got[i]), len(want))
			}
			for j := range want {
				if got[i][j].Row != want[j].Row {
					t.Fatalf("keep %g, query %d, rank %d: row %d, want %d", keep, i, j, got[i][j].Row, want[j].Row)
				}
			}
		}
	}
	if res, err := Search(b, qs, q, gs, n, d, 10, SearchOptions{Allow: NewBitset(n)}); err != nil || len(res) != q || len(res[0]) != 0 {
		t.Errorf("nothing allowed: %v, %v", res, err)
	}
	if _, err := Search(b, qs, q, gs, n, d, 10, SearchOptions{Allow: NewBitset(n - 1)}); err == nil {
		t.Error("a filter of another size accepted")
	}
	s := FullBitset(70)
	s.Clear(3)
	g := s.Grown(130, true)
	if g.Has(3) || !g.Has(69) || !g.Has(70) || !g.Has(129) || g.Has(130) || g.Count() != 129 {
		t.Errorf("Grown: count %d", g.Count())
	}
	if e := s.Grown(130, false); e.Has(70) || e.Count() != 69 {
		t.Errorf("Grown without fill: count %d", e.Count())
	}
}

// TestSearchOneMatchesBatch: a query searched alone (in gallery blocks of
// up to 65,536 rows, its scores by the CPU's few-rows kernel) gets the
// hits, scores bit for bit, it gets among 300 others (blocks of 2048, the
// blocked GEMM).
func TestSearchOneMatchesBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 30))
	const n, d, q, k = 20000, 128, 300, 20
	g, qs := randUnit(r, n, d), randUnit(r, q, d)
	b := cpu.New(2)
	all, err := Search(b, qs, q, g, n, d, k, SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < q; i += 7 {
		one, err := Search(b, qs[i*d:(i+1)*d], 1, g, n, d, k, SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range one[0] {
			if w := all[i][j]; h != w {
				t.Fatalf("query %d hit %d: alone %+v, among %d %+v", i, j, h, q, w)
			}
		}
	}
}

// TestSearchDefaultBlocks: the gallery block a search takes by default
// grows as its queries get fewer, within 2048 and 65,536 rows, and one
// that is set is kept.
func TestSearchDefaultBlocks(t *testing.T) {
	for _, c := range []struct{ set, q, want int }{
		{0, 1, 1 << 16}, {0, 32, 1 << 16}, {0, 64, 32768}, {0, 1024, 2048}, {0, 100000, 2048}, {500, 1, 500},
	} {
		if got := (SearchOptions{GalleryBlock: c.set}).withDefaults(c.q).GalleryBlock; got != c.want {
			t.Errorf("GalleryBlock %d, %d queries: block %d, want %d", c.set, c.q, got, c.want)
		}
	}
}
