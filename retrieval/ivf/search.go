package ivf

// Batched search: plan each query's lists, invert the plan into each
// list's queries, scan every list once with a GEMM.

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/retrieval"
)

// SearchOptions tune a search; zero values take the defaults.
type SearchOptions struct {
	// NProbe is the number of lists scanned per query. 0: the smallest
	// nprobe whose calibrated recall@10 reaches Recall.
	NProbe int
	// Recall is the recall@10 target that chooses nprobe when NProbe is 0
	// (default DefaultRecall; see Index.NProbe).
	Recall float64
	// Allow, when set, holds the rows a search may return (of the index's
	// Len). Lists with no allowed row are skipped and do not count
	// towards nprobe; a query scans further lists until its scanned lists
	// hold k allowed rows; and when the allowed rows are fewer than the
	// lists would scan (a selective filter), the search is exact over
	// them. A filter therefore costs no recall: the rows it keeps are
	// searched as an index of those rows alone would search them.
	Allow *retrieval.Bitset
	// Exact makes the search exact (every list, or the allowed rows; for
	// a compressed index, exact search of Rows).
	Exact bool
	// Rows are the gallery's exact rows (Len, Dim), row-major, by row
	// number: a compressed index (Storage FP16 or INT8) needs them to
	// re-rank its candidates; an FP32 index ignores them.
	Rows []float32
	// Refine is the candidates per result a compressed index re-ranks:
	// k·Refine (default DefaultRefine).
	Refine int
	// QueryBlock is the queries planned and scanned together (default
	// 4096): the memory of a search grows with it.
	QueryBlock int
	// Threads for the scans and selections (default GOMAXPROCS); the
	// backend's GEMMs use the backend's own threads.
	Threads int
}

// Search returns the k best rows for each query (nq, Dim), best first
// (ties: lower row first), of the rows in its nprobe nearest lists (and
// further ones when those hold fewer than k rows).
func (ix *Index) Search(b backend.Backend, queries []float32, nq, k int, o SearchOptions) ([][]retrieval.Hit, error) {
	if k < 1 {
		return nil, fmt.Errorf("ivf: k must be at least 1, got %d", k)
	}
	if nq < 0 || len(queries) != nq*ix.dim {
		return nil, fmt.Errorf("ivf: %d query values for %d queries of dimension %d", len(queries), nq, ix.dim)
	}
	if ix.n == 0 {
		return nil, errors.New("ivf: the index is empty")
	}
	if o.Allow != nil && o.Allow.Len() != ix.n {
		return nil, fmt.Errorf("ivf: the allowed rows are of a gallery of %d rows, not %d", o.Allow.Len(), ix.n)
	}
	if o.NProbe < 0 {
		return nil, fmt.Errorf("ivf: nprobe %d, want at least 1 (or 0 for the default)", o.NProbe)
	}
	if o.Recall < 0 || o.Recall > 1 {
		return nil, fmt.Errorf("ivf: recall target %g, want 0…1", o.Recall)
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	if o.QueryBlock <= 0 {
		o.QueryBlock = 4096
	}
	if o.Refine < 0 {
		return nil, fmt.Errorf("ivf: refine %d, want at least 1 (or 0 for the default)", o.Refine)
	}
	if o.Refine == 0 {
		o.Refine = DefaultRefine
	}
	if ix.storage.Compressed() && len(o.Rows) != ix.n*ix.dim {
		return nil, fmt.Errorf("ivf: a %s index re-ranks with the gallery's rows: %d values given for %d rows of dimension %d", ix.storage, len(o.Rows), ix.n, ix.dim)
	}
	L := len(ix.lists)
	out := make([][]retrieval.Hit, nq)
	allowedRows := -1
	if o.Allow != nil {
		allowedRows = o.Allow.Count()
		if allowedRows == 0 {
			for i := range out {
				out[i] = []retrieval.Hit{}
			}
			return out, nil
		}
	}
	nprobe, exact := ix.probes(k, allowedRows, o)
	if exact && ix.storage.Compressed() {
		return retrieval.Search(b, queries, nq, o.Rows, ix.n, ix.dim, k, retrieval.SearchOptions{Allow: o.Allow, Threads: o.Threads})
	}
	if exact && o.Allow != nil {
		return ix.searchAllowed(b, queries, nq, k, o)
	}
	// A compressed index keeps k·Refine candidates for the re-ranking.
	keep := k
	if ix.storage.Compressed() {
		keep = k * o.Refine
	}
	var allowed []int32 // per list: allowed rows (nil: no filter)
	var deeper func(int) int
	if o.Allow != nil {
		allowed = ix.allowedPerList(o.Allow, o.Threads)
		if len(ix.calib) > 0 {
			target := ix.target(o)
			deeper = func(depth int) int { return ix.nprobeAt(target, depth) }
		}
	}
	if nprobe == L {
		// Every list: skip the planning.
		for q0 := 0; q0 < nq; q0 += o.QueryBlock {
			qb := min(o.QueryBlock, nq-q0)
			p := &plan{nq: qb, lists: make([][]int32, L)}
			all := make([]int32, qb)
			for i := range all {
				all[i] = int32(i)
			}
			for l := range p.lists {
				p.lists[l] = all
			}
			qs := queries[q0*ix.dim : (q0+qb)*ix.dim]
			hs, err := ix.scan(b, qs, p, keep, o)
			if err != nil {
				return nil, err
			}
			if keep > k {
				ix.rerank(qs, hs, o.Rows, k, o.Threads)
			}
			copy(out[q0:], hs)
		}
		return out, nil
	}
	for q0 := 0; q0 < nq; q0 += o.QueryBlock {
		qb := min(o.QueryBlock, nq-q0)
		qs := queries[q0*ix.dim : (q0+qb)*ix.dim]
		p, err := ix.plan(b, qs, qb, nprobe, k, allowed, deeper, o.Threads)
		if err != nil {
			return nil, err
		}
		hs, err := ix.scan(b, qs, p, keep, o)
		if err != nil {
			return nil, err
		}
		if keep > k {
			ix.rerank(qs, hs, o.Rows, k, o.Threads)
		}
		copy(out[q0:], hs)
	}
	return out, nil
}

// probes is the nprobe of a search for k rows, with c allowed rows (−1:
// no filter), and whether the search is exact instead (every list, or the
// allowed rows).
func (ix *Index) probes(k, c int, o SearchOptions) (nprobe int, exact bool) {
	L := len(ix.lists)
	if o.Exact {
		return L, true
	}
	target := ix.target(o)
	nprobe = o.NProbe
	if nprobe == 0 {
		nprobe = ix.nprobeAt(target, max(k, 10))
	}
	nprobe = min(nprobe, L)
	if c < 0 {
		return nprobe, nprobe == L
	}
	// The k nearest allowed rows are about the k·n/c nearest rows: as
	// many lists as reach those at the same recall.
	depth := int(min(float64(ix.n), float64(max(k, 10))*float64(ix.n)/float64(c)))
	if len(ix.calib) > 0 {
		nprobe = max(nprobe, ix.nprobeAt(target, depth))
	} else {
		nprobe = int(min(float64(L), float64(nprobe)*float64(ix.n)/float64(c)))
	}
	// A selective filter: the allowed rows are fewer than nprobe average
	// lists hold, so scanning them all is cheaper, and exact.
	return nprobe, int64(c)*int64(L) <= int64(nprobe)*int64(ix.n)
}

// target is the recall a search aims at: o.Recall (DefaultRecall if 0),
// or, when o names nprobe, the calibrated recall@10 of that nprobe.
func (ix *Index) target(o SearchOptions) float64 {
	if o.NProbe > 0 && len(ix.calib) > 0 {
		return ix.Recall(o.NProbe)
	}
	if o.Recall == 0 {
		return DefaultRecall
	}
	return o.Recall
}

// plan is which queries of a block scan each list.
type plan struct {
	nq    int
	lists [][]int32 // lists[l]: the queries (of the block) that scan list l, increasing
}

// plan chooses each query's lists: the nprobe of largest centroid score
// (among lists with an allowed row, when allowed is set; more when few of
// the rows near the query are allowed: deeper(depth) is the nprobe that
// reaches the depth nearest rows), then more in the same order until they
// hold k (allowed) rows.
func (ix *Index) plan(b backend.Backend, qs []float32, nq, nprobe, k int, allowed []int32, deeper func(depth int) int, threads int) (*plan, error) {
	L, d := len(ix.lists), ix.dim
	scores := make([]float32, nq*L)
	// scores (nq, L) = queries (nq, d) · centroidsᵀ (d, L)
	if err := gemmNT(b, qs, nq, ix.centroids, L, d, scores); err != nil {
		return nil, err
	}
	size := func(l int32) int {
		if allowed != nil {
			return int(allowed[l])
		}
		return len(ix.lists[l].rows)
	}
	// Each query's lists, in a flat array with a count per query.
	width := min(L, nprobe+nprobe/2+8) // candidates taken by partial selection
	chosen := make([]int32, nq*width)
	extra := make([][]int32, nq) // when width lists are not enough
	used := make([]int32, nq)
	parallel(nq, threads, func(lo, hi int) {
		top := make([]int32, 0, width)
		var all []int32
		var buf []scored
		for qi := lo; qi < hi; qi++ {
			sc := scores[qi*L : (qi+1)*L]
			if allowed == nil {
				// The nprobe best lists, in no order, unless they hold
				// fewer than k rows.
				top, buf = bestLists(sc, nprobe, top[:0], buf)
				rows := 0
				for _, l := range top {
					rows += len(ix.lists[l].rows)
				}
				if rows >= k {
					copy(chosen[qi*width:], top)
					used[qi] = int32(len(top))
					continue
				}
			}
			top, buf = topLists(sc, width, top[:0], buf)
			dst := chosen[qi*width : (qi+1)*width]
			probes, rows, n := 0, 0, 0
			need := nprobe
			if allowed != nil && deeper != nil {
				// The allowed fraction of the rows near this query (in
				// its nprobe nearest lists) sets the depth its k nearest
				// allowed rows lie at: a category away from the query
				// needs more lists than the filter's overall share says.
				near, ok := 0, 0
				for _, l := range top[:min(nprobe, len(top))] {
					near += len(ix.lists[l].rows)
					ok += int(allowed[l])
				}
				need = max(need, deeper(max(k, 10)*near/max(ok, 1)))
			}
			take := func(l int32) bool { // l has rows; is the plan complete with it?
				probes++
				rows += size(l)
				return probes >= need && rows >= k
			}
			done := false
			for _, l := range top {
				if size(l) == 0 {
					continue
				}
				dst[n] = l
				n++
				if take(l) {
					done = true
					break
				}
			}
			used[qi] = int32(n)
			if done || len(top) == L {
				continue
			}
			// Rare: the filter leaves the nearest lists (nearly) empty.
			all, buf = topLists(sc, L, all[:0], buf)
			var ext []int32
			for _, l := range all[len(top):] {
				if size(l) == 0 {
					continue
				}
				ext = append(ext, l)
				if take(l) {
					break
				}
			}
			extra[qi] = ext
		}
	})
	// Invert: the queries of each list, in query order.
	counts := make([]int32, L)
	for qi := 0; qi < nq; qi++ {
		for _, l := range chosen[qi*width : qi*width+int(used[qi])] {
			counts[l]++
		}
		for _, l := range extra[qi] {
			counts[l]++
		}
	}
	p := &plan{nq: nq, lists: make([][]int32, L)}
	var total int32
	for _, c := range counts {
		total += c
	}
	flat := make([]int32, total)
	var off int32
	for l, c := range counts {
		p.lists[l] = flat[off : off : off+c]
		off += c
	}
	for qi := 0; qi < nq; qi++ {
		for _, l := range chosen[qi*width : qi*width+int(used[qi])] {
			p.lists[l] = append(p.lists[l], int32(qi))
		}
		for _, l := range extra[qi] {
			p.lists[l] = append(p.lists[l], int32(qi))
		}
	}
	return p, nil
}

// scored is a list and its centroid's score for one query.
type scored struct {
	s float32 // NaN read as −Inf
	l int32
}

// better ranks by score, then lower list first.
func better(a, b scored) bool {
	if a.s != b.s {
		return a.s > b.s
	}
	return a.l < b.l
}

func cmpScored(a, b scored) int {
	if better(a, b) {
		return -1
	}
	if better(b, a) {
		return 1
	}
	return 0
}

// bestLists appends to dst the m lists of largest score, in no order
// (ties: lower list first), with buf as scratch (returned for reuse).
func bestLists(sc []float32, m int, dst []int32, buf []scored) ([]int32, []scored) {
	buf = buf[:0]
	for l, s := range sc {
		if s != s {
			s = float32(math.Inf(-1))
		}
		buf = append(buf, scored{s, int32(l)})
	}
	if m < len(buf) {
		selectTop(buf, m)
		buf = buf[:m]
	}
	for _, x := range buf {
		dst = append(dst, x.l)
	}
	return dst, buf
}

// topLists appends to dst the m lists of largest score, best first (ties:
// lower list first), with buf as scratch (returned for reuse).
func topLists(sc []float32, m int, dst []int32, buf []scored) ([]int32, []scored) {
	n := len(dst)
	dst, buf = bestLists(sc, m, dst, buf)
	slices.SortFunc(buf, cmpScored)
	for i, x := range buf {
		dst[n+i] = x.l
	}
	return dst, buf
}

// selectTop reorders x so that its first m elements are the m best
// (quickselect, median-of-three pivots).
func selectTop(x []scored, m int) {
	lo, hi := 0, len(x)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three to x[mid].
		if better(x[mid], x[lo]) {
			x[mid], x[lo] = x[lo], x[mid]
		}
		if better(x[hi], x[lo]) {
			x[hi], x[lo] = x[lo], x[hi]
		}
		if better(x[hi], x[mid]) {
			x[hi], x[mid] = x[mid], x[hi]
		}
		pivot := x[mid]
		i, j := lo, hi
		for i <= j {
			for better(x[i], pivot) {
				i++
			}
			for better(pivot, x[j]) {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		// x[lo..j] ≥ pivot ≥ x[i..hi] (in rank); the m-th is on one side.
		switch {
		case m-1 <= j:
			hi = j
		case m-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// scanChunk bounds the queries of one list's GEMM (its scores are
// scanChunk × list rows).
const scanChunk = 256

// scan runs a plan: workers take lists from a counter; for each list, the
// GEMM of its queries against its rows, then each query's scores go to
// that query's selection (under the query's lock: two lists of one query
// may be scanned at once).
func (ix *Index) scan(b backend.Backend, qs []float32, p *plan, k int, o SearchOptions) ([][]retrieval.Hit, error) {
	d := ix.dim
	heaps := make([]retrieval.TopK, p.nq)
	locks := make([]sync.Mutex, p.nq)
	for i := range heaps {
		heaps[i] = retrieval.NewTopK(k)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var scanErr error
	fail := func(err error) {
		errOnce.Do(func() { scanErr = err })
		next.Store(int64(len(ix.lists))) // the other workers stop too
	}
	allow := o.Allow
	for range max(1, o.Threads) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var qbuf, sbuf, vbuf []float32
			for {
				l := int(next.Add(1) - 1)
				if l >= len(ix.lists) {
					return
				}
				ql, lst := p.lists[l], &ix.lists[l]
				m := len(lst.rows)
				if len(ql) == 0 || m == 0 {
					continue
				}
				var vecs []float32
				vecs, vbuf = lst.vectors(d, vbuf)
				for c0 := 0; c0 < len(ql); c0 += scanChunk {
					chunk := ql[c0:min(len(ql), c0+scanChunk)]
					qbuf = grow(qbuf, len(chunk)*d)
					for i, qi := range chunk {
						copy(qbuf[i*d:(i+1)*d], qs[int(qi)*d:int(qi+1)*d])
					}
					sbuf = grow(sbuf, len(chunk)*m)
					if len(chunk) < gemmQueries {
						dots(qbuf, len(chunk), vecs, m, d, sbuf)
					} else if err := gemmNT(b, qbuf, len(chunk), vecs, m, d, sbuf); err != nil {
						// scores (chunk, m) = queries (chunk, d) · list rowsᵀ (d, m)
						fail(err)
						return
					}
					for i, qi := range chunk {
						sc := sbuf[i*m : (i+1)*m]
						locks[qi].Lock()
						h := &heaps[qi]
						// Most scores fall below the k-th best so far: a
						// SIMD scan skips to the next one that does not.
						floor := h.Floor()
						rs := lst.rows[:len(sc)]
						for j := 0; j < len(sc); j++ {
							if j += cpu.IndexNotBelow(sc[j:], floor); j == len(sc) {
								break
							}
							if r := rs[j]; allow == nil || allow.Has(int(r)) {
								h.Push(retrieval.Hit{Row: int(r), Score: sc[j]})
								floor = h.Floor()
							}
						}
						locks[qi].Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	if scanErr != nil {
		return nil, scanErr
	}
	out := make([][]retrieval.Hit, p.nq)
	for i := range heaps {
		out[i] = heaps[i].Sorted()
	}
	return out, nil
}

// gemmQueries is the fewest queries of a list scanned by a GEMM; fewer
// take dot products (a GEMM packs the list's rows first, which one query
// does not repay).
const gemmQueries = 4

// dots is c (m, n) = a (m, k) · bᵀ (k, n) as m·n dot products.
func dots(a []float32, m int, bm []float32, n, k int, c []float32) {
	for i := 0; i < m; i++ {
		q := a[i*k : (i+1)*k]
		for j := 0; j < n; j++ {
			c[i*n+j] = dot(q, bm[j*k:(j+1)*k])
		}
	}
}

// dot is Σ a[i]·b[i] (four partial sums, float32).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// allowedPerList counts the allowed rows of each list.
func (ix *Index) allowedPerList(allow *retrieval.Bitset, threads int) []int32 {
	out := make([]int32, len(ix.lists))
	parallel(len(ix.lists), threads, func(lo, hi int) {
		for l := lo; l < hi; l++ {
			var c int32
			for _, r := range ix.lists[l].rows {
				if allow.Has(int(r)) {
					c++
				}
			}
			out[l] = c
		}
	})
	return out
}

// searchAllowed is exact search over the c allowed rows: gathered in row
// order into one matrix and searched by retrieval.Search, so the results
// are those of exact search of the whole gallery with the filter.
func (ix *Index) searchAllowed(b backend.Backend, queries []float32, nq, k int, o SearchOptions) ([][]retrieval.Hit, error) {
	d, c := ix.dim, o.Allow.Count()
	type ref struct {
		row, list, pos int32
	}
	refs := make([]ref, 0, c)
	for l, lst := range ix.lists {
		for j, r := range lst.rows {
			if o.Allow.Has(int(r)) {
				refs = append(refs, ref{r, int32(l), int32(j)})
			}
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].row < refs[j].row })
	g := make([]float32, len(refs)*d)
	for i, f := range refs {
		copy(g[i*d:(i+1)*d], ix.lists[f.list].vecs[int(f.pos)*d:int(f.pos+1)*d])
	}
	hits, err := retrieval.Search(b, queries, nq, g, len(refs), d, k, retrieval.SearchOptions{Threads: o.Threads})
	if err != nil {
		return nil, err
	}
	for _, hs := range hits {
		for j := range hs {
			hs[j].Row = int(refs[hs[j].Row].row)
		}
	}
	return hits, nil
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
