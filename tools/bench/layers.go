package main

// The layers suite: where a ResNet's time at 224×224 goes, layer by
// layer. Each distinct convolution of the network (its shape, and whether
// a residual and a ReLU follow) runs alone as the photo path runs it:
// weights frozen, convolution, batch norm, residual and ReLU in one op,
// the stem with its max pooling. Per shape it prints the best time of one
// call, how many of the network's layers have it, their multiply-adds'
// rate and their share of the sum over the network; then the whole
// network's forward pass timed the same way, so that what the layers do
// not cover (pooling, fc, the glue between ops) shows as the difference.
// With -anchors, bench/layers_anchor.py times PyTorch's same layers in
// every CPU variant it has (eager, channels-last, optimize_for_inference;
// glibc's allocator and the tuned one), and each layer's ratio is
// PyTorch's best time over ours, taken within each round.
//
//	bench -threads 2 -layer-batch 1 -photo-archs resnet50 [-anchors] [-rounds 3] layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/tensor"
)

// layersAnchorScript is the suite's anchor, relative to the repository
// root.
const layersAnchorScript = "bench/layers_anchor.py"

// convLayer is one distinct convolution of a network at 224×224.
type convLayer struct {
	tag       string               // its shape, as the figures name it
	p         backend.Conv2dParams // N is the batch's, set when timed
	res, relu bool
	pool      bool // the stem: 3×3 max pooling, stride 2, padding 1, follows
	count     int  // how many of the network's layers have it
}

// macs is the layer's multiply-adds for one image.
func (l convLayer) macs() float64 {
	p := l.p.Normalized()
	return float64(p.K) * float64(p.C/p.G()) * float64(p.R*p.S) * float64(p.P()*p.Q())
}

// resnetLayers lists the distinct convolutions of arch (resnet18, 34 or
// 50) on 3×224×224 inputs, in the order the network first runs them,
// read from the model's own modules.
func resnetLayers(b backend.Backend, arch string) ([]convLayer, error) {
	net, err := nn.NewResNet(b, nn.ResNetConfig{Arch: arch, InChannels: 3, Out: 0, Seed: 1})
	if err != nil {
		return nil, err
	}
	var layers []convLayer
	add := func(c *nn.Conv2d, h int, res, relu, pool bool) int {
		w := c.Weight.Value.Shape() // K, C/G, R, S
		o := c.Opts
		g, s, d := max(o.Groups, 1), max(o.Stride, 1), max(o.Dilation, 1)
		p := backend.Conv2dParams{C: w[1] * g, H: h, W: h, K: w[0], R: w[2], S: w[3],
			StrideH: s, StrideW: s, PadH: o.Padding, PadW: o.Padding, DilH: d, DilW: d, Groups: g}
		tag := fmt.Sprintf("k%d_c%d_%dx%d_s%d_%d", p.K, p.C, p.R, p.S, s, h)
		if g > 1 {
			tag += "_g" + strconv.Itoa(g)
		}
		for _, f := range []struct {
			on   bool
			name string
		}{{res, "_res"}, {!relu, "_norelu"}, {pool, "_pool"}} {
			if f.on {
				tag += f.name
			}
		}
		i := slices.IndexFunc(layers, func(l convLayer) bool { return l.tag == tag })
		if i < 0 {
			layers = append(layers, convLayer{tag: tag, p: p, res: res, relu: relu, pool: pool})
			i = len(layers) - 1
		}
		layers[i].count++
		return p.Normalized().P()
	}
	downsample := func(ds *nn.Sequential, h int) {
		if ds != nil {
			add(ds.Layers[0].M.(*nn.Conv2d), h, false, false, false)
		}
	}
	h := add(net.Conv1, 224, false, true, net.MaxPool)
	if net.MaxPool {
		h = (h+2-3)/2 + 1
	}
	for _, stage := range net.Layers {
		for _, blk := range stage.Layers {
			switch m := blk.M.(type) {
			case *nn.Bottleneck:
				h1 := add(m.Conv1, h, false, true, false)
				h2 := add(m.Conv2, h1, false, true, false)
				downsample(m.Downsample, h)
				h = add(m.Conv3, h2, true, true, false)
			case *nn.BasicBlock:
				h1 := add(m.Conv1, h, false, true, false)
				downsample(m.Downsample, h)
				h = add(m.Conv2, h1, true, true, false)
			default:
				return nil, fmt.Errorf("%s: a block of type %T", arch, blk.M)
			}
		}
	}
	return layers, nil
}

// layersSuite runs the suite for each of -photo-archs.
func layersSuite(b backend.Backend, o options) {
	if backend.SetThreads(b, o.threads) {
		runtime.GOMAXPROCS(max(o.threads, 1))
	}
	conv, ok := b.(backend.ConvBNActer)
	if !ok {
		fatalf("layers: the %s backend has no fused convolution (ConvBNActer)", b.Name())
	}
	pooler, _ := b.(backend.ConvBNActPooler)
	for _, arch := range o.photoArchs {
		layers, err := resnetLayers(b, arch)
		if err != nil {
			fatalf("layers: %v", err)
		}
		for _, prec := range o.layerPrecs {
			// What runs reads "bf16 (AVX-512 BF16)", or "fp32 (…)" where
			// the CPU lacks the precision asked for.
			got, err := backend.SetPrecision(b, prec)
			if err != nil || prec != "fp32" && strings.HasPrefix(got, "fp32") {
				fmt.Printf("# %s: no %s layers (%s %v)\n", arch, prec, got, err)
				continue
			}
			tag := fmt.Sprintf("%s_b%d_%s", arch, o.layerBatch, prec)
			var ours [][]float64 // per round, per layer: ms
			var torch []map[string]float64
			var nets []float64
			for r := range o.rounds {
				if o.rounds > 1 {
					fmt.Printf("# %s: round %d of %d\n", tag, r+1, o.rounds)
				}
				ours = append(ours, timeLayers(b, conv, pooler, layers, o.layerBatch))
				steps := max(3, o.steps)
				if o.layerBatch == 1 {
					steps *= 4
				}
				nets = append(nets, 1000*float64(o.layerBatch)/photoModel(b, arch, o.layerBatch, false, steps, prec))
				if o.anchors && prec == "fp32" {
					torch = append(torch, layersAnchor(layers, o))
				}
			}
			layersReport(tag, o.layerBatch, layers, ours, nets, torch)
		}
		backend.SetPrecision(b, "fp32")
	}
}

// timeLayers times each layer at batch n and returns the best time of
// one call of each, in ms.
func timeLayers(b backend.Backend, conv backend.ConvBNActer, pooler backend.ConvBNActPooler, layers []convLayer, n int) []float64 {
	r := rand.New(rand.NewPCG(7, 11))
	// rnd is a tensor on b of scale·N(0, 1) values (no negative one with
	// relu), plus one with shift.
	rnd := func(scale, shift float32, relu bool, shape ...int) *tensor.Tensor {
		t := tensor.New(b.Alloc(tensor.Numel(shape)), 0, shape...)
		host := make([]float32, t.Numel())
		for i := range host {
			host[i] = scale*float32(r.NormFloat64()) + shift
			if relu {
				host[i] = max(host[i], 0)
			}
		}
		b.Upload(t, host)
		return t
	}
	ms := make([]float64, len(layers))
	for i, l := range layers {
		p := l.p
		p.N = n
		np := p.Normalized()
		// Every layer but the stem reads a ReLU's output.
		x := rnd(1, 0, !l.pool, n, p.C, p.H, p.W)
		w := rnd(float32(math.Sqrt(2/float64(p.K*p.R*p.S))), 0, false, p.K, p.C/np.G(), p.R, p.S)
		gamma, beta, mean, vr := rnd(0.1, 1, false, p.K), rnd(0.1, 0, false, p.K), rnd(0.1, 0, false, p.K), rnd(0.1, 1, true, p.K)
		backend.Freeze(b, w)
		var f func()
		if l.pool && pooler == nil {
			fmt.Printf("# %s: the backend has no fused pooling: timed without it\n", l.tag)
		}
		if l.pool && pooler != nil {
			pool := backend.Pool2dParams{N: n, C: p.K, H: np.P(), W: np.Q(), R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
			y := tensor.New(b.Alloc(n*p.K*pool.P()*pool.Q()), 0, n, p.K, pool.P(), pool.Q())
			f = func() { pooler.ConvBNActPoolForward(p, 1e-5, x, w, gamma, beta, mean, vr, l.relu, pool, y, nil) }
		} else {
			var res *tensor.Tensor
			if l.res {
				res = rnd(1, 0, false, n, p.K, np.P(), np.Q())
			}
			y := tensor.New(b.Alloc(n*p.K*np.P()*np.Q()), 0, n, p.K, np.P(), np.Q())
			f = func() { conv.ConvBNActForward(p, 1e-5, x, w, gamma, beta, mean, vr, res, y, l.relu) }
		}
		ms[i] = float64(timeIt(300*time.Millisecond, func() {
			f()
			if err := b.Synchronize(); err != nil {
				fatalf("layers: %v", err)
			}
		})) / 1e6
	}
	return ms
}

// layersAnchor runs bench/layers_anchor.py on the layers: PyTorch with
// glibc's allocator and with the tuned one, each layer's best time over
// the variants and both runs (torchBest).
func layersAnchor(layers []convLayer, o options) map[string]float64 {
	var spec []string
	for _, l := range layers {
		p := l.p
		spec = append(spec, fmt.Sprintf("%s:%d:%d:%d:%d:%d:%d:%d:%d:%t:%t:%t",
			l.tag, p.C, p.K, p.R, p.StrideH, p.PadH, p.H, max(p.DilH, 1), max(p.Groups, 1), l.res, l.relu, l.pool))
	}
	args := []string{layersAnchorScript, "--threads", strconv.Itoa(o.threads), "--batch", strconv.Itoa(o.layerBatch),
		"--layers", strings.Join(spec, ",")}
	var runs []map[string]float64
	for _, env := range [][]string{nil, {"GLIBC_TUNABLES=" + tunedMalloc}} {
		runs = append(runs, runAnchor("torch", env, args...))
	}
	return torchBest(runs, layers)
}

// torchVariants are the variants layers_anchor.py times.
var torchVariants = []string{"eager", "channels_last", "optimize"}

// torchBest is each layer's best PyTorch time (ms, by tag) over the
// variants (figures torch_<variant>_<tag>) of the anchor's runs; a layer
// without any is left out.
func torchBest(runs []map[string]float64, layers []convLayer) map[string]float64 {
	best := map[string]float64{}
	for _, l := range layers {
		for _, run := range runs {
			for _, v := range torchVariants {
				ms, ok := run["torch_"+v+"_"+l.tag]
				if !ok || !(ms > 0) {
					continue
				}
				if old, seen := best[l.tag]; !seen || ms < old {
					best[l.tag] = ms
				}
			}
		}
	}
	return best
}

// layersReport prints the layers' figures (medians of the rounds): per
// layer its time, and with the anchor PyTorch's best time and the ratio;
// then the sums over the network and the whole forward pass.
func layersReport(tag string, batch int, layers []convLayer, ours [][]float64, nets []float64, torch []map[string]float64) {
	var total, macs float64
	med := make([]float64, len(layers))
	for i, l := range layers {
		var vs []float64
		for _, r := range ours {
			vs = append(vs, r[i])
		}
		med[i] = median(vs)
		total += med[i] * float64(l.count)
		macs += l.macs() * float64(l.count)
	}
	n := float64(batch)
	fmt.Printf("# %s: %d distinct convolutions, %d in all\n", tag, len(layers), sumCounts(layers))
	var torchTotal []float64 // per round: PyTorch's best over the layers, weighted
	var ourTotal []float64
	for r := range torch {
		t, u := 0.0, 0.0
		for i, l := range layers {
			v, ok := torch[r][l.tag]
			if !ok {
				t = math.NaN()
				break
			}
			t += v * float64(l.count)
			u += ours[r][i] * float64(l.count)
		}
		if !math.IsNaN(t) {
			torchTotal, ourTotal = append(torchTotal, t), append(ourTotal, u)
		}
	}
	for i, l := range layers {
		name := fmt.Sprintf("layer_%s_%s", tag, l.tag)
		fmt.Printf("%s %.3f ms\n", name, med[i])
		fmt.Printf("# x%d, %.0f GFLOP/s, %.1f%% of the layers\n", l.count, 2*l.macs()*n/med[i]/1e6, 100*med[i]*float64(l.count)/total)
		var ts, rs []float64
		for r := range torch {
			if v, ok := torch[r][l.tag]; ok {
				ts = append(ts, v)
				rs = append(rs, v/ours[r][i])
			}
		}
		if len(ts) > 0 {
			fmt.Printf("torch_best_%s %.3f ms\n", name, median(ts))
			ratio("layer_"+tag+"_"+l.tag, median(rs), 1)
		}
	}
	fmt.Printf("layers_sum_%s %.2f ms\n", tag, total)
	fmt.Printf("# %.0f GFLOP/s over the layers\n", 2*macs*n/total/1e6)
	fmt.Printf("net_forward_%s %.2f ms\n", tag, median(nets))
	if len(torchTotal) > 0 {
		var rs []float64
		for r := range torchTotal {
			rs = append(rs, torchTotal[r]/ourTotal[r])
		}
		fmt.Printf("torch_best_layers_sum_%s %.2f ms\n", tag, median(torchTotal))
		ratio("layers_sum_"+tag, median(rs), 1)
	}
}

func sumCounts(layers []convLayer) int {
	n := 0
	for _, l := range layers {
		n += l.count
	}
	return n
}
