//go:build amd64 && !noasm

package cpu

// The scan kernels (hand-written, indexnotbelow_amd64.s) compare a vector
// of x at a time with the broadcast floor and stop at the first vector
// holding a value that is not below it.

// indexNotBelowAVX2 is: for i, v := range x { if !(v < floor) { return i } }; return len(x)
// over len(x) a multiple of 8.
//
//go:noescape
func indexNotBelowAVX2(x []float32, floor float32) int

// indexNotBelowAVX512 is: for i, v := range x { if !(v < floor) { return i } }; return len(x)
// for any len(x) (the last, partial vector is a masked compare).
//
//go:noescape
func indexNotBelowAVX512(x []float32, floor float32) int

// indexNotBelowVec runs the active level's kernel over x, or over its
// longest whole-vector prefix, and returns i such that every value of x[:i]
// is below floor and either x[i] is not or i is the length it covered; the
// caller goes on from i in Go.
func indexNotBelowVec(x []float32, floor float32) int {
	switch ActiveLevel() {
	case AVX512:
		return indexNotBelowAVX512(x, floor)
	case AVX2:
		if n := len(x) &^ 7; n > 0 {
			return indexNotBelowAVX2(x[:n], floor)
		}
	}
	return 0
}
