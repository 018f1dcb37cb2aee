package jpegscale

import "encoding/binary"

// lookBits is how many bits the Huffman tables resolve in one lookup;
// longer codes (rare: JPEG's usual tables put every frequent symbol
// within 9 bits) take the canonical search. 10 rather than 9 resolves
// more coefficients' codes and values together (fast): 6–10% faster
// whole decodes on a Zen 4; 12 was slower on small files.
const lookBits = 10

// huffman is one Huffman table.
type huffman struct {
	// look[c] for the next lookBits bits c: the code's length << 8 | its
	// symbol, or 0 when the code is longer.
	look [1 << lookBits]uint16
	// For the codes of length l: max[l] is one past the largest
	// (left-aligned in 16 bits, so that codes compare as the next 16
	// bits), first[l] the first code, index[l] its symbol's index.
	max          [17]uint32
	first, index [17]int32
	vals         [256]byte
	nvals        int
	// fast[c], for an AC table, resolves a whole coefficient in the next
	// lookBits bits c where its code and its value's bits fit in them:
	// value << 16 | run << 8 | the bits taken; 0 where they do not (an
	// end of block, a run of 16 zeros, a long code or value).
	fast [1 << lookBits]int32
}

// parseHuffman reads a DHT segment (one or more tables).
func (d *decoder) parseHuffman(s []byte) error {
	for len(s) > 0 {
		if len(s) < 17 {
			return unsupported("DHT of %d bytes", len(s))
		}
		tc, th := s[0]>>4, int(s[0]&15)
		if tc > 1 || th > 3 {
			return unsupported("DHT class %d, table %d", tc, th)
		}
		counts := s[1:17]
		total := 0
		for _, c := range counts {
			total += int(c)
		}
		if total == 0 || total > 256 || len(s) < 17+total {
			return unsupported("DHT of %d symbols in %d bytes", total, len(s))
		}
		h := new(huffman)
		h.nvals = copy(h.vals[:], s[17:17+total])
		code, k := 0, 0
		for l := 1; l <= 16; l++ {
			n := int(counts[l-1])
			h.first[l], h.index[l] = int32(code), int32(k)
			for range n {
				if code >= 1<<l {
					return unsupported("DHT: more codes of %d bits than fit", l)
				}
				if l <= lookBits {
					// Every lookBits-bit pattern starting with this code.
					lo := code << (lookBits - l)
					for c := lo; c < lo+1<<(lookBits-l); c++ {
						h.look[c] = uint16(l)<<8 | uint16(h.vals[k])
					}
				}
				code++
				k++
			}
			h.max[l] = uint32(code) << (16 - l)
			code <<= 1
		}
		if tc == 0 {
			d.dc[th] = h
		} else {
			h.setFast()
			d.ac[th] = h
		}
		s = s[17+total:]
	}
	return nil
}

// setFast fills fast from look.
func (h *huffman) setFast() {
	for c, e := range h.look {
		if e == 0 {
			continue
		}
		l, rs := int(e>>8), int(e&0xFF)
		run, size := rs>>4, rs&15
		if size == 0 || l+size > lookBits {
			continue
		}
		v := int32(c>>(lookBits-l-size)) & (1<<size - 1)
		if v < 1<<(size-1) {
			v += -1<<size + 1
		}
		h.fast[c] = v<<16 | int32(run)<<8 | int32(l+size)
	}
}

// bitReader reads the entropy-coded data of a scan: bytes of 0xFF are
// followed by a stuffed 0x00, and a marker ends a restart interval or the
// scan. At a marker or the end of b it reads zeros, counting them, so
// that overrun can tell a scan that needed them (damaged or cut short).
type bitReader struct {
	b      []byte
	pos    int    // the next byte of b
	acc    uint64 // the bits read and not yet taken, from the top
	n      int    // how many
	stop   bool   // at a marker or the end: zeros from here
	padded int    // bytes of zeros read
}

// fill tops acc up to at least 57 bits.
func (r *bitReader) fill() {
	if !r.stop && r.pos+8 <= len(r.b) {
		// As many whole bytes as acc has room for, at once, where the
		// next eight hold no 0xFF (no stuffing, no marker).
		w := binary.BigEndian.Uint64(r.b[r.pos:])
		if v := ^w; (v-0x0101010101010101)&^v&0x8080808080808080 == 0 {
			k := (64 - r.n) >> 3
			r.acc |= w >> (64 - 8*k) << (64 - 8*k - r.n)
			r.pos += k
			r.n += 8 * k
			return
		}
	}
	for r.n <= 56 {
		var c byte
		switch {
		case r.stop:
			r.padded++
		case r.pos >= len(r.b):
			r.stop = true
			r.padded++
		case r.b[r.pos] != 0xFF:
			c = r.b[r.pos]
			r.pos++
		case r.pos+1 < len(r.b) && r.b[r.pos+1] == 0:
			c = 0xFF
			r.pos += 2
		default: // a marker: left for restart
			r.stop = true
			r.padded++
		}
		r.acc |= uint64(c) << (56 - r.n)
		r.n += 8
	}
}

// overrun reports whether bits past the data were taken.
func (r *bitReader) overrun() bool { return r.n < 8*r.padded }

// decode reads one Huffman-coded symbol.
func (r *bitReader) decode(h *huffman) (byte, error) {
	if r.n < 32 {
		r.fill()
	}
	if e := h.look[r.acc>>(64-lookBits)]; e != 0 {
		l := int(e >> 8)
		r.acc <<= l
		r.n -= l
		return byte(e), nil
	}
	c := uint32(r.acc >> 48) // the next 16 bits
	for l := lookBits + 1; l <= 16; l++ {
		if c < h.max[l] {
			p := int32(c >> (16 - l))
			i := h.index[l] + p - h.first[l]
			if p < h.first[l] || int(i) >= h.nvals {
				break
			}
			r.acc <<= l
			r.n -= l
			return h.vals[i], nil
		}
	}
	return 0, unsupported("bad Huffman code")
}

// fastAC reads the next AC coefficient through h's fast table where its
// code and value fit in lookBits bits (acc holding at least that many):
// the zeros before it and its value; ok is false, with nothing read,
// where they do not.
func (r *bitReader) fastAC(h *huffman) (run int, v int32, ok bool) {
	f := h.fast[r.acc>>(64-lookBits)]
	if f == 0 {
		return 0, 0, false
	}
	l := int(f & 0xFF)
	r.acc <<= l
	r.n -= l
	return int(f>>8) & 15, f >> 16, true
}

// receive reads an s-bit coefficient (s ≤ 16) and extends its sign: the
// codes below 2^(s−1) stand for the negative values.
func (r *bitReader) receive(s int) int32 {
	v := int32(r.bits(s))
	if s > 0 && v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

// bit reads one bit.
func (r *bitReader) bit() bool {
	if r.n < 32 {
		r.fill()
	}
	b := r.acc>>63 != 0
	r.acc <<= 1
	r.n--
	return b
}

// bits reads s bits (s ≤ 16) as an unsigned number.
func (r *bitReader) bits(s int) uint32 {
	if s == 0 {
		return 0
	}
	if r.n < 32 {
		r.fill()
	}
	v := uint32(r.acc >> (64 - s))
	r.acc <<= s
	r.n -= s
	return v
}

// skip drops s bits (s ≤ 16).
func (r *bitReader) skip(s int) { r.bits(s) }

// restart moves past the marker RSTn, n = want, that ends a restart
// interval: the bits left of the last byte are padding.
func (r *bitReader) restart(want int) error {
	if r.overrun() {
		return unsupported("the data ends inside a restart interval")
	}
	// Whatever is left before the marker (the padding; stray bytes a
	// damaged file may hold) is passed over, as decoders do.
	for r.pos+1 < len(r.b) && !(r.b[r.pos] == 0xFF && r.b[r.pos+1] != 0 && r.b[r.pos+1] != 0xFF) {
		r.pos++
	}
	if r.pos+1 >= len(r.b) || r.b[r.pos+1] != byte(0xD0+want) {
		return unsupported("restart marker RST%d missing", want)
	}
	r.pos += 2
	r.acc, r.n, r.stop, r.padded = 0, 0, false, 0
	return nil
}
