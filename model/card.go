package model

import (
	"encoding/json"
	"fmt"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/safetensors"
)

// Card says what a trained model is: everything needed to rebuild the
// network and feed it images, without the trainer's settings. Every
// checkpoint carries one (metadata key "dmlgo.card", JSON).
type Card struct {
	// Arch is the backbone (resnet-s, resnet18, resnet34, resnet50).
	Arch string `json:"arch"`
	// Dim is the embedding size.
	Dim int `json:"dim"`
	// InChannels is 1 (greyscale) or 3 (RGB).
	InChannels int `json:"in_channels"`
	// Data is the training data set. Its kind decides the input transform
	// (see Transform); for the built-in benchmark it also says where the
	// gallery's images can be found again.
	Data sets.Spec `json:"data"`
	// Loss is the training head's spec, for labels (e.g. "dml").
	Loss string `json:"loss,omitempty"`
}

// cardKey is the checkpoint metadata key of the card.
const cardKey = "dmlgo.card"

// Transform is the input transform of the model: the evaluation transform
// of its training data (FMNIST-C2S: greyscale 32×32; the real data sets
// and TSV manifests: RGB 224×224 with ImageNet normalisation and a 10% box
// margin).
func (c Card) Transform() (data.Transform, error) {
	tf, err := sets.Transform(c.Data.Kind)
	if err != nil {
		return data.Transform{}, err
	}
	if c.InChannels != 0 && c.InChannels != tf.Channels {
		return data.Transform{}, fmt.Errorf("the model takes %d-channel images, but its training data (%s) gives %d-channel ones: a checkpoint edited by hand?", c.InChannels, c.Data.Kind, tf.Channels)
	}
	return tf, nil
}

// DescribeTransform is a transform in a few words: "greyscale 32×32".
func DescribeTransform(t data.Transform) string {
	kind := "RGB"
	if t.Channels == 1 {
		kind = "greyscale"
	}
	return fmt.Sprintf("%s %d×%d", kind, t.Size, t.Size)
}

// ReadCard returns the card of a checkpoint read with ReadState or
// safetensors.ReadFile. A checkpoint written before cards existed has its
// card made from the training settings it holds, and its input channels
// from its first convolution.
func ReadCard(path string, f *safetensors.File) (Card, error) {
	var c Card
	if raw, ok := f.Metadata[cardKey]; ok {
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return Card{}, fmt.Errorf("%s: model card: %w", path, err)
		}
	} else {
		var old struct {
			Config struct {
				Model string    `json:"model"`
				Dim   int       `json:"dim"`
				Loss  string    `json:"loss"`
				Data  sets.Spec `json:"data"`
			} `json:"config"`
		}
		if err := json.Unmarshal([]byte(f.Metadata["dmlgo.state"]), &old); err != nil {
			return Card{}, fmt.Errorf("%s: no model card, and the trainer state cannot be read: %w", path, err)
		}
		c = Card{Arch: old.Config.Model, Dim: old.Config.Dim, Loss: old.Config.Loss, Data: old.Config.Data}
	}
	conv, ok := f.Get("model.conv1.weight")
	if !ok || len(conv.Shape) != 4 {
		return Card{}, fmt.Errorf("%s: no model.conv1.weight (K, C, R, S): not a checkpoint of a dmlgo embedding model", path)
	}
	if c.InChannels == 0 {
		c.InChannels = conv.Shape[1]
	}
	if c.InChannels != conv.Shape[1] {
		return Card{}, fmt.Errorf("%s: the card says %d input channels, model.conv1.weight takes %d", path, c.InChannels, conv.Shape[1])
	}
	if c.Dim < 1 {
		return Card{}, fmt.Errorf("%s: the model card gives embedding size %d", path, c.Dim)
	}
	return c, nil
}
