package data

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"

	"github.com/dmlgo/dmlgo/data/internal/jpegscale"
)

// Decoding for a transform: a photo of 1200×1600 that becomes 224×224
// need not be decoded whole. A baseline JPEG is decoded at a half, a
// quarter or an eighth of its size (each 8×8 block's lowest frequencies
// alone, data/internal/jpegscale) when the transform still shrinks the
// smaller image by more than twice on both axes, so that what reaches
// the network is filtered as before (resample.go) from a picture four to
// sixty-four times smaller. The other JPEGs it takes are decoded whole
// by it too (image/jpeg's bytes, three times as fast); JPEGs it does not
// take (arithmetic coding, CMYK, a damaged file) and every other format
// are decoded by the standard library, as DecodeLimited does.

// JPEGScale is the scale 1/d (d = 1, 2, 4 or 8) at which DecodeFor
// decodes a baseline JPEG of w×h displayed pixels (after EXIF
// orientation) for t to transform the region box of it (the zero
// rectangle: all of it): the largest d at which t still shrinks the
// region by more than 2 on both axes; 1 for a transform with
// augmentation, whose random crops are drawn from the full image, and
// for the zero Transform (no size: decode whole).
func (t Transform) JPEGScale(w, h int, box image.Rectangle) int {
	if t.Augment != nil || t.Size <= 0 || w <= 0 || h <= 0 {
		return 1
	}
	reg, _ := t.region(image.Rect(0, 0, w, h), box)
	src, out := fit(reg, t.Fit, t.Size)
	for _, d := range []int{8, 4, 2} {
		if src.Dx() > 2*d*out.Dx() && src.Dy() > 2*d*out.Dy() {
			return d
		}
	}
	return 1
}

// scaleBox is box in the pixels of an image decoded at 1/d: each edge
// divided by d, rounded to the nearest.
func scaleBox(box image.Rectangle, d int) image.Rectangle {
	if d == 1 || box == (image.Rectangle{}) {
		return box
	}
	f := func(v int) int { return int(math.Round(float64(v) / float64(d))) }
	return image.Rect(f(box.Min.X), f(box.Min.Y), f(box.Max.X), f(box.Max.Y))
}

// DecodeFor decodes b within l, as DecodeLimited does, for t to
// transform the region box of it, and returns the image and the box to
// give t (box in the image's pixels): a baseline JPEG at JPEGScale's
// scale, anything else whole. The image is meant for t (or a transform
// that shrinks it as much): at a reduced scale it holds fewer pixels
// than the file.
func DecodeFor(ctx context.Context, b []byte, l DecodeLimits, t Transform, box image.Rectangle) (image.Image, image.Rectangle, error) {
	c, err := DecodeCost(b)
	if err != nil {
		return nil, box, err
	}
	if err := l.Check(c); err != nil {
		return nil, box, err
	}
	if c.Format == "jpeg" {
		o := JPEGOrientation(b)
		w, h := c.Width, c.Height
		if o >= 5 {
			w, h = h, w
		}
		if d := t.JPEGScale(w, h, box); d > 1 {
			img, ok, err := decodeJPEG(ctx, b, c, d, o)
			if err != nil {
				return nil, box, err
			}
			if ok {
				return img, scaleBox(box, d), nil
			}
		}
	}
	img, err := decodeChecked(ctx, b, c)
	return img, box, err
}

// decodeJPEG decodes the JPEG b, whose cost c was checked, through
// jpegscale at scale 1/d, with its EXIF orientation o applied. ok is false,
// with no error, for a file jpegscale does not take: the caller decodes
// it some other way. The errors are ctx's, and that of a file no decoder
// should take the time for.
func decodeJPEG(ctx context.Context, b []byte, c Cost, d, o int) (img image.Image, ok bool, err error) {
	var check func() error
	if ctx.Done() != nil {
		check = ctx.Err
	}
	img, err = jpegscale.Decode(b, d, int64(c.Width)*int64(c.Height), check)
	switch {
	case err == nil:
		return Orient(img, o), true, nil
	case errors.Is(err, jpegscale.ErrUnsupported):
		return nil, false, nil
	}
	return nil, false, err
}

// DecodeFileFor is DecodeFor for a file, as DecodeFileLimited reads it;
// errors name the file.
func DecodeFileFor(path string, l DecodeLimits, t Transform, box image.Rectangle) (image.Image, image.Rectangle, error) {
	b, err := readLimited(path, l)
	if err != nil {
		return nil, box, err
	}
	img, box, err := DecodeFor(context.Background(), b, l, t, box)
	if err != nil {
		return nil, box, fmt.Errorf("%s: %w", path, err)
	}
	return img, box, nil
}
