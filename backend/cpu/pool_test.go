package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
)

// TestMaxForwardMatchesReference: the fast max pooling loop (with its
// unrolled 3×3 windows) gives the reference loop's outputs and argmax bit
// for bit, over window sizes, strides, paddings and planes of odd and
// even sizes, on values with ties, signed zeros, infinities and NaNs.
func TestMaxForwardMatchesReference(t *testing.T) {
	forEachLevel(t, func(t *testing.T, l Level) { maxForwardMatchesReference(t, l) })
}

// maxForwardMatchesReference is TestMaxForwardMatchesReference at the
// active level; the wide planes take the AVX-512 stride-2 kernel (16
// windows a step) with partial groups and edges after it.
func maxForwardMatchesReference(t *testing.T, l Level) {
	r := rand.New(rand.NewPCG(4, uint64(4+l)))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, inf, -inf, nan}
	cases := 0
	for _, win := range [][2]int{{3, 3}, {2, 2}, {3, 2}, {1, 1}} {
		for stride := 1; stride <= 3; stride++ {
			for pad := 0; pad <= win[0]/2; pad++ {
				for _, hw := range [][2]int{{3, 3}, {5, 6}, {7, 9}, {12, 12}, {13, 8}, {7, 40}, {6, 71}, {9, 113}, {4, 66}, {7, 112}, {2, 67}} {
					p := backend.Pool2dParams{N: 2, C: 1, H: hw[0], W: hw[1], R: win[0], S: win[1], StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
					if p.P() < 1 || p.Q() < 1 {
						continue
					}
					for _, mix := range []string{"ties", "specials"} {
						x := make([]float32, p.N*p.H*p.W)
						for i := range x {
							switch {
							case mix == "ties":
								x[i] = float32(r.IntN(3) - 1)
							case r.IntN(5) == 0:
								x[i] = specials[r.IntN(len(specials))]
							default:
								x[i] = float32(r.NormFloat64())
							}
						}
						ys := p.N * p.P() * p.Q()
						want, wantArg := make([]float32, ys), make([]float32, ys)
						got, gotArg := make([]float32, ys), make([]float32, ys)
						(&poolLoop{p: p, x: x, y: want, arg: wantArg}).refMaxForward(0, p.N)
						(&poolLoop{p: p, x: x, y: got, arg: gotArg}).maxForward(0, p.N)
						for i := range want {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) || gotArg[i] != wantArg[i] {
								t.Fatalf("%s %+v: output %d = %v at %v, want %v at %v", mix, p, i, got[i], gotArg[i], want[i], wantArg[i])
							}
						}
						cases++
					}
				}
			}
		}
	}
	if cases < 100 {
		t.Fatalf("only %d cases", cases)
	}
	t.Log(fmt.Sprint(cases, " cases"))
}

// TestMaxPool3x3s2Kernel: the AVX-512 stride-2 kernel takes the wide rows
// (whole groups of 16 windows) and gives max3x3's Go loop's values and
// arguments bit for bit, NaN, ties and ±0 included.
func TestMaxPool3x3s2Kernel(t *testing.T) {
	restore, err := SetLevel(AVX512)
	if err != nil {
		t.Skip("no AVX-512 here")
	}
	defer restore()
	r := rand.New(rand.NewPCG(9, 9))
	nan := float32(math.NaN())
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)), nan}
	for _, w := range []int{35, 66, 112, 150} {
		x := make([]float32, 3*w+7)
		for i := range x {
			switch r.IntN(4) {
			case 0:
				x[i] = specials[r.IntN(len(specials))]
			case 1:
				x[i] = float32(r.IntN(2))
			default:
				x[i] = float32(r.NormFloat64())
			}
		}
		n := (w - 3) / 2
		y, arg := make([]float32, n), make([]float32, n)
		done := maxPool3x3s2Vec(x, w, 2*w, 0, y, arg, 1000)
		if done < 16 || done%16 != 0 || n-done >= 16 && len(x) >= 2*w+32*(done/16)+34 {
			t.Fatalf("w=%d: the kernel did %d of %d windows", w, done, n)
		}
		wantY, wantArg := make([]float32, n), make([]float32, n)
		r2, _ := SetLevel(AVX2)
		max3x3(x, w, 2*w, 0, 2, wantY, wantArg, 1000)
		r2()
		for i := range wantY[:done] {
			if math.Float32bits(y[i]) != math.Float32bits(wantY[i]) && !(y[i] != y[i] && wantY[i] != wantY[i]) || arg[i] != wantArg[i] {
				t.Fatalf("w=%d window %d: %v at %v, want %v at %v", w, i, y[i], arg[i], wantY[i], wantArg[i])
			}
		}
	}
}
