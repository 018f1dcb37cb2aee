package app

// Retrieval with a trained model: loading a checkpoint for inference,
// embedding images (decoded in parallel, the network guarded by a lock),
// and refusing indexes made by another model. Used by tools/retrieve.

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"runtime"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/internal/parallel"
	"github.com/dmlgo/dmlgo/internal/progress"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/retrieval"
)

// Model is a trained embedding network loaded for retrieval: the network in
// evaluation mode, the input transform of the data it was trained on, and
// its fingerprint.
//
// The network's autograd graph is not safe for concurrent use, so every
// forward pass (and every search on the model's backend) runs under the
// model's lock; decoding and transforming images happen outside it, in
// parallel. Waiting for the lock honours a context (a server bounds its
// queue that way); a forward pass, once started, runs to its end.
type Model struct {
	// Path is the checkpoint file.
	Path string
	// Run is the checkpoint's trainer state; Run.Config the training settings.
	Run RunState
	B   backend.Backend
	Net *nn.ResNet
	// Transform turns a decoded image into the network's input: the
	// evaluation transform of the training data (FMNIST-C2S: greyscale
	// 32×32; the real data sets and TSV manifests: RGB 224×224 with
	// ImageNet normalisation and a 10% box margin).
	Transform data.Transform
	// Fingerprint identifies architecture and weights (see Fingerprint).
	Fingerprint string
	// Dim is the embedding size.
	Dim int
	// Batch is the number of images per forward pass.
	Batch int
	// Workers is the number of goroutines decoding images (0: GOMAXPROCS).
	Workers int

	lock chan struct{} // holds one token while the graph is in use
	g    *autograd.Graph
}

// ModelOptions tune LoadModel.
type ModelOptions struct {
	Device  string // auto, cpu or cuda ("" : $DMLGO_DEVICE or auto)
	Threads int    // CPU threads (0: all cores)
	Batch   int    // images per forward pass (0: 64)
	Workers int    // decoding goroutines (0: GOMAXPROCS)
}

// LoadModel reads a training checkpoint (last.ckpt, best.ckpt) and rebuilds
// its embedding network for inference. The architecture, embedding size and
// input transform come from the settings recorded in the checkpoint; the
// number of input channels from its first convolution. Errors name the file
// (or are a *DeviceError). The chosen device is reported on log.
func LoadModel(path string, opts ModelOptions, log io.Writer) (*Model, error) {
	if log == nil {
		log = io.Discard
	}
	var st RunState
	f, err := ReadState(path, &st)
	if err != nil {
		return nil, err
	}
	cfg := st.Config
	conv, ok := f.Get("model.conv1.weight")
	if !ok || len(conv.Shape) != 4 {
		return nil, fmt.Errorf("%s: no model.conv1.weight (K, C, R, S): not a checkpoint of a dmlgo embedding model", path)
	}
	tf, err := TransformFor(cfg.Data.Kind)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if ch := conv.Shape[1]; ch != tf.Channels {
		return nil, fmt.Errorf("%s: the model takes %d-channel images, but its training data (%s) gives %d-channel ones: a checkpoint edited by hand?", path, ch, cfg.Data.Kind, tf.Channels)
	}
	b, why, err := backend.SelectWith(opts.Device, backend.Options{Threads: opts.Threads})
	if err != nil {
		return nil, &DeviceError{err}
	}
	if opts.Threads > 0 {
		runtime.GOMAXPROCS(opts.Threads)
	}
	fmt.Fprintln(log, why)
	net, err := NewModel(b, ModelConfig{Arch: cfg.Model, Dim: cfg.Dim, InChannels: tf.Channels}, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := LoadCheckpoint(path, f, b, Parts{Model: net}); err != nil {
		return nil, err
	}
	nn.SetTraining(net, false)
	m := &Model{
		Path: path, Run: st, B: b, Net: net, Transform: tf,
		Fingerprint: Fingerprint(b, net, cfg.Model),
		Dim:         cfg.Dim, Batch: opts.Batch, Workers: opts.Workers,
		lock: make(chan struct{}, 1), g: autograd.New(b),
	}
	if m.Batch <= 0 {
		m.Batch = 64
	}
	if m.Workers <= 0 {
		m.Workers = runtime.GOMAXPROCS(0)
	}
	return m, nil
}

// DeviceError reports a device (ModelOptions.Device, -device) that cannot
// be used.
type DeviceError struct{ Err error }

func (e *DeviceError) Error() string { return "-device: " + e.Err.Error() }
func (e *DeviceError) Unwrap() error { return e.Err }

// TransformFor returns the evaluation transform that sets.Open gives a data
// set of this kind, without loading the data: the input a model trained on
// it expects. It accepts the aliases train accepts (manifest, inshop).
func TransformFor(kind string) (data.Transform, error) { return sets.Transform(kind) }

// Describe is one line about the model, for logs.
func (m *Model) Describe() string {
	return fmt.Sprintf("%s, embedding %d, input %s (trained on %s), fingerprint %s",
		m.Run.Config.Model, m.Dim, describeTransform(m.Transform), m.Run.Config.Data.Kind, m.Fingerprint)
}

func describeTransform(t data.Transform) string {
	kind := "RGB"
	if t.Channels == 1 {
		kind = "greyscale"
	}
	return fmt.Sprintf("%s %d×%d", kind, t.Size, t.Size)
}

// CheckIndex refuses an index whose embeddings another model made: they are
// not comparable with this model's. The message names both fingerprints and
// both files.
func (m *Model) CheckIndex(ix *retrieval.Index, indexPath string) error {
	if ix.Fingerprint != m.Fingerprint {
		made := ""
		if a := ix.Meta["arch"]; a != "" {
			made = fmt.Sprintf(" (%s, from %s)", a, ix.Meta["checkpoint"])
		}
		return fmt.Errorf("index %s was built by model %s%s, but checkpoint %s is model %s (%s): embeddings of different models cannot be compared; rebuild the index with this checkpoint (retrieve index -ckpt %s ...)",
			indexPath, ix.Fingerprint, made, m.Path, m.Fingerprint, m.Run.Config.Model, m.Path)
	}
	if ix.Dim != m.Dim {
		return fmt.Errorf("index %s holds %d-dimensional embeddings, checkpoint %s makes %d-dimensional ones", indexPath, ix.Dim, m.Path, m.Dim)
	}
	return nil
}

// Locked runs f while holding the model's lock: f may use the network, the
// graph and the backend. ctx bounds the wait for the lock only.
func (m *Model) Locked(ctx context.Context, f func() error) error {
	select {
	case m.lock <- struct{}{}:
	default:
		select {
		case m.lock <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-m.lock }()
	return f()
}

// embedLocked runs the network on x (n, C, S, S) in batches of m.Batch and
// returns the L2-normalised embeddings (n, Dim). The caller holds the lock.
func (m *Model) embedLocked(x []float32, n int) ([]float32, error) {
	tf := m.Transform
	per := tf.Len()
	out := make([]float32, 0, n*m.Dim)
	nn.SetTraining(m.Net, false) // app.Embed switches it back to training
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

// transformImages applies the model's transform to each image (cropped to
// its box; the zero rectangle is the whole image) in parallel: (n, C, S, S).
func (m *Model) transformImages(imgs []image.Image, boxes []image.Rectangle) []float32 {
	per := m.Transform.Len()
	x := make([]float32, len(imgs)*per)
	parallelFor(len(imgs), m.Workers, func(i int) {
		var box image.Rectangle
		if boxes != nil {
			box = boxes[i]
		}
		m.Transform.Apply(x[i*per:(i+1)*per], imgs[i], box, 0, nil)
	})
	return x
}

// EmbedImages embeds decoded images, each cropped to its box (boxes may be
// nil): (len(imgs), Dim), L2-normalised. ctx bounds the wait for the model.
func (m *Model) EmbedImages(ctx context.Context, imgs []image.Image, boxes []image.Rectangle) ([]float32, error) {
	if boxes != nil && len(boxes) != len(imgs) {
		panic("app: EmbedImages: one box per image")
	}
	x := m.transformImages(imgs, boxes)
	var e []float32
	err := m.Locked(ctx, func() (err error) {
		e, err = m.embedLocked(x, len(imgs))
		return err
	})
	return e, err
}

// parallelFor calls f(i) for i in [0, n) on up to workers goroutines.
func parallelFor(n, workers int, f func(i int)) {
	parallel.For(n, workers, func(_, i int) { f(i) })
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
			img := r.Image
			if img == nil {
				img, errs[i] = data.DecodeFile(man.ImagePath(rows[i]))
				if errs[i] != nil {
					return
				}
			}
			m.Transform.Apply(x[i*per:(i+1)*per], img, r.Box, 0, out.Warnings)
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
