package data

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// photo is a w×h picture with smooth gradients, edges and some noise, as
// a JPEG of quality 90.
func photo(t testing.TB, w, h int) []byte {
	r := rng.New(9)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			n := uint8(r.IntN(16))
			c := color.RGBA{uint8(x*200/w) + n, uint8(y*200/h) + n, uint8((x+y)*100/(w+h)) + n, 255}
			if (x/37+y/29)%4 == 0 {
				c = color.RGBA{240, 230, 40 + n, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// unitTransform is RGBTransform(S) without normalisation: values in [0, 1].
func unitTransform(S int, f Fit) Transform {
	tf := RGBTransform(S)
	tf.Fit, tf.Mean, tf.Std = f, [3]float32{}, [3]float32{1, 1, 1}
	return tf
}

// TestDecodeForMatchesWholeDecode: a JPEG decoded at a reduced scale for
// a transform gives about that transform's output from the whole decode,
// for each fit, with and without a box, under EXIF rotation; and the
// scale taken is the one JPEGScale names, above 1. The picture has sharp
// edges every few dozen pixels, where the two differ most: the reduced
// decode keeps each 8×8 block's lowest frequencies, which ring a little
// at an edge inside a block (1.1/255 from the whole decode on average,
// 22/255 at worst, at 1/4); and a box lands on the reduced image's
// pixels, up to half of one (d/2 of the file's) from where it was, which
// moves a crop's sharp edges by up to a quarter of an output pixel here
// (2.4/255 on average, 29/255 at worst). On the smooth photo of the
// benchmark (tools/bench pipeline) they differ by under 1/255 at worst.
func TestDecodeForMatchesWholeDecode(t *testing.T) {
	plain := photo(t, 900, 700)
	whole, err := Decode(plain)
	if err != nil {
		t.Fatal(err)
	}
	rotated := exifJPEG(t, whole, 6, binary.BigEndian)
	for _, c := range []struct {
		name string
		b    []byte
		w, h int
	}{{"plain", plain, 900, 700}, {"EXIF 6", rotated, 700, 900}} {
		for _, f := range []Fit{FitStretch, FitPad, FitCrop} {
			for _, box := range []image.Rectangle{{}, image.Rect(101, 57, 640, 611)} {
				tf := unitTransform(64, f)
				d := tf.JPEGScale(c.w, c.h, box)
				if d < 2 {
					t.Fatalf("%s fit %v box %v: scale 1/%d, want a reduced one", c.name, f, box, d)
				}
				img, sbox, err := DecodeFor(context.Background(), c.b, DefaultDecodeLimits, tf, box)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := img.Bounds().Size(), image.Pt((c.w+d-1)/d, (c.h+d-1)/d); got != want {
					t.Fatalf("%s at 1/%d: %v, want %v", c.name, d, got, want)
				}
				full, err := Decode(c.b)
				if err != nil {
					t.Fatal(err)
				}
				want, got := make([]float32, tf.Len()), make([]float32, tf.Len())
				tf.Apply(want, full, box, 0, nil)
				tf.Apply(got, img, sbox, 0, nil)
				var worst, sum float64
				for i := range got {
					e := math.Abs(float64(got[i] - want[i]))
					worst, sum = max(worst, e), sum+e
				}
				limWorst, limMean := 25.0, 1.5
				if box != (image.Rectangle{}) {
					limWorst, limMean = 35, 3
				}
				if mean := sum / float64(len(got)); worst > limWorst/255 || mean > limMean/255 {
					t.Errorf("%s fit %v box %v at 1/%d: %.2f/255 from the whole decode at most, %.3f/255 on average; want %v and %v",
						c.name, f, box, d, 255*worst, 255*mean, limWorst, limMean)
				}
			}
		}
	}
}

// TestJPEGScale: the largest scale at which the transform still shrinks
// more than twice; whole for training transforms, small outputs' lack of
// need, and the zero Transform.
func TestJPEGScale(t *testing.T) {
	tf := unitTransform(224, FitCrop)
	for _, c := range []struct {
		w, h int
		box  image.Rectangle
		want int
	}{
		{1200, 1600, image.Rectangle{}, 2}, // 1200 > 2·2·224
		{3000, 4000, image.Rectangle{}, 4},
		{4000, 3000, image.Rectangle{}, 4},
		{8000, 6000, image.Rectangle{}, 8},
		{896, 1000, image.Rectangle{}, 1}, // not more than 2·2·224
		{897, 1000, image.Rectangle{}, 2},
		{3000, 4000, image.Rect(0, 0, 890, 890), 1},
		{3000, 4000, image.Rect(0, 0, 1000, 1000), 2},
	} {
		if got := tf.JPEGScale(c.w, c.h, c.box); got != c.want {
			t.Errorf("%d×%d box %v: 1/%d, want 1/%d", c.w, c.h, c.box, got, c.want)
		}
	}
	if d := RGBTransform(224).Training(DefaultAugment()).JPEGScale(4000, 3000, image.Rectangle{}); d != 1 {
		t.Errorf("training transform: 1/%d", d)
	}
	if d := (Transform{}).JPEGScale(4000, 3000, image.Rectangle{}); d != 1 {
		t.Errorf("zero Transform: 1/%d", d)
	}
}

// TestDecodeForWhole: what the reduced decoder does not take comes whole
// from the standard decoders, errors included: a PNG, a cut JPEG
// (image/jpeg's error); a done context stops it, the limits refuse what
// is past them; a file is read as DecodeFileLimited reads it.
func TestDecodeForWhole(t *testing.T) {
	tf := unitTransform(32, FitStretch)
	b := photo(t, 400, 300)
	var pb bytes.Buffer
	full, _ := Decode(b)
	if err := png.Encode(&pb, full); err != nil {
		t.Fatal(err)
	}
	img, box, err := DecodeFor(context.Background(), pb.Bytes(), DefaultDecodeLimits, tf, image.Rect(1, 2, 3, 4))
	if err != nil || img.Bounds() != image.Rect(0, 0, 400, 300) || box != image.Rect(1, 2, 3, 4) {
		t.Errorf("PNG: %v %v %v", img.Bounds(), box, err)
	}
	cut := b[:len(b)/2]
	_, _, err = DecodeFor(context.Background(), cut, DefaultDecodeLimits, tf, image.Rectangle{})
	_, want := Decode(cut)
	if err == nil || want == nil || err.Error() != want.Error() {
		t.Errorf("a cut JPEG: %v, want image/jpeg's %v", err, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := DecodeFor(ctx, b, DefaultDecodeLimits, tf, image.Rectangle{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a done context: %v", err)
	}
	path := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(path, photo(t, 900, 700), 0o644); err != nil {
		t.Fatal(err)
	}
	img, box, err = DecodeFileFor(path, DefaultDecodeLimits, unitTransform(64, FitCrop), image.Rect(8, 8, 808, 608))
	if err != nil || img.Bounds() != image.Rect(0, 0, 225, 175) || box != image.Rect(2, 2, 202, 152) {
		t.Errorf("a file at 1/4: %v %v %v", img.Bounds(), box, err)
	}
	if _, _, err := DecodeFileFor(path+".missing", DefaultDecodeLimits, tf, image.Rectangle{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	small := DecodeLimits{MaxPixels: 1000}
	if _, _, err := DecodeFor(context.Background(), b, small, tf, image.Rectangle{}); !IsLimit(err) {
		t.Errorf("past the limits: %v", err)
	}
}
