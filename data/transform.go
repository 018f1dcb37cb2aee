package data

import (
	"fmt"
	"image"
	"math"

	"github.com/dmlgo/dmlgo/data/internal/rng"
	"github.com/dmlgo/dmlgo/data/internal/ycbcr"
	"github.com/dmlgo/dmlgo/internal/parallel"
	"golang.org/x/image/draw"
)

// Fit says how an evaluation transform maps a crop of any aspect ratio onto
// the square output.
type Fit uint8

const (
	// FitStretch resizes the crop to Size x Size, ignoring its aspect ratio.
	FitStretch Fit = iota
	// FitPad scales the crop to fit inside the square and pads the rest
	// with the mean colour (0 after normalisation).
	FitPad
	// FitCrop takes the largest centred square of the crop.
	FitCrop
)

// ParseFit parses stretch, pad or crop.
func ParseFit(s string) (Fit, error) {
	switch s {
	case "stretch":
		return FitStretch, nil
	case "pad":
		return FitPad, nil
	case "crop":
		return FitCrop, nil
	}
	return 0, fmt.Errorf("fit %q is not stretch, pad or crop", s)
}

// String returns stretch, pad or crop.
func (f Fit) String() string {
	switch f {
	case FitStretch:
		return "stretch"
	case FitPad:
		return "pad"
	case FitCrop:
		return "crop"
	}
	return fmt.Sprintf("Fit(%d)", uint8(f))
}

// Transform turns a decoded image into the float32 input of the network:
// (Channels, Size, Size), normalised.
//
// # Pipeline
//
// One image goes through these steps (Transform.Apply, and the loader's
// workers for every batch):
//
//  1. region: the row's box, clamped to the image (counted when it reached
//     outside), widened by Margin on each side and clamped again;
//  2. crop: for training with Augment.Scale set, a random resized crop of
//     the region (area fraction and aspect ratio drawn from the Augment
//     ranges, as torchvision's RandomResizedCrop, falling back to a centre
//     crop); otherwise the region fitted to the square output by Fit;
//  3. resize to Size x Size with golang.org/x/image/draw (approximate
//     bilinear; the true bilinear kernel when shrinking more than 2x, which
//     filters instead of aliasing);
//  4. to float in [0, 1], greyscale as 0.299 R + 0.587 G + 0.114 B when
//     Channels is 1, mirrored with probability Augment.Flip;
//  5. colour jitter (training): brightness and contrast as one affine map
//     around the mean grey of the crop, then saturation around each pixel's
//     grey, each factor uniform in [1-a, 1+a], then clamped to [0, 1];
//  6. normalised per channel: (v - Mean[c]) / Std[c]. Padding (FitPad) is 0,
//     the mean colour.
type Transform struct {
	// Size is the output height and width.
	Size int
	// Channels is 1 (greyscale) or 3 (RGB).
	Channels int
	// Mean and Std normalise each channel: (v - Mean[c]) / Std[c] with v in
	// [0, 1]. Only the first Channels entries are used.
	Mean, Std [3]float32
	// Margin widens the bounding box by this fraction of its width and
	// height on each side before cropping (0.1 = 10%).
	Margin float64
	// Fit maps the crop onto the square output when not augmenting.
	Fit Fit
	// Augment, when non-nil, adds training augmentation.
	Augment *Augment
}

// Augment is the training augmentation of a Transform.
type Augment struct {
	// Scale is the range of the area fraction of a random resized crop of
	// the region; the zero value disables the random crop.
	Scale [2]float64
	// Ratio is the range of the crop's aspect ratio (width/height), drawn
	// log-uniformly; the zero value means [3/4, 4/3].
	Ratio [2]float64
	// Flip is the probability of a horizontal flip.
	Flip float64
	// Brightness, Contrast and Saturation are colour jitter strengths: each
	// factor is uniform in [1-a, 1+a] (0 disables).
	Brightness, Contrast, Saturation float64
}

// ImageNet's per-channel mean and standard deviation (RGB), which
// torchvision-trained weights expect.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// GreyTransform returns a greyscale Size x Size evaluation transform
// normalised with mean 0.5 and std 0.5, so pixels map to [-1, 1]. It is the
// FMNIST-C2S transform at size 32.
func GreyTransform(size int) Transform {
	return Transform{Size: size, Channels: 1, Mean: [3]float32{0.5}, Std: [3]float32{0.5, 1, 1}}
}

// RGBTransform returns an RGB Size x Size evaluation transform with
// ImageNet normalisation, stretching the (box) crop to the square.
func RGBTransform(size int) Transform {
	return Transform{Size: size, Channels: 3, Mean: ImageNetMean, Std: ImageNetStd}
}

// DefaultAugment is a moderate training augmentation: random resized crop of
// 50-100% of the area with aspect ratio 3/4..4/3, horizontal flip half the
// time, brightness, contrast and saturation jitter of 0.2.
func DefaultAugment() *Augment {
	return &Augment{Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, Flip: 0.5,
		Brightness: 0.2, Contrast: 0.2, Saturation: 0.2}
}

// Training returns a copy of t with augmentation a.
func (t Transform) Training(a *Augment) Transform {
	t.Augment = a
	return t
}

// Len is the number of floats of one output image, Channels*Size*Size.
func (t Transform) Len() int { return t.Channels * t.Size * t.Size }

// Validate checks the transform's settings.
func (t Transform) Validate() error {
	switch {
	case t.Size <= 0:
		return fmt.Errorf("data: transform size %d must be positive", t.Size)
	case t.Channels != 1 && t.Channels != 3:
		return fmt.Errorf("data: transform channels %d must be 1 or 3", t.Channels)
	case t.Margin < 0 || t.Margin > 2:
		return fmt.Errorf("data: transform margin %g must be in [0, 2]", t.Margin)
	case t.Fit > FitCrop:
		return fmt.Errorf("data: unknown fit %d", t.Fit)
	}
	for c := 0; c < t.Channels; c++ {
		if !(t.Std[c] > 0) {
			return fmt.Errorf("data: transform std[%d] = %g must be positive", c, t.Std[c])
		}
	}
	if a := t.Augment; a != nil {
		if a.Scale != [2]float64{} && !(a.Scale[0] > 0 && a.Scale[0] <= a.Scale[1] && a.Scale[1] <= 1) {
			return fmt.Errorf("data: augment scale %v must satisfy 0 < lo <= hi <= 1", a.Scale)
		}
		if a.Ratio != [2]float64{} && !(a.Ratio[0] > 0 && a.Ratio[0] <= a.Ratio[1]) {
			return fmt.Errorf("data: augment ratio %v must satisfy 0 < lo <= hi", a.Ratio)
		}
		if a.Flip < 0 || a.Flip > 1 {
			return fmt.Errorf("data: augment flip probability %g must be in [0, 1]", a.Flip)
		}
		for _, v := range []float64{a.Brightness, a.Contrast, a.Saturation} {
			if v < 0 || v > 1 {
				return fmt.Errorf("data: colour jitter strength %g must be in [0, 1]", v)
			}
		}
	}
	return nil
}

// Box outcomes of region.
const (
	boxOK = iota
	boxClamped
	boxOutside
)

// scratch holds one worker's reusable buffers.
type scratch struct {
	rgba    *image.RGBA     // the S x S output
	crop    *image.RGBA     // a YCbCr crop converted to RGBA
	shrunk  shrinkScratch   // shrink's buffers
	bil     bilinearScratch // the direct bilinear path's two axes
	threads int             // goroutines for the row bands of one image (≤ 1: the caller's)
}

// bands runs f on the rows [y0, y1) of r cut into up to threads bands of
// at least 16 rows, on as many goroutines.
func bands(r image.Rectangle, threads int, f func(y0, y1 int)) {
	numberedBands(r, threads, func(_, y0, y1 int) { f(y0, y1) })
}

// numberedBands is bands, telling f which band (0, 1, …) it has.
func numberedBands(r image.Rectangle, threads int, f func(band, y0, y1 int)) {
	n := max(1, min(threads, r.Dy()/16))
	parallel.For(n, n, func(_, i int) {
		f(i, r.Min.Y+i*r.Dy()/n, r.Min.Y+(i+1)*r.Dy()/n)
	})
}

// convertBands converts the YCbCr pixels from at into crop, in bands of
// rows on up to threads goroutines (each pixel on its own: bit for bit
// one draw.Draw; data/internal/ycbcr: in AVX2 where the CPU has it).
func convertBands(crop *image.RGBA, ycc *image.YCbCr, at image.Point, threads int) {
	bands(crop.Rect, threads, func(y0, y1 int) {
		band := image.Rect(0, y0, crop.Rect.Dx(), y1)
		ycbcr.Draw(crop, band, ycc, at.Add(band.Min))
	})
}

// resample is apply's resampling of the crop src of from onto out in
// rgba, then into dst's floats (Channels, Size, Size), mirrored when
// flip.
type resample struct {
	interp         draw.Interpolator
	rgba           *image.RGBA
	from           image.Image
	src, out       image.Rectangle
	dst            []float32
	size, channels int
	flip           bool
}

// rows does the rows [y0, y1) of out. Each output pixel depends on out
// and src alone, so rows done apart are bit for bit rows done together.
func (r *resample) rows(y0, y1 int) {
	S, plane := r.size, r.size*r.size
	dst := r.rgba
	if y0 != r.out.Min.Y || y1 != r.out.Max.Y {
		dst = r.rgba.SubImage(image.Rect(r.out.Min.X, y0, r.out.Max.X, y1)).(*image.RGBA)
	}
	r.interp.Scale(dst, r.out, r.from, r.src, draw.Src, nil)
	pix, stride := r.rgba.Pix, r.rgba.Stride
	for y := y0; y < y1; y++ {
		for x := r.out.Min.X; x < r.out.Max.X; x++ {
			p := pix[y*stride+4*x : y*stride+4*x+3 : y*stride+4*x+3]
			i := y*S + x
			if r.flip {
				i = y*S + S - 1 - x
			}
			rv, gv, bv := float32(p[0])*(1.0/255), float32(p[1])*(1.0/255), float32(p[2])*(1.0/255)
			if r.channels == 1 {
				r.dst[i] = 0.299*rv + 0.587*gv + 0.114*bv
			} else {
				r.dst[i], r.dst[plane+i], r.dst[2*plane+i] = rv, gv, bv
			}
		}
	}
}

// resampleBands is r.rows over all of r.out, in bands of rows on up to
// threads goroutines.
func resampleBands(r resample, threads int) {
	bands(r.out, threads, r.rows)
}

// growRGBA returns an RGBA image of w x h at the origin, reusing old's
// pixels when they suffice.
func growRGBA(old *image.RGBA, w, h int) *image.RGBA {
	if old != nil && cap(old.Pix) >= 4*w*h {
		return &image.RGBA{Pix: old.Pix[:4*w*h], Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
	}
	return image.NewRGBA(image.Rect(0, 0, w, h))
}

// Apply transforms img (cropped to box unless box is the zero rectangle)
// into dst, which must hold Len() floats laid out (Channels, Size, Size).
// When t has augmentation, seed drives every random choice, so the same
// seed gives the same output. A box reaching outside the image is clamped
// and counted in w (which may be nil).
func (t Transform) Apply(dst []float32, img image.Image, box image.Rectangle, seed uint64, w *Warnings) {
	t.ApplyOn(dst, img, box, seed, w, 1)
}

// ApplyOn is Apply on up to threads goroutines: the colour conversion and
// resampling of a photo split by rows, for a caller with one image and
// idle cores (a search service's upload). The result is bit for bit
// Apply's.
func (t Transform) ApplyOn(dst []float32, img image.Image, box image.Rectangle, seed uint64, w *Warnings, threads int) {
	if len(dst) != t.Len() {
		panic(fmt.Sprintf("data: Transform.Apply: dst has %d floats, want %d", len(dst), t.Len()))
	}
	r := rng.New(seed)
	switch t.apply(dst, img, box, &r, &scratch{threads: threads}) {
	case boxClamped:
		w.Add(WarnBoxClamped, fmt.Sprint(box))
	case boxOutside:
		w.Add(WarnBoxEmpty, fmt.Sprint(box))
	}
}

// Image returns the evaluation transform of img (no augmentation even if t
// has some): a new (Channels, Size, Size) slice.
func (t Transform) Image(img image.Image, box image.Rectangle) []float32 {
	e := t
	e.Augment = nil
	dst := make([]float32, e.Len())
	e.Apply(dst, img, box, 0, nil)
	return dst
}

// region returns the part of the image the transform looks at.
func (t *Transform) region(b, box image.Rectangle) (image.Rectangle, int) {
	if box == (image.Rectangle{}) {
		return b, boxOK
	}
	status := boxOK
	reg := box.Intersect(b)
	if reg != box {
		status = boxClamped
	}
	if reg.Empty() {
		return b, boxOutside
	}
	if t.Margin > 0 {
		mx := int(math.Round(t.Margin * float64(reg.Dx())))
		my := int(math.Round(t.Margin * float64(reg.Dy())))
		reg = image.Rect(reg.Min.X-mx, reg.Min.Y-my, reg.Max.X+mx, reg.Max.Y+my).Intersect(b)
	}
	return reg, status
}

// apply is Apply with the generator and scratch given. It returns the box
// outcome. r must be non-nil when t.Augment is.
//
// dst: (C, S, S) with C = t.Channels, S = t.Size.
func (t *Transform) apply(dst []float32, img image.Image, box image.Rectangle, r *rng.RNG, sc *scratch) int {
	S, C := t.Size, t.Channels
	reg, status := t.region(img.Bounds(), box)
	if reg.Empty() { // a 0 x 0 image: nothing to show
		clear(dst)
		return status
	}

	// Geometry and random draws, in a fixed order.
	src := reg
	out := image.Rect(0, 0, S, S)
	flip := false
	bf, cf, sf := 1.0, 1.0, 1.0
	if a := t.Augment; a != nil {
		if a.Scale != [2]float64{} {
			src = randomResizedCrop(reg, a, r)
		} else {
			src, out = fit(reg, t.Fit, S)
		}
		flip = r.Bool(a.Flip)
		bf = 1 + r.Symmetric(a.Brightness)
		cf = 1 + r.Symmetric(a.Contrast)
		sf = 1 + r.Symmetric(a.Saturation)
	} else {
		src, out = fit(reg, t.Fit, S)
	}

	// Resize into [0, 1] floats, (C, S, S).
	plane := S * S
	clear(dst)
	col := func(x int) int {
		if flip {
			return S - 1 - x
		}
		return x
	}
	if g, ok := img.(*image.Gray); ok && src.Dx() == out.Dx() && src.Dy() == out.Dy() {
		// Same size, greyscale source (FMNIST-C2S): no resampling.
		for y := 0; y < out.Dy(); y++ {
			row := g.Pix[g.PixOffset(src.Min.X, src.Min.Y+y):]
			oy := out.Min.Y + y
			for x := 0; x < out.Dx(); x++ {
				v := float32(row[x]) * (1.0 / 255)
				i := oy*S + col(out.Min.X+x)
				for c := 0; c < C; c++ {
					dst[c*plane+i] = v
				}
			}
		}
	} else {
		if src.Dx() > 2*out.Dx() || src.Dy() > 2*out.Dy() {
			sc.shrink(img, src, out, dst, S, C, flip)
			finish(dst, C, S, out, flip, t.Mean, t.Std, float32(bf), float32(cf), float32(sf))
			return status
		}
		if sc.rgba == nil || sc.rgba.Rect.Dx() != S || sc.rgba.Rect.Dy() != S {
			sc.rgba = image.NewRGBA(image.Rect(0, 0, S, S))
		}
		var interp draw.Interpolator = draw.ApproxBiLinear
		from := img
		if ycc, ok := img.(*image.YCbCr); ok {
			// Converting the crop to RGBA first (the standard library's
			// fast path) and then resampling RGBA is about 15% faster
			// than resampling YCbCr, which converts every tap.
			sc.crop = growRGBA(sc.crop, src.Dx(), src.Dy())
			if sc.threads > 1 {
				convertBands(sc.crop, ycc, src.Min, sc.threads)
			} else {
				ycbcr.Draw(sc.crop, sc.crop.Rect, ycc, src.Min)
			}
			from, src = sc.crop, sc.crop.Rect
		}
		if rgba, ok := bilinearFits(from, src, out); ok && interp == draw.ApproxBiLinear && directBilinear {
			sc.bil.x.set(out.Dx(), src.Min.X, src.Dx())
			sc.bil.y.set(out.Dy(), src.Min.Y, src.Dy())
			sc.bil.reserve(max(1, sc.threads))
			rows := func(band, y0, y1 int) { bilinearRows(&sc.bil, band, rgba, out, dst, S, C, flip, y0, y1) }
			if sc.threads > 1 {
				numberedBands(out, sc.threads, rows)
			} else {
				rows(0, out.Min.Y, out.Max.Y)
			}
			finish(dst, C, S, out, flip, t.Mean, t.Std, float32(bf), float32(cf), float32(sf))
			return status
		}
		rs := resample{interp: interp, rgba: sc.rgba, from: from, src: src, out: out, dst: dst, size: S, channels: C, flip: flip}
		// The kernel interpolator (large reductions) would resample every
		// source row horizontally for each band: it runs whole.
		if sc.threads > 1 && interp == draw.ApproxBiLinear {
			resampleBands(rs, sc.threads)
		} else {
			rs.rows(out.Min.Y, out.Max.Y)
		}
	}

	finish(dst, C, S, out, flip, t.Mean, t.Std, float32(bf), float32(cf), float32(sf))
	return status
}

// finish applies colour jitter and normalisation in one pass over the
// pixels of dst (C, S, S) inside out (mirrored when flip); the padding
// stays 0. Brightness bf and contrast cf form one affine map around the
// mean grey m of the crop: v' = (bf·v - bf·m)·cf + bf·m; saturation sf then
// moves each pixel away from (or towards) its own grey; the result is
// clamped to [0, 1] before normalisation.
func finish(dst []float32, C, S int, out image.Rectangle, flip bool, mean, std [3]float32, bf, cf, sf float32) {
	plane := S * S
	x0, x1 := out.Min.X, out.Max.X
	if flip {
		x0, x1 = S-out.Max.X, S-out.Min.X
	}
	var inv [3]float32
	for c := 0; c < C; c++ {
		inv[c] = 1 / std[c]
	}
	if bf == 1 && cf == 1 && sf == 1 {
		for c := 0; c < C; c++ {
			for y := out.Min.Y; y < out.Max.Y; y++ {
				row := dst[c*plane+y*S+x0 : c*plane+y*S+x1]
				for i, v := range row {
					row[i] = (v - mean[c]) * inv[c]
				}
			}
		}
		return
	}
	// Mean grey of the crop.
	var sum float64
	for y := out.Min.Y; y < out.Max.Y; y++ {
		var rs float32
		for i := y*S + x0; i < y*S+x1; i++ {
			if C == 1 {
				rs += dst[i]
			} else {
				rs += 0.299*dst[i] + 0.587*dst[plane+i] + 0.114*dst[2*plane+i]
			}
		}
		sum += float64(rs)
	}
	m := bf * float32(sum/float64(out.Dx()*out.Dy()))
	a, b := bf*cf, m*(1-cf)
	for y := out.Min.Y; y < out.Max.Y; y++ {
		for i := y*S + x0; i < y*S+x1; i++ {
			if C == 1 {
				dst[i] = (clamp01(a*dst[i]+b) - mean[0]) * inv[0]
				continue
			}
			r, g, bl := a*dst[i]+b, a*dst[plane+i]+b, a*dst[2*plane+i]+b
			if sf != 1 {
				grey := 0.299*r + 0.587*g + 0.114*bl
				r, g, bl = (r-grey)*sf+grey, (g-grey)*sf+grey, (bl-grey)*sf+grey
			}
			dst[i] = (clamp01(r) - mean[0]) * inv[0]
			dst[plane+i] = (clamp01(g) - mean[1]) * inv[1]
			dst[2*plane+i] = (clamp01(bl) - mean[2]) * inv[2]
		}
	}
}

func clamp01(v float32) float32 { return min(max(v, 0), 1) }

// fit returns the source and destination rectangles that map reg onto an
// S x S output by f.
func fit(reg image.Rectangle, f Fit, S int) (src, out image.Rectangle) {
	W, H := reg.Dx(), reg.Dy()
	out = image.Rect(0, 0, S, S)
	switch f {
	case FitCrop:
		side := min(W, H)
		x := reg.Min.X + (W-side)/2
		y := reg.Min.Y + (H-side)/2
		return image.Rect(x, y, x+side, y+side), out
	case FitPad:
		scale := float64(S) / float64(max(W, H))
		dw := max(1, min(S, int(math.Round(float64(W)*scale))))
		dh := max(1, min(S, int(math.Round(float64(H)*scale))))
		x, y := (S-dw)/2, (S-dh)/2
		return reg, image.Rect(x, y, x+dw, y+dh)
	}
	return reg, out
}

// randomResizedCrop picks a crop of reg whose area fraction is uniform in
// a.Scale and whose aspect ratio is log-uniform in a.Ratio, trying ten times
// before falling back to the largest centred crop within the ratio range.
func randomResizedCrop(reg image.Rectangle, a *Augment, r *rng.RNG) image.Rectangle {
	W, H := reg.Dx(), reg.Dy()
	lo, hi := a.Ratio[0], a.Ratio[1]
	if a.Ratio == [2]float64{} {
		lo, hi = 3.0/4, 4.0/3
	}
	area := float64(W * H)
	for attempt := 0; attempt < 10; attempt++ {
		target := area * r.Uniform(a.Scale[0], a.Scale[1])
		ratio := math.Exp(r.Uniform(math.Log(lo), math.Log(hi)))
		w := int(math.Round(math.Sqrt(target * ratio)))
		h := int(math.Round(math.Sqrt(target / ratio)))
		if w > 0 && h > 0 && w <= W && h <= H {
			x := reg.Min.X + r.IntN(W-w+1)
			y := reg.Min.Y + r.IntN(H-h+1)
			return image.Rect(x, y, x+w, y+h)
		}
	}
	w, h := W, H
	if in := float64(W) / float64(H); in < lo {
		h = max(1, int(math.Round(float64(w)/lo)))
	} else if in > hi {
		w = max(1, int(math.Round(float64(h)*hi)))
	}
	x := reg.Min.X + (W-w)/2
	y := reg.Min.Y + (H-h)/2
	return image.Rect(x, y, x+w, y+h)
}
