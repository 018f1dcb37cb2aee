package retrieval

import (
	"fmt"
	"sort"

	"github.com/dmlgo/dmlgo/backend"
)

// Ks are the cut-offs the protocol reports.
var Ks = []int{1, 5, 10, 20, 30, 40, 50}

// Definitions of the reported metrics, printed once by the tools.
const Definitions = `top-k accuracy: fraction of queries whose item has at least one gallery image among the k best results
recall@k:       fraction of a query's relevant gallery images (same item) among the k best, averaged over queries
precision@1:    fraction of queries whose best result is a relevant gallery image (equals top-1 accuracy)
mAP:            mean over queries of the average precision of the full ranking (mean of the precision at the rank of each relevant image)`

// Metrics are the protocol's results; fractions in [0, 1].
type Metrics struct {
	Queries  int             `json:"queries"`
	Gallery  int             `json:"gallery"`
	Excluded int             `json:"excluded"` // queries whose item has no gallery image
	TopK     map[int]float64 `json:"-"`
	RecallK  map[int]float64 `json:"-"`
	MAP      float64         `json:"map"`
	P1       float64         `json:"precision1"`
}

// Flat returns the metrics as the metrics.json keys: top1 … top50, map,
// recall1 … recall50, precision1.
func (m Metrics) Flat() map[string]float64 {
	out := map[string]float64{"map": m.MAP, "precision1": m.P1}
	for k, v := range m.TopK {
		out[fmt.Sprintf("top%d", k)] = v
	}
	for k, v := range m.RecallK {
		out[fmt.Sprintf("recall%d", k)] = v
	}
	return out
}

// Evaluate scores queries against a gallery by item id: top-k accuracy and
// recall@k for every k in ks, precision@1 and mAP over the full ranking.
// Ties rank in gallery order (a relevant image tied with others counts the
// earlier rows as better). Queries whose item is absent from the gallery
// are excluded and counted.
func Evaluate(b backend.Backend, queries []float32, queryItems []int64, gallery []float32, galleryItems []int64, d int, ks []int, o SearchOptions) (Metrics, error) {
	q, gn := len(queryItems), len(galleryItems)
	if q == 0 || gn == 0 {
		return Metrics{}, fmt.Errorf("retrieval: empty evaluation (%d queries, %d gallery images)", q, gn)
	}
	if len(queries) != q*d || len(gallery) != gn*d {
		return Metrics{}, fmt.Errorf("retrieval: %d query values for %d×%d, %d gallery values for %d×%d", len(queries), q, d, len(gallery), gn, d)
	}
	byItem := map[int64][]int{}
	for i, it := range galleryItems {
		byItem[it] = append(byItem[it], i)
	}
	// The scores of each query's relevant images, computed directly.
	type rel struct {
		rows   []int
		scores []float32
		ranks  []int // 0-based rank of each relevant image in the full ranking
	}
	rels := make([]rel, q)
	maxK := 0
	for _, k := range ks {
		maxK = max(maxK, k)
	}
	excluded := 0
	for i := 0; i < q; i++ {
		rows := byItem[queryItems[i]]
		if len(rows) == 0 {
			excluded++
			continue
		}
		r := rel{rows: rows, scores: make([]float32, len(rows)), ranks: make([]int, len(rows))}
		for j, g := range rows {
			var s float32
			qv, gv := queries[i*d:(i+1)*d], gallery[g*d:(g+1)*d]
			for t := range qv {
				s += qv[t] * gv[t]
			}
			r.scores[j] = s
		}
		rels[i] = r
	}
	if excluded == q {
		return Metrics{}, fmt.Errorf("retrieval: no query item has a gallery image")
	}
	// One pass over all scores: the rank of a relevant image is the number
	// of gallery rows ranked above it. The GEMM's scores and the direct dot
	// products may differ in the last bit, so a relevant row is recognised
	// by its index, and its own GEMM score replaces the direct one.
	err := Scan(b, queries, q, gallery, gn, d, o, func(qi, g0 int, scores []float32) {
		r := &rels[qi]
		if r.rows == nil {
			return
		}
		for j, g := range r.rows {
			if g >= g0 && g < g0+len(scores) {
				r.scores[j] = scores[g-g0]
			}
		}
	})
	if err != nil {
		return Metrics{}, err
	}
	err = Scan(b, queries, q, gallery, gn, d, o, func(qi, g0 int, scores []float32) {
		r := &rels[qi]
		for j, rs := range r.scores {
			row := r.rows[j]
			n := 0
			for t, s := range scores {
				if s > rs || (s == rs && g0+t < row) {
					n++
				}
			}
			r.ranks[j] += n
		}
	})
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{Queries: q, Gallery: gn, Excluded: excluded, TopK: map[int]float64{}, RecallK: map[int]float64{}}
	counted := float64(q - excluded)
	for i := range rels {
		r := rels[i]
		if r.rows == nil {
			continue
		}
		ranks := append([]int(nil), r.ranks...)
		sort.Ints(ranks)
		// AP = mean over relevant images of (relevant up to it)/(its rank+1).
		var ap float64
		for j, rk := range ranks {
			ap += float64(j+1) / float64(rk+1)
		}
		m.MAP += ap / float64(len(ranks))
		if ranks[0] == 0 {
			m.P1++
		}
		for _, k := range ks {
			if ranks[0] < k {
				m.TopK[k]++
			}
			hit := sort.SearchInts(ranks, k) // relevant images ranked < k
			m.RecallK[k] += float64(hit) / float64(len(ranks))
		}
	}
	m.MAP /= counted
	m.P1 /= counted
	for _, k := range ks {
		m.TopK[k] /= counted
		m.RecallK[k] /= counted
	}
	return m, nil
}
