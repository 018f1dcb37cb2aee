package cpu

import "testing"

// TestHugeRange: the whole 2 MiB pages inside a buffer, for buffers of
// 4 MiB or more only, at aligned and unaligned starts.
func TestHugeRange(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		p, size, off, n uintptr
	}{
		{0, 4 * mib, 0, 4 * mib},
		{2 * mib, 4*mib - 1, 0, 0},                    // below hugeMin
		{2*mib + 64, 4 * mib, 2*mib - 64, 2 * mib},    // unaligned start
		{2*mib + 64, 6*mib - 64, 2*mib - 64, 4 * mib}, // ends on a page
		{mib, 4*mib + mib/2, mib, 2 * mib},            // one whole page
		{3*mib + 8, 4 * mib, mib - 8, 2 * mib},        // ends inside the second
		{6 * mib, 8*mib + 4096, 0, 8 * mib},           // a tail past the last page
	} {
		off, n := hugeRange(c.p, c.size)
		if off != c.off || n != c.n {
			t.Errorf("hugeRange(%#x, %#x) = %#x, %#x; want %#x, %#x", c.p, c.size, off, n, c.off, c.n)
		}
		if n > 0 && ((c.p+off)%hugePage != 0 || n%hugePage != 0 || off+n > c.size) {
			t.Errorf("hugeRange(%#x, %#x) = %#x, %#x: not whole pages inside the buffer", c.p, c.size, off, n)
		}
	}
}
