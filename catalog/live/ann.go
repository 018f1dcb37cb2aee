package live

// The approximate index of a catalog: an inverted-file index (package
// retrieval/ivf) over the rows of its segments, built by Compact and
// saved beside them (ann-<generation>.safetensors, named in CURRENT).
// Rows added since the compaction (the log's) are searched exactly and
// merged in: they are few, and the lists need no retraining for them.
// Removed rows and categories are filters (Allow) of both parts, so a
// filter costs no recall.

import (
	"fmt"
	"slices"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

// The ANN policies of Compact.
const (
	ANNAuto = "auto" // an approximate index from ivf.ExactBelow rows on
	ANNIVF  = "ivf"  // always (tests, or a small gallery searched as a large one will be)
	ANNNone = "none" // exact search only
)

// CompactOptions tune Compact.
type CompactOptions struct {
	// ANN is ANNAuto (default), ANNIVF or ANNNone.
	ANN string
	// Backend runs the k-means and calibration GEMMs of the build (nil:
	// the CPU backend, which must be registered).
	Backend backend.Backend
	// IVF are the build's parameters (zero: ivf's defaults).
	IVF ivf.Config
}

// SearchParams tune View.Search.
type SearchParams struct {
	// Category keeps the rows of this category ("": every row).
	Category string
	// Exact searches every row even when the catalog has an approximate
	// index.
	Exact bool
	// Recall is the recall@10 the approximate index aims at (0:
	// ivf.DefaultRecall); NProbe, when set, fixes its lists per query
	// instead.
	Recall float64
	NProbe int
	// Options tune the exact search (blocks, threads).
	Options retrieval.SearchOptions
}

// Approximate reports whether searches of the view use an approximate
// index, and its lists and rows.
func (v *View) Approximate() (lists, rows int, ok bool) {
	if v.ann == nil {
		return 0, 0, false
	}
	return v.ann.Lists(), v.ann.Len(), true
}

// ANNStorage is how the approximate index holds its rows ("" without
// one).
func (v *View) ANNStorage() ivf.Storage {
	if v.ann == nil {
		return ""
	}
	return v.ann.Storage()
}

// Search returns the k best live rows (of the category, when one is
// given) for each query (nq, Dim), best first, by position. A category
// filter loses no recall: the k best rows of the category are returned
// (exactly, or by the approximate index with its filter, see ivf).
func (v *View) Search(b backend.Backend, queries []float32, nq, k int, p SearchParams) ([][]retrieval.Hit, error) {
	if k < 1 {
		return nil, fmt.Errorf("live: k must be at least 1, got %d", k)
	}
	if p.Recall < 0 || p.Recall > 1 || p.NProbe < 0 {
		return nil, fmt.Errorf("live: recall %g, nprobe %d: want a recall in (0, 1] and nprobe ≥ 0", p.Recall, p.NProbe)
	}
	allow, filtered := v.allowed(p.Category)
	o := p.Options
	if v.ann == nil || p.Exact {
		if filtered {
			o.Allow = allow
		}
		return retrieval.Search(b, queries, nq, v.Embeddings, v.Len(), v.Dim, k, o)
	}
	// The indexed rows, approximately; the rows added since, exactly.
	head := v.ann.Len()
	io := ivf.SearchOptions{NProbe: p.NProbe, Recall: p.Recall, Threads: o.Threads, Rows: v.Embeddings[:head*v.Dim]}
	if filtered {
		io.Allow = v.headAllow(p.Category, allow)
	}
	hits, err := v.ann.Search(b, queries, nq, k, io)
	if err != nil {
		return nil, err
	}
	if tail := v.Len() - head; tail > 0 {
		if filtered {
			o.Allow = v.tailAllow(p.Category, allow)
		}
		more, err := retrieval.Search(b, queries, nq, v.Embeddings[head*v.Dim:], tail, v.Dim, k, o)
		if err != nil {
			return nil, err
		}
		for q := range hits {
			for _, h := range more[q] {
				hits[q] = append(hits[q], retrieval.Hit{Row: head + h.Row, Score: h.Score})
			}
			slices.SortFunc(hits[q], func(a, b retrieval.Hit) int {
				switch {
				case a.Score > b.Score:
					return -1
				case a.Score < b.Score:
					return 1
				}
				return a.Row - b.Row
			})
			hits[q] = hits[q][:min(k, len(hits[q]))]
		}
	}
	return hits, nil
}

// headAllow and tailAllow split a filter of the view's rows into the
// indexed rows' and the added rows' (kept with the view, by category).
func (v *View) headAllow(category string, allow *retrieval.Bitset) *retrieval.Bitset {
	return v.split(category, allow, true)
}

func (v *View) tailAllow(category string, allow *retrieval.Bitset) *retrieval.Bitset {
	return v.split(category, allow, false)
}

func (v *View) split(category string, allow *retrieval.Bitset, head bool) *retrieval.Bitset {
	key := splitKey{category, head}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.splits[key]; ok {
		return s
	}
	n0, n1 := 0, v.ann.Len()
	if !head {
		n0, n1 = v.ann.Len(), v.Len()
	}
	s := retrieval.NewBitset(n1 - n0)
	for i := n0; i < n1; i++ {
		if allow.Has(i) {
			s.Set(i - n0)
		}
	}
	if v.splits == nil || len(v.splits) >= 2*maxCachedCategories {
		v.splits = map[splitKey]*retrieval.Bitset{}
	}
	v.splits[key] = s
	return s
}

type splitKey struct {
	category string
	head     bool
}

// buildANN builds the approximate index of seg's rows when the policy
// asks for one: nil otherwise.
func buildANN(seg *retrieval.Index, o CompactOptions) (*ivf.Index, error) {
	switch o.ANN {
	case "", ANNAuto:
		if seg.Len() < ivf.ExactBelow {
			return nil, nil
		}
	case ANNIVF:
		if seg.Len() < 2 {
			return nil, nil
		}
	case ANNNone:
		return nil, nil
	default:
		return nil, fmt.Errorf("live: approximate index %q: want %s, %s or %s", o.ANN, ANNAuto, ANNIVF, ANNNone)
	}
	b := o.Backend
	if b == nil {
		var err error
		if b, _, err = backend.Select("cpu"); err != nil {
			return nil, fmt.Errorf("live: building the approximate index: %w", err)
		}
	}
	return ivf.Build(b, seg.Embeddings, seg.Len(), seg.Dim, o.IVF)
}
