package data

import (
	"image"
	"image/color"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// grey32 is a 32 x 32 *image.Gray with pixel (x, y) = 8x + y/4.
func grey32() *image.Gray {
	g := image.NewGray(image.Rect(0, 0, 32, 32))
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			g.Pix[y*32+x] = uint8(8*x + y/4)
		}
	}
	return g
}

func TestGreyTransformExact(t *testing.T) {
	tf := GreyTransform(32)
	out := tf.Image(grey32(), image.Rectangle{})
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			want := (float32(8*x+y/4)/255 - 0.5) / 0.5
			if got := out[y*32+x]; math.Abs(float64(got-want)) > 1e-6 {
				t.Fatalf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestRGBTransform(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 20, 10))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []uint8{255, 128, 0, 255})
	}
	tf := RGBTransform(8)
	out := tf.Image(img, image.Rectangle{})
	want := [3]float32{(1 - 0.485) / 0.229, (128.0/255 - 0.456) / 0.224, (0 - 0.406) / 0.225}
	for c := 0; c < 3; c++ {
		for i := 0; i < 64; i++ {
			if got := out[c*64+i]; math.Abs(float64(got-want[c])) > 1e-3 {
				t.Fatalf("channel %d pixel %d = %v, want %v", c, i, got, want[c])
			}
		}
	}
	// Greyscale of the same colour.
	g := GreyTransform(8)
	g.Mean, g.Std = [3]float32{}, [3]float32{1}
	lum := float32(0.299*1 + 0.587*128.0/255)
	if got := g.Image(img, image.Rectangle{})[0]; math.Abs(float64(got-lum)) > 2e-3 {
		t.Errorf("grey %v, want %v", got, lum)
	}
}

// TestBoxCrop: an image whose box region is red on a blue background comes
// out all red; a box reaching outside is clamped and counted; a box
// entirely outside falls back to the whole image.
func TestBoxCrop(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 100, 80))
	for y := 0; y < 80; y++ {
		for x := 0; x < 100; x++ {
			c := color.RGBA{0, 0, 255, 255}
			if x >= 30 && x < 70 && y >= 20 && y < 60 {
				c = color.RGBA{255, 0, 0, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	tf := RGBTransform(16)
	tf.Mean, tf.Std = [3]float32{}, [3]float32{1, 1, 1}
	out := tf.Image(img, image.Rect(30, 20, 70, 60))
	for i := 0; i < 256; i++ {
		if out[i] < 0.95 || out[2*256+i] > 0.05 {
			t.Fatalf("pixel %d of the crop is not red: %v %v", i, out[i], out[512+i])
		}
	}
	w := NewWarnings()
	dst := make([]float32, tf.Len())
	tf.Apply(dst, img, image.Rect(60, 50, 140, 120), 0, w)
	tf.Apply(dst, img, image.Rect(200, 200, 300, 300), 0, w)
	if w.Count(WarnBoxClamped) != 1 || w.Count(WarnBoxEmpty) != 1 {
		t.Errorf("warnings: %s", w)
	}
	// Margin 0.5 on a 40-pixel box widens it to 80 x 80 clamped to 100 x 80:
	// the border is blue.
	tf.Margin = 0.5
	out = tf.Image(img, image.Rect(30, 20, 70, 60))
	if out[2*256] < 0.9 || out[2*256+8*16+8] > 0.1 {
		t.Errorf("margin: corner blue %v, centre blue %v", out[2*256], out[2*256+8*16+8])
	}
}

func TestFitPadAndCrop(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 40, 10))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	tf := GreyTransform(8)
	tf.Fit = FitPad
	out := tf.Image(img, image.Rectangle{})
	// 40 x 10 -> 8 x 2 centred in rows 3..4; other rows are 0 (the mean).
	for y := 0; y < 8; y++ {
		want := float32(0)
		if y == 3 || y == 4 {
			want = 1
		}
		if got := out[y*8+4]; math.Abs(float64(got-want)) > 1e-3 {
			t.Errorf("pad row %d = %v, want %v", y, got, want)
		}
	}
	tf.Fit = FitCrop
	out = tf.Image(img, image.Rectangle{})
	for _, v := range out {
		if math.Abs(float64(v-1)) > 1e-3 {
			t.Fatalf("crop: %v", out)
		}
	}
}

func TestAugmentDeterministic(t *testing.T) {
	tf := RGBTransform(24).Training(DefaultAugment())
	img := quadrants()
	a, b, c := make([]float32, tf.Len()), make([]float32, tf.Len()), make([]float32, tf.Len())
	tf.Apply(a, img, image.Rectangle{}, 42, nil)
	tf.Apply(b, img, image.Rectangle{}, 42, nil)
	if !slices.Equal(a, b) {
		t.Error("same seed gave different augmentations")
	}
	differ := 0
	for seed := uint64(0); seed < 20; seed++ {
		tf.Apply(c, img, image.Rectangle{}, seed, nil)
		if !slices.Equal(a, c) {
			differ++
		}
	}
	if differ < 19 {
		t.Errorf("only %d of 20 seeds changed the augmentation", differ)
	}
}

// TestFlip: with Flip = 1 and nothing else, the output is the mirror image.
func TestFlip(t *testing.T) {
	tf := GreyTransform(32).Training(&Augment{Flip: 1})
	out := make([]float32, tf.Len())
	tf.Apply(out, grey32(), image.Rectangle{}, 1, nil)
	ref := GreyTransform(32).Image(grey32(), image.Rectangle{})
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			if out[y*32+x] != ref[y*32+31-x] {
				t.Fatalf("(%d,%d) not mirrored", x, y)
			}
		}
	}
}

// TestRandomResizedCrop: crops stay inside the region and respect the
// area and ratio ranges (or fall back to a centred crop).
func TestRandomResizedCrop(t *testing.T) {
	a := &Augment{Scale: [2]float64{0.3, 0.9}, Ratio: [2]float64{0.5, 2}}
	for _, reg := range []image.Rectangle{image.Rect(0, 0, 100, 100), image.Rect(10, 20, 400, 60), image.Rect(5, 5, 7, 300), image.Rect(0, 0, 1, 1)} {
		for seed := uint64(0); seed < 500; seed++ {
			r := rng.New(seed)
			c := randomResizedCrop(reg, a, &r)
			if !c.In(reg) || c.Empty() {
				t.Fatalf("crop %v outside %v", c, reg)
			}
		}
	}
	r := rng.New(1)
	reg := image.Rect(0, 0, 200, 200)
	for i := 0; i < 200; i++ {
		c := randomResizedCrop(reg, a, &r)
		frac := float64(c.Dx()*c.Dy()) / 40000
		ratio := float64(c.Dx()) / float64(c.Dy())
		if frac < 0.28 || frac > 0.92 || ratio < 0.48 || ratio > 2.05 {
			t.Fatalf("crop %v: area fraction %.2f ratio %.2f", c, frac, ratio)
		}
	}
}

func TestJitterRange(t *testing.T) {
	tf := RGBTransform(16).Training(&Augment{Brightness: 0.9, Contrast: 0.9, Saturation: 0.9})
	tf.Mean, tf.Std = [3]float32{}, [3]float32{1, 1, 1}
	out := make([]float32, tf.Len())
	for seed := uint64(0); seed < 50; seed++ {
		tf.Apply(out, quadrants(), image.Rectangle{}, seed, nil)
		for _, v := range out {
			if v < 0 || v > 1 {
				t.Fatalf("jittered value %v outside [0, 1]", v)
			}
		}
	}
}

func TestTransformValidate(t *testing.T) {
	bad := []Transform{
		{Size: 0, Channels: 1, Std: [3]float32{1}},
		{Size: 8, Channels: 2, Std: [3]float32{1, 1}},
		{Size: 8, Channels: 1},
		{Size: 8, Channels: 1, Std: [3]float32{1}, Margin: -1},
		{Size: 8, Channels: 1, Std: [3]float32{1}, Augment: &Augment{Scale: [2]float64{0.5, 1.5}}},
		{Size: 8, Channels: 1, Std: [3]float32{1}, Augment: &Augment{Flip: 2}},
		{Size: 8, Channels: 1, Std: [3]float32{1}, Augment: &Augment{Brightness: -1}},
	}
	for _, tf := range bad {
		if err := tf.Validate(); err == nil || !strings.HasPrefix(err.Error(), "data: ") {
			t.Errorf("%+v: %v", tf, err)
		}
	}
	for _, tf := range []Transform{GreyTransform(32), RGBTransform(224).Training(DefaultAugment())} {
		if err := tf.Validate(); err != nil {
			t.Error(err)
		}
	}
	if f, err := ParseFit("pad"); err != nil || f != FitPad || f.String() != "pad" {
		t.Error("ParseFit")
	}
}

func TestEmptyImage(t *testing.T) {
	for _, tf := range []Transform{GreyTransform(8), RGBTransform(8).Training(DefaultAugment())} {
		tf.Fit = FitPad
		out := make([]float32, tf.Len())
		tf.Apply(out, image.NewRGBA(image.Rectangle{}), image.Rectangle{}, 1, nil)
		for _, v := range out {
			if v != 0 {
				t.Fatal("an empty image did not give zeros")
			}
		}
	}
}

// TestApplyOnMatchesApply: a photo's colour conversion and resampling
// split into row bands over goroutines give bit for bit what Apply gives,
// for YCbCr photos of each subsampling and RGBA, grey and paletted
// images; enlarged, reduced less and more than twice; each fit, boxes, and
// the training transform's random crops and jitter.
func TestApplyOnMatchesApply(t *testing.T) {
	r := rng.New(5)
	var imgs []image.Image
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420} {
		for _, size := range []image.Point{{300, 400}, {97, 61}, {700, 530}} {
			y := image.NewYCbCr(image.Rect(3, 5, 3+size.X, 5+size.Y), ratio)
			for _, p := range [][]uint8{y.Y, y.Cb, y.Cr} {
				for i := range p {
					p[i] = uint8(r.IntN(256))
				}
			}
			imgs = append(imgs, y)
		}
	}
	rgba := image.NewRGBA(image.Rect(0, 0, 230, 170))
	grey := image.NewGray(image.Rect(0, 0, 64, 90))
	pal := image.NewPaletted(image.Rect(0, 0, 50, 40), color.Palette{color.Black, color.White, color.RGBA{200, 10, 60, 255}})
	for _, p := range [][]uint8{rgba.Pix, grey.Pix, pal.Pix} {
		for i := range p {
			p[i] = uint8(r.IntN(256)) % 3
		}
	}
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(r.IntN(256))
	}
	imgs = append(imgs, rgba, grey, pal)
	var tfs []Transform
	for _, fit := range []Fit{FitStretch, FitPad, FitCrop} {
		for _, size := range []int{224, 64} {
			tf := RGBTransform(size)
			tf.Fit = fit
			tfs = append(tfs, tf)
		}
	}
	grey224 := GreyTransform(224)
	train := RGBTransform(96).Training(DefaultAugment())
	tfs = append(tfs, grey224, train)
	for ti, tf := range tfs {
		for ii, img := range imgs {
			for _, box := range []image.Rectangle{{}, image.Rect(10, 12, 60, 48).Add(img.Bounds().Min)} {
				want := make([]float32, tf.Len())
				tf.Apply(want, img, box, 7, nil)
				for _, threads := range []int{2, 3, 8} {
					got := make([]float32, tf.Len())
					tf.ApplyOn(got, img, box, 7, nil, threads)
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("transform %d image %d (%T %v) box %v threads %d: value %d is %v, %v on one goroutine",
								ti, ii, img, img.Bounds(), box, threads, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}
