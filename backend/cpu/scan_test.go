package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The scan tests: IndexNotBelow at each SIMD level on lengths 0..300 and a
// few longer ones, at offsets 0..3 into a larger slice (unaligned), against
// the Go loop it documents. The values outside x are sentinels: NaN before
// it, and after it alternately below the floor and NaN, so that a kernel
// reading past the end answers more than len(x). One test puts the first
// value that is not below the floor at every position (or none); another
// sprinkles NaN, ±Inf, ±0 and values at and next to the floor at random
// positions.

// indexNotBelowRef is the loop IndexNotBelow documents.
func indexNotBelowRef(x []float32, floor float32) int {
	for i, v := range x {
		if !(v < floor) {
			return i
		}
	}
	return len(x)
}

var (
	inf32   = float32(math.Inf(1))
	negZero = float32(math.Copysign(0, -1))
	nan32   = float32(math.NaN())
	negNaN  = math.Float32frombits(0xffc00001) // quiet, sign set, payload
	sigNaN  = math.Float32frombits(0x7f800001) // signalling
	tiny32  = math.Float32frombits(1)          // smallest subnormal
)

// scanLens are the lengths tested: 0..300, 1000 and 4099.
var scanLens = func() []int {
	var ns []int
	for n := 0; n <= 300; n++ {
		ns = append(ns, n)
	}
	return append(ns, 1000, 4099)
}()

// scanFloors are the floors the tests use: the special values and a few
// ordinary ones.
var scanFloors = []float32{
	-inf32, inf32, nan32, negNaN, 0, negZero, 1.5, -2, 0.731, tiny32, -tiny32,
	math.MaxFloat32, -math.MaxFloat32,
}

// scanSpecials are the values tried against every floor, each below it or
// not.
func scanSpecials(floor float32) []float32 {
	return []float32{
		nan32, negNaN, sigNaN, inf32, -inf32, 0, negZero, tiny32, -tiny32, 1, -1,
		1e30, -1e30, math.MaxFloat32, -math.MaxFloat32,
		floor, math.Nextafter32(floor, inf32), math.Nextafter32(floor, -inf32),
	}
}

// scanSplit is the specials below floor and those not below it.
func scanSplit(floor float32) (below, notBelow []float32) {
	for _, v := range scanSpecials(floor) {
		if v < floor {
			below = append(below, v)
		} else {
			notBelow = append(notBelow, v)
		}
	}
	return below, notBelow
}

// belowValue is a random value below floor (floor must have one): mostly
// ordinary ones, sometimes a special.
func belowValue(r *rand.Rand, floor float32, specials []float32) float32 {
	if r.IntN(8) == 0 {
		return specials[r.IntN(len(specials))]
	}
	if floor == inf32 {
		return (2*r.Float32() - 1) * 1e30
	}
	f := float64(floor)
	v := float32(f - (1+math.Abs(f))*(0.5+r.Float64()))
	if !(v < floor) { // not expected; keep the promise anyway
		v = -inf32
	}
	return v
}

// scanSlice is a slice of n values at offset off into a larger one. The
// values before it are NaN (never below a floor); those after it alternate
// between below the floor (where it has such values) and NaN, from a below
// one, so that a kernel reading two or more values past the end answers
// more than n.
func scanSlice(r *rand.Rand, n, off int, floor float32, below []float32) []float32 {
	buf := make([]float32, off+n+67)
	for i := range buf {
		buf[i] = nan32
		if j := i - off - n; j >= 0 && j%2 == 0 && len(below) > 0 {
			buf[i] = belowValue(r, floor, below)
		}
	}
	return buf[off : off+n : off+n]
}

// scanPositions are the positions the first not-below value takes in a
// slice of length n: all of them (n meaning none) for short slices, both
// ends and every 7th in between for long ones.
func scanPositions(n int) []int {
	var ps []int
	for p := 0; p <= n; p++ {
		if n <= 300 || p < 140 || p > n-140 || p%7 == 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// at is x[i] for the failure messages, or "none" past the end.
func at(x []float32, i int) any {
	if i >= 0 && i < len(x) {
		return x[i]
	}
	return "none"
}

func forEachScanLevel(t *testing.T, f func(t *testing.T)) {
	for _, l := range Supported() {
		t.Run(l.String(), func(t *testing.T) {
			restore, err := SetLevel(l)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			f(t)
		})
	}
}

func TestIndexNotBelowPositions(t *testing.T) {
	forEachScanLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, floor := range scanFloors {
			below, notBelow := scanSplit(floor)
			if len(below) == 0 {
				continue // −Inf or NaN floor: TestIndexNotBelowMixed covers it
			}
			for _, n := range scanLens {
				for off := 0; off < 4; off++ {
					x := scanSlice(r, n, off, floor, below)
					for i := range x {
						x[i] = belowValue(r, floor, below)
					}
					for _, p := range scanPositions(n) {
						var v float32
						if p < n {
							v = notBelow[r.IntN(len(notBelow))]
							x[p], v = v, x[p]
						}
						if got := IndexNotBelow(x, floor); got != p {
							t.Fatalf("floor %v, n %d, offset %d: first not below at %d (%v), got %d (%v)",
								floor, n, off, p, at(x, p), got, at(x, got))
						}
						if p < n {
							x[p] = v
						}
					}
				}
			}
		}
	})
}

func TestIndexNotBelowMixed(t *testing.T) {
	forEachScanLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, floor := range scanFloors {
			specials := scanSpecials(floor)
			below, _ := scanSplit(floor)
			for _, n := range scanLens {
				for off := 0; off < 4; off++ {
					x := scanSlice(r, n, off, floor, below)
					// About one, a few, or many specials in x.
					for _, q := range []float64{1 / float64(n+1), 8 / float64(n+1), 0.3} {
						for i := range x {
							switch {
							case r.Float64() < q:
								x[i] = specials[r.IntN(len(specials))]
							case len(below) > 0:
								x[i] = belowValue(r, floor, below)
							default:
								x[i] = 2*r.Float32() - 1
							}
						}
						want := indexNotBelowRef(x, floor)
						if got := IndexNotBelow(x, floor); got != want {
							t.Fatalf("floor %v, n %d, offset %d, q %.3g: got %d (%v), want %d (%v)",
								floor, n, off, q, got, at(x, got), want, at(x, want))
						}
					}
				}
			}
		}
	})
}

// BenchmarkIndexNotBelow scans 8192 scores that are all below the floor
// (the common case in top-k search) at each level.
func BenchmarkIndexNotBelow(b *testing.B) {
	const n = 8192
	x := randSlice(rand.New(rand.NewPCG(1, 2)), n)
	for _, l := range Supported() {
		b.Run(l.String(), func(b *testing.B) {
			restore, _ := SetLevel(l)
			defer restore()
			b.SetBytes(n * 4)
			for b.Loop() {
				if IndexNotBelow(x, 2) != n {
					b.Fatal("found a value not below the floor")
				}
			}
		})
	}
}
