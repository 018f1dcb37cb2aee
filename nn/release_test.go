package nn

import (
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/tensor"
)

// liveCounter is a CPU backend that tracks the values it has handed out
// and not had back, and their peak.
type liveCounter struct {
	*cpu.Backend
	live, peak int
}

func (b *liveCounter) took(s tensor.Storage) tensor.Storage {
	b.live += s.Len()
	b.peak = max(b.peak, b.live)
	return s
}

func (b *liveCounter) Alloc(n int) tensor.Storage       { return b.took(b.Backend.Alloc(n)) }
func (b *liveCounter) AllocUninit(n int) tensor.Storage { return b.took(b.Backend.AllocUninit(n)) }
func (b *liveCounter) Free(s tensor.Storage) {
	b.live -= s.Len()
	b.Backend.Free(s)
}

// TestInferenceReleasesActivations: in inference a ResNet gives its
// blocks' activations back as it goes (autograd.Graph.Release), so the
// forward pass holds a few of them at a time, not all; its output is the
// same, bit for bit, as the pass that keeps every activation (recording,
// where Release does nothing).
func TestInferenceReleasesActivations(t *testing.T) {
	for _, arch := range []string{"resnet18", "resnet50"} {
		b := &liveCounter{Backend: cpu.New(2)}
		net, err := NewResNet(b, ResNetConfig{Arch: arch, InChannels: 3, Out: 8, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		SetTraining(net, false)
		x := tensor.RandNormal(2, 0, 1, 2, 3, 64, 64).HostData()
		g := autograd.New(b)
		pass := func(record bool) (out []float32, peak int) {
			base := b.live
			b.peak = base
			if record {
				out = g.Values(net.Forward(g, g.Constant(x, 2, 3, 64, 64)))
			} else {
				g.NoGrad(func() { out = g.Values(net.Forward(g, g.Constant(x, 2, 3, 64, 64))) })
			}
			peak = b.peak - base
			g.Reset()
			return out, peak
		}
		kept, keptPeak := pass(true)
		got, peak := pass(false)
		for i := range kept {
			if math.Float32bits(got[i]) != math.Float32bits(kept[i]) {
				t.Fatalf("%s: output %d is %v in inference, %v with every activation kept", arch, i, got[i], kept[i])
			}
		}
		// Released, a block holds its input, its shortcut and two or
		// three more activations: a tenth of the values the pass that
		// keeps them all holds at its end (0.09 for resnet18, 0.06 for
		// resnet50 here).
		if float64(peak) > 0.25*float64(keptPeak) {
			t.Errorf("%s: inference held %d values at its peak, the pass keeping every activation %d", arch, peak, keptPeak)
		}
		t.Logf("%s: peak %d values released, %d kept (%.2f)", arch, peak, keptPeak, float64(peak)/float64(keptPeak))
	}
}
