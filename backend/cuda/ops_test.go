//go:build linux && (amd64 || arm64)

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/backendtest"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// The kernels against the CPU reference, on the GPU when one opens, else on
// the stand-in driver (their C++ on the CPU, emulated), for what the
// conformance table in
// backend/backendtest does not reach: the 128×128 GEMM tiles, batches past
// the grid's z limit, convolutions split into several column-buffer chunks,
// batch norm over several partial sums, and NaN handling. The whole table
// runs on the stand-in too:
//
//	lib=$(go run ./backend/cuda/internal/fakecuda/mkfake)
//	DMLGO_LIBCUDA=$lib go test ./backend/backendtest/
//
// Without a GPU these are emulation results: they check the kernels'
// indexing and arithmetic, not the GPU.

type opCase struct {
	name    string
	tol     float64
	data    [][]float32
	shapes  [][]int
	outputs []int
	run     func(b backend.Backend, t []*tensor.Tensor)
}

func runOn(b backend.Backend, c opCase) ([][]float32, error) {
	bufs := make([]*backendtest.Buf, len(c.data))
	ts := make([]*tensor.Tensor, len(c.data))
	for i := range c.data {
		bufs[i] = backendtest.NewBuf(b, c.data[i], c.shapes[i]...)
		ts[i] = bufs[i].T
	}
	c.run(b, ts)
	if err := b.Synchronize(); err != nil {
		return nil, err
	}
	var outs [][]float32
	for i, bf := range bufs {
		d, err := bf.Host()
		if err != nil {
			return nil, fmt.Errorf("buffer %d: %w", i, err)
		}
		outs = append(outs, d)
		bf.Free()
	}
	return outs, nil
}

func checkCases(t *testing.T, b backend.Backend, cs []opCase) {
	t.Helper()
	ref := cpu.NewReference()
	for _, c := range cs {
		want, err := runOn(ref, c)
		if err != nil {
			t.Fatalf("%s on the reference: %v", c.name, err)
		}
		got, err := runOn(b, c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for _, o := range c.outputs {
			if msg := backendtest.Compare(got[o], want[o], c.tol); msg != "" {
				t.Errorf("%s: output %d: %s", c.name, o, msg)
			}
		}
	}
}

func randn(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func gemmCase(r *rand.Rand, p backend.GemmParams, batch int) opCase {
	m, n, k := p.M, p.N, p.K
	return opCase{name: fmt.Sprintf("gemm/b%d_m%d_n%d_k%d_ta%v_tb%v", batch, m, n, k, p.TransA, p.TransB), tol: 1e-5,
		data:   [][]float32{randn(r, batch*m*k), randn(r, batch*k*n), randn(r, batch*m*n)},
		shapes: [][]int{{batch * m * k}, {batch * k * n}, {batch * m * n}}, outputs: []int{2},
		run: func(b backend.Backend, t []*tensor.Tensor) { b.GemmBatched(p, batch, t[0], t[1], t[2]) }}
}

// testDevice is the GPU when one opens (through libcuda.so.1, whatever
// DMLGO_LIBCUDA says), else the stand-in driver with the emulated kernels.
func testDevice(t *testing.T) *Backend {
	t.Helper()
	if b, err := Open(Options{Library: defaultLib, Device: -1}); err == nil {
		t.Cleanup(func() { b.Close() })
		t.Logf("on %s", b.Describe())
		return b
	}
	return openFake(t, "kernels")
}

// TestGemmLargeTiles: the 128×128 kernel (forced; the backend picks it for
// products with enough tiles to fill the device twice).
func TestGemmLargeTiles(t *testing.T) {
	b := testDevice(t)
	b.forceGemm = kGemm128
	r := rand.New(rand.NewPCG(5, 6))
	var cs []opCase
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		cs = append(cs, gemmCase(r, backend.GemmParams{TransA: tr[0], TransB: tr[1], M: 200, N: 300, K: 37, Alpha: 0.5, Beta: -1}, 1))
	}
	cs = append(cs, gemmCase(r, backend.GemmParams{M: 129, N: 131, K: 9, Alpha: 1}, 2))
	before := b.perKernel[kGemm128]
	checkCases(t, b, cs)
	if b.perKernel[kGemm128]-before != int64(len(cs)) {
		t.Fatalf("%d launches of gemm_f32_128 for %d cases", b.perKernel[kGemm128]-before, len(cs))
	}
}

// TestGemmBatchPastGridZ: a batch larger than the grid's z limit runs in
// several launches.
func TestGemmBatchPastGridZ(t *testing.T) {
	b := testDevice(t)
	b.info.maxGrid[2] = 3
	r := rand.New(rand.NewPCG(7, 8))
	before := b.MemStats().Launches
	checkCases(t, b, []opCase{gemmCase(r, backend.GemmParams{M: 5, N: 7, K: 3, TransB: true, Alpha: 1, Beta: 0.5}, 8)})
	if l := b.MemStats().Launches - before; l != 3 {
		t.Errorf("batch 8 with grid z ≤ 3: %d launches, want 3", l)
	}
}

func convCases(r *rand.Rand, convs []backend.Conv2dParams) []opCase {
	var cs []opCase
	for _, p := range convs {
		p := p
		np := p.Normalized()
		xs, ws, ys := p.N*p.C*p.H*p.W, p.K*(p.C/np.G())*p.R*p.S, p.N*p.K*np.P()*np.Q()
		tag := fmt.Sprintf("n%d_c%d_%dx%d_k%d_%dx%d_s%d_p%d_d%d_g%d", p.N, p.C, p.H, p.W, p.K, p.R, p.S, np.StrideH, p.PadH, np.DilH, np.G())
		cs = append(cs,
			opCase{name: "conv_fwd/" + tag, tol: 1e-5, data: [][]float32{randn(r, xs), randn(r, ws), randn(r, ys)}, shapes: [][]int{{xs}, {ws}, {ys}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dForward(p, t[0], t[1], t[2]) }},
			opCase{name: "conv_bwd_data/" + tag, tol: 1e-5, data: [][]float32{randn(r, ys), randn(r, ws), randn(r, xs)}, shapes: [][]int{{ys}, {ws}, {xs}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardData(p, t[0], t[1], t[2]) }},
			opCase{name: "conv_bwd_filter/" + tag, tol: 1e-5, data: [][]float32{randn(r, xs), randn(r, ys), randn(r, ws)}, shapes: [][]int{{xs}, {ys}, {ws}}, outputs: []int{2},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Conv2dBackwardFilter(p, t[0], t[1], t[2]) }})
	}
	return cs
}

// TestConvChunks: with a small column buffer the batch is split; the weight
// gradient then accumulates over chunks, and its reduction runs over
// segments (images) within each chunk.
func TestConvChunks(t *testing.T) {
	b := testDevice(t)
	defer func(l int) { colLimit = l }(colLimit)
	colLimit = 2000
	r := rand.New(rand.NewPCG(9, 10))
	checkCases(t, b, convCases(r, []backend.Conv2dParams{
		{N: 5, C: 3, H: 7, W: 6, K: 4, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},            // 3·9·42 = 1134 per image: 1 image a chunk
		{N: 7, C: 4, H: 5, W: 5, K: 6, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Groups: 2}, // 4·9·9 = 324: 6 images a chunk
		{N: 6, C: 6, H: 4, W: 7, K: 3, R: 2, S: 3, StrideH: 1, StrideW: 2, PadH: 1, PadW: 1, DilH: 2, DilW: 1, Groups: 3},
		{N: 9, C: 8, H: 3, W: 5, K: 4, R: 1, S: 1, StrideH: 1, StrideW: 1}, // pointwise: no column buffer
	}))
}

// TestConvFilterSplitK: weight gradients with few output tiles split the
// images (a remainder included) and sum the parts.
func TestConvFilterSplitK(t *testing.T) {
	b := testDevice(t)
	b.info.sms = 4 // 8 blocks wanted: these small filters split
	r := rand.New(rand.NewPCG(19, 20))
	var cs []opCase
	for _, c := range convCases(r, []backend.Conv2dParams{
		{N: 11, C: 2, H: 5, W: 5, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{N: 10, C: 4, H: 6, W: 4, K: 6, R: 3, S: 1, StrideH: 2, StrideW: 1, PadH: 1, Groups: 2},
		{N: 13, C: 5, H: 3, W: 3, K: 7, R: 1, S: 1, StrideH: 1, StrideW: 1},
	}) {
		if strings.HasPrefix(c.name, "conv_bwd_filter") {
			cs = append(cs, c)
		}
	}
	before := b.perKernel[kReduceInner]
	checkCases(t, b, cs)
	if n := b.perKernel[kReduceInner] - before; n != int64(len(cs)) {
		t.Errorf("%d split-K reductions for %d cases", n, len(cs))
	}
}

// TestBatchNormChunks: channels of more values than one block sums (the
// partial sums of bn_partials), in training and eval.
func TestBatchNormChunks(t *testing.T) {
	b := testDevice(t)
	r := rand.New(rand.NewPCG(11, 12))
	var cs []opCase
	for _, s := range [][3]int{{3, 2, 5000}, {5000, 3, 1}} {
		n, c, l := s[0], s[1], s[2]
		for _, training := range []bool{true, false} {
			p := backend.BatchNormParams{N: n, C: c, L: l, Training: training, Momentum: 0.1, Eps: 1e-5}
			x := randn(r, n*c*l)
			for i := range x {
				x[i] = 2*x[i] + 3
			}
			cs = append(cs, opCase{name: fmt.Sprintf("batchnorm/n%d_c%d_l%d_train%v", n, c, l, training), tol: 1e-5,
				data: [][]float32{x, randn(r, c), randn(r, c), randn(r, c), []float32{1, 1.5, 2}[:c], make([]float32, n*c*l), make([]float32, c), make([]float32, c),
					randn(r, n*c*l), make([]float32, n*c*l), randn(r, c), randn(r, c)},
				shapes:  [][]int{{n * c * l}, {c}, {c}, {c}, {c}, {n * c * l}, {c}, {c}, {n * c * l}, {n * c * l}, {c}, {c}},
				outputs: []int{3, 4, 5, 6, 7, 9, 10, 11},
				run: func(b backend.Backend, t []*tensor.Tensor) {
					var sm, si *tensor.Tensor
					if training {
						sm, si = t[6], t[7]
					}
					b.BatchNormForward(p, t[0], t[1], t[2], t[3], t[4], t[5], sm, si)
					if training {
						b.BatchNormBackward(p, t[0], t[8], t[1], t[6], t[7], t[9], t[10], t[11])
					}
				}})
		}
	}
	checkCases(t, b, cs)
}

// TestNonFinite: NaN and ±Inf follow the reference (Go's max/min propagate
// NaN; so does ReLU, and its backward passes nothing where x is NaN; a NaN
// wins a max-pool window, the last of several, and a max reduction; the
// margin head's loss becomes NaN).
func TestNonFinite(t *testing.T) {
	b := testDevice(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	x := []float32{1, nan, inf, -2, -inf, 0, 3, nan, -1}
	z := []float32{nan, 2, -inf, nan, 5, -0.0, 3, 1, -1}
	n := len(x)
	var cs []opCase
	for op := backend.Add; op < backend.NumBinaryOps; op++ {
		op := op
		cs = append(cs, opCase{name: "binary_" + op.String(), tol: 0, data: [][]float32{x, z, make([]float32, n)}, shapes: [][]int{{n}, {n}, {n}}, outputs: []int{2},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Binary(op, t[0], t[1], t[2]) }})
	}
	for op := backend.Copy; op < backend.NumUnaryOps; op++ {
		op := op
		cs = append(cs, opCase{name: "unary_" + op.String(), tol: 1e-6, data: [][]float32{x, make([]float32, n)}, shapes: [][]int{{n}, {n}}, outputs: []int{1},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Unary(op, t[0], t[1], -0.5, 2) }})
	}
	for _, s := range [][3]int{{1, 9, 1}, {3, 3, 1}, {1, 3, 3}} {
		p := backend.ReduceParams{Op: backend.MaxReduce, Outer: s[0], Len: s[1], Inner: s[2]}
		cs = append(cs, opCase{name: fmt.Sprintf("reduce_max/%v", s), tol: 0, data: [][]float32{x, make([]float32, s[0]*s[2])}, shapes: [][]int{{n}, {s[0] * s[2]}}, outputs: []int{1},
			run: func(b backend.Backend, t []*tensor.Tensor) { b.Reduce(p, t[0], t[1]) }})
	}
	pp := backend.Pool2dParams{N: 1, C: 1, H: 3, W: 3, R: 2, S: 2, StrideH: 1, StrideW: 1}
	tie := []float32{1, 5, 5, 5, 5, 2, nan, 0, 5}
	cs = append(cs, opCase{name: "maxpool/nan_and_ties", tol: 0, data: [][]float32{tie, make([]float32, 4), make([]float32, 4), make([]float32, 9), {1, 2, 3, 4}},
		shapes: [][]int{{9}, {4}, {4}, {9}, {4}}, outputs: []int{1, 2, 3},
		run: func(b backend.Backend, t []*tensor.Tensor) {
			b.MaxPool2dForward(pp, t[0], t[1], t[2])
			b.MaxPool2dBackward(pp, t[4], t[2], t[3])
		}})
	// Two NaNs in a window: the last wins (PyTorch's argmax).
	nans := []float32{nan, 1, nan, 2, nan, -inf, 4, inf, 6}
	cs = append(cs, opCase{name: "maxpool/nans", tol: 0, data: [][]float32{nans, make([]float32, 4), make([]float32, 4), make([]float32, 9), {1, 2, 3, 4}},
		shapes: [][]int{{9}, {4}, {4}, {9}, {4}}, outputs: []int{1, 2, 3},
		run: func(b backend.Backend, t []*tensor.Tensor) {
			b.MaxPool2dForward(pp, t[0], t[1], t[2])
			b.MaxPool2dBackward(pp, t[4], t[2], t[3])
		}})
	cs = append(cs, opCase{name: "margin/nan", tol: 0, data: [][]float32{{0.5, nan, 0.1, 0.2, 0.3, 0.4}, make([]float32, 2), make([]float32, 6)},
		shapes: [][]int{{2, 3}, {2}, {2, 3}}, outputs: []int{1, 2},
		run: func(b backend.Backend, t []*tensor.Tensor) {
			b.MarginSoftmaxCE(backend.MarginParams{Kind: backend.MarginCosFace, N: 2, C: 3, S: 16, M: 0.35, Eps: 1e-7}, t[0], []int32{0, 2}, t[1], t[2], backend.MarginGrads{})
		}})
	checkCases(t, b, cs)
}

// TestMarginGradOptions: the margin gradients for every kind, with and
// without dcos and the class-margin gradient (∂L/∂m_p then comes from the
// label's probability alone).
func TestMarginGradOptions(t *testing.T) {
	b := testDevice(t)
	r := rand.New(rand.NewPCG(13, 14))
	var cs []opCase
	const n, c = 7, 300
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(r.IntN(c))
	}
	for kind := backend.MarginSoftmax; kind < backend.NumMarginKinds; kind++ {
		for _, withDcos := range []bool{false, true} {
			for _, withCM := range []bool{false, true} {
				kind, withDcos, withCM := kind, withDcos, withCM
				cosv := make([]float32, n*c)
				for i := range cosv {
					cosv[i] = float32(2*r.Float64() - 1)
				}
				p := backend.MarginParams{Kind: kind, N: n, C: c, S: 30, M: 0.5, M1: 0.9, M2: 0.4, M3: 0.15, MP: 0.1, MN: 0.3, Eps: 1e-7, EasyMargin: kind == backend.MarginArcFace && withCM}
				if kind == backend.MarginSphereFace {
					p.M, p.Lambda = 3, 1
				}
				cms := make([]float32, c)
				for i := range cms {
					cms[i] = 0.2 + 0.3*r.Float32()
				}
				cs = append(cs, opCase{name: fmt.Sprintf("margin_%v/dcos%v_cm%v", kind, withDcos, withCM), tol: 1e-5,
					data:   [][]float32{cosv, make([]float32, n), randn(r, n*c), cms, randn(r, c), {0.25}},
					shapes: [][]int{{n, c}, {n}, {n, c}, {c}, {c}, {1}}, outputs: []int{1, 2, 4, 5},
					run: func(b backend.Backend, t []*tensor.Tensor) {
						q := p
						q.ClassMargins = t[3]
						g := backend.MarginGrads{MP: t[5]}
						if withCM {
							g.ClassMargins = t[4]
						}
						var dcos *tensor.Tensor
						if withDcos {
							dcos = t[2]
						}
						b.MarginSoftmaxCE(q, t[0], labels, t[1], dcos, g)
					}})
			}
		}
	}
	checkCases(t, b, cs)
}

// TestRowKernelsManyRows: more rows than blocks (the row loops of the
// reduction, L2 and margin kernels) and long rows.
func TestRowKernelsManyRows(t *testing.T) {
	b := testDevice(t)
	b.info.sms = 1 // 32 blocks at most for the row kernels
	r := rand.New(rand.NewPCG(15, 16))
	var cs []opCase
	for _, s := range [][2]int{{70, 3}, {2, 3000}} {
		rows, d := s[0], s[1]
		for _, op := range []backend.ReduceOp{backend.Sum, backend.Mean, backend.MaxReduce} {
			p := backend.ReduceParams{Op: op, Outer: rows, Len: d, Inner: 1, Accumulate: true}
			cs = append(cs, opCase{name: fmt.Sprintf("reduce_%v/%dx%d", op, rows, d), tol: 1e-6, data: [][]float32{randn(r, rows*d), randn(r, rows)}, shapes: [][]int{{rows * d}, {rows}}, outputs: []int{1},
				run: func(b backend.Backend, t []*tensor.Tensor) { b.Reduce(p, t[0], t[1]) }})
		}
		cs = append(cs, opCase{name: fmt.Sprintf("l2/%dx%d", rows, d), tol: 1e-5,
			data: [][]float32{randn(r, rows*d), make([]float32, rows*d), make([]float32, rows), randn(r, rows*d), randn(r, rows*d)}, shapes: [][]int{{rows, d}, {rows, d}, {rows}, {rows, d}, {rows, d}}, outputs: []int{1, 2, 4},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.L2NormalizeForward(1e-12, t[0], t[1], t[2])
				b.L2NormalizeBackward(t[1], t[2], t[3], t[4], true)
			}})
		labels := make([]int32, rows)
		for i := range labels {
			labels[i] = int32(r.IntN(d))
		}
		cs = append(cs, opCase{name: fmt.Sprintf("margin/%dx%d", rows, d), tol: 1e-5,
			data: [][]float32{randn(r, rows*d), make([]float32, rows), make([]float32, rows*d)}, shapes: [][]int{{rows, d}, {rows}, {rows, d}}, outputs: []int{1, 2},
			run: func(b backend.Backend, t []*tensor.Tensor) {
				b.MarginSoftmaxCE(backend.MarginParams{Kind: backend.MarginSoftmax, N: rows, C: d, S: 1}, t[0], labels, t[1], t[2], backend.MarginGrads{})
			}})
	}
	checkCases(t, b, cs)
}

// TestTF32 runs GEMMs and a convolution through the TF32 tensor-core kernel
// (emulated without a GPU: the mma fragment layout of the PTX ISA, products
// of TF32-rounded inputs): the results agree with the reference to TF32's
// precision (2e-3), and not to float32's, which shows the inputs were rounded.
func TestTF32(t *testing.T) {
	b := testDevice(t)
	b.SetTF32(true)
	b.forceGemm = kGemmTF32
	r := rand.New(rand.NewPCG(17, 18))
	ref := cpu.NewReference()
	var cs []opCase
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		cs = append(cs, gemmCase(r, backend.GemmParams{TransA: tr[0], TransB: tr[1], M: 150, N: 260, K: 70, Alpha: 1.5, Beta: -0.5}, 1))
	}
	cs = append(cs, gemmCase(r, backend.GemmParams{M: 129, N: 200, K: 1, Alpha: 1}, 3))
	cs = append(cs, convCases(r, []backend.Conv2dParams{{N: 3, C: 16, H: 12, W: 12, K: 130, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}})[0])
	before := b.perKernel[kGemmTF32]
	for _, c := range cs {
		want, err := runOn(ref, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := runOn(b, c)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		o := c.outputs[0]
		if msg := backendtest.Compare(got[o], want[o], 2e-3); msg != "" {
			t.Errorf("%s (TF32): %s", c.name, msg)
		}
		if c.name != "gemm/b3_m129_n200_k1_tafalse_tbfalse" && backendtest.Compare(got[o], want[o], 1e-5) == "" {
			t.Errorf("%s: TF32 results agree with float32 to 1e-5: were the inputs rounded?", c.name)
		}
	}
	if n := b.perKernel[kGemmTF32] - before; n < int64(len(cs)) {
		t.Errorf("%d TF32 launches for %d cases", n, len(cs))
	}
}
