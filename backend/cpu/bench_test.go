package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Benchmarks report GFLOP/s (gflops) beside ns/op. Compare with the
// machine's BLAS side by side, e.g.
//
//	go test ./backend/cpu -run '^$' -bench 'Sgemm/' -benchtime 20x
//	OPENBLAS_NUM_THREADS=1 python3 shared/bench/blas_anchor.py 256 512 1024 2048

// BenchmarkSgemm: square C = A·B at each SIMD level, 1 and 2 threads.
func BenchmarkSgemm(b *testing.B) {
	for _, l := range Supported() {
		for _, n := range []int{256, 512, 1024, 2048} {
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/n=%d/threads=%d", l, n, th), func(b *testing.B) {
					benchGemm(b, l, false, false, n, n, n, th)
				})
			}
		}
	}
}

// BenchmarkSgemmConv: the GEMM shapes of convolutions (forward: M = K out
// channels, N = P·Q, K = C·R·S; backward data: op(A) = wᵀ; backward filter:
// op(B) = colᵀ) at the best level.
func BenchmarkSgemmConv(b *testing.B) {
	shapes := []struct {
		name           string
		transA, transB bool
		m, n, k        int
	}{
		{"fwd/32x1024x27", false, false, 32, 1024, 27},
		{"fwd/32x1024x288", false, false, 32, 1024, 288},
		{"fwd/64x1024x576", false, false, 64, 1024, 576},
		{"fwd/64x256x576", false, false, 64, 256, 576},
		{"fwd/128x256x1152", false, false, 128, 256, 1152},
		{"fwd/128x64x1152", false, false, 128, 64, 1152},
		{"fwd/256x64x2304", false, false, 256, 64, 2304},
		{"fwd/512x64x4608", false, false, 512, 64, 4608},
		{"fwd/64x196x576", false, false, 64, 196, 576},
		{"data/288x1024x32", true, false, 288, 1024, 32},
		{"data/576x256x64", true, false, 576, 256, 64},
		{"filter/32x288x1024", false, true, 32, 288, 1024},
		{"filter/64x576x256", false, true, 64, 576, 256},
		{"filter/128x1152x64", false, true, 128, 1152, 64},
	}
	for _, s := range shapes {
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, th), func(b *testing.B) {
				benchGemm(b, Best(), s.transA, s.transB, s.m, s.n, s.k, th)
			})
		}
	}
}

func benchGemm(b *testing.B, l Level, transA, transB bool, m, n, k, threads int) {
	restore, err := SetLevel(l)
	if err != nil {
		b.Skip(err)
	}
	defer restore()
	r := rand.New(rand.NewPCG(1, 2))
	a, bm, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	sgemm(transA, transB, m, n, k, 1, a, lda, bm, ldb, 0, c, n, threads)
	b.ResetTimer()
	for b.Loop() {
		sgemm(transA, transB, m, n, k, 1, a, lda, bm, ldb, 0, c, n, threads)
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "gflops")
}

// BenchmarkElementwise: the SIMD elementwise kernels on 64K values (256 KiB
// per operand, in L2) at each level, one thread; reported in GB/s of
// operands read and written.
func BenchmarkElementwise(b *testing.B) {
	const n = 1 << 16
	r := rand.New(rand.NewPCG(1, 2))
	x, z, y := randSlice(r, n), randSlice(r, n), randSlice(r, n)
	ops := []struct {
		name    string
		streams int // slices read or written
		f       func()
	}{
		{"axpy", 3, func() { axpy(0.5, x, y) }},
		{"scale", 2, func() { scale(0.5, x, y) }},
		{"add", 3, func() { add(x, z, y) }},
		{"relu", 2, func() { relu(x, y) }},
		{"reluBackward", 3, func() { reluBackward(x, z, y) }},
		{"affine", 2, func() { affine(0.5, 0.1, x, y) }},
		{"bnDx", 3, func() { bnDx(0.5, 0.25, 0.1, 0.2, x, z, y) }},
		{"bnSums", 2, func() { bnSums(0.1, x, z) }},
		{"sum64", 1, func() { sum64(x) }},
		{"sumSqDev64", 1, func() { sumSqDev64(0.1, x) }},
	}
	for _, l := range Supported() {
		for _, op := range ops {
			b.Run(fmt.Sprintf("%v/%s", l, op.name), func(b *testing.B) {
				restore, _ := SetLevel(l)
				defer restore()
				for b.Loop() {
					op.f()
				}
				b.ReportMetric(float64(op.streams*4*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

func TestSgemmBench(t *testing.T) {
	if g := SgemmBench(64, 2, time.Millisecond); !(g > 0) {
		t.Fatalf("SgemmBench(64, 2) = %v GFLOP/s", g)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SgemmBench(0, 1) did not panic")
		}
	}()
	SgemmBench(0, 1, time.Millisecond)
}

// BenchmarkMarginCE: the fused head over 10,000 classes, forward and
// gradients, batch 128, two threads.
func BenchmarkMarginCE(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, c = 128, 10000
	cos := tensor.FromSlice(randSlice(r, n*c), n, c)
	for i, v := range cos.HostData() {
		cos.HostData()[i] = v / 4
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(r.IntN(c))
	}
	loss, dcos := tensor.Zeros(n), tensor.Zeros(n, c)
	be := New(2)
	for _, kind := range []backend.MarginKind{backend.MarginCosFace, backend.MarginDMLClass} {
		p := backend.MarginParams{Kind: kind, N: n, C: c, S: 30, M: 0.35, MP: 0.2, Eps: 1e-7}
		g := backend.MarginGrads{}
		if kind == backend.MarginDMLClass {
			p.ClassMargins = tensor.Full(0.35, c)
			g.ClassMargins, g.MP = tensor.Zeros(c), tensor.Zeros(1)
		}
		b.Run(kind.String(), func(b *testing.B) {
			for range b.N {
				be.MarginSoftmaxCE(p, cos, labels, loss, dcos, g)
			}
		})
	}
}
