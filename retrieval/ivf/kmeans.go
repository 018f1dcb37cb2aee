package ivf

// Spherical k-means and the nearest-centroid assignment, both as GEMMs.

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/tensor"
)

// assignBlock is the rows per GEMM of an assignment pass: the scores of a
// block (assignBlock, L) are a few MiB for L in the thousands.
const assignBlock = 1024

// gemmNT computes c (m, n) = a (m, k) · bᵀ (k, n) on b, a and bm (n, k)
// row-major host arrays. On a backend whose tensors are host memory the
// arrays are used in place.
func gemmNT(b backend.Backend, a []float32, m int, bm []float32, n, k int, c []float32) error {
	if m == 0 || n == 0 {
		return nil
	}
	p := backend.GemmParams{TransB: true, M: m, N: n, K: k, Alpha: 1}
	if h, ok := b.(backend.HostMemory); ok && h.HostMemory() {
		b.Gemm(p, tensor.FromSlice(a, m, k), tensor.FromSlice(bm, n, k), tensor.FromSlice(c[:m*n], m, n))
		return nil
	}
	at, freeA := backend.OnDevice(b, a, m, k)
	defer freeA()
	bt, freeB := backend.OnDevice(b, bm, n, k)
	defer freeB()
	cs := b.Alloc(m * n)
	defer b.Free(cs)
	ct := tensor.New(cs, 0, m, n)
	b.Gemm(p, at, bt, ct)
	b.Download(c[:m*n], ct)
	return b.Synchronize()
}

// argmaxRows writes, for each row i of scores (m, n), the column of its
// largest value (the lowest such column on ties; NaN never wins) and that
// value, on up to threads goroutines.
func argmaxRows(scores []float32, m, n int, idx []int32, best []float32, threads int) {
	parallel(m, threads, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := scores[i*n : (i+1)*n]
			bi, bv := 0, float32(math.Inf(-1))
			for j, v := range row {
				if v > bv {
					bi, bv = j, v
				}
			}
			idx[i] = int32(bi)
			if best != nil {
				best[i] = bv
			}
		}
	})
}

// parallel runs f over [0, n) split into about 4·threads ranges on up to
// threads goroutines.
func parallel(n, threads int, f func(lo, hi int)) {
	if threads <= 1 || n < 2 {
		f(0, n)
		return
	}
	parts := min(n, 4*threads)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(threads, parts) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				p := next
				next++
				mu.Unlock()
				if p >= parts {
					return
				}
				f(p*n/parts, (p+1)*n/parts)
			}
		}()
	}
	wg.Wait()
}

// nearest assigns each of the n rows (n, d) to the centroid (L, d) of
// largest inner product, with that product in best (when not nil).
func nearest(b backend.Backend, rows []float32, n int, cent []float32, L, d int, idx []int32, best []float32, threads int) error {
	scores := make([]float32, min(n, assignBlock)*L)
	for r0 := 0; r0 < n; r0 += assignBlock {
		m := min(assignBlock, n-r0)
		// scores (m, L) = rows (m, d) · centroidsᵀ (d, L)
		if err := gemmNT(b, rows[r0*d:(r0+m)*d], m, cent, L, d, scores); err != nil {
			return err
		}
		var bs []float32
		if best != nil {
			bs = best[r0 : r0+m]
		}
		argmaxRows(scores, m, L, idx[r0:r0+m], bs, threads)
	}
	return nil
}

// assign is nearest against the index's centroids.
func (ix *Index) assign(b backend.Backend, rows []float32, n, threads int) ([]int32, error) {
	idx := make([]int32, n)
	err := nearest(b, rows, n, ix.centroids, len(ix.lists), ix.dim, idx, nil, threads)
	return idx, err
}

// samplePerm is m distinct numbers of 0…n−1, a seeded random choice, in
// increasing order.
func samplePerm(n, m int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 0x1f))
	if m >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	// Floyd's algorithm: m draws, no O(n) permutation.
	chosen := make(map[int]struct{}, m)
	out := make([]int, 0, m)
	for j := n - m; j < n; j++ {
		t := r.IntN(j + 1)
		if _, ok := chosen[t]; ok {
			t = j
		}
		chosen[t] = struct{}{}
		out = append(out, t)
	}
	sort.Ints(out)
	return out
}

// trainKMeans runs spherical k-means (centroids kept at unit length, rows
// assigned by inner product) on a sample of c.TrainRows rows and returns
// the c.Lists centroids (L, d). The initial centroids are distinct sample
// rows; a centroid left without rows takes the sample row farthest from
// its own centroid.
func trainKMeans(b backend.Backend, rows []float32, n, d int, c Config) ([]float32, error) {
	L := c.Lists
	pick := samplePerm(n, c.TrainRows, c.Seed)
	t := len(pick)
	x := make([]float32, t*d)
	for i, r := range pick {
		copy(x[i*d:], rows[r*d:(r+1)*d])
	}
	retrieval.Normalize(x, d)
	cent := make([]float32, L*d)
	r := rand.New(rand.NewPCG(c.Seed, 0x2f))
	for i, j := range r.Perm(t)[:L] {
		copy(cent[i*d:], x[j*d:(j+1)*d])
	}
	idx := make([]int32, t)
	best := make([]float32, t)
	sums := make([]float64, L*d)
	counts := make([]int, L)
	for it := 0; it < c.Iters; it++ {
		if err := nearest(b, x, t, cent, L, d, idx, best, c.Threads); err != nil {
			return nil, err
		}
		clear(sums)
		clear(counts)
		for i, a := range idx {
			counts[a]++
			s := sums[int(a)*d : int(a+1)*d]
			for j, v := range x[i*d : (i+1)*d] {
				s[j] += float64(v)
			}
		}
		var empty []int
		for l := 0; l < L; l++ {
			if counts[l] == 0 {
				empty = append(empty, l)
				continue
			}
			s := sums[l*d : (l+1)*d]
			var ss float64
			for _, v := range s {
				ss += v * v
			}
			if nrm := math.Sqrt(ss); nrm > 0 {
				for j, v := range s {
					cent[l*d+j] = float32(v / nrm)
				}
			}
		}
		if len(empty) > 0 {
			// The rows least like their centroid seed the empty ones.
			far := make([]int, t)
			for i := range far {
				far[i] = i
			}
			sort.Slice(far, func(a, b int) bool {
				if best[far[a]] != best[far[b]] {
					return best[far[a]] < best[far[b]]
				}
				return far[a] < far[b]
			})
			for i, l := range empty {
				copy(cent[l*d:(l+1)*d], x[far[i]*d:(far[i]+1)*d])
			}
		}
	}
	return cent, nil
}

// exactTopK is exact search (retrieval.Search) of q queries among n rows.
func exactTopK(b backend.Backend, qs []float32, q int, rows []float32, n, d, k, threads int) ([][]retrieval.Hit, error) {
	return retrieval.Search(b, qs, q, rows, n, d, k, retrieval.SearchOptions{Threads: threads})
}
