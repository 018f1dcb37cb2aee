// Package backendtest runs the backend conformance table: every op case on
// every registered backend, compared with the CPU reference kernels, in the
// manner of ggml's test-backend-ops. Each output is surrounded by sentinel
// values that must survive the op; results are compared by normalised error
// with a tolerance per op, and NaN/Inf positions must match.
package backendtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/dmlgo/dmlgo/backend"
	"github.com/dmlgo/dmlgo/tensor"
)

// guard is the number of sentinel elements on each side of a buffer.
const guard = 17

// sentinel is written around every buffer and must be intact afterwards.
const sentinel = float32(-7.25e21)

// Buf is a host array placed on a backend between two sentinel regions.
type Buf struct {
	B     backend.Backend
	Whole *tensor.Tensor // guard + data + guard
	T     *tensor.Tensor // the data view
	n     int
}

// NewBuf uploads data to b between sentinels, viewed with the given shape.
func NewBuf(b backend.Backend, data []float32, shape ...int) *Buf {
	n := tensor.Numel(shape)
	if len(data) != n {
		panic(fmt.Sprintf("backendtest: %d values for shape %v", len(data), shape))
	}
	s := b.Alloc(n + 2*guard)
	whole := tensor.New(s, 0, n+2*guard)
	host := make([]float32, n+2*guard)
	for i := range host {
		host[i] = sentinel
	}
	copy(host[guard:], data)
	b.Upload(whole, host)
	return &Buf{B: b, Whole: whole, T: tensor.New(s, guard, shape...), n: n}
}

// Host downloads the data and reports damaged sentinels.
func (u *Buf) Host() (data []float32, guardErr error) {
	host := make([]float32, u.n+2*guard)
	u.B.Download(host, u.Whole)
	for i := 0; i < guard; i++ {
		if host[i] != sentinel {
			return nil, fmt.Errorf("sentinel %d before the output overwritten with %g", guard-i, host[i])
		}
		if v := host[guard+u.n+i]; v != sentinel {
			return nil, fmt.Errorf("sentinel %d after the output overwritten with %g", i, v)
		}
	}
	return host[guard : guard+u.n], nil
}

// Free releases the buffer.
func (u *Buf) Free() { u.B.Free(u.Whole.Storage()) }

// Compare checks got against want: NaN and ±Inf at the same places, and a
// normalised error ‖got − want‖/‖want‖ (over the finite elements) of at
// most tol. It returns a message with the first mismatches, or "".
func Compare(got, want []float32, tol float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("length %d, want %d", len(got), len(want))
	}
	var num, den, maxDiff float64
	maxAt := -1
	var first []string
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) || math.IsInf(w, 0) || math.IsNaN(g) || math.IsInf(g, 0) {
			same := (math.IsNaN(w) && math.IsNaN(g)) || (math.IsInf(w, 1) && math.IsInf(g, 1)) || (math.IsInf(w, -1) && math.IsInf(g, -1))
			if !same && len(first) < 5 {
				first = append(first, fmt.Sprintf("[%d] got %g want %g (non-finite parity)", i, g, w))
			}
			if !same {
				return "non-finite values differ: " + fmt.Sprint(first)
			}
			continue
		}
		d := g - w
		num += d * d
		den += w * w
		if math.Abs(d) > maxDiff {
			maxDiff, maxAt = math.Abs(d), i
		}
	}
	errN := math.Sqrt(num) / math.Max(math.Sqrt(den), 1e-30)
	if den == 0 {
		errN = math.Sqrt(num)
	}
	if errN <= tol {
		return ""
	}
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > tol*math.Max(1, math.Abs(float64(want[i]))) && len(first) < 5 {
			first = append(first, fmt.Sprintf("[%d] got %g want %g", i, got[i], want[i]))
		}
	}
	return fmt.Sprintf("normalised error %.3g > %.3g; largest difference %.3g at %d; first mismatches %v", errN, tol, maxDiff, maxAt, first)
}

// ForEachBackend runs f as a subtest for every registered backend that
// opens here; backends that do not open are reported as skipped, with why.
func ForEachBackend(t *testing.T, f func(t *testing.T, b backend.Backend)) {
	for _, name := range backend.Names() {
		t.Run(name, func(t *testing.T) {
			b, _, err := backend.Select(name)
			if err != nil {
				t.Skipf("backend %s not present: %v", name, err)
			}
			f(t, b)
		})
	}
}
