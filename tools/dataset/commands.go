package main

// The subcommands stats, sheet, export and manifest.

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
	"github.com/dmlgo/dmlgo/data/sets"
)

func runStats(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stats", stderr)
	spec := sets.DefaultSpec()
	spec.RegisterFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	set, err := sets.Open(spec, stderr)
	if err != nil {
		return err
	}
	ds := set.Dataset
	rep := statsReport{
		Description: set.Description, Kind: spec.Kind,
		Stats:       set.Manifest.Stats(),
		TrainImages: ds.Train.Len(), Classes: len(ds.Classes), Queries: ds.Query.Len(), Gallery: ds.Gallery.Len(),
		Excluded: len(ds.Excluded), Warnings: ds.Warnings,
		LoadSeconds: set.LoadTime.Seconds(),
	}
	if b := set.Benchmark; b != nil {
		rep.FMNIST = &b.Config
		rep.Source = &sourceSummary{Origin: b.Source.Origin, Images: b.Source.Len(), Skipped: b.Source.TotalSkipped(),
			Integrity: b.Source.Integrity, RenderMS: b.Elapsed.Milliseconds()}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "%s\n\n%s\n\n", rep.Description, rep.Stats)
	fmt.Fprintf(stdout, "protocol: train %d images of %d classes; %d queries; gallery %d images",
		rep.TrainImages, rep.Classes, rep.Queries, rep.Gallery)
	if rep.Excluded > 0 {
		fmt.Fprintf(stdout, "; %d queries excluded (item absent from the gallery)", rep.Excluded)
	}
	fmt.Fprintln(stdout)
	if s := rep.Source; s != nil {
		fmt.Fprintf(stdout, "source: %s, %d images, %d invalid rows skipped, %s\n", s.Origin, s.Images, s.Skipped, s.Integrity)
		fmt.Fprintf(stdout, "rendered %d views in %d ms\n", rep.Stats.Rows, s.RenderMS)
	}
	if ds.Warnings.Total() > 0 {
		fmt.Fprintf(stdout, "warnings:\n  %s\n", strings.ReplaceAll(ds.Warnings.String(), "\n", "\n  "))
	} else {
		fmt.Fprintln(stdout, "warnings: none")
	}
	fmt.Fprintf(stdout, "loaded in %.2f s\n", rep.LoadSeconds)
	return nil
}

func runSheet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sheet", stderr)
	path := fs.String("data-path", "", "Fashion-MNIST archive or folder (default $DMLGO_DATA or .cache/data)")
	shifts := fs.String("shifts", "moderate", "comma-separated shifts to show side by side ("+strings.Join(fmnist.ShiftNames, ", ")+", or all)")
	items := fs.Int("items", 10, "number of items (lines), spread over the categories")
	views := fs.Int("views", 3, "consumer views per shift")
	seed := fs.Uint64("data-seed", 1, "benchmark seed (the views match a benchmark built with this seed)")
	scale := fs.Int("scale", 3, "pixel magnification")
	out := fs.String("o", "fmnist-c2s-sheet.png", "output PNG file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *items <= 0 || *items > 1000 {
		return fmt.Errorf("-items %d must be in 1..1000", *items)
	}
	if *views <= 0 || *views > 20 {
		return fmt.Errorf("-views %d must be in 1..20", *views)
	}
	if *scale <= 0 || *scale > 16 {
		return fmt.Errorf("-scale %d must be in 1..16", *scale)
	}
	names := strings.Split(*shifts, ",")
	if *shifts == "all" {
		names = fmnist.ShiftNames[1:]
	}
	var shs []fmnist.Shift
	for _, n := range names {
		sh, err := fmnist.ShiftLevel(strings.TrimSpace(n))
		if err != nil {
			return fmt.Errorf("-shifts: %w", err)
		}
		shs = append(shs, sh)
	}
	p := *path
	if p == "" {
		p = fmnist.DefaultDir()
	}
	src, err := fmnist.Load(p)
	if err != nil {
		return err
	}
	img, err := fmnist.ContactSheet(src, fmnist.SheetOptions{
		Items: fmnist.DefaultSheetItems(src, *items), Shifts: shs, Views: *views, Seed: *seed, Scale: *scale,
	})
	if err != nil {
		return err
	}
	if err := writeFile(*out, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (%dx%d): %d items, shop view then %d views under %s\n",
		*out, img.Rect.Dx(), img.Rect.Dy(), *items, *views, strings.Join(names, ", "))
	fmt.Fprintln(stdout, *out)
	return nil
}

func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	spec := sets.DefaultSpec()
	spec.RegisterFlags(fs)
	out := fs.String("o", "fmnist-c2s-export", "output folder")
	if err := parse(fs, args); err != nil {
		return err
	}
	if spec.Kind != sets.FMNISTC2S {
		return fmt.Errorf("-data %s: export writes the in-memory FMNIST-C2S benchmark; use 'manifest' for file-based sets", spec.Kind)
	}
	set, err := sets.Open(spec, stderr)
	if err != nil {
		return err
	}
	em, err := fmnist.Export(set.Benchmark, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %d rows to %s:\n", em.Rows, *out)
	for _, name := range []string{"images", "item_ids", "labels", "domains", "splits", "categories", "views"} {
		a := em.Arrays[name]
		fmt.Fprintf(stderr, "  %-15s %-6s %v\n", a.File, a.DType, a.Shape)
	}
	fmt.Fprintf(stderr, "  %-15s\n", "manifest.json")
	fmt.Fprintln(stdout, filepath.Join(*out, "manifest.json"))
	return nil
}

func runManifest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("manifest", stderr)
	spec := sets.DefaultSpec()
	spec.Kind = sets.DeepFashionC2S
	spec.RegisterFlags(fs)
	out := fs.String("o", "-", "output TSV file (- for stdout)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if spec.Kind == sets.FMNISTC2S {
		return errors.New("-data fmnist-c2s: the benchmark lives in memory; use 'export' to write it")
	}
	set, err := sets.Open(spec, stderr)
	if err != nil {
		return err
	}
	m := set.Manifest
	if *out == "-" {
		return data.WriteTSV(stdout, m)
	}
	if err := writeFile(*out, func(w io.Writer) error { return data.WriteTSV(w, m) }); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %d rows to %s (paths relative to %s)\n", len(m.Rows), *out, m.Root)
	return nil
}

// writeFile writes through a temporary file renamed into place, so a
// failure leaves no half-written output.
func writeFile(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
