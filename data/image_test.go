package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// exifJPEG returns a JPEG of img tagged with EXIF orientation o (APP1
// segment right after SOI), in the byte order bo.
func exifJPEG(t testing.TB, img image.Image, o int, bo binary.ByteOrder) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	var tiff bytes.Buffer
	if bo == binary.BigEndian {
		tiff.WriteString("MM")
	} else {
		tiff.WriteString("II")
	}
	for _, v := range []any{uint16(42), uint32(8), uint16(2),
		uint16(0x010F), uint16(2), uint32(4), [4]byte{'a', 'c', 'm', 0}, // Make: skipped
		uint16(0x0112), uint16(3), uint32(1), uint16(o), uint16(0), uint32(0)} {
		binary.Write(&tiff, bo, v)
	}
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	b := buf.Bytes()
	out := append(append(append([]byte{}, b[:2]...), seg...), payload...)
	return append(out, b[2:]...)
}

// quadrants is a 40 x 20 image: red left half top, green right half top,
// blue bottom-left, white bottom-right.
func quadrants() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := 0; y < 20; y++ {
		for x := 0; x < 40; x++ {
			var c color.RGBA
			switch {
			case y < 10 && x < 20:
				c = color.RGBA{255, 0, 0, 255}
			case y < 10:
				c = color.RGBA{0, 255, 0, 255}
			case x < 20:
				c = color.RGBA{0, 0, 255, 255}
			default:
				c = color.RGBA{255, 255, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(a uint32, w uint8) bool { return int(a>>8)-int(w) < 40 && int(w)-int(a>>8) < 40 }
	return d(r, want.R) && d(g, want.G) && d(b, want.B)
}

func TestEXIFOrientation(t *testing.T) {
	src := quadrants()
	red, green, blue, white := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255}, color.RGBA{255, 255, 255, 255}
	// Expected colours at the displayed top-left, top-right, bottom-left, bottom-right.
	cases := map[int][4]color.RGBA{
		1: {red, green, blue, white},
		2: {green, red, white, blue},
		3: {white, blue, green, red},
		4: {blue, white, red, green},
		5: {red, blue, green, white},
		6: {blue, red, white, green},
		7: {white, green, blue, red},
		8: {green, white, red, blue},
	}
	for o, want := range cases {
		for _, bo := range []binary.ByteOrder{binary.BigEndian, binary.LittleEndian} {
			b := exifJPEG(t, src, o, bo)
			if got := JPEGOrientation(b); got != o {
				t.Fatalf("JPEGOrientation = %d, want %d", got, o)
			}
			img, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			r := img.Bounds()
			if (o >= 5) != (r.Dx() == 20 && r.Dy() == 40) {
				t.Errorf("orientation %d: bounds %v", o, r)
			}
			w, h := r.Dx(), r.Dy()
			corners := [4]image.Point{{3, 3}, {w - 4, 3}, {3, h - 4}, {w - 4, h - 4}}
			for k, p := range corners {
				if !near(img.At(p.X, p.Y), want[k]) {
					t.Errorf("orientation %d (%v): corner %d is %v, want %v", o, bo, k, img.At(p.X, p.Y), want[k])
				}
			}
		}
	}
}

func TestJPEGOrientationGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xFF}, {0xFF, 0xD8}, {0xFF, 0xD8, 0xFF, 0xE1, 0x00}, {0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x02}, []byte("\x89PNG")} {
		if o := JPEGOrientation(b); o != 0 {
			t.Errorf("JPEGOrientation(%x) = %d", b, o)
		}
	}
}

func FuzzJPEGOrientation(f *testing.F) {
	f.Add(exifJPEG(f, quadrants(), 6, binary.BigEndian)[:200])
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := JPEGOrientation(b); o < 0 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}

func TestDecodeFiles(t *testing.T) {
	dir := t.TempDir()
	src := quadrants()
	var pngBuf bytes.Buffer
	png.Encode(&pngBuf, src)
	files := map[string][]byte{
		"a.png":   pngBuf.Bytes(),
		"b.jpg":   exifJPEG(t, src, 6, binary.LittleEndian),
		"bad.jpg": []byte("not an image"),
	}
	for n, b := range files {
		os.WriteFile(filepath.Join(dir, n), b, 0o644)
	}
	img, err := DecodeFile(filepath.Join(dir, "a.png"))
	if err != nil || img.Bounds().Dx() != 40 || !near(img.At(39, 19), color.RGBA{255, 255, 255, 255}) {
		t.Errorf("png: %v %v", err, img)
	}
	if w, h, err := DecodeFileConfig(filepath.Join(dir, "b.jpg")); err != nil || w != 20 || h != 40 {
		t.Errorf("DecodeFileConfig of a rotated JPEG: %d x %d, %v", w, h, err)
	}
	if _, err := DecodeFile(filepath.Join(dir, "bad.jpg")); err == nil || isNotExist(err) {
		t.Errorf("corrupt: %v", err)
	}
	_, err = DecodeFile(filepath.Join(dir, "none.jpg"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
