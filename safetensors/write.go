package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
)

// Write writes tensors and metadata to w as a safetensors file.
//
// The output is deterministic: tensor data is laid out in the order given;
// the JSON header is compact, lists "__metadata__" first (omitted when
// metadata is empty) with its keys sorted, then the tensors sorted by name,
// and is padded with spaces to a multiple of 8 bytes so the data section
// starts 8-byte aligned, as the reference implementation does.
//
// Every tensor is checked before anything is written: a known dtype, a valid
// shape, len(Data) matching them, a unique name other than "__metadata__",
// and valid UTF-8 names and metadata.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := writeBody(w, header, tensors); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// WriteFile writes tensors and metadata to path as Write does, atomically:
// it writes a temporary file in the same directory, syncs and closes it,
// renames it over path and syncs the directory, so path holds either the old
// contents or the complete new file. The file gets permissions 0644.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := atomicfile.Write(path, func(w io.Writer) error { return writeBody(w, header, tensors) }); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// writeBody writes the header length, the padded header and the tensor data.
func writeBody(w io.Writer, header []byte, tensors []Tensor) error {
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader validates tensors and metadata and returns the padded JSON
// header, with data offsets following the order of tensors.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	seen := make(map[string]bool, len(tensors))
	begin := make(map[string]uint64, len(tensors))
	var pos uint64
	for _, t := range tensors {
		if err := t.check(); err != nil {
			return nil, err
		}
		switch {
		case t.Name == metadataKey:
			return nil, fmt.Errorf("tensor name %q is reserved", metadataKey)
		case !utf8.ValidString(t.Name):
			return nil, fmt.Errorf("tensor name %q is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		begin[t.Name] = pos
		pos += uint64(len(t.Data))
	}
	keys := make([]string, 0, len(metadata))
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("metadata %q: %q is not valid UTF-8", k, v)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	order := slices.Clone(tensors)
	slices.SortFunc(order, func(a, b Tensor) int { return cmp.Compare(a.Name, b.Name) })

	b := []byte{'{'}
	if len(keys) > 0 {
		b = appendQuoted(b, metadataKey)
		b = append(b, ":{"...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, k)
			b = append(b, ':')
			b = appendQuoted(b, metadata[k])
		}
		b = append(b, '}')
		if len(order) > 0 {
			b = append(b, ',')
		}
	}
	for i, t := range order {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendQuoted(b, t.DType)
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		off := begin[t.Name]
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendUint(b, off, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, off+uint64(len(t.Data)), 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	if len(b) > maxHeaderSize {
		return nil, errors.New("header exceeds the size limit: too many tensors or too much metadata")
	}
	return b, nil
}

// appendQuoted appends s as a JSON string, leaving <, > and & unescaped.
func appendQuoted(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...)
}
