// Package ycbcr converts a JPEG's YCbCr pixels to RGBA as draw.Draw does
// (the standard library's conversion, color.YCbCrToRGB's integer
// arithmetic), bit for bit, eight pixels at a time in AVX2 where the CPU
// has it: the transform converts a JPEG's crop to RGBA before its small
// reductions and enlargements (data/transform.go), where draw's
// conversion took a third of the time.
package ycbcr

import (
	"image"
	"image/color"
	"image/draw"
)

// rowKernel converts n pixels of one row: Y from y, Cb and Cr from cb and
// cr (one sample a pixel, or, when half, one for each two pixels, the
// first two sharing the first), RGBA into dst. Nil where the CPU has
// none; it converts whole groups of eight and returns how many pixels it
// did.
var rowKernel func(dst, y, cb, cr []byte, n int, half bool) int

// Draw converts the pixels of src from sp into the rectangle r of dst:
// draw.Draw(dst, r, src, sp, draw.Src), bit for bit. The rows are
// converted here where the kernel takes them (4:4:4, 4:2:2, 4:2:0 and
// 4:4:0, coordinates from 0, r inside dst and its source inside src);
// anything else is draw's.
func Draw(dst *image.RGBA, r image.Rectangle, src *image.YCbCr, sp image.Point) {
	hx, hy := 0, 0
	switch src.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
	case image.YCbCrSubsampleRatio422:
		hx = 1
	case image.YCbCrSubsampleRatio420:
		hx, hy = 1, 1
	case image.YCbCrSubsampleRatio440:
		hy = 1
	default:
		hx = -1
	}
	sr := r.Sub(r.Min).Add(sp)
	if rowKernel == nil || hx < 0 || r.Empty() || !r.In(dst.Rect) || !sr.In(src.Rect) ||
		src.Rect.Min.X < 0 || src.Rect.Min.Y < 0 {
		draw.Draw(dst, r, src, sp, draw.Src)
		return
	}
	w := r.Dx()
	for dy := range r.Dy() {
		sy := sp.Y + dy
		out := dst.Pix[dst.PixOffset(r.Min.X, r.Min.Y+dy):][:4*w]
		yrow := src.Y[(sy-src.Rect.Min.Y)*src.YStride+sp.X-src.Rect.Min.X:][:w]
		// The chroma rows and columns as image/draw's DrawYCbCr indexes
		// them (sx/2 and sy/2 of the source's coordinates).
		crow := (sy>>hy - src.Rect.Min.Y>>hy) * src.CStride
		col := func(sx int) int { return crow + sx>>hx - src.Rect.Min.X>>hx }
		sx, x := sp.X, 0
		if hx == 1 && sx%2 == 1 {
			// The kernel's pairs start at an even column.
			put(out, yrow[0], src.Cb[col(sx)], src.Cr[col(sx)])
			sx, x = sx+1, 1
		}
		if x < w {
			c := col(sx)
			n := w - x
			cn := n
			if hx == 1 {
				cn = (n + 1) / 2
			}
			done := rowKernel(out[4*x:], yrow[x:], src.Cb[c:c+cn], src.Cr[c:c+cn], n, hx == 1)
			x, sx = x+done, sx+done
		}
		for ; x < w; x, sx = x+1, sx+1 {
			put(out[4*x:], yrow[x], src.Cb[col(sx)], src.Cr[col(sx)])
		}
	}
}

// put writes one pixel, converted as color.YCbCrToRGB converts it.
func put(out []byte, y, cb, cr byte) {
	r, g, b := color.YCbCrToRGB(y, cb, cr)
	out[0], out[1], out[2], out[3] = r, g, b, 255
}
