package safetensors

import (
	"bytes"
	"encoding/binary"
	"maps"
	"testing"
)

// FuzzRead checks that Read never panics and that every file it accepts
// writes back, reads again to the same tensors and metadata with the same
// data section, and rewrites to identical bytes.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	for _, ts := range [][]Tensor{nil, sampleTensors(), sampleTensors()[1:3]} {
		buf.Reset()
		if err := Write(&buf, ts, map[string]string{"format": "pt"}); err != nil {
			f.Fatal(err)
		}
		valid := bytes.Clone(buf.Bytes())
		f.Add(valid)
		f.Add(valid[:len(valid)-1])
		f.Add(valid[:len(valid)/2])
	}
	f.Add(file(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"__metadata__":{}}  `, []byte{0, 0x3c, 0, 0x7c}))
	f.Add(file(`{"z":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, nil))
	for _, c := range readErrorCases() {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Read(data)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := Write(&out, got.Tensors, got.Metadata); err != nil {
			t.Fatalf("accepted file does not write back: %v", err)
		}
		again, err := Read(out.Bytes())
		if err != nil {
			t.Fatalf("written file does not read back: %v", err)
		}
		equalTensors(t, again.Tensors, got.Tensors)
		if !maps.Equal(again.Metadata, got.Metadata) {
			t.Errorf("metadata %v, want %v", again.Metadata, got.Metadata)
		}
		n := binary.LittleEndian.Uint64(data)
		if !bytes.Equal(dataSection(out.Bytes()), data[8+n:]) {
			t.Error("data section changed")
		}
		var out2 bytes.Buffer
		if err := Write(&out2, again.Tensors, again.Metadata); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out2.Bytes(), out.Bytes()) {
			t.Error("rewrite is not deterministic")
		}
	})
}
