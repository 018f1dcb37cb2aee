package cpu

// Score scans: exact top-k search and the IVF scan compute a block of
// scores by GEMM and then, per query, skip every score below the k-th best
// so far (the floor). IndexNotBelow finds the next one that is not, a
// vector at a time (indexNotBelowVec, the active level's assembly), and
// finishes in the Go loop it documents.
//
// n = len(x).

// IndexNotBelow returns the index of the first x[i] that is not below
// floor — x[i] >= floor, or either is NaN (!(x[i] < floor)) — or len(x)
// when every value is below it. It is:
//
//	for i, v := range x { if !(v < floor) { return i } }; return len(x)
//
// so −0 is not below +0, nothing is below a NaN or −Inf floor, and a NaN
// in x stops the scan.
//
// x: (n).
func IndexNotBelow(x []float32, floor float32) int {
	i := indexNotBelowVec(x, floor)
	for ; i < len(x); i++ {
		if !(x[i] < floor) {
			break
		}
	}
	return i
}
