package retrieval_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dmlgo/dmlgo/backend"
	_ "github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/retrieval"
)

// Build an index of four shop images (2-dimensional embeddings here; a
// model's in practice), save it, load it back and search it.
func Example() {
	b := backend.MustSelect("cpu")
	gallery := []float32{1, 0, 0, 1, 0.6, 0.8, -1, 0}
	retrieval.Normalize(gallery, 2)
	ix := &retrieval.Index{Dim: 2, Embeddings: gallery, Items: []int64{10, 11, 12, 13},
		Paths: []string{"a.jpg", "b.jpg", "c.jpg", "d.jpg"}, Fingerprint: "demo"}
	dir, err := os.MkdirTemp("", "dmlgo-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "shop.index")
	if err := ix.Save(path); err != nil {
		panic(err)
	}
	ix, err = retrieval.LoadIndex(path)
	if err != nil {
		panic(err)
	}
	query := []float32{0.8, 0.6} // a shopper's photo, embedded
	hits, err := retrieval.Search(b, query, 1, ix.Embeddings, ix.Len(), ix.Dim, 2, retrieval.SearchOptions{})
	if err != nil {
		panic(err)
	}
	for _, h := range hits[0] {
		fmt.Printf("%s item %d score %.2f\n", ix.Paths[h.Row], ix.Items[h.Row], h.Score)
	}
	// Output:
	// c.jpg item 12 score 0.96
	// a.jpg item 10 score 0.80
}
