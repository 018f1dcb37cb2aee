// Command retrieve searches a shop gallery with a trained embedding model.
//
//	go run ./tools/retrieve index -ckpt runs/demo/best.ckpt -out gallery.safetensors
//	go run ./tools/retrieve index -ckpt runs/demo/best.ckpt -dir shop/ -items-from dirname -out shop.safetensors -npy shop-npy/
//	go run ./tools/retrieve query -ckpt runs/demo/best.ckpt -index gallery.safetensors -k 10 -grid grid.png photo.jpg
//	go run ./tools/retrieve eval  -ckpt runs/demo/best.ckpt -out runs/demo/eval
//	go run ./tools/retrieve eval  -compare runs/dml,runs/arcface -out runs
//	go run ./tools/retrieve serve -ckpt runs/demo/best.ckpt -index gallery.safetensors -addr :8080
//	go run ./tools/retrieve index -ckpt runs/demo/best.ckpt -dir shop/ -catalog shop.catalog
//	go run ./tools/retrieve add -ckpt runs/demo/best.ckpt -index shop.catalog -dir new-arrivals/ -category dresses
//	go run ./tools/retrieve remove -index shop.catalog -item 42,43
//	go run ./tools/retrieve compact -index shop.catalog
//
// Progress goes to stderr; results (tables, JSON) to stdout; files are
// written atomically. Exit status: 0 success, 1 failure, 2 usage error,
// 130 interrupted (SIGINT or SIGTERM while indexing or evaluating).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/bytesize"
	"github.com/dmlgo/dmlgo/model"
)

type command struct {
	name, args, about string
	run               func(args []string, stdout, stderr io.Writer) error
}

// The synopsis of each subcommand.
const (
	indexArgs = "-ckpt FILE [-dir DIR [-items-from row|dirname] | -manifest FILE.tsv | data flags] [-category NAME] [-out FILE | -catalog FOLDER] [-npy DIR]"
	queryArgs = "-ckpt FILE -index FILE|FOLDER [-k K] [-category NAME] [-exact | -recall R | -nprobe N] [-json] [-grid FILE.png] [-item ID | -manifest FILE.tsv] [-data-queries N] IMAGE..."
	evalArgs  = "-ckpt FILE [data flags] [-out DIR] [-json]  |  -compare RUN,RUN,... [-out DIR]"
	serveArgs = "-ckpt FILE -index FILE|FOLDER [-addr localhost:8080] [-writable -token T] [limits]"
)

var commands = []command{
	{"index", indexArgs,
		"embed a gallery (a folder of images, a TSV manifest's gallery, or a data set's gallery split) into an index file", runIndex},
	{"query", queryArgs,
		"search an index with query images: the top k matches as a table or JSON, and a PNG grid", runQuery},
	{"eval", evalArgs,
		"score a checkpoint on a data set's protocol (top-k, mAP, recall@k, precision@1), or compare runs' metrics.json", runEval},
	{"serve", serveArgs,
		"serve the index over HTTP: POST /v1/search, GET /healthz, a web page at /; a catalog also POST/DELETE /v1/items", runServe},
	{"add", addArgs,
		"add images to a catalog folder (only they are embedded); searches of a running service see them", runAdd},
	{"remove", removeArgs,
		"remove images from a catalog folder by item id, path or row id", runRemove},
	{"compact", compactArgs,
		"rewrite a catalog without its removed rows (or make a catalog of a single-file index)", runCompact},
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
	fmt.Fprintf(stderr, "\nretrieve: unknown subcommand %q (want index, query, eval, serve, add, remove or compact)\n", args[0])
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
	opts model.Options
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ckpt, "ckpt", "", "checkpoint of a training run (last.ckpt or best.ckpt)")
	fs.StringVar(&f.opts.Device, "device", "", "auto, cpu or cuda (default $DMLGO_DEVICE or auto)")
	fs.IntVar(&f.opts.Threads, "threads", 0, "CPU threads, 0 to 1024 (0: all cores)")
	fs.IntVar(&f.opts.Batch, "batch", 64, "images per forward pass, 1 to 65536")
	fs.IntVar(&f.opts.Workers, "workers", 0, "image decoding goroutines, 0 to 1024 (0: one per core)")
	fs.StringVar(&f.opts.Precision, "precision", "fp32", "arithmetic of the convolutions: fp32; bf16 (bfloat16 products, float32 sums; needs AVX-512 BF16 faster than fp32 on this CPU, see DMLGO_BF16); int8 (int8 filters, uint8 activations scaled per image; needs AVX-512 VNNI); without the instructions it runs fp32 and says so")
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
	case !slices.Contains(backend.Precisions, f.opts.Precision):
		return usagef("-precision must be one of %s, got %q", strings.Join(backend.Precisions, ", "), f.opts.Precision)
	}
	return nil
}

// decodeFlags bound the decoding of local image files (index, query, eval):
// the same limits as the service's uploads, raised by the flags.
type decodeFlags struct {
	pixels int64
	bytes  bytesize.Value
}

func (f *decodeFlags) register(fs *flag.FlagSet) {
	std := data.StandardDecodeLimits()
	f.pixels, f.bytes = std.MaxPixels, bytesize.Value(std.MaxBytes)
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

func (f *modelFlags) load(stderr io.Writer) (*model.Model, error) {
	m, err := model.Load(f.ckpt, f.opts, stderr)
	if err != nil {
		var de *model.DeviceError
		var pe *model.PrecisionError
		if errors.As(err, &de) || errors.As(err, &pe) {
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
func dataSpec(m *model.Model, fs *flag.FlagSet, given sets.Spec) (sets.Spec, error) {
	base := m.Card.Data
	if flagGiven(fs, "data") && given.Kind != base.Kind {
		base = sets.DefaultSpec()
	}
	spec, err := sets.ApplyFlags(base, fs)
	if err != nil {
		return spec, usageError{err}
	}
	if err := spec.Validate(); err != nil {
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
