// Command bench measures dmlgo's kernels and models and prints one
// measurement per line as `name value unit`, the form the reference scripts
// in ../shared/bench print too.
//
//	go run ./tools/bench [flags] [gemm|train|embed|search|ann|photo|pipeline|layers|serve|all]
//
// (all is every suite but ann, photo and layers, which take minutes:
// approximate search of -nq queries in -n rows, see ann.go; ResNet-50/18
// at 224×224 and the photo pipeline, see photo.go; their convolutions
// one at a time, see layers.go. pipeline is the photo pipeline alone.) With --anchors it also runs the
// reference scripts (OpenBLAS through numpy, PyTorch, numpy search, faiss
// and hnswlib) in the same run, when a python3 with those modules
// is present, and prints `ratio_<name> value x`: our figure over the
// anchor's, measured side by side.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/backend"
	_ "github.com/dmlgo/dmlgo/backend/cuda"
)

type options struct {
	threads    int
	batch      int
	classes    int
	steps      int
	anchors    bool
	anchorsDir string
	device     string
	sizes      []int
	// profileAllocs turns allocation sampling on for the timed steps.
	profileAllocs bool
	// The ann suite: gallery rows, queries, k, rows added after the
	// build, the data's seed, and the recall–speed plot's file; the rows
	// from .npy files (annBase, annQueries) or embedded by a checkpoint
	// (annReal) instead of the mixture; the folder for the .npy files
	// faiss_exact_check.py reads.
	annN, annQ, annK, annAdds, annSeed int
	annPlot                            string
	annBase, annQueries, annReal       string
	annWriteNPY                        string
	annAnchor                          string // the anchor script ("": ann_anchor.py of -anchors-dir)
	annReplot                          string // a run's output to plot again
	// The photo suite: its architectures, and how many rounds of ours
	// and the anchor it runs in turn (the medians are reported).
	photoArchs []string
	rounds     int
	// The layers suite (layers.go): the batch and the precisions its
	// layers run at.
	layerBatch int
	layerPrecs []string
	// The serve figures (serve_latency.go): requests timed at
	// concurrency 1 (twice as many at 4), and the gallery's rows.
	serveN, serveRows int
}

func main() {
	var o options
	var sizes, cpuProfile, memProfile string
	flag.IntVar(&o.threads, "threads", runtime.GOMAXPROCS(0), "threads for the multi-threaded figures (and the PyTorch anchor)")
	flag.IntVar(&o.batch, "batch", 128, "batch size for train and embed")
	flag.IntVar(&o.classes, "classes", 10000, "classes of the cosface head in the train suite")
	flag.IntVar(&o.steps, "steps", 10, "timed steps for train and embed (after 3 warm-up steps)")
	flag.BoolVar(&o.anchors, "anchors", false, "also run the reference scripts and print ratios")
	flag.StringVar(&o.anchorsDir, "anchors-dir", filepath.Join("..", "shared", "bench"), "folder of blas_anchor.py, torch_anchor.py, search_anchor.py, ann_anchor.py")
	flag.StringVar(&o.device, "device", "", "backend: auto, cpu or cuda (default $DMLGO_DEVICE or auto)")
	flag.StringVar(&sizes, "sizes", "256,512,1024,2048", "GEMM sizes N (N×N×N)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	flag.IntVar(&o.annN, "n", 1000000, "ann: gallery rows (with -base: when given, the file's first n rows, else all; with -real: when given, n shop views, else all 70,000)")
	flag.IntVar(&o.annQ, "nq", 10000, "ann: queries (with -queries: when given, the file's first nq rows, else all; with -real: nq consumer views)")
	flag.IntVar(&o.annK, "k", 10, "ann: neighbours per query (recall@k)")
	flag.IntVar(&o.annAdds, "adds", 10000, "ann: rows added one at a time after the build (0: none)")
	flag.IntVar(&o.annSeed, "seed", 1, "ann: seed of the data")
	flag.StringVar(&o.annPlot, "ann-plot", "", "ann: write the recall–speed plot (PNG) to this file")
	flag.StringVar(&o.annReplot, "ann-replot", "", "ann: draw -ann-plot from this file of a run's output lines instead of running")
	flag.StringVar(&o.annBase, "base", "", "ann: search the rows of this float32 (n, d) .npy file instead of the mixture (with -queries; rows L2-normalised on load where they are not unit length)")
	flag.StringVar(&o.annQueries, "queries", "", "ann: the queries, a float32 (nq, d) .npy file (with -base)")
	flag.StringVar(&o.annReal, "real", "", "ann: search FMNIST-C2S embedded by this checkpoint: the gallery its shop views, the queries consumer views")
	flag.StringVar(&o.annAnchor, "ann-anchor", "", "ann: the anchor script (default ann_anchor.py in -anchors-dir; bench/hnswlib_anchor.py leaves out faiss HNSW, whose build takes hours at a million rows here)")
	flag.StringVar(&o.annWriteNPY, "write-npy", "", "ann: write base.npy, queries.npy and ours_exact_ids.npy (int64 (nq, k)) into this folder, for bench/faiss_exact_check.py")
	flag.IntVar(&o.serveN, "serve-n", 100, "serve: requests timed at concurrency 1 (twice as many at concurrency 4)")
	flag.IntVar(&o.serveRows, "serve-rows", 10000, "serve: gallery rows (random unit vectors)")
	var photoArchs, layerPrecs string
	flag.IntVar(&o.layerBatch, "layer-batch", 1, "layers: the batch each layer runs at")
	flag.StringVar(&layerPrecs, "layer-precisions", "fp32", "layers: the precisions, comma-separated (fp32, bf16, int8; the anchor runs with fp32)")
	flag.StringVar(&photoArchs, "photo-archs", "resnet50,resnet18", "photo, layers: the architectures timed, comma-separated")
	flag.IntVar(&o.rounds, "rounds", 1, "photo, layers: rounds of ours and the anchor in turn; each figure and ratio is the median of the rounds")
	flag.StringVar(&memProfile, "memprofile", "", "write a profile of every allocation in the timed steps of train and embed to this file at the end")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: bench [flags] [gemm|train|embed|search|ann|photo|pipeline|layers|serve|all]...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatalf("--sizes: %q is not a positive integer", s)
		}
		o.sizes = append(o.sizes, n)
	}
	for _, a := range strings.Split(photoArchs, ",") {
		switch a = strings.TrimSpace(a); a {
		case "resnet50", "resnet18":
			o.photoArchs = append(o.photoArchs, a)
		default:
			fatalf("-photo-archs: %q is not resnet50 or resnet18", a)
		}
	}
	for _, p := range strings.Split(layerPrecs, ",") {
		switch p = strings.TrimSpace(p); p {
		case "fp32", "bf16", "int8":
			o.layerPrecs = append(o.layerPrecs, p)
		default:
			fatalf("-layer-precisions: %q is not fp32, bf16 or int8", p)
		}
	}
	if o.layerBatch < 1 {
		fatalf("-layer-batch %d: want at least 1", o.layerBatch)
	}
	if o.rounds < 1 {
		fatalf("-rounds %d: want at least 1", o.rounds)
	}
	if o.annN < 2 || o.annQ < 1 || o.annK < 1 || o.annK > o.annN || o.annAdds < 0 {
		fatalf("-n %d, -nq %d, -k %d, -adds %d: want n ≥ 2, nq ≥ 1, 1 ≤ k ≤ n, adds ≥ 0", o.annN, o.annQ, o.annK, o.annAdds)
	}
	if o.annReplot != "" {
		if o.annPlot == "" {
			fatalf("-ann-replot needs -ann-plot FILE.png")
		}
		if err := annReplot(o.annReplot, o.annPlot); err != nil {
			fatalf("-ann-replot: %v", err)
		}
		return
	}
	suites := flag.Args()
	if len(suites) == 0 || (len(suites) == 1 && suites[0] == "all") {
		suites = []string{"gemm", "train", "embed", "search"}
	}
	b, why, err := backend.Select(o.device)
	if err != nil {
		fatalf("%v", err)
	}
	fmt.Fprintln(os.Stderr, why)
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fatalf("--cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("--cpuprofile: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fatalf("--cpuprofile: %v", err)
			}
		}()
	}
	if memProfile != "" {
		// Sampling starts with the timed steps (modelSuite), so the
		// profile shows what steady state allocates, not the set-up.
		runtime.MemProfileRate = 0
		o.profileAllocs = true
		defer func() {
			runtime.GC() // the profile is as of the last collection
			f, err := os.Create(memProfile)
			if err != nil {
				fatalf("--memprofile: %v", err)
			}
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fatalf("--memprofile: %v", err)
			}
			if err := f.Close(); err != nil {
				fatalf("--memprofile: %v", err)
			}
		}()
	}
	for _, s := range suites {
		switch s {
		case "gemm":
			gemmSuite(o)
		case "train", "embed":
			modelSuite(b, o, s)
		case "search":
			searchSuite(b, o)
		case "ann":
			annSuite(b, o)
		case "photo":
			photoSuite(b, o)
		case "layers":
			layersSuite(b, o)
		case "pipeline":
			photoPipeline(o)
		case "serve":
			serveSuite(o)
		default:
			fatalf("unknown suite %q (want gemm, train, embed, search, ann, photo, pipeline, layers, serve or all)", s)
		}
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(2)
}

func emit(name string, v float64, unit string) { fmt.Printf("%s %.1f %s\n", name, v, unit) }

func ratio(name string, ours, anchor float64) {
	if anchor > 0 {
		fmt.Printf("ratio_%s %.3f x\n", name, ours/anchor)
	}
}

// timeIt runs f until at least d has passed (and at least 3 times) and
// returns the best time of one call.
func timeIt(d time.Duration, f func()) time.Duration {
	f()
	best := time.Duration(1<<63 - 1)
	start := time.Now()
	for i := 0; i < 3 || time.Since(start) < d; i++ {
		t := time.Now()
		f()
		best = min(best, time.Since(t))
	}
	return best
}
