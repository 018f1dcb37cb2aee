package main

// The ann suite: approximate search (retrieval/ivf) against exact search,
// faiss (IndexFlatIP, IndexHNSWFlat, IndexIVFFlat) and hnswlib, on the
// same vectors (../shared/bench/ann_anchor.py reads the .npy files this
// suite writes), and our exact top-k against faiss IndexFlatIP's
// (bench/faiss_exact_check.py). The rows: ann_data.go.

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data/npy"
	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/retrieval/ivf"
)

// annMixture makes n unit rows (n, d) as ann_anchor.py does: a row is one
// of the centres (N(0, 1/d) each) plus 0.35·N(0, 1) noise, normalised.
func annMixture(r *rand.Rand, n, d int, centres []float32) []float32 {
	nc := len(centres) / d
	x := make([]float32, n*d)
	for i := 0; i < n; i++ {
		c := centres[r.IntN(nc)*d:]
		for j := 0; j < d; j++ {
			x[i*d+j] = c[j] + float32(0.35*r.NormFloat64())
		}
	}
	retrieval.Normalize(x, d)
	return x
}

// annPoint is one point of a recall–speed sweep.
type annPoint struct{ recall, qps float64 }

// atRecall is the queries/s at recall r, interpolated linearly between the
// sweep points around it, as ann_anchor.py's at_recall does (NaN when the
// sweep never reaches r).
func atRecall(pts []annPoint, r float64) float64 {
	ps := append([]annPoint(nil), pts...)
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].recall != ps[j].recall {
			return ps[i].recall < ps[j].recall
		}
		return ps[i].qps < ps[j].qps
	})
	for i := 0; i+1 < len(ps); i++ {
		p0, p1 := ps[i], ps[i+1]
		if p0.recall <= r && r <= p1.recall {
			return p0.qps + (p1.qps-p0.qps)*(r-p0.recall)/math.Max(p1.recall-p0.recall, 1e-12)
		}
	}
	if len(ps) > 0 && ps[0].recall >= r {
		return ps[0].qps
	}
	return math.NaN()
}

// recallAtK is the mean fraction of each query's exact k nearest that got
// holds (ann_anchor.py's recall).
func recallAtK(got, exact [][]retrieval.Hit, k int) float64 {
	var s float64
	for i := range exact {
		in := make(map[int]bool, len(got[i]))
		for _, h := range got[i] {
			in[h.Row] = true
		}
		f := 0
		for _, h := range exact[i][:min(k, len(exact[i]))] {
			if in[h.Row] {
				f++
			}
		}
		s += float64(f) / float64(k)
	}
	return s / float64(len(exact))
}

// annRecalls are the recall levels the suite reports queries/s at.
var annRecalls = []float64{0.90, 0.95, 0.99}

// annSuite: see README, "Benchmarks".
func annSuite(b backend.Backend, o options) {
	ad, cleanup, err := annLoad(o)
	if err != nil {
		cleanup()
		fatalf("ann: %v", err)
	}
	defer cleanup()
	n, nq, d, k := ad.n, ad.nq, ad.d, o.annK
	base, queries, adds := ad.base, ad.queries, ad.adds
	tag := fmt.Sprintf("n%d_d%d_k%d", n, d, k)

	// The .npy files faiss reads: both sides search identical rows.
	dir := o.annWriteNPY
	var basePath, queriesPath string
	if dir == "" && o.anchors {
		if dir, err = os.MkdirTemp("", "dmlgo-ann-"); err != nil {
			cleanup()
			fatalf("%v", err)
		}
		defer os.RemoveAll(dir)
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatalf("-write-npy: %v", err)
		}
		if basePath, queriesPath, err = annFiles(ad, dir, o.annWriteNPY != ""); err != nil {
			fatalf("ann: %v", err)
		}
	}
	var curves []annCurve
	var exact [][]retrieval.Hit
	for _, th := range uniq(1, o.threads) {
		runtime.GOMAXPROCS(th)
		backend.SetThreads(b, th)
		tt := fmt.Sprintf("%s_t%d", tag, th)

		// Exact search: the ground truth, and its speed.
		t0 := time.Now()
		ex, err := retrieval.Search(b, queries, nq, base, n, d, k, retrieval.SearchOptions{Threads: th})
		if err != nil {
			fatalf("%v", err)
		}
		flatQPS := float64(nq) / time.Since(t0).Seconds()
		emit("dmlgo_flat_qps_"+tt, flatQPS, "queries/s")
		if exact == nil && dir != "" {
			// Our exact top-k, for faiss_exact_check.py.
			ids := filepath.Join(dir, "ours_exact_ids.npy")
			if err := writeExactIDs(ids, ex, k); err != nil {
				fatalf("ann: %v", err)
			}
			if o.annWriteNPY != "" {
				fmt.Fprintf(os.Stderr, "ann: wrote %s, %s (float32 %d×%d, %d×%d) and %s (int64 %d×%d: our exact top-%d rows)\n",
					basePath, queriesPath, n, d, nq, d, ids, nq, k, k)
			}
			if o.anchors {
				runFaissCheck(basePath, queriesPath, ids, k)
			}
		}
		exact = ex

		t0 = time.Now()
		ix, err := ivf.Build(b, base, n, d, ivf.Config{Threads: th})
		if err != nil {
			fatalf("%v", err)
		}
		build := time.Since(t0).Seconds()
		emitf("dmlgo_ivf_build_s_"+tt, build, "s")
		emit("dmlgo_ivf_lists_"+tag, float64(ix.Lists()), "lists")
		mem := ix.Bytes()
		emit("dmlgo_ivf_mem_"+tag, float64(mem)/(1<<20), "MiB")

		var pts []annPoint
		for _, p := range annProbes(ix.Lists()) {
			t0 := time.Now()
			got, err := ix.Search(b, queries, nq, k, ivf.SearchOptions{NProbe: p, Threads: th})
			if err != nil {
				fatalf("%v", err)
			}
			qps := float64(nq) / time.Since(t0).Seconds()
			rec := recallAtK(got, exact, k)
			pts = append(pts, annPoint{rec, qps})
			emitf(fmt.Sprintf("dmlgo_ivf_nprobe%d_recall_%s", p, tt), rec, "recall")
			emit(fmt.Sprintf("dmlgo_ivf_nprobe%d_qps_%s", p, tt), qps, "queries/s")
			fmt.Fprintf(os.Stderr, "ann: t%d nprobe %d: recall@%d %.4f (calibrated %.4f), %.0f queries/s\n", th, p, k, rec, ix.Recall(p), qps)
			if rec >= 0.999 {
				break
			}
		}
		ours := map[float64]float64{}
		for _, rr := range annRecalls {
			ours[rr] = atRecall(pts, rr)
			emit(fmt.Sprintf("dmlgo_ivf_qps_r%d_%s", int(rr*100+0.5), tt), ours[rr], "queries/s")
		}
		// The default search (nprobe from the calibrated recall target).
		t0 = time.Now()
		got, err := ix.Search(b, queries, nq, k, ivf.SearchOptions{Threads: th})
		if err != nil {
			fatalf("%v", err)
		}
		emit("dmlgo_ivf_default_qps_"+tt, float64(nq)/time.Since(t0).Seconds(), "queries/s")
		emitf("dmlgo_ivf_default_recall_"+tt, recallAtK(got, exact, k), "recall")
		emit("dmlgo_ivf_default_nprobe_"+tag, float64(ix.NProbe(ivf.DefaultRecall)), "lists")
		curves = append(curves, annCurve{"dmlgo IVF, " + threadsLabel(th), pts},
			annCurve{"dmlgo exact, " + threadsLabel(th), []annPoint{{1, flatQPS}}})
		// One query at a time (a service's requests), default search.
		lat := make([]time.Duration, min(nq, 300))
		for i := range lat {
			t := time.Now()
			if _, err := ix.Search(b, queries[i*d:(i+1)*d], 1, k, ivf.SearchOptions{Threads: th}); err != nil {
				fatalf("%v", err)
			}
			lat[i] = time.Since(t)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		emit("dmlgo_ivf_single_query_p50_us_"+tt, float64(lat[len(lat)/2].Microseconds()), "us")
		emit("dmlgo_ivf_single_query_p99_us_"+tt, float64(lat[len(lat)*99/100].Microseconds()), "us")

		// Adding rows one at a time, as the live catalog does.
		addTotal := 0.0
		if len(adds) > 0 {
			lat := make([]time.Duration, o.annAdds)
			t0 = time.Now()
			for i := range lat {
				t := time.Now()
				if err := ix.Add(b, adds[i*d:(i+1)*d], 1); err != nil {
					fatalf("%v", err)
				}
				lat[i] = time.Since(t)
			}
			total := time.Since(t0)
			addTotal = total.Seconds()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			emitf(fmt.Sprintf("dmlgo_ivf_add%d_s_%s", o.annAdds, tt), total.Seconds(), "s")
			emit(fmt.Sprintf("dmlgo_ivf_add_p50_us_%s", tt), float64(lat[len(lat)/2].Microseconds()), "us")
			emit(fmt.Sprintf("dmlgo_ivf_add_p99_us_%s", tt), float64(lat[len(lat)*99/100].Microseconds()), "us")
		}

		// Compressed lists, re-ranked with the exact rows: their memory
		// is the codes plus those rows.
		compressed := map[ivf.Storage]map[float64]float64{}
		var stMem = map[ivf.Storage]int64{ivf.FP32: mem}
		for _, st := range []ivf.Storage{ivf.FP16, ivf.INT8} {
			t0 := time.Now()
			cx, err := ivf.Build(b, base, n, d, ivf.Config{Threads: th, Storage: st})
			if err != nil {
				fatalf("%v", err)
			}
			emitf(fmt.Sprintf("dmlgo_ivf_%s_build_s_%s", st, tt), time.Since(t0).Seconds(), "s")
			stMem[st] = cx.Bytes()
			emit(fmt.Sprintf("dmlgo_ivf_%s_mem_%s", st, tag), float64(cx.Bytes())/(1<<20), "MiB")
			var cpts []annPoint
			for _, p := range annProbes(cx.Lists()) {
				t0 := time.Now()
				got, err := cx.Search(b, queries, nq, k, ivf.SearchOptions{NProbe: p, Threads: th, Rows: base})
				if err != nil {
					fatalf("%v", err)
				}
				qps := float64(nq) / time.Since(t0).Seconds()
				rec := recallAtK(got, exact, k)
				cpts = append(cpts, annPoint{rec, qps})
				emitf(fmt.Sprintf("dmlgo_ivf_%s_nprobe%d_recall_%s", st, p, tt), rec, "recall")
				emit(fmt.Sprintf("dmlgo_ivf_%s_nprobe%d_qps_%s", st, p, tt), qps, "queries/s")
				if rec >= 0.999 {
					break
				}
			}
			compressed[st] = map[float64]float64{}
			for _, rr := range annRecalls {
				compressed[st][rr] = atRecall(cpts, rr)
				emit(fmt.Sprintf("dmlgo_ivf_%s_qps_r%d_%s", st, int(rr*100+0.5), tt), compressed[st][rr], "queries/s")
			}
			curves = append(curves, annCurve{fmt.Sprintf("dmlgo IVF %s, %s", st, threadsLabel(th)), cpts})
		}
		if th == o.threads {
			// Memory against hnswlib's (M = 32, its layout): the index
			// alone for FP32 lists (they hold the rows), the codes and
			// the exact rows for the compressed ones.
			hl := hnswlibBytes(n, d, 32)
			emit("hnswlib_mem_est_"+tag, float64(hl)/(1<<20), "MiB")
			for _, st := range ivf.Storages {
				m := stMem[st]
				if st.Compressed() {
					m += int64(4 * n * d)
				}
				emit(fmt.Sprintf("dmlgo_ivf_%s_mem_with_rows_%s", st, tag), float64(m)/(1<<20), "MiB")
				ratio("ann_mem_"+string(st), float64(m), float64(hl))
			}
		}

		if !o.anchors {
			continue
		}
		module := "faiss" // the python3 with faiss, else one with hnswlib
		if findPython(module) == "" {
			module = "hnswlib"
		}
		script := o.annAnchor
		if script == "" {
			script = filepath.Join(o.anchorsDir, "ann_anchor.py")
		}
		var extra []string
		if o.annAnchor != "" && len(adds) > 0 {
			// Our anchor scripts (bench/hnswlib_anchor.py) also time
			// adding the rows we add.
			addsPath := filepath.Join(dir, "adds.npy")
			if err := npy.WriteFile(addsPath, []int{len(adds) / d, d}, adds); err != nil {
				fatalf("ann: %v", err)
			}
			extra = []string{"--adds", addsPath}
		}
		a := runAnchor(module, []string{"OMP_NUM_THREADS=" + strconv.Itoa(th), "OPENBLAS_NUM_THREADS=" + strconv.Itoa(th)},
			append([]string{script, "--base", basePath, "--queries", queriesPath,
				"--threads", strconv.Itoa(th), "--k", strconv.Itoa(k)}, extra...)...)
		if a == nil {
			continue
		}
		names := make([]string, 0, len(a))
		for name := range a {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			unit := "queries/s"
			switch {
			case strings.Contains(name, "_recall_"):
				unit = "recall"
			case strings.Contains(name, "_build_s_"), strings.Contains(name, "_add_s_"):
				unit = "s"
			case strings.Contains(name, "rss"), strings.Contains(name, "_mem_"):
				unit = "MiB"
			}
			emitf(name, a[name], unit)
		}
		missing := []string{}
		for _, lib := range []string{"faiss_hnsw", "hnswlib"} {
			if _, ok := a[fmt.Sprintf("%s_qps_r95_%s", lib, tt)]; !ok {
				missing = append(missing, lib)
			}
		}
		if len(missing) > 0 && o.annAnchor == "" {
			fmt.Fprintf(os.Stderr, "bench: ann anchor: no figures from %s (python3-faiss / python3-hnswlib missing?): ratios use the others\n", strings.Join(missing, ", "))
		}
		// Ours over the best graph index at each recall (NaN figures, a
		// recall an index never reached, are left out).
		for _, rr := range annRecalls {
			best := math.NaN()
			for _, lib := range []string{"faiss_hnsw", "hnswlib"} {
				if v, ok := a[fmt.Sprintf("%s_qps_r%d_%s", lib, int(rr*100+0.5), tt)]; ok && !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
					best = v
				}
			}
			if !math.IsNaN(best) && !math.IsNaN(ours[rr]) {
				ratio(fmt.Sprintf("ann_qps_r%d_t%d", int(rr*100+0.5), th), ours[rr], best)
			}
			for _, st := range []ivf.Storage{ivf.FP16, ivf.INT8} {
				if q := compressed[st][rr]; !math.IsNaN(best) && !math.IsNaN(q) {
					ratio(fmt.Sprintf("ann_qps_r%d_%s_t%d", int(rr*100+0.5), st, th), q, best)
				}
			}
			if v, ok := a[fmt.Sprintf("faiss_ivf_qps_r%d_%s", int(rr*100+0.5), tt)]; ok && !math.IsNaN(v) && !math.IsNaN(ours[rr]) {
				ratio(fmt.Sprintf("ivf_qps_r%d_t%d", int(rr*100+0.5), th), ours[rr], v)
			}
			// Against the fastest anchor index of any kind that reaches
			// the recall, exact search (recall 1) included.
			for _, lib := range []string{"faiss_ivf", "faiss_flat"} {
				v, ok := a[fmt.Sprintf("%s_qps_r%d_%s", lib, int(rr*100+0.5), tt)]
				if lib == "faiss_flat" {
					v, ok = a["faiss_flat_qps_"+tt]
				}
				if ok && !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
					best = v
				}
			}
			if !math.IsNaN(best) && !math.IsNaN(ours[rr]) {
				ratio(fmt.Sprintf("ann_qps_r%d_any_t%d", int(rr*100+0.5), th), ours[rr], best)
			}
		}
		if v, ok := a["faiss_flat_qps_"+tt]; ok {
			ratio(fmt.Sprintf("flat_qps_t%d", th), flatQPS, v)
			if th == o.threads {
				ratio("flat_qps", flatQPS, v)
			}
		}
		bestBuild := math.NaN()
		for _, lib := range []string{"faiss_hnsw", "hnswlib"} {
			if v, ok := a[fmt.Sprintf("%s_build_s_%s", lib, tt)]; ok && (math.IsNaN(bestBuild) || v < bestBuild) {
				bestBuild = v
			}
		}
		if !math.IsNaN(bestBuild) {
			// Seconds over seconds: below 1, ours builds faster.
			ratio(fmt.Sprintf("ann_build_t%d", th), build, bestBuild)
			if th == o.threads {
				ratio("ann_build", build, bestBuild)
			}
		}
		if v, ok := a["hnswlib_add_s_"+tt]; ok && addTotal > 0 {
			// Seconds over seconds: ours one row at a time (as a catalog
			// adds), hnswlib's in one call on th threads.
			ratio(fmt.Sprintf("ann_add_t%d", th), addTotal, v)
		}
		if hl, ok := a["hnswlib_mem_"+tt]; ok && hl > 0 {
			// hnswlib's memory as measured (bench/hnswlib_anchor.py):
			// the growth of its resident memory over the build.
			for _, st := range ivf.Storages {
				m := stMem[st]
				if st.Compressed() {
					m += int64(4 * n * d)
				}
				ratio(fmt.Sprintf("ann_mem_%s_measured_t%d", st, th), float64(m)/(1<<20), hl)
			}
		}
		if th == o.threads {
			hm := hnswFlatBytes(n, d, 32)
			emit("faiss_hnsw_mem_est_"+tag, float64(hm)/(1<<20), "MiB")
			// Bytes over bytes: below 1, ours is smaller.
			ratio("ann_mem_faiss_hnsw", float64(mem), float64(hm))
		}
		curves = append(curves, anchorCurves(a, tt, th)...)
	}
	runtime.GOMAXPROCS(o.threads)
	backend.SetThreads(b, o.threads)
	if o.annPlot != "" && len(curves) > 0 {
		if err := annPlot(o.annPlot, fmt.Sprintf("recall@%d against speed, %d × %d (%s), %d queries", k, n, d, ad.name, nq), curves); err != nil {
			fatalf("--ann-plot: %v", err)
		}
		fmt.Fprintf(os.Stderr, "ann: plot written to %s\n", o.annPlot)
	}
}

// annProbes are the nprobe values swept: about 1.4× apart up to every list.
func annProbes(lists int) []int {
	var ps []int
	for p := 1.0; ; p *= 1.4 {
		v := int(math.Round(p))
		if len(ps) > 0 && v <= ps[len(ps)-1] {
			continue
		}
		if v >= lists {
			return append(ps, lists)
		}
		ps = append(ps, v)
	}
}

// hnswFlatBytes is the memory of a faiss IndexHNSWFlat of n rows of
// dimension d with M links (the anchor script prints only its process's
// peak RSS), from faiss's layout: the float32 rows; level 0's 2M int32
// links and the upper levels' M each (a row reaches level l with
// probability M^−l, so M/(M−1) more links on average); each row's level
// (int32) and its offset into the links (int64).
func hnswFlatBytes(n, d, m int) int64 {
	perRow := 4*float64(d) + 4*(2*float64(m)+float64(m)/float64(m-1)) + 4 + 8
	return int64(perRow * float64(n))
}

// hnswlibBytes is the memory of an hnswlib index of n rows of dimension d
// with M links, from its layout (hnswalg.h): per row, level 0's block (2M
// int32 links, their count, the float32 row, the int64 label), its level
// (int), its upper-level pointer, and its std::mutex (40 bytes on Linux);
// upper levels of M links and a count, M/(M−1)·(1/M) levels per row on
// average.
func hnswlibBytes(n, d, m int) int64 {
	perRow := float64(2*m*4+4+4*d+8) + 4 + 8 + 40 + float64(4*m+4)/float64(m-1)
	return int64(perRow * float64(n))
}

// annCurve is one index's recall–speed sweep, for the plot.
type annCurve struct {
	label string
	pts   []annPoint
}

// anchorCurves collects the anchor's sweeps (`<index>_<param><v>_recall_…`
// and `…_qps_…` lines) of thread count th.
func anchorCurves(a map[string]float64, tt string, th int) []annCurve {
	var out []annCurve
	for _, idx := range []struct{ prefix, param, label string }{
		{"faiss_hnsw", "ef", "faiss HNSW"}, {"hnswlib", "ef", "hnswlib"}, {"faiss_ivf", "nprobe", "faiss IVF"},
	} {
		var pts []annPoint
		for v := 1; v <= 4096; v++ {
			rec, ok1 := a[fmt.Sprintf("%s_%s%d_recall_%s", idx.prefix, idx.param, v, tt)]
			qps, ok2 := a[fmt.Sprintf("%s_%s%d_qps_%s", idx.prefix, idx.param, v, tt)]
			if ok1 && ok2 {
				pts = append(pts, annPoint{rec, qps})
			}
		}
		if len(pts) > 0 {
			out = append(out, annCurve{idx.label + ", " + threadsLabel(th), pts})
		}
	}
	if v, ok := a["faiss_flat_qps_"+tt]; ok {
		out = append(out, annCurve{"faiss flat, " + threadsLabel(th), []annPoint{{1, v}}})
	}
	return out
}

// annReplot draws annPlot's plot again from the lines a run printed
// (saved to the file from): every sweep point of ours and the anchors'.
func annReplot(from, path string) error {
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	a := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				a[f[0]] = v
			}
		}
	}
	// The tag: from our exact search's line of one thread.
	var tag string
	for name := range a {
		if t, ok := strings.CutPrefix(name, "dmlgo_flat_qps_"); ok && strings.HasSuffix(t, "_t1") {
			tag = strings.TrimSuffix(t, "_t1")
		}
	}
	if tag == "" {
		return fmt.Errorf("%s: no dmlgo_flat_qps_…_t1 line: not the output of the ann suite", from)
	}
	var curves []annCurve
	for th := 1; th <= 64; th++ {
		tt := fmt.Sprintf("%s_t%d", tag, th)
		flat, ok := a["dmlgo_flat_qps_"+tt]
		if !ok {
			continue
		}
		for _, st := range []string{"", "fp16_", "int8_"} {
			var pts []annPoint
			for p := 1; p <= 1<<20; p++ {
				rec, ok1 := a[fmt.Sprintf("dmlgo_ivf_%snprobe%d_recall_%s", st, p, tt)]
				qps, ok2 := a[fmt.Sprintf("dmlgo_ivf_%snprobe%d_qps_%s", st, p, tt)]
				if ok1 && ok2 {
					pts = append(pts, annPoint{rec, qps})
				}
			}
			if len(pts) > 0 {
				label := "dmlgo IVF"
				if st != "" {
					label += " " + strings.TrimSuffix(st, "_")
				}
				curves = append(curves, annCurve{label + ", " + threadsLabel(th), pts})
			}
		}
		curves = append(curves, annCurve{"dmlgo exact, " + threadsLabel(th), []annPoint{{1, flat}}})
		curves = append(curves, anchorCurves(a, tt, th)...)
	}
	var n, d, k int
	fmt.Sscanf(tag, "n%d_d%d_k%d", &n, &d, &k)
	return annPlot(path, fmt.Sprintf("recall@%d against speed, %d × %d", k, n, d), curves)
}

// annPlot draws queries/s (log scale) against recall, one line per index
// and thread count, into path (PNG), atomically.
func annPlot(path, title string, curves []annCurve) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "recall@10"
	p.Y.Label.Text = "queries/s"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	colours := []color.Color{
		color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
		color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
		color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
		color.RGBA{R: 227, G: 119, B: 194, A: 255}, color.RGBA{R: 127, G: 127, B: 127, A: 255},
		color.RGBA{R: 188, G: 189, B: 34, A: 255}, color.RGBA{R: 23, G: 190, B: 207, A: 255},
	}
	byLib := map[string]int{}
	for _, c := range curves {
		lib := c.label[:strings.Index(c.label, ",")]
		if _, ok := byLib[lib]; !ok {
			byLib[lib] = len(byLib)
		}
		pts := make(plotter.XYs, 0, len(c.pts))
		ps := append([]annPoint(nil), c.pts...)
		sort.Slice(ps, func(i, j int) bool { return ps[i].recall < ps[j].recall })
		for _, q := range ps {
			if q.qps > 0 {
				pts = append(pts, plotter.XY{X: q.recall, Y: q.qps})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		col := colours[byLib[lib]%len(colours)]
		l.Color, s.Color = col, col
		if strings.HasSuffix(c.label, " 1 thread") {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l, s)
		p.Legend.Add(c.label, l, s)
	}
	p.Legend.Top, p.Legend.Left = false, true
	p.Add(plotter.NewGrid())
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}

func threadsLabel(th int) string {
	if th == 1 {
		return "1 thread"
	}
	return fmt.Sprintf("%d threads", th)
}

// emitf is emit with four significant digits (recalls, seconds).
func emitf(name string, v float64, unit string) { fmt.Printf("%s %.4g %s\n", name, v, unit) }
