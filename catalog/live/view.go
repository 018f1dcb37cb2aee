package live

import (
	"bufio"
	"io"
	"os"
	"sync"

	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

// View is the catalog at one moment: its rows by position (Index, with
// stable ids and categories) and which of them are removed. Later changes
// to the catalog do not touch a View; it is safe for concurrent use.
type View struct {
	// Index holds every row since the last compaction, removed ones
	// included (see Live).
	*retrieval.Index
	// Removed counts the removed rows still in Index.
	Removed int
	// Generation is the catalog's compaction count; Version the bytes of
	// its log applied. Two views with both equal are the same.
	Generation, Version int64

	live *retrieval.Bitset // nil: no row is removed
	ann  *ivf.Index        // approximate index of rows [0, ann.Len()), or nil

	mu     sync.Mutex
	cats   map[string]*retrieval.Bitset // live rows of a category, made on first use
	splits map[splitKey]*retrieval.Bitset
}

// Rows is the number of live rows.
func (v *View) Rows() int { return v.Len() - v.Removed }

// Live reports whether the row at position pos is live (not removed).
func (v *View) Live(pos int) bool { return v.live == nil || v.live.Has(pos) }

// Position finds a live row by its stable id.
func (v *View) Position(id int64) (int, bool) {
	if v.IDs == nil {
		return int(id), id >= 0 && id < int64(v.Len())
	}
	pos, ok := findID(v.IDs, id)
	return pos, ok && v.Live(pos)
}

// Static is the view of a single-file index (read-only; a row's id is its
// position).
func Static(ix *retrieval.Index) *View { return &View{Index: ix} }

// LiveIndex is a new index of the live rows only (the removed ones
// dropped), with their ids and categories.
func (v *View) LiveIndex() *retrieval.Index {
	if v.live == nil {
		ix := *v.Index
		return &ix
	}
	out := &retrieval.Index{Dim: v.Dim, Fingerprint: v.Fingerprint, Meta: v.Meta,
		Embeddings: make([]float32, 0, v.Rows()*v.Dim), Items: make([]int64, 0, v.Rows()),
		Paths: make([]string, 0, v.Rows()), Categories: make([]string, 0, v.Rows()), IDs: make([]int64, 0, v.Rows())}
	for i := range v.Len() {
		if !v.live.Has(i) {
			continue
		}
		out.Embeddings = append(out.Embeddings, v.Embeddings[i*v.Dim:(i+1)*v.Dim]...)
		out.Items = append(out.Items, v.Items[i])
		out.Paths = append(out.Paths, v.Paths[i])
		out.Categories = append(out.Categories, v.Category(i))
		out.IDs = append(out.IDs, v.IDs[i])
	}
	return out
}

// Categories lists the categories of the live rows with their counts.
func (v *View) CategoryCounts() map[string]int {
	out := map[string]int{}
	for i := range v.Len() {
		if v.Live(i) {
			out[v.Category(i)]++
		}
	}
	return out
}

// allowed is the set of rows a search may return: the live rows, of the
// category when one is given. ok is false when every row is allowed.
func (v *View) allowed(category string) (*retrieval.Bitset, bool) {
	if category == "" {
		return v.live, v.live != nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.cats[category]; ok {
		return s, true
	}
	s := retrieval.NewBitset(v.Len())
	for i := range v.Len() {
		if v.Category(i) == category && v.Live(i) {
			s.Set(i)
		}
	}
	if v.cats != nil && len(v.cats) >= maxCachedCategories {
		clear(v.cats) // a client naming many categories does not grow the cache
	}
	if v.cats == nil {
		v.cats = map[string]*retrieval.Bitset{}
	}
	v.cats[category] = s
	return s, true
}

// offsetReader reads a file from an offset through a buffer.
type offsetReader struct {
	f   *os.File
	off int64
	br  *bufio.Reader
}

func (r *offsetReader) buffered() io.Reader {
	if r.br == nil {
		r.br = bufio.NewReaderSize(io.NewSectionReader(r.f, r.off, 1<<62), 1<<20)
	}
	return r.br
}

// seek notes that the reader is at off (records are read in turn).
func (r *offsetReader) seek(off int64) { r.off = off }

// maxCachedCategories bounds the category filters a view keeps.
const maxCachedCategories = 64
