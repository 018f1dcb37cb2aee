// Package catalog is a shop's gallery as the retrieval commands and the
// service see it: the index of a folder, a TSV manifest or a data set's
// gallery embedded by a model (package model) into a retrieval.Index;
// queries against it; the images behind its rows; and the query grid.
package catalog

// Building a gallery index: a folder of images, a TSV manifest, or a data
// set's gallery split, embedded into a retrieval.Index.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
)

// FMNISTRowPrefix starts the path of an index row whose image is an
// in-memory FMNIST-C2S view: "fmnist-c2s:row=<manifest row>". The data set
// recorded in the index (meta "data") renders it again.
const FMNISTRowPrefix = "fmnist-c2s:row="

// WarnNotImage counts files of an index folder that are not .jpg, .jpeg or
// .png files.
const WarnNotImage = "not a .jpg/.jpeg/.png file"

// Item rules for a folder of images (IndexSource.ItemsFrom).
const (
	// ItemsFromRow: a file's item id is its number in the sorted list of
	// image files (0-based): every image is its own item.
	ItemsFromRow = "row"
	// ItemsFromDirname: a file's item id is the name of its parent folder
	// when that is an integer (leading zeros allowed; DeepFashion's
	// id_00000042 counts as 42), else its row number as for ItemsFromRow.
	ItemsFromDirname = "dirname"
)

// IndexSource says what BuildIndex embeds: exactly one of Dir, Manifest
// and Data.
type IndexSource struct {
	// Dir is a folder searched recursively for .jpg, .jpeg and .png files
	// (any case), in lexical order. Names starting with a dot (files and
	// folders) are ignored; other files are skipped and counted
	// (WarnNotImage), as are images that do not decode.
	Dir string
	// ItemsFrom is the item rule for Dir: ItemsFromRow (default) or
	// ItemsFromDirname.
	ItemsFrom string
	// Manifest is a TSV manifest (see data.ReadTSV): the rows the protocol
	// puts in the gallery (split gallery, shop rows of split test, and of
	// val with GalleryWithVal), or, when it has none, every shop row (a
	// shop's catalogue).
	Manifest       string
	ImageRoot      string // Manifest: folder of relative paths (default: the file's)
	GalleryWithVal bool   // Manifest: add the val split's shop rows
	// Data is a data set: its gallery split (sets.Open and the protocol).
	Data *sets.Spec
	// Category is the category of rows that have none of their own (every
	// file of Dir; manifest rows without a category column); "" for none.
	Category string
}

// IndexReport says what BuildIndex did.
type IndexReport struct {
	Source   string // what was indexed, in words
	Rows     int    // gallery rows in the index
	Items    int    // distinct item ids
	Skipped  int    // files or rows skipped (not an image, unreadable)
	Warnings *data.Warnings
	// RowItems counts files given their row number as item id because
	// their folder's name is not an integer (ItemsFromDirname).
	RowItems int
	// Elapsed is the whole build; Embedding the part spent embedding.
	Elapsed, Embedding time.Duration
}

// String is the report as one paragraph, for stderr.
func (r *IndexReport) String() string {
	s := fmt.Sprintf("indexed %d images of %d items from %s in %v (embedding %.0f images/s)",
		r.Rows, r.Items, r.Source, r.Elapsed.Round(time.Millisecond), float64(r.Rows)/max(r.Embedding.Seconds(), 1e-9))
	if r.Skipped > 0 {
		s += fmt.Sprintf("; %d skipped", r.Skipped)
	}
	if r.RowItems > 0 {
		s += fmt.Sprintf("; %d %s got the row number as item id (parent folder name not an integer)", r.RowItems, plural(r.RowItems, "file", "files"))
	}
	if r.Warnings != nil && r.Warnings.Total() > 0 {
		s += "\n" + indentLines(r.Warnings.String())
	}
	return s
}

func indentLines(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// BuildIndex embeds a gallery with the model. Rows whose image cannot be
// read are skipped and counted (an error with opts.Strict, naming the
// file). The index's paths are absolute file paths, or FMNISTRowPrefix
// references for in-memory FMNIST-C2S views; its metadata records the
// source, the checkpoint, the architecture and, for a data set, the data
// spec (meta "data", JSON) that renders in-memory rows again. Loading,
// listing and embedding stop with ctx's error when ctx is cancelled.
func BuildIndex(ctx context.Context, m *model.Model, src IndexSource, opts model.EmbedOptions, log io.Writer) (*retrieval.Index, *IndexReport, error) {
	if log == nil {
		log = io.Discard
	}
	n := 0
	for _, set := range []bool{src.Dir != "", src.Manifest != "", src.Data != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, nil, fmt.Errorf("app: BuildIndex: give exactly one of a folder, a manifest and a data set (%d given)", n)
	}
	start := time.Now()
	rep := &IndexReport{Warnings: data.NewWarnings()}
	ckpt, err := filepath.Abs(m.Path)
	if err != nil {
		ckpt = m.Path
	}
	meta := map[string]string{
		"checkpoint": ckpt, "arch": m.Card.Arch, "dim": strconv.Itoa(m.Dim),
		"input": model.DescribeTransform(m.Transform), "trained_on": m.Card.Data.Kind,
		"created": time.Now().UTC().Format(time.RFC3339),
	}
	var (
		man   *data.Manifest
		rows  []int
		paths func(row int) string
	)
	fileRows := func(row int) string {
		p, err := filepath.Abs(man.ImagePath(row))
		if err != nil {
			return man.ImagePath(row)
		}
		return p
	}
	switch {
	case src.Dir != "":
		man, rep.RowItems, err = folderManifest(ctx, src.Dir, src.ItemsFrom, opts.Strict, rep.Warnings)
		if err != nil {
			return nil, nil, err
		}
		rep.Skipped = rep.Warnings.Count(WarnNotImage)
		rows = make([]int, len(man.Rows))
		for i := range rows {
			rows[i] = i
		}
		paths = fileRows
		rep.Source = "folder " + src.Dir
		root, _ := filepath.Abs(src.Dir)
		meta["source"], meta["root"] = "dir", root
		meta["items_from"] = src.ItemsFrom
		if meta["items_from"] == "" {
			meta["items_from"] = ItemsFromRow
		}
	case src.Manifest != "":
		if man, err = data.ReadTSV(src.Manifest); err != nil {
			return nil, nil, err
		}
		if src.ImageRoot != "" {
			man.Root = src.ImageRoot
		}
		rows = manifestGallery(man, src.GalleryWithVal)
		if len(rows) == 0 {
			return nil, nil, fmt.Errorf("%s: no gallery row (split gallery, or shop row of split test) and no shop row at all: nothing to index", src.Manifest)
		}
		paths = fileRows
		rep.Source = "manifest " + src.Manifest
		abs, _ := filepath.Abs(src.Manifest)
		meta["source"], meta["manifest"] = "manifest", abs
	default:
		spec := *src.Data
		if spec.Kind == sets.FMNISTC2S && spec.Path == "" {
			spec.Path = defaultFMNISTPath()
		}
		if spec.Path != "" {
			spec.Path, _ = filepath.Abs(spec.Path)
		}
		if spec.ImageRoot != "" {
			spec.ImageRoot, _ = filepath.Abs(spec.ImageRoot)
		}
		set, err := sets.OpenContext(ctx, spec, log)
		if err != nil {
			return nil, nil, err
		}
		if set.Transform.Channels != m.Transform.Channels || set.Transform.Size != m.Transform.Size {
			fmt.Fprintf(log, "note: the data set's own transform is %s; the model's input (%s) is used\n",
				model.DescribeTransform(set.Transform), model.DescribeTransform(m.Transform))
		}
		man, rows = set.Dataset.Manifest, set.Dataset.Gallery.Rows
		paths = func(row int) string {
			if man.Rows[row].Image != nil {
				return FMNISTRowPrefix + strconv.Itoa(row)
			}
			return fileRows(row)
		}
		rep.Source = "the gallery of " + set.Description
		raw, _ := json.Marshal(spec)
		meta["source"], meta["data"], meta["data_description"] = "data", string(raw), set.Description
	}
	if opts.Label == "" {
		opts.Label = "embedding"
	}
	t0 := time.Now()
	emb, err := m.EmbedRows(ctx, man, rows, opts)
	rep.Embedding = time.Since(t0)
	if err != nil {
		return nil, nil, err
	}
	rep.Skipped += emb.Skipped
	rep.Warnings.Merge(emb.Warnings)
	if len(emb.Rows) == 0 {
		return nil, nil, fmt.Errorf("%s: no image could be indexed (%d skipped)", rep.Source, rep.Skipped)
	}
	ix := &retrieval.Index{
		Dim: m.Dim, Embeddings: emb.Embeddings, Fingerprint: m.Fingerprint, Meta: meta,
		Items: make([]int64, len(emb.Rows)), Paths: make([]string, len(emb.Rows)),
	}
	names := map[string]string{}
	cats := make([]string, len(emb.Rows))
	anyCat := false
	for i, r := range emb.Rows {
		ix.Items[i] = man.Rows[r].Item
		ix.Paths[i] = paths(r)
		cats[i] = rowCategory(man, r, src.Category)
		anyCat = anyCat || cats[i] != ""
		if name, ok := man.ItemNames[ix.Items[i]]; ok {
			names[strconv.FormatInt(ix.Items[i], 10)] = name
		}
	}
	if len(names) > 0 {
		raw, _ := json.Marshal(names)
		meta["item_names"] = string(raw)
	}
	if anyCat {
		ix.Categories = cats
	}
	meta["skipped"] = strconv.Itoa(rep.Skipped)
	rep.Rows = ix.Len()
	rep.Items = data.DistinctItems(ix.Items)
	rep.Elapsed = time.Since(start)
	return ix, rep, nil
}

// rowCategory is manifest row r's category as a name: the manifest's name
// for it, its number, or fallback when it has none.
func rowCategory(man *data.Manifest, r int, fallback string) string {
	c := man.Rows[r].Category
	if c == data.NoCategory {
		return fallback
	}
	if name, ok := man.CategoryNames[c]; ok {
		return name
	}
	return strconv.Itoa(int(c))
}

// manifestGallery returns the rows of a TSV manifest that the protocol puts
// in the gallery, or every shop row when there is none.
func manifestGallery(m *data.Manifest, withVal bool) []int {
	var rows, shop []int
	for i, r := range m.Rows {
		switch {
		case r.Split == data.Gallery, r.Split == data.Test && r.Domain == data.Shop,
			withVal && r.Split == data.Val && r.Domain == data.Shop:
			rows = append(rows, i)
		}
		if r.Domain == data.Shop {
			shop = append(shop, i)
		}
	}
	if len(rows) == 0 {
		return shop
	}
	return rows
}

// folderManifest lists the image files under dir as gallery rows with item
// ids by the rule. Files that are not images are counted in w (an error
// with strict). It returns how many files fell back to their row number,
// or ctx's error when ctx is cancelled during the walk.
func folderManifest(ctx context.Context, dir, itemsFrom string, strict bool, w *data.Warnings) (*data.Manifest, int, error) {
	switch itemsFrom {
	case "", ItemsFromRow, ItemsFromDirname:
	default:
		return nil, 0, fmt.Errorf("-items-from: unknown rule %q (want %s or %s)", itemsFrom, ItemsFromRow, ItemsFromDirname)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, 0, err
	}
	if !fi.IsDir() {
		return nil, 0, fmt.Errorf("%s is not a folder", dir)
	}
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() {
				w.Add(WarnNotImage, p)
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg", ".png":
			files = append(files, p)
		default:
			if strict {
				return fmt.Errorf("%s is not a .jpg, .jpeg or .png file (-strict)", p)
			}
			w.Add(WarnNotImage, p)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("%s holds no .jpg, .jpeg or .png file", dir)
	}
	sort.Strings(files)
	m := &data.Manifest{Name: "folder " + dir, Rows: make([]data.Row, len(files))}
	fallback := 0
	for i, p := range files {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			rel = p
		}
		item := int64(i)
		if itemsFrom == ItemsFromDirname {
			if id, ok := dirItem(filepath.Dir(rel)); ok {
				item = id
			} else {
				fallback++
			}
		}
		m.Rows[i] = data.Row{Path: p, Item: item, Domain: data.Shop, Split: data.Gallery, Category: data.NoCategory}
	}
	return m, fallback, nil
}

// dirItem parses the item id of a folder: its name as an integer, or the
// integer after "id_" (DeepFashion).
func dirItem(dir string) (int64, bool) {
	if dir == "." || dir == "" {
		return 0, false
	}
	name := filepath.Base(dir)
	name = strings.TrimPrefix(name, "id_")
	if name == "" || name[0] == '+' || name[0] == '-' {
		return 0, false
	}
	id, err := strconv.ParseInt(name, 10, 64)
	return id, err == nil
}

// defaultFMNISTPath is where sets.Open reads Fashion-MNIST when the spec
// gives no path, made absolute so an index records where its views came from.
func defaultFMNISTPath() string {
	p, err := filepath.Abs(fmnist.DefaultDir())
	if err != nil {
		return fmnist.DefaultDir()
	}
	return p
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
