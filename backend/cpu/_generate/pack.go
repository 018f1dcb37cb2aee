package main

import (
	"fmt"
	"strings"
)

// The packers move rows of a row-major matrix into the interleaved panel
// layout the micro-kernels read, a register-tile transpose at a time:
//
//	for r := 0; r < rows; r++ {
//		for l := 0; l < cols&^(W-1); l++ {
//			dst[l*ldd+r] = src[r*lds+l]
//		}
//	}
//
// W = 16 for AVX-512 (a 16×16 transpose, rows 1..16 stored under a mask) and
// 8 for AVX2 (an 8×8 transpose, one function per row count). The callers
// pack the last cols mod W columns in Go.

// packAVX512 writes packT16AVX512 (rows lds apart) and packOffAVX512
// writes packT16OffAVX512 (rows at the element offsets of a table: the
// transposed packer of the implicit-GEMM convolution, whose rows are
// filter taps). Only how the 16 row addresses are found differs.
func packAVX512() []byte    { return packT16(false) }
func packOffAVX512() []byte { return packT16(true) }

func packT16(table bool) []byte {
	var w asm
	p := w.p
	w.header()
	z := func(i int) string { return fmt.Sprintf("Z%d", i) }
	p("")
	if table {
		p("// func packT16OffAVX512(src []float32, offs *[16]int, rows, cols int, dst []float32, ldd int)")
		p("//")
		p("// Needs AVX-512 F. Row i is at src[offs[i]:]; rows past the last real one")
		p("// are masked off (K1) at the stores. SI: src, R8: offs, DI: dst,")
		p("// R10: ldd in bytes, R9: 16-column blocks left.")
		p("TEXT ·packT16OffAVX512(SB), NOSPLIT, $0-80")
		p("\tMOVQ src_base+0(FP), SI")
		p("\tMOVQ offs+24(FP), R8")
	} else {
		p("// func packT16AVX512(src []float32, lds, rows, cols int, dst []float32, ldd int)")
		p("//")
		p("// Needs AVX-512 F. The frame holds the byte offset of each of the 16 rows")
		p("// loaded; rows past the last real one repeat it and are masked off (K1) at")
		p("// the stores. SI: src, DX: lds in bytes, DI: dst, R10: ldd in bytes,")
		p("// R9: 16-column blocks left.")
		p("TEXT ·packT16AVX512(SB), NOSPLIT, $128-80")
		p("\tMOVQ src_base+0(FP), SI")
		p("\tMOVQ lds+24(FP), DX")
		p("\tSHLQ $2, DX")
	}
	p("\tMOVQ rows+32(FP), CX")
	p("\tMOVQ cols+40(FP), R9")
	p("\tSHRQ $4, R9")
	p("\tJZ   done")
	p("\tMOVQ dst_base+48(FP), DI")
	p("\tMOVQ ldd+72(FP), R10")
	p("\tSHLQ $2, R10")
	p("\tMOVL $1, AX")
	p("\tSHLL CX, AX")
	p("\tDECL AX")
	p("\tKMOVW AX, K1")
	p("")
	if !table {
		p("\t// offsets[i] = min(i, rows-1)·lds")
		p("\tXORQ AX, AX")
		for i := 0; i < 16; i++ {
			p("\tMOVQ AX, %d(SP)", i*8)
			if i < 15 {
				p("\tLEAQ (AX)(DX*1), R11")
				p("\tCMPQ CX, $%d", i+1)
				p("\tCMOVQGT R11, AX")
			}
		}
		p("")
	}
	p("loop:")
	for i := 0; i < 16; i++ {
		if table {
			p("\tMOVQ %d(R8), R11", i*8)
			p("\tVMOVUPS (SI)(R11*4), %s", z(i))
		} else {
			p("\tMOVQ %d(SP), R11", i*8)
			p("\tVMOVUPS (SI)(R11*1), %s", z(i))
		}
	}
	transpose16(w.p, z)
	for j := 0; j < 16; j++ {
		p("\tVMOVUPS %s, K1, (DI)", z(j))
		p("\tADDQ R10, DI")
	}
	p("\tADDQ $64, SI")
	p("\tDECQ R9")
	p("\tJNZ  loop")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	return w.Bytes()
}

// transpose16 transposes Z0..Z15 (row i in Z(i)) into columns (column j in
// Z(j)), with Z16..Z31 as temporaries.
func transpose16(p func(string, ...any), z func(int) string) {
	p("\t// Interleave pairs of rows, then pairs of pairs: Z0..Z15 then hold,")
	p("\t// in 128-bit lane k of Z(4g+c), rows 4g..4g+3 of column 4k+c.")
	for i := 0; i < 16; i += 2 {
		p("\tVUNPCKLPS %s, %s, %s", z(i+1), z(i), z(16+i))
		p("\tVUNPCKHPS %s, %s, %s", z(i+1), z(i), z(16+i+1))
	}
	for g := 0; g < 4; g++ {
		b := 16 + 4*g
		p("\tVUNPCKLPD %s, %s, %s", z(b+2), z(b), z(4*g))
		p("\tVUNPCKHPD %s, %s, %s", z(b+2), z(b), z(4*g+1))
		p("\tVUNPCKLPD %s, %s, %s", z(b+3), z(b+1), z(4*g+2))
		p("\tVUNPCKHPD %s, %s, %s", z(b+3), z(b+1), z(4*g+3))
	}
	p("\t// Transpose the 4×4 grid of 128-bit lanes: column 4k+c into Z(4k+c).")
	for c := 0; c < 4; c++ {
		a, b, cc, d := z(c), z(4+c), z(8+c), z(12+c)
		o := 16 + 4*c
		p("\tVSHUFF32X4 $0x44, %s, %s, %s", b, a, z(o))
		p("\tVSHUFF32X4 $0xEE, %s, %s, %s", b, a, z(o+1))
		p("\tVSHUFF32X4 $0x44, %s, %s, %s", d, cc, z(o+2))
		p("\tVSHUFF32X4 $0xEE, %s, %s, %s", d, cc, z(o+3))
	}
	for c := 0; c < 4; c++ {
		o := 16 + 4*c
		p("\tVSHUFF32X4 $0x88, %s, %s, %s", z(o+2), z(o), z(c))
		p("\tVSHUFF32X4 $0xDD, %s, %s, %s", z(o+2), z(o), z(4+c))
		p("\tVSHUFF32X4 $0x88, %s, %s, %s", z(o+3), z(o+1), z(8+c))
		p("\tVSHUFF32X4 $0xDD, %s, %s, %s", z(o+3), z(o+1), z(12+c))
	}
}

// packAVX2 writes packT8x{8,6,4}AVX2, which differ in how many rows they
// load and how many lanes each store writes.
func packAVX2() []byte {
	var w asm
	p := w.p
	w.header()
	y := func(i int) string { return fmt.Sprintf("Y%d", i) }
	x := func(i int) string { return fmt.Sprintf("X%d", i) }
	for _, rows := range []int{8, 6, 4} {
		name := fmt.Sprintf("packT8x%dAVX2", rows)
		p("")
		p("// func %s(src []float32, lds, cols int, dst []float32, ldd int)", name)
		p("//")
		p("// Needs AVX2. Transposes %d rows, 8 columns at a time. SI: src, DX: lds", rows)
		p("// in bytes, R8: 3·lds, DI: dst, R10: ldd in bytes, R9: blocks left.")
		p("TEXT ·%s(SB), NOSPLIT, $0-72", name)
		p("\tMOVQ src_base+0(FP), SI")
		p("\tMOVQ lds+24(FP), DX")
		p("\tSHLQ $2, DX")
		p("\tLEAQ (DX)(DX*2), R8")
		p("\tMOVQ cols+32(FP), R9")
		p("\tSHRQ $3, R9")
		p("\tJZ   done")
		p("\tMOVQ dst_base+40(FP), DI")
		p("\tMOVQ ldd+64(FP), R10")
		p("\tSHLQ $2, R10")
		p("")
		p("loop:")
		// Rows 0..3 from SI, rows 4..7 from BX = SI + 4·lds.
		p("\tLEAQ (SI)(DX*4), BX")
		addr := []string{"(SI)", "(SI)(DX*1)", "(SI)(DX*2)", "(SI)(R8*1)", "(BX)", "(BX)(DX*1)", "(BX)(DX*2)", "(BX)(R8*1)"}
		for i := 0; i < 8; i++ {
			if i < rows {
				p("\tVMOVUPS %s, %s", addr[i], y(i))
			} else {
				p("\tVXORPS %s, %s, %s", y(i), y(i), y(i))
			}
		}
		transpose8(p, y)
		for j := 0; j < 8; j++ {
			r := 8 + j
			switch rows {
			case 8:
				p("\tVMOVUPS %s, (DI)", y(r))
			case 6:
				p("\tVMOVUPS %s, (DI)", x(r))
				p("\tVEXTRACTF128 $1, %s, %s", y(r), x(0))
				p("\tVMOVQ %s, 16(DI)", x(0))
			case 4:
				p("\tVMOVUPS %s, (DI)", x(r))
			}
			p("\tADDQ R10, DI")
		}
		p("\tADDQ $32, SI")
		p("\tDECQ R9")
		p("\tJNZ  loop")
		p("")
		p("done:")
		p("\tVZEROUPPER")
		p("\tRET")
	}
	return w.Bytes()
}

// gatherAVX2 writes gatherRowsAVX2, the row copy of the implicit-GEMM
// convolution's packer: whole 8-value vectors from rows at arbitrary offsets
// into a panel. (Go moves short fixed-size arrays between slices with a
// memmove call each; here a row is a few vector loads and stores.)
func gatherAVX2() []byte {
	var w asm
	p := w.p
	w.header()
	p("")
	p("// func gatherRowsAVX2(dst []float32, ldd int, src []float32, offs []int, base, n8 int)")
	p("//")
	p("// Needs AVX. For each row l: 8·n8 values from src[offs[l]+base:] to")
	p("// dst[l·ldd:]. DI: dst row, R10: ldd in bytes, SI: src + base, R8: offs,")
	p("// CX: rows left, DX: n8.")
	p("TEXT ·gatherRowsAVX2(SB), NOSPLIT, $0-96")
	p("\tMOVQ dst_base+0(FP), DI")
	p("\tMOVQ ldd+24(FP), R10")
	p("\tSHLQ $2, R10")
	p("\tMOVQ src_base+32(FP), SI")
	p("\tMOVQ offs_base+56(FP), R8")
	p("\tMOVQ offs_len+64(FP), CX")
	p("\tMOVQ base+80(FP), AX")
	p("\tLEAQ (SI)(AX*4), SI")
	p("\tMOVQ n8+88(FP), DX")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("\tTESTQ DX, DX")
	p("\tJZ   done")
	p("")
	p("row:")
	p("\tMOVQ (R8), AX")
	p("\tLEAQ (SI)(AX*4), BX")
	p("\tMOVQ DI, R11")
	p("\tMOVQ DX, R9")
	// Pairs of vectors while two are left, then the odd one.
	p("\tCMPQ R9, $2")
	p("\tJB   one")
	p("")
	p("two:")
	p("\tVMOVUPS (BX), Y0")
	p("\tVMOVUPS 32(BX), Y1")
	p("\tVMOVUPS Y0, (R11)")
	p("\tVMOVUPS Y1, 32(R11)")
	p("\tADDQ $64, BX")
	p("\tADDQ $64, R11")
	p("\tSUBQ $2, R9")
	p("\tCMPQ R9, $2")
	p("\tJAE  two")
	p("\tTESTQ R9, R9")
	p("\tJZ   next")
	p("")
	p("one:")
	p("\tVMOVUPS (BX), Y0")
	p("\tVMOVUPS Y0, (R11)")
	p("")
	p("next:")
	p("\tADDQ $8, R8")
	p("\tADDQ R10, DI")
	p("\tDECQ CX")
	p("\tJNZ  row")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	return w.Bytes()
}

// transpose8 transposes Y0..Y7 (row i in Y(i)) into Y8..Y15 (column j in
// Y(8+j)), with Y0..Y7 as temporaries.
func transpose8(p func(string, ...any), y func(int) string) {
	for i := 0; i < 8; i += 2 {
		p("\tVUNPCKLPS %s, %s, %s", y(i+1), y(i), y(8+i))
		p("\tVUNPCKHPS %s, %s, %s", y(i+1), y(i), y(8+i+1))
	}
	for g := 0; g < 2; g++ {
		b := 8 + 4*g
		p("\tVUNPCKLPD %s, %s, %s", y(b+2), y(b), y(4*g))
		p("\tVUNPCKHPD %s, %s, %s", y(b+2), y(b), y(4*g+1))
		p("\tVUNPCKLPD %s, %s, %s", y(b+3), y(b+1), y(4*g+2))
		p("\tVUNPCKHPD %s, %s, %s", y(b+3), y(b+1), y(4*g+3))
	}
	// Column c from the low lanes of Y(c), Y(4+c); column 4+c from the high ones.
	for c := 0; c < 4; c++ {
		p("\tVPERM2F128 $0x20, %s, %s, %s", y(4+c), y(c), y(8+c))
		p("\tVPERM2F128 $0x31, %s, %s, %s", y(4+c), y(c), y(12+c))
	}
}

// packOffAVX2 writes packT8OffAVX2: the 8-row AVX2 transpose of packAVX2
// with the rows at the element offsets of a table.
func packOffAVX2() []byte {
	var w asm
	p := w.p
	w.header()
	y := func(i int) string { return fmt.Sprintf("Y%d", i) }
	p("")
	p("// func packT8OffAVX2(src []float32, offs *[8]int, cols int, dst []float32, ldd int)")
	p("//")
	p("// Needs AVX2. Row i is at src[offs[i]:]. SI: src, R8: offs, DI: dst,")
	p("// R10: ldd in bytes, R9: 8-column blocks left.")
	p("TEXT ·packT8OffAVX2(SB), NOSPLIT, $0-72")
	p("\tMOVQ src_base+0(FP), SI")
	p("\tMOVQ offs+24(FP), R8")
	p("\tMOVQ cols+32(FP), R9")
	p("\tSHRQ $3, R9")
	p("\tJZ   done")
	p("\tMOVQ dst_base+40(FP), DI")
	p("\tMOVQ ldd+64(FP), R10")
	p("\tSHLQ $2, R10")
	p("")
	p("loop:")
	for i := 0; i < 8; i++ {
		p("\tMOVQ %d(R8), R11", i*8)
		p("\tVMOVUPS (SI)(R11*4), %s", y(i))
	}
	transpose8(p, y)
	for j := 0; j < 8; j++ {
		p("\tVMOVUPS %s, (DI)", y(8+j))
		p("\tADDQ R10, DI")
	}
	p("\tADDQ $32, SI")
	p("\tDECQ R9")
	p("\tJNZ  loop")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	return w.Bytes()
}

// gatherAVX512 is gatherRowsAVX2 for 1 ≤ n ≤ 32 values a row, any n:
// two vectors under masks (masked-off lanes are neither read nor
// written), so the short runs of a convolution's small planes (7, 14, 28
// pixels) are not copied by a call each.
func gatherAVX512() []byte {
	var w asm
	p := w.p
	w.header()
	p("")
	p("// func gatherRowsAVX512(dst []float32, ldd int, src []float32, offs []int, base, n int)")
	p("//")
	p("// Needs AVX-512 F. For each row l: n values (1 ≤ n ≤ 32) from")
	p("// src[offs[l]+base:] to dst[l·ldd:]. DI: dst row, R10: ldd in bytes,")
	p("// SI: src + base, R8: offs, CX: rows left; K1, K2: the lanes of the two")
	p("// vectors.")
	p("TEXT ·gatherRowsAVX512(SB), NOSPLIT, $0-96")
	gatherArgs(&w)
	p("\tMOVQ n+88(FP), DX")
	halfMasks(&w)
	p("\tMOVQ offs_len+64(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("")
	p("row:")
	p("\tMOVQ (R8), AX")
	p("\tLEAQ (SI)(AX*4), BX")
	p("\tVMOVUPS.Z (BX), K1, Z0")
	p("\tVMOVUPS.Z 64(BX), K2, Z1")
	p("\tVMOVUPS Z0, K1, (DI)")
	p("\tVMOVUPS Z1, K2, 64(DI)")
	p("\tADDQ $8, R8")
	p("\tADDQ R10, DI")
	p("\tDECQ CX")
	p("\tJNZ  row")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
	return w.Bytes()
}

// halfMasks sets K1 and K2 to the lanes of the two 16-lane halves of a
// run of n ≤ 32 values (n in DX): K1 min(n, 16) lanes, K2 max(n−16, 0).
// It uses AX, CX, R9 and R11.
func halfMasks(w *asm) {
	p := w.p
	p("\t// K1: lanes min(n, 16); K2: lanes max(n-16, 0)")
	p("\tMOVQ DX, CX")
	p("\tMOVQ $16, R11")
	p("\tCMPQ CX, R11")
	p("\tCMOVQGT R11, CX")
	p("\tMOVL $1, AX")
	p("\tSHLL CX, AX")
	p("\tDECL AX")
	p("\tKMOVW AX, K1")
	p("\tMOVQ DX, CX")
	p("\tSUBQ $16, CX")
	p("\tXORQ R9, R9")
	p("\tCMPQ CX, $0")
	p("\tCMOVQLT R9, CX")
	p("\tMOVL $1, AX")
	p("\tSHLL CX, AX")
	p("\tDECL AX")
	p("\tKMOVW AX, K2")
}

// gatherArgs loads the arguments the masked gathers share (dst []float32,
// ldd int, src []float32, offs []int, base int, then their own): DI dst,
// R10 ldd in bytes, SI src + base, R8 offs.
func gatherArgs(w *asm) { gatherArgsOf(w, 4) }

// gatherArgsOf is gatherArgs for a src of size-byte elements.
func gatherArgsOf(w *asm, size int) {
	p := w.p
	p("\tMOVQ dst_base+0(FP), DI")
	p("\tMOVQ ldd+24(FP), R10")
	p("\tSHLQ $2, R10")
	p("\tMOVQ src_base+32(FP), SI")
	p("\tMOVQ offs_base+56(FP), R8")
	p("\tMOVQ base+80(FP), AX")
	p("\tLEAQ (SI)(AX*%d), SI", size)
}

// prefetchNextPanel asks for the cache lines of the next panel's part of
// the rows a packer's turn reads (rows: their addresses, as "(SI)"): a B
// block is packed panel by panel, each panel a width of bytes of every
// row of the block, so the same rows, width bytes on, are read one call
// later. Each row is a stream of its own, too many for the hardware's
// prefetchers when the rows are long planes (an image's channels at
// 56×56). The last panel asks for lines past the block, which cost a
// little and fault never.
func prefetchNextPanel(p func(string, ...any), width int, rows ...string) {
	for _, r := range rows {
		for off := 0; off < width; off += 64 {
			p("\tPREFETCHT0 %d%s", width+off, r)
		}
	}
}

// copyRowsFile writes the row copiers of non-transposed panels:
//
//	for l := 0; l < kb; l++ {
//		dst[l*W : l*W+W] = src[l*lds : l*lds+W]
//	}
//
// W = 32 and 16 for AVX-512, 16 and 8 for AVX2: a panel's row in one or
// two vector registers, two rows a turn. Go's array assignment calls
// runtime.memmove for every row of a panel.
func copyRowsFile() []byte {
	var w asm
	w.header()
	copyRows(&w, avx512, 32)
	copyRows(&w, avx512, 16)
	copyRows(&w, avx2, 16)
	copyRows(&w, avx2, 8)
	return w.Bytes()
}

func copyRows(w *asm, set isa, width int) {
	p := w.p
	reg, size := "Z", 64
	if set.name == "avx2" {
		reg, size = "Y", 32
	}
	vecs := width / set.lanes
	name := fmt.Sprintf("copyRows%d%s", width, strings.ToUpper(set.name))
	p("")
	p("// func %s(src []float32, lds, kb int, dst []float32)", name)
	p("//")
	needs := "AVX-512 F"
	if set.name == "avx2" {
		needs = "AVX2"
	}
	p("// Needs %s. SI: src, DX: lds in bytes, CX: rows left, DI: dst.", needs)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	p("\tMOVQ src_base+0(FP), SI")
	p("\tMOVQ lds+24(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tMOVQ kb+32(FP), CX")
	p("\tMOVQ dst_base+40(FP), DI")
	p("\tCMPQ CX, $2")
	p("\tJLT  one")
	p("two:")
	prefetchNextPanel(p, width*4, "(SI)", "(SI)(DX*1)")
	for v := 0; v < vecs; v++ {
		p("\tVMOVUPS %d(SI), %s%d", v*size, reg, v)
		p("\tVMOVUPS %d(SI)(DX*1), %s%d", v*size, reg, vecs+v)
	}
	for v := 0; v < 2*vecs; v++ {
		p("\tVMOVUPS %s%d, %d(DI)", reg, v, v*size)
	}
	p("\tLEAQ (SI)(DX*2), SI")
	p("\tADDQ $%d, DI", 2*width*4)
	p("\tSUBQ $2, CX")
	p("\tCMPQ CX, $2")
	p("\tJGE  two")
	p("one:")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	for v := 0; v < vecs; v++ {
		p("\tVMOVUPS %d(SI), %s%d", v*size, reg, v)
		p("\tVMOVUPS %s%d, %d(DI)", reg, v, v*size)
	}
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
}
