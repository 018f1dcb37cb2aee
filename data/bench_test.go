package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// photoJPEG returns a 224 x 224 JPEG (quality 90) with photo-like content:
// smooth gradients, a few shapes and sensor-like noise, so its entropy (and
// decode time) is near a real product photo's.
func photoJPEG(tb testing.TB, seed uint64) []byte {
	r := rng.New(seed)
	img := image.NewRGBA(image.Rect(0, 0, 224, 224))
	cx, cy := 60+r.IntN(100), 60+r.IntN(100)
	for y := 0; y < 224; y++ {
		for x := 0; x < 224; x++ {
			base := [3]float64{float64(x), float64(y), float64(x+y) / 2}
			dx, dy := x-cx, y-cy
			if dx*dx+dy*dy < 3600 {
				base = [3]float64{200, 60 + float64(x%16)*4, 40}
			}
			var c [3]uint8
			for k := range c {
				v := base[k] + 12*r.Norm()
				c[k] = uint8(min(max(v, 0), 255))
			}
			img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkDecode224 decodes a 224 x 224 JPEG (one goroutine).
func BenchmarkDecode224(b *testing.B) {
	jpg := photoJPEG(b, 1)
	b.SetBytes(int64(len(jpg)))
	for b.Loop() {
		if _, err := Decode(jpg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkAugment224 runs the training transform (random resized crop to
// 224, flip, colour jitter, ImageNet normalisation) on a decoded image.
func BenchmarkAugment224(b *testing.B) {
	img, err := Decode(photoJPEG(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	tf := RGBTransform(224).Training(DefaultAugment())
	dst := make([]float32, tf.Len())
	sc := &scratch{}
	i := uint64(0)
	for b.Loop() {
		r := rng.New(i)
		tf.apply(dst, img, image.Rectangle{}, &r, sc)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDecodeAugment224 is the per-core cost of one training image:
// decode a 224 x 224 JPEG and augment it, on one goroutine.
func BenchmarkDecodeAugment224(b *testing.B) {
	jpg := photoJPEG(b, 1)
	tf := RGBTransform(224).Training(DefaultAugment())
	dst := make([]float32, tf.Len())
	sc := &scratch{}
	i := uint64(0)
	for b.Loop() {
		img, err := Decode(jpg)
		if err != nil {
			b.Fatal(err)
		}
		r := rng.New(i)
		tf.apply(dst, img, image.Rectangle{}, &r, sc)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkLoader224 measures the whole loader: 256 JPEG files on disk,
// shuffled batches of 32, worker goroutines = GOMAXPROCS (set with -cpu).
func BenchmarkLoader224(b *testing.B) {
	dir := b.TempDir()
	m := &Manifest{Name: "bench", Root: dir}
	for i := 0; i < 256; i++ {
		name := strconv.Itoa(i) + ".jpg"
		if err := os.WriteFile(filepath.Join(dir, name), photoJPEG(b, uint64(i)), 0o644); err != nil {
			b.Fatal(err)
		}
		m.Rows = append(m.Rows, Row{Path: name, Item: int64(i / 2), Domain: Domain(i % 2), Split: Train})
	}
	set := &Subset{Manifest: m, Rows: make([]int, 256)}
	for i := range set.Rows {
		set.Rows[i] = i
	}
	tf := RGBTransform(224).Training(DefaultAugment())
	ld, err := NewLoader(set, ShuffleSampler{N: 256, BatchSize: 32}, tf, SamplerState{Seed: 1}, LoaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer ld.Close()
	images := 0
	for b.Loop() {
		bt, err := ld.Next()
		if err == io.EOF {
			b.Fatal("loader ended")
		}
		if err != nil {
			b.Fatal(err)
		}
		images += bt.Shape[0]
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
}
