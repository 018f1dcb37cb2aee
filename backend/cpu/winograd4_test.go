package cpu

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestWinograd4Conv: F(4×4, 3×3)'s forward pass, plain and fused with
// batch norm, residual and ReLU, agrees with the direct sums to within
// wg4Units units of rounding of the sums of |terms|: planes that are and
// are not multiples of 4, channel counts that fill no panel, several kc
// and mc blocks and output blocks, one and two threads, frozen weights
// (the filters transformed once) and not.
func TestWinograd4Conv(t *testing.T) {
	defer SetWinograd4(WinogradAlways)()
	defaultBlockValues := wgBlockValues
	defer func() { wgBlockValues = defaultBlockValues }()
	convs := []backend.Conv2dParams{
		{N: 2, C: 5, H: 7, W: 9, K: 6},
		{N: 1, C: 40, H: 28, W: 28, K: 24},
		{N: 1, C: 17, H: 16, W: 11, K: 33},
		{N: 2, C: 8, H: 1, W: 2, K: 9},
		{N: 2, C: 19, H: 29, W: 30, K: 12},
		{N: 1, C: 64, H: 56, W: 56, K: 64},
	}
	worst := 0.0
	defer func() { t.Logf("largest error, in units of rounding of the sums of |terms|: %.0f", worst) }()
	if !dotRowsReady() {
		t.Skipf("no F(4×4, 3×3) at level %v", ActiveLevel())
	}
	r := rand.New(rand.NewPCG(79, 4))
	for ci, p := range convs {
		p.R, p.S, p.StrideH, p.StrideW, p.PadH, p.PadW = 3, 3, 1, 1, 1, 1
		np := p.Normalized()
		P, Q := np.P(), np.Q()
		c := newConvRefs(r, np)
		x, w, res, want, bound, wantF, scale := c.x, c.w, c.res, c.want, c.bound, c.wantF, c.scale
		gamma, beta, mean, vr := c.gamma, c.beta, c.mean, c.vr
		one := func(int) float32 { return 1 }
		check := func(what string, got, want []float32, scale func(i int) float32) {
			t.Helper()
			for i, v := range got {
				e := math.Abs(float64(v-want[i])) / float64(eps32*bound[i]*scale(i))
				worst = max(worst, e)
				if !(e <= wg4Units) && math.Abs(float64(v-want[i])) > 1e-30 {
					t.Fatalf("conv %d %s: [%d] = %v, want %v (%.0f units of rounding of the sum of |terms|)", ci, what, i, v, want[i], e)
				}
			}
		}
		for _, blocks := range [][2]int{{blk.mc, blk.kc}, {16, 8}} {
			restore := withBlocking(blocks[0], blocks[1], blk.nc)
			wgBlockValues = defaultBlockValues
			if blocks[1] == 8 {
				wgBlockValues = 1
			}
			for _, threads := range []int{1, 2} {
				for _, frozen := range []bool{false, true} {
					b := New(threads)
					xt, wt := tensor.FromSlice(x, p.N, p.C, p.H, p.W), tensor.FromSlice(append([]float32(nil), w...), p.K, p.C, 3, 3)
					if frozen {
						b.FreezeWeights(wt)
					}
					y := tensor.Full(float32(math.NaN()), p.N, p.K, P, Q)
					b.Conv2dForward(p, xt, wt, y)
					check("forward", y.HostData(), want, one)
					vec := func(v []float32) *tensor.Tensor { return tensor.FromSlice(v, len(v)) }
					f := tensor.Full(float32(math.NaN()), p.N, p.K, P, Q)
					b.ConvBNActForward(p, 1e-5, xt, wt, vec(gamma), vec(beta), vec(mean), vec(vr), tensor.FromSlice(res, p.N, p.K, P, Q), f, true)
					check("fused", f.HostData(), wantF, scale)
				}
			}
			restore()
		}
	}
}

// wg4Units bounds F(4×4, 3×3)'s error in TestWinograd4Conv, in units of
// rounding (2⁻²⁴) of the sum of |terms| of each output.
const wg4Units = 128

// TestWinograd4Transforms: the input and output transforms' kernels give
// the Go loops' values bit for bit and write nothing outside their places
// (sentinels): the input of 1 to 15 chunks into panels at either half,
// the output of rows of 1 to 40 tiles, every column count they cut, one
// to four rows.
func TestWinograd4Transforms(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(83, uint64(l)))
		checkInputTransform(t, r, 15, 36, wg4InputGo, wg4Input, []wgInputCase{
			{5, 5, 1, 1}, {8, 8, 4, 3}, {15, 15, 14, 7}, {9, 4, 3, 5}, {16, 16, 15, 2},
		})
		for _, n := range []int{1, 3, 7, 14, 15, 16, 17, 33, 40} {
			for _, q := range []int{4*n - 3, 4*n - 1, 4 * n} {
				for rows := 1; rows <= 4; rows++ {
					ms := n + 21
					m := randSlice(r, 35*ms+(n+15)/16*16)
					var ys [2][4][]float32 // got, want
					for g := range ys {
						for i := range rows {
							ys[g][i] = make([]float32, q+40)
							for j := range ys[g][i] {
								ys[g][i][j] = sentinel
							}
						}
					}
					var got, want [4][]float32
					for i := range rows {
						got[i], want[i] = ys[0][i][3:3+q], ys[1][i][3:3+q]
					}
					wg4Output(m, ms, n, &got, q)
					wg4OutputGo(m, ms, n, &want, q)
					for i := range rows {
						for j, v := range ys[0][i] {
							if w := ys[1][i][j]; math.Float32bits(v) != math.Float32bits(w) {
								t.Fatalf("output n=%d q=%d rows=%d: row %d [%d] = %v, want %v", n, q, rows, i, j, v, w)
							}
						}
					}
				}
			}
		}
	})
}

// TestWinograd4Choice: in auto mode F(4×4, 3×3) takes frozen float32
// weights on planes of 28×28 and more, of 4M multiply-adds and more, at
// the AVX-512 level, and nothing
// else: not weights in training, not the low precisions (where this CPU
// has their kernels), not 14×14, not resnet-s's small layers, not
// strides or other filters, and not while DMLGO_WINOGRAD forces F(2×2,
// 3×3) on or off.
func TestWinograd4Choice(t *testing.T) {
	if ActiveLevel() != AVX512 {
		t.Skipf("no F(4×4, 3×3) at level %v", ActiveLevel())
	}
	defer SetWinograd4(WinogradAuto)()
	conv := func(h, r, stride int) backend.Conv2dParams {
		return backend.Conv2dParams{N: 1, C: 64, H: h, W: h, K: 64, R: r, S: r, StrideH: stride, StrideW: stride, PadH: r / 2, PadW: r / 2}.Normalized()
	}
	w := tensor.FromSlice(make([]float32, 64*64*9), 64, 64, 3, 3)
	loose := make([]float32, 64*64*9)
	b := New(2)
	small := tensor.FromSlice(make([]float32, 16*16*9), 16, 16, 3, 3)
	w128 := tensor.FromSlice(make([]float32, 128*128*9), 128, 128, 3, 3)
	b.FreezeWeights(w, small, w128)
	for _, c := range []struct {
		name string
		p    backend.Conv2dParams
		w    []float32
		prec string
		want bool
	}{
		{"frozen 56×56", conv(56, 3, 1), w.HostData(), "fp32", true},
		{"frozen 28×28, 128 channels", backend.Conv2dParams{N: 1, C: 128, H: 28, W: 28, K: 128, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}.Normalized(), w128.HostData(), "fp32", true},
		{"frozen 28×28, 64 channels", conv(28, 3, 1), w.HostData(), "fp32", false},
		{"frozen 14×14", conv(14, 3, 1), w.HostData(), "fp32", false},
		{"frozen 32×32, 16 channels (resnet-s)", backend.Conv2dParams{N: 1, C: 16, H: 32, W: 32, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}.Normalized(), small.HostData(), "fp32", false},
		{"not frozen", conv(56, 3, 1), loose, "fp32", false},
		{"stride 2", conv(56, 3, 2), w.HostData(), "fp32", false},
		{"bf16", conv(56, 3, 1), w.HostData(), "bf16", !bf16Ready()},
		{"int8", conv(56, 3, 1), w.HostData(), "int8", !i8Ready()},
	} {
		if _, err := b.SetPrecision(c.prec); err != nil {
			t.Fatal(err)
		}
		if got := b.winograd4(c.p, c.w); got != c.want {
			t.Errorf("%s (%s): winograd4 = %v, want %v", c.name, c.prec, got, c.want)
		}
	}
	b.SetPrecision("fp32")
	for _, m := range []WinogradMode{WinogradNever, WinogradAlways} {
		restore := SetWinograd(m)
		if b.winograd4(conv(56, 3, 1), w.HostData()) {
			t.Errorf("DMLGO_WINOGRAD=%v: F(4×4, 3×3) took a frozen 56×56 convolution", m)
		}
		restore()
	}
	restore := SetWinograd4(WinogradNever)
	if b.winograd4(conv(56, 3, 1), w.HostData()) {
		t.Error("DMLGO_WINOGRAD4=never: F(4×4, 3×3) took a frozen 56×56 convolution")
	}
	restore()
}

// TestWinograd4Env checks the mode chosen at init against DMLGO_WINOGRAD4
// (reading it here makes go test's cache depend on it).
func TestWinograd4Env(t *testing.T) {
	env := os.Getenv("DMLGO_WINOGRAD4")
	want, err := ParseWinograd(env)
	if err != nil && wg4Note == "" {
		t.Errorf("DMLGO_WINOGRAD4=%q: %v, but Describe has no note", env, err)
	}
	if got := WinogradMode(wg4Mode.Load()); got != want {
		t.Errorf("DMLGO_WINOGRAD4=%q: mode %v, want %v", env, got, want)
	}
}
