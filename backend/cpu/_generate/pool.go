package main

// maxPool3x3s2 is the 3×3, stride-2 max pooling of ResNet's stem, 16
// windows per step (AVX-512 F):
//
//	for i := 0; i < 16*groups; i++ {
//		window i: rows x[0:], x[w:], x[2w:], columns 2i, 2i+1, 2i+2
//		y[i] = its first pixel (in row-major order) holding the maximum,
//		       or its last NaN when it holds one
//		arg[i] = float32(base + that pixel's offset in x)
//	}
//
// A running maximum over the nine candidates in row-major order, replaced
// only by a strictly greater value or a NaN, gives exactly that pixel.
// Each row's 33 values are loaded as 2+2 vectors and split into the even
// columns, the odd ones and the even ones shifted by one (VPERMI2PS). The
// caller keeps every load inside x (x holds 2w + 32·groups + 2 values).
func maxPool3x3s2() []byte {
	var w asm
	w.header()
	w.p("")
	w.p("// Indexes of the even and odd elements of a pair of vectors.")
	w.p("DATA poolEven<>+0(SB)/8, $0x0000000200000000")
	for i := 1; i < 8; i++ {
		w.p("DATA poolEven<>+%d(SB)/8, $0x%08x%08x", 8*i, 4*i+2, 4*i)
	}
	w.p("GLOBL poolEven<>(SB), RODATA|NOPTR, $64")
	for i := 0; i < 8; i++ {
		w.p("DATA poolOdd<>+%d(SB)/8, $0x%08x%08x", 8*i, 4*i+3, 4*i+1)
	}
	w.p("GLOBL poolOdd<>(SB), RODATA|NOPTR, $64")
	w.p("")
	w.p("// func maxPool3x3s2AVX512(x []float32, w, groups int, y, arg []float32, base int)")
	w.p("//")
	w.p("// Needs AVX-512 F.")
	w.p("TEXT ·maxPool3x3s2AVX512(SB), NOSPLIT, $0-96")
	w.p("\tMOVQ x_base+0(FP), SI")
	w.p("\tMOVQ w+24(FP), DX")
	w.p("\tMOVQ groups+32(FP), CX")
	w.p("\tMOVQ y_base+40(FP), DI")
	w.p("\tMOVQ arg_base+64(FP), R8")
	w.p("\tMOVQ base+88(FP), R9")
	w.p("\tVMOVDQU32 poolEven<>(SB), Z30")
	w.p("\tVMOVDQU32 poolOdd<>(SB), Z29")
	w.p("\t// Z31: 0, 2, …, 30 (each window's first column)")
	w.p("\tVMOVDQU32 Z30, Z31")
	w.p("\t// Z20…Z28: the nine pixels' offsets r·w + j, in row-major order")
	w.p("\tMOVQ DX, AX")
	w.p("\tVPBROADCASTD AX, Z18 // w")
	w.p("\tVPADDD Z18, Z18, Z19 // 2w")
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
	w.p("\tSHLQ $2, DX // w in bytes")
	w.p("\tTESTQ CX, CX")
	w.p("\tJZ   done")
	w.p("")
	w.p("loop:")
	w.p("\tMOVQ SI, R10")
	first := true
	for r := 0; r < 3; r++ {
		w.p("\tVMOVUPS 0(R10), Z0")
		w.p("\tVMOVUPS 64(R10), Z1")
		w.p("\tVMOVUPS 8(R10), Z2")
		w.p("\tVMOVUPS 72(R10), Z3")
		w.p("\tVMOVDQU32 Z30, Z4")
		w.p("\tVPERMI2PS Z1, Z0, Z4 // columns 2i")
		w.p("\tVMOVDQU32 Z29, Z5")
		w.p("\tVPERMI2PS Z1, Z0, Z5 // 2i+1")
		w.p("\tVMOVDQU32 Z30, Z6")
		w.p("\tVPERMI2PS Z3, Z2, Z6 // 2i+2")
		for j := 0; j < 3; j++ {
			v := 4 + j
			off := 20 + 3*r + j
			if first {
				w.p("\tVMOVAPS Z%d, Z10", v)
				w.p("\tVMOVDQU32 Z%d, Z11", off)
				first = false
				continue
			}
			w.p("\tVCMPPS $0x1e, Z10, Z%d, K1 // greater (ordered)", v)
			w.p("\tVCMPPS $0x03, Z%d, Z%d, K2 // NaN", v, v)
			w.p("\tKORW K1, K2, K1")
			w.p("\tVMOVAPS Z%d, K1, Z10", v)
			w.p("\tVMOVDQU32 Z%d, K1, Z11", off)
		}
		if r < 2 {
			w.p("\tADDQ DX, R10")
		}
	}
	w.p("\tVMOVUPS Z10, (DI)")
	w.p("\tMOVQ R9, AX")
	w.p("\tVPBROADCASTD AX, Z12")
	w.p("\tVPADDD Z31, Z12, Z12")
	w.p("\tVPADDD Z11, Z12, Z12")
	w.p("\tVCVTDQ2PS Z12, Z12")
	w.p("\tVMOVUPS Z12, (R8)")
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
