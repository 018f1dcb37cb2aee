package main

import (
	"fmt"
	"log"
)

// The lanes path's 3×3 convolution kernels (AVX-512 F) for ../lanes.go: one output
// tile of 7 pixels of a row by 64 output channels (4 vectors), the
// channels in the lanes. Its 28 sums stay in Z0–Z27 over every input
// channel and tap; per tap the filter's 64 values are loaded into
// Z28–Z31 and each pixel's input value is broadcast from memory into
// the multiply-add (the embedded broadcast), so no register holds it.
//
// Each tap's filter values are prefetched lanesPrefetch bytes ahead, as
// the GEMM kernels prefetch their packed filter panels: a block's
// filters come from memory for its first tile (in ResNet-50 at batch 1,
// the 3×3 layers on 7×7 planes ran 10% faster in the network with it,
// alone on warm caches the same; 4096 bytes ahead did no better).
//
// The input is a padded image laid out by rows (../lanes.go,
// lanesFill): padded row h of channel c at (h·C + c)·wp, so that each of
// the three rows a tile reads is one stream through the channels, wp
// values a step; tap (kh, kw) of pixel j reads row kh at column
// stride·j + kw.
const (
	lanesPixels   = 7
	lanesVecs     = 4
	lanesPrefetch = 2048
)

func lanes() []byte {
	var w asm
	w.header()
	for _, bf16 := range []bool{false, true} {
		for _, stride := range []int{1, 2} {
			lanesKernel(&w, stride, bf16)
		}
	}
	pairSpans(&w)
	return w.Bytes()
}

// evexBcst encodes VDPBF16PS-like instruction op (map 0F38, prefix pp)
// on ZMM registers dst, src1 and a float32 broadcast from disp(base)
// ({1to16}), which Go's assembler does not take: disp a multiple of 4
// below 512, base not SP or R12 (which need a SIB byte).
func evexBcst(op byte, pp int, dst, src1 int, base string, disp int) string {
	regs := map[string]int{"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SI": 6, "DI": 7,
		"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R13": 13, "R14": 14, "R15": 15}
	b, ok := regs[base]
	if !ok || disp%4 != 0 || disp < 0 || disp/4 > 127 {
		log.Fatalf("evexBcst: base %s, displacement %d", base, disp)
	}
	inv := func(x int) int { return x ^ 1 }
	p0 := inv(dst>>3&1)<<7 | 1<<6 | inv(b>>3&1)<<5 | inv(dst>>4&1)<<4 | 2 // X̄ = 1: no index; map 0F38
	p1 := (^src1&15)<<3 | 1<<2 | pp                                       // W0
	p2 := 2<<5 | 1<<4 | inv(src1>>4&1)<<3                                 // L'L = 512 bits, b = broadcast
	modrm := 1<<6 | (dst&7)<<3 | b&7                                      // mod 01: an 8-bit displacement, scaled by 4
	return fmt.Sprintf("BYTE $0x62; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x; BYTE $0x%02x",
		p0, p1, p2, op, modrm, disp/4)
}

// lanesKernel writes the float32 kernel at stride, or with bf16 the
// bfloat16 one: the same tile over pairs of input channels, the image's
// rows holding a pair's two values in each 32-bit slot (bf16(c) |
// bf16(c+1)<<16) and the filter's 64 slots a tap likewise, summed into
// the float32 sums by VDPBF16PS (AVX-512 BF16).
func lanesKernel(w *asm, stride int, bf16 bool) {
	p := w.p
	z := func(i int) string { return fmt.Sprintf("Z%d", i) }
	acc := func(j, v int) string { return z(j*lanesVecs + v) }
	wreg := func(v int) string { return z(lanesPixels*lanesVecs + v) }
	name := fmt.Sprintf("convLanes3x3S%dAVX512", stride)
	if bf16 {
		name = fmt.Sprintf("convLanes3x3S%dBF16", stride)
	}
	p("")
	p("// func %s(x, w, out *float32, nc, chs, row, ldo int, add bool)", name)
	p("//")
	if bf16 {
		p("// Needs AVX-512 F and BF16.")
	} else {
		p("// Needs AVX-512 F.")
	}
	p("TEXT ·%s(SB), NOSPLIT, $0-57", name)
	p("\tMOVQ x+0(FP), SI")
	p("\tMOVQ w+8(FP), DX")
	p("\tMOVQ out+16(FP), DI")
	p("\tMOVQ nc+24(FP), CX")
	p("\tMOVQ chs+32(FP), R14")
	p("\tSHLQ $2, R14")
	p("\tMOVQ row+40(FP), R9")
	p("\tSHLQ $2, R9")
	p("\tMOVQ ldo+48(FP), R10")
	p("\tSHLQ $2, R10")
	p("\tMOVBLZX add+56(FP), R11")
	p("\tTESTQ R11, R11")
	p("\tJZ   clear")
	p("\tMOVQ DI, R12")
	for j := 0; j < lanesPixels; j++ {
		for v := 0; v < lanesVecs; v++ {
			p("\tVMOVUPS %d(R12), %s", 64*v, acc(j, v))
		}
		if j < lanesPixels-1 {
			p("\tADDQ R10, R12")
		}
	}
	p("\tJMP  sums")
	p("")
	p("clear:")
	for j := 0; j < lanesPixels; j++ {
		for v := 0; v < lanesVecs; v++ {
			avx512.zero(w, acc(j, v))
		}
	}
	p("")
	p("sums:")
	p("\tTESTQ CX, CX")
	p("\tJZ   store")
	// (R12 as a base would need a SIB byte in evexBcst's encoding.)
	rows := []string{"SI", "BX", "R13"}
	p("\tLEAQ (SI)(R9*1), BX")
	p("\tLEAQ (BX)(R9*1), R13")
	p("")
	p("channel:")
	for kh := 0; kh < 3; kh++ {
		for kw := 0; kw < 3; kw++ {
			tap := kh*3 + kw
			for v := 0; v < lanesVecs; v++ {
				p("\tVMOVUPS %d(DX), %s", 64*(tap*lanesVecs+v), wreg(v))
			}
			for v := 0; v < lanesVecs; v++ {
				p("\tPREFETCHT0 %d(DX)", lanesPrefetch+64*(tap*lanesVecs+v))
			}
			for j := 0; j < lanesPixels; j++ {
				for v := 0; v < lanesVecs; v++ {
					disp := 4 * (stride*j + kw)
					if bf16 {
						p("\t%s // VDPBF16PS.BCST %d(%s), %s, %s", evexBcst(0x52, ppF3, j*lanesVecs+v, lanesPixels*lanesVecs+v, rows[kh], disp), disp, rows[kh], wreg(v), acc(j, v))
						continue
					}
					p("\tVFMADD231PS.BCST %d(%s), %s, %s", disp, rows[kh], wreg(v), acc(j, v))
				}
			}
		}
	}
	p("\tADDQ $%d, DX", 9*lanesVecs*64)
	for _, r := range rows {
		p("\tADDQ R14, %s", r)
	}
	p("\tDECQ CX")
	p("\tJNZ  channel")
	p("")
	p("store:")
	for j := 0; j < lanesPixels; j++ {
		for v := 0; v < lanesVecs; v++ {
			p("\tVMOVUPS %s, %d(DI)", acc(j, v), 64*v)
		}
		if j < lanesPixels-1 {
			p("\tADDQ R10, DI")
		}
	}
	p("\tVZEROUPPER")
	p("\tRET")
}

// pairSpans rounds pairs of spans of n float32 values, each pair's two
// side by side in src, to the bfloat16 pairs the bfloat16 lanes kernel
// reads:
//
//	for q := 0; q < pairs; q++ {
//		for j := 0; j < n; j++ {
//			dst[q*n+j] = bits of uint32(bf16(src[2q*n+j])) | uint32(bf16(src[(2q+1)*n+j]))<<16
//		}
//	}
//
// 16 values a step, the last n mod 16 under the mask tail (1<<(n mod
// 16) − 1), full = n / 16; VCVTNEPS2BF16's rounding as pairBF16's.
func pairSpans(w *asm) {
	p := w.p
	p("")
	p("// func pairSpansBF16(src []float32, n, pairs, full int, tail uint16, dst []float32)")
	p("//")
	p("// Needs AVX-512 F and BF16.")
	p("TEXT ·pairSpansBF16(SB), NOSPLIT, $0-80")
	p("\tMOVQ src_base+0(FP), SI")
	p("\tMOVQ n+24(FP), DX")
	p("\tSHLQ $2, DX")
	p("\tMOVQ pairs+32(FP), CX")
	p("\tMOVQ full+40(FP), R11")
	p("\tKMOVW tail+48(FP), K1")
	p("\tMOVQ dst_base+56(FP), DI")
	p("\tTESTQ CX, CX")
	p("\tJZ   done")
	p("")
	p("pair:")
	p("\tMOVQ SI, R8")
	p("\tLEAQ (SI)(DX*1), R9")
	p("\tMOVQ DI, R10")
	p("\tMOVQ R11, BX")
	p("\tTESTQ BX, BX")
	p("\tJZ   tail")
	p("")
	p("step:")
	convert := func(load, store string) {
		p("\t"+load, "(R8)", "Z0")
		p("\t"+load, "(R9)", "Z1")
		pairZ0Z1(p)
		p("\t"+store, "Z2", "(R10)")
	}
	convert("VMOVUPS %s, %s", "VMOVDQU32 %s, %s")
	p("\tADDQ $64, R8")
	p("\tADDQ $64, R9")
	p("\tADDQ $64, R10")
	p("\tDECQ BX")
	p("\tJNZ  step")
	p("")
	p("tail:")
	p("\tKORTESTW K1, K1")
	p("\tJZ   next")
	convert("VMOVUPS.Z %s, K1, %s", "VMOVDQU32 %s, K1, %s")
	p("")
	p("next:")
	p("\tLEAQ (SI)(DX*2), SI")
	p("\tADDQ DX, DI")
	p("\tDECQ CX")
	p("\tJNZ  pair")
	p("")
	p("done:")
	p("\tVZEROUPPER")
	p("\tRET")
}
