package jpegscale

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"
)

// kernels lists the full-scale inverse DCTs this machine runs: the pure
// Go one and, where the CPU has it, the assembly one. Each test that
// decodes at scale 1 runs under each (withKernel).
func kernels() map[string]func(*[64]int32, []byte, int) {
	ks := map[string]func(*[64]int32, []byte, int){"go": idct8Go}
	if idct8Asm != nil {
		ks["asm"] = idct8Asm
	}
	return ks
}

func withKernel(t *testing.T, f func(t *testing.T)) {
	saved := idct8
	defer func() { idct8 = saved }()
	for name, k := range kernels() {
		idct8 = k
		t.Run(name, f)
	}
}

// TestIDCT8Constants: each constant is 2^b times its cosine, rounded.
func TestIDCT8Constants(t *testing.T) {
	r := func(x float64, b int) int32 { return int32(math.Round(math.Ldexp(x, b))) }
	c6, s6, c1, s1 := math.Cos(6*math.Pi/16), math.Sin(6*math.Pi/16), math.Cos(math.Pi/16), math.Sin(math.Pi/16)
	c3, s3 := math.Cos(3*math.Pi/16), math.Sin(3*math.Pi/16)
	for _, c := range []struct {
		name      string
		got, want int32
	}{
		{"kC6r", kC6r, r(c6/math.Sqrt2, 18)}, {"kS6r", kS6r, r(s6/math.Sqrt2, 18)}, {"kR2r", kR2r, r(1/math.Sqrt2, 8)},
		{"kC6c", kC6c, r(c6/math.Sqrt2, 12)}, {"kS6c", kS6c, r(s6/math.Sqrt2, 12)}, {"kR2c", kR2c, r(1/math.Sqrt2, 14)},
		{"kC1", kC1, r(c1, 12)}, {"kS1", kS1, r(s1, 12)}, {"kC3", kC3, r(c3, 12)}, {"kS3", kS3, r(s3, 12)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// randomBlock is a block of coefficients of the kind k: sparse and
// small, dense and photo-like, huge (the int32 products of a 16-bit
// quantisation table wrap), or only the DC term.
func randomBlock(r *rand.Rand, kind int) (blk [64]int32) {
	switch kind {
	case 0:
		for range 1 + r.IntN(6) {
			blk[r.IntN(64)] = int32(r.IntN(601) - 300)
		}
	case 1:
		for i := range blk {
			blk[i] = int32(r.NormFloat64() * 400 / float64(1+i%8+i/8))
		}
	case 2:
		for i := range blk {
			blk[i] = int32(r.Uint32())
		}
	default:
		blk[0] = int32(r.IntN(1<<16) - 1<<15)
	}
	return blk
}

// TestIDCT8Kernels: the assembly kernel writes idct8Go's bytes for every
// kind of block, at any stride, and nothing around the 8×8 it owns.
func TestIDCT8Kernels(t *testing.T) {
	ks := kernels()
	asm, ok := ks["asm"]
	if !ok {
		t.Skip("no assembly kernel on this machine")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 4000 {
		blk := randomBlock(r, i%4)
		stride := 8 + r.IntN(40)
		want := bytes.Repeat([]byte{0xA5}, 10*stride+16)
		got := bytes.Clone(want)
		a, b := blk, blk
		idct8Go(&a, want[stride+3:], stride)
		asm(&b, got[stride+3:], stride)
		if !bytes.Equal(got, want) {
			t.Fatalf("block %d (kind %d, stride %d): the kernels differ\nasm %v\ngo  %v", i, i%4, stride, got, want)
		}
	}
}

// TestDC8: a block of the DC term alone comes out as dc8 says, through
// either kernel.
func TestDC8(t *testing.T) {
	for name, k := range kernels() {
		for _, dc := range []int32{0, 1, -1, 7, -9, 1016, -1024, 4000, -4000, 1 << 14, 1<<15 - 1, math.MaxInt32, math.MinInt32} {
			var blk [64]int32
			blk[0] = dc
			out := make([]byte, 64)
			k(&blk, out, 8)
			for i, v := range out {
				if v != dc8(dc) {
					t.Fatalf("%s: DC %d: pixel %d is %d, dc8 says %d", name, dc, i, v, dc8(dc))
				}
			}
		}
	}
}

// TestIDCT8MatchesImageJPEG: grey JPEGs made of chosen coefficients
// (sparse, photo-like, at the limits of 16-bit quantisation tables, so
// that image/jpeg's int32 arithmetic wraps) decode here to image/jpeg's
// bytes, under each kernel.
func TestIDCT8MatchesImageJPEG(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const bw, bh = 6, 5 // blocks
	var files [][]byte
	for kind := range 4 {
		var q [64]uint16
		for i := range q {
			q[i] = uint16(1 + r.IntN(4))
			if kind == 2 {
				q[i] = uint16(1 + r.IntN(65535))
			}
		}
		blocks := make([][64]int32, bw*bh) // zigzag order, quantised
		for b := range blocks {
			for k := range 64 {
				switch kind {
				case 0: // sparse
					if r.IntN(8) == 0 {
						blocks[b][k] = int32(r.IntN(201) - 100)
					}
				case 1: // photo-like
					blocks[b][k] = int32(r.NormFloat64() * 200 / float64(1+k))
				case 2: // the largest values the code takes
					blocks[b][k] = int32(r.IntN(1<<16) - 1<<15)
					if blocks[b][k] == 0 || blocks[b][k] == -1<<15 {
						blocks[b][k] = 1<<15 - 1
					}
					if k == 0 { // differences of 15 bits at most
						blocks[b][k] /= 2
					}
				default: // DC alone, some large
					if k == 0 {
						blocks[b][k] = int32(r.IntN(4095) - 2047)
					}
				}
			}
		}
		files = append(files, greyJPEG(t, bw*8-3, bh*8-5, &q, blocks))
	}
	withKernel(t, func(t *testing.T) {
		for i, b := range files {
			want, err := jpeg.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("file %d: image/jpeg: %v", i, err)
			}
			got, err := Decode(b, 1, 1<<20, nil)
			if err != nil {
				t.Fatalf("file %d: %v", i, err)
			}
			g, w := got.(*image.Gray), want.(*image.Gray)
			if g.Rect != w.Rect {
				t.Fatalf("file %d: %v, want %v", i, g.Rect, w.Rect)
			}
			for y := range w.Rect.Dy() {
				if a, b := g.Pix[y*g.Stride:][:w.Rect.Dx()], w.Pix[y*w.Stride:][:w.Rect.Dx()]; !bytes.Equal(a, b) {
					t.Fatalf("file %d row %d:\n got %v\nwant %v", i, y, a, b)
				}
			}
		}
	})
}

// greyJPEG writes a baseline grey JPEG of w×h whose blocks (row by row,
// in zigzag order) hold the given quantised coefficients (the DC terms
// as they are, not as differences), with the 16-bit quantisation table
// q and Huffman tables that code every size up to 15 bits.
func greyJPEG(t *testing.T, w, h int, q *[64]uint16, blocks [][64]int32) []byte {
	var out bytes.Buffer
	seg := func(marker byte, body []byte) {
		out.Write([]byte{0xFF, marker, byte((len(body) + 2) >> 8), byte(len(body) + 2)})
		out.Write(body)
	}
	out.Write([]byte{0xFF, 0xD8})
	dqt := []byte{0x10}
	for k := range 64 {
		dqt = append(dqt, byte(q[k]>>8), byte(q[k]))
	}
	seg(0xDB, dqt)
	seg(0xC1, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 1, 1, 0x11, 0})
	// DC: sizes 0..15, 5-bit codes; AC: EOB, ZRL and every run/size of
	// sizes 1..15, 8-bit codes (canonical: a symbol's code is its index).
	dcSyms := make([]byte, 16)
	for i := range dcSyms {
		dcSyms[i] = byte(i)
	}
	acSyms := []byte{0x00, 0xF0}
	for run := range 16 {
		for size := 1; size <= 15; size++ {
			acSyms = append(acSyms, byte(run<<4|size))
		}
	}
	dht := func(class byte, bits int, syms []byte) {
		body := []byte{class << 4}
		counts := make([]byte, 16)
		counts[bits-1] = byte(len(syms))
		body = append(append(body, counts...), syms...)
		seg(0xC4, body)
	}
	dht(0, 5, dcSyms)
	dht(1, 8, acSyms)
	seg(0xDA, []byte{1, 1, 0x00, 0, 63, 0})

	var acc uint64
	var n uint
	put := func(v uint32, bits uint) {
		acc = acc<<bits | uint64(v)&(1<<bits-1)
		n += bits
		for n >= 8 {
			c := byte(acc >> (n - 8))
			out.WriteByte(c)
			if c == 0xFF {
				out.WriteByte(0)
			}
			n -= 8
		}
	}
	value := func(v int32) (size uint, bits uint32) {
		a := v
		if a < 0 {
			a = -a
		}
		for a>>size != 0 {
			size++
		}
		if v < 0 {
			v += 1<<size - 1
		}
		return size, uint32(v)
	}
	index := func(sym byte) uint32 {
		for i, s := range acSyms {
			if s == sym {
				return uint32(i)
			}
		}
		t.Fatalf("symbol %#x", sym)
		return 0
	}
	pred := int32(0)
	for _, blk := range blocks {
		size, bits := value(blk[0] - pred)
		if size > 15 {
			t.Fatalf("DC difference %d", blk[0]-pred)
		}
		pred = blk[0]
		put(uint32(size), 5)
		put(bits, size)
		run := 0
		for k := 1; k < 64; k++ {
			if blk[k] == 0 {
				run++
				continue
			}
			for ; run >= 16; run -= 16 {
				put(index(0xF0), 8)
			}
			size, bits := value(blk[k])
			put(index(byte(run<<4)|byte(size)), 8)
			put(bits, size)
			run = 0
		}
		if run > 0 {
			put(index(0x00), 8)
		}
	}
	if n > 0 {
		put(1<<(8-n)-1, 8-n) // pad with ones
	}
	out.Write([]byte{0xFF, 0xD9})
	return out.Bytes()
}

// TestIDCT4Kernels: the assembly 4-point inverse DCT (the half scale)
// writes idct4's bytes for every kind of block, at any stride, and
// nothing around the 4×4 it owns.
func TestIDCT4Kernels(t *testing.T) {
	if idct4Asm == nil {
		t.Skip("no assembly kernel on this machine")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 4000 {
		blk := randomBlock(r, i%4)
		if i%4 == 2 {
			for j := range blk {
				blk[j] >>= r.IntN(24) // large, but not all beyond the clamp
			}
		}
		stride := 4 + r.IntN(40)
		want := bytes.Repeat([]byte{0xA5}, 6*stride+8)
		got := bytes.Clone(want)
		idct4(&blk, want[stride+2:], stride)
		idct4Asm(&blk, got[stride+2:], stride)
		if !bytes.Equal(got, want) {
			t.Fatalf("block %d (kind %d, stride %d): the kernels differ\nasm %v\ngo  %v", i, i%4, stride, got, want)
		}
	}
}
