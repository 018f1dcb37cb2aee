package fmnist

import (
	"fmt"
	"image"
	"time"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/internal/parallel"
)

// Config sets the size, shift and seed of an FMNIST-C2S benchmark.
type Config struct {
	// TrainItems is the number of training items (classes), taken evenly
	// from the ten categories (at most 60,000).
	TrainItems int `json:"train_items"`
	// TestItems is the number of test items (gallery size), taken evenly
	// from the ten categories (at most 10,000).
	TestItems int `json:"test_items"`
	// TrainViews and TestViews are the numbers K of consumer views per
	// train and test item.
	TrainViews int `json:"train_views"`
	TestViews  int `json:"test_views"`
	// Shift is the domain shift of the consumer views.
	Shift Shift `json:"shift"`
	// Seed drives every consumer view.
	Seed uint64 `json:"seed"`
	// Preset names the preset the config started from (informational).
	Preset string `json:"preset,omitempty"`
	// Workers is the number of goroutines rendering views (default
	// GOMAXPROCS); it does not change the result.
	Workers int `json:"-"`
}

// PresetNames lists the presets.
var PresetNames = []string{"tiny", "quick", "full"}

// Preset returns a named configuration, all with the moderate shift and
// seed 1:
//
//   - tiny: 200 train items (K=2), 200 test items (K=1); smoke tests.
//   - quick: 3,000 train items (K=2), the full 10,000-item test gallery
//     (K=1); the demo (builds in about a second).
//   - full: all 60,000 train items (K=2) and 10,000 test items (K=1).
func Preset(name string) (Config, error) {
	sh, _ := ShiftLevel("moderate")
	c := Config{TrainViews: 2, TestViews: 1, Shift: sh, Seed: 1, Preset: name}
	switch name {
	case "tiny":
		c.TrainItems, c.TestItems = 200, 200
	case "quick":
		c.TrainItems, c.TestItems = 3000, 10000
	case "full":
		c.TrainItems, c.TestItems = 60000, 10000
	default:
		return Config{}, fmt.Errorf("fmnist: unknown preset %q (want tiny, quick or full)", name)
	}
	return c, nil
}

// String describes the config for logs and reports, e.g.
// "fmnist-c2s shift=moderate train=3000 items x (1 shop + 2 consumer) test=10000 items x (1 shop + 1 consumer) seed=1".
func (c Config) String() string {
	return fmt.Sprintf("fmnist-c2s shift=%s train=%d items x (1 shop + %d consumer) test=%d items x (1 shop + %d consumer) seed=%d",
		c.Shift.Name, c.TrainItems, c.TrainViews, c.TestItems, c.TestViews, c.Seed)
}

// Validate checks the config against a source.
func (c Config) Validate(src *Source) error {
	if err := c.Shift.Validate(); err != nil {
		return err
	}
	train, test := src.Split()
	nTrain, nTest := 0, 0
	for k := range train {
		nTrain += len(train[k])
		nTest += len(test[k])
	}
	switch {
	case c.TrainItems < 0 || c.TrainItems > nTrain:
		return fmt.Errorf("fmnist: train-items %d must be in 0..%d (the source's train items)", c.TrainItems, nTrain)
	case c.TestItems < 1 || c.TestItems > nTest:
		return fmt.Errorf("fmnist: test-items %d must be in 1..%d (the source's test items)", c.TestItems, nTest)
	case c.TrainViews < 0 || c.TrainViews > 100:
		return fmt.Errorf("fmnist: train-views %d must be in 0..100", c.TrainViews)
	case c.TestViews < 1 || c.TestViews > 100:
		return fmt.Errorf("fmnist: test-views %d must be in 1..100", c.TestViews)
	}
	for k := range train {
		if n := perCategory(c.TrainItems, k); n > len(train[k]) {
			return fmt.Errorf("fmnist: train-items %d needs %d items of category %d, the source has %d", c.TrainItems, n, k, len(train[k]))
		}
		if n := perCategory(c.TestItems, k); n > len(test[k]) {
			return fmt.Errorf("fmnist: test-items %d needs %d items of category %d, the source has %d", c.TestItems, n, k, len(test[k]))
		}
	}
	return nil
}

// perCategory splits n items over the categories: n/10 each, the first
// n%10 categories one more.
func perCategory(n, k int) int {
	q := n / NumCategories
	if k < n%NumCategories {
		q++
	}
	return q
}

// Benchmark is a generated FMNIST-C2S data set.
//
// R = number of rows (views): TrainItems·(1+TrainViews) + TestItems·(1+TestViews).
type Benchmark struct {
	Config Config
	Source *Source
	// Manifest has one row per view, each an in-memory 32 x 32 *image.Gray
	// whose pixels live in Pixels. Rows come item by item (train items,
	// then test items), each item's shop view first.
	Manifest *data.Manifest
	// Pixels: (R, 32, 32), the images of all rows.
	Pixels []uint8
	// Views: (R), 0 for a shop view, 1..K for consumer view k.
	Views []int16
	// Elapsed is how long rendering took.
	Elapsed time.Duration
}

// Build generates the benchmark. Items: per category, the first
// TrainItems/10 train items and the first TestItems/10 test items of
// Source.Split; an item's id is its index in the source. Views are rendered
// in parallel; the result does not depend on the number of workers.
func Build(src *Source, cfg Config) (*Benchmark, error) {
	if err := cfg.Validate(src); err != nil {
		return nil, err
	}
	start := time.Now()
	train, test := src.Split()
	type itemPlan struct {
		id    int
		split data.Split
		views int
		row   int // first manifest row
	}
	var plan []itemPlan
	rows := 0
	add := func(ids [NumCategories][]int, n int, split data.Split, k int) {
		for c := range ids {
			for _, id := range ids[c][:perCategory(n, c)] {
				plan = append(plan, itemPlan{id, split, k, rows})
				rows += 1 + k
			}
		}
	}
	add(train, cfg.TrainItems, data.Train, cfg.TrainViews)
	add(test, cfg.TestItems, data.Test, cfg.TestViews)

	b := &Benchmark{
		Config: cfg,
		Source: src,
		Pixels: make([]uint8, rows*ViewPixels),
		Views:  make([]int16, rows),
	}
	m := &data.Manifest{
		Name:          cfg.String(),
		Rows:          make([]data.Row, rows),
		CategoryNames: map[int32]string{},
		Warnings:      data.NewWarnings(),
	}
	for k, n := range CategoryNames {
		m.CategoryNames[int32(k)] = n
	}
	if n := src.TotalSkipped(); n > 0 {
		ex := ""
		if len(src.SkippedRows) > 0 {
			ex = src.SkippedRows[0]
		}
		m.Warnings.AddN("invalid source row skipped", n, ex)
	}
	b.Manifest = m

	masks := make([][Pixels]float32, parallel.Workers(len(plan), cfg.Workers))
	parallel.For(len(plan), cfg.Workers, func(w, i int) {
		mask := &masks[w]
		it := plan[i]
		img := src.Image(it.id)
		identity := cfg.Shift.Identity()
		if !identity {
			silhouette(mask, img)
		}
		for v := 0; v <= it.views; v++ {
			r := it.row + v
			pix := b.Pixels[r*ViewPixels : (r+1)*ViewPixels : (r+1)*ViewPixels]
			dom := data.Consumer
			switch {
			case v == 0:
				ShopView(pix, img)
				dom = data.Shop
			case identity:
				ShopView(pix, img)
			default:
				consumerView(pix, img, mask, &cfg.Shift, cfg.Seed, int64(it.id), v)
			}
			b.Views[r] = int16(v)
			m.Rows[r] = data.Row{
				Image:    &image.Gray{Pix: pix, Stride: ViewSide, Rect: image.Rect(0, 0, ViewSide, ViewSide)},
				Item:     int64(it.id),
				Domain:   dom,
				Split:    it.split,
				Category: int32(src.Categories[it.id]),
			}
		}
	})
	b.Elapsed = time.Since(start)
	return b, nil
}

// Row returns the 32 x 32 pixels of manifest row r.
func (b *Benchmark) Row(r int) []uint8 { return b.Pixels[r*ViewPixels : (r+1)*ViewPixels] }

// Transform is the evaluation transform for the benchmark: greyscale 32 x 32,
// pixels v in [0, 1] normalised to (v - 0.5) / 0.5, i.e. [-1, 1].
func Transform() data.Transform { return data.GreyTransform(ViewSide) }

// TrainAugment is a light training augmentation for the benchmark: random
// resized crops of 70-100% of the area, horizontal flips and a little
// brightness and contrast jitter.
func TrainAugment() *data.Augment {
	return &data.Augment{Scale: [2]float64{0.7, 1}, Ratio: [2]float64{0.85, 1 / 0.85}, Flip: 0.5, Brightness: 0.1, Contrast: 0.1}
}
