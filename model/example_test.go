package model_test

import (
	"context"
	"fmt"
	"image"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
)

// A checkpoint carries its model card, so loading it needs nothing else:
// here a freshly initialised resnet-s is saved as training would save it,
// loaded back, and asked to embed two photos of different sizes.
func Example() {
	dir, err := os.MkdirTemp("", "dmlgo-model-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "best.ckpt")

	b := backend.MustSelect("cpu")
	net, err := model.NewNet(b, model.NetConfig{Arch: "resnet-s", Dim: 64, InChannels: 1}, 1)
	if err != nil {
		log.Fatal(err)
	}
	card := model.Card{Arch: "resnet-s", Dim: 64, InChannels: 1, Data: sets.DefaultSpec(), Loss: "dml"}
	if err := model.SaveCheckpoint(path, b, model.Parts{Model: net, Card: card}, map[string]int{"epoch": 0}); err != nil {
		log.Fatal(err)
	}

	m, err := model.Load(path, model.Options{Device: "cpu"}, io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	photos := []image.Image{image.NewGray(image.Rect(0, 0, 300, 400)), image.NewRGBA(image.Rect(0, 0, 64, 64))}
	e, err := m.EmbedImages(context.Background(), photos, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, input %s: %d embeddings of %d floats\n", m.Card.Arch, model.DescribeTransform(m.Transform), len(e)/m.Dim, m.Dim)
	// Output:
	// resnet-s, input greyscale 32×32: 2 embeddings of 64 floats
}
