package data

import (
	"errors"
	"fmt"
	"image"
	"io"
	"runtime"
	"sync"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// Batch is a batch of transformed images with their labels.
//
// N = images in the batch, C = channels, S = image side.
type Batch struct {
	// Images: (N, C, S, S), normalised by the loader's Transform.
	Images []float32
	// Shape is (N, C, S, S).
	Shape [4]int
	// Labels[i] is the training class of image i, or -1 for a subset
	// without labels (evaluation).
	Labels []int32
	// Items[i] is the item id, Domains[i] the domain of image i.
	Items   []int64
	Domains []Domain
	// Index[i] is the subset element of image i; Rows[i] its manifest row.
	Index []int
	Rows  []int
	// Epoch and Batch locate the batch in the loader's plan.
	Epoch, Batch int
	// Failed counts images that could not be read (missing or corrupt;
	// filled with zeros) in non-strict mode.
	Failed int

	planLen int // batches in this epoch
	done    chan error
}

// LoaderOptions tune a Loader.
type LoaderOptions struct {
	// Workers is the number of decoding goroutines (default GOMAXPROCS).
	Workers int
	// Prefetch is how many batches may be prepared ahead of the one being
	// used (default 2 per worker).
	Prefetch int
	// Epochs stops the loader when it reaches this epoch number; 0 runs
	// until Close.
	Epochs int
	// Strict makes a missing or corrupt image an error; otherwise it is
	// zero-filled and counted.
	Strict bool
	// Warnings receives the counts (a new counter when nil).
	Warnings *Warnings
}

var errClosed = errors.New("data: loader closed")

// Loader delivers batches of a Subset in the order of a Sampler's plans,
// epoch after epoch. Worker goroutines decode and transform ahead of the
// consumer, so the model does not wait on decoding. Each image's
// augmentation is seeded by (seed, epoch, batch, position), so the batches
// are the same whatever the number of workers, and a loader started from a
// SamplerState taken with State continues exactly where the first left.
type Loader struct {
	set      *Subset
	sampler  Sampler
	tf       Transform
	opts     LoaderOptions
	warnings *Warnings

	seed     uint64
	perEpoch int          // batches in the start epoch's plan
	state    SamplerState // of the next batch Next returns
	err      error        // sticky error

	pool  chan *Batch // free batches
	order chan *Batch // batches in delivery order
	jobs  chan *Batch // batches for the workers
	quit  chan struct{}
	prev  *Batch
	wg    sync.WaitGroup
	once  sync.Once
}

// NewLoader starts a loader over set, planned by sampler, transformed by
// tf, from state start (use SamplerState{Seed: s} for a fresh run).
func NewLoader(set *Subset, sampler Sampler, tf Transform, start SamplerState, opts LoaderOptions) (*Loader, error) {
	if err := tf.Validate(); err != nil {
		return nil, err
	}
	if set.Len() == 0 {
		return nil, errors.New("data: NewLoader: the subset is empty")
	}
	if start.Epoch < 0 || start.Batch < 0 {
		return nil, fmt.Errorf("data: NewLoader: invalid start state %v", start)
	}
	plan := sampler.Plan(start.Seed, start.Epoch)
	if len(plan) == 0 {
		return nil, fmt.Errorf("data: NewLoader: the sampler plans no batch for %d elements (batch larger than the set with drop-last?)", set.Len())
	}
	if start.Batch > len(plan) {
		return nil, fmt.Errorf("data: NewLoader: state %v is past the end of the epoch (%d batches)", start, len(plan))
	}
	if start.Batch == len(plan) {
		start.Epoch, start.Batch = start.Epoch+1, 0
		plan = sampler.Plan(start.Seed, start.Epoch)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Prefetch <= 0 {
		opts.Prefetch = 2 * opts.Workers
	}
	if opts.Warnings == nil {
		opts.Warnings = NewWarnings()
	}
	l := &Loader{
		set: set, sampler: sampler, tf: tf, opts: opts, warnings: opts.Warnings,
		seed: start.Seed, perEpoch: len(plan), state: start,
		pool:  make(chan *Batch, opts.Prefetch+1),
		order: make(chan *Batch, opts.Prefetch+1),
		jobs:  make(chan *Batch, opts.Prefetch+1),
		quit:  make(chan struct{}),
	}
	for i := 0; i < opts.Prefetch+1; i++ {
		l.pool <- &Batch{done: make(chan error, 1)}
	}
	l.wg.Add(1 + opts.Workers)
	go l.produce(start, plan)
	for i := 0; i < opts.Workers; i++ {
		go l.work()
	}
	return l, nil
}

// produce hands batches to the workers in plan order.
func (l *Loader) produce(start SamplerState, plan [][]int) {
	defer l.wg.Done()
	defer close(l.jobs)
	first := start.Batch
	for e := start.Epoch; l.opts.Epochs == 0 || e < l.opts.Epochs; e++ {
		if e != start.Epoch {
			plan = l.sampler.Plan(l.seed, e)
			first = 0
		}
		for bi := first; bi < len(plan); bi++ {
			var b *Batch
			select {
			case b = <-l.pool:
			case <-l.quit:
				return
			}
			b.Epoch, b.Batch, b.planLen, b.Index = e, bi, len(plan), append(b.Index[:0], plan[bi]...)
			l.order <- b // never blocks: as many slots as batches
			l.jobs <- b
		}
	}
	close(l.order)
}

// work fills batches.
func (l *Loader) work() {
	defer l.wg.Done()
	sc := &scratch{}
	for b := range l.jobs {
		b.done <- l.fill(b, sc)
	}
}

// fill decodes and transforms the images of b.
func (l *Loader) fill(b *Batch, sc *scratch) error {
	n, size := len(b.Index), l.tf.Len()
	b.Shape = [4]int{n, l.tf.Channels, l.tf.Size, l.tf.Size}
	b.Images = resize(b.Images, n*size)
	b.Labels = resize(b.Labels, n)
	b.Items = resize(b.Items, n)
	b.Domains = resize(b.Domains, n)
	b.Rows = resize(b.Rows, n)
	b.Failed = 0
	m := l.set.Manifest
	for slot, e := range b.Index {
		select {
		case <-l.quit:
			return errClosed
		default:
		}
		ri := l.set.Rows[e]
		row := &m.Rows[ri]
		b.Rows[slot], b.Items[slot], b.Domains[slot] = ri, row.Item, row.Domain
		b.Labels[slot] = -1
		if l.set.Labels != nil {
			b.Labels[slot] = l.set.Labels[e]
		}
		dst := b.Images[slot*size : (slot+1)*size]
		img, err := loadRow(m, ri)
		if err != nil {
			if l.opts.Strict {
				return err
			}
			kind := WarnCorruptImage
			if isNotExist(err) {
				kind = WarnMissingImage
			}
			l.warnings.Add(kind, m.RowName(ri))
			clear(dst)
			b.Failed++
			continue
		}
		r := rng.New(l.seed, uint64(b.Epoch), uint64(b.Batch), uint64(slot), tagAugment)
		switch l.tf.apply(dst, img, row.Box, &r, sc) {
		case boxClamped:
			l.warnings.Add(WarnBoxClamped, m.RowName(ri))
		case boxOutside:
			l.warnings.Add(WarnBoxEmpty, m.RowName(ri))
		}
	}
	return nil
}

// loadRow returns the image of manifest row i.
func loadRow(m *Manifest, i int) (image.Image, error) {
	if img := m.Rows[i].Image; img != nil {
		return img, nil
	}
	return DecodeFile(m.ImagePath(i))
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Next returns the next batch, or io.EOF after the last epoch. The batch
// and its slices stay valid until the following call to Next or Close (the
// loader reuses them, so steady-state loading allocates nothing).
func (l *Loader) Next() (*Batch, error) {
	if l.err != nil {
		return nil, l.err
	}
	if l.prev != nil {
		l.pool <- l.prev
		l.prev = nil
	}
	b, ok := <-l.order
	if !ok {
		l.err = io.EOF
		return nil, io.EOF
	}
	if err := <-b.done; err != nil {
		l.err = err
		l.pool <- b
		return nil, err
	}
	l.state.Epoch, l.state.Batch = b.Epoch, b.Batch+1
	if b.Batch+1 == b.planLen {
		l.state.Epoch, l.state.Batch = b.Epoch+1, 0
	}
	l.prev = b
	return b, nil
}

// State returns the position after the last batch Next returned: a loader
// started from it delivers the batch that would have come next.
func (l *Loader) State() SamplerState { return l.state }

// BatchesPerEpoch returns the number of batches in an epoch's plan (the
// start epoch's; the samplers here plan the same number every epoch), for
// learning-rate schedules.
func (l *Loader) BatchesPerEpoch() int { return l.perEpoch }

// Warnings returns the loader's warning counter.
func (l *Loader) Warnings() *Warnings { return l.warnings }

// Close stops the workers. Batches returned earlier become invalid.
func (l *Loader) Close() {
	l.once.Do(func() {
		close(l.quit)
		l.wg.Wait()
		if l.err == nil {
			l.err = errClosed
		}
	})
}
