package main

// The ann suite's vectors: the seeded mixture, float32 .npy files (-base,
// -queries), or a checkpoint's embeddings of FMNIST-C2S (-real); and the
// .npy files that faiss reads (-write-npy, -anchors).
//
// n = gallery rows, nq = queries, na = rows added after the build,
// d = dimension.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/fmnist"
	"github.com/dmlgo/dmlgo/data/npy"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/retrieval"
)

// annData is what the ann suite searches; every row has unit length.
type annData struct {
	// base: (n, d), queries: (nq, d), adds: (na, d), the rows added one
	// at a time after the build.
	base, queries, adds []float32
	n, nq, na, d        int
	// name says where the rows come from (plot title).
	name string
	// baseFile and queriesFile are .npy files holding exactly base and
	// queries, "" where there is none (the mixture, rows normalised on
	// load, or only the first rows of a file taken).
	baseFile, queriesFile string
}

// annUnitTol is how far from 1 a row's length may be for the row to count
// as unit length (a float32 embedding normalised in float32 is within
// 1e-6).
const annUnitTol = 1e-4

// annMixtureData draws the suite's default rows: n + nq + adds rows of
// dimension 128 from one seeded mixture (annMixture).
func annMixtureData(n, nq, adds int, seed int) *annData {
	const d = 128
	fmt.Fprintf(os.Stderr, "ann: making %d + %d rows of dimension %d (%d centres, noise 0.35)\n", n, nq, d, max(16, n/100))
	r := rand.New(rand.NewPCG(uint64(seed), 0xa22))
	centres := make([]float32, max(16, n/100)*d)
	for i := range centres {
		centres[i] = float32(r.NormFloat64() / math.Sqrt(d))
	}
	base, queries := annMixture(r, n, d, centres), annMixture(r, nq, d, centres)
	return &annData{base: base, queries: queries, adds: annMixture(r, adds, d, centres),
		n: n, nq: nq, na: adds, d: d, name: "mixture"}
}

// readUnitRows reads a float32 (rows, d) .npy file and L2-normalises the
// rows that are not unit length already; normalised counts them. Errors
// name the file: another type or shape, a NaN or infinite element, a row
// of zeros.
func readUnitRows(path string) (x []float32, rows, d, normalised int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer f.Close()
	a, err := npy.Read(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, 0, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	if a.Descr != npy.Descr[float32]() {
		return nil, 0, 0, 0, fmt.Errorf("%s: type %s, want float32 (<f4): save it with np.save(path, x.astype(np.float32))", path, a.Descr)
	}
	if len(a.Shape) != 2 || a.Shape[0] < 1 || a.Shape[1] < 1 {
		return nil, 0, 0, 0, fmt.Errorf("%s: shape %v, want (rows, dimension), both at least 1", path, a.Shape)
	}
	rows, d = a.Shape[0], a.Shape[1]
	if x, err = npy.Values[float32](a); err != nil {
		return nil, 0, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	for i := 0; i < rows; i++ {
		row := x[i*d : (i+1)*d]
		var ss float64
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, 0, 0, 0, fmt.Errorf("%s: row %d, column %d is %v", path, i, j, v)
			}
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			return nil, 0, 0, 0, fmt.Errorf("%s: row %d is all zeros: it has no direction to search by", path, i)
		}
		if math.Abs(math.Sqrt(ss)-1) > annUnitTol {
			retrieval.Normalize(row, d)
			normalised++
		}
	}
	return x, rows, d, normalised, nil
}

// annFileData reads the gallery and the queries from float32 .npy files:
// the first n rows of basePath (n ≤ 0: all) and the first nq of
// queriesPath (nq ≤ 0: all). The adds rows added after the build are the
// file's rows after the first n, going round to its first row when the
// file has too few. Rows normalised on load are reported on stderr and on
// stdout (ann_normalised_rows_{base,queries}).
func annFileData(basePath, queriesPath string, n, nq, adds, k int) (*annData, error) {
	full, rows, d, nb, err := readUnitRows(basePath)
	if err != nil {
		return nil, err
	}
	q, qrows, qd, nqb, err := readUnitRows(queriesPath)
	if err != nil {
		return nil, err
	}
	if qd != d {
		return nil, fmt.Errorf("%s has rows of dimension %d, %s of %d: they must match", queriesPath, qd, basePath, d)
	}
	if n <= 0 {
		n = rows
	} else if n > rows {
		return nil, fmt.Errorf("-n %d: %s has only %d rows", n, basePath, rows)
	}
	if nq <= 0 {
		nq = qrows
	} else if nq > qrows {
		return nil, fmt.Errorf("-nq %d: %s has only %d rows", nq, queriesPath, qrows)
	}
	if n < 2 || k > n {
		return nil, fmt.Errorf("%s: %d gallery rows for k = %d: want at least 2 and at least k", basePath, n, k)
	}
	ad := &annData{base: full[:n*d], queries: q[:nq*d], n: n, nq: nq, na: adds, d: d,
		name: filepath.Base(basePath)}
	for _, f := range []struct {
		path           string
		rows, use, nrm int
		kind           string
	}{{basePath, rows, n, nb, "base"}, {queriesPath, qrows, nq, nqb, "queries"}} {
		what := "all"
		if f.use < f.rows {
			what = fmt.Sprintf("the first %d of", f.use)
		}
		fmt.Fprintf(os.Stderr, "ann: %s: %s %d rows of dimension %d\n", f.path, what, f.rows, d)
		if f.nrm > 0 {
			fmt.Fprintf(os.Stderr, "ann: %s: %d of %d rows were not unit length: L2-normalised on load\n", f.path, f.nrm, f.rows)
			emit("ann_normalised_rows_"+f.kind, float64(f.nrm), "rows")
		}
	}
	if nb == 0 && n == rows {
		ad.baseFile = basePath
	}
	if nqb == 0 && nq == qrows {
		ad.queriesFile = queriesPath
	}
	ad.adds = make([]float32, adds*d)
	for i := 0; i < adds; i++ {
		r := (n + i) % rows
		copy(ad.adds[i*d:(i+1)*d], full[r*d:(r+1)*d])
	}
	if adds > 0 {
		from := fmt.Sprintf("rows %d.. of %s", n, basePath)
		switch {
		case n == rows:
			from = fmt.Sprintf("copies of the gallery's rows 0.. (%s has no rows beyond the gallery)", basePath)
		case n+adds > rows:
			from += ", then copies of the gallery's rows 0.."
		}
		fmt.Fprintf(os.Stderr, "ann: the %d rows added after the build: %s\n", adds, from)
	}
	return ad, nil
}

// annRealData embeds FMNIST-C2S with the checkpoint ckpt and writes the
// gallery, dir/base.npy (n, dim), and the queries, dir/queries.npy (nq,
// dim). The gallery is the shop view of every item the data set offers:
// all test items first, then train items to make n (n ≤ 0: every item,
// 70,000 with the whole of Fashion-MNIST; the checkpoint trained on some
// of the train items). The queries are nq consumer views of the test
// items, spread evenly over them (several views per item when nq exceeds
// the test items). The data set's shift and seed are the checkpoint's.
func annRealData(ckpt string, n, nq int, o options, dir string) (basePath, queriesPath string, err error) {
	m, err := model.Load(ckpt, model.Options{Device: o.device, Threads: o.threads, Batch: o.batch}, os.Stderr)
	if err != nil {
		return "", "", fmt.Errorf("-real: %w", err)
	}
	spec := m.Card.Data
	if spec.Kind != "" && spec.Kind != sets.FMNISTC2S {
		return "", "", fmt.Errorf("-real: %s was trained on %s, not %s: give a checkpoint trained on FMNIST-C2S", ckpt, spec.Kind, sets.FMNISTC2S)
	}
	cfg, err := spec.FMNISTConfig()
	if err != nil {
		return "", "", fmt.Errorf("-real: %s: %w", ckpt, err)
	}
	path := spec.Path
	if path == "" {
		path = fmnist.DefaultDir()
	}
	t0 := time.Now()
	src, err := fmnist.Load(path)
	if err != nil {
		return "", "", fmt.Errorf("-real: %w (make data fetches Fashion-MNIST)", err)
	}
	fmt.Fprintf(os.Stderr, "ann: -real: read %d Fashion-MNIST images from %s in %.1f s\n", src.Len(), path, time.Since(t0).Seconds())
	train, test := src.Split()
	nTrain, nTest := 0, 0
	for c := range train {
		nTrain += len(train[c])
		nTest += len(test[c])
	}
	if n <= 0 {
		n = nTrain + nTest
	}
	if n > nTrain+nTest {
		return "", "", fmt.Errorf("-real: -n %d: the data set offers %d shop views (%d train + %d test items)", n, nTrain+nTest, nTrain, nTest)
	}
	cfg.TestItems = min(n, nTest)
	cfg.TrainItems = n - cfg.TestItems
	cfg.TrainViews = 0
	cfg.TestViews = (nq + cfg.TestItems - 1) / cfg.TestItems
	if cfg.TestViews > 100 {
		return "", "", fmt.Errorf("-real: -nq %d: at most 100 consumer views of each of the %d test items", nq, cfg.TestItems)
	}
	bm, err := fmnist.Build(src, cfg)
	if err != nil {
		return "", "", fmt.Errorf("-real: %w", err)
	}
	var shop, consumer []int
	for r, row := range bm.Manifest.Rows {
		if row.Domain == data.Shop {
			shop = append(shop, r)
		} else if row.Split == data.Test {
			consumer = append(consumer, r)
		}
	}
	queries := make([]int, nq)
	for i := range queries {
		queries[i] = consumer[i*len(consumer)/nq]
	}
	fmt.Fprintf(os.Stderr, "ann: -real: %s; gallery: the shop views of %d items (%d test, %d train), queries: %d consumer views of the %d test items\n",
		cfg, len(shop), cfg.TestItems, cfg.TrainItems, nq, cfg.TestItems)
	t0 = time.Now()
	embed := func(rows []int, label, name string) (string, error) {
		e, err := m.EmbedRows(context.Background(), bm.Manifest, rows, model.EmbedOptions{Strict: true, Progress: os.Stderr, Label: label})
		if err != nil {
			return "", fmt.Errorf("-real: embedding the %s: %w", label, err)
		}
		p := filepath.Join(dir, name)
		return p, npy.WriteFile(p, []int{len(e.Rows), m.Dim}, e.Embeddings)
	}
	if basePath, err = embed(shop, "ann: gallery", "base.npy"); err != nil {
		return "", "", err
	}
	if queriesPath, err = embed(queries, "ann: queries", "queries.npy"); err != nil {
		return "", "", err
	}
	s := time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "ann: -real: embedded %d + %d images with %s (%s, %d-dimensional) in %.1f s\n", len(shop), nq, ckpt, m.Card.Arch, m.Dim, s)
	emit("ann_real_base_rows", float64(len(shop)), "rows")
	emit("ann_real_query_rows", float64(nq), "rows")
	emitf("ann_real_embed_s", s, "s")
	emit("ann_real_embed_img_per_s", float64(len(shop)+nq)/s, "img/s")
	return basePath, queriesPath, nil
}

// annLoad gives the suite its rows from the flags: -real, -base and
// -queries, or the mixture. cleanup removes the temporary files.
func annLoad(o options) (ad *annData, cleanup func(), err error) {
	cleanup = func() {}
	if o.annReal != "" && (o.annBase != "" || o.annQueries != "") {
		return nil, cleanup, errors.New("-real embeds its own rows: give -real or -base and -queries, not both")
	}
	if (o.annBase == "") != (o.annQueries == "") {
		return nil, cleanup, errors.New("-base and -queries go together")
	}
	// -n and -nq take the first rows of the files only when given.
	n, nq := 0, 0
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "n":
			n = o.annN
		case "nq":
			nq = o.annQ
		}
	})
	basePath, queriesPath := o.annBase, o.annQueries
	switch {
	case o.annReal != "":
		dir, err := os.MkdirTemp("", "dmlgo-ann-real-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		if basePath, queriesPath, err = annRealData(o.annReal, n, o.annQ, o, dir); err != nil {
			return nil, cleanup, err
		}
		n, nq = 0, 0
	case basePath == "":
		return annMixtureData(o.annN, o.annQ, o.annAdds, o.annSeed), cleanup, nil
	}
	ad, err = annFileData(basePath, queriesPath, n, nq, o.annAdds, o.annK)
	if err == nil && o.annReal != "" {
		ad.name = "FMNIST-C2S embeddings of " + o.annReal
	}
	return ad, cleanup, err
}

// annFiles returns .npy files holding the suite's gallery and queries
// (float32 (n, d), (nq, d)): written into dir when write is set or when
// the rows have no file of their own, else the files they were read from.
func annFiles(ad *annData, dir string, write bool) (basePath, queriesPath string, err error) {
	basePath, queriesPath = ad.baseFile, ad.queriesFile
	if write || basePath == "" {
		basePath = filepath.Join(dir, "base.npy")
		if err := npy.WriteFile(basePath, []int{ad.n, ad.d}, ad.base); err != nil {
			return "", "", err
		}
	}
	if write || queriesPath == "" {
		queriesPath = filepath.Join(dir, "queries.npy")
		if err := npy.WriteFile(queriesPath, []int{ad.nq, ad.d}, ad.queries); err != nil {
			return "", "", err
		}
	}
	return basePath, queriesPath, nil
}

// writeExactIDs writes the gallery rows of each query's k best hits,
// int64 (nq, k), best first.
func writeExactIDs(path string, exact [][]retrieval.Hit, k int) error {
	ids := make([]int64, len(exact)*k)
	for i, hits := range exact {
		if len(hits) != k {
			return fmt.Errorf("query %d has %d hits, not %d", i, len(hits), k)
		}
		for j, h := range hits {
			ids[i*k+j] = int64(h.Row)
		}
	}
	return npy.WriteFile(path, []int{len(exact), k}, ids)
}

// faissCheckScript compares our exact top-k with faiss IndexFlatIP's.
const faissCheckScript = "bench/faiss_exact_check.py"

// runFaissCheck runs faissCheckScript on the files with the python3 that
// has faiss, its lines passed to stdout; it reports a mismatch (the
// script's exit status 1) or a failure on stderr.
func runFaissCheck(basePath, queriesPath, idsPath string, k int) {
	py := findPython("faiss")
	if py == "" {
		fmt.Fprintf(os.Stderr, "bench: no python3 with faiss found: %s skipped\n", faissCheckScript)
		return
	}
	cmd := exec.Command(py, faissCheckScript, "--base", basePath, "--queries", queriesPath, "--ids", idsPath, "--k", fmt.Sprint(k))
	cmd.Env = dropEnv(os.Environ(), "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		fmt.Fprintf(os.Stderr, "bench: ann: our exact top-%d differs from faiss IndexFlatIP's (see above)\n", k)
	default:
		fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", faissCheckScript, err)
	}
}
