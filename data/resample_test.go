package data

import (
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/data/internal/rng"
	"golang.org/x/image/draw"
)

// blocks is a w×h picture at o of random colour blocks, 4 to 12 pixels
// a side, their edges on multiples of 4 (from the origin, not o): sharp
// edges everywhere, so that a filter off by a sample's width shows, but
// none inside a chroma sample of any subsampling, whose colours then stay
// in gamut (a conversion of YCbCr to RGB that clamps is linear on them).
func blocks(r *rng.RNG, o image.Point, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(o.X, o.Y, o.X+w, o.Y+h))
	edges := func(lo, hi int) []int {
		e := []int{lo}
		for v := lo/4*4 + 4*(1+r.IntN(3)); v < hi; v += 4 * (1 + r.IntN(3)) {
			e = append(e, v)
		}
		return append(e, hi)
	}
	ys, xs := edges(o.Y, o.Y+h), edges(o.X, o.X+w)
	for i := range len(ys) - 1 {
		for j := range len(xs) - 1 {
			c := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			for y := ys[i]; y < ys[i+1]; y++ {
				for x := xs[j]; x < xs[j+1]; x++ {
					img.SetRGBA(x, y, c)
				}
			}
		}
	}
	return img
}

// toYCbCr converts img to YCbCr at ratio, each chroma sample the mean of
// the luma pixels it covers (as an encoder would).
func toYCbCr(img *image.RGBA, ratio image.YCbCrSubsampleRatio) *image.YCbCr {
	b := img.Rect
	y := image.NewYCbCr(b, ratio)
	sums := map[int][3]int{}
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			c := img.RGBAAt(px, py)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			y.Y[y.YOffset(px, py)] = yy
			s := sums[y.COffset(px, py)]
			sums[y.COffset(px, py)] = [3]int{s[0] + int(cb), s[1] + int(cr), s[2] + 1}
		}
	}
	for off, s := range sums {
		y.Cb[off] = uint8((s[0] + s[2]/2) / s[2])
		y.Cr[off] = uint8((s[1] + s[2]/2) / s[2])
	}
	return y
}

// kernelScaled is the resampling large reductions had before shrink:
// YCbCr converted to RGBA, then x/image/draw's BiLinear kernel into 8-bit
// RGBA, as values in [0, 1].
func kernelScaled(img image.Image, src, out image.Rectangle, S int) []float32 {
	rgba := image.NewRGBA(image.Rect(0, 0, S, S))
	from := img
	if _, ok := img.(*image.RGBA); !ok {
		c := image.NewRGBA(image.Rect(0, 0, src.Dx(), src.Dy()))
		draw.Draw(c, c.Rect, img, src.Min, draw.Src)
		from, src = c, c.Rect
	}
	draw.BiLinear.Scale(rgba, out, from, src, draw.Src, nil)
	d := make([]float32, 3*S*S)
	for y := out.Min.Y; y < out.Max.Y; y++ {
		for x := out.Min.X; x < out.Max.X; x++ {
			p := rgba.Pix[y*rgba.Stride+4*x:]
			for c := range 3 {
				d[c*S*S+y*S+x] = float32(p[c]) / 255
			}
		}
	}
	return d
}

// TestShrinkMatchesKernelScaler: large reductions give what
// x/image/draw's kernel scaler gave them before (the same triangle
// filter), to within its rounding to 8 bits, on pictures of sharp-edged
// blocks: YCbCr at every subsampling (at an odd origin, whose chroma
// samples straddle it), RGBA, NRGBA with transparency, grey and
// paletted; whole, cropped at odd offsets, reduced along one axis only,
// stretched, padded and cropped to the square; output sizes of 224 and 37.
func TestShrinkMatchesKernelScaler(t *testing.T) {
	r := rng.New(11)
	var imgs []image.Image
	for _, size := range []image.Point{{700, 930}, {1000, 150}} {
		rgba := blocks(&r, image.Pt(3, 5), size.X, size.Y)
		for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
			image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
			imgs = append(imgs, toYCbCr(rgba, ratio))
		}
		imgs = append(imgs, rgba)
	}
	src := blocks(&r, image.Point{}, 640, 480)
	nrgba := image.NewNRGBA(src.Rect)
	grey := image.NewGray(src.Rect)
	pal := image.NewPaletted(src.Rect, color.Palette{color.Black, color.White, color.RGBA{200, 10, 60, 255}, color.RGBA{0, 90, 30, 255}})
	for i := range src.Pix {
		nrgba.Pix[i] = src.Pix[i]
		if i%4 == 3 {
			nrgba.Pix[i] = uint8(64 + i%192)
		}
		grey.Pix[i/4] = src.Pix[i/4*4+1]
		pal.Pix[i/4] = src.Pix[i/4*4] % 4
	}
	imgs = append(imgs, nrgba, grey, pal)
	for _, img := range imgs {
		b := img.Bounds()
		for _, box := range []image.Rectangle{b, image.Rect(b.Min.X+101, b.Min.Y+3, b.Max.X-77, b.Max.Y-1)} {
			for _, f := range []Fit{FitStretch, FitPad, FitCrop} {
				for _, S := range []int{224, 37} {
					srcR, out := fit(box, f, S)
					if srcR.Dx() <= 2*out.Dx() && srcR.Dy() <= 2*out.Dy() {
						continue
					}
					want := kernelScaled(img, srcR, out, S)
					got := make([]float32, 3*S*S)
					(&scratch{}).shrink(img, srcR, out, got, S, 3, false)
					var worst, sum float64
					for i := range got {
						d := math.Abs(float64(got[i] - want[i]))
						worst = max(worst, d)
						sum += d
					}
					mean := sum / float64(3*out.Dx()*out.Dy())
					if worst > 2.0/255 || mean > 0.5/255 {
						t.Errorf("%T %v box %v fit %v size %d: differs from the kernel scaler by %.2f/255 at most, %.2f/255 on average; want within 2 and 0.5",
							img, b, box, f, S, 255*worst, 255*mean)
					}
				}
			}
		}
	}
}

// TestShrinkFlipAndGrey: a flipped output is the unflipped one mirrored,
// and the grey transform is the luma of the colour one.
func TestShrinkFlipAndGrey(t *testing.T) {
	r := rng.New(3)
	img := toYCbCr(blocks(&r, image.Point{}, 900, 700), image.YCbCrSubsampleRatio420)
	const S = 50
	out := image.Rect(0, 0, S, S)
	plain, flipped, grey := make([]float32, 3*S*S), make([]float32, 3*S*S), make([]float32, S*S)
	(&scratch{}).shrink(img, img.Rect, out, plain, S, 3, false)
	(&scratch{}).shrink(img, img.Rect, out, flipped, S, 3, true)
	(&scratch{}).shrink(img, img.Rect, out, grey, S, 1, false)
	for c := range 3 {
		for y := range S {
			for x := range S {
				if a, b := plain[c*S*S+y*S+x], flipped[c*S*S+y*S+S-1-x]; a != b {
					t.Fatalf("channel %d (%d, %d): %v, mirrored %v", c, x, y, a, b)
				}
			}
		}
	}
	for i := range S * S {
		want := 0.299*plain[i] + 0.587*plain[S*S+i] + 0.114*plain[2*S*S+i]
		if math.Abs(float64(grey[i]-want)) > 1e-6 {
			t.Fatalf("grey pixel %d: %v, want %v", i, grey[i], want)
		}
	}
}

// TestAxisWeights: each output's weights are positive and sum to 1, lie
// within the samples allowed, and centre on the output's position.
func TestAxisWeights(t *testing.T) {
	var a axis
	for _, c := range []struct {
		out    int
		c0, c1 float64
		lo, hi int
	}{{224, 0, 1600, 0, 1600}, {224, 3.5, 600.5, 3, 601}, {50, 0, 60, 0, 60}, {7, 10, 11, 10, 11}, {37, 0, 1000, 0, 1000}} {
		a.set(c.out, c.c0, c.c1, c.lo, c.hi)
		for i := range c.out {
			ws := a.w[a.off[i] : a.off[i]+a.n[i]]
			var sum, moment float64
			for k, w := range ws {
				if w <= 0 {
					t.Fatalf("%+v output %d: weight %d is %v", c, i, k, w)
				}
				sum += float64(w)
				moment += float64(w) * (float64(a.start[i]+k) + 0.5)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Fatalf("%+v output %d: weights sum to %v", c, i, sum)
			}
			if a.start[i] < c.lo || a.start[i]+a.n[i] > c.hi {
				t.Fatalf("%+v output %d reads samples [%d, %d)", c, i, a.start[i], a.start[i]+a.n[i])
			}
			centre := c.c0 + (float64(i)+0.5)*(c.c1-c.c0)/float64(c.out)
			// Away from the ends, where clipping moves it, the weighted
			// centre is the output's.
			scale := max(1, (c.c1-c.c0)/float64(c.out))
			if centre-scale > float64(c.lo)+1 && centre+scale < float64(c.hi)-1 && math.Abs(moment-centre) > 0.1 {
				t.Fatalf("%+v output %d: centred at %v, want %v", c, i, moment, centre)
			}
		}
	}
}
