// Package model is the trained artefact: the embedding network, the model
// card that says what it is (architecture, embedding size, the data it was
// trained on and so its input transform), the checkpoint files that hold
// both, and the one path that turns images into embeddings.
//
// Training (package train) writes checkpoints; Load reads one back for
// inference; Wrap gives a network being trained the same embedding path,
// so that the evaluation during training and every retrieval command embed
// images the same way.
package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/nn"
)

// NetConfig chooses the embedding network.
type NetConfig struct {
	Arch       string // resnet-s, resnet18, resnet34, resnet50
	Dim        int    // embedding size (the fc layer's output)
	InChannels int    // 1 (greyscale) or 3 (RGB)
	Pretrained string // torchvision safetensors; fc is replaced
}

// NewNet builds the backbone with an embedding fc of cfg.Dim outputs,
// loading pretrained weights (all but fc) when asked.
func NewNet(b backend.Backend, cfg NetConfig, seed uint64) (*nn.ResNet, error) {
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
