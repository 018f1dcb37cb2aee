package cpu

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"unsafe"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// wgInputCase is a plane of hpe rows of wpe columns, chunks of 16 tiles,
// kb rows of panels.
type wgInputCase struct{ wpe, hpe, chunks, kb int }

// checkInputTransform checks an input transform (fn) against its Go loop
// (ref) bit for bit with sentinels around every place it writes, for each
// case and panel row: a transform that reads planes beyond the first
// (3 for F(2×2, 3×3), 15 for F(4×4, 3×3)) and writes np positions.
func checkInputTransform(t *testing.T, r *rand.Rand, planes, np int, ref, fn func(src []float32, wpe, pl, chunks int, dst []float32, xs, kb, nr int), cases []wgInputCase) {
	t.Helper()
	for _, c := range cases {
		pl := c.hpe * c.wpe
		src := randSlice(r, planes*pl+16*c.chunks+c.wpe+1)
		npad := (16*c.chunks + 31) / 32 * 32
		xs := c.kb*npad + 3 // the ξ blocks need not be adjacent
		for row := 0; row < c.kb; row++ {
			want := make([]float32, np*xs+64)
			got := make([]float32, len(want))
			for i := range got {
				got[i], want[i] = sentinel, sentinel
			}
			ref(src, c.wpe, pl, c.chunks, want[row*32:], xs, c.kb, 32)
			fn(src, c.wpe, pl, c.chunks, got[row*32:], xs, c.kb, 32)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("input %+v row %d: [%d] = %v, want %v", c, row, i, got[i], want[i])
				}
			}
		}
	}
}

// TestWinogradTransforms: each level's input and output transforms give
// the Go loops' values bit for bit, and write nothing outside their
// places (sentinels).
func TestWinogradTransforms(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(71, uint64(l)))
		checkInputTransform(t, r, 3, 16, wgInputGo, wgInput, []wgInputCase{
			{5, 5, 2, 1}, {8, 8, 4, 3}, {15, 15, 14, 7}, {29, 29, 54, 2}, {9, 4, 3, 5},
		})
		for _, n := range []int{1, 3, 15, 16, 17, 28, 33} {
			for _, q := range []int{2*n - 1, 2 * n} {
				for _, two := range []bool{false, true} {
					ms := n + 5
					m := randSlice(r, 15*ms+n)
					var rows [2][2][]float32 // got, want × y0, y1
					for g := range rows {
						for i := range rows[g] {
							rows[g][i] = make([]float32, q+40)
							for j := range rows[g][i] {
								rows[g][i][j] = sentinel
							}
						}
					}
					y1 := func(g int) []float32 {
						if !two {
							return nil
						}
						return rows[g][1][3 : 3+q]
					}
					wgOutput(m, ms, n, rows[0][0][3:3+q], y1(0), q)
					wgOutputGo(m, ms, n, rows[1][0][3:3+q], y1(1), q)
					for i := range rows[0] {
						for j, v := range rows[0][i] {
							if w := rows[1][i][j]; math.Float32bits(v) != math.Float32bits(w) {
								t.Fatalf("output n=%d q=%d two=%v: row %d [%d] = %v, want %v", n, q, two, i, j, v, w)
							}
						}
					}
				}
			}
		}
		for _, n := range []int{1, 5, 15, 16, 17, 29, 40} {
			for _, q := range []int{0, 1, 2*n - 1, 2 * n, 2*n + 7} {
				for _, two := range []bool{false, true} {
					dy := randSlice(r, 2*(2*n+7))
					var dy1 []float32
					if two {
						dy1 = dy[2*n+7:][:q]
					}
					es := n + 3
					got, want := make([]float32, 16*es), make([]float32, 16*es)
					for i := range got {
						got[i], want[i] = sentinel, sentinel
					}
					wgGrad(dy[:q], dy1, q, n, got, es)
					wgGradGo(dy[:q], dy1, q, n, want, es)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("grad n=%d q=%d two=%v: [%d] = %v, want %v", n, q, two, i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestWinogradInputPairs: the bfloat16 input transform (both halves of
// the pairs, in turn) gives, through the kernel and through the Go loop,
// bit for bit the pairs pairRows makes of the float32 transform, and
// writes nothing outside their places (sentinels). An odd last channel
// is paired with zero.
func TestWinogradInputPairs(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(73, uint64(l)))
		for _, c := range []struct{ wpe, hpe, chunks, kb int }{
			{5, 5, 2, 1}, {8, 8, 4, 3}, {15, 15, 14, 7}, {29, 29, 54, 2}, {9, 4, 3, 6}, {6, 6, 1, 4},
		} {
			pl := c.hpe * c.wpe
			npad := (16*c.chunks + 31) / 32 * 32
			kd := (c.kb + 1) / 2
			xs := kd*npad + 3
			srcs := make([][]float32, c.kb)
			wide := make([]float32, 16*(c.kb*npad+16))
			ws := c.kb*npad + 16
			for ch := range srcs {
				srcs[ch] = randSlice(r, 3*pl+16*c.chunks+c.wpe+1)
				if ch == 0 {
					srcs[ch][5] = float32(math.NaN()) // kept a NaN by both
				}
				wgInputGo(srcs[ch], c.wpe, pl, c.chunks, wide[ch*npad:], ws, 1, 32)
			}
			want := make([]float32, 16*xs+64)
			for i := range want {
				want[i] = sentinel
			}
			for x := range 16 {
				for j := 0; j < npad; j += 32 {
					pairRows(wide[x*ws+j:], npad, 32, c.kb, want[x*xs+j*kd:])
				}
				if c.chunks%2 == 1 {
					// The last panel's second half holds no tiles.
					for p := range kd {
						o := x*xs + (npad-32)*kd + p*32
						for i := o + 16; i < o+32; i++ {
							want[i] = sentinel
						}
					}
				}
			}
			for _, vec := range []bool{false, true} {
				got := make([]float32, len(want))
				for i := range got {
					got[i] = sentinel
				}
				for ch := range srcs {
					if vec {
						wgInputPair(srcs[ch], c.wpe, pl, c.chunks, got[ch/2*32:], xs, kd, ch%2 == 1)
					} else {
						wgInputPairGo(srcs[ch], c.wpe, pl, c.chunks, got[ch/2*32:], xs, kd, ch%2 == 1)
					}
				}
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%+v (kernel %v): [%d] = %#x, want %#x", c, vec, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
	})
}

// TestWinogradConv: the Winograd path's forward pass (plain and fused with
// batch norm, residual and ReLU) and backward data agree with the direct
// sums to within rounding, at every level: odd and even planes, channel
// counts that fill no panel, several kc and mc blocks, one and two
// threads.
func TestWinogradConv(t *testing.T) {
	defer SetWinograd(WinogradAlways)()
	defaultBlockValues := wgBlockValues
	defer func() { wgBlockValues = defaultBlockValues }()
	convs := []backend.Conv2dParams{
		{N: 2, C: 5, H: 7, W: 9, K: 6},
		{N: 3, C: 40, H: 14, W: 14, K: 24},
		{N: 1, C: 17, H: 16, W: 11, K: 33},
		{N: 2, C: 8, H: 1, W: 2, K: 9},
		{N: 2, C: 19, H: 29, W: 30, K: 12},
	}
	worst := map[string]float64{}
	defer func() { t.Logf("largest errors, in units of rounding of the sums of |terms|: %v", worst) }()
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(73, uint64(l)))
		for ci, p := range convs {
			p.R, p.S, p.StrideH, p.StrideW, p.PadH, p.PadW = 3, 3, 1, 1, 1, 1
			np := p.Normalized()
			P, Q := np.P(), np.Q()
			c := newConvRefs(r, np)
			x, w, res, want, bound := c.x, c.w, c.res, c.want, c.bound
			gamma, beta, mean, vr := c.gamma, c.beta, c.mean, c.vr
			dy := randSlice(r, p.N*p.K*P*Q)
			abs := absSlice
			wantDw, boundDw := make([]float32, len(w)), make([]float32, len(w))
			refConvBackwardFilter(np, x, dy, wantDw)
			refConvBackwardFilter(np, abs(x), abs(dy), boundDw)
			wantDx, boundDx := make([]float32, len(x)), make([]float32, len(x))
			refConvBackwardData(np, dy, w, wantDx)
			refConvBackwardData(np, abs(dy), abs(w), boundDx)
			check := func(what string, got, want, bound []float32, scale func(i int) float32) {
				t.Helper()
				units := float32(8) // of rounding, in the sum of |terms|
				switch what {
				case "backward filter":
					units = 64
				case "bf16 forward", "bf16 fused":
					// U and V rounded to 8 bits: 2⁻⁹ each, on sums up
					// to 4 (V) and 9/4 (U) times the terms'.
					units = 1 << 18 // measured: up to 115828
				}
				for i, v := range got {
					if r := math.Abs(float64(v-want[i])) / float64(eps32*bound[i]*scale(i)); r > worst[what] {
						worst[what] = r
					}
					tol := units * eps32 * bound[i] * scale(i)
					if d := math.Abs(float64(v - want[i])); !(d <= float64(tol)+1e-30) {
						t.Fatalf("conv %d %s: [%d] = %v, want %v (tolerance %g)", ci, what, i, v, want[i], tol)
					}
				}
			}
			one := func(int) float32 { return 1 }
			for _, blocks := range [][2]int{{blk.mc, blk.kc}, {16, 8}} {
				restore := withBlocking(blocks[0], blocks[1], blk.nc)
				// The small blocking also cuts an image's columns into
				// blocks of 32 for the output transform.
				wgBlockValues = defaultBlockValues
				if blocks[1] == 8 {
					wgBlockValues = 1
				}
				for _, threads := range []int{1, 2} {
					b := New(threads)
					xt, wt := tensor.FromSlice(x, p.N, p.C, p.H, p.W), tensor.FromSlice(w, p.K, p.C, 3, 3)
					y := tensor.Full(float32(math.NaN()), p.N, p.K, P, Q)
					b.Conv2dForward(p, xt, wt, y)
					check("forward", y.HostData(), want, bound, one)
					dx := tensor.Full(float32(math.NaN()), p.N, p.C, p.H, p.W)
					b.Conv2dBackwardData(p, tensor.FromSlice(dy, p.N, p.K, P, Q), wt, dx)
					check("backward data", dx.HostData(), wantDx, boundDx, one)
					dw := tensor.Full(float32(math.NaN()), p.K, p.C, 3, 3)
					b.Conv2dBackwardFilter(p, xt, tensor.FromSlice(dy, p.N, p.K, P, Q), dw)
					check("backward filter", dw.HostData(), wantDw, boundDw, one)
					// Fused: batch norm's map of the forward output, the
					// residual and the ReLU, against the same ops on want.
					vec := func(v []float32) *tensor.Tensor { return tensor.FromSlice(v, len(v)) }
					f := tensor.Full(float32(math.NaN()), p.N, p.K, P, Q)
					b.ConvBNActForward(p, 1e-5, xt, wt, vec(gamma), vec(beta), vec(mean), vec(vr), tensor.FromSlice(res, p.N, p.K, P, Q), f, true)
					wantF, scale := c.wantF, c.scale
					check("fused", f.HostData(), wantF, bound, scale)
					if bf16Ready() {
						// Frozen weights in bfloat16: the GEMMs on the
						// bfloat16 kernel.
						lp := New(threads)
						lp.SetPrecision("bf16")
						lp.FreezeWeights(wt)
						lp.Conv2dForward(p, xt, wt, y)
						check("bf16 forward", y.HostData(), want, bound, one)
						lp.ConvBNActForward(p, 1e-5, xt, wt, vec(gamma), vec(beta), vec(mean), vec(vr), tensor.FromSlice(res, p.N, p.K, P, Q), f, true)
						check("bf16 fused", f.HostData(), wantF, bound, scale)
					}
				}
				restore()
			}
		}
	})
}

// convRefs is a 3×3 convolution's random operands (x, w, the residual
// and batch norm's parameters) and what the direct sums make of them: the
// forward output, the sums of |terms| (for the tolerances), and batch
// norm's map of the output plus the residual through a ReLU (wantF),
// whose error scale(i) scales.
type convRefs struct {
	x, w, res, gamma, beta, mean, vr []float32
	want, bound, wantF               []float32
	scale                            func(i int) float32
}

func newConvRefs(r *rand.Rand, p backend.Conv2dParams) convRefs {
	PQ := p.P() * p.Q()
	c := convRefs{x: randSlice(r, p.N*p.C*p.H*p.W), w: randSlice(r, p.K*p.C*9), res: randSlice(r, p.N*p.K*PQ),
		gamma: randSlice(r, p.K), beta: randSlice(r, p.K), mean: randSlice(r, p.K), vr: randSlice(r, p.K)}
	for i, v := range c.vr {
		c.vr[i] = 0.2 + v*v
	}
	c.want, c.bound = make([]float32, len(c.res)), make([]float32, len(c.res))
	refConvForward(p, c.x, c.w, c.want)
	refConvForward(p, absSlice(c.x), absSlice(c.w), c.bound)
	gain := func(i int) float64 {
		k := i / PQ % p.K
		return float64(c.gamma[k]) / math.Sqrt(float64(c.vr[k])+1e-5)
	}
	c.wantF = make([]float32, len(c.want))
	for i, v := range c.want {
		k := i / PQ % p.K
		c.wantF[i] = float32(math.Max(0, gain(i)*(float64(v)-float64(c.mean[k]))+float64(c.beta[k])+float64(c.res[i])))
	}
	c.scale = func(i int) float32 { return float32(math.Abs(gain(i))) + 1 }
	return c
}

// TestWinogradEnv checks the mode chosen at init against DMLGO_WINOGRAD
// (reading it here makes go test's cache depend on it) and the names
// ParseWinograd takes.
func TestWinogradEnv(t *testing.T) {
	env := os.Getenv("DMLGO_WINOGRAD")
	want, err := ParseWinograd(env)
	if err != nil && wgNote == "" {
		t.Errorf("DMLGO_WINOGRAD=%q: %v, but Describe has no note", env, err)
	}
	if got := Winograd(); got != want {
		t.Errorf("DMLGO_WINOGRAD=%q: mode %v, want %v", env, got, want)
	}
	for s, m := range map[string]WinogradMode{"": WinogradAuto, "auto": WinogradAuto, "Never": WinogradNever, "off": WinogradNever, " always ": WinogradAlways, "on": WinogradAlways} {
		if got, err := ParseWinograd(s); err != nil || got != m {
			t.Errorf("ParseWinograd(%q) = %v, %v, want %v", s, got, err, m)
		}
	}
	if _, err := ParseWinograd("sometimes"); err == nil {
		t.Error("ParseWinograd(\"sometimes\"): no error")
	}
	restore := SetWinograd(WinogradNever)
	if Winograd() != WinogradNever || New(1).winograd(backend.Conv2dParams{N: 64, C: 64, H: 56, W: 56, K: 64, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, nil) {
		t.Error("SetWinograd(WinogradNever) left Winograd on")
	}
	restore()
	if Winograd() != want {
		t.Errorf("restored mode %v, want %v", Winograd(), want)
	}
}

// TestPrefetch checks the lines prefetch asks for (the output transform's
// rows of the next channel): every line from the slice's first value to
// its last, at each alignment, and nothing for an empty slice; and that
// asking for them leaves the values alone.
func TestPrefetch(t *testing.T) {
	buf := make([]float32, 256)
	base := 0
	for uintptr(unsafe.Pointer(&buf[base]))%64 != 0 {
		base++
	}
	for off := range 16 {
		for n := range 40 {
			s := buf[base+off : base+off+n]
			want := 0
			if n > 0 {
				want = (off+n-1)/16 + 1
			}
			if got := cacheLines(s); got != want {
				t.Fatalf("cacheLines(%d values from float %d of a line) = %d, want %d", n, off, got, want)
			}
		}
	}
	for i := range buf {
		buf[i] = float32(i)
	}
	prefetch(buf[3:200])
	prefetch(buf[:0])
	for i, v := range buf {
		if v != float32(i) {
			t.Fatalf("prefetch changed value %d to %v", i, v)
		}
	}
}
