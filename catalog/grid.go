package catalog

// The query grid: each query, then its top-k gallery images with scores,
// framed green (same item) or red (another item) when the query's item is
// known.

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"path/filepath"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
)

// Grid colours.
var (
	gridBackground = color.RGBA{R: 255, G: 255, B: 255, A: 255}
	gridTileBack   = color.RGBA{R: 236, G: 236, B: 236, A: 255}
	gridText       = color.RGBA{R: 20, G: 20, B: 20, A: 255}
	gridDim        = color.RGBA{R: 110, G: 110, B: 110, A: 255}
	gridQuery      = color.RGBA{R: 40, G: 90, B: 200, A: 255}
	gridSame       = color.RGBA{R: 30, G: 160, B: 60, A: 255}
	gridOther      = color.RGBA{R: 210, G: 40, B: 40, A: 255}
	gridUnknown    = color.RGBA{R: 170, G: 170, B: 170, A: 255}
)

// GridOptions tune Grid.
type GridOptions struct {
	// Thumb is the side of each image tile in pixels (default 96).
	Thumb int
	// Title is written above the grid (optional).
	Title string
}

const (
	gridPad    = 8
	gridBorder = 3
	gridLine   = 14 // text line height of basicfont.Face7x13
	gridGap    = 16 // between the query column and the results
)

// Grid draws one row per query: the query image (blue frame), then its
// matches in rank order, each with "#rank score" and "item id" under it.
// When the query's item is known, a match showing it is framed green and
// any other red; otherwise grey. A gallery image that cannot be read is
// drawn as a grey tile saying so.
func Grid(qs []QueryImage, res []QueryResult, gal *Gallery, opts GridOptions) *image.RGBA {
	if len(qs) != len(res) {
		panic("app: Grid: one result per query")
	}
	t := opts.Thumb
	if t <= 0 {
		t = 96
	}
	k := 0
	for _, r := range res {
		k = max(k, len(r.Matches))
	}
	cellW := t + 2*gridBorder
	cellH := t + 2*gridBorder + 2*gridLine + 4
	top := gridPad
	if opts.Title != "" {
		top += 2 * gridLine
	}
	w := gridPad + cellW + gridGap + k*(cellW+gridPad)
	h := top + len(qs)*(cellH+gridPad)
	w = max(w, 2*gridPad+font.MeasureString(basicfont.Face7x13, opts.Title).Ceil())
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(gridBackground), image.Point{}, draw.Src)
	if opts.Title != "" {
		drawText(img, gridPad, gridPad+11, opts.Title, gridText)
		drawText(img, gridPad, gridPad+11+gridLine, "frame: blue query, green same item, red another item, grey item unknown", gridDim)
	}
	var names map[int64]string
	if gal != nil {
		names = ItemNames(gal.Index)
	}
	for i, q := range qs {
		y := top + i*(cellH+gridPad)
		label := fmt.Sprintf("query %d", i+1)
		item := "item ?"
		switch {
		case q.HasItem && names[q.Item] != "":
			item = names[q.Item]
		case q.HasItem:
			item = fmt.Sprintf("item %d", q.Item)
		}
		drawTile(img, gridPad, y, t, q.Image, gridQuery, label, item)
		for j, m := range res[i].Matches {
			x := gridPad + cellW + gridGap + j*(cellW+gridPad)
			frame := gridUnknown
			if m.SameItem != nil {
				frame = gridOther
				if *m.SameItem {
					frame = gridSame
				}
			}
			var src image.Image
			if gal != nil {
				src, _ = gal.Image(m.Row)
			}
			item := fmt.Sprintf("item %d", m.Item)
			if m.ItemName != "" {
				item = m.ItemName
			}
			drawTile(img, x, y, t, src, frame, fmt.Sprintf("#%d %.3f", m.Rank, m.Score), item)
		}
	}
	return img
}

// drawTile draws a framed thumbnail at (x, y) with two lines of text under
// it; a nil image is drawn as "no image".
func drawTile(dst *image.RGBA, x, y, t int, src image.Image, frame color.Color, line1, line2 string) {
	outer := image.Rect(x, y, x+t+2*gridBorder, y+t+2*gridBorder)
	draw.Draw(dst, outer, image.NewUniform(frame), image.Point{}, draw.Src)
	inner := outer.Inset(gridBorder)
	draw.Draw(dst, inner, image.NewUniform(gridTileBack), image.Point{}, draw.Src)
	if src == nil {
		drawText(dst, inner.Min.X+4, inner.Min.Y+t/2, "no image", gridDim)
	} else {
		draw.CatmullRom.Scale(dst, fitRect(src.Bounds(), inner), src, src.Bounds(), draw.Over, nil)
	}
	maxChars := (t + 2*gridBorder) / 7
	ty := outer.Max.Y + 2 + 11
	drawText(dst, x, ty, clip(line1, maxChars), gridText)
	drawText(dst, x, ty+gridLine, clip(line2, maxChars), gridDim)
}

// fitRect is the largest rectangle of src's aspect ratio centred in box.
func fitRect(src, box image.Rectangle) image.Rectangle {
	sw, sh := src.Dx(), src.Dy()
	bw, bh := box.Dx(), box.Dy()
	if sw <= 0 || sh <= 0 {
		return box
	}
	w, h := bw, sh*bw/sw
	if h > bh {
		w, h = sw*bh/sh, bh
	}
	w, h = max(w, 1), max(h, 1)
	x0 := box.Min.X + (bw-w)/2
	y0 := box.Min.Y + (bh-h)/2
	return image.Rect(x0, y0, x0+w, y0+h)
}

// clip shortens s to n characters, marking the cut with ".." at its start
// (the end of a path says the most). The font is ASCII only.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 3 {
		return s
	}
	return ".." + string(r[len(r)-n+2:])
}

// drawText writes s with its baseline at (x, y) in the 7×13 bitmap font.
func drawText(dst *image.RGBA, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// Thumbnail scales img to fit in side×side (never enlarging it).
func Thumbnail(img image.Image, side int) image.Image {
	b := img.Bounds()
	if b.Dx() <= side && b.Dy() <= side {
		return img
	}
	r := fitRect(b, image.Rect(0, 0, side, side))
	out := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.CatmullRom.Scale(out, out.Bounds(), img, b, draw.Src, nil)
	return out
}

// WritePNG encodes img as PNG into path atomically (a temporary file beside
// it, synced, renamed into place).
func WritePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, buf.Bytes()); err != nil {
		return fmt.Errorf("%s: %w", filepath.Clean(path), err)
	}
	return nil
}
