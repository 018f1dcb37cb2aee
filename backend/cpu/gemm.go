package cpu

import (
	"sync"
)

// The fast SGEMM: BLIS-style blocking with packed panels around a
// register-blocked micro-kernel.
//
//	for jc in N by nc:            B block (kc × nc) packed into NR-wide panels
//	  for pc in K by kc:
//	    for ic in M by mc:        A block (mc × kc) packed into MR-tall panels
//	      for each MR×NR tile:    micro-kernel: C_tile += alpha · Apanel · Bpanel
//
// The micro-kernel is the only part that changes per SIMD level (see
// kernel.go); everything here is plain Go. Threads split C into column
// (or row) strips that run the whole algorithm independently.

// microKernel computes C[0:MR, 0:NR] += alpha · a · b where a is an MR-tall
// packed panel (kc columns of MR values) and b an NR-wide packed panel (kc
// rows of NR values); c has row stride ldc.
type microKernel func(kc int, a, b []float32, c []float32, ldc int, alpha float32)

// gemmKernel is one micro-kernel and its tile size.
type gemmKernel struct {
	name   string
	mr, nr int
	fn     microKernel
}

// Block sizes: a kc×nr panel of B stays in L1 across a row of tiles, an
// mc×kc block of A in L2, the kc×nc block of B in L3. Set by setBlocking.
var blk = struct{ mc, kc, nc int }{mc: 96, kc: 256, nc: 4096}

// gemmKernelGeneric is the pure-Go micro-kernel: a 4×4 register block.
func gemmKernelGeneric(kc int, a, b []float32, c []float32, ldc int, alpha float32) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for l := 0; l < kc; l++ {
		a0, a1, a2, a3 := a[l*4], a[l*4+1], a[l*4+2], a[l*4+3]
		b0, b1, b2, b3 := b[l*4], b[l*4+1], b[l*4+2], b[l*4+3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := c[0:4]
	r[0] += alpha * c00
	r[1] += alpha * c01
	r[2] += alpha * c02
	r[3] += alpha * c03
	r = c[ldc : ldc+4]
	r[0] += alpha * c10
	r[1] += alpha * c11
	r[2] += alpha * c12
	r[3] += alpha * c13
	r = c[2*ldc : 2*ldc+4]
	r[0] += alpha * c20
	r[1] += alpha * c21
	r[2] += alpha * c22
	r[3] += alpha * c23
	r = c[3*ldc : 3*ldc+4]
	r[0] += alpha * c30
	r[1] += alpha * c31
	r[2] += alpha * c32
	r[3] += alpha * c33
}

var genericKernel = gemmKernel{name: "generic 4x4", mr: 4, nr: 4, fn: gemmKernelGeneric}

// gemmBuffers are one thread's packing buffers.
type gemmBuffers struct {
	a, b, tile []float32
}

var bufPool = sync.Pool{New: func() any { return new(gemmBuffers) }}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// sgemm computes C = alpha·op(A)·op(B) + beta·C with leading dimensions
// (BLAS semantics, row-major), on up to `threads` goroutines.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, threads int) {
	if m == 0 || n == 0 {
		return
	}
	scaleC(m, n, beta, c, ldc)
	if k == 0 || alpha == 0 {
		return
	}
	kern := activeKernel()
	// Below a few MFLOP a second goroutine costs more than it saves.
	if threads > 1 && 2*m*n*k < 1<<20 {
		threads = 1
	}
	if threads <= 1 {
		gemmSerial(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc)
		return
	}
	// Split the larger dimension into strips that are whole tiles.
	var wg sync.WaitGroup
	if n >= m {
		strips := splitRange(n, threads, kern.nr)
		for _, s := range strips {
			wg.Add(1)
			go func(j0, j1 int) {
				defer wg.Done()
				bs := b[j0:]
				if transB {
					bs = b[j0*ldb:]
				}
				gemmSerial(kern, transA, transB, m, j1-j0, k, alpha, a, lda, bs, ldb, c[j0:], ldc)
			}(s[0], s[1])
		}
	} else {
		strips := splitRange(m, threads, kern.mr)
		for _, s := range strips {
			wg.Add(1)
			go func(i0, i1 int) {
				defer wg.Done()
				as := a[i0:]
				if !transA {
					as = a[i0*lda:]
				}
				gemmSerial(kern, transA, transB, i1-i0, n, k, alpha, as, lda, b, ldb, c[i0*ldc:], ldc)
			}(s[0], s[1])
		}
	}
	wg.Wait()
}

// splitRange cuts [0, n) into at most parts ranges whose boundaries are
// multiples of unit.
func splitRange(n, parts, unit int) [][2]int {
	units := (n + unit - 1) / unit
	parts = min(parts, units)
	out := make([][2]int, 0, parts)
	start := 0
	for p := 0; p < parts; p++ {
		end := min(n, (units*(p+1)/parts)*unit)
		if end > start {
			out = append(out, [2]int{start, end})
		}
		start = end
	}
	return out
}

// scaleC applies C = beta·C (beta = 0 clears, ignoring NaN).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemmSerial is the blocked algorithm on one goroutine: C += alpha·op(A)·op(B).
func gemmSerial(kern gemmKernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	mc := max(mr, blk.mc/mr*mr)
	nc := max(nr, blk.nc/nr*nr)
	kc := blk.kc
	buf := bufPool.Get().(*gemmBuffers)
	defer bufPool.Put(buf)
	buf.tile = grow(buf.tile, mr*nr)
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		npanels := (nb + nr - 1) / nr
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			buf.b = grow(buf.b, npanels*nr*kb)
			packB(transB, kb, nb, nr, b, ldb, pc, jc, buf.b)
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				mpanels := (mb + mr - 1) / mr
				buf.a = grow(buf.a, mpanels*mr*kb)
				packA(transA, mb, kb, mr, a, lda, ic, pc, buf.a)
				for jp := 0; jp < npanels; jp++ {
					j := jc + jp*nr
					nn := min(nr, n-j)
					bp := buf.b[jp*nr*kb : (jp+1)*nr*kb]
					for ip := 0; ip < mpanels; ip++ {
						i := ic + ip*mr
						mm := min(mr, m-i)
						ap := buf.a[ip*mr*kb : (ip+1)*mr*kb]
						if mm == mr && nn == nr {
							kern.fn(kb, ap, bp, c[i*ldc+j:], ldc, alpha)
							continue
						}
						// Edge tile: compute into a zeroed scratch tile, add the valid part.
						t := buf.tile
						clear(t)
						kern.fn(kb, ap, bp, t, nr, alpha)
						for ii := 0; ii < mm; ii++ {
							row := c[(i+ii)*ldc+j : (i+ii)*ldc+j+nn]
							for jj := range row {
								row[jj] += t[ii*nr+jj]
							}
						}
					}
				}
			}
		}
	}
}

// packA copies the mb×kb block of op(A) at (i0, l0) into MR-tall panels:
// panel p holds, for each l, the MR values op(A)[i0+p·MR+r][l0+l], zero-padded.
func packA(trans bool, mb, kb, mr int, a []float32, lda, i0, l0 int, dst []float32) {
	for p := 0; p*mr < mb; p++ {
		d := dst[p*mr*kb : (p+1)*mr*kb]
		rows := min(mr, mb-p*mr)
		if !trans {
			for r := 0; r < rows; r++ {
				src := a[(i0+p*mr+r)*lda+l0:]
				for l := 0; l < kb; l++ {
					d[l*mr+r] = src[l]
				}
			}
		} else {
			for l := 0; l < kb; l++ {
				src := a[(l0+l)*lda+i0+p*mr:]
				copy(d[l*mr:l*mr+rows], src[:rows])
			}
		}
		if rows < mr {
			for l := 0; l < kb; l++ {
				clear(d[l*mr+rows : (l+1)*mr])
			}
		}
	}
}

// packB copies the kb×nb block of op(B) at (l0, j0) into NR-wide panels:
// panel p holds, for each l, the NR values op(B)[l0+l][j0+p·NR+c], zero-padded.
func packB(trans bool, kb, nb, nr int, b []float32, ldb, l0, j0 int, dst []float32) {
	for p := 0; p*nr < nb; p++ {
		d := dst[p*nr*kb : (p+1)*nr*kb]
		cols := min(nr, nb-p*nr)
		if !trans {
			for l := 0; l < kb; l++ {
				src := b[(l0+l)*ldb+j0+p*nr:]
				copy(d[l*nr:l*nr+cols], src[:cols])
			}
		} else {
			for cc := 0; cc < cols; cc++ {
				src := b[(j0+p*nr+cc)*ldb+l0:]
				for l := 0; l < kb; l++ {
					d[l*nr+cc] = src[l]
				}
			}
		}
		if cols < nr {
			for l := 0; l < kb; l++ {
				clear(d[l*nr+cols : (l+1)*nr])
			}
		}
	}
}
