package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// The elementwise tests run each fast path at each SIMD level on lengths
// 0..70 and a few longer ones, at unaligned offsets, with sentinels after
// the output, and compare with the Go loop the function documents: exactly
// where the SIMD kernel rounds as Go does (one operation per element),
// within a few roundings where it fuses a multiply-add or sums in another
// order.

var elemLens = func() []int {
	var ns []int
	for n := 0; n <= 70; n++ {
		ns = append(ns, n)
	}
	return append(ns, 127, 128, 129, 255, 1000, 4099)
}()

// specials go into the inputs of the ops that must treat them exactly.
var specials = []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
	1e-42, -1e-42, math.MaxFloat32, -math.MaxFloat32, 1, -1}

// elemInput is n values at offset off of a slice (random, with some
// specials when withSpecials).
func elemInput(r *rand.Rand, n, off int, withSpecials bool) []float32 {
	s := randSlice(r, off+n)[off:]
	if withSpecials {
		for i := range s {
			if r.IntN(4) == 0 {
				s[i] = specials[r.IntN(len(specials))]
			}
		}
	}
	return s
}

// elemOutput is an n-value output at offset off, followed by sentinels
// that checkGuard checks.
func elemOutput(r *rand.Rand, n, off int) (y, whole []float32) {
	whole = randSlice(r, off+n+9)
	for i := off + n; i < len(whole); i++ {
		whole[i] = sentinel
	}
	return whole[off : off+n], whole
}

func checkGuard(t *testing.T, what string, whole []float32, end int) {
	t.Helper()
	for i := end; i < len(whole); i++ {
		if !isSentinel(whole[i]) {
			t.Fatalf("%s: wrote past the end of y (index %d)", what, i-end)
		}
	}
}

// sameBits compares exactly (NaN equal to any NaN, -0 distinct from 0).
func sameBits(a, b float32) bool {
	if a != a && b != b {
		return true
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestElementwiseExact(t *testing.T) {
	ops := []struct {
		name  string
		fast  func(x, z, y []float32)
		loop  func(x, z []float32, i int) float32
		unary bool
	}{
		{"relu", func(x, _, y []float32) { relu(x, y) }, func(x, _ []float32, i int) float32 {
			if x[i] > 0 || x[i] != x[i] {
				return x[i]
			}
			return 0
		}, true},
		{"reluBackward", reluBackward, func(x, z []float32, i int) float32 {
			if x[i] > 0 {
				return z[i]
			}
			return 0
		}, false},
		{"add", add, func(x, z []float32, i int) float32 { return x[i] + z[i] }, false},
		{"mul", mul, func(x, z []float32, i int) float32 { return x[i] * z[i] }, false},
		{"scale", func(x, _, y []float32) { scale(-1.5, x, y) }, func(x, _ []float32, i int) float32 { return -1.5 * x[i] }, true},
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(10, uint64(l)))
		for _, op := range ops {
			for _, n := range elemLens {
				for off := 0; off < 4; off++ {
					x := elemInput(r, n, off, true)
					z := elemInput(r, n, (off+1)%4, true)
					y, whole := elemOutput(r, n, (off+2)%4)
					op.fast(x, z, y)
					what := fmt.Sprintf("%v %s n=%d off=%d", l, op.name, n, off)
					for i := range y {
						if want := op.loop(x, z, i); !sameBits(y[i], want) {
							t.Fatalf("%s: y[%d] = %v, want %v (x %v, z %v)", what, i, y[i], want, x[i], z[i])
						}
					}
					checkGuard(t, what, whole, (off+2)%4+n)
					// In place, as the backend allows y == x.
					x2 := append([]float32(nil), x...)
					op.fast(x2, z, x2)
					for i := range x2 {
						if want := op.loop(x, z, i); !sameBits(x2[i], want) {
							t.Fatalf("%s in place: y[%d] = %v, want %v", what, i, x2[i], want)
						}
					}
				}
			}
		}
	})
}

// TestAffineReluMatchesOps: the fused epilogue kernels (affineRelu,
// affineAddRelu) give bit for bit what affine, add and relu give in turn,
// NaN and signed zeros included, at every level, in place too, and write
// nothing past y; the maximum they return is y's (0 for an empty y)
// wherever y holds no NaN.
func TestAffineReluMatchesOps(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(12, uint64(l)))
		checkHi := func(what string, hi float32, y []float32) {
			t.Helper()
			want := float32(0)
			for _, v := range y {
				if v != v {
					return
				}
				want = max(want, v)
			}
			if !sameBits(hi, want) {
				t.Fatalf("%s: largest value %v, want %v", what, hi, want)
			}
		}
		for _, n := range elemLens {
			for off := 0; off < 4; off++ {
				what := fmt.Sprintf("%v n=%d off=%d", l, n, off)
				specials := off%2 == 0 // odd offsets: finite values, so the maximum is always checked
				x := elemInput(r, n, off, specials)
				z := elemInput(r, n, (off+1)%4, specials)
				for _, a := range []float32{1.7, -0.6, 0} {
					c := float32(-0.25)
					want := make([]float32, n)
					affine(a, c, x, want)
					relu(want, want)
					y, whole := elemOutput(r, n, (off+2)%4)
					hi := affineRelu(a, c, x, y)
					for i := range y {
						if !sameBits(y[i], want[i]) {
							t.Fatalf("%s affineRelu(%v): y[%d] = %v, want %v (x %v)", what, a, i, y[i], want[i], x[i])
						}
					}
					checkGuard(t, what+" affineRelu", whole, (off+2)%4+n)
					checkHi(fmt.Sprintf("%s affineRelu(%v)", what, a), hi, want)

					affine(a, c, x, want)
					add(want, z, want)
					relu(want, want)
					y, whole = elemOutput(r, n, (off+3)%4)
					hi = affineAddRelu(a, c, x, z, y)
					for i := range y {
						if !sameBits(y[i], want[i]) {
							t.Fatalf("%s affineAddRelu(%v): y[%d] = %v, want %v (x %v, z %v)", what, a, i, y[i], want[i], x[i], z[i])
						}
					}
					checkGuard(t, what+" affineAddRelu", whole, (off+3)%4+n)
					checkHi(fmt.Sprintf("%s affineAddRelu(%v)", what, a), hi, want)
					x2 := append([]float32(nil), x...)
					affineAddRelu(a, c, x2, z, x2)
					for i := range x2 {
						if !sameBits(x2[i], want[i]) {
							t.Fatalf("%s affineAddRelu in place: y[%d] = %v, want %v", what, i, x2[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestSGDStepExact: the backend's SGD step (the vector loop where it
// applies, split over threads) changes weights and momentum bit for bit
// as refSGDStep does, with weight decay, dampening, Nesterov and without
// momentum, at every level.
func TestSGDStepExact(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(13, uint64(l)))
		for _, p := range []backend.SGDParams{
			{LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4},
			{LR: 0.03, Momentum: 0.85, Dampening: 0.1, WeightDecay: 1e-2},
			{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3, Nesterov: true},
			{LR: 0.2},
		} {
			for _, n := range append(elemLens, 40000) {
				for _, threads := range []int{1, 2} {
					w, g, m := elemInput(r, n, 0, false), elemInput(r, n, 1, false), elemInput(r, n, 2, false)
					ww, wm := append([]float32(nil), w...), append([]float32(nil), m...)
					for range 2 {
						refSGDStep(p, ww, g, wm)
					}
					wt, gt, mt := tensor.FromSlice(w, n), tensor.FromSlice(g, n), tensor.FromSlice(m, n)
					b := New(threads)
					for range 2 {
						b.SGDStep(p, wt, gt, mt)
					}
					for i := range ww {
						if !sameBits(w[i], ww[i]) || !sameBits(m[i], wm[i]) {
							t.Fatalf("%v %+v n=%d threads=%d: w[%d], m[%d] = %v, %v; reference %v, %v", l, p, n, threads, i, i, w[i], m[i], ww[i], wm[i])
						}
					}
				}
			}
		}
	})
}

// close32 reports whether got is within k roundings of the exact want,
// relative to the magnitude scale of the terms.
func close32(got, want, scale float64, k float64) bool {
	return math.Abs(got-want) <= k*eps32*scale+1e-37
}

func TestElementwiseFused(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(11, uint64(l)))
		for _, n := range elemLens {
			for off := 0; off < 4; off++ {
				what := fmt.Sprintf("%v n=%d off=%d", l, n, off)
				x := elemInput(r, n, off, false)
				z := elemInput(r, n, (off+3)%4, false)

				y, whole := elemOutput(r, n, (off+1)%4)
				y0 := append([]float32(nil), y...)
				axpy(0.3, x, y)
				for i := range y {
					want := float64(y0[i]) + 0.3*float64(x[i])
					if !close32(float64(y[i]), want, math.Abs(float64(y0[i]))+0.3*math.Abs(float64(x[i])), 3) {
						t.Fatalf("%s axpy: y[%d] = %v, want %v", what, i, y[i], want)
					}
				}
				checkGuard(t, what+" axpy", whole, (off+1)%4+n)

				y, whole = elemOutput(r, n, (off+2)%4)
				affine(1.7, -0.2, x, y)
				for i := range y {
					want := 1.7*float64(x[i]) - 0.2
					if !close32(float64(y[i]), want, 1.7*math.Abs(float64(x[i]))+0.2, 3) {
						t.Fatalf("%s affine: y[%d] = %v, want %v", what, i, y[i], want)
					}
				}
				checkGuard(t, what+" affine", whole, (off+2)%4+n)

				y, whole = elemOutput(r, n, (off+3)%4)
				p, q, rr, m := float32(0.9), float32(-0.4), float32(0.05), float32(0.1)
				bnDx(p, q, rr, m, x, z, y)
				for i := range y {
					want := float64(p)*float64(x[i]) + float64(q)*(float64(z[i])-float64(m)) + float64(rr)
					sc := math.Abs(float64(p)*float64(x[i])) + math.Abs(float64(q))*(math.Abs(float64(z[i]))+0.1) + 0.05
					if !close32(float64(y[i]), want, sc, 6) {
						t.Fatalf("%s bnDx: y[%d] = %v, want %v", what, i, y[i], want)
					}
				}
				checkGuard(t, what+" bnDx", whole, (off+3)%4+n)

				// Sums: float64 loops as the oracle; float32 sums within
				// n roundings of the magnitude sum.
				var s, ss, sd, sdx, mag, magx float64
				mean := 0.25
				for i, v := range x {
					s += float64(v)
					d := float64(v) - mean
					ss += d * d
					sd += float64(x[i])
					sdx += float64(x[i]) * (float64(z[i]) - mean)
					mag += math.Abs(float64(v))
					magx += math.Abs(float64(x[i])) * (math.Abs(float64(z[i])) + mean)
				}
				if got := sum64(x); math.Abs(got-s) > 1e-12*(mag+1) {
					t.Fatalf("%s sum64 = %v, want %v", what, got, s)
				}
				if got := sumSqDev64(mean, x); math.Abs(got-ss) > 1e-12*(ss+1) {
					t.Fatalf("%s sumSqDev64 = %v, want %v", what, got, ss)
				}
				gd, gdx := bnSums(float32(mean), x, z)
				if !close32(float64(gd), sd, mag, float64(n+2)) || !close32(float64(gdx), sdx, magx, float64(2*n+4)) {
					t.Fatalf("%s bnSums = %v, %v, want %v, %v", what, gd, gdx, sd, sdx)
				}
			}
		}
	})
}

// TestBackendFastVsReference runs the backend ops that the SIMD kernels
// serve, on the fast backend at each level and on the reference backend.
func TestBackendFastVsReference(t *testing.T) {
	convs := []backend.Conv2dParams{
		{N: 1, C: 3, H: 17, W: 15, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 3, C: 8, H: 9, W: 9, K: 12, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		{N: 2, C: 16, H: 8, W: 8, K: 33, R: 1, S: 1, StrideH: 1, StrideW: 1},
		{N: 1, C: 32, H: 16, W: 16, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		// resnet-s's planes: panel rows of one (32), two (16) and four (8)
		// output rows, depths over one kc block, and a single image whose
		// GEMM runs on both threads.
		{N: 2, C: 32, H: 32, W: 32, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 3, C: 64, H: 16, W: 16, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 1, C: 128, H: 8, W: 8, K: 128, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		// Rows that do not divide the panel width, vertical stride only,
		// dilation, no padding, uneven padding and groups.
		{N: 2, C: 5, H: 11, W: 33, K: 7, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 2, C: 6, H: 13, W: 19, K: 9, R: 3, S: 5, StrideH: 2, StrideW: 1, PadH: 1, PadW: 2},
		{N: 2, C: 4, H: 14, W: 14, K: 8, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2, DilH: 2, DilW: 2},
		{N: 2, C: 3, H: 10, W: 12, K: 5, R: 3, S: 2, StrideH: 1, StrideW: 1},
		{N: 2, C: 8, H: 9, W: 7, K: 6, R: 5, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 2},
		{N: 3, C: 8, H: 10, W: 10, K: 12, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, Groups: 4},
	}
	bns := []backend.BatchNormParams{
		{N: 3, C: 5, L: 37, Eps: 1e-5, Momentum: 0.1, Training: true},
		{N: 2, C: 4, L: 1024, Eps: 1e-5, Momentum: 0.1, Training: true},
		{N: 7, C: 3, L: 1, Eps: 1e-3, Momentum: 0.2, Training: true},
		{N: 2, C: 6, L: 50, Eps: 1e-5, Training: false},
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(12, uint64(l)))
		ref := NewReference()
		for _, threads := range []int{1, 2} {
			fast := New(threads)
			for _, p := range convs {
				p = p.Normalized()
				xs := []int{p.N, p.C, p.H, p.W}
				ws := []int{p.K, p.C / p.G(), p.R, p.S}
				ys := []int{p.N, p.K, p.P(), p.Q()}
				x, w, dy := randSlice(r, prod(xs)), randSlice(r, prod(ws)), randSlice(r, prod(ys))
				name := fmt.Sprintf("%v threads=%d conv %+v", l, threads, p)
				// The outputs start as garbage: every pass overwrites its output.
				compareOp(t, name+" forward", 1e-5, fast, ref, [][]float32{x, w, randSlice(r, prod(ys))}, [][]int{xs, ws, ys}, 2,
					func(b backend.Backend, ts []*tensor.Tensor) { b.Conv2dForward(p, ts[0], ts[1], ts[2]) })
				compareOp(t, name+" backward data", 1e-5, fast, ref, [][]float32{dy, w, randSlice(r, prod(xs))}, [][]int{ys, ws, xs}, 2,
					func(b backend.Backend, ts []*tensor.Tensor) { b.Conv2dBackwardData(p, ts[0], ts[1], ts[2]) })
				compareOp(t, name+" backward filter", 1e-5, fast, ref, [][]float32{x, dy, randSlice(r, prod(ws))}, [][]int{xs, ys, ws}, 2,
					func(b backend.Backend, ts []*tensor.Tensor) { b.Conv2dBackwardFilter(p, ts[0], ts[1], ts[2]) })
			}
			for _, p := range bns {
				xs, cs := []int{p.N, p.C, p.L}, []int{p.C}
				x := randSlice(r, prod(xs))
				for i := range x {
					x[i] = 3 + 2*x[i] // a mean away from 0
				}
				gamma, beta := randSlice(r, p.C), randSlice(r, p.C)
				rv := make([]float32, p.C)
				for i := range rv {
					rv[i] = 0.5 + r.Float32()
				}
				name := fmt.Sprintf("%v threads=%d batchnorm %+v", l, threads, p)
				fwd := func(b backend.Backend, ts []*tensor.Tensor) {
					sm, si := ts[6], ts[7]
					if !p.Training {
						sm, si = nil, nil
					}
					b.BatchNormForward(p, ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], sm, si)
				}
				compareOp(t, name+" forward", 1e-5, fast, ref,
					[][]float32{x, gamma, beta, randSlice(r, p.C), rv, make([]float32, len(x)), make([]float32, p.C), make([]float32, p.C)},
					[][]int{xs, cs, cs, cs, cs, xs, cs, cs}, 3, fwd)
				if !p.Training {
					continue
				}
				mean, inv := make([]float32, p.C), make([]float32, p.C)
				refBatchNormForward(p, x, gamma, beta, make([]float32, p.C), make([]float32, p.C), make([]float32, len(x)), mean, inv)
				compareOp(t, name+" backward", 1e-4, fast, ref,
					[][]float32{x, randSlice(r, len(x)), gamma, mean, inv, make([]float32, len(x)), randSlice(r, p.C), randSlice(r, p.C)},
					[][]int{xs, xs, cs, cs, cs, xs, cs, cs}, 5,
					func(b backend.Backend, ts []*tensor.Tensor) {
						b.BatchNormBackward(p, ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6], ts[7])
					})
			}
		}
	})
}

func prod(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

// compareOp runs op on copies of data on both backends and compares the
// buffers from index firstOut on with a normalised error:
// |fast − ref| ≤ tol·(1 + max |ref|).
func compareOp(t *testing.T, name string, tol float64, fast, ref backend.Backend, data [][]float32, shapes [][]int, firstOut int, op func(backend.Backend, []*tensor.Tensor)) {
	t.Helper()
	run := func(b backend.Backend) [][]float32 {
		ts := make([]*tensor.Tensor, len(data))
		for i, d := range data {
			ts[i] = tensor.FromSlice(append([]float32(nil), d...), shapes[i]...)
		}
		op(b, ts)
		out := make([][]float32, len(ts))
		for i, x := range ts {
			out[i] = x.HostData()
		}
		return out
	}
	got, want := run(fast), run(ref)
	for o := firstOut; o < len(data); o++ {
		var scale float64
		for _, v := range want[o] {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for i := range want[o] {
			if d := math.Abs(float64(got[o][i]) - float64(want[o][i])); !(d <= tol*(1+scale)) {
				t.Fatalf("%s: output %d [%d] = %v, reference %v", name, o, i, got[o][i], want[o][i])
			}
		}
	}
}

// TestSplitRowsMatchesGo runs splitRowsVec at each level on every pair
// count in elemLens, for one row and for several rows at strides wider
// than theirs, at unaligned offsets, with sentinels around and between
// the output rows and source values past each row's 2n that must not be
// read into them, against the loop it documents: exact, bits included.
func TestSplitRowsMatchesGo(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(9, uint64(l)))
		for _, n := range elemLens {
			for _, rows := range []int{1, 2, 5} {
				off := r.IntN(16)
				lds, ldd := 2*n+r.IntN(7), n+1+r.IntN(5)
				src := make([]float32, off+(rows-1)*lds+2*n+5)
				for i := range src {
					src[i] = 2*r.Float32() - 1
					if r.IntN(8) == 0 {
						src[i] = specials[r.IntN(len(specials))]
					}
				}
				span := (rows-1)*ldd + n
				buf := make([]float32, 2*(off+span+17))
				for i := range buf {
					buf[i] = sentinel
				}
				evenAt, oddAt := off, off+span+17+off
				even, odd := buf[evenAt:evenAt+span], buf[oddAt:oddAt+span]
				s := src[off:]
				if !splitRowsVec(s, lds, n, rows, even, odd, ldd) {
					for i := range rows {
						for k := range n {
							even[i*ldd+k], odd[i*ldd+k] = s[i*lds+2*k], s[i*lds+2*k+1]
						}
					}
				}
				written := make([]bool, len(buf))
				for i := range rows {
					for k := range n {
						e, o := even[i*ldd+k], odd[i*ldd+k]
						we, wo := s[i*lds+2*k], s[i*lds+2*k+1]
						if math.Float32bits(e) != math.Float32bits(we) || math.Float32bits(o) != math.Float32bits(wo) {
							t.Fatalf("%v n=%d rows=%d: row %d pair %d = %v, %v, want %v, %v", l, n, rows, i, k, e, o, we, wo)
						}
						written[evenAt+i*ldd+k], written[oddAt+i*ldd+k] = true, true
					}
				}
				for i, v := range buf {
					if !written[i] && !isSentinel(v) {
						t.Fatalf("%v n=%d rows=%d: wrote buf[%d] outside the rows", l, n, rows, i)
					}
				}
			}
		}
	})
}
