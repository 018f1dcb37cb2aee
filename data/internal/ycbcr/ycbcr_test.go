package ycbcr

import (
	"bytes"
	"image"
	"image/draw"
	"math/rand/v2"
	"testing"
)

// withKernels runs f with the assembly kernel (where the CPU has one) and
// with none (draw's conversion throughout).
func withKernels(t *testing.T, f func(t *testing.T)) {
	saved := rowKernel
	defer func() { rowKernel = saved }()
	if saved != nil {
		t.Run("asm", f)
	}
	rowKernel = nil
	t.Run("draw", f)
}

// TestEveryColour: all 2^24 triples (Y, Cb, Cr) convert as draw converts
// them.
func TestEveryColour(t *testing.T) {
	if testing.Short() {
		t.Skip("16M pixels")
	}
	src := image.NewYCbCr(image.Rect(0, 0, 4096, 4096), image.YCbCrSubsampleRatio444)
	for i := range src.Y {
		src.Y[i], src.Cb[i], src.Cr[i] = byte(i), byte(i>>8), byte(i>>16)
	}
	want := image.NewRGBA(src.Rect)
	draw.Draw(want, want.Rect, src, image.Point{}, draw.Src)
	withKernels(t, func(t *testing.T) {
		got := image.NewRGBA(src.Rect)
		Draw(got, got.Rect, src, image.Point{})
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Error("the pixels differ from draw's")
		}
	})
}

// TestMatchesDraw: every subsampling, pictures whose rectangle starts
// away from the origin, crops at odd and even columns and of every width
// around the kernel's groups of eight, into RGBA pictures away from the
// origin too: draw.Draw's bytes, and nothing written outside r.
func TestMatchesDraw(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	ratios := []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410}
	withKernels(t, func(t *testing.T) {
		for i := range 600 {
			ratio := ratios[i%len(ratios)]
			min := image.Pt(r.IntN(3), r.IntN(3))
			src := image.NewYCbCr(image.Rect(min.X, min.Y, min.X+1+r.IntN(70), min.Y+1+r.IntN(30)), ratio)
			for _, p := range [][]byte{src.Y, src.Cb, src.Cr} {
				for j := range p {
					p[j] = byte(r.IntN(256))
				}
			}
			sb := src.Rect
			sp := image.Pt(sb.Min.X+r.IntN(sb.Dx()), sb.Min.Y+r.IntN(sb.Dy()))
			size := image.Pt(1+r.IntN(sb.Max.X-sp.X), 1+r.IntN(sb.Max.Y-sp.Y))
			dmin := image.Pt(r.IntN(5)-2, r.IntN(5)-2)
			rect := image.Rectangle{dmin, dmin.Add(size)}
			want := image.NewRGBA(rect.Inset(-3))
			for j := range want.Pix {
				want.Pix[j] = 0xA5
			}
			got := image.NewRGBA(want.Rect)
			copy(got.Pix, want.Pix)
			draw.Draw(want, rect, src, sp, draw.Src)
			Draw(got, rect, src, sp)
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Fatalf("case %d: %v of %v from %v into %v: the bytes differ from draw's", i, ratio, src.Rect, sp, rect)
			}
		}
	})
}

func BenchmarkDraw(b *testing.B) {
	src := image.NewYCbCr(image.Rect(0, 0, 300, 400), image.YCbCrSubsampleRatio420)
	for i := range src.Y {
		src.Y[i] = byte(i * 7)
	}
	dst := image.NewRGBA(image.Rect(0, 0, 300, 300))
	b.Run("draw", func(b *testing.B) {
		for b.Loop() {
			draw.Draw(dst, dst.Rect, src, image.Pt(0, 50), draw.Src)
		}
	})
	b.Run("ours", func(b *testing.B) {
		for b.Loop() {
			Draw(dst, dst.Rect, src, image.Pt(0, 50))
		}
	})
}
