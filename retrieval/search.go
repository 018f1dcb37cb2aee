// Package retrieval holds the embedding index, exact cosine top-k search and
// the retrieval metrics (top-k accuracy, recall@k, precision@1, mAP).
//
// Search multiplies blocks of queries with blocks of the gallery through the
// backend's GEMM and keeps a partial selection (a k-element min-heap) per
// query, queries spread over goroutines. Memory is bounded by the block
// sizes, however large the gallery.
package retrieval

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// Hit is one search result: a gallery row and its cosine score.
type Hit struct {
	Row   int
	Score float32
}

// SearchOptions tune the blocked search.
type SearchOptions struct {
	QueryBlock int // queries per GEMM (default 1024)
	// GalleryBlock is the gallery rows per GEMM: by default 2048, or with
	// fewer queries as many as keep the scores of a block within
	// 1024 × 2048, up to 65,536 rows (see Scan).
	GalleryBlock int
	Threads      int // goroutines for selection (default GOMAXPROCS)
	// Allow, when set, holds the rows Search may return (of the gallery's
	// Len): a query gets its k best allowed rows, fewer only when fewer
	// are allowed.
	Allow *Bitset
}

// withDefaults fills the options left unset, for q queries.
func (o SearchOptions) withDefaults(q int) SearchOptions {
	// Each block of gallery rows is packed once per block of queries:
	// 1024 queries make that copy a few percent of the GEMM (it was 14%
	// of exact search at 256), and 2048 rows keep the scores (8 MiB)
	// about as large as before.
	if o.QueryBlock <= 0 {
		o.QueryBlock = 1024
	}
	if o.GalleryBlock <= 0 {
		// Fewer queries take more rows a block for the same scores: one
		// query (a service's upload) against 100,000 rows in blocks of
		// 2048 ran each block's GEMM on one thread and paid each block's
		// start (163 queries/s; in blocks of 65,536: see BENCHMARKS.md).
		o.GalleryBlock = min(max(2048, 1024*2048/max(1, min(q, o.QueryBlock))), 1<<16)
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	return o
}

// Scan calls visit(q, g0, scores) for every block: scores holds the inner
// products of query q with gallery rows g0…g0+len(scores)−1. queries (Q, D)
// and gallery (G, D) are row-major host arrays. visit runs on up to
// o.Threads goroutines, never twice at once for the same query.
func Scan(b backend.Backend, queries []float32, q int, gallery []float32, gn, d int, o SearchOptions, visit func(q, g0 int, scores []float32)) error {
	if len(queries) != q*d || len(gallery) != gn*d {
		return fmt.Errorf("retrieval: queries hold %d values for %d×%d, gallery %d for %d×%d", len(queries), q, d, len(gallery), gn, d)
	}
	o = o.withDefaults(q)
	scoreBuf := make([]float32, min(q, o.QueryBlock)*min(gn, o.GalleryBlock))
	// A backend whose tensors are Go memory writes the scores in place.
	h, host := b.(backend.HostMemory)
	host = host && h.HostMemory()
	for g0 := 0; g0 < gn; g0 += o.GalleryBlock {
		gb := min(o.GalleryBlock, gn-g0)
		galleryDev, freeGallery := backend.OnDevice(b, gallery[g0*d:(g0+gb)*d], gb, d)
		for q0 := 0; q0 < q; q0 += o.QueryBlock {
			qb := min(o.QueryBlock, q-q0)
			queryDev, freeQueries := backend.OnDevice(b, queries[q0*d:(q0+qb)*d], qb, d)
			scores := scoreBuf[:qb*gb]
			// scores (qb, gb) = queries (qb, D) · galleryᵀ (D, gb)
			gemm := backend.GemmParams{TransB: true, M: qb, N: gb, K: d, Alpha: 1}
			if host {
				b.Gemm(gemm, queryDev, galleryDev, tensor.FromSlice(scores, qb, gb))
			} else {
				scoreMem := b.Alloc(qb * gb)
				scoresDev := tensor.New(scoreMem, 0, qb, gb)
				b.Gemm(gemm, queryDev, galleryDev, scoresDev)
				b.Download(scores, scoresDev)
				b.Free(scoreMem)
			}
			freeQueries()
			var wg sync.WaitGroup
			per := (qb + o.Threads - 1) / o.Threads
			for t0 := 0; t0 < qb; t0 += per {
				wg.Add(1)
				go func(lo, hi int) {
					defer wg.Done()
					for i := lo; i < hi; i++ {
						visit(q0+i, g0, scores[i*gb:(i+1)*gb])
					}
				}(t0, min(qb, t0+per))
			}
			wg.Wait()
		}
		freeGallery()
		if err := b.Synchronize(); err != nil {
			return err
		}
	}
	return nil
}

// Search returns the k best gallery rows for each query, best first
// (ties: lower row first).
func Search(b backend.Backend, queries []float32, q int, gallery []float32, gn, d, k int, o SearchOptions) ([][]Hit, error) {
	if k < 1 {
		return nil, fmt.Errorf("retrieval: k must be at least 1, got %d", k)
	}
	if o.Allow != nil && o.Allow.Len() != gn {
		return nil, fmt.Errorf("retrieval: the allowed rows are of a gallery of %d rows, not %d", o.Allow.Len(), gn)
	}
	k = min(k, gn)
	if o.Allow != nil {
		k = min(k, o.Allow.Count())
		if k == 0 {
			return make([][]Hit, q), nil
		}
	}
	heaps := make([]TopK, q)
	for i := range heaps {
		heaps[i] = NewTopK(k)
	}
	allow := o.Allow
	if gathers(allow, gn) {
		// Few rows allowed: scan a dense copy of them (filtered.go).
		if err := searchGathered(b, queries, q, gallery, gn, d, o, heaps); err != nil {
			return nil, err
		}
		return sortedHits(heaps), nil
	}
	err := Scan(b, queries, q, gallery, gn, d, o, func(qi, g0 int, scores []float32) {
		h := &heaps[qi]
		// Most scores fall below the k-th best so far: a SIMD scan
		// skips to the next one that does not.
		floor := h.Floor()
		for j := 0; j < len(scores); j++ {
			if j += cpu.IndexNotBelow(scores[j:], floor); j == len(scores) {
				break
			}
			if allow == nil || allow.Has(g0+j) {
				h.Push(Hit{Row: g0 + j, Score: scores[j]})
				floor = h.Floor()
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return sortedHits(heaps), nil
}

// sortedHits is each heap's hits, best first.
func sortedHits(heaps []TopK) [][]Hit {
	out := make([][]Hit, len(heaps))
	for i := range heaps {
		out[i] = heaps[i].Sorted()
	}
	return out
}

// TopK keeps the k best hits offered to it in a min-heap ordered by
// (score, −row), the order Search ranks by (NaN last); exact search and
// the approximate index's scan share it.
type TopK struct {
	k int
	h []Hit
}

// NewTopK is an empty selection of the k best hits.
func NewTopK(k int) TopK { return TopK{k: k, h: make([]Hit, 0, k)} }

// Worse reports whether a ranks below b.
func Worse(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score < b.Score || a.Score != a.Score // NaN ranks last
	}
	return a.Row > b.Row
}

// Floor is the k-th best score so far (−Inf until there are k): a score
// below it cannot enter the heap.
func (t *TopK) Floor() float32 {
	if len(t.h) < t.k {
		return float32(math.Inf(-1))
	}
	return t.h[0].Score
}

// Push offers x.
func (t *TopK) Push(x Hit) {
	if len(t.h) < t.k {
		t.h = append(t.h, x)
		for i := len(t.h) - 1; i > 0; {
			p := (i - 1) / 2
			if !Worse(t.h[i], t.h[p]) {
				break
			}
			t.h[i], t.h[p] = t.h[p], t.h[i]
			i = p
		}
		return
	}
	if !Worse(t.h[0], x) {
		return
	}
	t.h[0] = x
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(t.h) && Worse(t.h[l], t.h[m]) {
			m = l
		}
		if r < len(t.h) && Worse(t.h[r], t.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}

// Sorted is the hits kept, best first.
func (t *TopK) Sorted() []Hit {
	out := append([]Hit(nil), t.h...)
	sort.Slice(out, func(i, j int) bool { return Worse(out[j], out[i]) })
	return out
}
