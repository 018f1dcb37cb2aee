package jpegscale

import (
	"fmt"
	"image"
	"math"
)

// Progressive JPEGs (SOF2) send each block's coefficients over several
// scans: the DC terms first (maybe in several passes of bits, from the
// high ones), then bands of the AC terms, each component on its own, in
// passes of bits too. The coefficients of every block are kept until
// EOI (64 int16 a block: 5.8 MB for a 1200×1600 4:2:0 photo), then each
// block's n×n lowest are dequantised and go through the n-point inverse
// DCT as a sequential frame's do. The scans follow ITU-T T.81, G.1.

// maxScans bounds the scans of a progressive frame: each may visit every
// block of the image, so a file of many tiny scans would cost time out
// of all proportion to its size (encoders write about ten).
const maxScans = 256

// errWide refuses a coefficient that 16 bits do not hold. image/jpeg
// keeps 32, so it decodes the file (to its own values): a valid file's
// coefficients take 16 bits at most.
var errWide = unsupported("a coefficient of more than 16 bits")

// errPastBand refuses a coefficient past the scan's band.
var errPastBand = unsupported("a coefficient past the band")

// progressive is a progressive frame's state.
type progressive struct {
	on     bool
	scans  int
	coef   [3][]int16 // each component's blocks, 64 coefficients each (row-major), in its padded grid
	eobrun int        // blocks left in the current run of ends of block
	// the scan being decoded
	comps          []int   // indices into decoder.comps, in frame order
	scanned        [3]bool // whether a scan has carried the component
	ss, se, ah, al int
}

// progressiveScan parses a progressive scan's SOS segment seg and decodes
// its data at the start of b, and returns how many bytes of b it took
// (up to the marker that follows).
func (d *decoder) progressiveScan(seg, b []byte) (int, error) {
	p := &d.prog
	if !d.frame {
		return 0, unsupported("scan before the frame")
	}
	if len(seg) < 1 || len(seg) != 4+2*int(seg[0]) || seg[0] == 0 {
		return 0, unsupported("SOS of %d bytes", len(seg))
	}
	ns := int(seg[0])
	p.comps = p.comps[:0]
	for j := range ns {
		id, t := int(seg[1+2*j]), seg[2+2*j]
		k := -1
		for c := range d.comps {
			if d.comps[c].id == id {
				k = c
			}
		}
		if k < 0 || len(p.comps) > 0 && k <= p.comps[len(p.comps)-1] {
			return 0, unsupported("scan component %d missing from the frame or out of its order", id)
		}
		d.comps[k].td, d.comps[k].ta = int(t>>4), int(t&15)
		if d.comps[k].td > 3 || d.comps[k].ta > 3 {
			return 0, unsupported("scan component %d: table %#x", id, t)
		}
		p.comps = append(p.comps, k)
		p.scanned[k] = true
	}
	a := seg[1+2*ns:]
	p.ss, p.se, p.ah, p.al = int(a[0]), int(a[1]), int(a[2]>>4), int(a[2]&15)
	switch {
	case p.ss > p.se || p.se > 63 || p.ah > 13 || p.al > 13:
		return 0, unsupported("scan band %d..%d, bits %d→%d", p.ss, p.se, p.ah, p.al)
	case p.ss == 0 && p.se != 0:
		return 0, unsupported("a scan of the DC and AC terms together")
	case p.ss > 0 && ns != 1:
		return 0, unsupported("an AC scan of %d components", ns)
	}
	for _, k := range p.comps {
		c := d.comps[k]
		if p.ss == 0 && p.ah == 0 && d.dc[c.td] == nil || p.ss > 0 && d.ac[c.ta] == nil {
			return 0, unsupported("component %d: Huffman table missing", c.id)
		}
	}
	if p.scans == 0 {
		mcusX, mcusY := d.mcus()
		for c := range d.comps {
			cp := &d.comps[c]
			p.coef[c] = make([]int16, 64*mcusX*cp.h*mcusY*cp.v)
		}
	}
	if p.scans == maxScans {
		// Not ErrUnsupported: no decoder should spend the time.
		return 0, fmt.Errorf("jpegscale: more than %d scans (a progressive JPEG has about 10)", maxScans)
	}
	p.scans++
	for c := range d.comps {
		d.comps[c].pred = 0
	}
	p.eobrun = 0
	r := bitReader{b: b}
	if err := d.progressiveData(&r); err != nil {
		return 0, err
	}
	// The data end at the next marker that is not a restart.
	i := r.pos
	for i+1 < len(b) && !(b[i] == 0xFF && b[i+1] != 0 && b[i+1] != 0xFF && (b[i+1] < 0xD0 || b[i+1] > 0xD7)) {
		i++
	}
	return i, nil
}

// progressiveData decodes the scan's entropy-coded data: MCUs of the
// components when it has several (DC scans only), else the component's
// blocks that cover the image, one by one.
func (d *decoder) progressiveData(r *bitReader) error {
	p := &d.prog
	mcusX, mcusY := d.mcus()
	type place struct{ c, bx, by int } // a block of component c
	var units, across int
	if len(p.comps) > 1 {
		units, across = mcusX*mcusY, mcusX
	} else {
		// A component alone: its blocks that hold pixels of the image.
		cp := d.comps[p.comps[0]]
		w := (d.w*cp.h + d.hmax - 1) / d.hmax
		h := (d.h*cp.v + d.vmax - 1) / d.vmax
		if len(d.comps) == 1 {
			w, h = d.w, d.h
		}
		across = (w + 7) / 8
		units = across * ((h + 7) / 8)
	}
	left, next := d.restart, 0
	for u := range units {
		if u%across == 0 && d.check != nil {
			if err := d.check(); err != nil {
				return err
			}
		}
		if d.restart > 0 {
			if left == 0 {
				if err := r.restart(next); err != nil {
					return err
				}
				next = (next + 1) % 8
				left = d.restart
				p.eobrun = 0
				for c := range d.comps {
					d.comps[c].pred = 0
				}
			}
			left--
		}
		if len(p.comps) == 1 {
			k := p.comps[0]
			cp := &d.comps[k]
			stride := mcusX * cp.h // blocks a row of the padded grid
			if err := d.progressiveBlock(r, cp, (*[64]int16)(p.coef[k][64*((u/across)*stride+u%across):])); err != nil {
				return err
			}
		} else {
			mx, my := u%mcusX, u/mcusX
			for _, k := range p.comps {
				cp := &d.comps[k]
				stride := mcusX * cp.h
				for by := range cp.v {
					for bx := range cp.h {
						at := (my*cp.v+by)*stride + mx*cp.h + bx
						if err := d.progressiveBlock(r, cp, (*[64]int16)(p.coef[k][64*at:])); err != nil {
							return err
						}
					}
				}
			}
		}
		if r.overrun() {
			return unsupported("the data end inside unit %d of %d", u, units)
		}
	}
	if p.eobrun > 0 {
		// A run of ends of bands longer than the blocks left: image/jpeg
		// carries it into the next scan, where it skips blocks.
		return unsupported("a run of %d ends of bands past the scan's end", p.eobrun)
	}
	return nil
}

// progressiveBlock decodes the scan's part of one block's coefficients
// (row-major in blk).
func (d *decoder) progressiveBlock(r *bitReader, cp *component, blk *[64]int16) error {
	p := &d.prog
	if p.ss == 0 {
		if p.ah == 0 {
			s, err := r.decode(d.dc[cp.td])
			if err != nil {
				return err
			}
			if s > 16 {
				return unsupported("DC difference of %d bits", s)
			}
			cp.pred += r.receive(int(s))
			v := cp.pred << p.al
			if v != int32(int16(v)) {
				return errWide
			}
			blk[0] = int16(v)
		} else if r.bit() {
			blk[0] |= 1 << p.al
		}
		return nil
	}
	ac := d.ac[cp.ta]
	if p.ah == 0 {
		// First pass of a band.
		if p.eobrun > 0 {
			p.eobrun--
			return nil
		}
		for k := p.ss; k <= p.se; k++ {
			if r.n < 32 {
				r.fill()
			}
			if run, v, ok := r.fastAC(ac); ok {
				k += run
				if k > p.se {
					return errPastBand
				}
				v <<= p.al
				if v != int32(int16(v)) {
					return errWide
				}
				blk[zigzag[k]] = int16(v)
				continue
			}
			rs, err := r.decode(ac)
			if err != nil {
				return err
			}
			run, size := int(rs>>4), int(rs&15)
			if size == 0 {
				if run < 15 {
					p.eobrun = 1<<run - 1
					if run > 0 {
						p.eobrun += int(r.bits(run))
					}
					return nil
				}
				k += 15
				continue
			}
			k += run
			if k > p.se {
				// image/jpeg ends the block there, before the value.
				return errPastBand
			}
			v := r.receive(size) << p.al
			if v != int32(int16(v)) {
				return errWide
			}
			blk[zigzag[k]] = int16(v)
		}
		return nil
	}
	// A later pass: a bit more of each coefficient already seen, and
	// new ones of ±1 (at this pass's bit).
	plus, minus := int16(1)<<p.al, int16(-1)<<p.al
	wide, again := false, false
	refine := func(c *int16) {
		if !r.bit() {
			return
		}
		switch {
		case *c&plus != 0:
			// The bit is set already: the scan does not follow the one
			// before it (its Ah is not that scan's Al). Decoders part
			// ways here (libjpeg leaves the coefficient, image/jpeg adds
			// the bit again); the file is left to image/jpeg.
			again = true
		case *c >= 0:
			*c += plus // sets a clear bit: stays positive
		case *c >= math.MinInt16-minus:
			*c += minus
		default:
			wide = true
		}
	}
	k := p.ss
	if p.eobrun == 0 {
		for ; k <= p.se; k++ {
			rs, err := r.decode(ac)
			if err != nil {
				return err
			}
			run, size := int(rs>>4), int(rs&15)
			var v int16
			if size != 0 {
				if size != 1 {
					return unsupported("a refinement of %d bits", size)
				}
				v = minus
				if r.bit() {
					v = plus
				}
			} else if run != 15 {
				p.eobrun = 1 << run
				if run > 0 {
					p.eobrun += int(r.bits(run))
				}
				break
			}
			// Past the coefficients already seen (each gets its bit) and
			// run zero ones, to where the new one goes.
			for ; k <= p.se; k++ {
				c := &blk[zigzag[k]]
				if *c != 0 {
					refine(c)
					continue
				}
				if run--; run < 0 {
					break
				}
			}
			if v != 0 {
				if k > p.se {
					return unsupported("a new coefficient past the band")
				}
				blk[zigzag[k]] = v
			}
		}
	}
	if p.eobrun > 0 {
		// Within a run of ends of block: only the bits of those seen.
		for ; k <= p.se; k++ {
			if c := &blk[zigzag[k]]; *c != 0 {
				refine(c)
			}
		}
		p.eobrun--
	}
	switch {
	case wide:
		return errWide
	case again:
		return unsupported("a refinement of a bit already set")
	}
	return nil
}

// reconstruct turns every block's coefficients into its pixels, at the
// output scale, and returns the image.
func (d *decoder) reconstruct() (image.Image, error) {
	for c := range d.comps {
		if !d.prog.scanned[c] {
			// image/jpeg leaves its plane black (zeros, not the 128 of
			// zero coefficients).
			return nil, unsupported("component %d in no scan", d.comps[c].id)
		}
	}
	n := d.scale
	d.planes()
	mcusX, mcusY := d.mcus()
	var blk [64]int32
	for c := range d.comps {
		cp := &d.comps[c]
		q := d.quant[cp.tq]
		if q == nil {
			return nil, unsupported("component %d: quantisation table %d missing", cp.id, cp.tq)
		}
		var qn [64]int32 // in row-major order
		for k, z := range zigzag {
			qn[z] = int32(q[k])
		}
		across, down := mcusX*cp.h, mcusY*cp.v
		coef := d.prog.coef[c]
		for by := range down {
			if d.check != nil {
				if err := d.check(); err != nil {
					return nil, err
				}
			}
			for bx := range across {
				cb := coef[64*(by*across+bx):][:64]
				hasAC := false
				for u := range n {
					for v := range n {
						f := int32(cb[u*8+v]) * qn[u*8+v]
						blk[v*8+u] = f
						hasAC = hasAC || f != 0 && u+v > 0
					}
				}
				put(&blk, hasAC, n, cp.pix[by*n*cp.stride+bx*n:], cp.stride)
			}
		}
	}
	return d.image(), nil
}
