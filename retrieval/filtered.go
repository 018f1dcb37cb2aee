package retrieval

// Exact search under a selective filter: the allowed rows are copied,
// block by block and in row order, into a dense buffer that the GEMMs
// scan, so a filter that keeps a tenth of the rows costs about a tenth of
// the products.

import (
	"math"
	"math/bits"

	"github.com/dmlgo/dmlgo/backend"
)

// gatherBelow is the share of allowed rows under which Search gathers
// them rather than scanning every row and skipping the others: copying a
// row costs far less than its products with a block of queries, so
// gathering wins whenever it saves a good part of the rows.
const gatherBelow = 0.5

// gathers reports whether a search with allow should gather its rows.
func gathers(allow *Bitset, gn int) bool {
	return allow != nil && float64(allow.Count()) < gatherBelow*float64(gn)
}

// searchGathered pushes the scores of the allowed rows of gallery (gn, d)
// into heaps, one per query (Search's filtered scan).
func searchGathered(b backend.Backend, queries []float32, q int, gallery []float32, gn, d int, o SearchOptions, heaps []TopK) error {
	// Rows gathered per Scan (Scan blocks them again): four blocks of a
	// full block of queries, whatever q, so that the copy stays a few MiB.
	o = o.withDefaults(math.MaxInt)
	chunk := 4 * o.GalleryBlock
	rows := make([]int, 0, chunk)
	buf := make([]float32, 0, chunk*d)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		err := Scan(b, queries, q, buf, len(rows), d, o, func(qi, g0 int, scores []float32) {
			h := &heaps[qi]
			floor := h.Floor()
			for j, s := range scores {
				if s < floor {
					continue
				}
				h.Push(Hit{Row: rows[g0+j], Score: s})
				floor = h.Floor()
			}
		})
		rows, buf = rows[:0], buf[:0]
		return err
	}
	for w, word := range o.Allow.words {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if i >= gn {
				break
			}
			rows = append(rows, i)
			buf = append(buf, gallery[i*d:(i+1)*d]...)
			if len(rows) == chunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}
