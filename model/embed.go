package model

// The one embedding path: images are decoded and transformed on m.Workers
// goroutines, one batch ahead of the network, and the network runs in
// evaluation mode under the model's lock. Retrieval commands, the service
// and the evaluation during training all come through here.

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"math"
	"runtime"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/parallel"
	"github.com/dmlgo/dmlgo/internal/progress"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/retrieval"
)

// embedLocked runs the network on x (n, C, S, S) in batches of m.Batch and
// returns the L2-normalised embeddings (n, Dim). The caller holds the lock.
func (m *Model) embedLocked(x []float32, n int) ([]float32, error) {
	tf := m.Transform
	per := tf.Len()
	out := make([]float32, 0, n*m.Dim)
	if nn.Training(m.Net) {
		nn.SetTraining(m.Net, false)
		defer nn.SetTraining(m.Net, true)
	}
	for b0 := 0; b0 < n; b0 += m.Batch {
		bn := min(m.Batch, n-b0)
		var e []float32
		func() {
			defer m.g.Reset()
			m.g.NoGrad(func() {
				in := m.g.Constant(x[b0*per:(b0+bn)*per], bn, tf.Channels, tf.Size, tf.Size)
				e = m.g.Values(m.Net.Forward(m.g, in))
			})
		}()
		out = append(out, e...)
	}
	if i, bad := firstNonFinite(out); bad {
		return nil, fmt.Errorf("the embedding of image %d is not finite: the checkpoint's weights have diverged", i/m.Dim)
	}
	retrieval.Normalize(out, m.Dim)
	return out, nil
}

// TransformImages applies the model's transform to each image (cropped to
// its box; the zero rectangle is the whole image; boxes may be nil) on
// m.Workers goroutines: the network's input (n, C, S, S). It does not take
// the model's lock.
func (m *Model) TransformImages(imgs []image.Image, boxes []image.Rectangle) []float32 {
	per := m.Transform.Len()
	x := make([]float32, len(imgs)*per)
	// Fewer images than workers (a search's one upload): each image's
	// rows are split over the workers left.
	workers := m.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	each := max(1, workers/max(1, len(imgs)))
	parallelFor(len(imgs), workers, func(i int) {
		var box image.Rectangle
		if boxes != nil {
			box = boxes[i]
		}
		m.Transform.ApplyOn(x[i*per:(i+1)*per], imgs[i], box, 0, nil, each)
	})
	return x
}

// EmbedImages embeds decoded images, each cropped to its box (boxes may be
// nil): (len(imgs), Dim), L2-normalised. ctx bounds the wait for the model.
func (m *Model) EmbedImages(ctx context.Context, imgs []image.Image, boxes []image.Rectangle) ([]float32, error) {
	if boxes != nil && len(boxes) != len(imgs) {
		panic("model: EmbedImages: one box per image")
	}
	return m.EmbedInputs(ctx, m.TransformImages(imgs, boxes), len(imgs))
}

// EmbedInputs embeds n transformed images x (n, C, S, S), as
// TransformImages makes them: (n, Dim), L2-normalised. ctx bounds the wait
// for the model.
func (m *Model) EmbedInputs(ctx context.Context, x []float32, n int) ([]float32, error) {
	if len(x) != n*m.Transform.Len() {
		panic(fmt.Sprintf("model: EmbedInputs: %d floats for %d inputs of %d", len(x), n, m.Transform.Len()))
	}
	var e []float32
	err := m.Locked(ctx, func() (err error) {
		e, err = m.embedLocked(x, n)
		return err
	})
	return e, err
}

// parallelFor calls f(i) for i in [0, n) on up to workers goroutines.
func parallelFor(n, workers int, f func(i int)) {
	parallel.For(n, workers, func(_, i int) { f(i) })
}

func firstNonFinite(x []float32) (int, bool) {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i, true
		}
	}
	return -1, false
}

// EmbedOptions tune EmbedRows.
type EmbedOptions struct {
	// Strict makes an unreadable image an error; otherwise its row is
	// skipped and counted.
	Strict bool
	// Progress, when set, receives a progress bar (TTY: redrawn in place).
	Progress io.Writer
	TTY      bool
	Label    string
}

// Embedded is what EmbedRows returns.
type Embedded struct {
	// Embeddings (len(Rows), Dim), L2-normalised.
	Embeddings []float32
	// Rows are the manifest rows embedded, in the order given, without
	// the skipped ones.
	Rows []int
	// Skipped counts rows whose image could not be read.
	Skipped int
	// Warnings holds the skipped rows and clamped boxes, by kind, with
	// examples.
	Warnings *data.Warnings
}

// EmbedRows embeds the given rows of a manifest: files are decoded and
// transformed on m.Workers goroutines, one batch ahead of the network. A
// missing or undecodable image is skipped and counted (an error naming the
// file with Strict). Each row's box crops its image.
func (m *Model) EmbedRows(ctx context.Context, man *data.Manifest, rows []int, opts EmbedOptions) (*Embedded, error) {
	out := &Embedded{Warnings: data.NewWarnings()}
	if len(rows) == 0 {
		return out, nil
	}
	type chunk struct {
		x       []float32
		rows    []int
		skipped int
		err     error
	}
	per := m.Transform.Len()
	prepare := func(rows []int) chunk {
		x := make([]float32, len(rows)*per)
		errs := make([]error, len(rows))
		parallelFor(len(rows), m.Workers, func(i int) {
			r := &man.Rows[rows[i]]
			img, box := r.Image, r.Box
			if img == nil {
				// A large JPEG comes at the scale the transform needs
				// (data.DecodeFor), its box with it.
				img, box, errs[i] = data.DecodeFileFor(man.ImagePath(rows[i]), data.DefaultDecodeLimits, m.Transform, r.Box)
				if errs[i] != nil {
					return
				}
			}
			m.Transform.Apply(x[i*per:(i+1)*per], img, box, 0, out.Warnings)
		})
		c := chunk{x: x}
		for i, err := range errs {
			if err != nil {
				if opts.Strict {
					return chunk{err: fmt.Errorf("%w (-strict stops at an unreadable image)", err)}
				}
				kind := data.WarnCorruptImage
				if errors.Is(err, fs.ErrNotExist) {
					kind = data.WarnMissingImage
				}
				out.Warnings.Add(kind, man.RowName(rows[i]))
				c.skipped++
				continue
			}
			copy(x[len(c.rows)*per:], x[i*per:(i+1)*per])
			c.rows = append(c.rows, rows[i])
		}
		c.x = x[:len(c.rows)*per]
		return c
	}
	chunks := make(chan chunk, 1)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		defer close(chunks)
		for b0 := 0; b0 < len(rows); b0 += m.Batch {
			c := prepare(rows[b0:min(b0+m.Batch, len(rows))])
			select {
			case chunks <- c:
			case <-quit:
				return
			}
			if c.err != nil {
				return
			}
		}
	}()
	var bar *progress.Bar
	if opts.Progress != nil {
		bar = progress.New(opts.Progress, opts.Label, len(rows), opts.TTY)
	}
	done := 0
	for c := range chunks {
		if c.err != nil {
			return nil, c.err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out.Skipped += c.skipped
		if len(c.rows) > 0 {
			var e []float32
			err := m.Locked(ctx, func() (err error) {
				e, err = m.embedLocked(c.x, len(c.rows))
				return err
			})
			if err != nil {
				return nil, err
			}
			out.Embeddings = append(out.Embeddings, e...)
			out.Rows = append(out.Rows, c.rows...)
		}
		done += len(c.rows)
		if bar != nil {
			bar.Update(min(done+out.Skipped, len(rows)), fmt.Sprintf("%d skipped", out.Skipped))
		}
	}
	if bar != nil {
		bar.Finish(fmt.Sprintf("%d embedded, %d skipped", len(out.Rows), out.Skipped))
	}
	return out, nil
}

// EmbedSubset embeds a data subset in its order, as EmbedRows does its
// manifest rows: an unreadable image is skipped and counted (Strict: an
// error), so Embedded.Rows says which manifest rows the embeddings are of.
func (m *Model) EmbedSubset(ctx context.Context, set *data.Subset, opts EmbedOptions) (*Embedded, error) {
	return m.EmbedRows(ctx, set.Manifest, set.Rows, opts)
}

// Evaluate embeds the data set's queries and gallery and scores its
// protocol. An image that cannot be read is left out of the protocol (and
// counted in the warnings written to opts.Progress's log); with
// opts.Strict it is an error. It stops with ctx's error when ctx is
// cancelled.
func (m *Model) Evaluate(ctx context.Context, ds *data.Dataset, opts EmbedOptions) (retrieval.Metrics, error) {
	qs, err := m.EmbedSubset(ctx, ds.Query, opts)
	if err != nil {
		return retrieval.Metrics{}, fmt.Errorf("embedding the queries: %w", err)
	}
	gs, err := m.EmbedSubset(ctx, ds.Gallery, opts)
	if err != nil {
		return retrieval.Metrics{}, fmt.Errorf("embedding the gallery: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return retrieval.Metrics{}, err
	}
	items := func(man *data.Manifest, rows []int) []int64 {
		out := make([]int64, len(rows))
		for i, r := range rows {
			out[i] = man.Rows[r].Item
		}
		return out
	}
	var met retrieval.Metrics
	err = m.Locked(ctx, func() (err error) {
		met, err = retrieval.Evaluate(m.B, qs.Embeddings, items(ds.Query.Manifest, qs.Rows),
			gs.Embeddings, items(ds.Gallery.Manifest, gs.Rows), m.Dim, retrieval.Ks, retrieval.SearchOptions{})
		return err
	})
	return met, err
}

// EvalResult is one evaluation of a checkpoint on a data set.
type EvalResult struct {
	Checkpoint  string `json:"checkpoint"`
	Fingerprint string `json:"fingerprint"`
	Model       string `json:"model"`
	Data        string `json:"data"`
	// Metrics holds every metric: top1…top50, recall1…recall50,
	// precision1 and map, as fractions.
	Metrics  map[string]float64 `json:"metrics"`
	Queries  int                `json:"queries"`
	Gallery  int                `json:"gallery"`
	Excluded int                `json:"excluded_queries"`
	Seconds  float64            `json:"seconds"`
}

// EvaluateData opens the data set and scores the model on its protocol
// (queries against the gallery), exactly as training evaluates. The
// model's own input transform is used whatever the data set. Progress goes
// to log. Loading and embedding stop with ctx's error when ctx is
// cancelled.
func (m *Model) EvaluateData(ctx context.Context, spec sets.Spec, log io.Writer) (*EvalResult, error) {
	if log == nil {
		log = io.Discard
	}
	set, err := sets.OpenContext(ctx, spec, log)
	if err != nil {
		return nil, err
	}
	if set.Transform.Channels != m.Transform.Channels || set.Transform.Size != m.Transform.Size {
		fmt.Fprintf(log, "note: the data set's own transform is %s; the model's input (%s) is used\n",
			DescribeTransform(set.Transform), DescribeTransform(m.Transform))
	}
	ds := set.Dataset
	fmt.Fprintf(log, "evaluating: %d queries against %d gallery images\n", ds.Query.Len(), ds.Gallery.Len())
	t0 := time.Now()
	met, err := m.Evaluate(ctx, ds, EmbedOptions{Strict: spec.Strict})
	if err != nil {
		return nil, err
	}
	return &EvalResult{
		Checkpoint: m.Path, Fingerprint: m.Fingerprint, Model: m.Card.Arch, Data: set.Description,
		Metrics: met.Flat(), Queries: ds.Query.Len(), Gallery: ds.Gallery.Len(), Excluded: len(ds.Excluded),
		Seconds: time.Since(t0).Seconds(),
	}, nil
}
