//go:build amd64 && !noasm

package ycbcr

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

//go:noescape
func rowAVX2(dst, y, cb, cr *byte, groups int, half bool)

// rowChecked is rowAVX2 on the whole groups of eight pixels of n, behind
// the bounds checks the assembly leaves out.
func rowChecked(dst, y, cb, cr []byte, n int, half bool) int {
	g := n / 8
	if g == 0 {
		return 0
	}
	c := 8 * g
	if half {
		c = 4 * g
	}
	_, _, _, _ = dst[32*g-1], y[8*g-1], cb[c-1], cr[c-1]
	rowAVX2(&dst[0], &y[0], &cb[0], &cr[0], g, half)
	return 8 * g
}

// The AVX2 kernel where the CPU has AVX2, unless DMLGO_SIMD forces the
// pure-Go kernels (as it does the backend's).
func init() {
	switch strings.ToLower(strings.TrimSpace(os.Getenv("DMLGO_SIMD"))) {
	case "generic", "go", "none":
		return
	}
	if cpu.X86.HasAVX2 {
		rowKernel = rowChecked
	}
}
