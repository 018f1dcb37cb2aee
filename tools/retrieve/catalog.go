package main

// retrieve add, remove and compact: a live catalog changed in place (see
// package catalog/live), and the opening of an index that either kind of
// -index names.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/bytesize"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
	"github.com/dmlgo/dmlgo/serve"
)

const (
	addArgs     = "-ckpt FILE -index FOLDER (-dir DIR [-items-from row|dirname] | -manifest FILE.tsv | data flags) [-category NAME]"
	removeArgs  = "-index FOLDER (-item ID,... | -path FILE,... | -id ROWID,...)"
	compactArgs = "-index FOLDER [-ann auto|ivf|none] [-lists L] [-storage fp32|fp16|int8]  |  -index FILE -out FOLDER"
)

// openIndex opens what -index names: a catalog folder (cat is set) or a
// single-file index (cat is nil). The view is what to search.
func openIndex(path string, log io.Writer) (*live.View, *live.Catalog, error) {
	if live.IsCatalog(path) {
		cat, err := live.Open(path, live.Options{Log: log})
		if err != nil {
			return nil, nil, fmt.Errorf("-index: %w", err)
		}
		return cat.View(), cat, nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, nil, fmt.Errorf("-index: %s is a folder but not a catalog (no %s): give an index file or a catalog folder", path, live.ManifestFile)
	}
	ix, err := retrieval.LoadIndex(path)
	if err != nil {
		return nil, nil, fmt.Errorf("-index: %w", err)
	}
	return live.Static(ix), nil, nil
}

// openCatalog opens the catalog folder a changing subcommand needs.
func openCatalog(path string, stderr io.Writer) (*live.Catalog, error) {
	if path == "" {
		return nil, usagef("-index is required: the catalog folder (made by 'retrieve index -catalog' or 'retrieve compact -out')")
	}
	if !live.IsCatalog(path) {
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			return nil, fmt.Errorf("-index: %s is a single-file index, which is read-only: make it a catalog with 'retrieve compact -index %s -out FOLDER'", path, path)
		}
	}
	cat, err := live.Open(path, live.Options{Log: stderr})
	if err != nil {
		return nil, fmt.Errorf("-index: %w", err)
	}
	return cat, nil
}

// addBatch is the most rows one log record holds.
const addBatch = 4096

func runAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("add")
	var mf modelFlags
	mf.register(fs)
	var df decodeFlags
	df.register(fs)
	indexPath := fs.String("index", "", "catalog folder to add to")
	dir := fs.String("dir", "", "add the images (.jpg, .jpeg, .png) under this folder, recursively")
	itemsFrom := fs.String("items-from", catalog.ItemsFromRow, "-dir: item ids from the file's row number (row), or its parent folder's name when an integer (dirname)")
	manifest := fs.String("manifest", "", "add a TSV manifest's gallery rows (or, without any, its shop rows)")
	category := fs.String("category", "", "category of the images that have none of their own (all of -dir)")
	spec := sets.DefaultSpec()
	spec.RegisterFlags(fs)
	if _, err := parse(fs, args, stderr, addArgs, false); err != nil {
		return err
	}
	if err := mf.check(); err != nil {
		return err
	}
	if err := df.apply(); err != nil {
		return err
	}
	if *dir != "" && *manifest != "" {
		return usagef("give one source: -dir or -manifest (or data flags), not both")
	}
	cat, err := openCatalog(*indexPath, stderr)
	if err != nil {
		return err
	}
	defer cat.Close()
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	if err := m.CheckIndex(cat.View().Index, *indexPath); err != nil {
		return err
	}
	src := catalog.IndexSource{Dir: *dir, ItemsFrom: *itemsFrom, Manifest: *manifest, ImageRoot: spec.ImageRoot, GalleryWithVal: spec.GalleryWithVal, Category: *category}
	if *dir == "" && *manifest == "" {
		s, err := dataSpec(m, fs, spec)
		if err != nil {
			return err
		}
		src.Data = &s
	}
	ctx, stop := interruptible()
	defer stop()
	ix, rep, err := catalog.BuildIndex(ctx, m, src, model.EmbedOptions{Strict: spec.Strict, Progress: stderr, TTY: isTerminal(stderr), Label: "embedding"}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, rep)
	added := 0
	for lo := 0; lo < ix.Len(); lo += addBatch {
		if ctx.Err() != nil {
			fmt.Fprintf(stdout, "interrupted: %d of %d images added (each batch is added whole or not at all)\n", added, ix.Len())
			return ctx.Err()
		}
		hi := min(lo+addBatch, ix.Len())
		rows := make([]live.Row, 0, hi-lo)
		for i := lo; i < hi; i++ {
			rows = append(rows, live.Row{Item: ix.Items[i], Path: ix.Paths[i], Category: ix.Category(i), Embedding: ix.Embeddings[i*ix.Dim : (i+1)*ix.Dim]})
		}
		if _, err := cat.Add(m.Fingerprint, rows); err != nil {
			return fmt.Errorf("adding to %s (%d of %d images added): %w", *indexPath, added, ix.Len(), err)
		}
		added += len(rows)
	}
	v := cat.View()
	fmt.Fprintf(stdout, "catalog %s: added %d images of %d items; now %d images (%d removed ones kept until 'retrieve compact')\n", *indexPath, added, rep.Items, v.Rows(), v.Removed)
	return nil
}

func runRemove(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("remove")
	indexPath := fs.String("index", "", "catalog folder to remove from")
	items := fs.String("item", "", "remove every image of these item ids (comma-separated)")
	paths := fs.String("path", "", "remove the images with these paths (comma-separated)")
	ids := fs.String("id", "", "remove the rows with these row ids (comma-separated)")
	if _, err := parse(fs, args, stderr, removeArgs, false); err != nil {
		return err
	}
	given := 0
	for _, s := range []string{*items, *paths, *ids} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return usagef("give exactly one of -item, -path and -id")
	}
	var (
		kind  live.KeyKind
		ints  []int64
		names []string
	)
	switch {
	case *paths != "":
		kind = live.ByPath
		for _, p := range strings.Split(*paths, ",") {
			names = append(names, p)
			if abs, err := filepath.Abs(p); err == nil && abs != p {
				names = append(names, abs)
			}
		}
	default:
		list, flagName := *items, "-item"
		kind = live.ByItem
		if *ids != "" {
			list, flagName, kind = *ids, "-id", live.ByID
		}
		for _, f := range strings.Split(list, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				return usagef("%s: %q is not an integer", flagName, f)
			}
			ints = append(ints, v)
		}
	}
	cat, err := openCatalog(*indexPath, stderr)
	if err != nil {
		return err
	}
	defer cat.Close()
	n, err := cat.Remove(kind, ints, names)
	if err != nil {
		return err
	}
	v := cat.View()
	if n == 0 {
		return fmt.Errorf("no image of the catalog matches (by %s): nothing removed", kind)
	}
	fmt.Fprintf(stdout, "catalog %s: removed %d images; now %d images (%d removed ones kept until 'retrieve compact')\n", *indexPath, n, v.Rows(), v.Removed)
	return nil
}

func runCompact(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("compact")
	indexPath := fs.String("index", "", "catalog folder to compact, or a single-file index to make a catalog of (with -out)")
	out := fs.String("out", "", "with a single-file -index: the catalog folder to create")
	prune := fs.Bool("prune-images", true, "delete the images the service kept for rows no longer in the catalog (images/)")
	ann := fs.String("ann", live.ANNAuto, "approximate index: auto (from 50,000 images on), ivf (always) or none")
	lists := fs.Int("lists", 0, "-ann: inverted lists (0: 4·√images)")
	storage := fs.String("storage", string(ivf.FP32), "-ann: how the approximate index holds the rows: fp32, fp16 or int8 (compressed: candidates re-ranked with the exact rows; less memory)")
	if _, err := parse(fs, args, stderr, compactArgs, false); err != nil {
		return err
	}
	if *indexPath == "" {
		return usagef("-index is required")
	}
	if !live.IsCatalog(*indexPath) {
		if *out == "" {
			return usagef("-index %s is not a catalog folder: to make a catalog of a single-file index give -out FOLDER", *indexPath)
		}
		ix, err := retrieval.LoadIndex(*indexPath)
		if err != nil {
			return fmt.Errorf("-index: %w", err)
		}
		cat, err := live.Create(*out, ix, live.Options{Log: stderr})
		if err != nil {
			return fmt.Errorf("-out: %w", err)
		}
		defer cat.Close()
		fmt.Fprintf(stdout, "catalog %s: %d images from %s\n", *out, cat.View().Rows(), *indexPath)
		return nil
	}
	if *out != "" {
		return usagef("-out applies to a single-file -index only (a catalog is compacted in place)")
	}
	cat, err := openCatalog(*indexPath, stderr)
	if err != nil {
		return err
	}
	defer cat.Close()
	switch *ann {
	case live.ANNAuto, live.ANNIVF, live.ANNNone:
	default:
		return usagef("-ann %q: want auto, ivf or none", *ann)
	}
	if *lists < 0 {
		return usagef("-lists must be 0 or more, got %d", *lists)
	}
	st, err := ivf.ParseStorage(*storage)
	if err != nil {
		return usagef("-storage %q: want fp32, fp16 or int8", *storage)
	}
	rep, err := cat.CompactWith(live.CompactOptions{ANN: *ann, IVF: ivf.Config{Lists: *lists, Storage: st}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "catalog %s: generation %d, %d images kept, %d removed ones dropped\n", *indexPath, rep.Generation, rep.Rows, rep.Dropped)
	if rep.Lists > 0 {
		fmt.Fprintf(stdout, "approximate index: %d lists over the %d images, %s, %s (searches aim at recall@10 0.95; -exact, -recall, -nprobe change it)\n", rep.Lists, rep.Rows, rep.Storage, bytesize.Format(rep.ANNBytes))
	}
	if *prune {
		n, err := pruneImages(cat)
		if err != nil {
			return fmt.Errorf("-prune-images: %w", err)
		}
		if n > 0 {
			fmt.Fprintf(stdout, "deleted %d kept images no row uses\n", n)
		}
	}
	return nil
}

// pruneAge is how old a kept image must be to be pruned.
const pruneAge = 10 * time.Minute

// pruneImages deletes the files of the catalog's images folder that no
// row of the catalog names (and that are older than pruneAge).
func pruneImages(cat *live.Catalog) (int, error) {
	dir := filepath.Join(cat.Dir(), serve.ImagesDir)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	v := cat.View()
	for i, p := range v.Paths {
		if v.Live(i) && filepath.Dir(p) == abs {
			used[filepath.Base(p)] = true
		}
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() || used[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		// A service may have just kept an image whose row it is adding.
		if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < pruneAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}
