package train_test

import (
	"context"
	"fmt"
	"image"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/dmlgo/dmlgo/data/sets"
	"github.com/dmlgo/dmlgo/model"
	"github.com/dmlgo/dmlgo/train"
)

// Training from Go rather than from tools/train: a short DML run on a tiny
// FMNIST-C2S (made from the synthetic archive in data/testdata), then its
// checkpoint loaded back as a model that embeds a photo.
func Example() {
	out, err := os.MkdirTemp("", "dmlgo-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)

	cfg := train.DefaultTrainConfig()
	cfg.Data = sets.DefaultSpec()
	cfg.Data.Path = filepath.Join("..", "data", "testdata", "fmnist", "fashion-mnist-synthetic.tgz")
	cfg.Data.TrainItems, cfg.Data.TestItems = 24, 10
	cfg.Epochs, cfg.Batch, cfg.Dim = 1, 16, 32
	cfg.Out = filepath.Join(out, "run")
	if err := cfg.Validate(); err != nil {
		log.Fatal(err)
	}
	t, err := train.NewTrainer(cfg, false, io.Discard, io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	if err := t.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	fmt.Println("evaluations:", len(t.State.Evals))

	m, err := model.Load(filepath.Join(cfg.Out, "best.ckpt"), model.Options{Device: "cpu"}, io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	photo := image.NewGray(image.Rect(0, 0, 120, 160))
	e, err := m.EmbedImages(context.Background(), []image.Image{photo}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Card.Arch, "trained on", m.Card.Data.Kind, "embeds a photo into", len(e), "floats")
	// Output:
	// evaluations: 1
	// resnet-s trained on fmnist-c2s embeds a photo into 32 floats
}
