package main

// retrieve index: embed a gallery (a folder, a TSV manifest or a data
// set's gallery split) into an index file.

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/dmlgo/dmlgo/catalog"
	"github.com/dmlgo/dmlgo/catalog/live"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
)

func runIndex(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("index")
	var mf modelFlags
	mf.register(fs)
	var df decodeFlags
	df.register(fs)
	out := fs.String("out", "gallery.safetensors", "index file to write (safetensors)")
	dir := fs.String("dir", "", "index the images (.jpg, .jpeg, .png) under this folder, recursively")
	itemsFrom := fs.String("items-from", catalog.ItemsFromRow, "-dir: item ids from the file's row number (row), or its parent folder's name when an integer (dirname)")
	manifest := fs.String("manifest", "", "index a TSV manifest's gallery rows (or, without any, its shop rows)")
	catalogDir := fs.String("catalog", "", "write a catalog folder (changed later by add, remove, compact) instead of the -out file")
	category := fs.String("category", "", "category of the images that have none of their own (all of -dir)")
	npy := fs.String("npy", "", "also export embeddings.npy, items.npy and manifest.json into this folder (faiss, vector databases)")
	spec := sets.DefaultSpec()
	spec.RegisterFlags(fs)
	if _, err := parse(fs, args, stderr, indexArgs, false); err != nil {
		return err
	}
	if err := mf.check(); err != nil {
		return err
	}
	if err := df.apply(); err != nil {
		return err
	}
	if *out == "" && *catalogDir == "" {
		return usagef("-out: give the index file to write")
	}
	if *catalogDir != "" && flagGiven(fs, "out") {
		return usagef("give -out (a single-file index) or -catalog (a catalog folder), not both")
	}
	if *dir != "" && *manifest != "" {
		return usagef("give one gallery: -dir or -manifest (or data flags), not both")
	}
	if *dir != "" || *manifest != "" {
		allowed := map[string]bool{"strict": true}
		if *manifest != "" {
			allowed["image-root"], allowed["gallery-val"] = true, true
		}
		var bad []string
		fs.Visit(func(f *flag.Flag) {
			if isDataFlag(f.Name) && !allowed[f.Name] {
				bad = append(bad, "-"+f.Name)
			}
		})
		if len(bad) > 0 {
			return usagef("%s: data set flags do not apply to -dir or -manifest", strings.Join(bad, ", "))
		}
	}
	if flagGiven(fs, "items-from") && *dir == "" {
		return usagef("-items-from applies to -dir only")
	}
	switch *itemsFrom {
	case catalog.ItemsFromRow, catalog.ItemsFromDirname:
	default:
		return usagef("-items-from: unknown rule %q (want %s or %s)", *itemsFrom, catalog.ItemsFromRow, catalog.ItemsFromDirname)
	}
	m, err := mf.load(stderr)
	if err != nil {
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
	ix, rep, err := catalog.BuildIndex(ctx, m, src, model.EmbedOptions{Strict: spec.Strict, Progress: stderr, TTY: isTerminal(stderr)}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, rep)
	if *catalogDir != "" {
		cat, err := live.Create(*catalogDir, ix, live.Options{Log: stderr})
		if err != nil {
			return fmt.Errorf("-catalog: %w", err)
		}
		cat.Close()
		*out = *catalogDir
	} else if err := ix.Save(*out); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	fmt.Fprintf(stdout, "index %s: %d images of %d items, %d-dimensional, model %s (%s)\n", *out, rep.Rows, rep.Items, ix.Dim, ix.Fingerprint, m.Card.Arch)
	if rep.Skipped > 0 {
		noun := "files"
		if rep.Skipped == 1 {
			noun = "file"
		}
		fmt.Fprintf(stdout, "skipped %d %s (see above)\n", rep.Skipped, noun)
	}
	if *npy != "" {
		if err := ix.ExportNPY(*npy); err != nil {
			return fmt.Errorf("-npy: %w", err)
		}
		fmt.Fprintf(stdout, "exported %s: embeddings.npy (float32 %d×%d), items.npy (int64), manifest.json\n", *npy, ix.Len(), ix.Dim)
	}
	return nil
}

func isDataFlag(name string) bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	s := sets.DefaultSpec()
	s.RegisterFlags(fs)
	return fs.Lookup(name) != nil
}
