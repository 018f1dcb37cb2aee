package main

import "fmt"

// A micro-kernel computes, for a packed MR-tall panel a (kc columns of MR
// values) and a packed NR-wide panel b (kc rows of NR values):
//
//	for i := 0; i < MR; i++ {
//		for j := 0; j < NR; j++ {
//			var s float32
//			for l := 0; l < kc; l++ {
//				s += a[l*MR+i] * b[l*NR+j]
//			}
//			c[i*ldc+j] += alpha * s
//		}
//	}
//
// Each row of the tile lives in NV = NR/lanes vector accumulators. Per k
// step the kernel loads the NV vectors of b, and for each row broadcasts one
// value of a into a register and multiplies it into the row's vectors.
//
// The tiles were chosen by measurement on an AMD EPYC (Zen 5, AVX-512 with
// two 512-bit FMA pipes), over square products and the GEMM shapes of
// convolutions: for AVX-512, 8×32 beat 12×32, 14×32, 10×32, 6×64, 4×64,
// 8×48 and 16×16, and register broadcasts beat FMAs with an embedded
// broadcast of a; for AVX2, 6×16 and 4×24 were equal, and 6×16 is the usual
// choice on Intel cores. Eight rows divide the channel counts of CNNs, so
// convolutions rarely need partial tiles.
type gemmKernel struct {
	name   string // Go symbol, without the package dot
	isa    isa
	mr, nv int // rows, vectors per row (NR = nv·lanes)
	unroll int // k steps per loop iteration
	edge   bool
	needs  string // the CPU features, for the comment
	// bf16: each k step is a pair of bfloat16 values per 32-bit slot of a
	// and b, multiplied and summed into the float32 accumulators by
	// VDPBF16PS (AVX-512 BF16) instead of a fused multiply-add.
	bf16 bool
	// i8: each k step is a quad of unsigned bytes in b and of signed bytes
	// in a per 32-bit slot, summed into int32 accumulators by VPDPBUSD
	// (AVX-512 VNNI); the sums are converted to float32 when stored.
	i8 bool
	// panel is the width of the packed B panels when it differs from the
	// tile's (nv·lanes): the half-width edge kernels read the left half of
	// full-width panels.
	panel int
	// prefetchA, when not 0, is how many bytes ahead of its reads the k
	// loop prefetches A, whose packed panels follow each other in memory.
	// At batch 1 a network's filters come from DRAM once per image (100
	// MB for ResNet-50 in float32), a stream the hardware prefetchers
	// leave behind the FMAs: 2048 bytes ahead took ResNet-50 batch 1 from
	// 34.6 to 32.5 ms and ResNet-18's from 14.7 to 13.4 ms (medians of 8
	// alternating rounds, 2 threads, Zen 5); 512 and 1024 gained less,
	// 4096 the same; large square products did not change. The AVX2
	// kernel, forced on the same machine (DMLGO_SIMD=avx2): ResNet-50
	// batch 1 63.4 → 60.9 ms, ResNet-18 31.3 → 30.2 ms.
	prefetchA int
}

// panelWidth is how many values a k step of a packed B panel holds.
func (k gemmKernel) panelWidth() int {
	if k.panel != 0 {
		return k.panel
	}
	return k.nv * k.isa.lanes
}

var (
	avx2Kernel   = gemmKernel{name: "gemmKernelAVX2", isa: avx2, mr: 6, nv: 2, unroll: 4, needs: "AVX2 and FMA", prefetchA: 2048}
	avx512Kernel = gemmKernel{name: "gemmKernelAVX512", isa: avx512, mr: 8, nv: 2, unroll: 4, edge: true, needs: "AVX-512 F", prefetchA: 2048}
	bf16Kernel   = gemmKernel{name: "gemmKernelBF16", isa: avx512, mr: 8, nv: 2, unroll: 4, edge: true, bf16: true, needs: "AVX-512 F and BF16", prefetchA: 2048}
	i8Kernel     = gemmKernel{name: "gemmKernelI8", isa: avx512, mr: 8, nv: 2, unroll: 4, edge: true, i8: true, needs: "AVX-512 F and VNNI", prefetchA: 2048}
)

// Register use: b vectors in 0..nv-1, broadcast temporaries after them, the
// accumulators in the top registers.
func (k gemmKernel) nacc() int { return k.mr * k.nv }
func (k gemmKernel) acc(i, v int) string {
	return k.isa.v(k.isa.nregs - k.nacc() + i*k.nv + v)
}
func (k gemmKernel) ntmp() int { return min(4, k.isa.nregs-k.nacc()-k.nv) }

func gemmFile(k gemmKernel) []byte {
	var w asm
	w.header()
	if k.ntmp() < 2 {
		panic(fmt.Sprintf("%s: %d rows of %d vectors need too many registers", k.name, k.mr, k.nv))
	}
	nr := k.nv * k.isa.lanes
	w.p("")
	w.p("// func %s(kc int, a, b []float32, c []float32, ldc int, alpha float32)", k.name)
	w.p("//")
	w.p("// %d×%d tile, %d accumulators; needs %s.", k.mr, nr, k.nacc(), k.needs)
	w.p("TEXT ·%s(SB), NOSPLIT, $0-92", k.name)
	k.body(&w)
	k.storeFull(&w, false)
	w.p("")
	w.p("// func %sSet(kc int, a, b []float32, c []float32, ldc int, alpha float32)", k.name)
	w.p("//")
	w.p("// %s with c = alpha·acc: c is written, never read (the first k block", k.name)
	w.p("// of a product with beta = 0).")
	w.p("TEXT ·%sSet(SB), NOSPLIT, $0-92", k.name)
	k.body(&w)
	k.storeFull(&w, true)
	if k.edge {
		w.p("")
		w.p("// func %sEdge(kc int, a, b []float32, c []float32, ldc int, alpha float32, mm, nn int)", k.name)
		w.p("//")
		w.p("// %s for a partial tile: rows ≥ mm and columns ≥ nn of c are neither", k.name)
		w.p("// read nor written (masked loads and stores). Needs %s.", k.needs)
		w.p("TEXT ·%sEdge(SB), NOSPLIT, $0-112", k.name)
		k.body(&w)
		k.storeEdge(&w)
		// The same for tiles at most half as wide: one vector a row over
		// the panels' left halves, half the work of the edge kernel.
		h := k
		h.nv, h.panel = 1, nr
		w.p("")
		w.p("// func %sHalfEdge(kc int, a, b []float32, c []float32, ldc int, alpha float32, mm, nn int)", k.name)
		w.p("//")
		w.p("// %sEdge for nn ≤ %d: the %d×%d tile of the left half of each", k.name, nr/2, k.mr, nr/2)
		w.p("// %d-wide panel of b, %d accumulators. Needs %s.", nr, h.nacc(), k.needs)
		w.p("TEXT ·%sHalfEdge(SB), NOSPLIT, $0-112", k.name)
		h.body(&w)
		h.storeEdge(&w)
		for _, np := range []int{1, colsPanels} {
			for n := 1; n <= colsMax; n++ {
				k.cols(&w, n, np)
			}
		}
	}
	return w.Bytes()
}

// colsMax is the widest partial tile the column kernels (cols) take, and
// colsPanels how many of a's panels the wider of them go through at once.
const (
	colsMax    = 4
	colsPanels = 4
)

// cols writes the kernel for a partial tile's last n columns (1 ≤ n ≤
// colsMax: the 4 past 192 of a 14×14 plane's 196, the one past 16 of a
// 7×7 plane's 17) for np of a's panels at once (np·MR rows, the panels
// one after another, kc·MR slots each): each column's products with the
// rows in the lanes of YMM accumulators, one a panel, and the column's
// value of b broadcast. That is np·n vector products a k step where the
// edge kernel takes 2·MR for each panel, and np·n independent sums to
// hide the products' latency. Each sum is the same sequence of the same
// operations as the edge kernel's, so the results are bit for bit its
// own. The sums go through the stack, column by column, to be added to
// c one value at a time (rows < mm, columns < n).
//
//	for i := 0; i < mm; i++ {
//		for j := 0; j < n; j++ {
//			c[i*ldc+j] += alpha * Σ_l a[(i/MR)*kc*MR + l*MR + i%MR]·b[l*panel+j]
//		}
//	}
func (k gemmKernel) cols(w *asm, n, np int) {
	if k.isa.name != "avx512" || k.mr != 8 || n > colsMax || np > colsPanels {
		panic("column kernels need AVX-512, 8-row panels and at most 16 accumulators")
	}
	pnr := k.panelWidth()
	name := fmt.Sprintf("%sCols%dx%d", k.name, np, n)
	acc := func(p, j int) int { return 16 + p*n + j }
	frame := 32 * n * np
	w.p("")
	w.p("// func %s(kc int, a, b []float32, c []float32, ldc int, alpha float32, mm int)", name)
	w.p("//")
	w.p("// %sEdge's sums for columns < %d and rows < mm (≤ %d) only, %d", k.name, n, 8*np, n*np)
	w.p("// YMM accumulators with the rows in their lanes. Needs %s (and VL).", k.needs)
	w.p("TEXT ·%s(SB), NOSPLIT, $%d-104", name, frame)
	loadArgs(w)
	w.p("\tMOVQ CX, R8")
	w.p("\tSHLQ $5, R8 // bytes from one panel of a to the next")
	w.p("\tLEAQ (R8)(R8*2), R11 // three panels")
	for p := 0; p < np; p++ {
		for j := 0; j < n; j++ {
			w.p("\tVPXORD Y%d, Y%d, Y%d", acc(p, j), acc(p, j), acc(p, j))
		}
	}
	panels := []string{"(SI)", "(SI)(R8*1)", "(SI)(R8*2)", "(SI)(R11*1)"}
	step := func(u int) {
		aoff, boff := u*k.mr*4, u*pnr*4
		for p := 0; p < np; p++ {
			w.p("\tVMOVUPS %d%s, Y%d", aoff, panels[p], p)
		}
		for j := 0; j < n; j++ {
			t := 4 + j
			if k.bf16 || k.i8 {
				w.p("\tVPBROADCASTD %d(BX), Y%d", boff+4*j, t)
			} else {
				w.p("\tVBROADCASTSS %d(BX), Y%d", boff+4*j, t)
			}
			for p := 0; p < np; p++ {
				switch {
				case k.bf16:
					w.p("\t%s // VDPBF16PS Y%d, Y%d, Y%d", evex(0x52, ppF3, acc(p, j), p, t, 256), t, p, acc(p, j))
				case k.i8:
					// b's unsigned bytes (vvvv) times a's signed ones (rm).
					w.p("\t%s // VPDPBUSD Y%d, Y%d, Y%d", evex(0x50, pp66, acc(p, j), t, p, 256), p, t, acc(p, j))
				default:
					w.p("\tVFMADD231PS Y%d, Y%d, Y%d", p, t, acc(p, j))
				}
			}
		}
	}
	k.kLoop(w, pnr, false, step)
	w.p("\t// Column j's %d sums to the stack at %d·j, then row by row into c.", 8*np, 32*np)
	for j := 0; j < n; j++ {
		for p := 0; p < np; p++ {
			if k.i8 {
				w.p("\tVCVTDQ2PS Y%d, Y%d", acc(p, j), acc(p, j))
			}
			w.p("\tVMOVUPS Y%d, %d(SP)", acc(p, j), 32*(j*np+p))
		}
	}
	w.p("\tVMOVSS alpha+88(FP), X7")
	w.p("\tMOVQ mm+96(FP), R9")
	w.p("\tXORQ R10, R10")
	w.p("\tTESTQ R9, R9")
	w.p("\tJLE  done")
	w.p("")
	w.p("row:")
	for j := 0; j < n; j++ {
		w.p("\tVMOVSS %d(SP)(R10*1), X1", 32*np*j)
		w.p("\tVMOVSS %d(DI), X2", 4*j)
		w.p("\tVFMADD231SS X1, X7, X2")
		w.p("\tVMOVSS X2, %d(DI)", 4*j)
	}
	w.p("\tADDQ $4, R10")
	w.p("\tADDQ DX, DI")
	w.p("\tDECQ R9")
	w.p("\tJNZ  row")
	w.p("")
	w.p("done:")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
}

// body loads the arguments, prefetches the C tile and runs the k loop.
// SI: a, BX: b, DI: c, DX: ldc in bytes, CX: k steps.
func (k gemmKernel) body(w *asm) {
	s := k.isa
	nr, pnr := k.nv*s.lanes, k.panelWidth()
	loadArgs(w)
	w.p("")
	w.p("\t// Bring the C tile towards L1 while the products run.")
	w.p("\tMOVQ DI, R8")
	for i := 0; i < k.mr; i++ {
		for off := 0; off < nr*4; off += 64 {
			w.p("\tPREFETCHT0 %d(R8)", off)
		}
		w.p("\tPREFETCHT0 %d(R8)", nr*4-4)
		if i < k.mr-1 {
			w.p("\tADDQ DX, R8")
		}
	}
	w.p("")
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nv; v++ {
			s.zero(w, k.acc(i, v))
		}
	}
	step := func(u int) {
		aoff, boff := u*k.mr*4, u*pnr*4
		for v := 0; v < k.nv; v++ {
			w.p("\tVMOVUPS %d(BX), %s", boff+v*s.vbytes(), s.v(v))
		}
		for i := 0; i < k.mr; i++ {
			t := s.v(k.nv + i%k.ntmp())
			if (k.bf16 || k.i8) && k.nv == 1 {
				// As for float32 below: a's slot broadcast by the product.
				acc := k.isa.nregs - k.nacc() + i
				if k.bf16 {
					w.p("\t%s // VDPBF16PS.BCST %d(SI), %s, %s", evex512Bcst(0x52, ppF3, acc, 0, aoff+i*4), aoff+i*4, s.v(0), k.acc(i, 0))
				} else {
					w.p("\t%s // VPDPBUSD.BCST %d(SI), %s, %s", evex512Bcst(0x50, pp66, acc, 0, aoff+i*4), aoff+i*4, s.v(0), k.acc(i, 0))
				}
				continue
			}
			if k.bf16 || k.i8 {
				// A pair (quad) of a's values: one 32-bit slot to every lane.
				w.p("\tVPBROADCASTD %d(SI), %s", aoff+i*4, t)
				for v := 0; v < k.nv; v++ {
					acc := k.isa.nregs - k.nacc() + i*k.nv + v
					if k.bf16 {
						w.p("\t%s // VDPBF16PS %s, %s, %s", evex512(0x52, ppF3, acc, k.nv+i%k.ntmp(), v), s.v(v), t, k.acc(i, v))
					} else {
						// b's unsigned bytes (vvvv) times a's signed ones (rm).
						w.p("\t%s // VPDPBUSD %s, %s, %s", evex512(0x50, pp66, acc, v, k.nv+i%k.ntmp()), t, s.v(v), k.acc(i, v))
					}
				}
				continue
			}
			if k.nv == 1 && s.vbytes() == 64 {
				// One vector of b a row: a's value as the FMA's embedded
				// broadcast, one instruction where VBROADCASTSS and the
				// FMA were two (Zen 4: a 7×7 plane's 17 columns past 32,
				// m = 512, k = 2048, 0.63–0.68 → 0.58 ms on two threads).
				w.p("\tVFMADD231PS.BCST %d(SI), %s, %s", aoff+i*4, s.v(0), k.acc(i, 0))
				continue
			}
			w.p("\tVBROADCASTSS %d(SI), %s", aoff+i*4, t)
			for v := 0; v < k.nv; v++ {
				w.p("\tVFMADD231PS %s, %s, %s", s.v(v), t, k.acc(i, v))
			}
		}
	}
	k.kLoop(w, pnr, k.prefetchA != 0, step)
	if k.i8 {
		for i := 0; i < k.mr; i++ {
			for v := 0; v < k.nv; v++ {
				w.p("\tVCVTDQ2PS %s, %s", k.acc(i, v), k.acc(i, v))
			}
		}
	}
}

// loadArgs loads a kernel's first arguments: SI: a, BX: b, DI: c, DX:
// ldc in bytes, CX: kc.
func loadArgs(w *asm) {
	w.p("\tMOVQ kc+0(FP), CX")
	w.p("\tMOVQ a_base+8(FP), SI")
	w.p("\tMOVQ b_base+32(FP), BX")
	w.p("\tMOVQ c_base+56(FP), DI")
	w.p("\tMOVQ ldc+80(FP), DX")
	w.p("\tSHLQ $2, DX")
}

// kLoop writes the loop over CX k steps around step (one k step at
// offset u): unroll steps an iteration, then the rest one at a time, SI
// moving over MR values of a and BX over pnr of b a step; with prefetch,
// each iteration first prefetches a prefetchA bytes ahead. It ends at
// the label store.
func (k gemmKernel) kLoop(w *asm, pnr int, prefetch bool, step func(u int)) {
	w.p("")
	w.p("\tMOVQ CX, R9")
	w.p("\tSHRQ $%d, R9", log2(k.unroll))
	w.p("\tJZ   tail")
	w.p("")
	w.p("loop:")
	if prefetch {
		for off := 0; off < k.unroll*k.mr*4; off += 64 {
			w.p("\tPREFETCHT0 %d(SI)", k.prefetchA+off)
		}
	}
	for u := 0; u < k.unroll; u++ {
		step(u)
	}
	w.p("\tADDQ $%d, SI", k.unroll*k.mr*4)
	w.p("\tADDQ $%d, BX", k.unroll*pnr*4)
	w.p("\tDECQ R9")
	w.p("\tJNZ  loop")
	w.p("")
	w.p("tail:")
	w.p("\tANDQ $%d, CX", k.unroll-1)
	w.p("\tJZ   store")
	w.p("")
	w.p("tailloop:")
	step(0)
	w.p("\tADDQ $%d, SI", k.mr*4)
	w.p("\tADDQ $%d, BX", pnr*4)
	w.p("\tDECQ CX")
	w.p("\tJNZ  tailloop")
	w.p("")
	w.p("store:")
}

// storeFull adds alpha·acc to the whole tile (set: stores alpha·acc).
func (k gemmKernel) storeFull(w *asm, set bool) {
	s := k.isa
	alpha := s.v(0)
	w.p("\tVBROADCASTSS alpha+88(FP), %s", alpha)
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nv; v++ {
			if set {
				w.p("\tVMULPS %s, %s, %s", alpha, k.acc(i, v), k.acc(i, v))
			} else {
				w.p("\tVFMADD213PS %d(DI), %s, %s", v*s.vbytes(), alpha, k.acc(i, v))
			}
			w.p("\tVMOVUPS %s, %d(DI)", k.acc(i, v), v*s.vbytes())
		}
		if i < k.mr-1 {
			w.p("\tADDQ DX, DI")
		}
	}
	w.p("\tVZEROUPPER")
	w.p("\tRET")
}

// storeEdge adds alpha·acc to rows < mm, columns < nn (AVX-512 only):
// mask K(1+v) holds the valid lanes of vector v.
func (k gemmKernel) storeEdge(w *asm) {
	s := k.isa
	if s.name != "avx512" {
		panic("edge kernels need AVX-512 masks")
	}
	w.p("\tMOVQ nn+104(FP), AX")
	for v := 0; v < k.nv; v++ {
		w.p("\t// K%d: lanes min(max(nn-%d, 0), 16) of vector %d", v+1, v*16, v)
		w.p("\tMOVQ AX, CX")
		if v > 0 {
			w.p("\tSUBQ $%d, CX", v*16)
		}
		w.p("\tXORQ R10, R10")
		w.p("\tCMPQ CX, $0")
		w.p("\tCMOVQLT R10, CX")
		w.p("\tMOVQ $16, R10")
		w.p("\tCMPQ CX, R10")
		w.p("\tCMOVQGT R10, CX")
		w.p("\tMOVL $1, R11")
		w.p("\tSHLL CX, R11")
		w.p("\tDECL R11")
		w.p("\tKMOVW R11, K%d", v+1)
	}
	w.p("\tMOVQ mm+96(FP), R9")
	alpha, t := s.v(0), s.v(1)
	w.p("\tVBROADCASTSS alpha+88(FP), %s", alpha)
	for i := 0; i < k.mr; i++ {
		w.p("\tCMPQ R9, $%d", i)
		w.p("\tJLE  done")
		for v := 0; v < k.nv; v++ {
			w.p("\tVMOVUPS.Z %d(DI), K%d, %s", v*s.vbytes(), v+1, t)
			w.p("\tVFMADD231PS %s, %s, %s", k.acc(i, v), alpha, t)
			w.p("\tVMOVUPS %s, K%d, %d(DI)", t, v+1, v*s.vbytes())
		}
		if i < k.mr-1 {
			w.p("\tADDQ DX, DI")
		}
	}
	w.p("")
	w.p("done:")
	w.p("\tVZEROUPPER")
	w.p("\tRET")
}
