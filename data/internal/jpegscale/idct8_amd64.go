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

// The AVX2 kernel where the CPU has AVX2, unless DMLGO_SIMD forces the
// pure-Go kernels (as it does the backend's).
func init() {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("DMLGO_SIMD"))) {
	case "generic", "go", "none":
		return
	}
	if cpu.X86.HasAVX2 {
		idct8, idct8Asm = idct8Checked, idct8Checked
	}
}
