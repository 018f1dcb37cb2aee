package model

// A trained model loaded for inference or wrapped around a network being
// trained: the lock that serialises forward passes, and the checks that
// keep embeddings of different models apart.

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/tensor"
)

// Model is an embedding network with what it takes to use it: its card,
// its input transform, its fingerprint, and the lock of its graph.
//
// The network's autograd graph is not safe for concurrent use, so every
// forward pass (and every search on the model's backend) runs under the
// model's lock; decoding and transforming images happen outside it, in
// parallel. Waiting for the lock honours a context (a server bounds its
// queue that way); a forward pass, once started, runs to its end.
type Model struct {
	// Path is the checkpoint file ("" for a wrapped network).
	Path string
	// Card says what the model is.
	Card Card
	B    backend.Backend
	Net  *nn.ResNet
	// Transform turns a decoded image into the network's input (see
	// Card.Transform).
	Transform data.Transform
	// Fingerprint identifies architecture and weights (see Fingerprint).
	Fingerprint string
	// Dim is the embedding size.
	Dim int
	// Batch is the number of images per forward pass.
	Batch int
	// Workers is the number of goroutines decoding images (0: GOMAXPROCS).
	Workers int
	// Precision is what the convolutions run in, in words ("fp32", or
	// "bf16 (AVX-512 BF16)", or a float32 fallback and its reason).
	Precision string

	lock chan struct{} // holds one token while the graph is in use
	g    *autograd.Graph
}

// Options tune Load and Wrap.
type Options struct {
	Device  string // auto, cpu or cuda ("" : $DMLGO_DEVICE or auto); Load only
	Threads int    // CPU threads (0: all cores); Load only
	Batch   int    // images per forward pass (0: 64)
	Workers int    // decoding goroutines (0: GOMAXPROCS)
	// Precision of the convolutions: fp32 (""), or bf16 or int8 where the
	// backend and CPU have the kernels (float32 otherwise; Model.Precision
	// says what runs). Load only.
	Precision string
}

// Load reads a checkpoint (a training run's last.ckpt or best.ckpt) and
// rebuilds its embedding network for inference, as its card describes it.
// Errors name the file (or are a *DeviceError). The chosen device is
// reported on log.
func Load(path string, opts Options, log io.Writer) (*Model, error) {
	if log == nil {
		log = io.Discard
	}
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	card, err := ReadCard(path, f)
	if err != nil {
		return nil, err
	}
	if _, err := card.Transform(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, why, err := backend.SelectWith(opts.Device, backend.Options{Threads: opts.Threads})
	if err != nil {
		return nil, &DeviceError{err}
	}
	if opts.Threads > 0 {
		runtime.GOMAXPROCS(opts.Threads)
	}
	fmt.Fprintln(log, why)
	net, err := NewNet(b, NetConfig{Arch: card.Arch, Dim: card.Dim, InChannels: card.InChannels}, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := LoadCheckpoint(path, f, b, Parts{Model: net}); err != nil {
		return nil, err
	}
	nn.SetTraining(net, false)
	// A loaded model is never trained: the backend may keep its weights in
	// the form its kernels want (the CPU's packed convolution filters).
	var weights []*tensor.Tensor
	for _, p := range nn.Params(net) {
		weights = append(weights, p.V.Value)
	}
	backend.Freeze(b, weights...)
	prec, err := backend.SetPrecision(b, opts.Precision)
	if err != nil {
		return nil, &PrecisionError{err}
	}
	if opts.Precision != "" && opts.Precision != "fp32" {
		fmt.Fprintf(log, "precision: %s\n", prec)
	}
	m, err := Wrap(b, net, card, opts)
	if err != nil {
		return nil, err
	}
	m.Path, m.Precision = path, prec
	return m, nil
}

// Wrap makes a Model of a network in memory, described by card: a trainer
// evaluates the network it trains this way. The network keeps its mode:
// every embedding switches it to evaluation for its forward passes and
// back to the mode it found. The fingerprint is of the weights at the time
// of the call.
func Wrap(b backend.Backend, net *nn.ResNet, card Card, opts Options) (*Model, error) {
	tf, err := card.Transform()
	if err != nil {
		return nil, err
	}
	m := &Model{
		Card: card, B: b, Net: net, Transform: tf,
		Fingerprint: Fingerprint(b, net, card.Arch),
		Dim:         card.Dim, Batch: opts.Batch, Workers: opts.Workers,
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

// DeviceError reports a device (Options.Device, -device) that cannot be
// used.
type DeviceError struct{ Err error }

func (e *DeviceError) Error() string { return "-device: " + e.Err.Error() }
func (e *DeviceError) Unwrap() error { return e.Err }

// PrecisionError is Load's error when the device cannot run the precision
// asked for (Options.Precision): the flag's fault, not the checkpoint's.
type PrecisionError struct{ Err error }

func (e *PrecisionError) Error() string { return "-precision: " + e.Err.Error() }
func (e *PrecisionError) Unwrap() error { return e.Err }

// Describe is one line about the model, for logs.
func (m *Model) Describe() string {
	s := fmt.Sprintf("%s, embedding %d, input %s (trained on %s), fingerprint %s",
		m.Card.Arch, m.Dim, DescribeTransform(m.Transform), m.Card.Data.Kind, m.Fingerprint)
	if m.Precision != "" && m.Precision != "fp32" {
		s += ", precision " + m.Precision
	}
	return s
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
			indexPath, ix.Fingerprint, made, m.Path, m.Fingerprint, m.Card.Arch, m.Path)
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
