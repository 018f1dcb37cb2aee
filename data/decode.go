package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
)

// Decoding an image costs memory out of proportion to its file: a 300 KB
// PNG of 6300×6300 16-bit RGBA pixels decodes into 320 MB. So every image
// this package decodes is first measured from its header, and refused when
// the memory its decoding would take passes a limit.

// DecodeLimits bound the decoding of one image.
type DecodeLimits struct {
	// MaxPixels bounds width × height.
	MaxPixels int64
	// MaxBytes bounds the memory decoding and preparing the image takes
	// (DecodeCost's estimate).
	MaxBytes int64
}

// StandardDecodeLimits are 40 megapixels and 256 MiB: enough for any
// camera photo (a 48-megapixel phone JPEG costs about 270 MiB with its
// RGBA crop, so it needs the flags), not for a crafted PNG.
func StandardDecodeLimits() DecodeLimits {
	return DecodeLimits{MaxPixels: 40_000_000, MaxBytes: 256 << 20}
}

// DefaultDecodeLimits apply to DecodeFile and Decode; StandardDecodeLimits
// unless a command changes them once at start (the tools' -max-pixels and
// -max-decode-bytes flags).
var DefaultDecodeLimits = StandardDecodeLimits()

// Validate checks the limits.
func (l DecodeLimits) Validate() error {
	if l.MaxPixels < 1 {
		return fmt.Errorf("the pixel limit must be positive, got %d", l.MaxPixels)
	}
	if l.MaxBytes < 1 {
		return fmt.Errorf("the decoded-bytes limit must be positive, got %d", l.MaxBytes)
	}
	return nil
}

// LimitError says that an image is over a DecodeLimits bound; Flag names the
// limit ("-max-pixels" or "-max-decode-bytes") so that a message can say
// which setting to raise.
type LimitError struct {
	Width, Height int
	Cost          int64 // bytes, DecodeCost's estimate
	Limit         int64 // the bound that was passed
	Flag          string
}

func (e *LimitError) Error() string {
	if e.Flag == "-max-pixels" {
		return fmt.Sprintf("the image is %d×%d pixels, more than the limit of %d pixels (-max-pixels)", e.Width, e.Height, e.Limit)
	}
	return fmt.Sprintf("the %d×%d image would take %s to decode, more than the limit of %s (-max-decode-bytes)",
		e.Width, e.Height, mib(e.Cost), mib(e.Limit))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Cost is what decoding an image will take, read from its header.
type Cost struct {
	Format        string // "png" or "jpeg"
	Width, Height int    // as stored (before EXIF orientation)
	Bytes         int64  // an upper bound of the memory decoding and preparing it take
}

// DecodeCost reads the header of a JPEG or PNG held in b (the first 64 KiB
// are enough) and returns its size and an upper bound of the memory that
// Decode and the image transforms take for it: the decoder's own buffers,
// the copies EXIF orientation makes, and the RGBA conversion of a JPEG's
// crop. The bound follows the standard library's decoders:
//   - PNG: the pixels at the colour model's size (1 byte per pixel for grey
//     and palette, 2 for 16-bit grey, 4 for 8-bit RGBA, 8 for 16-bit RGBA),
//     twice that when interlaced (each pass is decoded on its own), two
//     rows and the inflater's buffers;
//   - JPEG: each component's plane at its sampling, padded to whole MCUs,
//     plus 4 bytes per coefficient and component for a progressive file
//     (its coefficients are held until the end), plus the CMYK conversion.
func DecodeCost(b []byte) (Cost, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return Cost{}, err
	}
	c := Cost{Format: format, Width: cfg.Width, Height: cfg.Height}
	px := int64(cfg.Width) * int64(cfg.Height)
	switch format {
	case "png":
		bpp := int64(pngBytesPerPixel(cfg.ColorModel))
		c.Bytes = px * bpp
		if len(b) > 28 && b[28] == 1 { // IHDR's interlace method: Adam7
			c.Bytes *= 2
		}
		c.Bytes += 2*(int64(cfg.Width)*bpp+1) + decoderOverhead // two raw rows
	case "jpeg":
		c.Bytes = jpegCost(b, cfg.Width, cfg.Height) + 4*px + decoderOverhead // + the crop as RGBA
		if JPEGOrientation(b) > 1 {
			c.Bytes += 8 * px // Orient's two RGBA copies
		}
	default:
		c.Bytes = 8 * px
	}
	return c, nil
}

// decoderOverhead covers a decoder's fixed buffers (reader, inflate or
// Huffman state).
const decoderOverhead = 96 << 10

func pngBytesPerPixel(m color.Model) int {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4
}

// jpegCost is the decoder's memory for a JPEG of w×h pixels, from its frame
// header (SOFn); without a readable one it assumes 4:4:4 progressive YCbCr.
func jpegCost(b []byte, w, h int) int64 {
	px := int64(w) * int64(h)
	fallback := 3*px + 12*px
	comps, progressive, ok := jpegFrame(b)
	if !ok || len(comps) == 0 {
		return fallback
	}
	hmax, vmax := 1, 1
	for _, c := range comps {
		hmax, vmax = max(hmax, c[0]), max(vmax, c[1])
	}
	// Planes are allocated for whole MCUs.
	mw := (int64(w) + int64(8*hmax) - 1) / int64(8*hmax) * int64(8*hmax)
	mh := (int64(h) + int64(8*vmax) - 1) / int64(8*vmax) * int64(8*vmax)
	var samples int64
	for _, c := range comps {
		samples += mw * int64(c[0]) / int64(hmax) * mh * int64(c[1]) / int64(vmax)
	}
	n := samples
	if progressive {
		n += 4 * samples // one int32 per coefficient
	}
	if len(comps) == 4 {
		n += 4 * px // CMYK output
	}
	return n
}

// jpegFrame returns the sampling factors (h, v) of each component of a
// JPEG's frame header and whether the frame is progressive.
func jpegFrame(b []byte) (comps [][2]int, progressive, ok bool) {
	jpegSegments(b, func(marker byte, seg []byte) bool {
		// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
		if marker < 0xC0 || marker > 0xCF || marker == 0xC4 || marker == 0xC8 || marker == 0xCC {
			return true
		}
		if len(seg) < 6 {
			return false
		}
		nc := int(seg[5])
		if nc < 1 || len(seg) < 6+3*nc {
			return false
		}
		for i := 0; i < nc; i++ {
			hv := seg[6+3*i+1]
			hs, vs := int(hv>>4), int(hv&15)
			if hs < 1 || vs < 1 {
				comps = nil
				return false
			}
			comps = append(comps, [2]int{hs, vs})
		}
		progressive, ok = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE, true
		return false
	})
	return comps, progressive, ok
}

// Check returns a *LimitError when c passes l.
func (l DecodeLimits) Check(c Cost) error {
	if l.MaxPixels > 0 && int64(c.Width)*int64(c.Height) > l.MaxPixels {
		return &LimitError{Width: c.Width, Height: c.Height, Cost: c.Bytes, Limit: l.MaxPixels, Flag: "-max-pixels"}
	}
	if l.MaxBytes > 0 && c.Bytes > l.MaxBytes {
		return &LimitError{Width: c.Width, Height: c.Height, Cost: c.Bytes, Limit: l.MaxBytes, Flag: "-max-decode-bytes"}
	}
	return nil
}

// DecodeLimited decodes a JPEG or PNG held in b after checking its cost
// against l (a *LimitError past it), applying a JPEG's EXIF orientation.
// Decoding stops with ctx's error once ctx is done: the decoder reads
// through a reader that checks ctx.
func DecodeLimited(ctx context.Context, b []byte, l DecodeLimits) (image.Image, error) {
	c, err := DecodeCost(b)
	if err != nil {
		return nil, err
	}
	if err := l.Check(c); err != nil {
		return nil, err
	}
	return decodeChecked(ctx, b, c)
}

// decodeChecked decodes b, whose cost c was checked: a JPEG that
// jpegscale takes through it at full scale (image/jpeg's bytes, in a
// third of the time: data/internal/jpegscale/idct8.go), anything else
// through the standard library's decoders.
func decodeChecked(ctx context.Context, b []byte, c Cost) (image.Image, error) {
	if c.Format == "jpeg" {
		img, ok, err := decodeJPEG(ctx, b, c, 1, JPEGOrientation(b))
		if ok || err != nil {
			return img, err
		}
	}
	var r io.Reader = bytes.NewReader(b)
	if ctx.Done() != nil {
		r = &ctxReader{ctx: ctx, r: r}
	}
	img, _, err := image.Decode(r)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if o := JPEGOrientation(b); o > 1 {
		img = Orient(img, o)
	}
	return img, nil
}

// ctxReader fails its reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	// Small reads keep the checks frequent: the decoders buffer anyway.
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	return c.r.Read(p)
}

// DecodeFileCost is DecodeCost for a file: it reads the file's first
// 64 KiB (which hold the header and the EXIF block), not its pixels.
func DecodeFileCost(path string) (Cost, error) {
	f, err := os.Open(path)
	if err != nil {
		return Cost{}, err
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Cost{}, err
	}
	c, err := DecodeCost(head[:n])
	if err != nil {
		return Cost{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// DecodeFileLimited reads and decodes a JPEG or PNG file within l; errors
// name the file. A file larger than l.MaxBytes is refused before it is read.
func DecodeFileLimited(path string, l DecodeLimits) (image.Image, error) {
	b, err := readLimited(path, l)
	if err != nil {
		return nil, err
	}
	img, err := DecodeLimited(context.Background(), b, l)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// readLimited reads a regular file of at most l.MaxBytes; errors name it
// (but for a missing file's, which matches fs.ErrNotExist).
func readLimited(path string, l DecodeLimits) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if l.MaxBytes > 0 && fi.Size() > l.MaxBytes {
		return nil, fmt.Errorf("%s: the file is %s, more than the limit of %s (-max-decode-bytes)", path, mib(fi.Size()), mib(l.MaxBytes))
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// IsLimit reports whether err is (or wraps) a *LimitError.
func IsLimit(err error) bool {
	var le *LimitError
	return errors.As(err, &le)
}
