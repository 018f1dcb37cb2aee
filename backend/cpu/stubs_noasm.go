//go:build !amd64 || noasm

package cpu

// Without assembly (another architecture, or the noasm build tag) only the
// generic level exists: the *Vec functions take nothing, and the Go loops in
// elementwise.go, norm.go and gemm.go do all the work.

func addAsmKernels(map[Level]gemmKernel) {}

func pairRowsVec(src []float32, lds, pairs int, dst []float32) int { return 0 }

func copyRowsVec(src []float32, lds, w, kb int, dst []float32) bool { return false }

func quadRowsVec(src []float32, lds, quads int, dst []float32, q *quantB) int { return 0 }

func minMaxVec(x []float32) (n int, lo, hi float32) { return 0, 0, 0 }

func splitRowsVec(src []float32, lds, n, rows int, even, odd []float32, ldd int) bool {
	return false
}

func maxPool3x3s2Vec(x []float32, w1, w2, clip int, y, arg []float32, base int) int { return 0 }

func axpyVec(a float32, x, y []float32) int                           { return 0 }
func scaleVec(a float32, x, y []float32) int                          { return 0 }
func affineVec(a, c float32, x, y []float32) int                      { return 0 }
func addVec(x, z, y []float32) int                                    { return 0 }
func mulVec(x, z, y []float32) int                                    { return 0 }
func reluVec(x, y []float32) int                                      { return 0 }
func affineReluVec(a, c float32, x, y []float32) (int, float32)       { return 0, 0 }
func sgdMomentumVec(lr, wd, mu, c float32, w, g, m []float32) int     { return 0 }
func affineAddReluVec(a, c float32, x, z, y []float32) (int, float32) { return 0, 0 }
func reluBackwardVec(x, z, y []float32) int                           { return 0 }
func bnDxVec(p, q, r, m float32, d, x, y []float32) int               { return 0 }
func bnSumsVec(m float32, d, x []float32) (n int, sd, sdx float32)    { return 0, 0, 0 }
func sum64Vec(x []float32) (n int, s float64)                         { return 0, 0 }
func sumSqDev64Vec(m float64, x []float32) (n int, s float64)         { return 0, 0 }

func gatherRowsVec(dst []float32, ldd int, src []float32, offs []int, lo, hi, base, n int) bool {
	return false
}

func packRowsOffVec(src []float32, offs []int, kb int, dst []float32, ldd int) (rows, cols int) {
	return 0, 0
}

func gatherPairsVec(dst []float32, ldd int, src []float32, offs []int, lo, hi, base, n int) bool {
	return false
}

func gatherQuadsVec(dst []float32, ldd int, src []float32, offs []int, lo, hi, base, n int, q *quantB) bool {
	return false
}

func gatherQuadsU8Vec(dst []float32, ldd int, src []byte, offs []int, lo, hi, base, n int) bool {
	return false
}

func quantU8RowVec(x []float32, y []byte, q *quantB) int { return 0 }

func wgInputVec(src []float32, wpe, pl, chunks int, dst []float32, xs, kb int) bool { return false }
func wgOutputVec(m []float32, ms, n int, y0, y1 []float32, q int) bool              { return false }

func wgGradVec(dy0, dy1 []float32, q, n int, e []float32, es int) bool { return false }

func wgRowKernels() (out func(m []float32, ms, n int, y0, y1 []float32, q int), grad func(dy0, dy1 []float32, q, n int, e []float32, es int)) {
	return wgOutputGo, wgGradGo
}

func lanesTileVec(bf16 bool, stride int, x, w, out []float32, nc, chs, row, ldo int, add bool) bool {
	return false
}

func pairSpansVec(src []float32, n, pairs int, dst []float32) bool { return false }

func prefetchLines(p *float32, lines int) {}

func wgInputPairVec(src []float32, wpe, pl, chunks int, dst []float32, xs, kd int, hi bool) bool {
	return false
}

func dotRowsReady() bool { return false }

func dotRows(kb int, a []float32, lda, m int, b []float32, ldb int, c []float32, ldc, n int, alpha float32, set bool) {
	panic("cpu: dotRows without assembly")
}

func wg4InputVec(src []float32, wpe, pl, chunks int, dst []float32, xs, kb int) bool { return false }

func wg4OutputVec(m []float32, ms, n int, y *[4][]float32, q int) bool { return false }

func split4RowsVec(src []float32, lds, w, rows int, d *[4][]float32, ldd int) bool { return false }
