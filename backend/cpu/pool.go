package cpu

import (
	"fmt"
	"math"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// Pooling: max and average pooling over windows, and global average
// pooling over whole planes. The fast paths are the reference kernels run
// on the images (or planes) split over the threads.

// MaxPool2dForward implements backend.Ops.
func (b *Backend) MaxPool2dForward(p backend.Pool2dParams, x, y, argmax *tensor.Tensor) {
	backend.CheckPool("maxpool2d forward", p, x, y, argmax)
	run := (*poolLoop).maxForward
	if b.ref {
		run = (*poolLoop).refMaxForward
	}
	splitN(b, &poolLoops, p.N*p.C, poolLoop{run: run, p: p, x: x.HostData(), y: y.HostData(), arg: argmax.HostData()})
}

// MaxPool2dBackward implements backend.Ops.
func (b *Backend) MaxPool2dBackward(p backend.Pool2dParams, dy, argmax, dx *tensor.Tensor) {
	backend.CheckPool("maxpool2d backward", p, dx, dy, argmax)
	splitN(b, &poolLoops, p.N*p.C, poolLoop{run: (*poolLoop).maxBackward, p: p, x: dx.HostData(), y: dy.HostData(), arg: argmax.HostData()})
}

// AvgPool2dForward implements backend.Ops.
func (b *Backend) AvgPool2dForward(p backend.Pool2dParams, x, y *tensor.Tensor) {
	backend.CheckPool("avgpool2d forward", p, x, y)
	splitN(b, &poolLoops, p.N*p.C, poolLoop{run: (*poolLoop).avgForward, p: p, x: x.HostData(), y: y.HostData()})
}

// AvgPool2dBackward implements backend.Ops.
func (b *Backend) AvgPool2dBackward(p backend.Pool2dParams, dy, dx *tensor.Tensor) {
	backend.CheckPool("avgpool2d backward", p, dx, dy)
	splitN(b, &poolLoops, p.N*p.C, poolLoop{run: (*poolLoop).avgBackward, p: p, x: dx.HostData(), y: dy.HostData()})
}

// poolLoop is the pooling ops' loop over planes (one channel of one
// image; pooling treats each on its own, so one image's channels are
// split over the threads too): run, one of the methods below, does planes
// [lo, hi). x and y are the input and output planes (their gradients in
// the backward passes).
type poolLoop struct {
	run  func(k *poolLoop, lo, hi int)
	p    backend.Pool2dParams
	x, y []float32
	arg  []float32 // max pooling's argmax (maxForward: nil when not wanted)
	// maxForward: nil, or each output plane's largest value (planeMax[i]
	// for plane i, written when the plane is).
	planeMax []float32
}

var poolLoops freeList[poolLoop]

func (k *poolLoop) chunk(lo, hi int) { k.run(k, lo, hi) }

// images returns the parameters of planes [lo, hi) (as hi−lo images of
// one channel), their x and y planes, and where their output planes are
// ([o0, o1), for arg).
func (k *poolLoop) images(lo, hi int) (p backend.Pool2dParams, x, y []float32, o0, o1 int) {
	p = k.p
	in, out := p.H*p.W, p.P()*p.Q()
	p.N, p.C = hi-lo, 1
	return p, k.x[lo*in : hi*in], k.y[lo*out : hi*out], lo * out, hi * out
}

// refMaxForward: x -> y, arg, by the reference loop.
func (k *poolLoop) refMaxForward(lo, hi int) {
	p, x, y, o0, o1 := k.images(lo, hi)
	refMaxPoolForward(p, x, y, k.arg[o0:o1])
}

// maxForward: x -> y, arg, as refMaxPoolForward (the same ties, signed
// zeros and NaNs) with each window's rows clipped to the plane once, not
// per pixel, and without a data-dependent branch per pixel: the window's
// maximum first (the builtin max, which keeps NaN), then the first pixel
// that holds it (the last NaN when it is NaN), whose value is the output.
func (k *poolLoop) maxForward(lo, hi int) {
	p, _, y, o0, o1 := k.images(lo, hi)
	// The kernel's loads may run up to a row past a plane's end (values
	// it never uses), into the next plane of k.x.
	x := k.x[lo*p.H*p.W:]
	P, Q := p.P(), p.Q()
	var arg []float32
	if k.arg != nil {
		arg = k.arg[o0:o1]
	} else {
		// Without an argmax, each plane's goes to one scratch plane.
		s := getCol(P * Q)
		defer colPool.put(s)
		arg = *s
	}
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	inf := float32(math.Inf(-1))
	for plane := 0; plane < p.N; plane++ {
		xp := x[plane*p.H*p.W:]
		yp, ap := y[plane*P*Q:(plane+1)*P*Q], arg[:P*Q]
		if k.arg != nil {
			ap = arg[plane*P*Q : (plane+1)*P*Q]
		}
		for oh := 0; oh < P; oh++ {
			ih0 := oh*sh - p.PadH
			r0, r1 := max(0, -ih0), min(p.R, p.H-ih0)
			// The 3×3 windows inside the plane's columns (ResNet's stem
			// pool, all but its left edge, and that too on the AVX-512
			// kernel) by the unrolled loop, its rows clipped to the
			// plane's (a row read twice where fewer than three are in);
			// the others below.
			in0, in1 := 0, 0 // [in0, in1): the windows done here
			if p.R == 3 && p.S == 3 && r0 < r1 {
				w1, w2 := p.W, 2*p.W
				switch r1 - r0 {
				case 1:
					w1, w2 = 0, 0
				case 2:
					w2 = p.W
				}
				in0 = min(Q, (p.PadW+sw-1)/sw)
				in1 = max(in0, min(Q, (p.W-3+p.PadW)/sw+1))
				o, row := oh*Q, (ih0+r0)*p.W
				xr := xp[row:]
				left := false // the left window, columns −1 to 1, on the kernel
				if in0 == 1 && in1 > 1 && p.PadW == 1 && sw == 2 {
					if done := maxPool3x3s2Vec(xr, w1, w2, 1, yp[o:o+in1], ap[o:o+in1], row-1); done > 0 {
						// The rest as in max3x3: one more group if it fits.
						if s := in1 - 16; done < in1 && maxPool3x3s2Vec(xr[2*s-1:], w1, w2, 0, yp[o+s:o+in1], ap[o+s:o+in1], row+2*s-1) == 16 {
							done = in1
						}
						max3x3(xr, w1, w2, 2*done-1, sw, yp[o+done:o+in1], ap[o+done:o+in1], row)
						in0, left = 0, true
					}
				}
				if !left {
					max3x3(xr, w1, w2, in0*sw-p.PadW, sw, yp[o+in0:o+in1], ap[o+in0:o+in1], row)
				}
			}
			for ow := 0; ow < Q; ow++ {
				if ow == in0 && in1 > in0 {
					ow = in1 - 1
					continue
				}
				iw0 := ow*sw - p.PadW
				s0, s1 := max(0, -iw0), min(p.S, p.W-iw0)
				o := oh*Q + ow
				if r0 >= r1 || s0 >= s1 {
					yp[o], ap[o] = inf, -1
					continue
				}
				best := inf
				for r := r0; r < r1; r++ {
					at := (ih0+r)*p.W + iw0 + s0
					for _, v := range xp[at : at+s1-s0] {
						best = max(best, v)
					}
				}
				bi := -1
			find:
				for r := r0; r < r1; r++ {
					at := (ih0+r)*p.W + iw0 + s0
					for j, v := range xp[at : at+s1-s0] {
						if best != best {
							if v != v {
								bi = at + j // the last NaN
							}
						} else if v == best {
							bi = at + j
							break find
						}
					}
				}
				yp[o], ap[o] = xp[bi], float32(bi)
			}
		}
		if k.planeMax != nil {
			_, k.planeMax[lo+plane] = minMax(yp)
		}
	}
}

// max3x3 is maxForward's loop for len(y) 3×3 windows inside a plane's
// columns: the window of y[i] starts at column c0 + i·sw of rows x[0:],
// x[w1:], x[w2:] (x starts at the window's first row, at plane offset
// base; a window clipped to fewer rows reads one again, as
// maxPool3x3s2AVX512 does). The same result as the general loop: the
// window's maximum, its first pixel that holds it (the last NaN when the
// window holds one).
func max3x3(x []float32, w1, w2, c0, sw int, y, arg []float32, base int) {
	if len(y) == 0 {
		return
	}
	last := c0 + (len(y)-1)*sw
	ra, rb, rc := x[:last+3], x[w1:w1+last+3], x[w2:w2+last+3]
	done := 0
	if sw == 2 {
		done = maxPool3x3s2Vec(x[c0:], w1, w2, 0, y, arg, base+c0)
		// The rest as one more group, the last 16 windows: those it
		// repeats get the same values again.
		if s := len(y) - 16; done > 0 && done < len(y) && maxPool3x3s2Vec(x[c0+2*s:], w1, w2, 0, y[s:], arg[s:], base+c0+2*s) == 16 {
			done = len(y)
		}
	}
	for i := done; i < len(y); i++ {
		c := c0 + i*sw
		a, b, d := ra[c:c+3:c+3], rb[c:c+3:c+3], rc[c:c+3:c+3]
		m := max(max(max(a[0], a[1]), max(a[2], b[0])), max(max(b[1], b[2]), max(d[0], max(d[1], d[2]))))
		var at int // the first pixel equal to m, as its offset in x
		switch m {
		case a[0]:
			at = c
		case a[1]:
			at = c + 1
		case a[2]:
			at = c + 2
		case b[0]:
			at = w1 + c
		case b[1]:
			at = w1 + c + 1
		case b[2]:
			at = w1 + c + 2
		case d[0]:
			at = w2 + c
		case d[1]:
			at = w2 + c + 1
		case d[2]:
			at = w2 + c + 2
		default: // m is NaN: the last NaN wins
			at = -1
			for r, row := range [3][]float32{a, b, d} {
				for j, v := range row {
					if v != v {
						at = [3]int{0, w1, w2}[r] + c + j
					}
				}
			}
		}
		y[i], arg[i] = x[at], float32(base+at)
	}
}

// maxBackward: y (dy), arg -> x (dx).
func (k *poolLoop) maxBackward(lo, hi int) {
	p, dx, dy, o0, o1 := k.images(lo, hi)
	refMaxPoolBackward(p, dy, k.arg[o0:o1], dx)
}

// avgForward: x -> y.
func (k *poolLoop) avgForward(lo, hi int) {
	p, x, y, _, _ := k.images(lo, hi)
	refAvgPoolForward(p, x, y)
}

// avgBackward: y (dy) -> x (dx).
func (k *poolLoop) avgBackward(lo, hi int) {
	p, dx, dy, _, _ := k.images(lo, hi)
	refAvgPoolBackward(p, dy, dx)
}

func checkGAP(op string, x, y *tensor.Tensor) (nc, l int) {
	if x.Rank() != 4 || y.Numel() != x.Dim(0)*x.Dim(1) || !x.Contiguous() || !y.Contiguous() {
		panic(fmt.Sprintf("backend: %s: x %s must be (N, C, H, W) and y %s (N, C)", op, tensor.ShapeString(x.Shape()), tensor.ShapeString(y.Shape())))
	}
	return x.Dim(0) * x.Dim(1), x.Dim(2) * x.Dim(3)
}

// GlobalAvgPoolForward implements backend.Ops.
func (b *Backend) GlobalAvgPoolForward(x, y *tensor.Tensor) {
	nc, l := checkGAP("global avgpool forward", x, y)
	splitN(b, &gapLoops, nc, gapLoop{run: (*gapLoop).forward, l: l, x: x.HostData(), y: y.HostData()})
}

// GlobalAvgPoolBackward implements backend.Ops.
func (b *Backend) GlobalAvgPoolBackward(dy, dx *tensor.Tensor) {
	nc, l := checkGAP("global avgpool backward", dx, dy)
	splitN(b, &gapLoops, nc, gapLoop{run: (*gapLoop).backward, l: l, x: dx.HostData(), y: dy.HostData()})
}

// gapLoop is global average pooling's loop over planes of l values (x)
// and their means (y), or their gradients: run, forward or backward, does
// planes [lo, hi).
type gapLoop struct {
	run  func(k *gapLoop, lo, hi int)
	l    int
	x, y []float32
}

var gapLoops freeList[gapLoop]

func (k *gapLoop) chunk(lo, hi int) { k.run(k, lo, hi) }

func (k *gapLoop) forward(lo, hi int) {
	refGlobalAvgPoolForward(hi-lo, k.l, k.x[lo*k.l:hi*k.l], k.y[lo:hi])
}

func (k *gapLoop) backward(lo, hi int) {
	refGlobalAvgPoolBackward(hi-lo, k.l, k.y[lo:hi], k.x[lo*k.l:hi*k.l])
}

// The reference kernels.

// refMaxPoolForward: x (N, C, H, W) -> y, argmax (N, C, P, Q). Ties keep
// the first maximum in row-major window order; padding never wins. A NaN
// wins (the last one, if several), as in PyTorch's loop
// `if val > maxval || isnan(val)`, so that a NaN is not lost and its
// gradient goes where PyTorch sends it.
func refMaxPoolForward(p backend.Pool2dParams, x, y, argmax []float32) {
	P, Q := p.P(), p.Q()
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	for nc := 0; nc < p.N*p.C; nc++ {
		plane := x[nc*p.H*p.W : (nc+1)*p.H*p.W]
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				best, bi := float32(math.Inf(-1)), -1
				for r := 0; r < p.R; r++ {
					ih := oh*sh - p.PadH + r
					if ih < 0 || ih >= p.H {
						continue
					}
					for s := 0; s < p.S; s++ {
						iw := ow*sw - p.PadW + s
						if iw < 0 || iw >= p.W {
							continue
						}
						v := plane[ih*p.W+iw]
						if bi < 0 || v > best || v != v {
							best, bi = v, ih*p.W+iw
						}
					}
				}
				o := (nc*P+oh)*Q + ow
				y[o], argmax[o] = best, float32(bi)
			}
		}
	}
}

// refMaxPoolBackward: dy, argmax (N, C, P, Q) -> dx (N, C, H, W).
func refMaxPoolBackward(p backend.Pool2dParams, dy, argmax, dx []float32) {
	P, Q := p.P(), p.Q()
	clear(dx)
	for nc := 0; nc < p.N*p.C; nc++ {
		for i := 0; i < P*Q; i++ {
			dx[nc*p.H*p.W+int(argmax[nc*P*Q+i])] += dy[nc*P*Q+i]
		}
	}
}

// refAvgPoolForward: x (N, C, H, W) -> y (N, C, P, Q), divisor R·S.
func refAvgPoolForward(p backend.Pool2dParams, x, y []float32) {
	P, Q := p.P(), p.Q()
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	inv := 1 / float32(p.R*p.S)
	for nc := 0; nc < p.N*p.C; nc++ {
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				var s float32
				for r := 0; r < p.R; r++ {
					ih := oh*sh - p.PadH + r
					for q := 0; q < p.S; q++ {
						iw := ow*sw - p.PadW + q
						if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
							s += x[(nc*p.H+ih)*p.W+iw]
						}
					}
				}
				y[(nc*P+oh)*Q+ow] = s * inv
			}
		}
	}
}

// refAvgPoolBackward: dy (N, C, P, Q) -> dx (N, C, H, W).
func refAvgPoolBackward(p backend.Pool2dParams, dy, dx []float32) {
	P, Q := p.P(), p.Q()
	sh, sw := max(p.StrideH, 1), max(p.StrideW, 1)
	inv := 1 / float32(p.R*p.S)
	clear(dx)
	for nc := 0; nc < p.N*p.C; nc++ {
		for oh := 0; oh < P; oh++ {
			for ow := 0; ow < Q; ow++ {
				d := dy[(nc*P+oh)*Q+ow] * inv
				for r := 0; r < p.R; r++ {
					ih := oh*sh - p.PadH + r
					for q := 0; q < p.S; q++ {
						iw := ow*sw - p.PadW + q
						if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
							dx[(nc*p.H+ih)*p.W+iw] += d
						}
					}
				}
			}
		}
	}
}

// refGlobalAvgPoolForward: x (NC, L) -> y (NC).
func refGlobalAvgPoolForward(nc, l int, x, y []float32) {
	for i := 0; i < nc; i++ {
		var s float64
		for _, v := range x[i*l : (i+1)*l] {
			s += float64(v)
		}
		y[i] = float32(s / float64(l))
	}
}

// refGlobalAvgPoolBackward: dy (NC) -> dx (NC, L).
func refGlobalAvgPoolBackward(nc, l int, dy, dx []float32) {
	for i := 0; i < nc; i++ {
		d := dy[i] / float32(l)
		for j := range dx[i*l : (i+1)*l] {
			dx[i*l+j] = d
		}
	}
}
