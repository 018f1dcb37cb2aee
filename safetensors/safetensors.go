// Package safetensors reads and writes the safetensors weight-file format,
// the format dmlgo uses for model weights with torchvision names.
//
// A file is an 8-byte little-endian header length N, then N bytes of UTF-8
// JSON header, then the data section:
//
//	{"__metadata__": {"key": "value", ...},
//	 "conv1.weight": {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [0, 37632]},
//	 ...}
//
// data_offsets are [begin, end) byte offsets into the data section. Tensor
// data is little-endian and row-major; the tensors' byte ranges must tile the
// data section exactly, without gaps or overlap. The "__metadata__" entry is
// optional and maps strings to strings.
//
// Supported dtypes: BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16,
// F32, F64, F8_E5M2 and F8_E4M3. Others (the sub-byte F4 and F6 types,
// F8_E8M0) are rejected as unknown.
//
// Read validates everything (header size, JSON, dtypes, shapes against byte
// ranges, tiling) and returns an error, never panics, on a malformed file.
// Write produces deterministic output: see Write.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Tensor is one named tensor as stored in a file: its dtype name as written
// in the header (e.g. "F32", "BF16", "I64"), its shape (empty for a scalar)
// and its raw little-endian row-major bytes.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// dtypeSizes maps each supported dtype to its size in bytes. Sub-byte dtypes
// of the format (F4, F6_*) are not supported.
var dtypeSizes = map[string]int{
	"BOOL":    1,
	"U8":      1,
	"I8":      1,
	"F8_E5M2": 1,
	"F8_E4M3": 1,
	"I16":     2,
	"U16":     2,
	"F16":     2,
	"BF16":    2,
	"I32":     4,
	"U32":     4,
	"F32":     4,
	"I64":     8,
	"U64":     8,
	"F64":     8,
}

// DTypeSize returns the size in bytes of one element of dtype, and false if
// the package does not know dtype.
func DTypeSize(dtype string) (int, bool) {
	n, ok := dtypeSizes[dtype]
	return n, ok
}

// numel returns the number of elements of shape, or an error for a negative
// dimension or a product that overflows int.
func numel(shape []int) (int, error) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n = lo
	}
	return int(n), nil
}

// nbytes returns the data size in bytes of a tensor of the given dtype and
// shape, checking the dtype, the dimensions and overflow.
func nbytes(dtype string, shape []int) (int, error) {
	size, ok := dtypeSizes[dtype]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	n, err := numel(shape)
	if err != nil {
		return 0, err
	}
	hi, lo := bits.Mul64(uint64(n), uint64(size))
	if hi != 0 || lo > math.MaxInt {
		return 0, fmt.Errorf("shape %v of dtype %s is too large", shape, dtype)
	}
	return int(lo), nil
}

// Numel returns the number of elements of t's shape (1 for a scalar), or 0
// if the shape is invalid.
func (t Tensor) Numel() int {
	n, err := numel(t.Shape)
	if err != nil {
		return 0
	}
	return n
}

// check reports whether t has a known dtype, a valid shape and exactly the
// number of data bytes its dtype and shape call for.
func (t Tensor) check() error {
	want, err := nbytes(t.DType, t.Shape)
	if err != nil {
		return fmt.Errorf("tensor %q: %v", t.Name, err)
	}
	if len(t.Data) != want {
		return fmt.Errorf("tensor %q: %s %v needs %d bytes, has %d", t.Name, t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

// Float32 converts t's data to a new []float32. Floating-point dtypes (F64,
// F32, F16, BF16, F8_E5M2, F8_E4M3) convert to the nearest float32, keeping
// infinities and NaNs; integer dtypes convert to the nearest float32 (exact up
// to 2^24 in magnitude); BOOL gives 0 or 1. It returns an error for a dtype
// it cannot convert or data whose length does not match the shape.
func (t Tensor) Float32() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("safetensors: %v", err)
	}
	b := t.Data
	le := binary.LittleEndian
	out := make([]float32, t.Numel())
	switch t.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	case "F16":
		for i := range out {
			out[i] = f16ToFloat32(le.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = bf16ToFloat32(le.Uint16(b[2*i:]))
		}
	case "F8_E5M2":
		for i := range out {
			out[i] = f16ToFloat32(uint16(b[i]) << 8)
		}
	case "F8_E4M3":
		for i := range out {
			out[i] = e4m3ToFloat32(b[i])
		}
	case "BOOL":
		for i := range out {
			if b[i] != 0 {
				out[i] = 1
			}
		}
	case "U8":
		for i := range out {
			out[i] = float32(b[i])
		}
	case "I8":
		for i := range out {
			out[i] = float32(int8(b[i]))
		}
	case "I16":
		for i := range out {
			out[i] = float32(int16(le.Uint16(b[2*i:])))
		}
	case "U16":
		for i := range out {
			out[i] = float32(le.Uint16(b[2*i:]))
		}
	case "I32":
		for i := range out {
			out[i] = float32(int32(le.Uint32(b[4*i:])))
		}
	case "U32":
		for i := range out {
			out[i] = float32(le.Uint32(b[4*i:]))
		}
	case "I64":
		for i := range out {
			out[i] = float32(int64(le.Uint64(b[8*i:])))
		}
	case "U64":
		for i := range out {
			out[i] = float32(le.Uint64(b[8*i:]))
		}
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: cannot convert dtype %s to float32", t.Name, t.DType)
	}
	return out, nil
}

// f16ToFloat32 converts IEEE 754 half-precision bits to float32 exactly,
// including subnormals, infinities and NaN payloads.
func f16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0: // zero or subnormal: mant * 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	case 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// bf16ToFloat32 converts bfloat16 bits (the top half of a float32) to
// float32 exactly.
func bf16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// e4m3ToFloat32 converts float8 E4M3FN bits (bias 7, no infinities, NaN when
// exponent and mantissa are all ones) to float32 exactly.
func e4m3ToFloat32(b byte) float32 {
	exp := int(b>>3) & 0xf
	mant := float32(b & 7)
	var v float32
	switch {
	case b&0x7f == 0x7f:
		v = float32(math.NaN())
	case exp == 0: // subnormal: mant/8 * 2^-6
		v = mant / 512
	default:
		v = (1 + mant/8) * float32(math.Ldexp(1, exp-7))
	}
	if b&0x80 != 0 {
		v = -v
	}
	return v
}

// FromFloat32 returns an F32 tensor holding a copy of data with the given
// shape. It panics if the shape is invalid or len(data) is not its product.
func FromFloat32(name string, shape []int, data []float32) Tensor {
	n, err := numel(shape)
	if err != nil || n != len(data) {
		panic(fmt.Sprintf("safetensors: FromFloat32 %q: shape %v does not hold %d values", name, shape, len(data)))
	}
	b := make([]byte, 4*n)
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: "F32", Shape: append([]int{}, shape...), Data: b}
}

// FromInt64 returns an I64 tensor holding a copy of data with the given
// shape, e.g. FromInt64("bn1.num_batches_tracked", nil, []int64{n}) for a
// torchvision batch-norm counter. It panics if the shape is invalid or
// len(data) is not its product.
func FromInt64(name string, shape []int, data []int64) Tensor {
	n, err := numel(shape)
	if err != nil || n != len(data) {
		panic(fmt.Sprintf("safetensors: FromInt64 %q: shape %v does not hold %d values", name, shape, len(data)))
	}
	b := make([]byte, 8*n)
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return Tensor{Name: name, DType: "I64", Shape: append([]int{}, shape...), Data: b}
}
