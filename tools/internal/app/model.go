// Package app holds what the commands share: building the embedding model,
// embedding a data subset, evaluating the retrieval protocol, checkpoints.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math"

	"github.com/dmlgo/dmlgo/autograd"
	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/retrieval"
)

// ModelConfig chooses the embedding network.
type ModelConfig struct {
	Arch       string `json:"arch"`        // resnet-s, resnet18, resnet34, resnet50
	Dim        int    `json:"dim"`         // embedding size (the fc layer's output)
	InChannels int    `json:"in_channels"` // 1 (greyscale) or 3 (RGB)
	Pretrained string `json:"pretrained"`  // torchvision safetensors; fc is replaced
}

// NewModel builds the backbone with an embedding fc of cfg.Dim outputs,
// loading pretrained weights (all but fc) when asked.
func NewModel(b backend.Backend, cfg ModelConfig, seed uint64) (*nn.ResNet, error) {
	if cfg.Dim < 1 {
		return nil, fmt.Errorf("--dim must be positive, got %d", cfg.Dim)
	}
	m, err := nn.NewResNet(b, nn.ResNetConfig{Arch: cfg.Arch, InChannels: cfg.InChannels, Out: cfg.Dim, Seed: seed})
	if err != nil {
		return nil, fmt.Errorf("--model: %w", err)
	}
	if cfg.Pretrained != "" {
		if err := nn.LoadStateFile(cfg.Pretrained, b, m, nn.LoadOptions{Skip: []string{"fc."}}); err != nil {
			return nil, fmt.Errorf("--pretrained: %w", err)
		}
	}
	return m, nil
}

// Fingerprint identifies a model's architecture and weights: an index made
// by one model is refused by another.
func Fingerprint(b backend.Backend, m nn.Module, arch string) string {
	h := sha256.New()
	io.WriteString(h, arch)
	for _, st := range nn.StateTensors(b, m) {
		io.WriteString(h, st.Name)
		h.Write(st.Data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Embed is EmbedContext without cancellation.
func Embed(b backend.Backend, m *nn.ResNet, set *data.Subset, tf data.Transform, batch, workers int) ([]float32, int, error) {
	return EmbedContext(context.Background(), b, m, set, tf, batch, workers)
}

// EmbedContext runs the model in eval mode over a subset and returns
// L2-normalised embeddings (N, dim) in subset order. It stops with ctx's
// error, between two batches, when ctx is cancelled.
func EmbedContext(ctx context.Context, b backend.Backend, m *nn.ResNet, set *data.Subset, tf data.Transform, batch, workers int) ([]float32, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	dim := m.FC.Weight.Value.Dim(0)
	out := make([]float32, set.Len()*dim)
	if set.Len() == 0 {
		return out, dim, nil
	}
	nn.SetTraining(m, false)
	defer nn.SetTraining(m, true)
	ld, err := data.NewLoader(set, data.SequentialSampler{N: set.Len(), BatchSize: batch}, tf, data.SamplerState{}, data.LoaderOptions{Workers: workers, Epochs: 1})
	if err != nil {
		return nil, 0, err
	}
	defer ld.Close()
	g := autograd.New(b)
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		bt, err := ld.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		var e []float32
		g.NoGrad(func() {
			x := g.Constant(bt.Images, bt.Shape[:]...)
			e = g.Values(m.Forward(g, x))
		})
		g.Reset()
		for i, idx := range bt.Index {
			copy(out[idx*dim:(idx+1)*dim], e[i*dim:(i+1)*dim])
		}
	}
	if i, bad := firstNonFinite(out); bad {
		return nil, 0, fmt.Errorf("embedding of image %d is not finite: the model's weights have diverged", i/dim)
	}
	retrieval.Normalize(out, dim)
	return out, dim, nil
}

func firstNonFinite(x []float32) (int, bool) {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i, true
		}
	}
	return -1, false
}

// Evaluate is EvaluateContext without cancellation.
func Evaluate(b backend.Backend, m *nn.ResNet, ds *data.Dataset, tf data.Transform, batch, workers int) (retrieval.Metrics, error) {
	return EvaluateContext(context.Background(), b, m, ds, tf, batch, workers)
}

// EvaluateContext embeds the data set's queries and gallery and scores the
// protocol. It stops with ctx's error (wrapped) when ctx is cancelled.
func EvaluateContext(ctx context.Context, b backend.Backend, m *nn.ResNet, ds *data.Dataset, tf data.Transform, batch, workers int) (retrieval.Metrics, error) {
	qs, dim, err := EmbedContext(ctx, b, m, ds.Query, tf, batch, workers)
	if err != nil {
		return retrieval.Metrics{}, fmt.Errorf("embedding the queries: %w", err)
	}
	gs, _, err := EmbedContext(ctx, b, m, ds.Gallery, tf, batch, workers)
	if err != nil {
		return retrieval.Metrics{}, fmt.Errorf("embedding the gallery: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return retrieval.Metrics{}, err
	}
	return retrieval.Evaluate(b, qs, ds.Query.Items(), gs, ds.Gallery.Items(), dim, retrieval.Ks, retrieval.SearchOptions{})
}

// seedOf mixes a run seed with a purpose tag.
func seedOf(seed uint64, tag string) uint64 {
	h := sha256.Sum256([]byte(tag))
	return seed ^ binary.LittleEndian.Uint64(h[:8])
}
