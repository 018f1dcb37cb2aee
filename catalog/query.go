package catalog

// Searching an index: query images (files, FMNIST-C2S rows, a data set's
// queries), top-k matches, and the gallery images behind index rows.

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
)

// QueryImage is one query: a decoded image, the box to crop (zero: the
// whole image), and its true item when known.
type QueryImage struct {
	Name    string
	Image   image.Image
	Box     image.Rectangle
	Item    int64
	HasItem bool
}

// Match is one result of a query.
type Match struct {
	Rank int `json:"rank"`
	// Row is the match's position in the index searched; ID its stable id
	// (a single-file index: its position; a catalog: the id its row keeps
	// through compactions).
	Row      int     `json:"row"`
	ID       int64   `json:"id"`
	Item     int64   `json:"item"`
	ItemName string  `json:"item_name,omitempty"`
	Path     string  `json:"path"`
	Category string  `json:"category,omitempty"`
	Score    float32 `json:"score"`
	// SameItem says whether the match shows the query's item (only when
	// the query's item is known).
	SameItem *bool `json:"same_item,omitempty"`
	// Thumbnail is the server's URL of the gallery image (serve only).
	Thumbnail string `json:"thumbnail,omitempty"`
}

// QueryResult is the top-k of one query.
type QueryResult struct {
	Query   string  `json:"query"`
	Item    *int64  `json:"item,omitempty"`
	Matches []Match `json:"results"`
	// FirstHit is the rank of the first match of the query's item among
	// the results (0: none, or the item is unknown).
	FirstHit int `json:"first_hit,omitempty"`
}

// Query embeds the queries and returns the k best live rows of the view
// for each, best first, as p asks (a category; exact or approximate
// search). ctx bounds the wait for the model. A single-file index is
// searched as live.Static(ix).
func Query(ctx context.Context, m *model.Model, v *live.View, qs []QueryImage, k int, p live.SearchParams) ([]QueryResult, error) {
	if k < 1 {
		return nil, fmt.Errorf("k must be at least 1, got %d", k)
	}
	if len(qs) == 0 {
		return nil, nil
	}
	imgs := make([]image.Image, len(qs))
	boxes := make([]image.Rectangle, len(qs))
	for i, q := range qs {
		imgs[i], boxes[i] = q.Image, q.Box
	}
	return QueryInputs(ctx, m, v, ItemNames(v.Index), qs, m.TransformImages(imgs, boxes), k, p)
}

// QueryInputs is Query on the queries' transformed images x (len(qs), C,
// S, S), with the index's item names given; qs gives the queries' names
// and items (their images are not used).
func QueryInputs(ctx context.Context, m *model.Model, v *live.View, names map[int64]string, qs []QueryImage, x []float32, k int, p live.SearchParams) ([]QueryResult, error) {
	if k < 1 {
		return nil, fmt.Errorf("k must be at least 1, got %d", k)
	}
	e, err := m.EmbedInputs(ctx, x, len(qs))
	if err != nil {
		return nil, err
	}
	return QueryEmbeddings(ctx, m, v, names, qs, e, k, p)
}

// QueryEmbeddings is QueryInputs on the queries' normalised embeddings e
// (len(qs) rows of the model's dimension).
func QueryEmbeddings(ctx context.Context, m *model.Model, v *live.View, names map[int64]string, qs []QueryImage, e []float32, k int, p live.SearchParams) ([]QueryResult, error) {
	if k < 1 {
		return nil, fmt.Errorf("k must be at least 1, got %d", k)
	}
	if len(e) != len(qs)*m.Dim {
		return nil, fmt.Errorf("%d values for the embeddings of %d queries of dimension %d", len(e), len(qs), m.Dim)
	}
	var hits [][]retrieval.Hit
	err := m.Locked(ctx, func() (err error) {
		hits, err = v.Search(m.B, e, len(qs), k, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]QueryResult, len(qs))
	for i, q := range qs {
		r := QueryResult{Query: q.Name, Matches: make([]Match, len(hits[i]))}
		if q.HasItem {
			it := q.Item
			r.Item = &it
		}
		for j, h := range hits[i] {
			item := v.Items[h.Row]
			mt := Match{Rank: j + 1, Row: h.Row, ID: v.ID(h.Row), Item: item, ItemName: names[item], Path: v.Paths[h.Row], Category: v.Category(h.Row), Score: h.Score}
			if q.HasItem {
				same := mt.Item == q.Item
				mt.SameItem = &same
				if same && r.FirstHit == 0 {
					r.FirstHit = j + 1
				}
			}
			r.Matches[j] = mt
		}
		out[i] = r
	}
	return out, nil
}

// ItemNames returns the item names an index records (TSV manifests with
// named items), or an empty map.
func ItemNames(ix *retrieval.Index) map[int64]string {
	out := map[int64]string{}
	raw := ix.Meta["item_names"]
	if raw == "" {
		return out
	}
	var byID map[string]string
	if json.Unmarshal([]byte(raw), &byID) != nil {
		return out
	}
	for k, v := range byID {
		if id, err := strconv.ParseInt(k, 10, 64); err == nil {
			out[id] = v
		}
	}
	return out
}

// ParseItem reads an item id given on the command line: an integer, or an
// item name the index records.
func ParseItem(ix *retrieval.Index, s string) (int64, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		return id, nil
	}
	for id, name := range ItemNames(ix) {
		if name == s {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%q is neither an integer item id nor an item name of the index", s)
}

// ManifestItems maps the absolute image paths of a TSV manifest to their
// item ids, so query files listed in it have a known item.
func ManifestItems(path string) (map[string]int64, error) {
	m, err := data.ReadTSV(path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(m.Rows))
	for i := range m.Rows {
		if p, err := filepath.Abs(m.ImagePath(i)); err == nil {
			out[p] = m.Rows[i].Item
		}
	}
	return out, nil
}

// Gallery turns index rows back into images for grids and thumbnails:
// files are read from their path; FMNIST-C2S views (FMNISTRowPrefix) are
// rendered again from the data set the index records in its meta "data"
// (or, for an index without one, the given fallback, normally the
// checkpoint's training data). It is safe for concurrent use.
type Gallery struct {
	Index *retrieval.Index
	Spec  sets.Spec
	Log   io.Writer

	rendered *renderedViews // shared by the galleries With makes
}

// renderedViews holds the FMNIST-C2S benchmark once rendered.
type renderedViews struct {
	mu sync.Mutex
	fm *fmnistViews
}

// With is the gallery of another index of the same data (a later view of
// a catalog), sharing what g has rendered.
func (g *Gallery) With(ix *retrieval.Index) *Gallery {
	return &Gallery{Index: ix, Spec: g.Spec, Log: g.Log, rendered: g.rendered}
}

// NewGallery returns the gallery of an index.
func NewGallery(ix *retrieval.Index, fallback sets.Spec, log io.Writer) *Gallery {
	g := &Gallery{Index: ix, Spec: fallback, Log: log, rendered: &renderedViews{}}
	if raw := ix.Meta["data"]; raw != "" {
		var s sets.Spec
		if json.Unmarshal([]byte(raw), &s) == nil {
			g.Spec = s
		}
	}
	if g.Log == nil {
		g.Log = io.Discard
	}
	return g
}

// InMemory reports whether the index has rendered (FMNIST-C2S) rows.
func (g *Gallery) InMemory() bool {
	for _, p := range g.Index.Paths {
		if strings.HasPrefix(p, FMNISTRowPrefix) {
			return true
		}
	}
	return false
}

// Prepare renders the in-memory views now, if the index has any (a server
// does it before it starts listening).
func (g *Gallery) Prepare() error {
	if !g.InMemory() {
		return nil
	}
	_, err := g.views(false)
	return err
}

// Image returns the image of index row r.
func (g *Gallery) Image(r int) (image.Image, error) {
	if r < 0 || r >= g.Index.Len() {
		return nil, fmt.Errorf("row %d is outside the index (%d rows)", r, g.Index.Len())
	}
	p := g.Index.Paths[r]
	if mr, ok := parseFMNISTRow(p); ok {
		row, err := g.fmnistRow(mr)
		if err != nil {
			return nil, err
		}
		if row.Item != g.Index.Items[r] {
			return nil, fmt.Errorf("index row %d (%s) is item %d, but the data set rendered from %q has item %d there: the index no longer matches its data", r, p, g.Index.Items[r], g.Spec.Path, row.Item)
		}
		return row.Image, nil
	}
	if p == "" {
		return nil, fmt.Errorf("index row %d has no image path", r)
	}
	return data.DecodeFile(p)
}

// LoadQuery reads a query given on the command line: an image file, or an
// FMNIST-C2S view "fmnist-c2s:row=N" (its item is then known).
func (g *Gallery) LoadQuery(arg string) (QueryImage, error) {
	return g.LoadQueryFor(arg, data.Transform{}, image.Rectangle{})
}

// LoadQueryFor is LoadQuery for transform t and the query's box (the zero
// rectangle: the whole image): a large JPEG is decoded at the scale t
// needs, as retrieve index decodes the gallery's (data.DecodeFor), and
// the query's Box is box in its pixels.
func (g *Gallery) LoadQueryFor(arg string, t data.Transform, box image.Rectangle) (QueryImage, error) {
	if mr, ok := parseFMNISTRow(arg); ok {
		row, err := g.fmnistRow(mr)
		if err != nil {
			return QueryImage{}, err
		}
		return QueryImage{Name: arg, Image: row.Image, Box: box, Item: row.Item, HasItem: true}, nil
	}
	if strings.HasPrefix(arg, "fmnist-c2s:") {
		return QueryImage{}, fmt.Errorf("%q: want %sN with N a manifest row", arg, FMNISTRowPrefix)
	}
	img, box, err := data.DecodeFileFor(arg, data.DefaultDecodeLimits, t, box)
	if err != nil {
		return QueryImage{}, err
	}
	return QueryImage{Name: arg, Image: img, Box: box}, nil
}

// DataQueries returns n queries of the data set the index was built from,
// evenly spaced over its query set (consumer views for FMNIST-C2S), with
// their items and boxes.
func (g *Gallery) DataQueries(n int) ([]QueryImage, error) {
	if g.Index.Meta["data"] == "" {
		from := map[string]string{"dir": "a folder of images", "manifest": "a TSV manifest"}[g.Index.Meta["source"]]
		if from == "" {
			from = "something else"
		}
		return nil, fmt.Errorf("the index was built from %s, not a data set: it has no queries of its own", from)
	}
	if n < 1 {
		return nil, fmt.Errorf("want at least 1 query, got %d", n)
	}
	if g.Spec.Kind == sets.FMNISTC2S || g.Spec.Kind == "" {
		v, err := g.views(false)
		if err != nil {
			return nil, err
		}
		var rows []int
		for i, r := range v.bench.Manifest.Rows {
			if r.Domain == data.Consumer && r.Split == data.Test {
				rows = append(rows, i)
			}
		}
		var out []QueryImage
		for _, i := range spread(len(rows), n) {
			r := v.bench.Manifest.Rows[rows[i]]
			out = append(out, QueryImage{Name: FMNISTRowPrefix + strconv.Itoa(rows[i]+v.offset), Image: r.Image, Item: r.Item, HasItem: true})
		}
		return out, nil
	}
	set, err := sets.Open(g.Spec, g.Log)
	if err != nil {
		return nil, err
	}
	q := set.Dataset.Query
	var out []QueryImage
	for _, i := range spread(q.Len(), n) {
		r := q.Row(i)
		name := set.Manifest.ImagePath(q.Rows[i])
		img, err := data.DecodeFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, QueryImage{Name: name, Image: img, Box: r.Box, Item: r.Item, HasItem: true})
	}
	return out, nil
}

// spread picks min(n, total) indexes evenly spaced over [0, total).
func spread(total, n int) []int {
	n = min(n, total)
	out := make([]int, n)
	for i := range out {
		out[i] = i * total / n
	}
	return out
}

// Rendered reports whether row r's image is made in memory (a row of the
// built-in benchmark, or a row without a path) rather than read from a
// file: a caller that bounds file decoding does not need to for it.
func (g *Gallery) Rendered(r int) bool {
	p := g.Index.Paths[r]
	_, ok := parseFMNISTRow(p)
	return ok || p == ""
}

func parseFMNISTRow(p string) (int, bool) {
	s, ok := strings.CutPrefix(p, FMNISTRowPrefix)
	if !ok {
		return 0, false
	}
	r, err := strconv.Atoi(s)
	return r, err == nil && r >= 0
}

// fmnistViews is a rendered FMNIST-C2S benchmark; offset is the manifest
// row of its first row in the full benchmark (a test-only rendering skips
// the train rows, which come first).
type fmnistViews struct {
	bench  *fmnist.Benchmark
	offset int
}

// views renders the benchmark of g.Spec: the test items only, unless full
// (the train rows are needed).
func (g *Gallery) views(full bool) (*fmnistViews, error) {
	g.rendered.mu.Lock()
	defer g.rendered.mu.Unlock()
	if fm := g.rendered.fm; fm != nil && (!full || fm.offset == 0) {
		return fm, nil
	}
	spec := g.Spec
	if spec.Kind != sets.FMNISTC2S && spec.Kind != "" {
		return nil, fmt.Errorf("the index's data set is %s, not %s: it has no rendered views", spec.Kind, sets.FMNISTC2S)
	}
	cfg, err := spec.FMNISTConfig()
	if err != nil {
		return nil, err
	}
	v := &fmnistViews{}
	if !full {
		// Rows come item by item, train items first, 1 + TrainViews each;
		// views depend on (seed, item, view) only.
		v.offset = cfg.TrainItems * (1 + cfg.TrainViews)
		cfg.TrainItems = 0
	}
	path := spec.Path
	if path == "" {
		path = fmnist.DefaultDir()
	}
	src, err := fmnist.Load(path)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(g.Log, "rendering the FMNIST-C2S views of the index (%s)\n", cfg)
	if v.bench, err = fmnist.Build(src, cfg); err != nil {
		return nil, err
	}
	g.rendered.fm = v
	return v, nil
}

// fmnistRow returns row r of the full benchmark's manifest.
func (g *Gallery) fmnistRow(r int) (data.Row, error) {
	v, err := g.views(false)
	if err != nil {
		return data.Row{}, err
	}
	if r < v.offset {
		if v, err = g.views(true); err != nil {
			return data.Row{}, err
		}
	}
	i := r - v.offset
	if i >= len(v.bench.Manifest.Rows) {
		return data.Row{}, fmt.Errorf("%s%d: the data set %s has %d rows", FMNISTRowPrefix, r, v.bench.Config, v.offset+len(v.bench.Manifest.Rows))
	}
	return v.bench.Manifest.Rows[i], nil
}

// ParseBox reads "x1,y1,x2,y2" (pixels, x2 and y2 exclusive).
func ParseBox(s string) (image.Rectangle, error) {
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return image.Rectangle{}, fmt.Errorf("want x1,y1,x2,y2")
	}
	var v [4]int
	for i, p := range f {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return image.Rectangle{}, fmt.Errorf("want x1,y1,x2,y2 integers: %q", p)
		}
		v[i] = n
	}
	if v[0] >= v[2] || v[1] >= v[3] {
		return image.Rectangle{}, fmt.Errorf("empty box: want x1 < x2 and y1 < y2")
	}
	return image.Rect(v[0], v[1], v[2], v[3]), nil
}
