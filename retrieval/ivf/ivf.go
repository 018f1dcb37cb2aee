// Package ivf is an inverted-file index for approximate cosine (inner
// product) search in galleries too large for exact search: the rows are
// split among L lists by spherical k-means, and a query scans only the
// lists of its nprobe nearest centroids.
//
//	L = lists (default 4·√N, as faiss's usual choice), D = dimension,
//	Q = queries, P = nprobe (lists scanned per query)
//
// Everything heavy is the backend's GEMM: k-means assigns its training
// rows with (rows, D)·centroidsᵀ(D, L) products, a batch of queries finds
// its lists with one (Q, D)·(D, L) product, and each list is scanned once
// per batch as (the queries probing it, D)·(list rows, D)ᵀ, so a batch of
// thousands of queries runs as GEMMs of useful sizes rather than as dot
// products. A list's rows are stored together (a copy of the gallery in
// list order), so its scan reads contiguous memory.
//
// Why IVF rather than HNSW: measured side by side with faiss (IndexHNSWFlat,
// IndexIVFFlat) and hnswlib, HNSW with M = 32 and efConstruction = 200, on
// the 2-core machine of BENCHMARKS.md ("Approximate search", `tools/bench
// -anchors ann`), 100,000 rows of the benchmark's data. That data (a row is
// one of N/100 centres plus noise four times the centre's length) has
// little structure, and a graph search must visit much of the gallery one
// row at a time: faiss HNSW reached recall@10 0.95 at about 150 queries/s
// on one core, hnswlib never within its sweep (0.94 at ef 512, 357
// queries/s), both far slower than exact search (faiss IndexFlatIP: 4,800
// queries/s), after builds of 981 s (faiss) and 92 s (hnswlib). IVF scans
// contiguous lists with GEMMs: recall 0.95 at some 5,000 queries/s on one
// core, built in 3 s, rows added in tens of microseconds, 4 bytes a row
// beside the rows themselves (a graph holds 2·M links, 256 bytes), and a
// filter (removed rows, a category) needs no graph connectivity: the k best
// allowed rows of the probed lists are found exactly. On data with
// clusters, as a trained model's embeddings have, IVF scans a small
// fraction of the lists (the test corpus reaches recall 0.95 with 4 of
// 566).
//
// A list probed by fewer than gemmQueries queries of a batch (one query at
// a time, say) is scanned with plain dot products instead: a GEMM would
// first pack the list's rows, which one query does not repay.
//
// Rows are numbered in the order they are added (Build's rows 0…N−1, then
// Add's): the same numbers as the gallery the caller keeps, so a Hit's Row
// and a SearchOptions.Allow bit mean the same row everywhere.
//
// Concurrency: Search may run on many goroutines at once; Add must not run
// while another method runs on the same Index. Snapshot gives an Index
// that later Adds to the original leave unchanged, for readers that must
// not wait for writers.
package ivf

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/retrieval"
)

// Config are the build parameters; zero values take the defaults.
type Config struct {
	// Lists is the number of inverted lists (k-means centroids).
	// Default 4·√N, at least 1 and at most N.
	Lists int
	// TrainRows is how many rows (a seeded sample) train k-means.
	// Default min(N, 48·Lists).
	TrainRows int
	// Iters is the number of k-means iterations (default 12).
	Iters int
	// Seed makes the sample and the initial centroids (default 1).
	Seed uint64
	// CalibrationQueries is how many rows (another sample) estimate the
	// recall of each nprobe after the build (default min(N, 500); see
	// Index.Recall). Negative: no calibration.
	CalibrationQueries int
	// Threads for the Go loops beside the GEMMs (default GOMAXPROCS).
	Threads int
	// Storage is how the lists hold their rows (default FP32; see
	// Storage).
	Storage Storage
}

func (c Config) withDefaults(n int) Config {
	if c.Lists <= 0 {
		c.Lists = int(math.Round(4 * math.Sqrt(float64(n))))
	}
	c.Lists = max(1, min(c.Lists, n))
	if c.TrainRows <= 0 {
		c.TrainRows = 48 * c.Lists
	}
	c.TrainRows = max(c.Lists, min(c.TrainRows, n))
	if c.Iters <= 0 {
		c.Iters = 12
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.CalibrationQueries == 0 {
		c.CalibrationQueries = 500
	}
	c.CalibrationQueries = min(c.CalibrationQueries, n)
	if c.Storage == "" {
		c.Storage = FP32
	}
	if c.Threads <= 0 {
		c.Threads = runtime.GOMAXPROCS(0)
	}
	return c
}

// ExactBelow is the gallery size under which exact search
// (retrieval.Search) is the better choice: on the benchmark's data IVF at
// recall 0.95 was 1.3× as fast as exact search at 20,000 rows and 2.2× at
// 100,000 (BENCHMARKS.md), and exact search needs no index to keep.
const ExactBelow = 50000

// MaxRows is the largest number of rows an index holds (row numbers are
// stored as int32).
const MaxRows = math.MaxInt32

// Index is an inverted-file index of float32 rows of dimension Dim.
type Index struct {
	dim       int
	n         int // rows held: numbered 0…n−1
	storage   Storage
	centroids []float32 // (L, dim), unit rows
	lists     []list
	// calib[i][p−1] is the recall@calibDepths[i] estimated at build for
	// nprobe p (nil without calibration).
	calib [][]float32
}

// list is one inverted list: its rows' numbers and their vectors, in the
// order added, in one of three forms (the index's Storage).
type list struct {
	rows   []int32   // (m)
	vecs   []float32 // (m, dim): FP32
	half   []uint16  // (m, dim): FP16, binary16 bits
	codes  []int8    // (m, dim): INT8, row j is codes[j·dim:]·scales[j]
	scales []float32 // (m): INT8
}

// Dim is the rows' dimension.
func (ix *Index) Dim() int { return ix.dim }

// Len is the number of rows held.
func (ix *Index) Len() int { return ix.n }

// Lists is the number of inverted lists.
func (ix *Index) Lists() int { return len(ix.lists) }

// ListSizes are the rows in each list.
func (ix *Index) ListSizes() []int {
	out := make([]int, len(ix.lists))
	for i, l := range ix.lists {
		out[i] = len(l.rows)
	}
	return out
}

// Storage is how the lists hold their rows.
func (ix *Index) Storage() Storage { return ix.storage }

// Bytes is the memory the index holds: rows, row numbers, centroids and
// calibration, with the spare capacity of the lists.
func (ix *Index) Bytes() int64 {
	s := int64(len(ix.centroids))*4 + int64(len(ix.calib)*len(ix.lists))*4 + int64(len(ix.lists))*(24*5)
	for _, l := range ix.lists {
		s += int64(cap(l.rows))*4 + int64(cap(l.vecs))*4 + int64(cap(l.half))*2 + int64(cap(l.codes)) + int64(cap(l.scales))*4
	}
	return s
}

// Snapshot is an Index that shares this one's rows and that later Adds to
// this one do not change (they append past what the snapshot sees; an Add
// to the snapshot copies the lists it touches). It costs O(Lists).
func (ix *Index) Snapshot() *Index {
	out := *ix
	out.lists = make([]list, len(ix.lists))
	for i, l := range ix.lists {
		out.lists[i] = list{
			rows:   l.rows[:len(l.rows):len(l.rows)],
			vecs:   l.vecs[:len(l.vecs):len(l.vecs)],
			half:   l.half[:len(l.half):len(l.half)],
			codes:  l.codes[:len(l.codes):len(l.codes)],
			scales: l.scales[:len(l.scales):len(l.scales)],
		}
	}
	return &out
}

// Recall is the recall@10 that nprobe lists gave at build, measured on a
// sample of the rows used as queries (their own row left out) against
// exact search; NaN when the index was built without calibration.
// Rows added since, and queries unlike the rows, may see another figure.
func (ix *Index) Recall(nprobe int) float64 {
	if len(ix.calib) == 0 {
		return math.NaN()
	}
	nprobe = max(1, min(nprobe, len(ix.lists)))
	return float64(ix.calib[0][nprobe-1])
}

// NProbe is the smallest nprobe whose calibrated recall@10 reaches
// recall (every list when none does; DefaultNProbe without calibration).
func (ix *Index) NProbe(recall float64) int { return ix.nprobeAt(recall, 10) }

// nprobeAt is the smallest nprobe whose calibrated recall of the depth
// nearest rows reaches recall, interpolated (in log depth) between the
// calibrated depths around depth, extrapolated beyond the deepest.
func (ix *Index) nprobeAt(recall float64, depth int) int {
	if len(ix.calib) == 0 {
		return min(DefaultNProbe, len(ix.lists))
	}
	at := func(i int) int {
		for p, r := range ix.calib[i] {
			if float64(r) >= recall {
				return p + 1
			}
		}
		return len(ix.lists)
	}
	if len(ix.calib) == 1 || depth <= calibDepths[0] {
		return at(0)
	}
	i := 0 // the depths i, i+1 around depth (the last two beyond them)
	for i < len(ix.calib)-2 && calibDepths[i+1] < depth {
		i++
	}
	lo, hi := float64(at(i)), float64(at(i+1))
	t := math.Log(float64(depth)/float64(calibDepths[i])) / math.Log(float64(calibDepths[i+1])/float64(calibDepths[i]))
	return int(min(float64(len(ix.lists)), math.Ceil(lo+t*(hi-lo))))
}

// Build makes an index of the n rows (n, dim) (row-major; for cosine
// search, L2-normalised): k-means on a sample, then every row to the list
// of its nearest centroid, then the recall calibration. The GEMMs run on
// b (the CPU backend in practice: the rows live in host memory).
func Build(b backend.Backend, rows []float32, n, dim int, c Config) (*Index, error) {
	if err := checkRows(rows, n, dim); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, errors.New("ivf: no rows to build an index from")
	}
	if n > MaxRows {
		return nil, fmt.Errorf("ivf: %d rows, at most %d", n, MaxRows)
	}
	c = c.withDefaults(n)
	if err := c.Storage.check(); err != nil {
		return nil, err
	}
	cent, err := trainKMeans(b, rows, n, dim, c)
	if err != nil {
		return nil, err
	}
	ix := &Index{dim: dim, storage: c.Storage, centroids: cent, lists: make([]list, c.Lists)}
	assign, err := ix.assign(b, rows, n, c.Threads)
	if err != nil {
		return nil, err
	}
	// Size each list once, then fill it.
	counts := make([]int, c.Lists)
	for _, a := range assign {
		counts[a]++
	}
	for i := range ix.lists {
		ix.lists[i] = ix.newList(counts[i])
	}
	for r, a := range assign {
		ix.lists[a].add(ix.storage, int32(r), rows[r*dim:(r+1)*dim])
	}
	ix.n = n
	if c.CalibrationQueries > 0 {
		if ix.calib, err = calibrate(b, ix, rows, assign, c); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// Add appends m rows (m, dim), numbered Len()…Len()+m−1, each to the list
// of its nearest centroid.
func (ix *Index) Add(b backend.Backend, rows []float32, m int) error {
	if err := checkRows(rows, m, ix.dim); err != nil {
		return err
	}
	if ix.n+m > MaxRows {
		return fmt.Errorf("ivf: %d rows, at most %d", ix.n+m, MaxRows)
	}
	assign, err := ix.assign(b, rows, m, runtime.GOMAXPROCS(0))
	if err != nil {
		return err
	}
	for r, a := range assign {
		ix.lists[a].add(ix.storage, int32(ix.n+r), rows[r*ix.dim:(r+1)*ix.dim])
	}
	ix.n += m
	return nil
}

// Compact is the index of the rows keep holds (of Len rows), renumbered
// in order: row r becomes the number of kept rows before it, as when a
// catalog drops its removed rows. The lists, centroids and calibration
// stay; nothing is retrained.
func (ix *Index) Compact(keep *retrieval.Bitset) (*Index, error) {
	if keep == nil || keep.Len() != ix.n {
		return nil, fmt.Errorf("ivf: Compact needs a set of the index's %d rows", ix.n)
	}
	// newRow[r]: r's number among the kept rows (−1: dropped).
	newRow := make([]int32, ix.n)
	next := int32(0)
	for r := range newRow {
		newRow[r] = -1
		if keep.Has(r) {
			newRow[r] = next
			next++
		}
	}
	out := &Index{dim: ix.dim, n: int(next), storage: ix.storage, centroids: ix.centroids, calib: ix.calib, lists: make([]list, len(ix.lists))}
	d := ix.dim
	for l, lst := range ix.lists {
		m := 0
		for _, r := range lst.rows {
			if newRow[r] >= 0 {
				m++
			}
		}
		nl := out.newList(m)
		for j, r := range lst.rows {
			if nr := newRow[r]; nr >= 0 {
				nl.copyRow(&lst, j, d, nr)
			}
		}
		out.lists[l] = nl
	}
	return out, nil
}

// checkRows validates rows (n, dim): sizes and finite values.
func checkRows(rows []float32, n, dim int) error {
	if dim < 1 {
		return fmt.Errorf("ivf: dimension %d, want at least 1", dim)
	}
	if n < 0 || len(rows) != n*dim {
		return fmt.Errorf("ivf: %d values for %d rows of dimension %d", len(rows), n, dim)
	}
	for i, v := range rows {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("ivf: row %d holds %v", i/dim, v)
		}
	}
	return nil
}

// DefaultNProbe is the nprobe of an index without calibration.
const DefaultNProbe = 32

// DefaultRecall is the recall@10 target a search aims at when its options
// name neither NProbe nor Recall.
const DefaultRecall = 0.95

// calibDepths are the neighbour depths calibrated: recall@10 for plain
// searches, the deeper ones for filtered searches (the k nearest of the
// rows a filter keeping a fraction f allows are about the k/f nearest of
// all rows, and lie in more lists).
var calibDepths = []int{10, 30, 100, 300, 1000}

// calibrate estimates recall@depth against nprobe: sample rows serve as
// queries, exact search over all rows gives their nearest other rows, and
// a neighbour is found with nprobe p when its list is among the query's p
// nearest centroids (IVF then returns it: it is among the `depth` best of
// any subset holding it). calib[i][p−1] is the fraction of the
// calibDepths[i] nearest found with nprobe p; depths beyond the rows are
// left out.
func calibrate(b backend.Backend, ix *Index, rows []float32, assign []int32, c Config) ([][]float32, error) {
	n, d, L := ix.n, ix.dim, len(ix.lists)
	var depths []int
	for _, k := range calibDepths {
		if k < n {
			depths = append(depths, k)
		}
	}
	if len(depths) == 0 {
		return nil, nil
	}
	deepest := depths[len(depths)-1]
	sample := samplePerm(n, c.CalibrationQueries, c.Seed+7)
	qs := make([]float32, len(sample)*d)
	for i, r := range sample {
		copy(qs[i*d:], rows[r*d:(r+1)*d])
	}
	exact, err := exactTopK(b, qs, len(sample), rows, n, d, deepest+1, c.Threads)
	if err != nil {
		return nil, err
	}
	cs := make([]float32, len(sample)*L)
	if err := gemmNT(b, qs, len(sample), ix.centroids, L, d, cs); err != nil {
		return nil, err
	}
	// found[i][p]: neighbours within depth i whose list ranks p−1.
	found := make([][]int, len(depths))
	for i := range found {
		found[i] = make([]int, L+1)
	}
	total := make([]int, len(depths))
	rank := make([]int32, L)
	var order []int32
	var buf []scored
	for qi, self := range sample {
		order, buf = topLists(cs[qi*L:(qi+1)*L], L, order[:0], buf)
		for p, l := range order {
			rank[l] = int32(p)
		}
		got := 0
		for _, h := range exact[qi] {
			if h.Row == self || got == deepest {
				continue
			}
			pos := rank[assign[h.Row]] + 1
			for i, dep := range depths {
				if got < dep {
					found[i][pos]++
					total[i]++
				}
			}
			got++
		}
	}
	calib := make([][]float32, len(depths))
	for i := range depths {
		calib[i] = make([]float32, L)
		sum := 0
		for p := 1; p <= L; p++ {
			sum += found[i][p]
			calib[i][p-1] = float32(float64(sum) / float64(max(total[i], 1)))
		}
	}
	return calib, nil
}
