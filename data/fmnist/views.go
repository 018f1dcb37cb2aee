package fmnist

import (
	"math"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// View geometry: views are ViewSide x ViewSide greyscale images with the
// 28 x 28 garment centred (offset 2).
const (
	ViewSide   = 32
	ViewPixels = ViewSide * ViewSide
	offset     = (ViewSide - Side) / 2
)

// gammaSteps is the resolution of the gamma table.
const gammaSteps = 256

// tagView separates the consumer-view streams from other uses of a seed.
const tagView = 0x56494557 // "VIEW"

// ShopView writes the shop view of a source image (784 pixels) into dst
// (1024 bytes): the garment centred on a black 32 x 32 canvas, untouched.
func ShopView(dst, img []uint8) {
	clear(dst[:ViewPixels])
	for y := 0; y < Side; y++ {
		copy(dst[(y+offset)*ViewSide+offset:], img[y*Side:(y+1)*Side])
	}
}

// silhouette returns the garment's mask: 1 for pixels that are garment or
// enclosed by it (holes filled), 0 for background reachable from the border
// through dark pixels.
func silhouette(mask *[Pixels]float32, img []uint8) {
	const thresh = 10
	var bg [Pixels]bool
	stack := make([]int, 0, 4*Side)
	push := func(i int) {
		if !bg[i] && img[i] <= thresh {
			bg[i] = true
			stack = append(stack, i)
		}
	}
	for k := 0; k < Side; k++ {
		push(k)
		push((Side-1)*Side + k)
		push(k * Side)
		push(k*Side + Side - 1)
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := i%Side, i/Side
		if x > 0 {
			push(i - 1)
		}
		if x < Side-1 {
			push(i + 1)
		}
		if y > 0 {
			push(i - Side)
		}
		if y < Side-1 {
			push(i + Side)
		}
	}
	for i := range mask {
		if bg[i] {
			mask[i] = 0
		} else {
			mask[i] = 1
		}
	}
}

// bilinear samples a Side x Side plane at (u, v) in pixel-index coordinates,
// with zero outside.
func bilinear(p []float32, u, v float64) float32 {
	x0, y0 := math.Floor(u), math.Floor(v)
	fx, fy := float32(u-x0), float32(v-y0)
	ix, iy := int(x0), int(y0)
	at := func(x, y int) float32 {
		if x < 0 || y < 0 || x >= Side || y >= Side {
			return 0
		}
		return p[y*Side+x]
	}
	top := at(ix, iy)*(1-fx) + at(ix+1, iy)*fx
	bot := at(ix, iy+1)*(1-fx) + at(ix+1, iy+1)*fx
	return top*(1-fy) + bot*fy
}

// grid is a coarse grid of random values upsampled bilinearly to the canvas
// (smooth fields: warp displacements, background blobs).
type grid struct {
	n int
	v []float64
}

func newGrid(r *rng.RNG, n int, draw func() float64) grid {
	g := grid{n: n, v: make([]float64, n*n)}
	for i := range g.v {
		g.v[i] = draw()
	}
	return g
}

// at interpolates the grid at canvas position (x, y) in [0, ViewSide].
func (g grid) at(x, y float64) float64 {
	s := float64(g.n-1) / ViewSide
	gx, gy := x*s, y*s
	ix, iy := min(int(gx), g.n-2), min(int(gy), g.n-2)
	fx, fy := gx-float64(ix), gy-float64(iy)
	v := func(i, j int) float64 { return g.v[j*g.n+i] }
	return (v(ix, iy)*(1-fx)+v(ix+1, iy)*fx)*(1-fy) + (v(ix, iy+1)*(1-fx)+v(ix+1, iy+1)*fx)*fy
}

// ConsumerView renders consumer view number view (1, 2, ...) of a source
// image (784 pixels) into dst (1024 bytes) under shift sh. The result
// depends only on (img, sh, seed, item, view): every random choice comes
// from a generator keyed by (seed, item, view).
//
// Steps: affine + warp of the garment and its silhouette, composite over
// the background, occluder, gamma/contrast/brightness, blur, noise,
// quantise to 8 bits.
func ConsumerView(dst, img []uint8, sh *Shift, seed uint64, item int64, view int) {
	if sh.Identity() {
		ShopView(dst, img)
		return
	}
	var mask [Pixels]float32
	silhouette(&mask, img)
	consumerView(dst, img, &mask, sh, seed, item, view)
}

// consumerView is ConsumerView with the silhouette precomputed.
func consumerView(dst, img []uint8, mask *[Pixels]float32, sh *Shift, seed uint64, item int64, view int) {
	r := rng.New(seed, uint64(item), uint64(view), tagView)

	// Every parameter is drawn here, in a fixed order.
	theta := r.Symmetric(sh.Rotate) * math.Pi / 180
	scale := r.Uniform(sh.ScaleMin, sh.ScaleMax)
	shear := r.Symmetric(sh.Shear)
	tx, ty := r.Symmetric(sh.Translate), r.Symmetric(sh.Translate)
	norm := func() float64 { return r.Norm() }
	warpX, warpY := newGrid(&r, 4, norm), newGrid(&r, 4, norm)
	bgLevel := r.Uniform(sh.BackgroundLevel[0], sh.BackgroundLevel[1])
	bgAmp := r.Uniform(sh.BackgroundContrast[0], sh.BackgroundContrast[1])
	blobs := newGrid(&r, 5, func() float64 { return r.Symmetric(1) })
	gradAngle := r.Uniform(0, 2*math.Pi)
	stripeAngle := r.Uniform(0, math.Pi)
	stripePeriod := r.Uniform(3, 8)
	stripePhase := r.Uniform(0, 2*math.Pi)
	occlude := r.Bool(sh.OccludeProb)
	ow := r.Uniform(sh.OccludeSize[0], sh.OccludeSize[1]) * ViewSide
	oh := r.Uniform(sh.OccludeSize[0], sh.OccludeSize[1]) * ViewSide
	ocx, ocy := ViewSide/2+r.Symmetric(8), ViewSide/2+r.Symmetric(8)
	oLevel := r.Uniform(0.1, 0.9)
	gamma := math.Exp(r.Symmetric(math.Log(sh.Gamma)))
	contrast := 1 + r.Symmetric(sh.Contrast)
	bright := r.Symmetric(sh.Brightness)
	blur := r.Bool(sh.BlurProb)
	sigma := r.Uniform(sh.BlurSigma[0], sh.BlurSigma[1])
	noise := r.Uniform(sh.Noise[0], sh.Noise[1])

	var garment [Pixels]float32
	for i, v := range img {
		garment[i] = float32(v) * (1.0 / 255)
	}

	// Inverse of A = scale · R(theta) · Shear: canvas -> garment.
	cos, sin := math.Cos(theta), math.Sin(theta)
	// R(-theta) / scale, then Shear^-1 = [[1, -shear], [0, 1]].
	r00, r01 := cos/scale, sin/scale
	r10, r11 := -sin/scale, cos/scale
	i00, i01 := r00-shear*r10, r01-shear*r11
	i10, i11 := r10, r11
	const c = ViewSide / 2.0

	var canvas [ViewPixels]float64
	gdx, gdy := math.Cos(gradAngle), math.Sin(gradAngle)
	sdx, sdy := math.Cos(stripeAngle), math.Sin(stripeAngle)
	for y := 0; y < ViewSide; y++ {
		for x := 0; x < ViewSide; x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			// Background.
			var b float64
			switch sh.Background {
			case "smooth":
				grad := ((px-c)*gdx + (py-c)*gdy) / ViewSide
				b = bgLevel + bgAmp*(blobs.at(px, py)+grad)
			case "stripes":
				b = bgLevel + bgAmp*math.Tanh(2.5*math.Sin(2*math.Pi*(px*sdx+py*sdy)/stripePeriod+stripePhase))
			}
			// Garment: warp, then the inverse affine, then source pixel indices.
			qx := px + sh.Warp*warpX.at(px, py) - c - tx
			qy := py + sh.Warp*warpY.at(px, py) - c - ty
			u := i00*qx + i01*qy + c - offset - 0.5
			v := i10*qx + i11*qy + c - offset - 0.5
			a := float64(bilinear(mask[:], u, v))
			g := float64(bilinear(garment[:], u, v))
			canvas[y*ViewSide+x] = a*g + (1-a)*b
		}
	}

	if occlude {
		x0, x1 := int(math.Round(ocx-ow/2)), int(math.Round(ocx+ow/2))
		y0, y1 := int(math.Round(ocy-oh/2)), int(math.Round(ocy+oh/2))
		for y := max(y0, 0); y < min(y1, ViewSide); y++ {
			for x := max(x0, 0); x < min(x1, ViewSide); x++ {
				canvas[y*ViewSide+x] = oLevel
			}
		}
	}

	// Lighting: gamma through a table (linear interpolation between 256
	// steps is far below the 8-bit quantisation), contrast, brightness.
	var curve [gammaSteps + 1]float64
	for i := range curve {
		curve[i] = math.Pow(float64(i)/gammaSteps, gamma)
	}
	var mean float64
	for i, v := range canvas {
		t := min(max(v, 0), 1) * gammaSteps
		k := min(int(t), gammaSteps-1)
		v = curve[k] + (t-float64(k))*(curve[k+1]-curve[k])
		canvas[i] = v
		mean += v
	}
	mean /= ViewPixels
	for i, v := range canvas {
		canvas[i] = (v-mean)*contrast + mean + bright
	}

	if blur && sigma > 0 {
		gaussianBlur(&canvas, sigma)
	}

	if noise > 0 {
		for i := 0; i < ViewPixels; i += 2 {
			z0, z1 := r.NormPair()
			canvas[i] += noise * z0
			canvas[i+1] += noise * z1
		}
	}
	for i, v := range canvas {
		dst[i] = uint8(math.Round(min(max(v, 0), 1) * 255))
	}
}

// gaussianBlur blurs the canvas with a separable Gaussian, clamping at the
// edges.
func gaussianBlur(p *[ViewPixels]float64, sigma float64) {
	rad := int(math.Ceil(2.5 * sigma))
	k := make([]float64, 2*rad+1)
	var sum float64
	for i := range k {
		d := float64(i - rad)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	clampi := func(i int) int { return min(max(i, 0), ViewSide-1) }
	var tmp [ViewPixels]float64
	for y := 0; y < ViewSide; y++ {
		for x := 0; x < ViewSide; x++ {
			var s float64
			for j, w := range k {
				s += w * p[y*ViewSide+clampi(x+j-rad)]
			}
			tmp[y*ViewSide+x] = s
		}
	}
	for y := 0; y < ViewSide; y++ {
		for x := 0; x < ViewSide; x++ {
			var s float64
			for j, w := range k {
				s += w * tmp[clampi(y+j-rad)*ViewSide+x]
			}
			p[y*ViewSide+x] = s
		}
	}
}
