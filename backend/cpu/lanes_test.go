package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestLanesTile: each level's tile kernel gives the Go loop's sums (to
// within the rounding of unfused products), reads no value past the span
// lanesTile checks (x ends there), adds to the sums in out or replaces
// them, and writes nothing between its rows of 64 (sentinels).
func TestLanesTile(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(91, uint64(l)))
		for _, c := range []struct{ stride, nc, wp int }{
			{1, 1, 9}, {1, 3, 16}, {1, 130, 9}, {2, 1, 15}, {2, 5, 17}, {2, 67, 16},
		} {
			chs, row := c.wp, c.nc*c.wp
			span := lanesSpan(c.stride, c.nc, chs, row)
			x := randSlice(r, span)
			w := randSlice(r, c.nc*9*lanesBlock)
			ldo := lanesBlock + 13
			for _, add := range []bool{false, true} {
				name := fmt.Sprintf("stride %d, %d channels, rows of %d, add %v", c.stride, c.nc, c.wp, add)
				init := randSlice(r, (lanesWidth-1)*ldo+lanesBlock+ldo)
				for j := range lanesWidth {
					for o := lanesBlock; o < ldo; o++ {
						init[j*ldo+o] = sentinel
					}
				}
				// The float32 kernel, then the bfloat16 one on the same
				// tile read as pairs (nc pairs), each against its Go loop.
				for _, bf16 := range []bool{false, true} {
					x, w, abs, units := x, w, absSlice, float32(4)
					if bf16 {
						x, w, abs, units = pairBits(x), pairBits(w), absPairs, 8
					}
					want, got := append([]float32(nil), init...), append([]float32(nil), init...)
					bound := absSlice(init)
					lanesTileGo(bf16, c.stride, x, w, want, c.nc, chs, row, ldo, add)
					lanesTileGo(bf16, c.stride, abs(x), abs(w), bound, c.nc, chs, row, ldo, add)
					lanesTile(bf16, c.stride, x, w, got, c.nc, chs, row, ldo, add)
					for i, v := range got {
						if isSentinel(init[i]) {
							if !isSentinel(v) {
								t.Fatalf("%s, bf16 %v: out[%d] = %v, a sentinel written over", name, bf16, i, v)
							}
							continue
						}
						if tol := units * eps32 * bound[i]; !(math.Abs(float64(v-want[i])) <= float64(tol)) {
							t.Fatalf("%s, bf16 %v: out[%d] = %v, want %v (tolerance %g)", name, bf16, i, v, want[i], tol)
						}
					}
				}
			}
		}
	})
}

// pairBits is s's values read as bfloat16 pairs: each value's bits with
// its low half rounded like its high one (bf16 pairs of two values near
// s[i]).
func pairBits(s []float32) []float32 {
	out := make([]float32, len(s))
	for i, v := range s {
		h := roundBF16(v)
		l := roundBF16(v * 0.75)
		out[i] = math.Float32frombits(uint32(l) | uint32(h)<<16)
	}
	return out
}

// absPairs clears both halves' signs.
func absPairs(s []float32) []float32 {
	out := make([]float32, len(s))
	for i, v := range s {
		out[i] = math.Float32frombits(math.Float32bits(v) & 0x7fff7fff)
	}
	return out
}

// TestPairSpans: the vector kernel rounds pairs of spans to bfloat16
// pairs bit for bit as the Go loop does, for spans with and without a
// partial last vector, and writes nothing past them (sentinels).
func TestPairSpans(t *testing.T) {
	r := rand.New(rand.NewPCG(95, 1))
	for _, n := range []int{1, 7, 9, 15, 16, 17, 30, 32, 33, 58} {
		for _, pairs := range []int{1, 3} {
			src := randSlice(r, 2*n*pairs)
			src[0] = float32(math.Inf(-1))
			src[len(src)-1] = 1e-40 // a denormal: zero in bfloat16
			want := make([]float32, n*pairs+16)
			got := make([]float32, n*pairs+16)
			for i := range want {
				want[i], got[i] = sentinel, sentinel
			}
			pairSpansGo(src, n, pairs, want)
			pairSpans(src, n, pairs, got)
			if d := firstDiff(got, want); d >= 0 {
				t.Fatalf("n %d, %d pairs: dst[%d] bits %#x, want %#x", n, pairs, d, math.Float32bits(got[d]), math.Float32bits(want[d]))
			}
		}
	}
}

// TestLanesTileSpan: a tile's span is exactly what the stride's taps
// reach, and x one value shorter panics rather than letting the kernel
// read past it.
func TestLanesTileSpan(t *testing.T) {
	for _, stride := range []int{1, 2} {
		wp, nc := 19, 3
		chs, row := wp, 5*wp
		// The largest offset read, by the definition: the last channel's
		// taps at pixel 6.
		last := 0
		for kh := range 3 {
			for kw := range 3 {
				last = max(last, (nc-1)*chs+kh*row+stride*(lanesWidth-1)+kw)
			}
		}
		if got, want := lanesSpan(stride, nc, chs, row), last+1; got != want {
			t.Errorf("stride %d: span %d, want %d", stride, got, want)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("stride %d: no panic on an input one value short", stride)
				}
			}()
			lanesTile(false, stride, make([]float32, last), make([]float32, nc*9*lanesBlock), make([]float32, 7*lanesBlock), nc, chs, row, lanesBlock, false)
		}()
	}
}

func absSlice(s []float32) []float32 {
	a := make([]float32, len(s))
	for i, v := range s {
		a[i] = float32(math.Abs(float64(v)))
	}
	return a
}

// TestLanesConv: the lanes path's forward pass, plain and fused with batch
// norm, residual and ReLU, agrees with the direct sums to within rounding
// at every level: both strides, padding 0–2, odd planes, channel counts
// over several blocks of input channels, one and two threads, batches of
// one and more.
func TestLanesConv(t *testing.T) {
	defer SetLanes(WinogradAlways)()
	defer SetWinograd(WinogradNever)()
	defaultChannels := lanesChannels
	defer func() { lanesChannels = defaultChannels }()
	convs := []backend.Conv2dParams{
		{N: 2, C: 5, H: 7, W: 7, K: 64, StrideH: 1, PadH: 1},
		{N: 1, C: 70, H: 14, W: 14, K: 128, StrideH: 1, PadH: 1},
		{N: 1, C: 4, H: 5, W: 5, K: 64, StrideH: 1, PadH: 2},
		{N: 3, C: 3, H: 9, W: 9, K: 64, StrideH: 1, PadH: 0},
		{N: 1, C: 3, H: 14, W: 14, K: 64, StrideH: 2, PadH: 1},
		{N: 2, C: 33, H: 13, W: 27, K: 192, StrideH: 2, PadH: 1},
		{N: 1, C: 6, H: 15, W: 15, K: 64, StrideH: 2, PadH: 0},
	}
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(93, uint64(l)))
		for ci, p := range convs {
			p.R, p.S, p.StrideW, p.PadW = 3, 3, p.StrideH, p.PadH
			np := p.Normalized()
			if !lanesShape(np) {
				t.Fatalf("conv %d: not a shape of the lanes path", ci)
			}
			P, Q := np.P(), np.Q()
			refs := newConvRefs(r, np)
			x, w, res, want, bound, wantF := refs.x, refs.w, refs.res, refs.want, refs.bound, refs.wantF
			gamma, beta, mean, vr := refs.gamma, refs.beta, refs.mean, refs.vr
			// The fused output's tolerance adds the rounding of the
			// epilogue's terms to the sum's, scaled by batch norm's.
			boundF := make([]float32, len(want))
			for i := range want {
				c := i / (P * Q) % p.K
				s := float64(gamma[c]) / math.Sqrt(float64(vr[c])+1e-5)
				boundF[i] = float32(math.Abs(s)*(float64(bound[i])+math.Abs(float64(mean[c]))) + math.Abs(float64(beta[c])) + math.Abs(float64(res[i])))
			}
			checkUnits := func(what string, got, want, bound []float32, units float32) {
				t.Helper()
				for i, v := range got {
					if tol := units * eps32 * bound[i]; !(math.Abs(float64(v-want[i])) <= float64(tol)+1e-30) {
						t.Fatalf("conv %d %s: [%d] = %v, want %v (tolerance %g)", ci, what, i, v, want[i], tol)
					}
				}
			}
			check := func(what string, got, want, bound []float32) {
				t.Helper()
				checkUnits(what, got, want, bound, 8)
			}
			for _, channels := range []int{defaultChannels, 32} {
				lanesChannels = channels
				for _, threads := range []int{1, 2} {
					b := New(threads)
					what := fmt.Sprintf("%d input channels a block, %d threads", channels, threads)
					xt, wt := tensor.FromSlice(x, p.N, p.C, p.H, p.W), tensor.FromSlice(w, p.K, p.C, 3, 3)
					y := tensor.Full(float32(math.NaN()), p.N, p.K, P, Q)
					b.Conv2dForward(p, xt, wt, y)
					check("forward, "+what, y.HostData(), want, bound)
					vec := func(v []float32) *tensor.Tensor { return tensor.FromSlice(v, len(v)) }
					f := tensor.Full(float32(math.NaN()), p.N, p.K, P, Q)
					b.ConvBNActForward(p, 1e-5, xt, wt, vec(gamma), vec(beta), vec(mean), vec(vr), tensor.FromSlice(res, p.N, p.K, P, Q), f, true)
					check("fused, "+what, f.HostData(), wantF, boundF)
					if bf16Ready() {
						// Frozen weights in bfloat16: the bfloat16
						// kernels where the channels pair up, the
						// float32 ones otherwise; operands rounded to 8
						// bits, 2⁻⁹ each.
						lp := New(threads)
						lp.SetPrecision("bf16")
						lp.FreezeWeights(wt)
						lp.Conv2dForward(p, xt, wt, y)
						checkUnits("bf16 forward, "+what, y.HostData(), want, bound, 1<<17)
						lp.ConvBNActForward(p, 1e-5, xt, wt, vec(gamma), vec(beta), vec(mean), vec(vr), tensor.FromSlice(res, p.N, p.K, P, Q), f, true)
						checkUnits("bf16 fused, "+what, f.HostData(), wantF, boundF, 1<<17)
					}
				}
			}
		}
	})
}

// TestLanesChoice: in auto mode the lanes path takes frozen weights of
// its shapes at the AVX-512 level only, at every batch size, in float32
// and (channels in pairs) bf16, not int8; never and always override
// that.
func TestLanesChoice(t *testing.T) {
	p := backend.Conv2dParams{N: 1, C: 512, H: 7, W: 7, K: 512, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}.Normalized()
	strided := backend.Conv2dParams{N: 1, C: 128, H: 56, W: 56, K: 128, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}.Normalized()
	odd := p
	odd.K = 96
	wt := tensor.FromSlice(make([]float32, 512*512*9), 512, 512, 3, 3)
	ws := tensor.FromSlice(make([]float32, 128*128*9), 128, 128, 3, 3)
	b := New(2)
	b.FreezeWeights(wt, ws)
	plain := make([]float32, 512*512*9)
	defer SetLanes(WinogradAuto)()
	avx512 := ActiveLevel() == AVX512
	if got := b.lanes(p, wt.HostData()); got != avx512 {
		t.Errorf("frozen 3×3 on 7×7: lanes %v at %v", got, ActiveLevel())
	}
	if got := b.lanes(strided, ws.HostData()); got != avx512 {
		t.Errorf("frozen strided 3×3: lanes %v at %v", got, ActiveLevel())
	}
	if b.lanes(p, plain) {
		t.Error("weights not frozen took the lanes path")
	}
	batch := p
	batch.N = 32
	if got := b.lanes(batch, wt.HostData()); got != avx512 {
		t.Errorf("frozen 3×3 on 7×7 at batch 32: lanes %v at %v", got, ActiveLevel())
	}
	if b.lanes(odd, wt.HostData()[:96*512*9]) {
		t.Error("96 output channels took the lanes path")
	}
	if bf16Ready() {
		b.SetPrecision("bf16")
		if !b.lanes(p, wt.HostData()) || !b.lanesBF16(p) {
			t.Error("bf16 precision: no lanes path on the bfloat16 kernels")
		}
		oddC := strided
		oddC.C = 127
		if b.lanes(oddC, make([]float32, 128*127*9)) {
			t.Error("bf16 precision took the lanes path with an odd number of channels")
		}
		b.SetPrecision("fp32")
		if b.lanesBF16(p) {
			t.Error("fp32 precision: the lanes path on the bfloat16 kernels")
		}
	}
	if i8Ready() {
		b.SetPrecision("int8")
		if b.lanes(p, wt.HostData()) {
			t.Error("int8 precision took the lanes path")
		}
		b.SetPrecision("fp32")
	}
	for _, l := range Supported() {
		if l == AVX512 {
			continue
		}
		restore, err := SetLevel(l)
		if err != nil {
			t.Fatal(err)
		}
		if b.lanes(p, wt.HostData()) {
			t.Errorf("lanes path at %v", l)
		}
		restore()
	}
	SetLanes(WinogradNever)
	if b.lanes(p, wt.HostData()) {
		t.Error("lanes path in never mode")
	}
	SetLanes(WinogradAlways)
	if !b.lanes(p, plain) {
		t.Error("no lanes path in always mode")
	}
}

// TestLanesEnv: initLanes takes DMLGO_LANES's modes as DMLGO_WINOGRAD's,
// notes for Describe a mode other than auto or a value it cannot read,
// and Lanes reports the mode in force.
func TestLanesEnv(t *testing.T) {
	defer SetLanes(Lanes())()
	defer func(note string) { lanesNote = note }(lanesNote)
	for _, c := range []struct {
		env  string
		want WinogradMode
		note bool
	}{{"never", WinogradNever, true}, {" Always", WinogradAlways, true}, {"auto", WinogradAuto, false}, {"sometimes", WinogradAuto, true}} {
		lanesMode.Store(int32(WinogradAuto))
		lanesNote = ""
		t.Setenv("DMLGO_LANES", c.env)
		initLanes()
		if Lanes() != c.want || (lanesNote != "") != c.note {
			t.Errorf("DMLGO_LANES=%q: mode %v, note %q; want %v, a note %v", c.env, Lanes(), lanesNote, c.want, c.note)
		}
	}
}
