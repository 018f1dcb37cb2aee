package main

// maxPool3x3s2 is the 3×3, stride-2 max pooling of ResNet's stem, 16
// windows per step (AVX-512 F):
//
//	for i := 0; i < 16*groups; i++ {
//		window i: rows x[0:], x[w1:], x[w2:], columns 2i−clip, 2i+1−clip, 2i+2−clip
//		y[i] = its first pixel (in row-major order) holding the maximum,
//		       or its last NaN when it holds one
//		arg[i] = float32(base + that pixel's offset in x)
//	}
//
// A running maximum over the nine candidates in row-major order, replaced
// only by a strictly greater value or a NaN, gives exactly that pixel.
// Each row's 33 values are loaded as 2+2 vectors and split into the even
// columns, the odd ones and the even ones shifted by one (VPERMI2PS). The
// caller keeps every load inside x (x holds w2 + 32·groups + 2 − clip
// values).
//
// Rows: a window clipped to two rows of the plane passes w2 = w1 (its
// second row twice), to one row w1 = w2 = 0. A row read again comes after
// the first reading, so it neither takes the first maximum nor moves the
// last NaN to another pixel.
//
// Columns: with clip = 1 the first window starts at column −1, outside
// the plane (a padding of 1): its column −1 is not loaded (a masked load)
// and column 0 stands in for it, with column 0's offset. It precedes
// column 0's own reading, and being the same pixel, gives the same value
// and argument wherever it is taken.
func maxPool3x3s2() []byte {
	var w asm
	w.header()
	w.p("")
	evenOddIndexes(&w, "poolEven", "poolOdd")
	w.p("")
	w.p("// func maxPool3x3s2AVX512(x []float32, w1, w2, groups int, y, arg []float32, base, clip int)")
	w.p("//")
	w.p("// Needs AVX-512 F.")
	w.p("TEXT ·maxPool3x3s2AVX512(SB), NOSPLIT, $0-112")
	w.p("\tMOVQ x_base+0(FP), SI")
	w.p("\tMOVQ w1+24(FP), DX")
	w.p("\tMOVQ w2+32(FP), BX")
	w.p("\tMOVQ groups+40(FP), CX")
	w.p("\tMOVQ y_base+48(FP), DI")
	w.p("\tMOVQ arg_base+72(FP), R8")
	w.p("\tMOVQ base+96(FP), R9")
	w.p("\tVMOVDQU32 poolEven<>(SB), Z30")
	w.p("\tVMOVDQU32 poolOdd<>(SB), Z29")
	w.p("\t// Z31: 0, 2, …, 30 (each window's first column)")
	w.p("\tVMOVDQU32 Z30, Z31")
	w.p("\t// Z20…Z28: the nine pixels' offsets r·w + j, in row-major order")
	w.p("\tMOVQ DX, AX")
	w.p("\tVPBROADCASTD AX, Z18 // w1")
	w.p("\tMOVQ BX, AX")
	w.p("\tVPBROADCASTD AX, Z19 // w2")
	w.p("\tVPXORD Z20, Z20, Z20")
	w.p("\tMOVL $1, AX")
	w.p("\tVPBROADCASTD AX, Z21")
	w.p("\tVPADDD Z21, Z21, Z22")
	for r := 1; r < 3; r++ {
		row := "Z18"
		if r == 2 {
			row = "Z19"
		}
		for j := 0; j < 3; j++ {
			w.p("\tVPADDD Z%d, %s, Z%d", 20+j, row, 20+3*r+j)
		}
	}
	w.p("\tSHLQ $2, DX // w1 in bytes")
	w.p("\tSHLQ $2, BX // w2 in bytes")
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ   done")
	w.p("\tMOVQ clip+104(FP), AX")
	w.p("\tTESTQ AX, AX")
	w.p("\tJZ   loop")
	w.p("\t// The first group with its window 0 clipped: K4 loads all but")
	w.p("\t// lane 0, K5 is lane 0; Z13…Z15 are the rows' first offsets")
	w.p("\t// with lane 0's moved to column 0.")
	w.p("\tMOVL $0xfffe, AX")
	w.p("\tKMOVW AX, K4")
	w.p("\tMOVL $1, AX")
	w.p("\tKMOVW AX, K5")
	for r, z := range []int{13, 14, 15} {
		w.p("\tVMOVDQU32 Z%d, Z%d", 20+3*r, z)
		w.p("\tVPADDD Z21, Z%d, K5, Z%d", z, z)
	}
	maxPoolGroup(&w, -4, []int{13, 14, 15})
	w.p("\tADDQ $124, SI")
	w.p("\tADDQ $64, DI")
	w.p("\tADDQ $64, R8")
	w.p("\tADDQ $32, R9")
	w.p("\tDECQ CX")
	w.p("\tJZ   done")
	w.p("")
	w.p("loop:")
	maxPoolGroup(&w, 0, []int{20, 23, 26})
	w.p("\tADDQ $128, SI")
	w.p("\tADDQ $64, DI")
	w.p("\tADDQ $64, R8")
	w.p("\tADDQ $32, R9")
	w.p("\tDECQ CX")
	w.p("\tJNZ  loop")
	w.p("")
	w.p("done:")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	return w.Bytes()
}

// maxPoolGroup is one group of 16 windows from SI+disp (row 1 at +DX, row
// 2 at +BX), into (DI) and (R8); first holds each row's offset register
// of its column 0 (the others follow it). With disp −4 the group is
// clipped (see maxPool3x3s2).
func maxPoolGroup(w *asm, disp int, first []int) {
	clip := disp != 0
	firstCand := true
	for r := 0; r < 3; r++ {
		switch r {
		case 0:
			w.p("\tMOVQ SI, R10")
		case 1:
			w.p("\tLEAQ (SI)(DX*1), R10")
		case 2:
			w.p("\tLEAQ (SI)(BX*1), R10")
		}
		if clip {
			w.p("\tVMOVUPS %d(R10), K4, Z0", disp)
		} else {
			w.p("\tVMOVUPS %d(R10), Z0", disp)
		}
		w.p("\tVMOVUPS %d(R10), Z1", disp+64)
		w.p("\tVMOVUPS %d(R10), Z2", disp+8)
		w.p("\tVMOVUPS %d(R10), Z3", disp+72)
		w.p("\tVMOVDQU32 Z30, Z4")
		w.p("\tVPERMI2PS Z1, Z0, Z4 // columns 2i")
		w.p("\tVMOVDQU32 Z29, Z5")
		w.p("\tVPERMI2PS Z1, Z0, Z5 // 2i+1")
		w.p("\tVMOVDQU32 Z30, Z6")
		w.p("\tVPERMI2PS Z3, Z2, Z6 // 2i+2")
		if clip {
			w.p("\tVMOVAPS Z5, K5, Z4 // window 0: column 0 for column −1")
		}
		for j := 0; j < 3; j++ {
			v := 4 + j
			off := 20 + 3*r + j
			if j == 0 {
				off = first[r]
			}
			if firstCand {
				w.p("\tVMOVAPS Z%d, Z10", v)
				w.p("\tVMOVDQU32 Z%d, Z11", off)
				firstCand = false
				continue
			}
			w.p("\tVCMPPS $0x1e, Z10, Z%d, K1 // greater (ordered)", v)
			w.p("\tVCMPPS $0x03, Z%d, Z%d, K2 // NaN", v, v)
			w.p("\tKORW K1, K2, K1")
			w.p("\tVMOVAPS Z%d, K1, Z10", v)
			w.p("\tVMOVDQU32 Z%d, K1, Z11", off)
		}
	}
	w.p("\tVMOVUPS Z10, (DI)")
	w.p("\tMOVQ R9, AX")
	w.p("\tVPBROADCASTD AX, Z12")
	w.p("\tVPADDD Z31, Z12, Z12")
	w.p("\tVPADDD Z11, Z12, Z12")
	w.p("\tVCVTDQ2PS Z12, Z12")
	w.p("\tVMOVUPS Z12, (R8)")
}

// splitRows writes the even and the odd elements of rows of src to two
// rows each (a padded image's column phases at stride 2, phased.fill),
// 16 pairs a step with the last step of each row under masks (AVX-512 F):
//
//	for r := 0; r < rows; r++ {
//		for k := 0; k < n; k++ {
//			even[r·ldd+k], odd[r·ldd+k] = src[r·lds+2k], src[r·lds+2k+1]
//		}
//	}
func splitRows() []byte {
	var w asm
	w.header()
	w.p("")
	evenOddIndexes(&w, "pairEven", "pairOdd")
	w.p("")
	w.p("// func splitRowsAVX512(src []float32, lds, n, rows int, even, odd []float32, ldd int)")
	w.p("//")
	w.p("// Needs AVX-512 F.")
	w.p("TEXT ·splitRowsAVX512(SB), NOSPLIT, $0-104")
	w.p("\tMOVQ src_base+0(FP), SI")
	w.p("\tMOVQ lds+24(FP), R10")
	w.p("\tSHLQ $2, R10")
	w.p("\tMOVQ n+32(FP), CX")
	w.p("\tMOVQ rows+40(FP), BX")
	w.p("\tMOVQ even_base+48(FP), DI")
	w.p("\tMOVQ odd_base+72(FP), R8")
	w.p("\tMOVQ ldd+96(FP), R11")
	w.p("\tSHLQ $2, R11")
	w.p("\tTESTQ BX, BX")
	w.p("\tJZ   done")
	w.p("\tVMOVDQU32 pairEven<>(SB), Z30")
	w.p("\tVMOVDQU32 pairOdd<>(SB), Z29")
	w.p("\t// K1: the n mod 16 lanes of a row's last step, K2 and K3 the")
	w.p("\t// twice as many of src's two vectors.")
	w.p("\tANDQ $15, CX")
	w.p("\tMOVQ CX, DX // n mod 16")
	w.p("\tMOVL $1, AX")
	w.p("\tSHLL CX, AX")
	w.p("\tDECL AX")
	w.p("\tKMOVW AX, K1")
	w.p("\tSHLQ $1, CX")
	w.p("\tMOVQ $1, AX")
	w.p("\tSHLQ CX, AX")
	w.p("\tDECQ AX")
	w.p("\tKMOVW AX, K2")
	w.p("\tSHRQ $16, AX")
	w.p("\tKMOVW AX, K3")
	w.p("\tMOVQ n+32(FP), CX")
	w.p("")
	w.p("row:")
	w.p("\tMOVQ SI, R12")
	w.p("\tMOVQ DI, R13")
	w.p("\tMOVQ R8, R14")
	w.p("\tMOVQ CX, R9")
	w.p("\tSHRQ $4, R9")
	w.p("\tJZ   tail")
	w.p("")
	w.p("loop:")
	w.p("\tVMOVUPS 0(R12), Z0")
	w.p("\tVMOVUPS 64(R12), Z1")
	split := func(mask string) {
		w.p("\tVMOVDQU32 Z30, Z2")
		w.p("\tVPERMI2PS Z1, Z0, Z2 // the even elements")
		w.p("\tVMOVDQU32 Z29, Z3")
		w.p("\tVPERMI2PS Z1, Z0, Z3 // the odd ones")
		w.p("\tVMOVUPS Z2, %s0(R13)", mask)
		w.p("\tVMOVUPS Z3, %s0(R14)", mask)
	}
	split("")
	w.p("\tADDQ $128, R12")
	w.p("\tADDQ $64, R13")
	w.p("\tADDQ $64, R14")
	w.p("\tDECQ R9")
	w.p("\tJNZ  loop")
	w.p("")
	w.p("tail:")
	w.p("\tTESTQ DX, DX")
	w.p("\tJZ   next")
	w.p("\tVMOVUPS.Z 0(R12), K2, Z0")
	w.p("\tVMOVUPS.Z 64(R12), K3, Z1")
	split("K1, ")
	w.p("")
	w.p("next:")
	w.p("\tADDQ R10, SI")
	w.p("\tADDQ R11, DI")
	w.p("\tADDQ R11, R8")
	w.p("\tDECQ BX")
	w.p("\tJNZ  row")
	w.p("")
	w.p("done:")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
	return w.Bytes()
}

// evenOddIndexes writes the file's tables even and odd: the indexes
// (VPERMI2PS) of the even and of the odd elements of a pair of vectors.
func evenOddIndexes(w *asm, even, odd string) {
	w.p("// Indexes of the even and odd elements of a pair of vectors.")
	for i := 0; i < 8; i++ {
		w.p("DATA %s<>+%d(SB)/8, $0x%08x%08x", even, 8*i, 4*i+2, 4*i)
	}
	w.p("GLOBL %s<>(SB), RODATA|NOPTR, $64", even)
	for i := 0; i < 8; i++ {
		w.p("DATA %s<>+%d(SB)/8, $0x%08x%08x", odd, 8*i, 4*i+3, 4*i+1)
	}
	w.p("GLOBL %s<>(SB), RODATA|NOPTR, $64", odd)
}
