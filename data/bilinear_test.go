package data

import (
	"image"
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// applyBoth runs t.ApplyOn with the direct bilinear path and with draw's
// and reports the first difference of their outputs, bit for bit.
func applyBoth(t *testing.T, tf Transform, img image.Image, box image.Rectangle, seed uint64, threads int) (diffs int) {
	t.Helper()
	a := make([]float32, tf.Len())
	b := make([]float32, tf.Len())
	for i := range a {
		a[i], b[i] = float32(math.NaN()), float32(math.NaN())
	}
	tf.ApplyOn(a, img, box, seed, nil, threads)
	directBilinear = false
	tf.ApplyOn(b, img, box, seed, nil, threads)
	directBilinear = true
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			if diffs == 0 {
				t.Errorf("%T %v box %v seed %d threads %d: value %d is %v, draw's %v", img, img.Bounds(), box, seed, threads, i, a[i], b[i])
			}
			diffs++
		}
	}
	return diffs
}

// TestBilinearMatchesDraw: below a 2× reduction, and for enlargements,
// the transform's own bilinear interpolation gives draw.ApproxBiLinear's
// values bit for bit: RGBA images (at the origin or not) and JPEG-like
// YCbCr ones, whole or boxed, every fit, one and three channels, flipped,
// augmented, in bands on several goroutines.
func TestBilinearMatchesDraw(t *testing.T) {
	r := rng.New(5)
	var imgs []image.Image
	for _, size := range []image.Point{{300, 400}, {237, 181}, {90, 17}, {224, 224}} {
		rgba := blocks(&r, image.Pt(7, 3), size.X, size.Y)
		imgs = append(imgs, rgba, blocks(&r, image.Point{}, size.X, size.Y))
		for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio420} {
			imgs = append(imgs, toYCbCr(rgba, ratio))
		}
	}
	rgb := RGBTransform(224)
	grey := rgb
	grey.Channels = 1
	aug := rgb.Training(&Augment{Scale: [2]float64{0.3, 1}, Flip: 0.5, Brightness: 0.2, Saturation: 0.2})
	for _, img := range imgs {
		b := img.Bounds()
		for _, box := range []image.Rectangle{{}, image.Rect(b.Min.X+11, b.Min.Y+3, b.Max.X-5, b.Max.Y-2)} {
			for _, f := range []Fit{FitStretch, FitPad, FitCrop} {
				for _, tf := range []Transform{rgb, grey} {
					tf.Fit = f
					for _, threads := range []int{1, 3} {
						applyBoth(t, tf, img, box, 0, threads)
					}
				}
			}
			for seed := range uint64(6) {
				applyBoth(t, aug, img, box, seed, 1+int(seed%2))
			}
		}
	}
}

// TestBilinearScratchReused: a worker's scratch, reused for another
// picture of the same size and for another crop, gives what a fresh one
// gives (the rows it keeps are the call's own).
func TestBilinearScratchReused(t *testing.T) {
	r := rng.New(8)
	a := blocks(&r, image.Point{}, 300, 400)
	b := blocks(&r, image.Point{}, 300, 400)
	tf := RGBTransform(224)
	for _, threads := range []int{1, 2} {
		sc := &scratch{threads: threads}
		// The second box starts at the rows where the first ends.
		for i, c := range []struct {
			img image.Image
			box image.Rectangle
		}{{a, image.Rect(0, 0, 300, 200)}, {b, image.Rect(0, 198, 300, 398)}, {b, image.Rectangle{}}, {a, image.Rect(3, 5, 290, 380)}} {
			got, want := make([]float32, tf.Len()), make([]float32, tf.Len())
			rg := rng.New(1)
			tf.apply(got, c.img, c.box, &rg, sc)
			tf.ApplyOn(want, c.img, c.box, 1, nil, threads)
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("threads %d, picture %d: value %d is %v with a used scratch, %v with a fresh one", threads, i, j, got[j], want[j])
				}
			}
		}
	}
}

// TestBilinearFits: the direct path takes only what draw's RGBA fast path
// takes, and leaves equal sizes to draw's copy.
func TestBilinearFits(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(5, 5, 105, 85))
	out := image.Rect(0, 0, 50, 40)
	if _, ok := bilinearFits(rgba, rgba.Rect, out); !ok {
		t.Error("an RGBA crop inside its image: not taken")
	}
	if _, ok := bilinearFits(rgba, image.Rect(0, 0, 100, 80), out); ok {
		t.Error("a crop past the image's pixels: taken")
	}
	if _, ok := bilinearFits(rgba, image.Rect(5, 5, 55, 45), out); ok {
		t.Error("a crop of the output's size: taken")
	}
	if _, ok := bilinearFits(image.NewNRGBA(rgba.Rect), rgba.Rect, out); ok {
		t.Error("an NRGBA image: taken")
	}
}
