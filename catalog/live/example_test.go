package live_test

import (
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/retrieval"
)

// A catalog grows and shrinks while it is searched. Embeddings here are
// made up (a model would make them, see package model): item 1 points
// along the first axis, item 2 along the second, and so on.
func Example() {
	dir, err := os.MkdirTemp("", "dmlgo-live-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	axis := func(i int) []float32 {
		v := make([]float32, 4)
		v[i] = 1
		return v
	}
	first := &retrieval.Index{Dim: 4, Fingerprint: "model-1", Embeddings: axis(0), Items: []int64{1}, Paths: []string{"shirt.jpg"}, Categories: []string{"tops"}}
	cat, err := live.Create(filepath.Join(dir, "shop.catalog"), first, live.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()
	if _, err := cat.Add("model-1", []live.Row{
		{Item: 2, Path: "dress.jpg", Category: "dresses", Embedding: axis(1)},
		{Item: 3, Path: "skirt.jpg", Category: "dresses", Embedding: axis(2)},
	}); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Remove(live.ByItem, []int64{2}, nil); err != nil {
		log.Fatal(err)
	}
	// A photo between the dress and the skirt, searched among dresses.
	s := float32(1 / math.Sqrt2)
	q := []float32{0, s, s, 0}
	v := cat.View()
	hits, err := v.Search(backend.MustSelect("cpu"), q, 1, 5, live.SearchParams{Category: "dresses"})
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits[0] {
		fmt.Printf("item %d (%s, id %d): %.3f\n", v.Items[h.Row], v.Paths[h.Row], v.ID(h.Row), h.Score)
	}
	fmt.Println(v.Rows(), "images live,", v.Removed, "removed until Compact")
	// Output:
	// item 3 (skirt.jpg, id 2): 0.707
	// 2 images live, 1 removed until Compact
}
