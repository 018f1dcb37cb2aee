package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
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
