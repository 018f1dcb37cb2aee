package main

// The suites: SGEMM, the resnet-s training and embedding steps, exact search.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	_ "github.com/dmlgo/dmlgo/backend/cuda"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/tensor"
)

// gemmSuite times C = A·B on the CPU backend, one thread and all threads.
func gemmSuite(o options) {
	for _, th := range uniq(1, o.threads) {
		var anchor map[string]float64
		if o.anchors {
			args := []string{filepath.Join(o.anchorsDir, "blas_anchor.py")}
			for _, n := range o.sizes {
				args = append(args, strconv.Itoa(n))
			}
			anchor = runAnchor("numpy", []string{"OPENBLAS_NUM_THREADS=" + strconv.Itoa(th), "OMP_NUM_THREADS=" + strconv.Itoa(th)}, args...)
		}
		b := cpu.New(th)
		for _, n := range o.sizes {
			r := rand.New(rand.NewPCG(uint64(n), 1))
			mk := func() *tensor.Tensor {
				t := tensor.Zeros(n, n)
				for i, d := 0, t.HostData(); i < len(d); i++ {
					d[i] = r.Float32()
				}
				return t
			}
			a, bb, c := mk(), mk(), tensor.Zeros(n, n)
			p := backend.GemmParams{M: n, N: n, K: n, Alpha: 1}
			dt := timeIt(time.Second, func() { b.Gemm(p, a, bb, c) })
			gf := 2 * float64(n) * float64(n) * float64(n) / dt.Seconds() / 1e9
			name := fmt.Sprintf("dmlgo_sgemm_n%d_t%d", n, th)
			emit(name, gf, "GFLOP/s")
			if v, ok := anchor[fmt.Sprintf("blas_sgemm_n%d", n)]; ok {
				emit(fmt.Sprintf("blas_sgemm_n%d_t%d", n, th), v, "GFLOP/s")
				ratio(fmt.Sprintf("sgemm_n%d_t%d", n, th), gf, v)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "gemm: SIMD level %v\n", cpu.ActiveLevel())
}

func uniq(a, b int) []int {
	if a == b {
		return []int{a}
	}
	return []int{a, b}
}

// modelSuite times resnet-s training with a cosface head over o.classes
// classes (SGD momentum 0.9, as ../shared/bench/torch_anchor.py), or the
// embedding forward pass in eval mode.
func modelSuite(b backend.Backend, o options, suite string) {
	if backend.SetThreads(b, o.threads) {
		runtime.GOMAXPROCS(max(o.threads, 1))
	}
	net, err := nn.NewResNet(b, nn.ResNetConfig{Arch: "resnet-s", Out: 128, Seed: 0})
	if err != nil {
		fatalf("%v", err)
	}
	w := tensor.RandNormal(1, 0, 0.01, o.classes, 128).HostData()
	wt := tensor.New(b.Alloc(len(w)), 0, o.classes, 128)
	b.Upload(wt, w)
	head := &nn.Param{Name: "head", Var: autograd.NewVar(wt, true)}
	ps := nn.NewParamSet(b, nn.GroupSpec{Name: "net", Params: nn.Params(net)}, nn.GroupSpec{Name: "head", Params: []nn.Named[*nn.Param]{{Name: "head", V: head}}})
	opt := nn.NewSGD(ps, 0.9, 0, false)
	x := tensor.RandNormal(2, 0, 1, o.batch, 1, 32, 32).HostData()
	labels := make([]int32, o.batch)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range labels {
		labels[i] = int32(r.IntN(o.classes))
	}
	g := autograd.New(b)
	step := func() {
		ps.ZeroGrad()
		e := g.L2Normalize(net.Forward(g, g.Constant(x, o.batch, 1, 32, 32)), 1e-12)
		wn := g.L2Normalize(head.Var, 1e-12)
		cos := g.MatMul(e, wn, false, true)
		loss := g.MarginCE(cos, labels, backend.MarginParams{Kind: backend.MarginCosFace, S: 30, M: 0.35, Eps: 1e-7}, nil, nil)
		g.Backward(loss)
		opt.Step(0.1)
		g.Reset()
	}
	embed := func() {
		g.NoGrad(func() { net.Forward(g, g.Constant(x, o.batch, 1, 32, 32)) })
		g.Reset()
	}
	f := step
	if suite == "embed" {
		nn.SetTraining(net, false)
		f = embed
	}
	for i := 0; i < 3; i++ {
		f()
	}
	if err := b.Synchronize(); err != nil {
		fatalf("%v", err)
	}
	var ms0, ms1 runtime.MemStats
	if o.profileAllocs {
		runtime.MemProfileRate = 1
	}
	runtime.ReadMemStats(&ms0)
	t := time.Now()
	for i := 0; i < o.steps; i++ {
		f()
	}
	if o.profileAllocs {
		runtime.MemProfileRate = 0
	}
	if err := b.Synchronize(); err != nil {
		fatalf("%v", err)
	}
	ips := float64(o.steps*o.batch) / time.Since(t).Seconds()
	runtime.ReadMemStats(&ms1)
	name := fmt.Sprintf("dmlgo_%s_resnet-s_%s_b%d", b.Name(), suite, o.batch)
	if b.Name() == "cpu" {
		name = fmt.Sprintf("dmlgo_cpu_t%d_resnet-s_%s_b%d", o.threads, suite, o.batch)
	}
	emit(name, ips, "img/s")
	emit(fmt.Sprintf("dmlgo_%s_allocs_per_step", suite), float64(ms1.Mallocs-ms0.Mallocs)/float64(o.steps), "allocs")
	emit(fmt.Sprintf("dmlgo_%s_alloc_bytes_per_step", suite), float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(o.steps), "B")
	if rss := peakRSS(); rss > 0 {
		emit("dmlgo_peak_rss", float64(rss)/(1<<20), "MiB")
	}
	if o.anchors {
		dev := "cpu"
		if b.Name() == "cuda" {
			dev = "cuda"
		}
		a := runAnchor("torch", nil, filepath.Join(o.anchorsDir, "torch_anchor.py"), "--device", dev, "--threads", strconv.Itoa(o.threads),
			"--batch", strconv.Itoa(o.batch), "--classes", strconv.Itoa(o.classes), "--steps", strconv.Itoa(o.steps))
		for k, v := range a {
			if strings.Contains(k, "_"+suite+"_") {
				emit(k, v, "img/s")
				ratio(fmt.Sprintf("resnet-s_%s_%s", suite, dev), ips, v)
			}
		}
	}
}

// searchSuite times exact top-50 search of 1,000 queries in a 100,000 × 128
// gallery (as ../shared/bench/search_anchor.py), then of searchOne of them
// one at a time (as bench/search_one_anchor.py).
func searchSuite(b backend.Backend, o options) {
	const n, d, q, k = 100000, 128, 1000, 50
	r := rand.New(rand.NewPCG(0, 0))
	mk := func(rows int) []float32 {
		x := make([]float32, rows*d)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		retrieval.Normalize(x, d)
		return x
	}
	gal, qs := mk(n), mk(q)
	backend.SetThreads(b, o.threads)
	dt := timeIt(2*time.Second, func() {
		if _, err := retrieval.Search(b, qs, q, gal, n, d, k, retrieval.SearchOptions{Threads: o.threads}); err != nil {
			fatalf("%v", err)
		}
	})
	qps := q / dt.Seconds()
	emit(fmt.Sprintf("dmlgo_search_n%d_d%d_k%d", n, d, k), qps, "queries/s")
	if o.anchors {
		a := runAnchor("numpy", []string{"OPENBLAS_NUM_THREADS=" + strconv.Itoa(o.threads)}, filepath.Join(o.anchorsDir, "search_anchor.py"))
		for name, v := range a {
			emit(name, v, "queries/s")
			ratio(fmt.Sprintf("search_n%d_d%d_k%d", n, d, k), qps, v)
		}
	}
	// One query at a time, as the service searches for an upload (the
	// first searchOne queries, each alone).
	dt = timeIt(2*time.Second, func() {
		for i := range searchOne {
			if _, err := retrieval.Search(b, qs[i*d:(i+1)*d], 1, gal, n, d, k, retrieval.SearchOptions{Threads: o.threads}); err != nil {
				fatalf("%v", err)
			}
		}
	})
	qps = searchOne / dt.Seconds()
	emit(fmt.Sprintf("dmlgo_search_one_n%d_d%d_k%d", n, d, k), qps, "queries/s")
	if o.anchors {
		a := runAnchor("numpy", []string{"OPENBLAS_NUM_THREADS=" + strconv.Itoa(o.threads)}, searchOneAnchorScript,
			"--n", strconv.Itoa(n), "--d", strconv.Itoa(d), "--q", strconv.Itoa(searchOne), "--k", strconv.Itoa(k))
		for name, v := range a {
			emit(name, v, "queries/s")
			ratio(fmt.Sprintf("search_one_n%d_d%d_k%d", n, d, k), qps, v)
		}
	}
}

// searchOne is how many queries the search suite times one at a time;
// searchOneAnchorScript their anchor, relative to the repository root.
const (
	searchOne             = 200
	searchOneAnchorScript = "bench/search_one_anchor.py"
)
