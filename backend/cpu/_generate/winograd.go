package main

import "fmt"

// The transforms of Winograd's F(2×2, 3×3) (../winograd.go), 16 tiles per
// vector (AVX-512 F). Every value is a sum or difference of two others, in the
// order the Go loops (wgInputGo, wgOutputGo) take, so the results are the
// same bit for bit.
func winograd() []byte {
	var w asm
	w.header()
	p := w.p
	p("")
	p("// Indexes of the even and odd elements of a pair of vectors, and of")
	p("// the interleaved low and high halves of a pair.")
	table := func(name string, f func(i int) int) {
		for i := 0; i < 8; i++ {
			p("DATA %s<>+%d(SB)/8, $0x%08x%08x", name, 8*i, f(2*i+1), f(2*i))
		}
		p("GLOBL %s<>(SB), RODATA|NOPTR, $64", name)
	}
	table("wgEven", func(i int) int { return 2 * i })
	table("wgOdd", func(i int) int { return 2*i + 1 })
	table("wgLo", func(i int) int { return i/2 + 16*(i%2) })
	table("wgHi", func(i int) int { return 8 + i/2 + 16*(i%2) })
	z := func(i int) string { return fmt.Sprintf("Z%d", i) }

	wgInputKernel(p, z, false)
	wgInputKernel(p, z, true)

	p("")
	p("// func wgOutputAVX512(m []float32, ms, n int, y0, y1 []float32, q int)")
	p("//")
	p("// Needs AVX-512 F.")
	p("TEXT ·wgOutputAVX512(SB), NOSPLIT, $0-96")
	p("\tMOVQ m_base+0(FP), SI")
	p("\tMOVQ ms+24(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tMOVQ n+32(FP), R11 // tiles left")
	p("\tMOVQ y0_base+40(FP), DI")
	p("\tMOVQ y1_base+64(FP), R9")
	p("\tMOVQ y1_len+72(FP), R10 // 0: one row")
	p("\tMOVQ q+88(FP), DX // columns left")
	p("\tVMOVDQU32 wgLo<>(SB), Z30")
	p("\tVMOVDQU32 wgHi<>(SB), Z31")
	p("\tTESTQ R11, R11")
	p("\tJLE  done")
	p("")
	p("loop:")
	// mask K<k> = (1 << clamp(reg − sub, 0, 16)) − 1
	mask := func(k int, reg string, sub int, label string) {
		p("\tMOVQ %s, CX", reg)
		if sub > 0 {
			p("\tSUBQ $%d, CX", sub)
		} else {
			p("\tCMPQ CX, $0")
		}
		p("\tJGE  %s_pos", label)
		p("\tXORQ CX, CX")
		p("%s_pos:", label)
		p("\tCMPQ CX, $16")
		p("\tJLE  %s_ok", label)
		p("\tMOVQ $16, CX")
		p("%s_ok:", label)
		p("\tMOVL $1, AX")
		p("\tSHLL CX, AX")
		p("\tDECL AX")
		p("\tKMOVW AX, K%d", k)
	}
	// split loads the 32 values at base (zeroed past masks klo and khi
	// when they are given) into Z0, Z1 and splits them into their even
	// elements (into e) and odd ones (into o), with the indexes in Z30
	// and Z31.
	split := func(base, klo, khi, e, o string) {
		for i, k := range []string{klo, khi} {
			addr := "(" + base + ")"
			if i == 1 {
				addr = "64" + addr
			}
			if k == "" {
				p("\tVMOVUPS %s, Z%d", addr, i)
			} else {
				p("\tVMOVUPS.Z %s, %s, Z%d", addr, k, i)
			}
		}
		p("\tVMOVDQU32 Z30, %s", e)
		p("\tVPERMI2PS Z1, Z0, %s", e)
		p("\tVMOVDQU32 Z31, %s", o)
		p("\tVPERMI2PS Z1, Z0, %s", o)
	}
	mask(1, "R11", 0, "tiles")
	mask(2, "DX", 0, "lo")
	mask(3, "DX", 16, "hi")
	p("\tMOVQ SI, BX")
	for x := 0; x < 16; x++ {
		p("\tVMOVUPS.Z (BX), K1, %s", z(x))
		if x < 15 {
			p("\tADDQ R8, BX")
		}
	}
	// Aᵀ·m: s0 = (m0 + m1) + m2, s1 = (m1 − m2) − m3, down each column j
	// (into Z16…Z23), then along both rows (Z24, Z25: row 0; Z26, Z27: row 1).
	at := func(in func(i int) string, o0, o1 string) {
		p("\tVADDPS %s, %s, %s", in(1), in(0), o0)
		p("\tVADDPS %s, %s, %s", in(2), o0, o0)
		p("\tVSUBPS %s, %s, %s", in(2), in(1), o1)
		p("\tVSUBPS %s, %s, %s", in(3), o1, o1)
	}
	for j := 0; j < 4; j++ {
		at(func(i int) string { return z(4*i + j) }, z(16+j), z(20+j))
	}
	at(func(j int) string { return z(16 + j) }, "Z24", "Z25")
	at(func(j int) string { return z(20 + j) }, "Z26", "Z27")
	row := func(a, b, dst string) {
		p("\tVMOVDQU32 Z30, Z28")
		p("\tVPERMI2PS %s, %s, Z28", b, a)
		p("\tVMOVDQU32 Z31, Z29")
		p("\tVPERMI2PS %s, %s, Z29", b, a)
		p("\tVMOVUPS Z28, K2, (%s)", dst)
		p("\tVMOVUPS Z29, K3, 64(%s)", dst)
	}
	row("Z24", "Z25", "DI")
	p("\tTESTQ R10, R10")
	p("\tJZ   advance")
	row("Z26", "Z27", "R9")
	p("advance:")
	p("\tADDQ $64, SI")
	p("\tADDQ $128, DI")
	p("\tADDQ $128, R9")
	p("\tSUBQ $32, DX")
	p("\tSUBQ $16, R11")
	p("\tJG   loop")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")

	p("")
	p("// func wgGradAVX512(dy0, dy1 []float32, q, n int, e []float32, es int)")
	p("//")
	p("// Needs AVX-512 F.")
	p("TEXT ·wgGradAVX512(SB), NOSPLIT, $0-96")
	p("\tMOVQ dy0_base+0(FP), SI")
	p("\tMOVQ dy1_base+24(FP), R9")
	p("\tMOVQ dy1_len+32(FP), R10 // 0: the second row is zero")
	p("\tMOVQ q+48(FP), DX // columns left")
	p("\tMOVQ n+56(FP), R11 // tiles left")
	p("\tMOVQ e_base+64(FP), DI")
	p("\tMOVQ es+88(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tVMOVDQU32 wgEven<>(SB), Z30")
	p("\tVMOVDQU32 wgOdd<>(SB), Z31")
	p("\tMOVL $0x80000000, AX")
	p("\tVPBROADCASTD AX, Z29 // the sign bit")
	p("\tTESTQ R11, R11")
	p("\tJLE  done")
	p("")
	p("loop:")
	mask(1, "R11", 0, "gtiles")
	mask(2, "DX", 0, "glo")
	mask(3, "DX", 16, "ghi")
	// a, b: row 0's even and odd columns (Z2, Z3); c, d: row 1's (Z4, Z5)
	split("SI", "K2", "K3", "Z2", "Z3")
	p("\tVPXORD Z4, Z4, Z4")
	p("\tVPXORD Z5, Z5, Z5")
	p("\tTESTQ R10, R10")
	p("\tJZ   rows")
	split("R9", "K2", "K3", "Z4", "Z5")
	p("rows:")
	// A·dy: r0 = (a, b), r1 = (a+c, b+d), r2 = (a−c, b−d), r3 = (−c, −d)
	p("\tVADDPS Z4, Z2, Z8")
	p("\tVADDPS Z5, Z3, Z9")
	p("\tVSUBPS Z4, Z2, Z10")
	p("\tVSUBPS Z5, Z3, Z11")
	p("\tVPXORD Z29, Z4, Z12")
	p("\tVPXORD Z29, Z5, Z13")
	// ·Aᵀ: row (u, v) → (u, u+v, u−v, −v), E_ξ into out[ξ] (the registers
	// not holding inputs or constants)
	out := []int{6, 7, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27}
	rowsE := [][2]string{{"Z2", "Z3"}, {"Z8", "Z9"}, {"Z10", "Z11"}, {"Z12", "Z13"}}
	for i, r := range rowsE {
		u, v := r[0], r[1]
		p("\tVMOVAPS %s, %s", u, z(out[4*i]))
		p("\tVADDPS %s, %s, %s", v, u, z(out[4*i+1]))
		p("\tVSUBPS %s, %s, %s", v, u, z(out[4*i+2]))
		p("\tVPXORD Z29, %s, %s", v, z(out[4*i+3]))
	}
	p("\tMOVQ DI, BX")
	for x := 0; x < 16; x++ {
		p("\tVMOVUPS %s, K1, (BX)", z(out[x]))
		if x < 15 {
			p("\tADDQ R8, BX")
		}
	}
	p("\tADDQ $128, SI")
	p("\tADDQ $128, R9")
	p("\tADDQ $64, DI")
	p("\tSUBQ $32, DX")
	p("\tSUBQ $16, R11")
	p("\tJG   loop")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")

	p("")
	p("// func prefetchLines(p *float32, lines int)")
	p("//")
	p("// Needs SSE (any amd64).")
	p("TEXT ·prefetchLines(SB), NOSPLIT, $0-16")
	p("\tMOVQ p+0(FP), AX")
	p("\tMOVQ lines+8(FP), CX")
	p("\tTESTQ CX, CX")
	p("\tJLE  pdone")
	p("")
	p("ploop:")
	p("\tPREFETCHT0 (AX)")
	p("\tADDQ $64, AX")
	p("\tDECQ CX")
	p("\tJNZ  ploop")
	p("")
	p("pdone:")
	p("\tRET")

	return w.Bytes()
}

// wgInputKernel writes wgInputAVX512, the input transform of 16 tiles a
// vector (wgInputGo), or with pair wgInputPairAVX512, the same values
// rounded to bfloat16 into one half of the BF16 kernel's pairs
// (wgInputPairGo).
func wgInputKernel(p func(format string, args ...any), z func(int) string, pair bool) {
	p("")
	if pair {
		p("// func wgInputPairAVX512(src []float32, wpe, pl, chunks int, dst []float32, xs, kd int, hi bool)")
		p("//")
		p("// Needs AVX-512 F, BW and BF16.")
		p("TEXT ·wgInputPairAVX512(SB), NOSPLIT, $0-89")
	} else {
		p("// func wgInputAVX512(src []float32, wpe, pl, chunks int, dst []float32, xs, kb int)")
		p("//")
		p("// Needs AVX-512 F.")
		p("TEXT ·wgInputAVX512(SB), NOSPLIT, $0-88")
	}
	p("\tMOVQ src_base+0(FP), SI")
	p("\tMOVQ wpe+24(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tMOVQ pl+32(FP), R8")
	p("\tSHLQ $2, R8")
	p("\tMOVQ chunks+40(FP), CX")
	p("\tMOVQ dst_base+48(FP), DI")
	p("\tMOVQ xs+72(FP), R13")
	p("\tSHLQ $2, R13")
	if pair {
		p("\tMOVQ kd+80(FP), R9")
	} else {
		p("\tMOVQ kb+80(FP), R9")
	}
	p("\tSHLQ $7, R9")
	p("\tSUBQ $64, R9 // from the second half of a panel to the next panel")
	if pair {
		p("\tMOVBLZX hi+88(FP), R14")
		p("\tMOVL $0xaaaaaaaa, AX")
		p("\tKMOVD AX, K1 // the high halves of the pairs")
	}
	p("\tXORQ AX, AX // the chunk's half of its panel")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("")
	p("loop:")
	p("\tLEAQ (SI)(R8*1), R10")
	p("\tLEAQ (R10)(R8*1), R11")
	p("\tLEAQ (R11)(R8*1), R12")
	planes := []string{"SI", "R10", "R11", "R12"}
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			base := planes[2*(i%2)+j%2]
			off := 4 * (j / 2)
			if i/2 == 0 {
				p("\tVMOVUPS %d(%s), %s", off, base, z(4*i+j))
			} else {
				p("\tVMOVUPS %d(%s)(DX*1), %s", off, base, z(4*i+j))
			}
		}
	}
	// Bᵀ·d: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3, down
	// each column j (into Z16…Z31), then along each row (back into Z0…Z15).
	bt := func(in func(i int) string, out func(i int) string) {
		p("\tVSUBPS %s, %s, %s", in(2), in(0), out(0))
		p("\tVADDPS %s, %s, %s", in(2), in(1), out(1))
		p("\tVSUBPS %s, %s, %s", in(1), in(2), out(2))
		p("\tVSUBPS %s, %s, %s", in(3), in(1), out(3))
	}
	for j := 0; j < 4; j++ {
		bt(func(i int) string { return z(4*i + j) }, func(i int) string { return z(16 + 4*i + j) })
	}
	for i := 0; i < 4; i++ {
		bt(func(j int) string { return z(16 + 4*i + j) }, func(j int) string { return z(4*i + j) })
	}
	p("\tMOVQ DI, BX")
	if !pair {
		for x := 0; x < 16; x++ {
			p("\tVMOVUPS %s, (BX)", z(x))
			if x < 15 {
				p("\tADDQ R13, BX")
			}
		}
	} else {
		// Rounded to bfloat16 and widened to 32 bits: stored whole as the
		// low halves (the high ones zero), or shifted into the high
		// halves and stored over them alone.
		p("\tTESTQ R14, R14")
		p("\tJNZ  high")
		for h := 0; h < 2; h++ {
			if h == 1 {
				p("\tJMP  stored")
				p("high:")
				p("\tMOVQ DI, BX")
			}
			for x := 0; x < 16; x++ {
				p("\t%s // VCVTNEPS2BF16 %s, Y%d", evex512(0x72, ppF3, 16+x, -1, x), z(x), 16+x)
				p("\tVPMOVZXWD Y%d, %s", 16+x, z(16+x))
				if h == 0 {
					p("\tVMOVDQU32 %s, (BX)", z(16+x))
				} else {
					p("\tVPSLLD $16, %s, %s", z(16+x), z(16+x))
					p("\tVMOVDQU16 %s, K1, (BX)", z(16+x))
				}
				if x < 15 {
					p("\tADDQ R13, BX")
				}
			}
		}
		p("stored:")
	}
	p("\tADDQ $64, SI")
	p("\tXORQ $1, AX")
	p("\tJZ   second")
	p("\tADDQ $64, DI")
	p("\tJMP  next")
	p("second:")
	p("\tADDQ R9, DI")
	p("next:")
	p("\tDECQ CX")
	p("\tJNZ  loop")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")

}
