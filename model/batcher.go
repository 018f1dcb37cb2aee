package model

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Batcher embeds the inputs of concurrent callers (a server's searches),
// running those that wait for the network at the same time as one batch.
// The network runs one batch at a time; a caller that gets it takes every
// input waiting then (up to max), so under load the waiting requests share
// forward passes instead of queueing for one each. A ResNet-50 at 224×224
// on two threads embeds 34 images a second one at a time and 41 (float32)
// or 95 (int8) four at a time, where each image's GEMMs run on a thread of
// their own instead of sharing both.
//
// An image embeds to the same bits alone or in a batch: the CPU backend
// computes each image's values in the same order whatever the batch (its
// tests check this path by path), and TestBatcherMatchesAlone checks the
// whole network.
type Batcher struct {
	m   *Model
	max int

	mu      sync.Mutex
	pending []*batchRequest
	batches int64 // forward passes run
}

// batchRequest is one caller's input and, once done is closed, its
// normalised embedding or error.
type batchRequest struct {
	x    []float32
	e    []float32
	err  error
	done chan struct{}
}

// NewBatcher returns a Batcher over m that runs at most max inputs in a
// forward pass (and at most m.Batch, the model's own bound).
func NewBatcher(m *Model, max int) *Batcher {
	if max < 1 {
		panic(fmt.Sprintf("model: NewBatcher: batches of %d", max))
	}
	return &Batcher{m: m, max: min(max, m.Batch)}
}

// Embed returns the normalised embedding of one input x (C, S, S; the
// model's transform applied), run with the inputs of other callers
// waiting at the same time. ctx bounds the wait for the network: a caller
// that gives up before its input was taken leaves the queue; one whose
// input is in a running batch waits for it.
func (b *Batcher) Embed(ctx context.Context, x []float32) ([]float32, error) {
	if len(x) != b.m.Transform.Len() {
		panic(fmt.Sprintf("model: Batcher.Embed: %d floats for an input of %d", len(x), b.m.Transform.Len()))
	}
	r := &batchRequest{x: x, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	b.mu.Unlock()
	for {
		select {
		case <-r.done:
			return r.e, r.err
		default:
		}
		err := b.m.Locked(ctx, func() error { b.runPending(r); return nil })
		if err == nil {
			continue // r was in that batch or one before it, or is next
		}
		// The wait for the network ended: leave the queue unless a batch
		// has taken r already.
		b.mu.Lock()
		for i, p := range b.pending {
			if p == r {
				b.pending = slices.Delete(b.pending, i, i+1)
				b.mu.Unlock()
				return nil, err
			}
		}
		b.mu.Unlock()
		<-r.done
		return r.e, r.err
	}
}

// Waiting is how many inputs wait for the network.
func (b *Batcher) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Batches is how many forward passes the batcher has run.
func (b *Batcher) Batches() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches
}

// runPending embeds the inputs waiting (up to b.max, oldest first) as one
// batch, holding the model's lock, and hands each its result; nothing
// when r, the caller's own, is no longer waiting: a batch took it, and
// the callers of those still waiting are each after the lock themselves,
// so the caller returns its result at once instead of first running
// theirs.
func (b *Batcher) runPending(r *batchRequest) {
	b.mu.Lock()
	if !slices.Contains(b.pending, r) {
		b.mu.Unlock()
		return
	}
	n := min(len(b.pending), b.max)
	batch := make([]*batchRequest, n)
	copy(batch, b.pending)
	b.pending = slices.Delete(b.pending, 0, n)
	b.batches++
	b.mu.Unlock()
	per := b.m.Transform.Len()
	x := make([]float32, 0, n*per)
	for _, r := range batch {
		x = append(x, r.x...)
	}
	e, err := b.m.embedLocked(x, n)
	for i, r := range batch {
		if err == nil {
			r.e = e[i*b.m.Dim : (i+1)*b.m.Dim : (i+1)*b.m.Dim]
		} else {
			r.err = err
		}
		close(r.done)
	}
}
