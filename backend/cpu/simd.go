package cpu

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// Level is a SIMD instruction-set level of the CPU kernels.
type Level int32

// SIMD levels, in increasing order.
const (
	Generic Level = iota // pure Go
	AVX2                 // AVX2 + FMA
	AVX512               // AVX-512 F (+ the subsets each kernel names)
)

func (l Level) String() string {
	switch l {
	case Generic:
		return "generic"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	}
	return fmt.Sprintf("Level(%d)", int32(l))
}

// ParseLevel reads a level name as DMLGO_SIMD takes it.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "generic", "go", "none":
		return Generic, nil
	case "avx2":
		return AVX2, nil
	case "avx512", "avx-512":
		return AVX512, nil
	}
	return Generic, fmt.Errorf("unknown SIMD level %q (want generic, avx2 or avx512)", s)
}

// kernels holds the GEMM micro-kernel of each level this build and CPU
// support; initLevel adds the assembly ones (see kernels_amd64.go).
var kernels = map[Level]gemmKernel{Generic: genericKernel}

var (
	level     atomic.Int32 // the active level
	levelNote string       // why the level was chosen (DMLGO_SIMD problems)
)

// Supported lists the levels this machine and build can run, lowest first.
func Supported() []Level {
	var ls []Level
	for l := Generic; l <= AVX512; l++ {
		if _, ok := kernels[l]; ok {
			ls = append(ls, l)
		}
	}
	return ls
}

// Best is the highest supported level.
func Best() Level {
	ls := Supported()
	return ls[len(ls)-1]
}

// ActiveLevel is the level the kernels run at now.
func ActiveLevel() Level { return Level(level.Load()) }

// SetLevel switches the kernels to level l (tests use it to cover each
// level) and returns a function restoring the previous level. It returns an
// error when this machine or build cannot run l.
func SetLevel(l Level) (restore func(), err error) {
	if _, ok := kernels[l]; !ok {
		return func() {}, fmt.Errorf("cpu: SIMD level %v is not supported here (supported: %v)", l, Supported())
	}
	prev := level.Swap(int32(l))
	return func() { level.Store(prev) }, nil
}

func activeKernel() gemmKernel { return kernels[ActiveLevel()] }

// initLevel picks the best level, or the one DMLGO_SIMD forces.
func initLevel() {
	addAsmKernels(kernels)
	best := Best()
	level.Store(int32(best))
	env := os.Getenv("DMLGO_SIMD")
	if env == "" {
		return
	}
	l, err := ParseLevel(env)
	if err != nil {
		levelNote = "DMLGO_SIMD: " + err.Error() + "; using " + best.String()
		return
	}
	if _, ok := kernels[l]; !ok {
		levelNote = fmt.Sprintf("DMLGO_SIMD=%s is not supported on this CPU or build; using %v", env, best)
		return
	}
	level.Store(int32(l))
	levelNote = "forced by DMLGO_SIMD"
}
