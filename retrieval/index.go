package retrieval

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmlgo/dmlgo/data/npy"
	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/safetensors"
)

// Index is a gallery of L2-normalised embeddings with their item ids and
// image paths, and the fingerprint of the model that made them: a query
// embedded by another model is refused.
type Index struct {
	Dim        int
	Embeddings []float32 // (N, Dim), rows L2-normalised
	Items      []int64   // (N)
	Paths      []string  // (N), may be empty strings
	// Categories are the rows' clothes types ("" when unknown); nil when
	// no row has one.
	Categories []string
	// IDs are stable row ids, increasing (a live catalog's rows keep theirs
	// through compactions); nil: a row's id is its position.
	IDs         []int64
	Fingerprint string
	Meta        map[string]string
}

// ID is row i's stable id.
func (ix *Index) ID(i int) int64 {
	if ix.IDs == nil {
		return int64(i)
	}
	return ix.IDs[i]
}

// Category is row i's category ("" when unknown).
func (ix *Index) Category(i int) string {
	if ix.Categories == nil {
		return ""
	}
	return ix.Categories[i]
}

// Len is the number of gallery rows.
func (ix *Index) Len() int { return len(ix.Items) }

// Validate checks the index's sizes and that its rows are normalised.
func (ix *Index) Validate() error {
	n := len(ix.Items)
	if ix.Dim < 1 || len(ix.Embeddings) != n*ix.Dim || len(ix.Paths) != n {
		return fmt.Errorf("index: %d embeddings values, %d items, %d paths for dimension %d", len(ix.Embeddings), n, len(ix.Paths), ix.Dim)
	}
	if ix.Categories != nil && len(ix.Categories) != n {
		return fmt.Errorf("index: %d categories for %d rows", len(ix.Categories), n)
	}
	if ix.IDs != nil {
		if len(ix.IDs) != n {
			return fmt.Errorf("index: %d row ids for %d rows", len(ix.IDs), n)
		}
		for i := 1; i < n; i++ {
			if ix.IDs[i] <= ix.IDs[i-1] {
				return fmt.Errorf("index: row ids not increasing at row %d (%d after %d)", i, ix.IDs[i], ix.IDs[i-1])
			}
		}
	}
	for i := 0; i < n; i++ {
		var ss float64
		for _, v := range ix.Embeddings[i*ix.Dim : (i+1)*ix.Dim] {
			ss += float64(v) * float64(v)
		}
		if math.IsNaN(ss) || math.Abs(ss-1) > 1e-3 {
			return fmt.Errorf("index: row %d has norm² %g, want 1 (not L2-normalised, or not finite)", i, ss)
		}
	}
	return nil
}

// Normalize scales each row of x (n, d) to unit length in place (rows of
// norm below 1e-12 stay as they are).
func Normalize(x []float32, d int) {
	for i := 0; i+d <= len(x); i += d {
		var ss float64
		for _, v := range x[i : i+d] {
			ss += float64(v) * float64(v)
		}
		if n := math.Sqrt(ss); n > 1e-12 {
			for j := i; j < i+d; j++ {
				x[j] = float32(float64(x[j]) / n)
			}
		}
	}
}

// Save writes the index as safetensors (embeddings F32 (N, D), items I64
// (N), and ids I64 (N) when it has them) with paths, categories (when any),
// fingerprint and metadata in the header, atomically.
func (ix *Index) Save(path string) error {
	if err := ix.Validate(); err != nil {
		return err
	}
	paths, _ := json.Marshal(ix.Paths)
	meta := map[string]string{"format": "dmlgo-index-1", "fingerprint": ix.Fingerprint, "paths": string(paths)}
	if ix.Categories != nil {
		cats, _ := json.Marshal(ix.Categories)
		meta["categories"] = string(cats)
	}
	for k, v := range ix.Meta {
		meta["meta."+k] = v
	}
	ts := []safetensors.Tensor{
		safetensors.FromFloat32("embeddings", []int{ix.Len(), ix.Dim}, ix.Embeddings),
		safetensors.FromInt64("items", []int{ix.Len()}, ix.Items),
	}
	if ix.IDs != nil {
		ts = append(ts, safetensors.FromInt64("ids", []int{ix.Len()}, ix.IDs))
	}
	return safetensors.WriteFile(path, ts, meta)
}

// LoadIndex reads an index written by Save; errors name the file.
func LoadIndex(path string) (*Index, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) (*Index, error) {
		return nil, fmt.Errorf("%s: not a dmlgo index: "+format, append([]any{path}, a...)...)
	}
	if f.Metadata["format"] != "dmlgo-index-1" {
		return bad("format %q", f.Metadata["format"])
	}
	e, ok1 := f.Get("embeddings")
	it, ok2 := f.Get("items")
	if !ok1 || !ok2 || len(e.Shape) != 2 || len(it.Shape) != 1 || it.DType != "I64" || e.Shape[0] != it.Shape[0] {
		return bad("want embeddings (N, D) and items (N) I64")
	}
	emb, err := e.Float32()
	if err != nil {
		return bad("%v", err)
	}
	int64s := func(t safetensors.Tensor) []int64 {
		out := make([]int64, t.Shape[0])
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
		}
		return out
	}
	ix := &Index{Dim: e.Shape[1], Embeddings: emb, Items: int64s(it), Fingerprint: f.Metadata["fingerprint"], Meta: map[string]string{}}
	if err := json.Unmarshal([]byte(f.Metadata["paths"]), &ix.Paths); err != nil {
		return bad("paths: %v", err)
	}
	if raw, ok := f.Metadata["categories"]; ok {
		if err := json.Unmarshal([]byte(raw), &ix.Categories); err != nil {
			return bad("categories: %v", err)
		}
	}
	if ids, ok := f.Get("ids"); ok {
		if len(ids.Shape) != 1 || ids.DType != "I64" || ids.Shape[0] != it.Shape[0] {
			return bad("want ids (N) I64")
		}
		ix.IDs = int64s(ids)
	}
	for k, v := range f.Metadata {
		if strings.HasPrefix(k, "meta.") {
			ix.Meta[strings.TrimPrefix(k, "meta.")] = v
		}
	}
	if err := ix.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ix, nil
}

// ExportNPY writes dir/embeddings.npy (float32 N×D), dir/items.npy (int64
// N) and dir/manifest.json (paths, item ids, dimension, fingerprint, metric)
// for faiss or a vector database.
func (ix *Index) ExportNPY(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := npy.WriteFile(filepath.Join(dir, "embeddings.npy"), []int{ix.Len(), ix.Dim}, ix.Embeddings); err != nil {
		return err
	}
	if err := npy.WriteFile(filepath.Join(dir, "items.npy"), []int{ix.Len()}, ix.Items); err != nil {
		return err
	}
	type row struct {
		Row      int    `json:"row"`
		ID       int64  `json:"id"`
		Item     int64  `json:"item_id"`
		Path     string `json:"path"`
		Category string `json:"category,omitempty"`
	}
	rows := make([]row, ix.Len())
	for i := range rows {
		rows[i] = row{i, ix.ID(i), ix.Items[i], ix.Paths[i], ix.Category(i)}
	}
	man, _ := json.MarshalIndent(map[string]any{
		"embeddings": "embeddings.npy", "items": "items.npy", "count": ix.Len(), "dim": ix.Dim,
		"metric": "inner_product (rows are L2-normalised: cosine)", "fingerprint": ix.Fingerprint, "rows": rows,
	}, "", " ")
	return atomicfile.WriteBytes(filepath.Join(dir, "manifest.json"), man)
}
