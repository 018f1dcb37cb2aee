package jpegscale

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The files in testdata were written by libjpeg-turbo's cjpeg from one
// 67×45 picture (sizes that leave partial MCUs on both axes): every
// subsampling it offers, grey, restart intervals of a row and of 3 and 2
// MCUs, optimised Huffman tables, 16-bit quantisation tables (quality
// 3, an extended-sequential frame); progressive ones (cjpeg's scans:
// the DC terms and the AC bands in successive passes of bits) in 4:2:0,
// 4:4:4, 4:2:2 and grey, and 4:2:2 again with restarts every 2 MCUs
// (prog-restart, which image/jpeg refuses: TestProgressiveRestarts); and
// one that this package refuses: arithmetic coding.
var supported = []string{"s420", "s422", "s444", "s440", "s411", "s410", "grey", "restart-rows",
	"restart-3blocks", "grey-restart", "optimized", "q16bit",
	"progressive", "prog-grey", "prog-444", "prog-422"}

func read(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name+".jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// planes returns img's sample planes (Y, Cb, Cr, or the grey one) as
// functions of plane coordinates, with their sizes.
func planes(img image.Image) (at []func(x, y int) int, size []image.Point) {
	switch m := img.(type) {
	case *image.Gray:
		return []func(x, y int) int{func(x, y int) int { return int(m.Pix[y*m.Stride+x]) }}, []image.Point{m.Rect.Size()}
	case *image.YCbCr:
		w, h := m.Rect.Dx(), m.Rect.Dy()
		cw, ch := w, h
		switch m.SubsampleRatio {
		case image.YCbCrSubsampleRatio422:
			cw = (w + 1) / 2
		case image.YCbCrSubsampleRatio420:
			cw, ch = (w+1)/2, (h+1)/2
		case image.YCbCrSubsampleRatio440:
			ch = (h + 1) / 2
		case image.YCbCrSubsampleRatio411:
			cw = (w + 3) / 4
		case image.YCbCrSubsampleRatio410:
			cw, ch = (w+3)/4, (h+1)/2
		}
		return []func(x, y int) int{
				func(x, y int) int { return int(m.Y[y*m.YStride+x]) },
				func(x, y int) int { return int(m.Cb[y*m.CStride+x]) },
				func(x, y int) int { return int(m.Cr[y*m.CStride+x]) },
			},
			[]image.Point{{w, h}, {cw, ch}, {cw, ch}}
	}
	return nil, nil
}

// TestFullScaleMatchesImageJPEG: at scale 1 every sample of every plane
// is image/jpeg's, under each kernel: the entropy decoding, restarts,
// tables, the planes' layout and the inverse DCT are the same.
func TestFullScaleMatchesImageJPEG(t *testing.T) {
	withKernel(t, testFullScaleMatchesImageJPEG)
}

func testFullScaleMatchesImageJPEG(t *testing.T) {
	for _, name := range supported {
		b := read(t, name)
		want, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: image/jpeg: %v", name, err)
		}
		got, err := Decode(b, 1, 1<<20, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s: bounds %v, want %v", name, got.Bounds(), want.Bounds())
		}
		if gy, ok := got.(*image.YCbCr); ok && gy.SubsampleRatio != want.(*image.YCbCr).SubsampleRatio {
			t.Fatalf("%s: %v, want %v", name, gy.SubsampleRatio, want.(*image.YCbCr).SubsampleRatio)
		}
		ga, gs := planes(got)
		wa, ws := planes(want)
		if len(ga) == 0 || len(ga) != len(wa) {
			t.Fatalf("%s: %T against %T", name, got, want)
		}
		for p := range ga {
			if gs[p] != ws[p] {
				t.Fatalf("%s plane %d: %v, want %v", name, p, gs[p], ws[p])
			}
			worst := 0
			for y := range gs[p].Y {
				for x := range gs[p].X {
					worst = max(worst, abs(ga[p](x, y)-wa[p](x, y)))
				}
			}
			if worst > 0 {
				t.Errorf("%s plane %d: %d levels from image/jpeg at worst, want 0", name, p, worst)
			}
		}
	}
}

// TestReducedScales: at 1/2, 1/4 and 1/8 the image is Size's, and each
// sample is close to the mean of the full decode's d×d samples it stands
// for: exactly their mean (to the rounding) at 1/8, where it is the
// block's DC term, and within what dropping the higher frequencies moves
// at 1/2 and 1/4.
func TestReducedScales(t *testing.T) {
	for _, name := range supported {
		b := read(t, name)
		full, err := Decode(b, 1, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		fa, fs := planes(full)
		for _, d := range []int{2, 4, 8} {
			img, err := Decode(b, d, 1<<20, nil)
			if err != nil {
				t.Fatalf("%s 1/%d: %v", name, d, err)
			}
			w, h := Size(full.Bounds().Dx(), full.Bounds().Dy(), d)
			if img.Bounds() != image.Rect(0, 0, w, h) {
				t.Fatalf("%s 1/%d: bounds %v, want %dx%d", name, d, img.Bounds(), w, h)
			}
			ra, rs := planes(img)
			for p := range ra {
				var sum, n float64
				worst := 0.0
				for y := range rs[p].Y {
					for x := range rs[p].X {
						// Whole d×d cells of the full plane only.
						if (x+1)*d > fs[p].X || (y+1)*d > fs[p].Y {
							continue
						}
						var mean float64
						for yy := range d {
							for xx := range d {
								mean += float64(fa[p](x*d+xx, y*d+yy))
							}
						}
						mean /= float64(d * d)
						e := math.Abs(float64(ra[p](x, y)) - mean)
						sum += e
						n++
						worst = max(worst, e)
					}
				}
				limitMean, limitWorst := 6.0, 40.0
				if d == 8 {
					limitMean, limitWorst = 0.5, 1 // the block's mean, rounded both ways
				}
				if n == 0 || sum/n > limitMean || worst > limitWorst {
					t.Errorf("%s 1/%d plane %d: %.2f from the cells' means on average, %.1f at worst (%v cells); want %v and %v",
						name, d, p, sum/n, worst, n, limitMean, limitWorst)
				}
			}
		}
	}
}

// TestIDCTKeepsTheMean: at every scale the mean of a block's output is
// its DC term's mean, 128 + F(0,0)/8, whatever its other frequencies.
func TestIDCTKeepsTheMean(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8} {
		var blk [64]int32 // F(u, v) at v·8+u
		blk[0] = 80
		for u := range n {
			for v := range n {
				if u+v > 0 {
					blk[v*8+u] = int32((u*7+v*3)%11) - 5
				}
			}
		}
		out := make([]byte, 64)
		idctTables[n](&blk, out, 8)
		var sum float64
		for y := range n {
			for x := range n {
				sum += float64(out[y*8+x])
			}
		}
		if mean := sum / float64(n*n); math.Abs(mean-138) > 0.5 {
			t.Errorf("n = %d: mean %v, want 138", n, mean)
		}
	}
}

// TestRefused: arithmetic coding is ErrUnsupported, as are data that are
// not a JPEG and a frame of more than maxPixels; a scale other than 1,
// 2, 4 or 8 is an error of its own.
func TestRefused(t *testing.T) {
	if _, err := Decode(read(t, "arithmetic"), 2, 1<<20, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("arithmetic coding: %v, want ErrUnsupported", err)
	}
	if _, err := Decode([]byte("GIF89a"), 2, 1<<20, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("a GIF: %v", err)
	}
	if _, err := Decode(read(t, "s420"), 2, 67*45-1, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("a frame past maxPixels: %v", err)
	}
	if _, err := Decode(read(t, "s420"), 2, 67*45, nil); err != nil {
		t.Errorf("a frame of maxPixels: %v", err)
	}
	if _, err := Decode(read(t, "s420"), 3, 1<<20, nil); err == nil || errors.Is(err, ErrUnsupported) {
		t.Errorf("scale 1/3: %v", err)
	}
}

// TestDamaged: a file cut anywhere inside its scans is refused, never
// half decoded (cut at the very end, a sequential one misses only EOI,
// and decodes);
// bytes changed, dropped or added anywhere give an image or an error,
// never a panic (FuzzDecode goes on from here, with testdata/fuzz).
func TestDamaged(t *testing.T) {
	for _, name := range []string{"s420", "restart-3blocks", "grey-restart", "progressive", "prog-restart"} {
		b := read(t, name)
		sos := bytes.Index(b, []byte{0xFF, 0xDA})
		for cut := sos + 20; cut < len(b)-2; cut++ {
			if img, err := Decode(b[:cut], 4, 1<<20, nil); err == nil {
				t.Fatalf("%s cut at %d of %d: decoded (%v)", name, cut, len(b), img.Bounds())
			}
		}
		// A progressive file's last scans may be missing: without EOI it
		// is refused, as image/jpeg refuses it.
		if _, err := Decode(b[:len(b)-2], 4, 1<<20, nil); (err != nil) != strings.HasPrefix(name, "prog") {
			t.Errorf("%s without EOI: %v", name, err)
		}
		x := uint32(1)
		next := func() int { x = x*1664525 + 1013904223; return int(x >> 8) }
		for range 3000 {
			c := bytes.Clone(b)
			for range 1 + next()%4 {
				switch i := next() % len(c); next() % 3 {
				case 0:
					c[i] = byte(next())
				case 1:
					c = append(c[:i], c[i+1:]...)
				default:
					c = append(c[:i], append([]byte{byte(next())}, c[i:]...)...)
				}
			}
			for _, d := range []int{1, 2, 8} {
				Decode(c, d, 1<<20, nil)
			}
		}
	}
}

// TestProgressiveRestarts: a progressive file with a restart interval
// every 2 MCUs decodes to the very pixels of the same picture written
// without restarts (the same coefficients), at every scale.
func TestProgressiveRestarts(t *testing.T) {
	with, without := read(t, "prog-restart"), read(t, "prog-422")
	if !bytes.Contains(with, []byte{0xFF, 0xDD}) || bytes.Contains(without, []byte{0xFF, 0xDD}) {
		t.Fatal("the fixtures are not what they were")
	}
	for _, d := range []int{1, 2, 4, 8} {
		a, err := Decode(with, d, 1<<20, nil)
		if err != nil {
			t.Fatalf("1/%d: %v", d, err)
		}
		b, err := Decode(without, d, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		ya, yb := a.(*image.YCbCr), b.(*image.YCbCr)
		if !bytes.Equal(ya.Y, yb.Y) || !bytes.Equal(ya.Cb, yb.Cb) || !bytes.Equal(ya.Cr, yb.Cr) {
			t.Errorf("1/%d: the pixels differ", d)
		}
	}
}

// TestTooManyScans: a progressive file whose scans are repeated past
// maxScans is an error, and not ErrUnsupported (no decoder should take
// the time).
func TestTooManyScans(t *testing.T) {
	b := read(t, "prog-grey")
	sos := bytes.Index(b, []byte{0xFF, 0xDA})
	next := sos + 2 + bytes.Index(b[sos+2:], []byte{0xFF, 0xDA})
	scan := b[sos:next] // the first scan: its header and data
	var many []byte
	many = append(many, b[:sos]...)
	for range maxScans + 1 {
		many = append(many, scan...)
	}
	many = append(many, 0xFF, 0xD9)
	_, err := Decode(many, 2, 1<<20, nil)
	if err == nil || errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "scans") {
		t.Errorf("%d scans: %v", maxScans+1, err)
	}
	if _, err := Decode(append(append(b[:sos:sos], scan...), 0xFF, 0xD9), 2, 1<<20, nil); err != nil {
		t.Errorf("the first scan alone: %v", err)
	}
}

// TestCheckStops: an error from check ends the decoding with it.
func TestCheckStops(t *testing.T) {
	stop := errors.New("deadline")
	calls := 0
	_, err := Decode(read(t, "s420"), 2, 1<<20, func() error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("%v after %d calls, want the check's error after 2", err, calls)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range append(supported, "arithmetic") {
		f.Add(read(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range []int{1, 4} {
			img, err := Decode(b, d, 1<<20, nil)
			if err == nil && (img.Bounds().Dx() == 0 || img.Bounds().Dy() == 0) {
				t.Fatalf("an empty image without an error")
			}
			if err != nil || d != 1 {
				continue
			}
			// What image/jpeg decodes too, it decodes to the same samples.
			want, err := jpeg.Decode(bytes.NewReader(b))
			if err != nil || want.Bounds().Dx()*want.Bounds().Dy() > 1<<20 {
				continue
			}
			ga, gs := planes(img)
			wa, ws := planes(want)
			if len(ga) != len(wa) || img.Bounds() != want.Bounds() {
				t.Fatalf("%T %v, image/jpeg %T %v", img, img.Bounds(), want, want.Bounds())
			}
			for p := range ga {
				if gs[p] != ws[p] {
					t.Fatalf("plane %d: %v, image/jpeg %v", p, gs[p], ws[p])
				}
				for y := range gs[p].Y {
					for x := range gs[p].X {
						if ga[p](x, y) != wa[p](x, y) {
							t.Fatalf("plane %d (%d, %d): %d, image/jpeg %d", p, x, y, ga[p](x, y), wa[p](x, y))
						}
					}
				}
			}
		}
	})
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// BenchmarkDecode: a 1200×1600 photo-like JPEG (quality 90, 4:2:0) at
// each scale, and image/jpeg's whole decode of it (the same bytes as
// 1/1's).
func BenchmarkDecode(b *testing.B) {
	const w, h = 1200, 1600
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	x := uint32(7)
	for i := range img.Y {
		x = x*1664525 + 1013904223
		img.Y[i] = uint8(i%w*200/w + int(x>>27))
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = uint8(100+i%(w/2)/10), uint8(140-i/(w/2)/20)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Run("image-jpeg", func(b *testing.B) {
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, d := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("1/%d", d), func(b *testing.B) {
			for b.Loop() {
				if _, err := Decode(data, d, w*h, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMissingEOI: a sequential file whose data are whole but whose EOI
// marker is missing decodes to the whole file's samples (image/jpeg
// calls it an unexpected EOF); cut inside the data, it is refused.
func TestMissingEOI(t *testing.T) {
	b := read(t, "s420")
	if !bytes.HasSuffix(b, []byte{0xFF, 0xD9}) {
		t.Fatal("the fixture does not end with EOI")
	}
	whole, err := Decode(b, 1, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	cut, err := Decode(b[:len(b)-2], 1, 1<<20, nil)
	if err != nil {
		t.Fatalf("without EOI: %v", err)
	}
	if !bytes.Equal(whole.(*image.YCbCr).Y, cut.(*image.YCbCr).Y) || !bytes.Equal(whole.(*image.YCbCr).Cr, cut.(*image.YCbCr).Cr) {
		t.Error("without EOI: other samples")
	}
	if _, err := Decode(b[:len(b)-40], 1, 1<<20, nil); !errors.Is(err, ErrUnsupported) {
		t.Errorf("cut inside the data: %v", err)
	}
}
