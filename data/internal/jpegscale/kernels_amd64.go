//go:build amd64 && !noasm

package jpegscale

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

//go:noescape
func idct8AVX2(t *[64]int32, dst *byte, stride int)

// idct8Checked is idct8AVX2 behind the bounds check the assembly leaves
// out.
func idct8Checked(t *[64]int32, dst []byte, stride int) {
	_ = dst[7*stride+7]
	idct8AVX2(t, &dst[0], stride)
}

//go:noescape
func idct4AVX(blk *[64]int32, dst *byte, stride int, k *[18][4]float32)

// idct4K is idct4AVX's constants: idct4c[i][j] at 4i+j, then 128.5 and
// 255, each in four lanes.
var idct4K = func() (k [18][4]float32) {
	for i := range 4 {
		for j := range 4 {
			k[4*i+j] = [4]float32{idct4c[i][j], idct4c[i][j], idct4c[i][j], idct4c[i][j]}
		}
	}
	k[16], k[17] = [4]float32{128.5, 128.5, 128.5, 128.5}, [4]float32{255, 255, 255, 255}
	return k
}()

// idct4Checked is idct4AVX behind the bounds check the assembly leaves
// out.
func idct4Checked(blk *[64]int32, dst []byte, stride int) {
	_ = dst[3*stride+3]
	idct4AVX(blk, &dst[0], stride, &idct4K)
}

// The AVX kernels where the CPU has AVX2, unless DMLGO_SIMD forces the
// pure-Go kernels (as it does the backend's).
func init() {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("DMLGO_SIMD"))) {
	case "generic", "go", "none":
		return
	}
	if cpu.X86.HasAVX2 {
		idct8, idct8Asm = idct8Checked, idct8Checked
		idctTables[4], idct4Asm = idct4Checked, idct4Checked
	}
}
