package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/data/sets"
)

// waitQueued waits until n inputs wait in b.
func waitQueued(b *Batcher, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		queued := b.Waiting()
		if queued == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d inputs queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdAndQueue holds m's lock, calls start, and lets go once n inputs wait
// in b, so that one batch (of at most b.max) takes them.
func holdAndQueue(t *testing.T, m *Model, b *Batcher, n int, start func()) {
	t.Helper()
	err := m.Locked(context.Background(), func() error {
		start()
		return waitQueued(b, n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// embedQueued embeds the n inputs of x through b from n callers that all
// wait for the network before it comes free.
func embedQueued(t *testing.T, m *Model, b *Batcher, x []float32, n int) ([][]float32, []error) {
	t.Helper()
	per := len(x) / n
	got, errs := make([][]float32, n), make([]error, n)
	var wg sync.WaitGroup
	holdAndQueue(t, m, b, n, func() {
		for i := range n {
			wg.Go(func() { got[i], errs[i] = b.Embed(context.Background(), x[i*per:(i+1)*per]) })
		}
	})
	wg.Wait()
	return got, errs
}

// TestBatcherMatchesAlone: inputs that wait for the network together run
// as one batch, and each caller gets, bit for bit, the embedding its input
// has alone, for the service's network (a ResNet-50 at 224×224, weights
// frozen by Load) at each precision this CPU runs.
func TestBatcherMatchesAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("a ResNet-50 at 224×224")
	}
	// The bfloat16 kernels wherever they can run (auto would run bf16 in
	// float32 where they are slow).
	defer cpu.SetBF16(cpu.WinogradAlways)()
	path := filepath.Join(t.TempDir(), "rn50.ckpt")
	b := backend.MustSelect("cpu")
	net, err := NewNet(b, NetConfig{Arch: "resnet50", Dim: 32, InChannels: 3}, 5)
	if err != nil {
		t.Fatal(err)
	}
	card := Card{Arch: "resnet50", Dim: 32, InChannels: 3, Data: sets.Spec{Kind: sets.TSV}}
	if err := SaveCheckpoint(path, b, Parts{Model: net, Card: card}, struct{}{}); err != nil {
		t.Fatal(err)
	}
	precisions := []string{"fp32"}
	if cpu.BF16Ready() {
		precisions = append(precisions, "bf16")
	}
	if cpu.INT8Ready() {
		precisions = append(precisions, "int8")
	}
	const n = 4
	r := rand.New(rand.NewPCG(9, 9))
	for _, prec := range precisions {
		m, err := Load(path, Options{Device: "cpu", Precision: prec, Threads: 2}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		per := m.Transform.Len()
		x := make([]float32, n*per)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		alone := make([][]float32, n)
		for i := range n {
			if alone[i], err = m.EmbedInputs(context.Background(), x[i*per:(i+1)*per], 1); err != nil {
				t.Fatal(err)
			}
		}
		bt := NewBatcher(m, 8)
		got, errs := embedQueued(t, m, bt, x, n)
		if bt.batches != 1 {
			t.Errorf("%s: %d inputs queued together ran in %d batches, want 1", prec, n, bt.batches)
		}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("%s: input %d: %v", prec, i, errs[i])
			}
			for j, v := range alone[i] {
				if math.Float32bits(got[i][j]) != math.Float32bits(v) {
					t.Fatalf("%s: input %d value %d is %v in a batch, %v alone", prec, i, j, got[i][j], v)
				}
			}
		}
	}
}

// TestBatcherLimits: a batch takes at most max inputs, oldest first; a
// caller whose context ends while it waits leaves the queue with the
// context's error; NewBatcher refuses batches of none.
func TestBatcherLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.ckpt")
	save(t, path, tinyCard(), struct{}{})
	m, err := Load(path, Options{Device: "cpu", Batch: 16}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	per := m.Transform.Len()
	const n = 5
	x := make([]float32, n*per)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	want, err := m.EmbedInputs(context.Background(), x, n)
	if err != nil {
		t.Fatal(err)
	}
	bt := NewBatcher(m, 2)
	got, errs := embedQueued(t, m, bt, x, n)
	if bt.batches != 3 {
		t.Errorf("5 inputs in batches of at most 2 ran in %d batches, want 3", bt.batches)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("input %d: %v", i, errs[i])
		}
		for j, v := range want[i*m.Dim : (i+1)*m.Dim] {
			if math.Abs(float64(got[i][j]-v)) > 1e-5 {
				t.Fatalf("input %d value %d is %v, want %v", i, j, got[i][j], v)
			}
		}
	}

	// A caller that gives up while the network is busy.
	ctx, cancel := context.WithCancel(context.Background())
	var gotErr error
	var wg sync.WaitGroup
	err = m.Locked(context.Background(), func() error {
		wg.Go(func() { _, gotErr = bt.Embed(ctx, x[:per]) })
		err := waitQueued(bt, 1)
		cancel()
		wg.Wait()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(gotErr, context.Canceled) {
		t.Errorf("a caller whose context ended got %v, want context.Canceled", gotErr)
	}
	if len(bt.pending) != 0 {
		t.Errorf("%d inputs left queued after their caller gave up", len(bt.pending))
	}

	defer func() {
		if recover() == nil {
			t.Error("NewBatcher(m, 0) did not panic")
		}
	}()
	NewBatcher(m, 0)
}
