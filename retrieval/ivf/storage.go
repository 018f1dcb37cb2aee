package ivf

// Compressed lists: rows held as FP16 or INT8 codes, decoded to float32 a
// list at a time for the scan, the candidates re-ranked with the exact
// rows.

import (
	"fmt"
	"slices"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/retrieval"
)

// Storage is how an index's lists hold its rows. A compressed index
// (FP16, INT8) scans its codes for k·Refine candidates per query, then
// scores those with the exact rows the caller keeps (SearchOptions.Rows)
// and returns the k best: the returned scores are exact, and the codes
// cost recall only where a true neighbour's approximate score falls below
// k·Refine others'. A catalog keeps the exact rows anyway (its segments),
// so the lists' copy is the index's memory:
//
//	FP32  4·D + 4 bytes a row   the rows themselves; no re-ranking
//	FP16  2·D + 4               binary16, relative error below 2⁻¹¹
//	INT8    D + 8               one scale a row (max |x| / 127)
type Storage string

// The storages.
const (
	FP32 Storage = "fp32"
	FP16 Storage = "fp16"
	INT8 Storage = "int8"
)

// Storages are the storage names, as flags take them.
var Storages = []Storage{FP32, FP16, INT8}

// ParseStorage reads a storage name ("" is FP32).
func ParseStorage(s string) (Storage, error) {
	if s == "" {
		return FP32, nil
	}
	st := Storage(s)
	return st, st.check()
}

func (s Storage) check() error {
	if !slices.Contains(Storages, s) {
		return fmt.Errorf("ivf: storage %q: want %s, %s or %s", string(s), FP32, FP16, INT8)
	}
	return nil
}

// Compressed reports whether the storage needs re-ranking.
func (s Storage) Compressed() bool { return s == FP16 || s == INT8 }

// RowBytes is the memory of one row of dimension dim in the lists, its
// row number included.
func (s Storage) RowBytes(dim int) int {
	switch s {
	case FP16:
		return 2*dim + 4
	case INT8:
		return dim + 8
	}
	return 4*dim + 4
}

// DefaultRefine is the candidates a compressed index re-ranks per result
// when SearchOptions.Refine is 0.
const DefaultRefine = 4

// newList is an empty list with room for m rows in the index's storage.
func (ix *Index) newList(m int) list {
	l := list{rows: make([]int32, 0, m)}
	switch ix.storage {
	case FP16:
		l.half = make([]uint16, 0, m*ix.dim)
	case INT8:
		l.codes = make([]int8, 0, m*ix.dim)
		l.scales = make([]float32, 0, m)
	default:
		l.vecs = make([]float32, 0, m*ix.dim)
	}
	return l
}

// add appends row r, its vector v encoded as s.
func (l *list) add(s Storage, r int32, v []float32) {
	l.rows = append(l.rows, r)
	switch s {
	case FP16:
		n := len(l.half)
		l.half = slices.Grow(l.half, len(v))[:n+len(v)]
		cpu.EncodeF16(l.half[n:], v)
	case INT8:
		n := len(l.codes)
		l.codes = slices.Grow(l.codes, len(v))[:n+len(v)]
		l.scales = append(l.scales, cpu.EncodeI8(l.codes[n:], v))
	default:
		l.vecs = append(l.vecs, v...)
	}
}

// copyRow appends row j of src (dimension d) as row number r, its codes
// unchanged.
func (l *list) copyRow(src *list, j, d int, r int32) {
	l.rows = append(l.rows, r)
	switch {
	case src.half != nil:
		l.half = append(l.half, src.half[j*d:(j+1)*d]...)
	case src.codes != nil:
		l.codes = append(l.codes, src.codes[j*d:(j+1)*d]...)
		l.scales = append(l.scales, src.scales[j])
	default:
		l.vecs = append(l.vecs, src.vecs[j*d:(j+1)*d]...)
	}
}

// vectors are the list's rows (m, d) as float32: the rows themselves for
// FP32, else decoded into buf (grown as needed; returned for reuse).
func (l *list) vectors(d int, buf []float32) (vecs, newBuf []float32) {
	m := len(l.rows)
	switch {
	case l.half != nil:
		buf = grow(buf, m*d)
		cpu.DecodeF16(buf, l.half[:m*d])
		return buf, buf
	case l.codes != nil:
		buf = grow(buf, m*d)
		for j := range m {
			cpu.DecodeI8(buf[j*d:(j+1)*d], l.codes[j*d:(j+1)*d], l.scales[j])
		}
		return buf, buf
	}
	return l.vecs[:m*d], buf
}

// rerank scores each query's candidates with the exact rows (Len, Dim)
// and keeps the k best, best first (ties: lower row first).
func (ix *Index) rerank(qs []float32, hits [][]retrieval.Hit, rows []float32, k, threads int) {
	d := ix.dim
	parallel(len(hits), threads, func(lo, hi int) {
		for qi := lo; qi < hi; qi++ {
			q := qs[qi*d : (qi+1)*d]
			hs := hits[qi]
			for j := range hs {
				hs[j].Score = dot(q, rows[hs[j].Row*d:(hs[j].Row+1)*d])
			}
			slices.SortFunc(hs, func(a, b retrieval.Hit) int {
				switch {
				case retrieval.Worse(b, a):
					return -1
				case retrieval.Worse(a, b):
					return 1
				}
				return 0
			})
			hits[qi] = hs[:min(k, len(hs))]
		}
	})
}
