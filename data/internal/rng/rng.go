// Package rng is the small deterministic random number generator that the
// data packages use for everything seeded: consumer views, sampler plans,
// training augmentation.
//
// A generator is keyed by a tuple of integers, e.g. (seed, item, view) or
// (seed, epoch, batch, slot), so that every random decision depends only on
// its key and never on goroutine scheduling or on how much randomness was
// drawn elsewhere. The algorithm is xoshiro256** seeded through splitmix64,
// written out here so that its output can never change under a Go release.
package rng

import "math"

// RNG is a xoshiro256** generator. The zero value is not usable; build one
// with New.
type RNG struct {
	s0, s1, s2, s3 uint64
}

// splitmix64 advances *x and returns the next output of SplitMix64.
func splitmix64(x *uint64) uint64 {
	*x += 0x9E3779B97F4A7C15
	z := *x
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// New returns a generator keyed by keys. Different keys (including keys of
// different lengths) give independent streams.
func New(keys ...uint64) RNG {
	h := uint64(0x243F6A8885A308D3) ^ uint64(len(keys))
	for _, k := range keys {
		h ^= k
		h = splitmix64(&h)
	}
	var r RNG
	x := h
	r.s0 = splitmix64(&x)
	r.s1 = splitmix64(&x)
	r.s2 = splitmix64(&x)
	r.s3 = splitmix64(&x)
	return r
}

func rotl(x uint64, k uint) uint64 { return (x << k) | (x >> (64 - k)) }

// Uint64 returns the next 64 random bits.
func (r *RNG) Uint64() uint64 {
	result := rotl(r.s1*5, 7) * 9
	t := r.s1 << 17
	r.s2 ^= r.s0
	r.s3 ^= r.s1
	r.s1 ^= r.s2
	r.s0 ^= r.s3
	r.s2 ^= t
	r.s3 = rotl(r.s3, 45)
	return result
}

// Float64 returns a uniform number in [0, 1) with 53 random bits.
func (r *RNG) Float64() float64 {
	return float64(r.Uint64()>>11) * (1.0 / (1 << 53))
}

// Uniform returns a uniform number in [lo, hi).
func (r *RNG) Uniform(lo, hi float64) float64 {
	return lo + (hi-lo)*r.Float64()
}

// Symmetric returns a uniform number in [-a, a).
func (r *RNG) Symmetric(a float64) float64 {
	return a * (2*r.Float64() - 1)
}

// Bool returns true with probability p.
func (r *RNG) Bool(p float64) bool {
	return r.Float64() < p
}

// IntN returns a uniform integer in [0, n). It panics if n <= 0.
// It uses Lemire's multiply-and-reject method, so it is exactly uniform.
func (r *RNG) IntN(n int) int {
	if n <= 0 {
		panic("rng: IntN with n <= 0")
	}
	bound := uint64(n)
	threshold := -bound % bound
	for {
		hi, lo := mul64(r.Uint64(), bound)
		if lo >= threshold {
			return int(hi)
		}
	}
}

// mul64 returns the 128-bit product of a and b as (hi, lo).
func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1 := t & mask32
	w2 := t >> 32
	w1 += a0 * b1
	hi = a1*b1 + w2 + w1>>32
	lo = a * b
	return
}

// Norm returns a standard normal number (Box-Muller, one of the pair).
func (r *RNG) Norm() float64 {
	u := r.Float64()
	for u == 0 {
		u = r.Float64()
	}
	v := r.Float64()
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*v)
}

// NormPair returns two independent standard normal numbers (both of a
// Box-Muller pair), for loops that need many.
func (r *RNG) NormPair() (float64, float64) {
	u := r.Float64()
	for u == 0 {
		u = r.Float64()
	}
	v := r.Float64()
	rad := math.Sqrt(-2 * math.Log(u))
	s, c := math.Sincos(2 * math.Pi * v)
	return rad * c, rad * s
}

// Shuffle permutes n elements with swap (Fisher-Yates, from the end).
func (r *RNG) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.IntN(i+1))
	}
}

// Perm returns a random permutation of 0..n-1.
func (r *RNG) Perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}
