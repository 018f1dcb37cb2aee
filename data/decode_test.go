package data

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/internal/testimg"
)

// allocated returns the fewest bytes f allocated over a few runs (other
// goroutines' allocations only ever add to a run's count).
func allocated(f func()) uint64 {
	best := ^uint64(0)
	var m0, m1 runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&m0)
		f()
		runtime.ReadMemStats(&m1)
		best = min(best, m1.TotalAlloc-m0.TotalAlloc)
	}
	return best
}

// TestDecodeCostBoundsDecoding: for every colour model the standard
// decoders produce, DecodeCost's estimate is at least what decoding
// allocates, and not wildly more.
func TestDecodeCostBoundsDecoding(t *testing.T) {
	const w, h = 640, 480
	r := image.Rect(0, 0, w, h)
	pal := image.NewPaletted(r, color.Palette{color.Black, color.White})
	encode := func(img image.Image, jpg bool) []byte {
		var buf bytes.Buffer
		if jpg {
			jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
		} else {
			png.Encode(&buf, img)
		}
		return buf.Bytes()
	}
	rgba := image.NewRGBA(r)
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(i * 7)
	}
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"png gray", encode(image.NewGray(r), false)},
		{"png gray16", encode(image.NewGray16(r), false)},
		{"png rgba", encode(rgba, false)},
		{"png rgba64", encode(image.NewRGBA64(r), false)},
		{"png paletted", encode(pal, false)},
		{"jpeg 4:2:0", encode(rgba, true)},
		{"jpeg gray", encode(image.NewGray(r), true)},
	} {
		cost, err := DecodeCost(c.b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cost.Width != w || cost.Height != h {
			t.Errorf("%s: size %dx%d", c.name, cost.Width, cost.Height)
		}
		used := allocated(func() {
			if _, err := DecodeLimited(context.Background(), c.b, DecodeLimits{}); err != nil {
				t.Fatal(err)
			}
		})
		if uint64(cost.Bytes) < used || uint64(cost.Bytes) > 6*used+64<<10 {
			t.Errorf("%s: estimate %d bytes, decoding allocated %d", c.name, cost.Bytes, used)
		}
	}
}

// TestDecodeRefusesBombs: a 308 KB PNG of 6300×6300 16-bit pixels is
// refused from its header, before any pixel is decoded, by the default
// limits and by DecodeFile.
func TestDecodeRefusesBombs(t *testing.T) {
	bomb := testimg.PNG16(6300, 6300)
	cost, err := DecodeCost(bomb)
	if err != nil {
		t.Fatal(err)
	}
	if cost.Bytes < 6300*6300*8 {
		t.Errorf("cost %d, want at least the 16-bit pixels", cost.Bytes)
	}
	var le *LimitError
	used := allocated(func() { _, err = Decode(bomb) })
	if !errors.As(err, &le) || le.Flag != "-max-decode-bytes" || !strings.Contains(err.Error(), "-max-decode-bytes") {
		t.Fatalf("Decode: %v", err)
	}
	if used > 4<<20 {
		t.Errorf("refusing the bomb allocated %d bytes", used)
	}
	path := filepath.Join(t.TempDir(), "bomb.png")
	os.WriteFile(path, bomb, 0o644)
	if _, err := DecodeFile(path); !IsLimit(err) || !strings.Contains(err.Error(), path) {
		t.Errorf("DecodeFile: %v", err)
	}
	if _, err := DecodeFileLimited(path, DecodeLimits{MaxPixels: 100, MaxBytes: 1 << 30}); !errors.As(err, &le) || le.Flag != "-max-pixels" {
		t.Errorf("pixel limit: %v", err)
	}
	// A file larger than the byte limit is not even read.
	if _, err := DecodeFileLimited(path, DecodeLimits{MaxPixels: 1 << 40, MaxBytes: 1000}); err == nil || !strings.Contains(err.Error(), "the file is") {
		t.Errorf("file size: %v", err)
	}
	if c, err := DecodeFileCost(path); err != nil || c != cost {
		t.Errorf("DecodeFileCost: %+v %v, want %+v", c, err, cost)
	}
}

// TestDecodeCancel: a done context stops decoding.
func TestDecodeCancel(t *testing.T) {
	var buf bytes.Buffer
	png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 64, 64)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := DecodeLimited(ctx, buf.Bytes(), DefaultDecodeLimits); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled decode: %v", err)
	}
	if _, err := DecodeLimited(context.Background(), buf.Bytes(), DefaultDecodeLimits); err != nil {
		t.Error(err)
	}
}

// TestJPEGFrameCost reads the frame header of progressive and CMYK JPEGs
// (which the standard library cannot write) from hand-made headers.
func TestJPEGFrameCost(t *testing.T) {
	sof := func(marker byte, comps ...byte) []byte {
		seg := []byte{8, 0x03, 0x20, 0x04, 0x00, byte(len(comps))} // 800 high, 1024 wide
		for i, hv := range comps {
			seg = append(seg, byte(i+1), hv, 0)
		}
		n := len(seg) + 2
		return append([]byte{0xFF, 0xD8, 0xFF, marker, byte(n >> 8), byte(n)}, seg...)
	}
	px := int64(1024 * 800)
	for _, c := range []struct {
		name string
		b    []byte
		want int64
	}{
		{"baseline 4:2:0", sof(0xC0, 0x22, 0x11, 0x11), px + px/2},
		{"baseline 4:4:4", sof(0xC0, 0x11, 0x11, 0x11), 3 * px},
		{"progressive 4:2:0", sof(0xC2, 0x22, 0x11, 0x11), 5 * (px + px/2)},
		{"cmyk", sof(0xC0, 0x11, 0x11, 0x11, 0x11), 4*px + 4*px},
		{"no frame", []byte{0xFF, 0xD8, 0xFF, 0xDA}, 15 * px},
	} {
		if got := jpegCost(c.b, 1024, 800); got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, got, c.want)
		}
	}
}

// TestDecodeJPEGIsImageJPEGs: JPEGs decode to image/jpeg's very samples
// (jpegscale at full scale for those it takes, image/jpeg for the rest),
// EXIF orientation applied; a progressive file with restart markers,
// which image/jpeg refuses, decodes too; and a file jpegscale refuses
// (components named R, G, B: image/jpeg's RGB) comes from image/jpeg.
func TestDecodeJPEGIsImageJPEGs(t *testing.T) {
	dir := filepath.Join("internal", "jpegscale", "testdata")
	files := map[string][]byte{"photo": photoRotated(t, 6)}
	for _, name := range []string{"s420", "s422", "s444", "s440", "s411", "s410", "grey", "restart-rows",
		"q16bit", "progressive", "prog-grey", "prog-444", "prog-422"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	rgb := bytes.Clone(files["s444"])
	if i := bytes.Index(rgb, []byte{0xFF, 0xE0}); i > 0 { // JFIF's APP0 says YCbCr whatever the names
		rgb = append(rgb[:i:i], rgb[i+2+int(rgb[i+2])<<8|int(rgb[i+3]):]...)
	}
	for _, marker := range [][]byte{{0xFF, 0xC0}, {0xFF, 0xDA}} {
		i := bytes.Index(rgb, marker)
		first := i + 10 // SOF: the first component's id
		if marker[1] == 0xDA {
			first = i + 5
		}
		for c := range 3 {
			step := 3
			if marker[1] == 0xDA {
				step = 2
			}
			rgb[first+step*c] = "RGB"[c]
		}
	}
	files["rgb"] = rgb
	for name, b := range files {
		want, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: image/jpeg: %v", name, err)
		}
		want = Orient(want, JPEGOrientation(b))
		got, err := DecodeLimited(context.Background(), b, DefaultDecodeLimits)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "rgb" {
			if _, ok := got.(*image.RGBA); !ok {
				t.Errorf("rgb: %T, want image/jpeg's *image.RGBA", got)
			}
		}
		if !samePixels(got, want) {
			t.Errorf("%s: %T differs from image/jpeg's %T", name, got, want)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "prog-restart.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(b)); err == nil {
		t.Fatal("image/jpeg decodes prog-restart now: the case is gone")
	}
	if img, err := DecodeLimited(context.Background(), b, DefaultDecodeLimits); err != nil || img.Bounds().Dx() != 67 {
		t.Errorf("prog-restart: %v", err)
	}
}

// photoRotated is photo's JPEG with an EXIF block giving orientation o.
func photoRotated(t *testing.T, o int) []byte {
	b := photo(t, 61, 43)
	exif := []byte{0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0,
		'M', 'M', 0, 42, 0, 0, 0, 8, // TIFF header, IFD at 8
		0, 1, // one entry
		0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0, // orientation, SHORT
		0, 0, 0, 0} // no next IFD
	out := append([]byte{0xFF, 0xD8}, exif...)
	out = append(out, b[2:]...)
	if JPEGOrientation(out) != o {
		t.Fatalf("orientation %d, want %d", JPEGOrientation(out), o)
	}
	return out
}

// samePixels reports whether a and b hold the same samples: their planes
// where both are YCbCr or grey, their colours otherwise.
func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	switch a := a.(type) {
	case *image.YCbCr:
		b, ok := b.(*image.YCbCr)
		if !ok || a.SubsampleRatio != b.SubsampleRatio {
			return false
		}
		r := a.Rect
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if a.Y[a.YOffset(x, y)] != b.Y[b.YOffset(x, y)] ||
					a.Cb[a.COffset(x, y)] != b.Cb[b.COffset(x, y)] || a.Cr[a.COffset(x, y)] != b.Cr[b.COffset(x, y)] {
					return false
				}
			}
		}
		return true
	case *image.Gray:
		b, ok := b.(*image.Gray)
		if !ok {
			return false
		}
		r := a.Rect
		for y := r.Min.Y; y < r.Max.Y; y++ {
			if !bytes.Equal(a.Pix[a.PixOffset(r.Min.X, y):][:r.Dx()], b.Pix[b.PixOffset(r.Min.X, y):][:r.Dx()]) {
				return false
			}
		}
		return true
	}
	r := a.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if a.At(x, y) != b.At(x, y) {
				return false
			}
		}
	}
	return true
}
