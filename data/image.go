package data

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // JPEG decoder
	_ "image/png"  // PNG decoder
	"io"
	"io/fs"
	"os"
)

// DecodeFile reads and decodes a JPEG or PNG file within
// DefaultDecodeLimits (a *LimitError past them). A JPEG's EXIF orientation
// is applied, so the image comes out the way a viewer shows it. A missing
// file gives an error matching fs.ErrNotExist.
func DecodeFile(path string) (image.Image, error) {
	return DecodeFileLimited(path, DefaultDecodeLimits)
}

// Decode decodes a JPEG or PNG image held in memory within
// DefaultDecodeLimits, applying a JPEG's EXIF orientation.
func Decode(b []byte) (image.Image, error) {
	return DecodeLimited(context.Background(), b, DefaultDecodeLimits)
}

// DecodeFileConfig returns the displayed size of an image file (after EXIF
// orientation) without decoding its pixels: it reads the header only.
func DecodeFileConfig(path string) (width, height int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	// The EXIF block sits in the first segments; 64 KiB holds it.
	head := make([]byte, 64*1024)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return 0, 0, err
	}
	head = head[:n]
	cfg, _, err := image.DecodeConfig(io.MultiReader(bytes.NewReader(head), f))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	if o := JPEGOrientation(head); o >= 5 {
		return cfg.Height, cfg.Width, nil
	}
	return cfg.Width, cfg.Height, nil
}

// isNotExist reports whether err says a file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// JPEGOrientation returns the EXIF orientation (1..8) of a JPEG held in b, or
// 0 when b is not a JPEG or has no readable orientation tag. It scans the
// marker segments before the image data and parses only IFD0 of an APP1
// "Exif" segment.
func JPEGOrientation(b []byte) int {
	o := 0
	jpegSegments(b, func(marker byte, seg []byte) bool {
		if marker == 0xE1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			o = exifOrientation(seg[6:])
		}
		return o == 0
	})
	return o
}

// jpegSegments calls f with each marker segment (its marker and payload)
// of a JPEG held in b, in order, up to the start of scan, while f returns
// true. It stops quietly at anything malformed or truncated (b may be only
// the file's head), and does nothing when b is not a JPEG.
func jpegSegments(b []byte, f func(marker byte, seg []byte) bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return
	}
	p := 2
	for p+4 <= len(b) {
		if b[p] != 0xFF {
			return
		}
		marker := b[p+1]
		if marker == 0xFF { // fill byte
			p++
			continue
		}
		if marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7) {
			p += 2
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan, end of image
			return
		}
		n := int(binary.BigEndian.Uint16(b[p+2:]))
		if n < 2 || p+2+n > len(b) {
			return
		}
		if !f(marker, b[p+4:p+2+n]) {
			return
		}
		p += 2 + n
	}
}

// exifOrientation reads tag 0x0112 from IFD0 of a TIFF block.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	if bo.Uint16(t[2:]) != 42 {
		return 0
	}
	ifd := int(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > len(t) {
		return 0
	}
	count := int(bo.Uint16(t[ifd:]))
	for i := 0; i < count; i++ {
		e := ifd + 2 + 12*i
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		typ := bo.Uint16(t[e+2:])
		var v int
		switch typ {
		case 3: // SHORT
			v = int(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 0
		}
		if v < 1 || v > 8 {
			return 0
		}
		return v
	}
	return 0
}

// Orient returns img turned to EXIF orientation o (1..8): the stored pixels
// rearranged the way a viewer displays them. Orientation 1 (or an unknown
// value) returns img itself.
func Orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	src := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(src, src.Rect, img, b.Min, draw.Src)
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for dy := 0; dy < dh; dy++ {
		for dx := 0; dx < dw; dx++ {
			var sx, sy int
			switch o {
			case 2: // mirrored horizontally
				sx, sy = w-1-dx, dy
			case 3: // rotated 180
				sx, sy = w-1-dx, h-1-dy
			case 4: // mirrored vertically
				sx, sy = dx, h-1-dy
			case 5: // transposed
				sx, sy = dy, dx
			case 6: // stored rotated 90 counter-clockwise: turn clockwise
				sx, sy = dy, h-1-dx
			case 7: // transversed
				sx, sy = w-1-dy, h-1-dx
			case 8: // stored rotated 90 clockwise: turn counter-clockwise
				sx, sy = w-1-dy, dx
			}
			copy(dst.Pix[dy*dst.Stride+4*dx:dy*dst.Stride+4*dx+4], src.Pix[sy*src.Stride+4*sx:])
		}
	}
	return dst
}

// statFile returns the size of a regular file, or an error (fs.ErrNotExist
// for a missing one).
func statFile(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: not a regular file", path)
	}
	return fi.Size(), nil
}
