package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestConvBNActMatchesOps: the fused inference kernel gives, to the bit,
// what Conv2dForward, BatchNormForward (eval), Binary Add and Unary Relu
// give in turn, on every path of the convolution (implicit, strided,
// pointwise, grouped, dilated), with and without residual and ReLU, at
// every SIMD level and thread count; the output starts as NaN.
func TestConvBNActMatchesOps(t *testing.T) {
	convs := []backend.Conv2dParams{
		{N: 3, C: 8, H: 12, W: 10, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 8, H: 11, W: 11, K: 12, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 2, C: 16, H: 8, W: 8, K: 32, R: 1, S: 1, StrideH: 2, StrideW: 2},
		{N: 2, C: 16, H: 8, W: 8, K: 8, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 2, C: 6, H: 9, W: 9, K: 6, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 2, DilW: 2, Groups: 3},
		{N: 1, C: 3, H: 19, W: 17, K: 8, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
		// A strided 1×1 convolution large enough for the explicit path.
		{N: 2, C: 64, H: 32, W: 33, K: 136, R: 1, S: 1, StrideH: 2, StrideW: 2},
	}
	if implicitForward(convs[len(convs)-1].Normalized()) {
		t.Fatal("the last case takes the implicit path: it would not test the explicit one")
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(31, uint64(l)))
		for _, threads := range []int{1, 2} {
			b := New(threads)
			for ci, p := range convs {
				np := p.Normalized()
				x := tensor.FromSlice(randSlice(r, p.N*p.C*p.H*p.W), p.N, p.C, p.H, p.W)
				w := tensor.FromSlice(randSlice(r, p.K*p.C/np.G()*p.R*p.S), p.K, p.C/np.G(), p.R, p.S)
				ys := []int{p.N, p.K, np.P(), np.Q()}
				n := p.N * p.K * np.P() * np.Q()
				gamma, beta, mean := tensor.FromSlice(randSlice(r, p.K), p.K), tensor.FromSlice(randSlice(r, p.K), p.K), tensor.FromSlice(randSlice(r, p.K), p.K)
				vr := randSlice(r, p.K)
				for i, v := range vr {
					vr[i] = 0.2 + v*v
				}
				variance := tensor.FromSlice(vr, p.K)
				res := tensor.FromSlice(randSlice(r, n), ys...)
				for _, withRes := range []bool{false, true} {
					for _, relu := range []bool{false, true} {
						name := fmt.Sprintf("%v threads=%d conv %d res=%v relu=%v", l, threads, ci, withRes, relu)
						want := tensor.Full(float32(math.NaN()), ys...)
						b.Conv2dForward(p, x, w, want)
						bn := backend.BatchNormParams{N: p.N, C: p.K, L: np.P() * np.Q(), Eps: 1e-5}
						b.BatchNormForward(bn, want, gamma, beta, mean, variance, want, nil, nil)
						var rt *tensor.Tensor
						if withRes {
							rt = res
							b.Binary(backend.Add, want, res, want)
						}
						if relu {
							b.Unary(backend.Relu, want, want, 0, 0)
						}
						got := tensor.Full(float32(math.NaN()), ys...)
						b.ConvBNActForward(p, 1e-5, x, w, gamma, beta, mean, variance, rt, got, relu)
						for i, v := range got.HostData() {
							if wv := want.HostData()[i]; math.Float32bits(v) != math.Float32bits(wv) {
								t.Fatalf("%s: y[%d] = %v, the ops in turn give %v", name, i, v, wv)
							}
						}
						// The reference backend (the ops in turn) agrees within rounding.
						ref := tensor.Full(float32(math.NaN()), ys...)
						NewReference().ConvBNActForward(p, 1e-5, x, w, gamma, beta, mean, variance, rt, ref, relu)
						for i, v := range ref.HostData() {
							if d := math.Abs(float64(v - got.HostData()[i])); d > 1e-4*(1+math.Abs(float64(v))) {
								t.Fatalf("%s: y[%d] = %v, reference %v", name, i, got.HostData()[i], v)
							}
						}
					}
				}
			}
		}
	})
}

// TestConvImageGroups: where one GEMM takes several images' pixels side
// by side (small output planes, imagesPerGEMM), every image's output is
// bit for bit what the image gives alone: forward, the fused epilogue
// with a residual and ReLU, backward data (the implicit path), pointwise
// convolutions (which read x in place, one image at a time), frozen
// weights in fp32, bf16 and int8 (each image quantised by its own
// scale); batches that leave a smaller last group, at every SIMD level,
// one thread and two.
func TestConvImageGroups(t *testing.T) {
	convs := []backend.Conv2dParams{
		{N: 7, C: 16, H: 7, W: 7, K: 24, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 5, C: 8, H: 10, W: 10, K: 16, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 6, C: 12, H: 3, W: 3, K: 8, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, Groups: 2},
		{N: 7, C: 20, H: 7, W: 7, K: 24, R: 1, S: 1, StrideH: 1, StrideW: 1}, // pointwise: x read in place
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		// With the vector kernels' 16- and 32-column tiles, 7×7 planes are
		// grouped (the generic kernel's 4-column tiles leave them alone).
		if l != Generic && imagesPerGEMM(true, 24, 49, 7) < 2 {
			t.Fatal("7×7 planes are not grouped: this test would not test the grouping")
		}
		r := rand.New(rand.NewPCG(37, uint64(l)))
		for _, threads := range []int{1, 2} {
			for ci, p := range convs {
				np := p.Normalized()
				P, Q := np.P(), np.Q()
				cg := p.C / np.G()
				x := randSlice(r, p.N*p.C*p.H*p.W)
				w := randSlice(r, p.K*cg*p.R*p.S)
				res := randSlice(r, p.N*p.K*P*Q)
				dy := randSlice(r, p.N*p.K*P*Q)
				gamma, beta := randSlice(r, p.K), randSlice(r, p.K)
				mean, vr := randSlice(r, p.K), randSlice(r, p.K)
				for i, v := range vr {
					vr[i] = 0.2 + v*v
				}
				wt := tensor.FromSlice(w, p.K, cg, p.R, p.S)
				vec := func(v []float32) *tensor.Tensor { return tensor.FromSlice(v, len(v)) }
				// run gives the outputs for images [n0, n0+count) as one batch.
				run := func(b *Backend, n0, count int) (fwd, fused, dx []float32) {
					q := p
					q.N = count
					xs, xe := n0*p.C*p.H*p.W, (n0+count)*p.C*p.H*p.W
					ys, ye := n0*p.K*P*Q, (n0+count)*p.K*P*Q
					xt := tensor.FromSlice(x[xs:xe], count, p.C, p.H, p.W)
					y := tensor.Full(float32(math.NaN()), count, p.K, P, Q)
					b.Conv2dForward(q, xt, wt, y)
					f := tensor.Full(float32(math.NaN()), count, p.K, P, Q)
					b.ConvBNActForward(q, 1e-5, xt, wt, vec(gamma), vec(beta), vec(mean), vec(vr), tensor.FromSlice(res[ys:ye], count, p.K, P, Q), f, true)
					d := tensor.Full(float32(math.NaN()), count, p.C, p.H, p.W)
					b.Conv2dBackwardData(q, tensor.FromSlice(dy[ys:ye], count, p.K, P, Q), wt, d)
					return y.HostData(), f.HostData(), d.HostData()
				}
				for _, prec := range []string{"fp32", "bf16", "int8"} {
					b := New(threads)
					if prec != "fp32" {
						if prec == "bf16" && !bf16Ready() || prec == "int8" && !i8Ready() {
							continue
						}
						b.SetPrecision(prec)
						b.FreezeWeights(wt)
					}
					all := [3][]float32{}
					all[0], all[1], all[2] = run(b, 0, p.N)
					for n := range p.N {
						one := [3][]float32{}
						one[0], one[1], one[2] = run(b, n, 1)
						for o, what := range []string{"forward", "fused", "backward data"} {
							size := len(one[o])
							for i, v := range one[o] {
								if got := all[o][n*size+i]; math.Float32bits(got) != math.Float32bits(v) {
									t.Fatalf("%v threads=%d conv %d %s %s: image %d value %d = %v in the batch, %v alone", l, threads, ci, prec, what, n, i, got, v)
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestConvBNActRanges: at int8, ConvBNActForwardRange reports each
// image's largest output value exactly (that of a pass over the output)
// when the op ends in a ReLU, and not otherwise; given its input's
// largest values it writes, to the bit, what it writes without them (and
// something else when told a wrong range, so it does use them); on the
// implicit, pointwise, strided explicit and stem paths, with and without
// a residual, one thread and two. At fp32, and at int8 with the AVX2
// level forced, it reports nothing and writes what ConvBNActForward does.
func TestConvBNActRanges(t *testing.T) {
	defer needI8(t)()
	convs := []backend.Conv2dParams{
		{N: 3, C: 16, H: 10, W: 10, K: 24, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 16, H: 8, W: 8, K: 40, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 2, C: 64, H: 32, W: 33, K: 136, R: 1, S: 1, StrideH: 2, StrideW: 2},
		{N: 2, C: 3, H: 19, W: 17, K: 8, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
		// Planes wider than a GEMM's block of 512 columns.
		{N: 2, C: 8, H: 40, W: 40, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 16, H: 24, W: 24, K: 16, R: 1, S: 1, StrideH: 1, StrideW: 1},
	}
	r := rand.New(rand.NewPCG(41, 7))
	for _, threads := range []int{1, 2} {
		for ci, p := range convs {
			np := p.Normalized()
			P, Q := np.P(), np.Q()
			ys := []int{p.N, p.K, P, Q}
			img, out := p.C*p.H*p.W, p.K*P*Q
			x := tensor.FromSlice(absAll(randSlice(r, p.N*img)), p.N, p.C, p.H, p.W)
			wt := tensor.FromSlice(randSlice(r, p.K*p.C*p.R*p.S), p.K, p.C, p.R, p.S)
			gamma, beta, mean, variance := randBatchNorm(r, p.K)
			res := tensor.FromSlice(randSlice(r, p.N*out), ys...)
			xMax := make([]float32, p.N)
			for n := range xMax {
				_, xMax[n] = minMax(x.HostData()[n*img : (n+1)*img])
			}
			for _, prec := range []string{"int8", "fp32", "int8 at avx2"} {
				b := New(threads)
				if prec != "fp32" {
					b.SetPrecision("int8")
				}
				restore := func() {}
				if prec == "int8 at avx2" {
					var err error
					if restore, err = SetLevel(AVX2); err != nil {
						continue
					}
				}
				b.FreezeWeights(wt)
				for _, rt := range []*tensor.Tensor{nil, res} {
					for _, relu := range []bool{false, true} {
						name := fmt.Sprintf("threads=%d conv %d %s res=%v relu=%v", threads, ci, prec, rt != nil, relu)
						want := tensor.Full(float32(math.NaN()), ys...)
						b.ConvBNActForward(p, 1e-5, x, wt, gamma, beta, mean, variance, rt, want, relu)
						same := func(what string, y *tensor.Tensor) {
							t.Helper()
							for i, v := range y.HostData() {
								if wv := want.HostData()[i]; math.Float32bits(v) != math.Float32bits(wv) {
									t.Fatalf("%s, %s: y[%d] = %v, ConvBNActForward gives %v", name, what, i, v, wv)
								}
							}
						}
						yMax := make([]float32, p.N)
						got := tensor.Full(float32(math.NaN()), ys...)
						ok := b.ConvBNActForwardRange(p, 1e-5, x, wt, gamma, beta, mean, variance, rt, got, relu, nil, yMax)
						same("without xMax", got)
						if wantOK := relu && prec == "int8"; ok != wantOK {
							t.Fatalf("%s: reported ranges %v, want %v", name, ok, wantOK)
						}
						for n := 0; ok && n < p.N; n++ {
							lo, hi := minMax(got.HostData()[n*out : (n+1)*out])
							if lo < 0 || math.Float32bits(yMax[n]) != math.Float32bits(hi) {
								t.Fatalf("%s: image %d: largest value %v, the output's range is [%v, %v]", name, n, yMax[n], lo, hi)
							}
						}
						got = tensor.Full(float32(math.NaN()), ys...)
						b.ConvBNActForwardRange(p, 1e-5, x, wt, gamma, beta, mean, variance, rt, got, relu, xMax, yMax)
						same("with xMax", got)
						if prec != "int8" {
							continue
						}
						// A range twice the true one quantises coarser.
						wrong := make([]float32, p.N)
						for n, v := range xMax {
							wrong[n] = 2 * v
						}
						b.ConvBNActForwardRange(p, 1e-5, x, wt, gamma, beta, mean, variance, rt, got, relu, wrong, yMax)
						differ := false
						for i, v := range got.HostData() {
							differ = differ || v != want.HostData()[i]
						}
						if !differ {
							t.Fatalf("%s: a wrong xMax changed nothing: the ranges are not used", name)
						}
					}
				}
				restore()
			}
		}
	}
}

// TestConvBNActPool: the fused stem (ConvBNActPoolForward) gives, to the
// bit, what ConvBNActForward and MaxPool2dForward give in turn: ResNet's
// stem shape, a pointwise convolution (the explicit path), a 3×3 one
// through Winograd's transforms (forced) and the reference backend; with
// and without ReLU; a NaN in the input (the pooling's NaN rules); frozen
// weights at fp32, bf16 and int8 where they run; at every SIMD level, one
// thread and two. With ReLU and finite outputs it reports each image's
// largest pooled value exactly; without ReLU it reports nothing.
func TestConvBNActPool(t *testing.T) {
	type stem struct {
		conv     backend.Conv2dParams
		r, s, pd int // the pooling window (stride 2) and padding
	}
	cases := []stem{
		{backend.Conv2dParams{N: 3, C: 3, H: 37, W: 30, K: 16, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}, 3, 3, 1},
		{backend.Conv2dParams{N: 2, C: 8, H: 12, W: 13, K: 24, R: 1, S: 1, StrideH: 1, StrideW: 1}, 2, 2, 0},
		{backend.Conv2dParams{N: 2, C: 16, H: 20, W: 20, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, 3, 3, 1},
	}
	defer SetWinograd(WinogradAlways)()
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(43, uint64(l)))
		for ci, c := range cases {
			p := c.conv
			np := p.Normalized()
			pool := backend.Pool2dParams{N: p.N, C: p.K, H: np.P(), W: np.Q(), R: c.r, S: c.s, StrideH: 2, StrideW: 2, PadH: c.pd, PadW: c.pd}
			xs := randSlice(r, p.N*p.C*p.H*p.W)
			if ci == 0 {
				xs[5] = float32(math.NaN())
			}
			x := tensor.FromSlice(xs, p.N, p.C, p.H, p.W)
			gamma, beta, mean, variance := randBatchNorm(r, p.K)
			plane := pool.P() * pool.Q()
			for _, threads := range []int{1, 2} {
				for _, prec := range []string{"fp32", "bf16", "int8", "reference"} {
					b := New(threads)
					if prec == "reference" {
						b = NewReference()
					} else {
						b.SetPrecision(prec)
					}
					w := tensor.FromSlice(randSlice(r, p.K*p.C*p.R*p.S), p.K, p.C, p.R, p.S)
					if prec != "reference" {
						b.FreezeWeights(w)
					}
					for _, relu := range []bool{false, true} {
						name := fmt.Sprintf("%v case %d threads=%d %s relu=%v", l, ci, threads, prec, relu)
						conv := tensor.Full(float32(math.NaN()), p.N, p.K, np.P(), np.Q())
						b.ConvBNActForward(p, 1e-5, x, w, gamma, beta, mean, variance, nil, conv, relu)
						want := tensor.Full(float32(math.NaN()), p.N, p.K, pool.P(), pool.Q())
						b.MaxPool2dForward(pool, conv, want, tensor.Zeros(p.N, p.K, pool.P(), pool.Q()))
						got := tensor.Full(float32(math.NaN()), p.N, p.K, pool.P(), pool.Q())
						yMax := make([]float32, p.N)
						ok := b.ConvBNActPoolForward(p, 1e-5, x, w, gamma, beta, mean, variance, relu, pool, got, yMax)
						for i, v := range got.HostData() {
							if wv := want.HostData()[i]; math.Float32bits(v) != math.Float32bits(wv) {
								t.Fatalf("%s: y[%d] = %v, the ops in turn give %v", name, i, v, wv)
							}
						}
						// An image with a NaN may report any range.
						for n := 0; ok && n < p.N; n++ {
							img := got.HostData()[n*p.K*plane : (n+1)*p.K*plane]
							lo, hi := minMax(img)
							if !slices.ContainsFunc(img, func(v float32) bool { return v != v }) && (lo < 0 || math.Float32bits(yMax[n]) != math.Float32bits(hi)) {
								t.Fatalf("%s: image %d: largest value %v, the output's range is [%v, %v]", name, n, yMax[n], lo, hi)
							}
						}
						nan := slices.ContainsFunc(got.HostData(), func(v float32) bool { return v != v })
						if wantOK := relu && prec != "reference"; ok != wantOK && !(nan && !ok) {
							t.Fatalf("%s: reported ranges %v, want %v", name, ok, wantOK)
						}
					}
				}
			}
		}
	})
}

// TestConvThreadsMatch: a stem-like convolution (few input channels, many
// pixels: its threads split the columns at batch 1) gives the same output
// bit for bit on one thread and on two, at fp32, bf16 and int8 (frozen
// weights, where the kernels exist), at every SIMD level.
func TestConvThreadsMatch(t *testing.T) {
	p := backend.Conv2dParams{N: 1, C: 3, H: 64, W: 60, K: 24, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(47, uint64(l)))
		x := randSlice(r, p.C*p.H*p.W)
		w := randSlice(r, p.K*p.C*p.R*p.S)
		for _, prec := range []string{"fp32", "bf16", "int8"} {
			var outs [2][]float32
			for i, threads := range []int{1, 2} {
				b := New(threads)
				b.SetPrecision(prec)
				outs[i] = frozenConv(t, b, p, x, w)
			}
			for j, v := range outs[0] {
				if math.Float32bits(outs[1][j]) != math.Float32bits(v) {
					t.Fatalf("%v %s: y[%d] = %v on two threads, %v on one", l, prec, j, outs[1][j], v)
				}
			}
		}
	})
}

// randBatchNorm is random eval-mode batch norm parameters for k channels
// (variances in [0.2, 1.2)).
func randBatchNorm(r *rand.Rand, k int) (gamma, beta, mean, variance *tensor.Tensor) {
	vec := func(v []float32) *tensor.Tensor { return tensor.FromSlice(v, len(v)) }
	gamma, beta, mean = vec(randSlice(r, k)), vec(randSlice(r, k)), vec(randSlice(r, k))
	vr := randSlice(r, k)
	for i, v := range vr {
		vr[i] = 0.2 + v*v
	}
	return gamma, beta, mean, vec(vr)
}
