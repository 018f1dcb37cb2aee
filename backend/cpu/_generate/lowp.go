package main

import "fmt"

// Low-precision instructions the Go assembler has no mnemonics for
// (AVX-512 BF16 and VNNI), written out as their EVEX encodings.

// EVEX pp field: the implied SIMD prefix.
const (
	pp66 = 1
	ppF3 = 2
	ppF2 = 3
)

// evex512 encodes the register form of a 512-bit EVEX instruction in map
// 0F38 with W0 and no mask: op dst, src1, src2 in Intel's order (dst in
// ModRM.reg, src1 in EVEX.vvvv, src2 in ModRM.rm), registers 0–31; src1 <
// 0 for the one-source forms (vvvv unused, all ones).
//
//	VDPBF16PS      op 0x52, F3: dst += src1·src2 over pairs of bfloat16
//	VCVTNEPS2BF16  op 0x72, F3: dst (ymm) = bfloat16(src2 (zmm))
//	VPDPBUSD       op 0x50, 66: dst += src1 (u8) · src2 (s8) over quads
func evex512(op byte, pp int, dst, src1, src2 int) string {
	return evex(op, pp, dst, src1, src2, 512)
}

// evex512Bcst is evex512 with src2 a 32-bit value in memory at off(SI),
// broadcast to every lane (EVEX.b): op dst, src1, off(SI){1to16}. The
// displacement is a disp8 scaled by 4 where it fits, else a disp32.
func evex512Bcst(op byte, pp int, dst, src1, off int) string {
	inv := func(b int) int { return b ^ 1 }
	p0 := inv(dst>>3&1)<<7 | 1<<6 | 1<<5 | inv(dst>>4&1)<<4 | 2 // X, B: no index, base SI
	p1 := 0<<7 | (^src1&15)<<3 | 1<<2 | pp
	p2 := 0<<7 | 2<<5 | 1<<4 | inv(src1>>4&1)<<3 // 512 bits, broadcast, no mask
	const si = 6
	b := fmt.Sprintf("BYTE $0x62; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x", p0, p1, p2, op)
	if off%4 == 0 && off/4 >= -128 && off/4 <= 127 {
		return b + fmt.Sprintf("; BYTE $0x%02x; BYTE $0x%02x", 0x40|(dst&7)<<3|si, byte(int8(off/4)))
	}
	u := uint32(int32(off))
	return b + fmt.Sprintf("; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x",
		0x80|(dst&7)<<3|si, u&0xff, u>>8&0xff, u>>16&0xff, u>>24)
}

// evex is evex512 for vectors of bits 512 or 256 (ZMM or YMM registers).
func evex(op byte, pp int, dst, src1, src2, bits int) string {
	inv := func(b int) int { return b ^ 1 }
	v := src1
	if v < 0 {
		v = 0 // encoded inverted: vvvv = 1111, V' = 1
	}
	p0 := inv(dst>>3&1)<<7 | inv(src2>>4&1)<<6 | inv(src2>>3&1)<<5 | inv(dst>>4&1)<<4 | 2 // map 0F38
	p1 := 0<<7 | (^v&15)<<3 | 1<<2 | pp
	ll := 2 // EVEX.L'L: 512 bits
	if bits == 256 {
		ll = 1
	}
	p2 := 0<<7 | ll<<5 | 0<<4 | inv(v>>4&1)<<3 // no broadcast, no mask
	modrm := 0xc0 | (dst&7)<<3 | src2&7
	return fmt.Sprintf("BYTE $0x62; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x",
		p0, p1, p2, op, modrm)
}

// pairBF16 converts rows of 32 float32 values, lds apart, to the bfloat16
// pairs the BF16 micro-kernel reads:
//
//	for p := 0; p < pairs; p++ {
//		for j := 0; j < 32; j++ {
//			dst[p*32+j] = bits of uint32(bf16(src[2p*lds+j])) | uint32(bf16(src[(2p+1)*lds+j]))<<16
//		}
//	}
//
// with VCVTNEPS2BF16's rounding (to nearest even; denormals to zero, NaN
// kept quiet).
func pairBF16() []byte {
	var w asm
	w.header()
	w.p("")
	w.p("// func pairBF16AVX512(src []float32, lds, pairs int, dst []float32)")
	w.p("//")
	w.p("// Needs AVX-512 F and BF16.")
	w.p("TEXT ·pairBF16AVX512(SB), NOSPLIT, $0-64")
	w.p("\tMOVQ src_base+0(FP), SI")
	w.p("\tMOVQ lds+24(FP), DX")
	w.p("\tSHLQ $2, DX")
	w.p("\tMOVQ pairs+32(FP), CX")
	w.p("\tMOVQ dst_base+40(FP), DI")
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ   done")
	w.p("")
	w.p("loop:")
	prefetchNextPanel(w.p, 128, "(SI)", "(SI)(DX*1)")
	for h := 0; h < 2; h++ {
		// even row's half h in Z0, odd row's in Z1
		w.p("\tVMOVUPS %d(SI), Z0", h*64)
		w.p("\tVMOVUPS %d(SI)(DX*1), Z1", h*64)
		pairZ0Z1(w.p)
		w.p("\tVMOVDQU32 Z2, %d(DI)", h*64)
	}
	w.p("\tLEAQ (SI)(DX*2), SI")
	w.p("\tADDQ $128, DI")
	w.p("\tDECQ CX")
	w.p("\tJNZ  loop")
	w.p("")
	w.p("done:")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	return w.Bytes()
}

// quadU8 quantises rows of 32 float32 values, lds apart, to the unsigned
// byte quads the int8 micro-kernel reads:
//
//	for p := 0; p < quads; p++ {
//		for j := 0; j < 32; j++ {
//			dst[p*32+j] = bits of Σ_r u8(src[(4p+r)*lds+j]) << 8r   (r < 4)
//		}
//	}
//
// with u8(x) = min(max(cvt(x·scale) + zero, 0), 255), cvt rounding to
// nearest even (VCVTPS2DQ; NaN and out-of-range values give MinInt32,
// hence 0).
func quadU8() []byte {
	var w asm
	w.header()
	w.p("")
	w.p("// func quadU8AVX512(src []float32, lds, quads int, dst []float32, scale float32, zero int32)")
	w.p("//")
	w.p("// Needs AVX-512 F.")
	w.p("TEXT ·quadU8AVX512(SB), NOSPLIT, $0-72")
	w.p("\tMOVQ src_base+0(FP), SI")
	w.p("\tMOVQ lds+24(FP), DX")
	w.p("\tSHLQ $2, DX")
	w.p("\tMOVQ quads+32(FP), CX")
	w.p("\tMOVQ dst_base+40(FP), DI")
	w.p("\tVBROADCASTSS scale+64(FP), Z16")
	w.p("\tMOVL zero+68(FP), AX")
	w.p("\tVPBROADCASTD AX, Z17")
	w.p("\tVPXORD Z18, Z18, Z18")
	w.p("\tMOVL $255, AX")
	w.p("\tVPBROADCASTD AX, Z19")
	w.p("\tLEAQ (DX)(DX*2), R8 // three rows")
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ   done")
	w.p("")
	w.p("loop:")
	rows := []string{"0(SI)", "0(SI)(DX*1)", "0(SI)(DX*2)", "0(SI)(R8*1)"}
	prefetchNextPanel(w.p, 128, "(SI)", "(SI)(DX*1)", "(SI)(DX*2)", "(SI)(R8*1)")
	for h := 0; h < 2; h++ {
		for r := 0; r < 4; r++ {
			z := fmt.Sprintf("Z%d", r)
			addr := rows[r]
			if h == 1 {
				addr = "64" + addr[1:]
			}
			w.p("\tVMULPS %s, Z16, %s", addr, z)
			w.p("\tVCVTPS2DQ %s, %s", z, z)
			w.p("\tVPADDD Z17, %s, %s", z, z)
			w.p("\tVPMAXSD Z18, %s, %s", z, z)
			w.p("\tVPMINSD Z19, %s, %s", z, z)
			if r > 0 {
				w.p("\tVPSLLD $%d, %s, %s", 8*r, z, z)
			}
		}
		w.p("\tVPORD Z1, Z0, Z0")
		w.p("\tVPORD Z3, Z2, Z2")
		w.p("\tVPORD Z2, Z0, Z0")
		w.p("\tVMOVDQU32 Z0, %d(DI)", h*64)
	}
	w.p("\tLEAQ (SI)(DX*4), SI")
	w.p("\tADDQ $128, DI")
	w.p("\tDECQ CX")
	w.p("\tJNZ  loop")
	w.p("")
	w.p("done:")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	return w.Bytes()
}

// minMax is the smallest and largest of x (len(x) a positive multiple of
// 16; the caller does the rest). With a NaN in x the result is one of the
// other values or the NaN (VMINPS/VMAXPS keep their second operand).
func minMax() []byte {
	var w asm
	w.header()
	w.p("")
	w.p("// func minMaxAVX512(x []float32) (lo, hi float32)")
	w.p("//")
	w.p("// Needs AVX-512 F.")
	w.p("TEXT ·minMaxAVX512(SB), NOSPLIT, $0-32")
	w.p("\tMOVQ x_base+0(FP), SI")
	w.p("\tMOVQ x_len+8(FP), CX")
	w.p("\tSHRQ $4, CX")
	w.p("\tVMOVUPS (SI), Z0")
	w.p("\tVMOVAPS Z0, Z1")
	w.p("\tADDQ $64, SI")
	w.p("\tDECQ CX")
	w.p("\tJZ   reduce")
	w.p("")
	w.p("loop:")
	w.p("\tVMOVUPS (SI), Z2")
	w.p("\tVMINPS Z2, Z0, Z0")
	w.p("\tVMAXPS Z2, Z1, Z1")
	w.p("\tADDQ $64, SI")
	w.p("\tDECQ CX")
	w.p("\tJNZ  loop")
	w.p("")
	w.p("reduce:")
	for _, r := range []struct{ op, reg, half string }{{"VMINPS", "0", "2"}, {"VMAXPS", "1", "3"}} {
		w.p("\tVEXTRACTF64X4 $1, Z%s, Y%s", r.reg, r.half)
		w.p("\t%s Y%s, Y%s, Y%s", r.op, r.half, r.reg, r.reg)
		w.p("\tVEXTRACTF128 $1, Y%s, X%s", r.reg, r.half)
		w.p("\t%s X%s, X%s, X%s", r.op, r.half, r.reg, r.reg)
		w.p("\tVPERMILPS $0x4e, X%s, X%s", r.reg, r.half)
		w.p("\t%s X%s, X%s, X%s", r.op, r.half, r.reg, r.reg)
		w.p("\tVPERMILPS $0xb1, X%s, X%s", r.reg, r.half)
		w.p("\t%s X%s, X%s, X%s", r.op, r.half, r.reg, r.reg)
	}
	w.p("\tVMOVSS X0, lo+24(FP)")
	w.p("\tVMOVSS X1, hi+28(FP)")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	return w.Bytes()
}

// gatherPairs is gatherRowsAVX512 and pairBF16 in one pass, for the
// bfloat16 kernel's B panels read from an image: for each pair p of rows,
// n values (1 ≤ n ≤ 32) from rows offs[2p] and offs[2p+1] become n
// bfloat16 pairs at dst[p·ldd:],
//
//	dst[p*ldd+j] = bits of uint32(bf16(src[offs[2p]+base+j])) | uint32(bf16(src[offs[2p+1]+base+j]))<<16
//
// under the masks of gatherRowsAVX512 (lanes past n neither read nor
// written), so the float32 panel is never stored.
func gatherPairs() []byte {
	var w asm
	p := w.p
	w.header()
	p("")
	p("// func gatherPairsAVX512(dst []float32, ldd int, src []float32, offs []int, base, n, pairs int)")
	p("//")
	p("// Needs AVX-512 F and BF16. DI: dst row, R10: ldd in bytes, SI: src +")
	p("// base, R8: offs, CX: pairs left; K1, K2: the lanes of the two halves.")
	p("TEXT ·gatherPairsAVX512(SB), NOSPLIT, $0-104")
	gatherArgs(&w)
	p("\tMOVQ n+88(FP), DX")
	halfMasks(&w)
	p("\tMOVQ pairs+96(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("\tCMPQ DX, $16")
	p("\tJLE  narrow")
	half := func(off int, mask string) {
		p("\tVMOVUPS.Z %d(BX), %s, Z0", off, mask)
		p("\tVMOVUPS.Z %d(R11), %s, Z1", off, mask)
		pairZ0Z1(p)
		p("\tVMOVDQU32 Z2, %s, %d(DI)", mask, off)
	}
	groupLoops(&w, []string{"BX", "R11"}, half)
	return w.Bytes()
}

// gatherQuads is gatherRowsAVX512 and quadU8 in one pass, for the int8
// kernel's B panels read from an image: for each quad q of rows, n values
// (1 ≤ n ≤ 32) from rows offs[4q] … offs[4q+3] become n unsigned byte
// quads at dst[q·ldd:],
//
//	dst[q*ldd+j] = bits of Σ_r u8(src[offs[4q+r]+base+j]) << 8r
//
// with quadU8's u8, under gatherRowsAVX512's masks.
func gatherQuads() []byte {
	var w asm
	p := w.p
	w.header()
	p("")
	p("// func gatherQuadsAVX512(dst []float32, ldd int, src []float32, offs []int, base, n, quads int, scale float32, zero int32)")
	p("//")
	p("// Needs AVX-512 F. DI: dst row, R10: ldd in bytes, SI: src + base, R8:")
	p("// offs, CX: quads left; K1, K2: the lanes of the two halves; BX, R11,")
	p("// R12, R13: the quad's rows.")
	p("TEXT ·gatherQuadsAVX512(SB), NOSPLIT, $0-112")
	gatherArgs(&w)
	p("\tVBROADCASTSS scale+104(FP), Z16")
	p("\tMOVL zero+108(FP), AX")
	p("\tVPBROADCASTD AX, Z17")
	p("\tVPXORD Z18, Z18, Z18")
	p("\tMOVL $255, AX")
	p("\tVPBROADCASTD AX, Z19")
	p("\tMOVQ n+88(FP), DX")
	halfMasks(&w)
	p("\tMOVQ quads+96(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("\tCMPQ DX, $16")
	p("\tJLE  narrow")
	regs := []string{"BX", "R11", "R12", "R13"}
	half := func(off int, mask string) {
		for r, reg := range regs {
			z := fmt.Sprintf("Z%d", r)
			p("\tVMOVUPS.Z %d(%s), %s, %s", off, reg, mask, z)
			p("\tVMULPS Z16, %s, %s", z, z)
			p("\tVCVTPS2DQ %s, %s", z, z)
			p("\tVPADDD Z17, %s, %s", z, z)
			p("\tVPMAXSD Z18, %s, %s", z, z)
			p("\tVPMINSD Z19, %s, %s", z, z)
			if r > 0 {
				p("\tVPSLLD $%d, %s, %s", 8*r, z, z)
			}
		}
		p("\tVPORD Z1, Z0, Z0")
		p("\tVPORD Z3, Z2, Z2")
		p("\tVPORD Z2, Z0, Z0")
		p("\tVMOVDQU32 Z0, %s, %d(DI)", mask, off)
	}
	groupLoops(&w, regs, half)
	return w.Bytes()
}

// gatherQuadsU8 is gatherQuads from an image already quantised to bytes
// (quantU8Row): for each quad q of rows, n bytes (1 ≤ n ≤ 32) from rows
// offs[4q] … offs[4q+3] become n quads at dst[q·ldd:],
//
//	dst[q*ldd+j] = bits of Σ_r uint32(src[offs[4q+r]+base+j]) << 8r
//
// under gatherRowsAVX512's masks (bytes past n neither read nor written).
func gatherQuadsU8() []byte {
	var w asm
	p := w.p
	w.header()
	p("")
	p("// func gatherQuadsU8AVX512(dst []float32, ldd int, src []byte, offs []int, base, n, quads int)")
	p("//")
	p("// Needs AVX-512 F. DI: dst row, R10: ldd in bytes, SI: src + base, R8:")
	p("// offs, CX: quads left; K1, K2: the lanes of the two halves; BX, R11,")
	p("// R12, R13: the quad's rows.")
	p("TEXT ·gatherQuadsU8AVX512(SB), NOSPLIT, $0-104")
	gatherArgsOf(&w, 1)
	p("\tMOVQ n+88(FP), DX")
	halfMasks(&w)
	p("\tMOVQ quads+96(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("\tCMPQ DX, $16")
	p("\tJLE  narrow")
	regs := []string{"BX", "R11", "R12", "R13"}
	half := func(off int, mask string) {
		// Each row's 16 bytes widened to the low byte of 16 lanes, moved
		// to byte r of the lane, and the four ORed.
		for r, reg := range regs {
			z := fmt.Sprintf("Z%d", r)
			p("\tVPMOVZXBD.Z %d(%s), %s, %s", off/4, reg, mask, z)
			if r > 0 {
				p("\tVPSLLD $%d, %s, %s", 8*r, z, z)
			}
		}
		p("\tVPTERNLOGD $0xfe, Z2, Z1, Z0") // Z0 |= Z1 | Z2
		p("\tVPORD Z3, Z0, Z0")
		p("\tVMOVDQU32 Z0, %s, %d(DI)", mask, off)
	}
	groupLoopsOf(&w, regs, 1, half)
	return w.Bytes()
}

// quantU8Row quantises float32 values to unsigned bytes with quadU8's
// arithmetic, 64 a step, then 16 a step (len(x) a multiple of 16; the
// caller does the rest):
//
//	y[i] = clamp(cvt(x[i]·scale) + zero, 0, 255)
//
// VPMOVUSDB does the clamp to 255 after the VPMAXSD with 0.
func quantU8Row() []byte {
	var w asm
	p := w.p
	w.header()
	p("")
	p("// func quantU8RowAVX512(x []float32, y []byte, scale float32, zero int32)")
	p("//")
	p("// Needs AVX-512 F.")
	p("TEXT ·quantU8RowAVX512(SB), NOSPLIT, $0-56")
	p("\tMOVQ x_base+0(FP), SI")
	p("\tMOVQ x_len+8(FP), CX")
	p("\tSHRQ $4, CX")
	p("\tMOVQ y_base+24(FP), DI")
	p("\tVBROADCASTSS scale+48(FP), Z16")
	p("\tMOVL zero+52(FP), AX")
	p("\tVPBROADCASTD AX, Z17")
	p("\tVPXORD Z18, Z18, Z18")
	step := func(u int) {
		z := fmt.Sprintf("Z%d", u)
		p("\tVMULPS %d(SI), Z16, %s", 64*u, z)
		p("\tVCVTPS2DQ %s, %s", z, z)
		p("\tVPADDD Z17, %s, %s", z, z)
		p("\tVPMAXSD Z18, %s, %s", z, z)
		p("\tVPMOVUSDB %s, %d(DI)", z, 16*u)
	}
	p("\tCMPQ CX, $4")
	p("\tJLT  one")
	p("")
	p("loop:")
	for u := range 4 {
		step(u)
	}
	p("\tADDQ $256, SI")
	p("\tADDQ $64, DI")
	p("\tSUBQ $4, CX")
	p("\tCMPQ CX, $4")
	p("\tJGE  loop")
	p("")
	p("one:")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("")
	p("loop1:")
	step(0)
	p("\tADDQ $64, SI")
	p("\tADDQ $16, DI")
	p("\tDECQ CX")
	p("\tJNZ  loop1")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	return w.Bytes()
}

// groupLoops writes the loops of gatherPairs and gatherQuads over groups
// of len(rows) rows: each group's row addresses into the registers rows
// (SI + offs[i]·4), then half for the lanes of K1 and, in the "wide" loop
// (n > 16, which the caller branches on to "narrow"), for those of K2 at
// byte 64; one dst row (R10 bytes) a group, CX groups.
func groupLoops(w *asm, rows []string, half func(off int, mask string)) {
	groupLoopsOf(w, rows, 4, half)
}

// groupLoopsOf is groupLoops for a src of size-byte elements.
func groupLoopsOf(w *asm, rows []string, size int, half func(off int, mask string)) {
	p := w.p
	for _, loop := range []string{"wide", "narrow"} {
		p("")
		p("%s:", loop)
		for r, reg := range rows {
			p("\tMOVQ %d(R8), AX", 8*r)
			p("\tLEAQ (SI)(AX*%d), %s", size, reg)
		}
		half(0, "K1")
		if loop == "wide" {
			half(64, "K2")
		}
		p("\tADDQ $%d, R8", 8*len(rows))
		p("\tADDQ R10, DI")
		p("\tDECQ CX")
		p("\tJNZ  %s", loop)
		if loop == "wide" {
			p("\tJMP  done")
		}
	}
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
}

// pairZ0Z1 writes the rounding of Z0 and Z1 (16 float32 values each) to
// bfloat16 pairs in Z2: lane j = bf16(Z0[j]) | bf16(Z1[j])<<16 (Y2, Y3
// and Z3 are clobbered).
func pairZ0Z1(p func(format string, args ...any)) {
	p("\t%s // VCVTNEPS2BF16 Z0, Y2", evex512(0x72, ppF3, 2, -1, 0))
	p("\t%s // VCVTNEPS2BF16 Z1, Y3", evex512(0x72, ppF3, 3, -1, 1))
	p("\tVPMOVZXWD Y2, Z2")
	p("\tVPMOVZXWD Y3, Z3")
	p("\tVPSLLD $16, Z3, Z3")
	p("\tVPORD Z3, Z2, Z2")
}
