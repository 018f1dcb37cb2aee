package data

import (
	"image"
	"math"

	"golang.org/x/image/draw"
)

// Large reductions (a photo of 1200×1600 to 224×224): a triangle filter
// as wide as the reduction, one axis at a time, on each 8-bit plane of
// the image, in float32 straight into the transform's output. A JPEG's
// Y, Cb and Cr planes are filtered at their own resolutions (the chroma
// at a half or a quarter of the luma's) and converted to RGB only at the
// output's 224×224 pixels, where converting every pixel of the photo to
// RGBA first and filtering that took 3 times as long (x/image/draw's
// kernel scaler, which this replaces: the same filter, centred and
// normalised the same way, summed in float32 without its rounding to 8
// bits). RGBA images have their R, G and B planes filtered; other images
// are converted to RGBA first (their crop only).

// axis is the filter of one axis: output i is the sum over t < n[i] of
// w[off[i]+t] · sample start[i]+t, the weights summing to 1.
type axis struct {
	start, n, off []int
	w             []float32
}

// set makes the filter for out outputs spread evenly over the continuous
// source interval [c0, c1) (in samples: sample i covers [i, i+1)), reading
// only samples in [lo, hi). Each output's weights are the triangle
// 1 − |d|/r around its centre, with r the larger of 1 and the samples per
// output, so that a reduction averages every sample it covers and an
// enlargement interpolates linearly between the two nearest.
func (a *axis) set(out int, c0, c1 float64, lo, hi int) {
	a.start, a.n, a.off = resize(a.start, out), resize(a.n, out), resize(a.off, out)
	a.w = a.w[:0]
	scale := (c1 - c0) / float64(out)
	r := max(scale, 1)
	for i := range out {
		centre := c0 + (float64(i)+0.5)*scale - 0.5 // in sample indices
		first := max(lo, int(math.Floor(centre-r))+1)
		last := min(hi-1, int(math.Ceil(centre+r))-1)
		a.off[i] = len(a.w)
		var total float64
		for s := first; s <= last; s++ {
			total += max(0, 1-math.Abs(centre-float64(s))/r)
		}
		if total <= 0 {
			// Only past the samples (a crop of one sample's width): the
			// nearest one.
			s := min(max(int(math.Round(centre)), lo), hi-1)
			a.start[i], a.n[i] = s, 1
			a.w = append(a.w, 1)
			continue
		}
		// Leading and trailing zero weights are dropped.
		for first < last && 1-math.Abs(centre-float64(first))/r <= 0 {
			first++
		}
		for last > first && 1-math.Abs(centre-float64(last))/r <= 0 {
			last--
		}
		a.start[i], a.n[i] = first, last-first+1
		for s := first; s <= last; s++ {
			a.w = append(a.w, float32(max(0, 1-math.Abs(centre-float64(s))/r)/total))
		}
	}
}

// fold sets a to the filter luma gives a plane subsampled by f: sample j
// of the plane stands for the luma samples x (counted from min, the
// image's first) with ⌊(x+min)/f⌋ = j + ⌊min/f⌋, and its weight is the sum
// of theirs.
func (a *axis) fold(luma *axis, min, f int) {
	out := len(luma.n)
	a.start, a.n, a.off = resize(a.start, out), resize(a.n, out), resize(a.off, out)
	a.w = a.w[:0]
	m := min / f
	for i := range out {
		a.off[i] = len(a.w)
		a.start[i] = (luma.start[i]+min)/f - m
		for t, w := range luma.w[luma.off[i] : luma.off[i]+luma.n[i]] {
			j := (luma.start[i]+t+min)/f - m - a.start[i]
			if j == len(a.w)-a.off[i] {
				a.w = append(a.w, 0)
			}
			a.w[a.off[i]+j] += w
		}
		a.n[i] = len(a.w) - a.off[i]
	}
}

// plane is one 8-bit channel of an image: sample (x, y) at
// pix[y*stride+x*step].
type plane struct {
	pix          []byte
	stride, step int
	h, v         *axis // its filters across and down
}

// rows filters the output rows [y0, y1) of p into out (rows of len(p.h.n)
// values, the first at out[0]), the source rows' horizontal sums going
// through tmp (grown as needed and returned).
func (p *plane) rows(y0, y1 int, out, tmp []float32) []float32 {
	w := len(p.h.n)
	r0 := p.v.start[y0]
	r1 := r0
	for y := y0; y < y1; y++ {
		r1 = max(r1, p.v.start[y]+p.v.n[y])
	}
	tmp = resize(tmp, (r1-r0)*w)
	for r := r0; r < r1; r++ {
		p.horizontal(p.pix[r*p.stride:], tmp[(r-r0)*w:(r-r0+1)*w])
	}
	for y := y0; y < y1; y++ {
		o := out[(y-y0)*w : (y-y0+1)*w]
		ws := p.v.w[p.v.off[y] : p.v.off[y]+p.v.n[y]]
		first := tmp[(p.v.start[y]-r0)*w:][:w]
		wt := ws[0]
		for x, v := range first {
			o[x] = wt * v
		}
		for t, wt := range ws[1:] {
			row := tmp[(p.v.start[y]+1+t-r0)*w:][:w]
			for x, v := range row {
				o[x] += wt * v
			}
		}
	}
	return tmp
}

// horizontal filters one source row (row[x*step] is sample x) into out.
func (p *plane) horizontal(row []byte, out []float32) {
	h, step := p.h, p.step
	for x := range out {
		s, n := h.start[x], h.n[x]
		ws := h.w[h.off[x] : h.off[x]+n]
		var acc float32
		if step == 1 {
			src := row[s : s+n]
			for t, wt := range ws {
				acc += wt * float32(src[t])
			}
		} else {
			src := row[s*step : (s+n-1)*step+1]
			for t, wt := range ws {
				acc += wt * float32(src[t*step])
			}
		}
		out[x] = acc
	}
}

// shrink is apply's resampling for large reductions: the crop src of img
// onto out in dst (Channels, Size, Size), mirrored when flip, as values
// in [0, 1]. threads > 1 splits the output rows into bands.
func (sc *scratch) shrink(img image.Image, src, out image.Rectangle, dst []float32, S, C int, flip bool) {
	sh := &sc.shrunk
	ow, oh := out.Dx(), out.Dy()
	ycc, isYCC := img.(*image.YCbCr)
	luma, chroma := &sh.axes[0], &sh.axes[1]
	if isYCC {
		hx, hy := chromaFactors(ycc.SubsampleRatio)
		b := ycc.Rect
		luma[0].set(ow, float64(src.Min.X-b.Min.X), float64(src.Max.X-b.Min.X), src.Min.X-b.Min.X, src.Max.X-b.Min.X)
		luma[1].set(oh, float64(src.Min.Y-b.Min.Y), float64(src.Max.Y-b.Min.Y), src.Min.Y-b.Min.Y, src.Max.Y-b.Min.Y)
		// Chroma sample j covers the luma samples x with ⌊x/h⌋ = j +
		// ⌊b.Min/h⌋ (as the conversion to RGBA reads it): its weight is
		// theirs summed. Cb and Cr share the filter.
		chroma[0].fold(&luma[0], b.Min.X, hx)
		chroma[1].fold(&luma[1], b.Min.Y, hy)
		sh.planes[0] = plane{pix: ycc.Y, stride: ycc.YStride, step: 1, h: &luma[0], v: &luma[1]}
		sh.planes[1] = plane{pix: ycc.Cb, stride: ycc.CStride, step: 1, h: &chroma[0], v: &chroma[1]}
		sh.planes[2] = plane{pix: ycc.Cr, stride: ycc.CStride, step: 1, h: &chroma[0], v: &chroma[1]}
	} else {
		// RGBA (alpha premultiplied, as draw keeps it; other images'
		// crops converted): its R, G and B planes, under one filter.
		rgba, ok := img.(*image.RGBA)
		at := src.Min
		if !ok {
			sc.crop = growRGBA(sc.crop, src.Dx(), src.Dy())
			draw.Draw(sc.crop, sc.crop.Rect, img, src.Min, draw.Src)
			rgba, at = sc.crop, image.Point{}
		}
		luma[0].set(ow, 0, float64(src.Dx()), 0, src.Dx())
		luma[1].set(oh, 0, float64(src.Dy()), 0, src.Dy())
		o := rgba.PixOffset(at.X, at.Y)
		for c := range 3 {
			sh.planes[c] = plane{pix: rgba.Pix[o+c:], stride: rgba.Stride, step: 4, h: &luma[0], v: &luma[1]}
		}
	}
	for c := range sh.out {
		sh.out[c] = resize(sh.out[c], ow*oh)
	}
	if sc.threads > 1 && oh >= 32 {
		bands(image.Rect(0, 0, ow, oh), sc.threads, func(y0, y1 int) {
			sc.shrinkRows(y0, y1, out, dst, S, C, flip, isYCC, nil)
		})
		return
	}
	sh.tmp = sc.shrinkRows(0, oh, out, dst, S, C, flip, isYCC, sh.tmp)
}

// shrinkRows filters the output rows [y0, y1) of each plane and stores
// them in dst, the source rows' horizontal sums going through tmp (grown
// as needed and returned).
func (sc *scratch) shrinkRows(y0, y1 int, out image.Rectangle, dst []float32, S, C int, flip, ycc bool, tmp []float32) []float32 {
	sh := &sc.shrunk
	ow := out.Dx()
	for c := range sh.planes {
		tmp = sh.planes[c].rows(y0, y1, sh.out[c][y0*ow:y1*ow], tmp)
	}
	sc.shrinkStore(y0, y1, out, dst, S, C, flip, ycc)
	return tmp
}

// shrinkStore writes the output rows [y0, y1) (of out's height) from the
// filtered planes into dst: R, G and B (from Y, Cb and Cr by JFIF's
// conversion, clamped to [0, 255], when ycc), or their grey when C is 1,
// as values in [0, 1].
func (sc *scratch) shrinkStore(y0, y1 int, out image.Rectangle, dst []float32, S, C int, flip, ycc bool) {
	sh := &sc.shrunk
	ow := out.Dx()
	pl := S * S
	for y := y0; y < y1; y++ {
		p0, p1, p2 := sh.out[0][y*ow:(y+1)*ow], sh.out[1][y*ow:(y+1)*ow], sh.out[2][y*ow:(y+1)*ow]
		for x := range ow {
			r, g, b := p0[x], p1[x], p2[x]
			if ycc {
				yy, cb, cr := r, g-128, b-128
				r = min(max(yy+1.402*cr, 0), 255)
				g = min(max(yy-0.344136*cb-0.714136*cr, 0), 255)
				b = min(max(yy+1.772*cb, 0), 255)
			}
			ox := out.Min.X + x
			if flip {
				ox = S - 1 - ox
			}
			i := (out.Min.Y+y)*S + ox
			if C == 1 {
				dst[i] = (0.299*r + 0.587*g + 0.114*b) * (1.0 / 255)
			} else {
				dst[i], dst[pl+i], dst[2*pl+i] = r*(1.0/255), g*(1.0/255), b*(1.0/255)
			}
		}
	}
}

// shrinkScratch is what shrink keeps between images.
type shrinkScratch struct {
	planes [3]plane
	axes   [2][2]axis // the filters across and down: luma (or RGB), chroma
	out    [3][]float32
	tmp    []float32
}

// chromaFactors are the luma samples per chroma sample across and down.
func chromaFactors(r image.YCbCrSubsampleRatio) (hx, hy int) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 2, 1
	case image.YCbCrSubsampleRatio420:
		return 2, 2
	case image.YCbCrSubsampleRatio440:
		return 1, 2
	case image.YCbCrSubsampleRatio411:
		return 4, 1
	case image.YCbCrSubsampleRatio410:
		return 4, 2
	}
	return 1, 1
}
