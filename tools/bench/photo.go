package main

// The photo suite: what a shop runs. ResNet-50 and ResNet-18 on 3×224×224
// inputs with a 128-wide embedding fc: embedding at batch 1 (one upload to
// the service; the weights frozen, as model.Load freezes them) and 32 (a
// gallery), training at batch 32 (a CosFace head over 1000 classes, SGD
// momentum 0.9); the photo pipeline (JPEG decode, EXIF, crop, resize,
// normalise) on one core; and retrieve serve end to end (serve_latency.go,
// also the suite serve alone). With -anchors, bench/photo_anchor.py times
// PyTorch's variants in the same run and each ratio is taken against the
// best of them (ratio_<arch>_<mode>_b<batch>_best). With -rounds N, ours
// and the anchor take turns N times and every figure and ratio is the
// median of the rounds. Within a round they take turns part by part
// (photoSchedule), so that each ratio compares timings taken within a
// minute or so of each other, not several minutes apart.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// photoAnchorScript is the anchor, relative to the repository root (the
// tool runs from there, as make does).
const photoAnchorScript = "bench/photo_anchor.py"

func photoSuite(b backend.Backend, o options) {
	if backend.SetThreads(b, o.threads) {
		runtime.GOMAXPROCS(max(o.threads, 1))
	}
	steps := max(3, o.steps/2)
	for _, arch := range o.photoArchs {
		// Ours and the anchor take turns, round after round: this
		// machine's speed drifts by tens of percent over minutes, so
		// each ratio is taken within a round and the rounds' median is
		// reported (photoReport).
		var rounds []photoRound
		for r := range o.rounds {
			if o.rounds > 1 {
				fmt.Printf("# %s: round %d of %d\n", arch, r+1, o.rounds)
			}
			var pr photoRound
			for _, t := range photoSchedule(r, o.anchors) {
				if t.torch {
					if pr.torch == nil {
						pr.torch = map[string]float64{}
					}
					maps.Copy(pr.torch, photoAnchor(arch, t.part, steps, o))
					continue
				}
				photoOurs(&pr.ours, b, arch, t.part, steps)
			}
			rounds = append(rounds, pr)
		}
		photoReport(b, o, rounds)
	}
	photoPipeline(o)
	serveSuite(o) // serve_latency.go
}

// photoRound is one round of an architecture's figures: ours by tag
// (<arch>_embed_b<batch>[_<prec>], <arch>_train_b32, in the order they
// were taken) and PyTorch's variants by name (nil without -anchors).
type photoRound struct {
	ours  photoFigures
	torch map[string]float64
}

// photoFigures are figures in the order they were taken.
type photoFigures struct {
	tags   []string
	values map[string]float64
}

func (f *photoFigures) add(tag string, v float64) {
	if f.values == nil {
		f.values = map[string]float64{}
	}
	f.tags = append(f.tags, tag)
	f.values[tag] = v
}

// photoPart is a part of a round: the embedding at a batch size, or
// (batch 0) the training step.
type photoPart struct{ batch int }

// photoParts are a round's parts in order.
var photoParts = []photoPart{{1}, {32}, {0}}

// photoTurn is one turn of a round: a part, by us or by the anchor.
type photoTurn struct {
	part  photoPart
	torch bool
}

// photoSchedule is round r's turns (r from 0): part after part, ours
// and the anchor's one after the other (this machine's speed drifts by
// tens of percent over minutes, so each ratio is taken from timings a
// minute or so apart rather than several), ours first in even rounds and
// the anchor's first in odd ones, so that a drift within a part favours
// neither side. Without the anchor, ours alone.
func photoSchedule(r int, anchors bool) []photoTurn {
	var turns []photoTurn
	for _, p := range photoParts {
		if !anchors {
			turns = append(turns, photoTurn{part: p})
			continue
		}
		first := r%2 == 1
		turns = append(turns, photoTurn{part: p, torch: first}, photoTurn{part: p, torch: !first})
	}
	return turns
}

// photoOurs adds our figures of part to f: arch's embedding at the
// part's batch size in fp32 and each low precision the backend and CPU
// run, or its training step at batch 32.
func photoOurs(f *photoFigures, b backend.Backend, arch string, part photoPart, steps int) {
	if part.batch == 0 {
		f.add(arch+"_train_b32", photoModel(b, arch, 32, true, max(2, steps/2), "fp32"))
		return
	}
	batch := part.batch
	if batch == 1 {
		steps *= 8 // one image takes tens of ms (the anchor does the same)
	}
	tag := fmt.Sprintf("%s_embed_b%d", arch, batch)
	f.add(tag, photoModel(b, arch, batch, false, steps, "fp32"))
	for _, p := range lowPrecisions {
		if prec, err := backend.SetPrecision(b, p); err == nil && !strings.HasPrefix(prec, "fp32") {
			f.add(tag+"_"+p, photoModel(b, arch, batch, false, steps, p))
		} else {
			fmt.Printf("# no %s figures: %s\n", p, whyNot(prec, err))
		}
	}
	backend.SetPrecision(b, "fp32")
}

// photoAnchor runs bench/photo_anchor.py for part of arch: PyTorch with
// glibc's allocator, then with the tuned one (its batch-32 figures
// depend on it), the tuned figures named with the suffix _tuned.
func photoAnchor(arch string, part photoPart, steps int, o options) map[string]float64 {
	args := []string{photoAnchorScript, "--arch", arch, "--threads", strconv.Itoa(o.threads), "--steps", strconv.Itoa(steps)}
	if part.batch == 0 {
		args = append(args, "--batches", "", "--train", "1")
	} else {
		args = append(args, "--batches", strconv.Itoa(part.batch), "--train", "0")
	}
	a := runAnchor("torchvision", nil, args...)
	for k, v := range runAnchor("torchvision", []string{"GLIBC_TUNABLES=" + tunedMalloc}, args...) {
		if a == nil {
			a = map[string]float64{}
		}
		a[k+"_tuned"] = v
	}
	return a
}

// photoReport prints an architecture's figures: each the median of its
// rounds (with every round's value in a comment when there are several),
// the low precisions' ratios to our fp32, and each of our figures' ratio
// to PyTorch's best variant, taken within each round (the best variant
// of that round) and then the median over the rounds.
func photoReport(b backend.Backend, o options, rounds []photoRound) {
	several := len(rounds) > 1
	per := func(name string, vs []float64) {
		if several {
			fmt.Printf("# %s per round:", name)
			for _, v := range vs {
				fmt.Printf(" %.3g", v)
			}
			fmt.Println()
		}
	}
	first := rounds[0].ours
	for _, tag := range first.tags {
		var vs []float64
		for _, r := range rounds {
			vs = append(vs, r.ours.values[tag])
		}
		name := fmt.Sprintf("dmlgo_%s_t%d_%s", b.Name(), o.threads, tag)
		per(name, vs)
		emit(name, median(vs), "img/s")
		if base := baseTag(tag); base != tag {
			var rs []float64
			for _, r := range rounds {
				if fp := r.ours.values[base]; fp > 0 {
					rs = append(rs, r.ours.values[tag]/fp)
				}
			}
			p := strings.TrimPrefix(tag, base+"_")
			per("ratio_"+base+"_"+p+"_vs_fp32", rs)
			ratio(base+"_"+p+"_vs_fp32", median(rs), 1)
		}
	}
	if !o.anchors {
		return
	}
	printed := map[string]bool{}
	for _, tag := range first.tags {
		for _, r := range rounds {
			for _, k := range slices.Sorted(maps.Keys(r.torch)) {
				if printed[k] || !sameFigure(k, tag) {
					continue
				}
				var vs []float64
				for _, r2 := range rounds {
					if v, ok := r2.torch[k]; ok {
						vs = append(vs, v)
					}
				}
				per(k, vs)
				emit(k, median(vs), "img/s")
				printed[k] = true
			}
		}
		rs, bests := bestRatios(rounds, tag)
		if len(rs) > 0 {
			fmt.Printf("# best PyTorch variant for %s: %s\n", tag, strings.Join(bests, ", "))
			per("ratio_"+tag+"_best", rs)
			ratio(tag+"_best", median(rs), 1)
		}
	}
}

// sameFigure reports whether PyTorch's figure k (a variant's name, maybe
// with _tuned) measures what our figure tag does, at any precision.
func sameFigure(k, tag string) bool {
	return strings.HasSuffix(strings.TrimSuffix(k, "_tuned"), "_"+baseTag(tag))
}

// bestRatios is, for each round with a PyTorch figure for tag, our
// figure over the best of PyTorch's in that round, and that variant's
// name.
func bestRatios(rounds []photoRound, tag string) (rs []float64, bests []string) {
	for _, r := range rounds {
		best, bestName := 0.0, ""
		for k, v := range r.torch {
			if sameFigure(k, tag) && (v > best || v == best && k < bestName) {
				best, bestName = v, k
			}
		}
		if best > 0 {
			rs = append(rs, r.ours.values[tag]/best)
			bests = append(bests, bestName)
		}
	}
	return rs, bests
}

// settle collects the garbage of the figures before (a training step's
// backend leaves gigabytes of freed tensors): left to the collector's
// pace, it was marked again and again during the next figure, and the
// one-core pipeline measured after the models ran at 8–10 img/s instead
// of 20.
func settle() {
	runtime.GC()
}

// median is the middle value of vs (the mean of the two middle ones for
// an even count; 0 for none).
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// whyNot is why a precision has no figures: the error setting it, else
// what runs instead.
func whyNot(effective string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "runs " + effective
}

// lowPrecisions are the precisions the photo and serve suites time
// besides fp32, where the backend and CPU run them.
var lowPrecisions = []string{"bf16", "int8"}

// baseTag is a figure's tag without its precision suffix: the PyTorch
// variants it is compared with.
func baseTag(tag string) string {
	for _, p := range lowPrecisions {
		tag = strings.TrimSuffix(tag, "_"+p)
	}
	return tag
}

// tunedMalloc is the glibc allocator setting PyTorch's batch-32 figures
// need on this machine (without it they collapse to a few img/s: freed
// activations go back to the kernel and come back page-faulting).
const tunedMalloc = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736"

// photoModel times embedding (eval mode, no gradient; the convolutions at
// precision) or a training step of arch at batch on random inputs, and
// returns images per second.
func photoModel(b backend.Backend, arch string, batch int, train bool, steps int, precision string) float64 {
	settle()
	if cb, ok := b.(*cpu.Backend); ok {
		// A CPU backend of its own for each measurement: frozen weights
		// (packed) and the backend's pool of freed tensors (gigabytes
		// after training at 224) stay alive as long as their backend, and
		// the serve figures that follow run under a memory limit.
		b = cpu.New(cb.Threads())
	}
	net, err := nn.NewResNet(b, nn.ResNetConfig{Arch: arch, InChannels: 3, Out: 128, Seed: 1})
	if err != nil {
		fatalf("%v", err)
	}
	x := tensor.RandNormal(2, 0, 1, batch, 3, 224, 224).HostData()
	g := autograd.New(b)
	var f func()
	if train {
		const classes = 1000
		w := tensor.RandNormal(1, 0, 0.01, classes, 128).HostData()
		wt := tensor.New(b.Alloc(len(w)), 0, classes, 128)
		b.Upload(wt, w)
		head := &nn.Param{Name: "head", Var: autograd.NewVar(wt, true)}
		ps := nn.NewParamSet(b, nn.GroupSpec{Name: "net", Params: nn.Params(net)}, nn.GroupSpec{Name: "head", Params: []nn.Named[*nn.Param]{{Name: "head", V: head}}})
		opt := nn.NewSGD(ps, 0.9, 0, false)
		labels := make([]int32, batch)
		r := rand.New(rand.NewPCG(3, 3))
		for i := range labels {
			labels[i] = int32(r.IntN(classes))
		}
		f = func() {
			ps.ZeroGrad()
			e := g.L2Normalize(net.Forward(g, g.Constant(x, batch, 3, 224, 224)), 1e-12)
			cos := g.MatMul(e, g.L2Normalize(head.Var, 1e-12), false, true)
			g.Backward(g.MarginCE(cos, labels, backend.MarginParams{Kind: backend.MarginCosFace, S: 30, M: 0.35, Eps: 1e-7}, nil, nil))
			opt.Step(0.01)
			g.Reset()
		}
	} else {
		nn.SetTraining(net, false)
		var weights []*tensor.Tensor
		for _, p := range nn.Params(net) {
			weights = append(weights, p.V.Value)
		}
		backend.Freeze(b, weights...) // as model.Load does
		if _, err := backend.SetPrecision(b, precision); err != nil {
			fatalf("%v", err)
		}
		f = func() {
			g.NoGrad(func() { g.Values(net.Forward(g, g.Constant(x, batch, 3, 224, 224))) })
			g.Reset()
		}
	}
	for range 2 {
		f()
	}
	if err := b.Synchronize(); err != nil {
		fatalf("%v", err)
	}
	t := time.Now()
	for range steps {
		f()
	}
	if err := b.Synchronize(); err != nil {
		fatalf("%v", err)
	}
	return float64(steps*batch) / time.Since(t).Seconds()
}

// photoPipeline times, on one core, what retrieve index does to a JPEG
// before the network sees it: decode (at the scale the transform needs,
// data.DecodeFileFor; EXIF orientation included), crop, resize to 224,
// normalise; a 1200×1600 photo (a phone's, scaled down).
// With -rounds N, ours and PIL's take turns N times (ours first in odd
// rounds), and each figure and the ratio (taken within a round) is the
// median of the rounds.
func photoPipeline(o options) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("dmlgo-bench-photo-%d.jpg", os.Getpid()))
	if err := os.WriteFile(path, photoJPEG(1200, 1600), 0o644); err != nil {
		fatalf("%v", err)
	}
	defer os.Remove(path)
	tf, err := sets.Transform(sets.TSV)
	if err != nil {
		fatalf("%v", err)
	}
	dst := make([]float32, tf.Len())
	ourTurn := func() float64 {
		settle()
		dt := timeIt(2*time.Second, func() {
			img, box, err := data.DecodeFileFor(path, data.DefaultDecodeLimits, tf, image.Rectangle{})
			if err != nil {
				fatalf("%v", err)
			}
			tf.Apply(dst, img, box, 0, nil)
		})
		return 1 / dt.Seconds()
	}
	pilTurn := func() float64 {
		return runAnchor("PIL", nil, photoAnchorScript, "--pipeline", path, "--threads", "1")["pil_pipeline_224"]
	}
	var ours, pil, ratios []float64
	for r := range max(1, o.rounds) {
		var us, them float64
		if o.anchors && r%2 == 1 {
			them = pilTurn()
		}
		us = ourTurn()
		if o.anchors && r%2 == 0 {
			them = pilTurn()
		}
		ours = append(ours, us)
		if them > 0 {
			pil = append(pil, them)
			ratios = append(ratios, us/them)
		}
	}
	several := len(ours) > 1
	report := func(name string, vs []float64, unit string) {
		if len(vs) == 0 {
			return
		}
		if several {
			fmt.Printf("# %s per round:", name)
			for _, v := range vs {
				fmt.Printf(" %.3g", v)
			}
			fmt.Println()
		}
		if unit == "x" {
			ratio(strings.TrimPrefix(name, "ratio_"), median(vs), 1)
			return
		}
		emit(name, median(vs), unit)
	}
	report("dmlgo_pipeline_224_t1", ours, "img/s")
	report("pil_pipeline_224", pil, "img/s")
	report("ratio_pipeline_224_t1", ratios, "x")
}

// photoJPEG encodes a w×h photo-like JPEG (smooth colour gradients and
// some texture, quality 90).
func photoJPEG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(7, 7))
	for y := range h {
		for x := range w {
			n := uint8(r.IntN(24))
			img.SetRGBA(x, y, color.RGBA{R: uint8(x*200/w) + n, G: uint8(y*200/h) + n, B: uint8((x+y)*100/(w+h)) + n, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		fatalf("%v", err)
	}
	return buf.Bytes()
}
