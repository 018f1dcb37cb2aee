package retrieval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
)

// TestSearchGathered: a selective filter (below gatherBelow) takes the
// gathered path, over several gathered chunks, and gives what the scan of
// every row gives: the k best allowed rows, ties by row.
func TestSearchGathered(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 2))
	const n, d, q, k = 3000, 8, 17, 12
	gs, qs := randUnit(r, n, d), randUnit(r, q, d)
	copy(gs[2001*d:2002*d], gs[5*d:6*d]) // a tie between rows 5 and 2001
	qs = append(qs, gs[5*d:6*d]...)
	allow := NewBitset(n)
	for i := range n {
		if r.Float64() < 0.3 || i == 5 || i == 2001 {
			allow.Set(i)
		}
	}
	if !gathers(allow, n) || gathers(FullBitset(n), n) || gathers(nil, n) {
		t.Fatal("gathers: wrong choice")
	}
	got, err := Search(cpu.New(0), qs, q+1, gs, n, d, k, SearchOptions{Allow: allow, GalleryBlock: 64, QueryBlock: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i := range q + 1 {
		var want []Hit
		for _, h := range naiveRanking(qs[i*d:(i+1)*d], gs, d) {
			if allow.Has(h.Row) {
				want = append(want, h)
			}
		}
		for j := range k {
			h := got[i][j]
			var s float64 // the hit's own score, from its row
			for t := range d {
				s += float64(qs[i*d+t]) * float64(gs[h.Row*d+t])
			}
			if !allow.Has(h.Row) || math.Abs(s-float64(h.Score)) > 1e-5 ||
				h.Row != want[j].Row && math.Abs(float64(h.Score-want[j].Score)) > 1e-6 {
				t.Fatalf("query %d rank %d: %+v (its score %g), want %+v", i, j, h, s, want[j])
			}
		}
	}
	if h := got[q]; h[0].Row != 5 || h[1].Row != 2001 {
		t.Errorf("tie: %+v, want rows 5 then 2001", h[:2])
	}
	if _, err := Search(cpu.New(0), qs[:d+1], 1, gs, n, d, k, SearchOptions{Allow: allow}); err == nil {
		t.Error("queries of the wrong size accepted")
	}
}

// BenchmarkSearchFiltered: exact search of 256 queries in 100,000 × 128
// rows, every row allowed and a tenth of them (a category).
func BenchmarkSearchFiltered(bm *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n, d, q = 100000, 128, 256
	gs, qs := randUnit(r, n, d), randUnit(r, q, d)
	tenth := NewBitset(n)
	for i := 0; i < n; i += 10 {
		tenth.Set(i)
	}
	b := cpu.New(0)
	for _, c := range []struct {
		name  string
		allow *Bitset
	}{{"all", nil}, {"full-bitset", FullBitset(n)}, {"tenth", tenth}} {
		bm.Run(c.name, func(bm *testing.B) {
			for range bm.N {
				if _, err := Search(b, qs, q, gs, n, d, 10, SearchOptions{Allow: c.allow}); err != nil {
					bm.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSearchK10: exact top-10 of 2,000 queries in 100,000 × 128
// (tools/bench ann's exact search, smaller).
func BenchmarkSearchK10(bm *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	const n, d, q = 100000, 128, 2000
	gs, qs := randUnit(r, n, d), randUnit(r, q, d)
	b := cpu.New(1)
	for range bm.N {
		if _, err := Search(b, qs, q, gs, n, d, 10, SearchOptions{Threads: 1}); err != nil {
			bm.Fatal(err)
		}
	}
	bm.ReportMetric(float64(q*bm.N)/bm.Elapsed().Seconds(), "queries/s")
}
