package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/internal/allocs"
	"github.com/dmlgo/dmlgo/tensor"
)

// TestFrozenFilters: convolutions with frozen filters give the same
// outputs bit for bit as with filters packed on every call (implicit 3×3,
// strided, pointwise, grouped; Winograd's transformed filters; one and two
// threads; every SIMD level); an
// Upload into a frozen filter is seen by the next call; once made, the
// packs cost no allocation.
func TestFrozenFilters(t *testing.T) {
	defer SetWinograd(Winograd())() // should a case fail with another set
	forEachLevel(t, func(t *testing.T, l Level) {
		r := rand.New(rand.NewPCG(21, uint64(l)))
		cases := []backend.Conv2dParams{
			{N: 1, C: 16, H: 14, W: 14, K: 24, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
			{N: 2, C: 8, H: 15, W: 15, K: 16, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
			{N: 2, C: 32, H: 7, W: 7, K: 64, R: 1, S: 1, StrideH: 1, StrideW: 1},
			{N: 1, C: 3, H: 32, W: 32, K: 8, R: 7, S: 7, StrideH: 2, StrideW: 2, PadH: 3, PadW: 3},
			{N: 1, C: 16, H: 9, W: 9, K: 16, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, Groups: 4},
		}
		for ci := range 2 * len(cases) {
			// Each case twice: the second time with every 3×3 convolution
			// through Winograd's transforms, kept for frozen weights.
			i, p := ci%len(cases), cases[ci%len(cases)]
			mode := WinogradAuto
			if ci >= len(cases) {
				mode = WinogradAlways
			}
			restore := SetWinograd(mode)
			for _, threads := range []int{1, 2} {
				name := fmt.Sprintf("%v case %d threads %d Winograd %v", l, i, threads, mode)
				np := p.Normalized()
				x := tensor.FromSlice(randSlice(r, p.N*p.C*p.H*p.W), p.N, p.C, p.H, p.W)
				wv := randSlice(r, p.K*(p.C/np.G())*p.R*p.S)
				w := tensor.FromSlice(append([]float32(nil), wv...), p.K, p.C/np.G(), p.R, p.S)
				ys := p.N * p.K * np.P() * np.Q()
				want, got := tensor.FromSlice(make([]float32, ys), ys), tensor.FromSlice(make([]float32, ys), ys)
				plain, frozen := New(threads), New(threads)
				frozen.FreezeWeights(w)
				plain.Conv2dForward(p, x, w, want)
				for range 2 { // made, then taken from the cache
					frozen.Conv2dForward(p, x, w, got)
					if d := firstDiff(got.HostData(), want.HostData()); d >= 0 {
						t.Fatalf("%s: y[%d] %g with frozen filters, %g without", name, d, got.HostData()[d], want.HostData()[d])
					}
				}
				// New weights through Upload: the packs of the old ones go.
				nv := randSlice(r, len(wv))
				frozen.Upload(w, nv)
				plain.Conv2dForward(p, x, w, want)
				frozen.Conv2dForward(p, x, w, got)
				if d := firstDiff(got.HostData(), want.HostData()); d >= 0 {
					t.Fatalf("%s: after Upload, y[%d] %g, want %g (stale packs)", name, d, got.HostData()[d], want.HostData()[d])
				}
				frozen.FreezeWeights(w)
				frozen.Conv2dForward(p, x, w, got)
				if n := allocs.PerRun(3, 5, func() { frozen.Conv2dForward(p, x, w, got) }); n > 0 {
					t.Errorf("%s: %g allocations per call with frozen filters", name, n)
				}
			}
			restore()
		}
	})
}

func firstDiff(a, b []float32) int {
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return i
		}
	}
	return -1
}

// TestFrozenWeightsCollected: the set of frozen tensors does not keep
// their values alive. Once a model's weights are collected their entry
// (with its packs) goes, while a tensor still in use keeps its own.
func TestFrozenWeightsCollected(t *testing.T) {
	b := New(1)
	p := backend.Conv2dParams{N: 1, C: 8, H: 6, W: 6, K: 8, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	r := rand.New(rand.NewPCG(4, 4))
	x := tensor.FromSlice(randSlice(r, p.C*p.H*p.W), 1, p.C, p.H, p.W)
	y := tensor.Zeros(1, p.K, p.H, p.W)
	kept := tensor.FromSlice(randSlice(r, p.K*p.C*9), p.K, p.C, 3, 3)
	b.FreezeWeights(kept)
	b.Conv2dForward(p, x, kept, y)
	func() {
		// A model loaded, run and dropped.
		for range 4 {
			w := tensor.FromSlice(randSlice(r, p.K*p.C*9), p.K, p.C, 3, 3)
			b.FreezeWeights(w)
			b.Conv2dForward(p, x, w, y)
		}
	}()
	if n := b.frozen.n.Load(); n != 5 {
		t.Fatalf("%d frozen tensors, want 5", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.frozen.n.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d frozen tensors after the collection of 4 of 5, want 1", b.frozen.n.Load())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if !b.frozenWeights(kept.HostData()) {
		t.Error("the tensor still in use lost its entry")
	}
	runtime.KeepAlive(kept)
}
