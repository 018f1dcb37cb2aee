package fmnist

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// SheetOptions choose what a contact sheet shows.
type SheetOptions struct {
	// Items are the source images (item ids) shown, one per line; default
	// DefaultSheetItems(src, 10).
	Items []int
	// Shifts: after the shop view, each line shows Views consumer views
	// under each of these shifts (default: moderate).
	Shifts []Shift
	// Views is the number of consumer views per shift (default 3).
	Views int
	// Seed is the benchmark seed the views are rendered with.
	Seed uint64
	// Scale magnifies each pixel (default 3).
	Scale int
	// NoLabels leaves out the column titles and category names.
	NoLabels bool
}

// DefaultSheetItems returns n test items spread over the categories
// (category k, k+10, ... take turns), the first test items of each.
func DefaultSheetItems(src *Source, n int) []int {
	_, test := src.Split()
	var out []int
	for i := 0; len(out) < n; i++ {
		added := false
		for c := 0; c < NumCategories && len(out) < n; c++ {
			if i < len(test[c]) {
				out = append(out, test[c][i])
				added = true
			}
		}
		if !added {
			break
		}
	}
	return out
}

// ContactSheet renders a greyscale contact sheet: one line per item, the
// shop view first, then its consumer views under each shift, exactly as
// Build renders them for the same seed (view k of an item is the same
// picture in the sheet and in the benchmark). It lets a user see the domain
// gap.
func ContactSheet(src *Source, opts SheetOptions) (*image.Gray, error) {
	if opts.Items == nil {
		opts.Items = DefaultSheetItems(src, 10)
	}
	if len(opts.Shifts) == 0 {
		sh, _ := ShiftLevel("moderate")
		opts.Shifts = []Shift{sh}
	}
	if opts.Views <= 0 {
		opts.Views = 3
	}
	if opts.Scale <= 0 {
		opts.Scale = 3
	}
	for _, it := range opts.Items {
		if it < 0 || it >= src.Len() {
			return nil, fmt.Errorf("fmnist: sheet item %d is outside the source's %d images", it, src.Len())
		}
	}
	for i := range opts.Shifts {
		if err := opts.Shifts[i].Validate(); err != nil {
			return nil, err
		}
	}
	const gap, bigGap = 2, 8
	cell := ViewSide * opts.Scale
	left, top := 0, 0
	if !opts.NoLabels {
		left, top = 84, 18
	}
	cols := []string{"shop"}
	for _, sh := range opts.Shifts {
		for v := 1; v <= opts.Views; v++ {
			cols = append(cols, fmt.Sprintf("%s %d", sh.Name, v))
		}
	}
	colX := make([]int, len(cols))
	x := left + gap
	for c := range cols {
		if c == 1 || (c > 1 && (c-1)%opts.Views == 0) {
			x += bigGap // separate the shop view and each shift
		}
		colX[c] = x
		x += cell + gap
	}
	width := x
	height := top + gap + len(opts.Items)*(cell+gap)
	sheet := image.NewGray(image.Rect(0, 0, width, height))
	draw.Draw(sheet, sheet.Rect, image.NewUniform(color.Gray{Y: 64}), image.Point{}, draw.Src)

	label := func(s string, x, y int) {
		d := font.Drawer{Dst: sheet, Src: image.White, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	if !opts.NoLabels {
		for c, name := range cols {
			label(name, colX[c]+2, 13)
		}
	}
	view := make([]uint8, ViewPixels)
	for line, it := range opts.Items {
		y := top + gap + line*(cell+gap)
		if !opts.NoLabels {
			label(CategoryNames[src.Categories[it]], 4, y+cell/2+4)
		}
		img := src.Image(it)
		ShopView(view, img)
		blit(sheet, view, colX[0], y, opts.Scale)
		c := 1
		for i := range opts.Shifts {
			for v := 1; v <= opts.Views; v++ {
				ConsumerView(view, img, &opts.Shifts[i], opts.Seed, int64(it), v)
				blit(sheet, view, colX[c], y, opts.Scale)
				c++
			}
		}
	}
	return sheet, nil
}

// blit copies a 32 x 32 view into dst at (x, y), magnified by scale.
func blit(dst *image.Gray, view []uint8, x, y, scale int) {
	for vy := 0; vy < ViewSide*scale; vy++ {
		row := dst.Pix[(y+vy)*dst.Stride+x:]
		src := view[(vy/scale)*ViewSide:]
		for vx := 0; vx < ViewSide*scale; vx++ {
			row[vx] = src[vx/scale]
		}
	}
}
