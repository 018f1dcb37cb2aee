package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// file assembles a safetensors file from a header string and a data section.
func file(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// raw returns a tensor of dtype with the given bytes.
func raw(name, dtype string, shape []int, data ...byte) Tensor {
	return Tensor{Name: name, DType: dtype, Shape: shape, Data: data}
}

func sampleTensors() []Tensor {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	return []Tensor{
		FromFloat32("conv1.weight", []int{2, 1, 2, 2}, []float32{1, -2, 0.5, nan, inf, -inf, 1e-45, -0.0}),
		FromInt64("bn1.num_batches_tracked", nil, []int64{42}),
		raw("empty", "F32", []int{0, 3}),
		raw("half", "F16", []int{3}, 0x00, 0x3c, 0x01, 0x00, 0x00, 0x7c),
		raw("brain", "BF16", []int{2}, 0x80, 0x3f, 0xc0, 0x7f),
		raw("bytes", "U8", []int{3}, 1, 2, 255),
		raw("a<b>&c", "I32", []int{1}, 0xff, 0xff, 0xff, 0xff),
	}
}

func equalTensors(t *testing.T, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d tensors, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("tensor %d: got %q %s %v %x, want %q %s %v %x",
				i, g.Name, g.DType, g.Shape, g.Data, w.Name, w.DType, w.Shape, w.Data)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tensors := sampleTensors()
	meta := map[string]string{"format": "pt", "note": "ünïcode \"quoted\" <tag>"}
	var buf bytes.Buffer
	if err := Write(&buf, tensors, meta); err != nil {
		t.Fatal(err)
	}
	out := buf.Bytes()
	n := binary.LittleEndian.Uint64(out)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	if !bytes.HasPrefix(out[8:], []byte(`{"__metadata__":{"format":"pt","note":`)) {
		t.Errorf("header does not start with sorted metadata: %s", out[8:8+n])
	}

	f, err := Read(out)
	if err != nil {
		t.Fatal(err)
	}
	equalTensors(t, f.Tensors, tensors) // offset order is the written order
	if !maps.Equal(f.Metadata, meta) {
		t.Errorf("metadata %v, want %v", f.Metadata, meta)
	}
	if !slices.Equal(f.Names(), []string{"conv1.weight", "bn1.num_batches_tracked", "empty", "half", "brain", "bytes", "a<b>&c"}) {
		t.Errorf("Names() = %q", f.Names())
	}

	// Values survive bit for bit, NaN included.
	w, _ := tensors[0].Float32()
	g, err := f.Tensors[0].Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
			t.Errorf("conv1.weight[%d] = %v, want %v", i, g[i], w[i])
		}
	}

	// Writing what was read gives the same bytes; so does WriteFile.
	var again bytes.Buffer
	if err := Write(&again, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), out) {
		t.Error("rewriting a read file changed its bytes")
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := WriteFile(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, out) {
		t.Error("WriteFile and Write differ")
	}
	ff, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	equalTensors(t, ff.Tensors, tensors)
}

// TestGoldenBytes pins the exact output format.
func TestGoldenBytes(t *testing.T) {
	var buf bytes.Buffer
	tensors := []Tensor{
		FromFloat32("b", []int{2}, []float32{1, 2}),
		FromInt64("a", nil, []int64{3}),
	}
	if err := Write(&buf, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	header := `{"__metadata__":{"format":"pt"},` +
		`"a":{"dtype":"I64","shape":[],"data_offsets":[8,16]},` +
		`"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	header += strings.Repeat(" ", (8-len(header)%8)%8)
	want := file(header, []byte{
		0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, // b: 1, 2
		3, 0, 0, 0, 0, 0, 0, 0, // a: 3
	})
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("got\n%q\nwant\n%q", buf.Bytes(), want)
	}

	// No tensors, no metadata: "{}" padded to 8 bytes.
	buf.Reset()
	if err := Write(&buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	if want := file("{}      ", nil); !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("empty file: got %q, want %q", buf.Bytes(), want)
	}
	f, err := Read(buf.Bytes())
	if err != nil || len(f.Tensors) != 0 || f.Metadata != nil {
		t.Errorf("empty file read as %+v, %v", f, err)
	}
}

func TestReadUnpaddedAndPadded(t *testing.T) {
	for _, pad := range []string{"", " ", "   \n\t "} {
		f, err := Read(file(`{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`+pad, []byte{7, 9}))
		if err != nil {
			t.Fatalf("pad %q: %v", pad, err)
		}
		x, ok := f.Get("x")
		if !ok || !bytes.Equal(x.Data, []byte{7, 9}) {
			t.Errorf("pad %q: Get(x) = %+v, %v", pad, x, ok)
		}
	}
}

func TestGet(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleTensors(), nil); err != nil {
		t.Fatal(err)
	}
	f, err := Read(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Get("missing"); ok {
		t.Error("Get(missing) found something")
	}
	for _, want := range sampleTensors() {
		got, ok := f.Get(want.Name)
		if !ok || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("Get(%q) = %+v, %v", want.Name, got, ok)
		}
	}
	// A File built by hand has no index.
	hand := &File{Tensors: sampleTensors()}
	if got, ok := hand.Get("bytes"); !ok || got.DType != "U8" {
		t.Errorf("hand-built Get(bytes) = %+v, %v", got, ok)
	}
	if _, ok := hand.Get("missing"); ok {
		t.Error("hand-built Get(missing) found something")
	}
	// Appending to one tensor's data must not overwrite the next.
	first := f.Tensors[0]
	_ = append(first.Data, 0xAA)
	if !bytes.Equal(f.Tensors[1].Data, sampleTensors()[1].Data) {
		t.Error("append to a tensor's Data overwrote its neighbour")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := WriteFile(path, sampleTensors()[:1], nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, sampleTensors(), nil); err != nil { // overwrite
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	// A failing write leaves the old file and no temporary behind.
	bad := []Tensor{raw("x", "F32", []int{2}, 1, 2, 3)}
	err = WriteFile(path, bad, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "needs 8 bytes") {
		t.Errorf("WriteFile(bad) error %v, want one naming %s and the size problem", err, path)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("failed WriteFile changed the existing file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only the target", names)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	equalTensors(t, f.Tensors, sampleTensors())
	// Into a missing directory: an error, not a panic.
	if err := WriteFile(filepath.Join(dir, "no", "such", "m.safetensors"), nil, nil); err == nil {
		t.Error("WriteFile into a missing directory succeeded")
	}
}

func TestWriteErrors(t *testing.T) {
	ok := FromFloat32("ok", []int{1}, []float32{1})
	cases := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"unknown dtype", []Tensor{raw("x", "F4", []int{2}, 0)}, nil, `unknown dtype "F4"`},
		{"short data", []Tensor{raw("x", "F32", []int{2}, 1, 2, 3, 4)}, nil, "needs 8 bytes, has 4"},
		{"negative dim", []Tensor{raw("x", "U8", []int{-1})}, nil, "negative dimension"},
		{"overflowing shape", []Tensor{raw("x", "U8", []int{math.MaxInt / 2, 3})}, nil, "too many elements"},
		{"duplicate", []Tensor{ok, ok}, nil, `duplicate tensor name "ok"`},
		{"reserved name", []Tensor{FromFloat32("__metadata__", nil, []float32{1})}, nil, "reserved"},
		{"bad utf-8 name", []Tensor{FromFloat32("a\xff", nil, []float32{1})}, nil, "UTF-8"},
		{"bad utf-8 metadata", []Tensor{ok}, map[string]string{"k": "\xfe"}, "UTF-8"},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		err := Write(&buf, c.tensors, c.meta)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "safetensors: ") {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes before failing", c.name, buf.Len())
		}
	}
}

// readErrorCase is a malformed file and a fragment its error must contain.
type readErrorCase struct {
	name string
	data []byte
	want string
}

func readErrorCases() []readErrorCase {
	u8 := func(name string, begin, end int) string {
		return `"` + name + `":{"dtype":"U8","shape":[` + strconv.Itoa(end-begin) + `],"data_offsets":[` + strconv.Itoa(begin) + `,` + strconv.Itoa(end) + `]}`
	}
	lenOnly := func(n uint64) []byte { return binary.LittleEndian.AppendUint64(nil, n) }
	four := []byte{1, 2, 3, 4}
	return []readErrorCase{
		{"empty", nil, "truncated file: 0 bytes"},
		{"7 bytes", []byte{2, 0, 0, 0, 0, 0, 0}, "truncated file: 7 bytes"},
		{"header beyond file", append(lenOnly(100), "{}"...), "header length is 100 bytes but only 2"},
		{"absurd header length", append(lenOnly(1<<40), "{}"...), "exceeds the 100000000-byte limit"},
		{"max uint64 header length", append(lenOnly(math.MaxUint64), "{}"...), "exceeds"},
		{"empty header", file("", nil), "malformed header JSON"},
		{"spaces only", file("        ", nil), "malformed header JSON"},
		{"unterminated", file(`{"a":{"dtype":"U8"`, nil), "malformed header JSON"},
		{"unclosed object", file(`{`+u8("a", 0, 4), four), "malformed header JSON: unexpected EOF"},
		{"not an object", file(`[1,2]`, nil), "not an object"},
		{"trailing garbage", file(`{} x`, nil), "malformed header JSON"},
		{"two objects", file(`{}{}`, nil), "malformed header JSON"},
		{"invalid utf-8", file("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"entry not object", file(`{"a":3}`, nil), `tensor "a": header entry is not an object`},
		{"entry null", file(`{"a":null}`, nil), `tensor "a": header entry is not an object`},
		{"missing dtype", file(`{"a":{"shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `tensor "a": missing "dtype"`},
		{"wrong-case key", file(`{"a":{"DTYPE":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `missing "dtype"`},
		{"missing shape", file(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, []byte{1}), `missing "shape"`},
		{"missing offsets", file(`{"a":{"dtype":"U8","shape":[1]}}`, []byte{1}), `missing "data_offsets"`},
		{"null dtype", file(`{"a":{"dtype":null,"shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `"dtype" is null`},
		{"numeric dtype", file(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,1]}}`, []byte{1}), `bad "dtype"`},
		{"unknown dtype", file(`{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, []byte{1}), `unknown dtype "F4"`},
		{"negative dim", file(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, nil), "negative dimension"},
		{"fractional dim", file(`{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}`, []byte{1}), `bad "shape"`},
		{"overflowing shape", file(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}`, []byte{1}), "too many elements"},
		{"overflowing bytes", file(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,1]}}`, []byte{1}), "too large"},
		{"huge dim", file(`{"a":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,1]}}`, []byte{1}), `bad "shape"`},
		{"three offsets", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, []byte{1}), "data_offsets has 3 values"},
		{"negative offset", file(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, []byte{1}), `bad "data_offsets"`},
		{"end before begin", file(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, []byte{1}), "end before begin"},
		{"shape/offsets mismatch", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, four), "F32 [2] needs 8 bytes but data_offsets [0, 4] span 4"},
		{"overlap", file(`{`+u8("a", 0, 3)+`,`+u8("b", 2, 4)+`}`, four), `overlap: tensor "b" [2, 4) overlaps tensor "a"`},
		{"same range twice", file(`{`+u8("a", 0, 4)+`,`+u8("b", 0, 4)+`}`, four), "overlap"},
		{"gap", file(`{`+u8("a", 0, 1)+`,`+u8("b", 2, 4)+`}`, four), `gap: 1 bytes between tensor "a" (ends at 1) and tensor "b" (begins at 2)`},
		{"gap at start", file(`{`+u8("a", 1, 4)+`}`, four), `gap: data section starts with 1 bytes before tensor "a"`},
		{"data shorter than offsets", file(`{`+u8("a", 0, 8)+`}`, four), "truncated file: tensors need 8 bytes of data but only 4"},
		{"trailing data", file(`{`+u8("a", 0, 3)+`}`, four), "1 trailing bytes"},
		{"data without tensors", file(`{}`, four), "4 trailing bytes"},
		{"duplicate name", file(`{`+u8("a", 0, 2)+`,`+u8("a", 2, 4)+`}`, four), `duplicate header entry "a"`},
		{"duplicate metadata", file(`{"__metadata__":{},"__metadata__":{}}`, nil), `duplicate header entry "__metadata__"`},
		{"metadata not strings", file(`{"__metadata__":{"epoch":3}}`, nil), "__metadata__ is not an object of strings"},
		{"metadata not object", file(`{"__metadata__":"pt"}`, nil), "__metadata__ is not an object of strings"},
	}
}

func TestReadErrors(t *testing.T) {
	for _, c := range readErrorCases() {
		f, err := Read(c.data)
		if err == nil {
			t.Errorf("%s: Read succeeded: %+v", c.name, f)
			continue
		}
		if !strings.HasPrefix(err.Error(), "safetensors: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.safetensors")
	if err := os.WriteFile(path, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "truncated file: 3 bytes") {
		t.Errorf("ReadFile(broken) error %v, want one naming %s and the truncation", err, path)
	}
	missing := filepath.Join(dir, "missing.safetensors")
	_, err = ReadFile(missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) error %v, want a not-exist error naming the file", err)
	}
}

// f16Reference computes a half's value the slow, obvious way in float64.
func f16Reference(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * mant / 1024 * math.Ldexp(1, -14)
	case 31:
		if mant != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * (1 + mant/1024) * math.Ldexp(1, exp-15)
}

func TestF16(t *testing.T) {
	known := []struct {
		bits uint16
		want float64
	}{
		{0x3c00, 1},
		{0xbc00, -1},
		{0xc000, -2},
		{0x3555, 0.333251953125},
		{0x7bff, 65504},                     // largest normal
		{0x0400, math.Ldexp(1, -14)},        // smallest normal
		{0x03ff, 1023 * math.Ldexp(1, -24)}, // largest subnormal
		{0x0001, math.Ldexp(1, -24)},        // smallest subnormal
		{0x8001, -math.Ldexp(1, -24)},
		{0x0000, 0},
		{0x7c00, math.Inf(1)},
		{0xfc00, math.Inf(-1)},
	}
	for _, k := range known {
		if got := f16ToFloat32(k.bits); float64(got) != k.want {
			t.Errorf("f16 %#04x = %v, want %v", k.bits, got, k.want)
		}
	}
	if got := f16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("f16 0x8000 = %v, want -0", got)
	}
	for _, nan := range []uint16{0x7e00, 0x7c01, 0xfe00, 0x7fff} {
		if got := f16ToFloat32(nan); !math.IsNaN(float64(got)) {
			t.Errorf("f16 %#04x = %v, want NaN", nan, got)
		}
	}
	// Every half against the reference.
	for h := 0; h <= 0xffff; h++ {
		got, want := float64(f16ToFloat32(uint16(h))), f16Reference(uint16(h))
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("f16 %#04x = %v, want %v", h, got, want)
		}
	}
	// Through Tensor.Float32, little-endian.
	x := raw("x", "F16", []int{2}, 0x00, 0x3c, 0x01, 0x00)
	v, err := x.Float32()
	if err != nil || v[0] != 1 || float64(v[1]) != math.Ldexp(1, -24) {
		t.Errorf("F16 tensor = %v, %v", v, err)
	}
}

func TestBF16(t *testing.T) {
	known := []struct {
		bits uint16
		want float64
	}{
		{0x3f80, 1},
		{0xbf80, -1},
		{0x4049, 3.140625},
		{0x7f7f, 0x1.fep127},          // largest finite
		{0x0080, math.Ldexp(1, -126)}, // smallest normal
		{0x0001, math.Ldexp(1, -133)}, // smallest subnormal
		{0x7f80, math.Inf(1)},
		{0xff80, math.Inf(-1)},
	}
	for _, k := range known {
		if got := bf16ToFloat32(k.bits); float64(got) != k.want {
			t.Errorf("bf16 %#04x = %v, want %v", k.bits, got, k.want)
		}
	}
	for _, nan := range []uint16{0x7fc0, 0x7f81, 0xffc0} {
		if got := bf16ToFloat32(nan); !math.IsNaN(float64(got)) {
			t.Errorf("bf16 %#04x = %v, want NaN", nan, got)
		}
	}
	x := raw("x", "BF16", []int{2}, 0x80, 0x3f, 0x49, 0x40)
	v, err := x.Float32()
	if err != nil || !slices.Equal(v, []float32{1, 3.140625}) {
		t.Errorf("BF16 tensor = %v, %v", v, err)
	}
}

func TestF8(t *testing.T) {
	e5m2 := raw("x", "F8_E5M2", []int{5}, 0x3c, 0x7c, 0x01, 0xc0, 0x7e)
	v, err := e5m2.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if v[0] != 1 || !math.IsInf(float64(v[1]), 1) || float64(v[2]) != math.Ldexp(1, -16) || v[3] != -2 || !math.IsNaN(float64(v[4])) {
		t.Errorf("F8_E5M2 = %v", v)
	}
	e4m3 := raw("x", "F8_E4M3", []int{7}, 0x38, 0xb8, 0x7e, 0x01, 0x08, 0x7f, 0xff)
	v, err = e4m3.Float32()
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1, -1, 448, math.Ldexp(1, -9), math.Ldexp(1, -6)}
	for i, w := range want {
		if float64(v[i]) != w {
			t.Errorf("F8_E4M3[%d] = %v, want %v", i, v[i], w)
		}
	}
	if !math.IsNaN(float64(v[5])) || !math.IsNaN(float64(v[6])) {
		t.Errorf("F8_E4M3 NaNs = %v, %v", v[5], v[6])
	}
}

func TestFloat32Dtypes(t *testing.T) {
	le := binary.LittleEndian
	f64 := func(vs ...float64) []byte {
		var b []byte
		for _, v := range vs {
			b = le.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	cases := []struct {
		t    Tensor
		want []float32
	}{
		{raw("f32", "F32", []int{2}, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x7f), []float32{1, float32(math.Inf(1))}},
		{Tensor{Name: "f64", DType: "F64", Shape: []int{3}, Data: f64(1.5, 1e300, -1e-300)}, []float32{1.5, float32(math.Inf(1)), float32(math.Copysign(0, -1))}},
		{FromInt64("i64", []int{3}, []int64{-3, 1 << 40, 0}), []float32{-3, 1 << 40, 0}},
		{FromInt64("scalar", nil, []int64{7}), []float32{7}},
		{raw("i32", "I32", []int{2}, 0xff, 0xff, 0xff, 0xff, 5, 0, 0, 0), []float32{-1, 5}},
		{raw("u32", "U32", []int{1}, 0xff, 0xff, 0xff, 0xff), []float32{4294967295}},
		{raw("u64", "U64", []int{1}, 1, 0, 0, 0, 0, 0, 0, 0), []float32{1}},
		{raw("i16", "I16", []int{1}, 0xfe, 0xff), []float32{-2}},
		{raw("u16", "U16", []int{1}, 0xfe, 0xff), []float32{65534}},
		{raw("i8", "I8", []int{2}, 0xff, 0x7f), []float32{-1, 127}},
		{raw("u8", "U8", []int{2}, 0xff, 0x7f), []float32{255, 127}},
		{raw("bool", "BOOL", []int{3}, 0, 1, 2), []float32{0, 1, 1}},
		{raw("empty", "F32", []int{0}), []float32{}},
	}
	for _, c := range cases {
		got, err := c.t.Float32()
		if err != nil {
			t.Errorf("%s: %v", c.t.Name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.t.Name, got, c.want)
			continue
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
				t.Errorf("%s: got %v, want %v", c.t.Name, got, c.want)
				break
			}
		}
	}
	bad := []struct {
		t    Tensor
		want string
	}{
		{raw("x", "F4", []int{2}, 0), `safetensors: tensor "x": unknown dtype "F4"`},
		{raw("x", "", nil), `unknown dtype ""`},
		{raw("x", "F32", []int{2}, 0, 0, 0, 0), "needs 8 bytes, has 4"},
		{raw("x", "F32", []int{-2}), "negative dimension"},
	}
	for _, b := range bad {
		if _, err := b.t.Float32(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s %v: error %v, want %q", b.t.DType, b.t.Shape, err, b.want)
		}
	}
}

func TestFromPanics(t *testing.T) {
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			r := recover()
			if s, ok := r.(string); !ok || !strings.HasPrefix(s, "safetensors: ") {
				t.Errorf("%s: recovered %v, want a safetensors panic", name, r)
			}
		}()
		fn()
	}
	mustPanic("FromFloat32 short", func() { FromFloat32("x", []int{2, 2}, make([]float32, 3)) })
	mustPanic("FromFloat32 negative", func() { FromFloat32("x", []int{-1}, nil) })
	mustPanic("FromInt64 short", func() { FromInt64("x", []int{2}, nil) })

	shape := []int{2}
	x := FromFloat32("x", shape, []float32{1, 2})
	shape[0] = 5
	if x.Shape[0] != 2 || x.Numel() != 2 {
		t.Error("FromFloat32 kept the caller's shape slice")
	}
	if n, ok := DTypeSize("BF16"); n != 2 || !ok {
		t.Errorf("DTypeSize(BF16) = %d, %v", n, ok)
	}
	if _, ok := DTypeSize("F4"); ok {
		t.Error("DTypeSize(F4) reported ok")
	}
}
