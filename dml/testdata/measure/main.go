// Command measure is a small, synthetic consumer-to-shop benchmark used to
// pick provisional DML defaults before `make compare` exists: it is not
// FMNIST-C2S. Items are vectors in 10 categories (item = category centre +
// an item offset, so same-category items are hard negatives); the shop view
// is the item plus a little noise, consumer views pass through a fixed
// random "domain" map and get strong noise. A two-layer MLP (Linear–BN–ReLU–
// Linear) learns embeddings with a head; retrieval ranks the shop views of
// the test items (disjoint from the training items) for each consumer
// query. It prints top-1/top-10 accuracy (mean over seeds) and the learned
// margins.
//
//	go run ./dml/testdata/measure [-seeds 3] [-offset 0.45] [-noise 1.2] [-heads 'spec;spec;...']
//
// The README's table comes from -offset 0.45 -noise 1.2 (harder) and
// -offset 0.8 -noise 0.8 (easier), 3 seeds each.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/dml"
	"github.com/dmlgo/dmlgo/nn"
)

const (
	inDim      = 48
	hidden     = 256
	embDim     = 64
	categories = 10
	trainItems = 1500
	testItems  = 1000
	views      = 2 // consumer views per train item
)

type dataset struct {
	x      []float32 // (n, inDim)
	labels []int32
	n      int
}

// world is the generator: category centres, the domain map, per-item
// prototypes.
type world struct {
	rng     *rand.Rand
	centres [][]float64
	domain  [][]float64 // consumer map: I + 0.5·R/√d
	offset  float64     // item offset scale (lower: harder negatives)
	noise   float64     // consumer noise
}

func newWorld(seed uint64, offset, noise float64) *world {
	w := &world{rng: rand.New(rand.NewPCG(seed, 77)), offset: offset, noise: noise}
	for range categories {
		c := make([]float64, inDim)
		for k := range c {
			c[k] = 2 * w.rng.NormFloat64()
		}
		w.centres = append(w.centres, c)
	}
	for i := 0; i < inDim; i++ {
		row := make([]float64, inDim)
		for k := range row {
			row[k] = 0.5 * w.rng.NormFloat64() / math.Sqrt(inDim)
		}
		row[i] += 1
		w.domain = append(w.domain, row)
	}
	return w
}

func (w *world) item() []float64 {
	c := w.centres[w.rng.IntN(categories)]
	v := make([]float64, inDim)
	for k := range v {
		v[k] = c[k] + w.offset*w.rng.NormFloat64()
	}
	return v
}

func (w *world) shop(v []float64) []float32 {
	out := make([]float32, inDim)
	for k := range out {
		out[k] = float32(v[k] + 0.1*w.rng.NormFloat64())
	}
	return out
}

func (w *world) consumer(v []float64) []float32 {
	out := make([]float32, inDim)
	gain := 0.7 + 0.6*w.rng.Float64()
	for i := range out {
		var s float64
		for k, a := range w.domain[i] {
			s += a * v[k]
		}
		out[i] = float32(gain*s + w.noise*w.rng.NormFloat64())
	}
	return out
}

func build(seed uint64, offset, noise float64) (train, query, gallery dataset) {
	w := newWorld(seed, offset, noise)
	add := func(d *dataset, x []float32, label int) {
		d.x = append(d.x, x...)
		d.labels = append(d.labels, int32(label))
		d.n++
	}
	for i := 0; i < trainItems; i++ {
		v := w.item()
		add(&train, w.shop(v), i)
		for range views {
			add(&train, w.consumer(v), i)
		}
	}
	for i := 0; i < testItems; i++ {
		v := w.item()
		add(&gallery, w.shop(v), i)
		add(&query, w.consumer(v), i)
	}
	return
}

type model struct {
	fc1 *nn.Linear
	bn  *nn.BatchNorm
	fc2 *nn.Linear
}

func (m *model) forward(g *autograd.Graph, x *autograd.Var) *autograd.Var {
	return m.fc2.Forward(g, g.Relu(m.bn.Forward(g, m.fc1.Forward(g, x))))
}

type result struct {
	top1, top10 float64
	margins     []dml.Stat
	secs        float64
}

func run(b backend.Backend, spec string, seed uint64, epochs int, train, query, gallery dataset) (result, error) {
	start := time.Now()
	name, cfg, err := dml.Parse(spec)
	if err != nil {
		return result{}, err
	}
	rng := nn.RNG(seed)
	m := &model{fc1: nn.NewLinear(b, rng, inDim, hidden, true), bn: nn.NewBatchNorm(b, hidden), fc2: nn.NewLinear(b, rng, hidden, embDim, true)}
	head, err := dml.New(b, name, cfg, embDim, trainItems, seed)
	if err != nil {
		return result{}, err
	}
	model := append(append(nn.Params(m.fc1), nn.Params(m.bn)...), nn.Params(m.fc2)...)
	ps := nn.NewParamSet(b, append([]nn.GroupSpec{{Name: "backbone", Params: model}}, head.Groups()...)...)
	opt := nn.NewSGD(ps, 0.9, 5e-4, true)
	const batch = 128
	steps := epochs * (train.n / batch)
	sched := nn.OneCycle{}
	g := autograd.New(b)
	order := make([]int, train.n)
	for i := range order {
		order[i] = i
	}
	xb := make([]float32, batch*inDim)
	lb := make([]int32, batch)
	sh := rand.New(rand.NewPCG(seed, 5))
	nn.SetTraining(m.bn, true)
	for step := 0; step < steps; step++ {
		k := step % (train.n / batch)
		if k == 0 {
			sh.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for r := 0; r < batch; r++ {
			i := order[k*batch+r]
			copy(xb[r*inDim:], train.x[i*inDim:(i+1)*inDim])
			lb[r] = train.labels[i]
		}
		ps.ZeroGrad()
		emb := m.forward(g, autograd.NewVar(g.Upload(xb, batch, inDim), false))
		loss, err := head.Forward(g, emb, lb)
		if err != nil {
			return result{}, err
		}
		g.Backward(loss)
		opt.Step(float32(0.1 * sched.Factor(step, steps)))
		g.Reset()
	}
	nn.SetTraining(m.bn, false)
	embed := func(d dataset) []float32 {
		var out []float32
		g.NoGrad(func() {
			e := g.L2Normalize(m.forward(g, autograd.NewVar(g.Upload(d.x, d.n, inDim), false)), 1e-6)
			out = g.Values(e)
		})
		g.Reset()
		return out
	}
	q, gal := embed(query), embed(gallery)
	var top1, top10 int
	sims := make([]float64, gallery.n)
	idx := make([]int, gallery.n)
	for i := 0; i < query.n; i++ {
		for j := 0; j < gallery.n; j++ {
			var s float64
			for k := 0; k < embDim; k++ {
				s += float64(q[i*embDim+k]) * float64(gal[j*embDim+k])
			}
			sims[j], idx[j] = s, j
		}
		sort.Slice(idx, func(a, c int) bool { return sims[idx[a]] > sims[idx[c]] })
		for r := 0; r < 10; r++ {
			if gallery.labels[idx[r]] == query.labels[i] {
				if r == 0 {
					top1++
				}
				top10++
				break
			}
		}
	}
	return result{top1: float64(top1) / float64(query.n), top10: float64(top10) / float64(query.n), margins: head.Margins(), secs: time.Since(start).Seconds()}, nil
}

func main() {
	seeds := flag.Int("seeds", 3, "seeds per head")
	epochs := flag.Int("epochs", 10, "epochs")
	offset := flag.Float64("offset", 0.45, "item offset scale within a category (lower: harder)")
	noise := flag.Float64("noise", 1.2, "consumer noise")
	heads := flag.String("heads", "softmax;normface;sphereface;cosface;cosface:s=30;arcface;arcface:s=30;combined;dml/fixed;dml/adaptive;dml/class;dml/class:margin_reg=15;dml/class:margin_lr=10", "head specs, ';'-separated")
	flag.Parse()
	b := cpu.New(0)
	fmt.Printf("synthetic c2s: %d train items ×(1 shop + %d consumer), %d test items, in %d, offset %g, noise %g, MLP %d-%d-%d, %d epochs, batch 128, SGD nesterov 0.9 wd 5e-4, one-cycle peak 0.1, %d seeds\n",
		trainItems, views, testItems, inDim, *offset, *noise, inDim, hidden, embDim, *epochs, *seeds)
	fmt.Printf("%-48s %7s %7s %7s  %s\n", "head", "top1", "top10", "±top10", "margins (last seed)")
	for _, spec := range strings.Split(*heads, ";") {
		var t1, t10, t10sq float64
		var last result
		for s := 0; s < *seeds; s++ {
			train, query, gallery := build(uint64(1000+s), *offset, *noise)
			r, err := run(b, spec, uint64(s+1), *epochs, train, query, gallery)
			if err != nil {
				fmt.Fprintln(os.Stderr, spec, err)
				os.Exit(1)
			}
			t1 += r.top1
			t10 += r.top10
			t10sq += r.top10 * r.top10
			last = r
		}
		n := float64(*seeds)
		sd := math.Sqrt(math.Max(0, t10sq/n-(t10/n)*(t10/n)))
		var ms []string
		for _, st := range last.margins {
			ms = append(ms, fmt.Sprintf("%s=%.3f", st.Name, st.Value))
		}
		fmt.Printf("%-48s %7.4f %7.4f %7.4f  %s (%.0fs/run)\n", spec, t1/n, t10/n, sd, strings.Join(ms, " "), last.secs)
	}
}
