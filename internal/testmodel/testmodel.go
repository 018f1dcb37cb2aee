// Package testmodel makes the small trained and untrained models that the
// tests of the catalog and the service run against, from the synthetic
// Fashion-MNIST archive in data/testdata.
package testmodel

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/train"
)

// TestData is the repository's data/testdata folder.
func TestData() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "data", "testdata")
}

// TinyConfig trains resnet-s on a tiny FMNIST-C2S (24 train items, 10
// test items) for two epochs into out.
func TinyConfig(t testing.TB, out string) train.TrainConfig {
	t.Helper()
	c := train.DefaultTrainConfig()
	c.Data = sets.DefaultSpec()
	c.Data.Path = filepath.Join(TestData(), "fmnist", "fashion-mnist-synthetic.tgz")
	c.Data.TrainItems, c.Data.TestItems = 24, 10
	c.Epochs, c.Batch, c.EvalEvery = 2, 16, 1
	c.Loss = "dml/class"
	c.Out = out
	c.Threads = 2
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Train runs TinyConfig into dir and returns the finished trainer (closed
// when the test ends).
func Train(t testing.TB, dir string) *train.Trainer {
	t.Helper()
	tr, err := train.NewTrainer(TinyConfig(t, dir), false, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tr
}

// SaveUntrained writes to path a checkpoint of a freshly initialised model
// of the tiny run's data: enough for everything but the quality of the
// results.
func SaveUntrained(t testing.TB, path, arch string, dim int, seed uint64) string {
	t.Helper()
	cfg := TinyConfig(t, filepath.Dir(path))
	cfg.Model, cfg.Dim, cfg.Seed = arch, dim, seed
	b := backend.MustSelect("cpu")
	net, err := model.NewNet(b, model.NetConfig{Arch: arch, Dim: dim, InChannels: 1}, seed)
	if err != nil {
		t.Fatal(err)
	}
	card := model.Card{Arch: arch, Dim: dim, InChannels: 1, Data: cfg.Data, Loss: cfg.Loss}
	if err := model.SaveCheckpoint(path, b, model.Parts{Model: net, Card: card}, train.RunState{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return path
}

// Load loads a checkpoint on the CPU, 64 images per batch.
func Load(t testing.TB, path string) *model.Model {
	t.Helper()
	m, err := model.Load(path, model.Options{Device: "cpu", Batch: 64}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// PNG encodes img.
func PNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// SameImage reports whether a and b have the same size and pixels.
func SameImage(a, b image.Image) bool {
	if a.Bounds().Size() != b.Bounds().Size() {
		return false
	}
	ab, bb := a.Bounds(), b.Bounds()
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, a1 := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, a2 := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}
