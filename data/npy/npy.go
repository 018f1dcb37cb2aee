// Package npy writes and reads NumPy .npy files (format version 1.0,
// little-endian, C order), so that arrays dmlgo produces (benchmark images,
// labels, embeddings) load with numpy.load in Python or any tool that reads
// the format.
//
// The header is the magic "\x93NUMPY", version 1.0, a little-endian uint16
// header length, and a Python dict literal padded with spaces and a newline
// so that the data starts at a multiple of 64 bytes:
//
//	{'descr': '|u1', 'fortran_order': False, 'shape': (70000, 32, 32), }
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
)

// Elem lists the element types that can be written.
type Elem interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~uint64 | ~int64 | ~float32 | ~float64
}

// Descr returns the NumPy type string of T, e.g. "<i8" for int64.
func Descr[T Elem]() string {
	var z T
	switch any(z).(type) {
	case uint8:
		return "|u1"
	case int8:
		return "|i1"
	case uint16:
		return "<u2"
	case int16:
		return "<i2"
	case uint32:
		return "<u4"
	case int32:
		return "<i4"
	case uint64:
		return "<u8"
	case int64:
		return "<i8"
	case float32:
		return "<f4"
	case float64:
		return "<f8"
	}
	// Named types with these underlying types: go by size and kind.
	return descrBySize(z)
}

func descrBySize[T Elem](z T) string {
	size := binary.Size(z)
	neg := T(0) - 1
	float := T(1)/2 != 0
	signed := neg < 0
	switch {
	case float:
		return fmt.Sprintf("<f%d", size)
	case size == 1 && signed:
		return "|i1"
	case size == 1:
		return "|u1"
	case signed:
		return fmt.Sprintf("<i%d", size)
	default:
		return fmt.Sprintf("<u%d", size)
	}
}

// Header returns the .npy header for an array of the given type string and
// shape.
func Header(descr string, shape []int) []byte {
	var dims []string
	for _, d := range shape {
		dims = append(dims, strconv.Itoa(d))
	}
	tuple := "(" + strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	tuple += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)
	// magic(6) + version(2) + length(2) + dict + padding + '\n' = k*64
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	h := make([]byte, 0, total+pad)
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)+pad+1))
	h = append(h, dict...)
	h = append(h, bytes.Repeat([]byte{' '}, pad)...)
	return append(h, '\n')
}

// Write writes data as an array of the given shape. The product of shape
// must equal len(data).
func Write[T Elem](w io.Writer, shape []int, data []T) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		n *= d
	}
	if n != len(data) {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", shape, n, len(data))
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.Write(Header(Descr[T](), shape)); err != nil {
		return err
	}
	if b, ok := any(data).([]uint8); ok {
		if _, err := bw.Write(b); err != nil {
			return err
		}
	} else {
		const chunk = 4096
		for i := 0; i < len(data); i += chunk {
			if err := binary.Write(bw, binary.LittleEndian, data[i:min(i+chunk, len(data))]); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// WriteFile writes an array to path atomically (package atomicfile): the
// file holds the old contents or the whole new array, never a part.
func WriteFile[T Elem](path string, shape []int, data []T) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return Write(w, shape, data) }); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

// Array is an array read from a .npy file: its type string, shape and raw
// little-endian data.
type Array struct {
	Descr string
	Shape []int
	Data  []byte
}

// Read reads a version 1.x or 2.x .npy array in C order.
func Read(r io.Reader) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: reading magic: %w", err)
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
		if hlen > 1<<20 {
			return nil, errors.New("npy: header too long")
		}
	default:
		return nil, fmt.Errorf("npy: unsupported version %d.%d", pre[6], pre[7])
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", err)
	}
	a, err := parseHeader(string(h))
	if err != nil {
		return nil, err
	}
	size, err := elemSize(a.Descr)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, d := range a.Shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return nil, fmt.Errorf("npy: shape %v too large", a.Shape)
		}
		n *= d
	}
	if n > math.MaxInt32/size {
		return nil, fmt.Errorf("npy: shape %v too large", a.Shape)
	}
	a.Data = make([]byte, n*size)
	if _, err := io.ReadFull(r, a.Data); err != nil {
		return nil, fmt.Errorf("npy: reading %d bytes of data: %w", n*size, err)
	}
	return a, nil
}

// parseHeader parses the dict literal numpy writes.
func parseHeader(h string) (*Array, error) {
	get := func(key string) (string, bool) {
		i := strings.Index(h, "'"+key+"'")
		if i < 0 {
			return "", false
		}
		rest := strings.TrimLeft(h[i+len(key)+2:], " ")
		if !strings.HasPrefix(rest, ":") {
			return "", false
		}
		return strings.TrimLeft(rest[1:], " "), true
	}
	a := &Array{}
	d, ok := get("descr")
	if !ok || !strings.HasPrefix(d, "'") {
		return nil, fmt.Errorf("npy: header %q has no descr", h)
	}
	end := strings.IndexByte(d[1:], '\'')
	if end < 0 {
		return nil, fmt.Errorf("npy: header %q: bad descr", h)
	}
	a.Descr = d[1 : 1+end]
	if f, ok := get("fortran_order"); !ok || !strings.HasPrefix(f, "False") {
		return nil, fmt.Errorf("npy: header %q: only C order is supported", h)
	}
	s, ok := get("shape")
	if !ok || !strings.HasPrefix(s, "(") || !strings.Contains(s, ")") {
		return nil, fmt.Errorf("npy: header %q has no shape", h)
	}
	for _, f := range strings.Split(s[1:strings.IndexByte(s, ')')], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("npy: header %q: bad dimension %q", h, f)
		}
		a.Shape = append(a.Shape, v)
	}
	return a, nil
}

func elemSize(descr string) (int, error) {
	if len(descr) < 3 || (descr[0] != '<' && descr[0] != '|') {
		return 0, fmt.Errorf("npy: unsupported type %q (want little-endian)", descr)
	}
	switch descr[1:] {
	case "u1", "i1", "b1":
		return 1, nil
	case "u2", "i2", "f2":
		return 2, nil
	case "u4", "i4", "f4":
		return 4, nil
	case "u8", "i8", "f8":
		return 8, nil
	}
	return 0, fmt.Errorf("npy: unsupported type %q", descr)
}

// Values decodes a's data as T, which must match a's type string.
func Values[T Elem](a *Array) ([]T, error) {
	if want := Descr[T](); a.Descr != want {
		return nil, fmt.Errorf("npy: array has type %s, asked for %s", a.Descr, want)
	}
	var z T
	out := make([]T, len(a.Data)/binary.Size(z))
	if err := binary.Read(bytes.NewReader(a.Data), binary.LittleEndian, out); err != nil {
		return nil, err
	}
	return out, nil
}
