package main

// retrieve query: search an index with query images; a table, JSON or a
// PNG grid.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/catalog/live"
)

func runQuery(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query")
	var mf modelFlags
	mf.register(fs)
	var df decodeFlags
	df.register(fs)
	indexPath := fs.String("index", "", "index file made by 'retrieve index' with the same checkpoint")
	k := fs.Int("k", 5, "results per query")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	grid := fs.String("grid", "", "draw the queries and their matches into this PNG")
	thumb := fs.Int("thumb", 96, "-grid: side of each image in pixels")
	item := fs.String("item", "", "the true item of the queries (an id, or an item name of the index): matches are marked same/other")
	manifest := fs.String("manifest", "", "a TSV manifest listing the query files, to know their items")
	dataQueries := fs.Int("data-queries", 0, "add N queries of the index's data set, evenly spaced over its query set (items known)")
	var mode live.SearchParams
	fs.StringVar(&mode.Category, "category", "", "search only the gallery images of this category")
	fs.BoolVar(&mode.Exact, "exact", false, "a catalog with an approximate index: search every image exactly")
	fs.Float64Var(&mode.Recall, "recall", 0, "a catalog with an approximate index: the recall@10 to aim at, in (0, 1] (0: 0.95)")
	fs.IntVar(&mode.NProbe, "nprobe", 0, "a catalog with an approximate index: lists to scan per query (0: from -recall)")
	boxFlag := fs.String("box", "", "crop the query images given as arguments to x1,y1,x2,y2 (pixels) first")
	pos, err := parse(fs, args, stderr, queryArgs, true)
	if err != nil {
		return err
	}
	if err := mf.check(); err != nil {
		return err
	}
	if err := df.apply(); err != nil {
		return err
	}
	switch {
	case *indexPath == "":
		return usagef("-index is required: the index file made by 'retrieve index'")
	case *k < 1:
		return usagef("-k must be at least 1, got %d", *k)
	case *thumb < 16:
		return usagef("-thumb must be at least 16, got %d", *thumb)
	case mode.Recall < 0 || mode.Recall > 1:
		return usagef("-recall must be in (0, 1], got %g", mode.Recall)
	case mode.NProbe < 0:
		return usagef("-nprobe must be 0 or more, got %d", mode.NProbe)
	case *dataQueries < 0:
		return usagef("-data-queries must be 0 or more, got %d", *dataQueries)
	case len(pos) == 0 && *dataQueries == 0:
		return usagef("give query images (files, or fmnist-c2s:row=N), or -data-queries N")
	case *item != "" && *manifest != "":
		return usagef("give the queries' item with -item or -manifest, not both")
	}
	var box = catalog.QueryImage{}.Box
	if *boxFlag != "" {
		if box, err = catalog.ParseBox(*boxFlag); err != nil {
			return usagef("-box: %v", err)
		}
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	v, cat, err := openIndex(*indexPath, stderr)
	if err != nil {
		return err
	}
	if cat != nil {
		defer cat.Close()
	}
	ix := v.Index
	if err := m.CheckIndex(ix, *indexPath); err != nil {
		return err
	}
	var itemID int64
	if *item != "" {
		if itemID, err = catalog.ParseItem(ix, *item); err != nil {
			return usagef("-item: %v", err)
		}
	}
	var known map[string]int64
	if *manifest != "" {
		if known, err = catalog.ManifestItems(*manifest); err != nil {
			return fmt.Errorf("-manifest: %w", err)
		}
	}
	gal := catalog.NewGallery(ix, m.Card.Data, stderr)
	var qs []catalog.QueryImage
	for _, a := range pos {
		q, err := gal.LoadQueryFor(a, m.Transform, box)
		if err != nil {
			return fmt.Errorf("query image: %w", err)
		}
		switch {
		case *item != "":
			q.Item, q.HasItem = itemID, true
		case known != nil:
			abs, _ := filepath.Abs(a)
			if id, ok := known[abs]; ok {
				q.Item, q.HasItem = id, true
			} else {
				fmt.Fprintf(stderr, "note: %s is not in -manifest %s: its item is unknown\n", a, *manifest)
			}
		}
		qs = append(qs, q)
	}
	if *dataQueries > 0 {
		dq, err := gal.DataQueries(*dataQueries)
		if err != nil {
			return fmt.Errorf("-data-queries: %w", err)
		}
		qs = append(qs, dq...)
	}
	res, err := catalog.Query(context.Background(), m, v, qs, *k, mode)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"index": *indexPath, "fingerprint": ix.Fingerprint, "k": *k, "queries": res}); err != nil {
			return err
		}
	} else {
		printResults(stdout, res)
	}
	if *grid != "" {
		title := fmt.Sprintf("top-%d of %s (%d images), model %s %s", *k, filepath.Base(*indexPath), v.Rows(), m.Card.Arch, m.Fingerprint)
		if mode.Category != "" {
			title += ", category " + mode.Category
		}
		img := catalog.Grid(qs, res, gal, catalog.GridOptions{Thumb: *thumb, Title: title})
		if err := catalog.WritePNG(*grid, img); err != nil {
			return fmt.Errorf("-grid: %w", err)
		}
		fmt.Fprintf(stderr, "grid: %s\n", *grid)
	}
	return nil
}

// printResults writes each query's matches as a table, then how many
// queries with a known item found it.
func printResults(w io.Writer, res []catalog.QueryResult) {
	known, first, within := 0, 0, 0
	for i, r := range res {
		head := fmt.Sprintf("query %d: %s", i+1, r.Query)
		if r.Item != nil {
			known++
			if r.FirstHit > 0 {
				within++
				if r.FirstHit == 1 {
					first++
				}
				head += fmt.Sprintf(" (item %d, found at rank %d)", *r.Item, r.FirstHit)
			} else {
				head += fmt.Sprintf(" (item %d, not in the top %d)", *r.Item, len(r.Matches))
			}
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, head)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if r.Item != nil {
			fmt.Fprintln(tw, "rank\tscore\titem\tmatch\tpath")
		} else {
			fmt.Fprintln(tw, "rank\tscore\titem\tpath")
		}
		for _, m := range r.Matches {
			item := fmt.Sprint(m.Item)
			if m.ItemName != "" {
				item += " (" + m.ItemName + ")"
			}
			if m.SameItem != nil {
				mark := "other"
				if *m.SameItem {
					mark = "SAME"
				}
				fmt.Fprintf(tw, "%d\t%.4f\t%s\t%s\t%s\n", m.Rank, m.Score, item, mark, m.Path)
			} else {
				fmt.Fprintf(tw, "%d\t%.4f\t%s\t%s\n", m.Rank, m.Score, item, m.Path)
			}
		}
		tw.Flush()
	}
	if known > 0 {
		k := len(res[0].Matches)
		fmt.Fprintf(w, "\n%d queries with a known item: %d found at rank 1, %d within the top %d\n", known, first, within, k)
	}
}
