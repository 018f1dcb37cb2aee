// Package tensor defines dmlgo's dense float32 tensor: a shape, row-major
// strides, an offset and a storage handle owned by a backend.
//
// The package holds no math. Arithmetic lives in the backends (package
// backend and its implementations), which own the storage a tensor points to.
// The only storage this package knows how to create is host memory
// (HostStorage), used by the constructors below, by the CPU backend, and as
// the staging form for uploads to other backends.
//
// Images are NCHW: (batch, channels, height, width).
package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Storage is a block of float32 elements owned by a backend. A backend type
// asserts the handles it created back to its own type.
type Storage interface {
	// Len is the number of float32 elements the storage holds.
	Len() int
}

// HostStorage is storage in Go memory. The CPU backend uses it directly.
type HostStorage struct {
	Data []float32
}

// Len implements Storage.
func (h *HostStorage) Len() int { return len(h.Data) }

// Tensor is a strided view of a Storage. The zero value is not usable; build
// tensors with New, Zeros, FromSlice and friends, or through a backend.
type Tensor struct {
	shape   []int
	strides []int
	offset  int
	storage Storage
	// dims holds shape and strides for ranks up to inlineDims, so that a
	// view is one allocation.
	dims [2 * inlineDims]int
}

// inlineDims is the largest rank whose shape and strides live in the
// Tensor itself.
const inlineDims = 4

// header returns a view of s with the given shape and strides (row-major
// when strides is nil), copying both.
func header(s Storage, offset int, shape, strides []int) *Tensor {
	return setHeader(new(Tensor), s, offset, shape, strides)
}

// setHeader makes t the view header would return.
func setHeader(t *Tensor, s Storage, offset int, shape, strides []int) *Tensor {
	*t = Tensor{offset: offset, storage: s}
	r := len(shape)
	var buf []int
	if r <= inlineDims {
		buf = t.dims[: 2*r : 2*r]
	} else {
		buf = make([]int, 2*r)
	}
	t.shape, t.strides = buf[:r:r], buf[r:]
	copy(t.shape, shape)
	if strides != nil {
		copy(t.strides, strides)
		return t
	}
	n := 1
	for i := r - 1; i >= 0; i-- {
		t.strides[i] = n
		n *= shape[i]
	}
	return t
}

// New returns a contiguous tensor of the given shape over s, starting at
// element offset. It panics if the storage is too small.
func New(s Storage, offset int, shape ...int) *Tensor {
	return newIn(new(Tensor), s, offset, shape)
}

func newIn(t *Tensor, s Storage, offset int, shape []int) *Tensor {
	n := Numel(shape)
	if offset < 0 || offset+n > s.Len() {
		panic(fmt.Sprintf("tensor: shape %v at offset %d does not fit a storage of %d elements", slices.Clone(shape), offset, s.Len()))
	}
	return setHeader(t, s, offset, shape, nil)
}

// NewLike is New with the shape of like (a contiguous tensor over s at
// offset, like's strides aside).
func NewLike(s Storage, offset int, like *Tensor) *Tensor {
	return newIn(new(Tensor), s, offset, like.shape)
}

// Numel is the number of elements of a shape (1 for a scalar shape).
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensor: negative dimension in shape %v", slices.Clone(shape)))
		}
		n *= d
	}
	return n
}

// ContiguousStrides returns the row-major strides of a shape.
func ContiguousStrides(shape []int) []int {
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= shape[i]
	}
	return strides
}

// Shape returns the dimensions (a copy the caller may keep).
func (t *Tensor) Shape() []int { return cloneInts(t.shape) }

// Strides returns the strides in elements (a copy).
func (t *Tensor) Strides() []int { return cloneInts(t.strides) }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Numel is the number of elements of the view.
func (t *Tensor) Numel() int { return Numel(t.shape) }

// Offset is the view's first element in its storage.
func (t *Tensor) Offset() int { return t.offset }

// Storage returns the storage handle.
func (t *Tensor) Storage() Storage { return t.storage }

// Contiguous reports whether the view is dense and row-major.
func (t *Tensor) Contiguous() bool {
	s := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.strides[i] != s {
			return false
		}
		s *= t.shape[i]
	}
	return true
}

// SameShape reports whether two tensors have identical shapes.
func (t *Tensor) SameShape(u *Tensor) bool { return EqualShapes(t.shape, u.shape) }

// EqualShapes compares two shapes.
func EqualShapes(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Reshape returns a view with a new shape and the same elements. One
// dimension may be -1 and is then inferred. The tensor must be contiguous.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	return t.reshapeIn(new(Tensor), shape)
}

func (t *Tensor) reshapeIn(dst *Tensor, shape []int) *Tensor {
	if !t.Contiguous() {
		panic(fmt.Sprintf("tensor: Reshape of a non-contiguous view %v", t.shape))
	}
	var buf [inlineDims]int
	shape = append(buf[:0], shape...)
	infer, known := -1, 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			panic(fmt.Sprintf("tensor: Reshape %v: bad dimension", slices.Clone(shape)))
		default:
			known *= d
		}
	}
	n := t.Numel()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			panic(fmt.Sprintf("tensor: Reshape %v -> %v: cannot infer dimension", t.shape, slices.Clone(shape)))
		}
		shape[infer] = n / known
		known = n
	}
	if known != n {
		panic(fmt.Sprintf("tensor: Reshape %v (%d elements) -> %v (%d elements)", t.shape, n, slices.Clone(shape), known))
	}
	return setHeader(dst, t.storage, t.offset, shape, nil)
}

// ViewAs returns a view of t with like's shape (the same number of
// elements; t contiguous).
func (t *Tensor) ViewAs(like *Tensor) *Tensor {
	return t.viewAsIn(new(Tensor), like)
}

func (t *Tensor) viewAsIn(dst *Tensor, like *Tensor) *Tensor {
	if !t.Contiguous() {
		panic(fmt.Sprintf("tensor: ViewAs of a non-contiguous view %v", t.shape))
	}
	if t.Numel() != like.Numel() {
		panic(fmt.Sprintf("tensor: ViewAs %v (%d elements) as %v (%d elements)", t.shape, t.Numel(), like.shape, like.Numel()))
	}
	return setHeader(dst, t.storage, t.offset, like.shape, nil)
}

// Slice returns the view of rows [start, end) along the first axis.
func (t *Tensor) Slice(start, end int) *Tensor {
	if len(t.shape) == 0 || start < 0 || end > t.shape[0] || start > end {
		panic(fmt.Sprintf("tensor: Slice [%d, %d) of shape %v", start, end, t.shape))
	}
	v := header(t.storage, t.offset+start*t.strides[0], t.shape, t.strides)
	v.shape[0] = end - start
	return v
}

// Transpose2D returns the (cols, rows) view of a rank-2 tensor without
// moving data. The result is not contiguous (unless a dimension is 1):
// backends take transposes through flags (GEMM) instead.
func (t *Tensor) Transpose2D() *Tensor {
	if len(t.shape) != 2 {
		panic(fmt.Sprintf("tensor: Transpose2D of shape %v", t.shape))
	}
	return header(t.storage, t.offset, []int{t.shape[1], t.shape[0]}, []int{t.strides[1], t.strides[0]})
}

// HostData returns the elements of a contiguous host tensor as a slice that
// aliases the storage. It panics for other storage or non-contiguous views.
func (t *Tensor) HostData() []float32 {
	h, ok := t.storage.(*HostStorage)
	if !ok {
		panic(fmt.Sprintf("tensor: HostData of a %T tensor; download it through its backend", t.storage))
	}
	if !t.Contiguous() {
		panic(fmt.Sprintf("tensor: HostData of a non-contiguous view %v", t.shape))
	}
	return h.Data[t.offset : t.offset+t.Numel() : t.offset+t.Numel()]
}

// IsHost reports whether the tensor lives in Go memory.
func (t *Tensor) IsHost() bool {
	_, ok := t.storage.(*HostStorage)
	return ok
}

// String describes the tensor (shape and storage kind), not its values.
func (t *Tensor) String() string {
	return fmt.Sprintf("Tensor%s(%T)", ShapeString(t.shape), t.storage)
}

// ShapeString formats a shape as (a, b, c).
func ShapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Zeros returns a host tensor of zeros.
func Zeros(shape ...int) *Tensor {
	return New(&HostStorage{Data: make([]float32, Numel(shape))}, 0, shape...)
}

// Full returns a host tensor with every element set to v.
func Full(v float32, shape ...int) *Tensor {
	t := Zeros(shape...)
	d := t.HostData()
	for i := range d {
		d[i] = v
	}
	return t
}

// FromSlice wraps data (not copied) as a host tensor of the given shape.
func FromSlice(data []float32, shape ...int) *Tensor {
	if Numel(shape) != len(data) {
		panic(fmt.Sprintf("tensor: FromSlice of %d elements as shape %v", len(data), shape))
	}
	return New(&HostStorage{Data: data}, 0, shape...)
}

// RandNormal returns a host tensor of N(mean, std²) samples from a PCG
// generator seeded with seed: the same seed gives the same tensor.
func RandNormal(seed uint64, mean, std float32, shape ...int) *Tensor {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	t := Zeros(shape...)
	for i, d := 0, t.HostData(); i < len(d); i++ {
		d[i] = mean + std*float32(r.NormFloat64())
	}
	return t
}

// RandUniform returns a host tensor of U[lo, hi) samples, seeded like RandNormal.
func RandUniform(seed uint64, lo, hi float32, shape ...int) *Tensor {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	t := Zeros(shape...)
	for i, d := 0, t.HostData(); i < len(d); i++ {
		d[i] = lo + (hi-lo)*float32(r.Float64())
	}
	return t
}

// HasNonFinite reports whether a host slice holds a NaN or an infinity, and
// the index of the first one.
func HasNonFinite(d []float32) (int, bool) {
	for i, v := range d {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i, true
		}
	}
	return -1, false
}

func cloneInts(s []int) []int { return append([]int(nil), s...) }
