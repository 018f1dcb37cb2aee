package retrieval

import "math/bits"

// Bitset is a set of gallery rows, a bit per row: the rows a filtered
// search may return (SearchOptions.Allow), the live rows of a catalog.
type Bitset struct {
	words []uint64
	n     int
}

// NewBitset is an empty set of n rows.
func NewBitset(n int) *Bitset { return &Bitset{words: make([]uint64, (n+63)/64), n: n} }

// FullBitset holds every one of n rows.
func FullBitset(n int) *Bitset {
	s := NewBitset(n)
	for i := range s.words {
		s.words[i] = ^uint64(0)
	}
	if r := n % 64; r != 0 {
		s.words[len(s.words)-1] = 1<<r - 1
	}
	return s
}

// Len is the number of rows the set is for.
func (s *Bitset) Len() int { return s.n }

// Has reports whether row i is in the set (false past Len).
func (s *Bitset) Has(i int) bool {
	return i >= 0 && i < s.n && s.words[i>>6]&(1<<(i&63)) != 0
}

// Set adds row i.
func (s *Bitset) Set(i int) { s.words[i>>6] |= 1 << (i & 63) }

// Clear removes row i.
func (s *Bitset) Clear(i int) { s.words[i>>6] &^= 1 << (i & 63) }

// Count is the number of rows in the set.
func (s *Bitset) Count() int {
	c := 0
	for _, w := range s.words {
		c += bits.OnesCount64(w)
	}
	return c
}

// Clone is a copy of s.
func (s *Bitset) Clone() *Bitset {
	return &Bitset{words: append([]uint64(nil), s.words...), n: s.n}
}

// Grown is a copy of s for n ≥ s.Len() rows, holding the rows past
// s.Len() when fill is set.
func (s *Bitset) Grown(n int, fill bool) *Bitset {
	out := NewBitset(n)
	if fill {
		out = FullBitset(n)
	}
	full := s.n / 64
	copy(out.words, s.words[:full])
	if r := s.n % 64; r != 0 {
		low := uint64(1)<<r - 1
		out.words[full] = s.words[full]&low | out.words[full]&^low
	}
	return out
}

// And is a new set of the rows in both s and t (of the same Len).
func (s *Bitset) And(t *Bitset) *Bitset {
	out := s.Clone()
	for i := range out.words {
		out.words[i] &= t.words[i]
	}
	return out
}
