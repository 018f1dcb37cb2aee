package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"unicode/utf8"
)

// maxHeaderSize caps the JSON header length a reader accepts, as the
// reference implementation does, so a corrupt length cannot demand an
// absurd allocation.
const maxHeaderSize = 100_000_000

// metadataKey is the reserved header entry holding the string metadata.
const metadataKey = "__metadata__"

// File is a parsed safetensors file.
type File struct {
	// Metadata is the header's "__metadata__" map, nil if it has none.
	Metadata map[string]string
	// Tensors are in data-offset order; zero-size tensors at the same
	// offset as others come first, sorted by name.
	Tensors []Tensor

	index map[string]int // name -> position in Tensors
}

// Get returns the tensor called name and whether it exists.
func (f *File) Get(name string) (Tensor, bool) {
	if f.index == nil { // a File built by hand
		for _, t := range f.Tensors {
			if t.Name == name {
				return t, true
			}
		}
		return Tensor{}, false
	}
	i, ok := f.index[name]
	if !ok {
		return Tensor{}, false
	}
	return f.Tensors[i], true
}

// Names returns the tensor names in data-offset order.
func (f *File) Names() []string {
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	return names
}

// ReadFile reads and validates the safetensors file at path, loading it
// whole into memory. Errors name the file and the problem.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return f, nil
}

// Read parses and validates a safetensors file held in data. The returned
// tensors' Data slices alias data (capacity-limited, so appending to one
// cannot overwrite another); data must not be modified while they are in use.
func Read(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

// entry is a tensor's header entry with its byte range in the data section.
type entry struct {
	t          Tensor
	begin, end uint64
}

func parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("truncated file: %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit (corrupt or not a safetensors file)", n, maxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("truncated file: header length is %d bytes but only %d bytes follow", n, len(data)-8)
	}
	header, body := data[8:8+n], data[8+n:]
	if !utf8.Valid(header) {
		return nil, errors.New("header is not valid UTF-8")
	}

	f := &File{}
	var entries []entry
	err := forEachEntry(header, func(key string, raw json.RawMessage) error {
		if key == metadataKey {
			if err := json.Unmarshal(raw, &f.Metadata); err != nil {
				return fmt.Errorf("%s is not an object of strings: %v", metadataKey, err)
			}
			return nil
		}
		e, err := parseEntry(key, raw)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// The byte ranges must tile the data section: sorted by begin, each
	// starts where the previous ended, and the last ends at its end.
	slices.SortFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return cmp.Compare(a.begin, b.begin)
		}
		if a.end != b.end {
			return cmp.Compare(a.end, b.end)
		}
		return cmp.Compare(a.t.Name, b.t.Name)
	})
	var pos uint64
	for i, e := range entries {
		switch {
		case e.begin > pos && i == 0:
			return nil, fmt.Errorf("gap: data section starts with %d bytes before tensor %q", e.begin, e.t.Name)
		case e.begin > pos:
			return nil, fmt.Errorf("gap: %d bytes between tensor %q (ends at %d) and tensor %q (begins at %d)",
				e.begin-pos, entries[i-1].t.Name, pos, e.t.Name, e.begin)
		case e.begin < pos:
			return nil, fmt.Errorf("overlap: tensor %q [%d, %d) overlaps tensor %q, which ends at %d",
				e.t.Name, e.begin, e.end, entries[i-1].t.Name, pos)
		}
		pos = e.end
	}
	if pos > uint64(len(body)) {
		return nil, fmt.Errorf("truncated file: tensors need %d bytes of data but only %d follow the header", pos, len(body))
	}
	if pos < uint64(len(body)) {
		return nil, fmt.Errorf("%d trailing bytes after the last tensor's data", uint64(len(body))-pos)
	}

	f.Tensors = make([]Tensor, len(entries))
	f.index = make(map[string]int, len(entries))
	for i, e := range entries {
		e.t.Data = body[e.begin:e.end:e.end]
		f.Tensors[i] = e.t
		f.index[e.t.Name] = i
	}
	return f, nil
}

// forEachEntry calls fn with each key and raw value of the header's JSON
// object, in order, rejecting duplicate keys (which encoding/json would
// silently merge) and anything but whitespace after the object.
func forEachEntry(header []byte, fn func(key string, raw json.RawMessage) error) error {
	malformed := func(err error) error {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("malformed header JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	tok, err := dec.Token()
	if err != nil {
		return malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("malformed header JSON: not an object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed(err)
		}
		key, ok := tok.(string)
		if !ok { // cannot happen: the decoder only yields strings as keys
			return malformed(fmt.Errorf("key %v is not a string", tok))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return malformed(err)
		}
		if seen[key] {
			return fmt.Errorf("duplicate header entry %q", key)
		}
		seen[key] = true
		if err := fn(key, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return malformed(err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return malformed(err)
		}
		return malformed(fmt.Errorf("unexpected %v after the header object", tok))
	}
	return nil
}

// parseEntry decodes and checks one tensor's header entry. Keys are matched
// exactly (encoding/json would match them case-insensitively); unknown keys
// are ignored, as the reference implementation does.
func parseEntry(name string, raw json.RawMessage) (entry, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return entry{}, fmt.Errorf("tensor %q: header entry is not an object", name)
	}
	field := func(key string, dst any) error {
		v, ok := fields[key]
		if !ok {
			return fmt.Errorf("tensor %q: missing %q", name, key)
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return fmt.Errorf("tensor %q: %q is null", name, key)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("tensor %q: bad %q: %v", name, key, err)
		}
		return nil
	}
	var (
		dtype   string
		shape64 []int64
		offsets []uint64
	)
	if err := field("dtype", &dtype); err != nil {
		return entry{}, err
	}
	if err := field("shape", &shape64); err != nil {
		return entry{}, err
	}
	if err := field("data_offsets", &offsets); err != nil {
		return entry{}, err
	}
	shape := make([]int, len(shape64))
	for i, d := range shape64 {
		if d < 0 {
			return entry{}, fmt.Errorf("tensor %q: negative dimension in shape %v", name, shape64)
		}
		if d > math.MaxInt {
			return entry{}, fmt.Errorf("tensor %q: dimension %d too large", name, d)
		}
		shape[i] = int(d)
	}
	size, err := nbytes(dtype, shape)
	if err != nil {
		return entry{}, fmt.Errorf("tensor %q: %v", name, err)
	}
	if len(offsets) != 2 {
		return entry{}, fmt.Errorf("tensor %q: data_offsets has %d values, want [begin, end]", name, len(offsets))
	}
	begin, end := offsets[0], offsets[1]
	if end < begin {
		return entry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] end before begin", name, begin, end)
	}
	if end-begin != uint64(size) {
		return entry{}, fmt.Errorf("tensor %q: %s %v needs %d bytes but data_offsets [%d, %d] span %d",
			name, dtype, shape, size, begin, end, end-begin)
	}
	return entry{t: Tensor{Name: name, DType: dtype, Shape: shape}, begin: begin, end: end}, nil
}
