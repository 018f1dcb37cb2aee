// Command retrieve searches a shop gallery with a trained embedding model.
//
//	go run ./tools/retrieve index -ckpt runs/demo/best.ckpt -out gallery.safetensors
//	go run ./tools/retrieve index -ckpt runs/demo/best.ckpt -dir shop/ -items-from dirname -out shop.safetensors -npy shop-npy/
//	go run ./tools/retrieve query -ckpt runs/demo/best.ckpt -index gallery.safetensors -k 10 -grid grid.png photo.jpg
//	go run ./tools/retrieve eval  -ckpt runs/demo/best.ckpt -out runs/demo/eval
//	go run ./tools/retrieve eval  -compare runs/dml,runs/arcface -out runs
//	go run ./tools/retrieve serve -ckpt runs/demo/best.ckpt -index gallery.safetensors -addr :8080
//
// Progress goes to stderr; results (tables, JSON) to stdout; files are
// written atomically. Exit status: 0 success, 1 failure, 2 usage error,
// 130 interrupted (SIGINT or SIGTERM while indexing or evaluating).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/tools/internal/app"
)

type command struct {
	name, args, about string
	run               func(args []string, stdout, stderr io.Writer) error
}

// The synopsis of each subcommand.
const (
	indexArgs = "-ckpt FILE [-dir DIR [-items-from row|dirname] | -manifest FILE.tsv | data flags] [-out FILE] [-npy DIR]"
	queryArgs = "-ckpt FILE -index FILE [-k K] [-json] [-grid FILE.png] [-item ID | -manifest FILE.tsv] [-data-queries N] IMAGE..."
	evalArgs  = "-ckpt FILE [data flags] [-out DIR] [-json]  |  -compare RUN,RUN,... [-out DIR]"
	serveArgs = "-ckpt FILE -index FILE [-addr localhost:8080] [limits]"
)

var commands = []command{
	{"index", indexArgs,
		"embed a gallery (a folder of images, a TSV manifest's gallery, or a data set's gallery split) into an index file", runIndex},
	{"query", queryArgs,
		"search an index with query images: the top k matches as a table or JSON, and a PNG grid", runQuery},
	{"eval", evalArgs,
		"score a checkpoint on a data set's protocol (top-k, mAP, recall@k, precision@1), or compare runs' metrics.json", runEval},
	{"serve", serveArgs,
		"serve the index over HTTP: POST /v1/search, GET /healthz, a web page at /", runServe},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: retrieve SUBCOMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n         %s\n", c.name, c.args, c.about)
	}
	fmt.Fprintln(w, "\nRun 'retrieve SUBCOMMAND -h' for its flags.")
}

// run executes a command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		fmt.Fprintln(stderr, "\nretrieve: no subcommand given")
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stderr)
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		var ue usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, context.Canceled):
			fmt.Fprintf(stderr, "retrieve %s: interrupted: nothing written\n", c.name)
			return 130
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "retrieve %s: %v\nrun 'retrieve %s -h' for its flags\n", c.name, err, c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "retrieve %s: %v\n", c.name, err)
			return 1
		}
	}
	usage(stderr)
	fmt.Fprintf(stderr, "\nretrieve: unknown subcommand %q (want index, query, eval or serve)\n", args[0])
	return 2
}

// newFlags returns a flag set that reports its errors through parse.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("retrieve "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses flags and positional arguments in any order: flags may
// follow the arguments. -h prints the flags. want says whether positional
// arguments are allowed.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer, about string, want bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stderr, "usage: %s %s\n\nflags:\n", fs.Name(), about)
				fs.SetOutput(stderr)
				fs.PrintDefaults()
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if !want {
			return nil, usagef("unexpected argument %q (flags come as -name value)", args[0])
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

// modelFlags are the flags every model-loading subcommand shares.
type modelFlags struct {
	ckpt string
	opts app.ModelOptions
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ckpt, "ckpt", "", "checkpoint of a training run (last.ckpt or best.ckpt)")
	fs.StringVar(&f.opts.Device, "device", "", "auto, cpu or cuda (default $DMLGO_DEVICE or auto)")
	fs.IntVar(&f.opts.Threads, "threads", 0, "CPU threads, 0 to 1024 (0: all cores)")
	fs.IntVar(&f.opts.Batch, "batch", 64, "images per forward pass, 1 to 65536")
	fs.IntVar(&f.opts.Workers, "workers", 0, "image decoding goroutines, 0 to 1024 (0: one per core)")
}

func (f *modelFlags) check() error {
	if f.ckpt == "" {
		return usagef("-ckpt is required: the checkpoint of a training run (e.g. runs/demo/best.ckpt)")
	}
	switch {
	case f.opts.Batch < 1 || f.opts.Batch > 65536:
		return usagef("-batch must be from 1 to 65536, got %d", f.opts.Batch)
	case f.opts.Threads < 0 || f.opts.Threads > 1024:
		return usagef("-threads must be from 0 (all cores) to 1024, got %d", f.opts.Threads)
	case f.opts.Workers < 0 || f.opts.Workers > 1024:
		return usagef("-workers must be from 0 (one per core) to 1024, got %d", f.opts.Workers)
	}
	return nil
}

// decodeFlags bound the decoding of local image files (index, query, eval):
// the same limits as the service's uploads, raised by the flags.
type decodeFlags struct {
	pixels int64
	bytes  byteSize
}

func (f *decodeFlags) register(fs *flag.FlagSet) {
	std := data.StandardDecodeLimits()
	f.pixels, f.bytes = std.MaxPixels, byteSize(std.MaxBytes)
	fs.Int64Var(&f.pixels, "max-pixels", f.pixels, "largest image decoded, width × height")
	fs.Var(&f.bytes, "max-decode-bytes", "most memory one image may take to decode, e.g. 256MiB (an image past it is skipped, or an error with -strict)")
}

// apply checks the limits and makes them the process's decoding limits.
func (f *decodeFlags) apply() error {
	l := data.DecodeLimits{MaxPixels: f.pixels, MaxBytes: int64(f.bytes)}
	if l.MaxPixels < 1 {
		return usagef("-max-pixels must be positive, got %d", l.MaxPixels)
	}
	if l.MaxBytes < 1 {
		return usagef("-max-decode-bytes must be positive, got %d", l.MaxBytes)
	}
	data.DefaultDecodeLimits = l
	return nil
}

func (f *modelFlags) load(stderr io.Writer) (*app.Model, error) {
	m, err := app.LoadModel(f.ckpt, f.opts, stderr)
	if err != nil {
		var de *app.DeviceError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("-ckpt: %w", err)
	}
	fmt.Fprintf(stderr, "model: %s\n", m.Describe())
	return m, nil
}

// dataSpec is the data set a subcommand uses: the checkpoint's training
// data, changed by the data flags given (a different -data starts from the
// defaults instead, so that nothing of the checkpoint's data carries over).
func dataSpec(m *app.Model, fs *flag.FlagSet, given sets.Spec) (sets.Spec, error) {
	base := m.Run.Config.Data
	if flagGiven(fs, "data") && given.Kind != base.Kind {
		base = sets.DefaultSpec()
	}
	spec, err := app.ApplyDataFlags(base, fs)
	if err != nil {
		return spec, usageError{err}
	}
	if err := app.ValidateSpec(&spec); err != nil {
		return spec, usageError{err}
	}
	return spec, nil
}

// interruptible returns a context cancelled by the first SIGINT or
// SIGTERM: loading, embedding and evaluation stop at their next batch and
// the command exits 130. A second signal ends the process at once (the
// signal's default action).
func interruptible() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// ---- index ----

func runIndex(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("index")
	var mf modelFlags
	mf.register(fs)
	var df decodeFlags
	df.register(fs)
	out := fs.String("out", "gallery.safetensors", "index file to write (safetensors)")
	dir := fs.String("dir", "", "index the images (.jpg, .jpeg, .png) under this folder, recursively")
	itemsFrom := fs.String("items-from", app.ItemsFromRow, "-dir: item ids from the file's row number (row), or its parent folder's name when an integer (dirname)")
	manifest := fs.String("manifest", "", "index a TSV manifest's gallery rows (or, without any, its shop rows)")
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
	if *out == "" {
		return usagef("-out: give the index file to write")
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
	case app.ItemsFromRow, app.ItemsFromDirname:
	default:
		return usagef("-items-from: unknown rule %q (want %s or %s)", *itemsFrom, app.ItemsFromRow, app.ItemsFromDirname)
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	src := app.IndexSource{Dir: *dir, ItemsFrom: *itemsFrom, Manifest: *manifest, ImageRoot: spec.ImageRoot, GalleryWithVal: spec.GalleryWithVal}
	if *dir == "" && *manifest == "" {
		s, err := dataSpec(m, fs, spec)
		if err != nil {
			return err
		}
		src.Data = &s
	}
	ctx, stop := interruptible()
	defer stop()
	ix, rep, err := app.BuildIndex(ctx, m, src, app.EmbedOptions{Strict: spec.Strict, Progress: stderr, TTY: isTerminal(stderr)}, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, rep)
	if err := ix.Save(*out); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	fmt.Fprintf(stdout, "index %s: %d images of %d items, %d-dimensional, model %s (%s)\n", *out, rep.Rows, rep.Items, ix.Dim, ix.Fingerprint, m.Run.Config.Model)
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

// ---- query ----

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
	case *dataQueries < 0:
		return usagef("-data-queries must be 0 or more, got %d", *dataQueries)
	case len(pos) == 0 && *dataQueries == 0:
		return usagef("give query images (files, or fmnist-c2s:row=N), or -data-queries N")
	case *item != "" && *manifest != "":
		return usagef("give the queries' item with -item or -manifest, not both")
	}
	var box = app.QueryImage{}.Box
	if *boxFlag != "" {
		if box, err = app.ParseBox(*boxFlag); err != nil {
			return usagef("-box: %v", err)
		}
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	ix, err := retrieval.LoadIndex(*indexPath)
	if err != nil {
		return fmt.Errorf("-index: %w", err)
	}
	if err := m.CheckIndex(ix, *indexPath); err != nil {
		return err
	}
	var itemID int64
	if *item != "" {
		if itemID, err = app.ParseItem(ix, *item); err != nil {
			return usagef("-item: %v", err)
		}
	}
	var known map[string]int64
	if *manifest != "" {
		if known, err = app.ManifestItems(*manifest); err != nil {
			return fmt.Errorf("-manifest: %w", err)
		}
	}
	gal := app.NewGallery(ix, m.Run.Config.Data, stderr)
	var qs []app.QueryImage
	for _, a := range pos {
		q, err := gal.LoadQuery(a)
		if err != nil {
			return fmt.Errorf("query image: %w", err)
		}
		q.Box = box
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
	res, err := app.Query(context.Background(), m, ix, qs, *k)
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
		title := fmt.Sprintf("top-%d of %s (%d images), model %s %s", *k, filepath.Base(*indexPath), ix.Len(), m.Run.Config.Model, m.Fingerprint)
		img := app.Grid(qs, res, gal, app.GridOptions{Thumb: *thumb, Title: title})
		if err := app.WritePNG(*grid, img); err != nil {
			return fmt.Errorf("-grid: %w", err)
		}
		fmt.Fprintf(stderr, "grid: %s\n", *grid)
	}
	return nil
}

// printResults writes each query's matches as a table, then how many
// queries with a known item found it.
func printResults(w io.Writer, res []app.QueryResult) {
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

// ---- eval ----

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval")
	var mf modelFlags
	mf.register(fs)
	var df decodeFlags
	df.register(fs)
	out := fs.String("out", "", "output folder (default: eval/ beside the checkpoint; with -compare, the current folder)")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of tables")
	compare := fs.String("compare", "", "comma-separated run folders holding metrics.json: one table and one plot (compare.png)")
	spec := sets.DefaultSpec()
	spec.RegisterFlags(fs)
	if _, err := parse(fs, args, stderr, evalArgs, false); err != nil {
		return err
	}
	if *compare != "" {
		if mf.ckpt != "" || app.DataFlagsGiven(fs) {
			return usagef("-compare reads the runs' metrics.json: it takes no -ckpt and no data flags")
		}
		return runCompare(*compare, *out, *asJSON, stdout, stderr)
	}
	if err := mf.check(); err != nil {
		return err
	}
	if err := df.apply(); err != nil {
		return err
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	s, err := dataSpec(m, fs, spec)
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(filepath.Dir(mf.ckpt), "eval")
	}
	ctx, stop := interruptible()
	defer stop()
	res, err := m.EvaluateData(ctx, s, stderr)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("%s %s", m.Run.Config.Loss, filepath.Base(mf.ckpt))
	if err := app.WriteEval(dir, res, label); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	fmt.Fprintf(stderr, "evaluated in %.1fs: %d queries, %d gallery images (%d queries excluded)\n", res.Seconds, res.Queries, res.Gallery, res.Excluded)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%s\n\n%s: %s\n\n%s\n", retrieval.Definitions, mf.ckpt, res.Data, app.EvalTables(res.Metrics))
	}
	fmt.Fprintf(stderr, "wrote %s, %s, %s\n", filepath.Join(dir, "metrics.json"), filepath.Join(dir, "eval.json"), filepath.Join(dir, "topk.png"))
	return nil
}

func runCompare(list, out string, asJSON bool, stdout, stderr io.Writer) error {
	var dirs []string
	for _, d := range strings.Split(list, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return usagef("-compare: give run folders separated by commas")
	}
	curves, err := app.LoadRuns(dirs)
	if err != nil {
		return fmt.Errorf("-compare: %w", err)
	}
	if out == "" {
		out = "."
	}
	plot := filepath.Join(out, "compare.png")
	if err := app.WriteCompare(plot, curves); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	if asJSON {
		runs := map[string]map[string]float64{}
		for _, c := range curves {
			runs[c.Label] = c.Metrics
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(runs); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, app.CompareTable(curves))
	}
	fmt.Fprintf(stderr, "plot: %s\n", plot)
	return nil
}

// ---- serve ----

// byteSize is a flag holding a size in bytes ("10MiB", "512KiB", "1048576").
type byteSize int64

func (b *byteSize) String() string { return app.FormatBytes(int64(*b)) }
func (b *byteSize) Set(s string) error {
	n, err := app.ParseBytes(s)
	*b = byteSize(n)
	return err
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve")
	var mf modelFlags
	mf.register(fs)
	cfg := app.DefaultServerConfig()
	indexPath := fs.String("index", "", "index file made by 'retrieve index' with the same checkpoint")
	addr := fs.String("addr", "localhost:8080", "address to listen on (:8080 for every interface)")
	fs.IntVar(&cfg.DefaultK, "k", cfg.DefaultK, "results per search without ?k=")
	fs.IntVar(&cfg.MaxK, "max-k", cfg.MaxK, "largest ?k= accepted")
	upload := byteSize(cfg.MaxUpload)
	fs.Var(&upload, "max-upload", "largest request body (413 past it), e.g. 10MiB")
	fs.IntVar(&cfg.MaxUploads, "max-uploads", cfg.MaxUploads, "uploads received at once (503 with Retry-After past it)")
	minRate := byteSize(cfg.MinUploadRate)
	fs.Var(&minRate, "min-upload-rate", "slowest an upload may arrive after -upload-grace, per second (408 below it; 0: off)")
	fs.DurationVar(&cfg.UploadGrace, "upload-grace", cfg.UploadGrace, "time an upload may take before -min-upload-rate applies")
	fs.IntVar(&cfg.MaxPixels, "max-pixels", cfg.MaxPixels, "largest uploaded image, width × height (400 past it)")
	decodeBytes := byteSize(cfg.MaxDecodeBytes)
	fs.Var(&decodeBytes, "max-decode-bytes", "most memory one image may take to decode (400 past it), e.g. 256MiB")
	decodeBudget := byteSize(cfg.DecodeBudget)
	fs.Var(&decodeBudget, "decode-budget", "memory shared by the decodes in progress; a decode waits for its share (at most -queue-timeout)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "open connections at most (more clients wait to be accepted)")
	thumbCache := byteSize(cfg.ThumbCache)
	fs.Var(&thumbCache, "thumb-cache", "memory for the gallery thumbnails kept, e.g. 32MiB")
	fs.StringVar(&cfg.Token, "token", os.Getenv("DMLGO_TOKEN"), "access token the API requires as \"Authorization: Bearer TOKEN\" (default $DMLGO_TOKEN; empty: none)")
	cors := fs.String("cors-origin", "", "origins allowed to call the API from a browser, comma-separated, or * (default: none)")
	fs.BoolVar(&cfg.ExposePaths, "expose-paths", false, "show the server's file paths in responses (default: paths relative to the indexed folder)")
	fs.IntVar(&cfg.Queue, "queue", cfg.Queue, "searches that may wait while one runs (503 with Retry-After past it)")
	fs.DurationVar(&cfg.QueueTimeout, "queue-timeout", cfg.QueueTimeout, "longest wait for the model (503 with Retry-After past it)")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "time to read a request's headers")
	fs.DurationVar(&cfg.ReadTimeout, "read-timeout", cfg.ReadTimeout, "time to read a whole request, upload included")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", cfg.WriteTimeout, "time from the end of the request headers to the end of the response")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "on SIGTERM/SIGINT, how long requests in flight may take to finish")
	fs.IntVar(&cfg.Thumb, "thumb", cfg.Thumb, "largest side of the gallery images served")
	if _, err := parse(fs, args, stderr, serveArgs, false); err != nil {
		return err
	}
	cfg.MaxUpload, cfg.MinUploadRate = int64(upload), int64(minRate)
	cfg.MaxDecodeBytes, cfg.DecodeBudget, cfg.ThumbCache = int64(decodeBytes), int64(decodeBudget), int64(thumbCache)
	for _, o := range strings.Split(*cors, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.CORSOrigins = append(cfg.CORSOrigins, o)
		}
	}
	cfg.Log = stderr
	if err := mf.check(); err != nil {
		return err
	}
	if *indexPath == "" {
		return usagef("-index is required: the index file made by 'retrieve index'")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	for _, d := range []time.Duration{cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout, cfg.ShutdownTimeout} {
		if d <= 0 {
			return usagef("timeouts must be positive, got %v", d)
		}
	}
	// Decoded uploads turn into garbage quickly: a memory limit makes the
	// collector return it before the heap doubles (GOMEMLIMIT overrides).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cfg.DecodeBudget + 256<<20)
	}
	m, err := mf.load(stderr)
	if err != nil {
		return err
	}
	ix, err := retrieval.LoadIndex(*indexPath)
	if err != nil {
		return fmt.Errorf("-index: %w", err)
	}
	gal := app.NewGallery(ix, m.Run.Config.Data, stderr)
	if err := gal.Prepare(); err != nil {
		return fmt.Errorf("gallery images: %w", err)
	}
	srv, err := app.NewServer(m, ix, *indexPath, gal, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Serve(ctx, ln)
}
