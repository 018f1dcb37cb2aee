package model

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/nn"
	"github.com/dmlgo/dmlgo/safetensors"
)

func tinyCard() Card {
	return Card{Arch: "resnet-s", Dim: 16, InChannels: 1, Data: sets.DefaultSpec(), Loss: "dml"}
}

// save writes a checkpoint of a fresh resnet-s with the card (none when
// card is the zero Card) and the trainer state state.
func save(t *testing.T, path string, card Card, state any) *nn.ResNet {
	t.Helper()
	b := backend.MustSelect("cpu")
	net, err := NewNet(b, NetConfig{Arch: "resnet-s", Dim: 16, InChannels: 1}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckpoint(path, b, Parts{Model: net, Card: card}, state); err != nil {
		t.Fatal(err)
	}
	return net
}

func greyImages(n int, seed uint64) []image.Image {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]image.Image, n)
	for i := range out {
		g := image.NewGray(image.Rect(0, 0, 28+i, 28))
		for j := range g.Pix {
			g.Pix[j] = uint8(r.IntN(256))
		}
		out[i] = g
	}
	return out
}

// TestCardRoundTrip: the card written with a checkpoint is the card read
// back, and Load builds the model it describes.
func TestCardRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.ckpt")
	want := tinyCard()
	want.Data.Path = "/data/fmnist.tgz"
	save(t, path, want, map[string]int{"epoch": 1})
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadCard(path, f)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("card %+v, wrote %+v", got, want)
	}
	m, err := Load(path, Options{Device: "cpu"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if m.Dim != 16 || m.Card != want || m.Transform.Channels != 1 || m.Transform.Size != 32 || m.Batch != 64 {
		t.Errorf("loaded model %+v", m)
	}
	if !strings.Contains(m.Describe(), "greyscale 32×32") {
		t.Errorf("Describe: %s", m.Describe())
	}
}

// TestLegacyCheckpoint: a checkpoint written before model cards (the
// trainer state alone) still loads, its card made from the training
// settings and the first convolution.
func TestLegacyCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.ckpt")
	state := map[string]any{"config": map[string]any{"model": "resnet-s", "dim": 16, "loss": "cosface", "data": sets.DefaultSpec()}, "epoch": 2}
	save(t, path, Card{}, state)
	f, _ := ReadFile(path)
	if _, ok := f.Metadata[cardKey]; ok {
		t.Fatal("a card was written for the zero Card")
	}
	m, err := Load(path, Options{Device: "cpu"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Card{Arch: "resnet-s", Dim: 16, InChannels: 1, Data: sets.DefaultSpec(), Loss: "cosface"}
	if m.Card != want {
		t.Errorf("card %+v, want %+v", m.Card, want)
	}
}

// TestBadCards: a card that contradicts the weights, or the data's
// channels, is refused naming the file.
func TestBadCards(t *testing.T) {
	dir := t.TempDir()
	for name, card := range map[string]Card{
		"channels": {Arch: "resnet-s", Dim: 16, InChannels: 3, Data: sets.DefaultSpec()},
		"kind":     {Arch: "resnet-s", Dim: 16, InChannels: 1, Data: sets.Spec{Kind: "imagenet"}},
		"dim":      {Arch: "resnet-s", Dim: 0, InChannels: 1, Data: sets.DefaultSpec()},
	} {
		path := filepath.Join(dir, name+".ckpt")
		save(t, path, card, struct{}{})
		if _, err := Load(path, Options{Device: "cpu"}, io.Discard); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A card that is not JSON.
	path := filepath.Join(dir, "garbled.ckpt")
	save(t, path, tinyCard(), struct{}{})
	f, _ := safetensors.ReadFile(path)
	f.Metadata[cardKey] = "{"
	if err := safetensors.WriteFile(path, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, Options{Device: "cpu"}, io.Discard); err == nil || !strings.Contains(err.Error(), "model card") {
		t.Errorf("garbled card: %v", err)
	}
}

// TestOneEmbeddingPath: a wrapped network in training mode embeds as the
// same weights loaded for inference do, through EmbedImages and EmbedRows
// alike, and is left in training mode; a network in evaluation mode stays
// in it.
func TestOneEmbeddingPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.ckpt")
	card := tinyCard()
	net := save(t, path, card, struct{}{})
	loaded, err := Load(path, Options{Device: "cpu", Batch: 3}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b := backend.MustSelect("cpu")
	wrapped, err := Wrap(b, net, card, Options{Batch: 5, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if wrapped.Fingerprint != loaded.Fingerprint {
		t.Fatalf("fingerprints %s and %s of the same weights", wrapped.Fingerprint, loaded.Fingerprint)
	}
	imgs := greyImages(7, 1)
	ctx := context.Background()
	want, err := loaded.EmbedImages(ctx, imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !nn.Training(net) {
		t.Fatal("a fresh network is not in training mode")
	}
	got, err := wrapped.EmbedImages(ctx, imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !nn.Training(net) {
		t.Error("embedding left the trained network in evaluation mode")
	}
	if nn.Training(loaded.Net) {
		t.Error("embedding left the loaded network in training mode")
	}
	same := func(what string, a, b []float32) {
		t.Helper()
		if len(a) != len(b) {
			t.Fatalf("%s: %d and %d values", what, len(a), len(b))
		}
		for i := range a {
			if d := a[i] - b[i]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("%s: value %d: %g and %g", what, i, a[i], b[i])
			}
		}
	}
	same("wrapped and loaded", got, want)
	// The same images as manifest rows, one of them missing.
	man := &data.Manifest{Root: t.TempDir()}
	for i, img := range imgs {
		man.Rows = append(man.Rows, data.Row{Image: img, Item: int64(i), Category: data.NoCategory})
	}
	man.Rows = append(man.Rows, data.Row{Path: "missing.png", Item: 99, Category: data.NoCategory})
	rows := []int{7, 0, 1, 2, 3, 4, 5, 6}
	e, err := wrapped.EmbedRows(ctx, man, rows, EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Skipped != 1 || len(e.Rows) != 7 || e.Rows[0] != 0 || e.Warnings.Count(data.WarnMissingImage) != 1 {
		t.Fatalf("EmbedRows: skipped %d, rows %v", e.Skipped, e.Rows)
	}
	same("EmbedRows and EmbedImages", e.Embeddings, want)
	if _, err := wrapped.EmbedRows(ctx, man, rows, EmbedOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), "missing.png") {
		t.Errorf("strict EmbedRows with a missing image: %v", err)
	}
}

// TestEvaluateSkipsUnreadable: an evaluation leaves an unreadable image
// out of the protocol instead of embedding a blank one.
func TestEvaluateSkipsUnreadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.ckpt")
	save(t, path, tinyCard(), struct{}{})
	m, err := Load(path, Options{Device: "cpu"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	imgs := greyImages(6, 2)
	man := &data.Manifest{Root: t.TempDir()}
	for i, img := range imgs {
		dom := data.Consumer
		if i >= 3 {
			dom = data.Shop
		}
		man.Rows = append(man.Rows, data.Row{Image: img, Item: int64(i % 3), Domain: dom, Category: data.NoCategory})
	}
	man.Rows = append(man.Rows, data.Row{Path: "gone.png", Item: 0, Domain: data.Shop, Category: data.NoCategory})
	ds := &data.Dataset{Manifest: man,
		Query:   &data.Subset{Manifest: man, Rows: []int{0, 1, 2}},
		Gallery: &data.Subset{Manifest: man, Rows: []int{3, 6, 4, 5}}}
	met, err := m.Evaluate(context.Background(), ds, EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(met.Flat())
	if met.TopK[50] != 1 {
		t.Errorf("three queries against three shop images: top-50 %g (%s)", met.TopK[50], raw)
	}
}

// TestEmbedRowsDecodesForTheTransform: a manifest row's JPEG that the
// model's transform shrinks a lot is embedded from the reduced decode
// (data.DecodeFileFor), its box with it: the embedding is that of the
// image and box DecodeFileFor gives.
func TestEmbedRowsDecodesForTheTransform(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.ckpt")
	save(t, path, tinyCard(), struct{}{})
	m, err := Load(path, Options{Device: "cpu"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = uint8(i/4%640/3 + r.IntN(40))
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "photo.jpg"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	box := image.Rect(30, 20, 610, 470)
	if d := m.Transform.JPEGScale(640, 480, box); d < 2 {
		t.Fatalf("the transform (size %d) takes the photo at 1/%d", m.Transform.Size, d)
	}
	man := &data.Manifest{Root: root, Rows: []data.Row{{Path: "photo.jpg", Box: box, Category: data.NoCategory}}}
	e, err := m.EmbedRows(context.Background(), man, []int{0}, EmbedOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	small, sbox, err := data.DecodeFileFor(filepath.Join(root, "photo.jpg"), data.DefaultDecodeLimits, m.Transform, box)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.EmbedImages(context.Background(), []image.Image{small}, []image.Rectangle{sbox})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if e.Embeddings[i] != want[i] {
			t.Fatalf("value %d: %g from EmbedRows, %g from the reduced decode", i, e.Embeddings[i], want[i])
		}
	}
}
