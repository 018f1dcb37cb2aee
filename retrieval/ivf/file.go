package ivf

// The index file: safetensors, written atomically.

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/dmlgo/dmlgo/safetensors"
)

// Format is the file's `format` metadata.
const Format = "dmlgo-ivf-1"

// storageDType is the dtype of the vectors tensor of each storage.
var storageDType = map[Storage]string{FP32: "F32", FP16: "F16", INT8: "I8"}

// Save writes the index to path as safetensors, atomically (a reader, or
// a crash, sees the old file or the new one):
//
//	centroids    F32 (L, D)
//	vectors      F32 (N, D)   the rows, list after list (FP32 storage;
//	             F16 (N, D)   FP16; I8 (N, D) INT8)
//	scales       F32 (N)      INT8: each row's scale
//	rows         I32 (N)      each vector's row number
//	offsets      I64 (L+1)    list l is vectors[offsets[l]:offsets[l+1]]
//	calibration  F32 (C, L)   recall@10, @30, @100, @300, @1000 (the first C
//	                          below N) by nprobe (absent without calibration)
//
// with `format` = dmlgo-ivf-1, `storage`, `dim`, `rows` and `lists` in the header's
// metadata, and meta's entries under `meta.` (say, the fingerprint of the
// model whose embeddings these are).
func (ix *Index) Save(path string, meta map[string]string) error {
	L, d := len(ix.lists), ix.dim
	vecs := make([]byte, 0, (ix.storage.RowBytes(d)-4)*ix.n)
	var scales []byte
	rows := make([]byte, 0, 4*ix.n)
	offs := make([]byte, 0, 8*(L+1))
	var off int64
	offs = binary.LittleEndian.AppendUint64(offs, 0)
	for _, l := range ix.lists {
		for _, v := range l.vecs {
			vecs = binary.LittleEndian.AppendUint32(vecs, math.Float32bits(v))
		}
		for _, h := range l.half {
			vecs = binary.LittleEndian.AppendUint16(vecs, h)
		}
		for _, c := range l.codes {
			vecs = append(vecs, byte(c))
		}
		for _, sc := range l.scales {
			scales = binary.LittleEndian.AppendUint32(scales, math.Float32bits(sc))
		}
		for _, r := range l.rows {
			rows = binary.LittleEndian.AppendUint32(rows, uint32(r))
		}
		off += int64(len(l.rows))
		offs = binary.LittleEndian.AppendUint64(offs, uint64(off))
	}
	ts := []safetensors.Tensor{
		safetensors.FromFloat32("centroids", []int{L, d}, ix.centroids),
		{Name: "vectors", DType: storageDType[ix.storage], Shape: []int{ix.n, d}, Data: vecs},
		{Name: "rows", DType: "I32", Shape: []int{ix.n}, Data: rows},
		{Name: "offsets", DType: "I64", Shape: []int{L + 1}, Data: offs},
	}
	if ix.storage == INT8 {
		ts = append(ts, safetensors.Tensor{Name: "scales", DType: "F32", Shape: []int{ix.n}, Data: scales})
	}
	if ix.calib != nil {
		var flat []float32
		for _, c := range ix.calib {
			flat = append(flat, c...)
		}
		ts = append(ts, safetensors.FromFloat32("calibration", []int{len(ix.calib), L}, flat))
	}
	md := map[string]string{"format": Format, "storage": string(ix.storage), "dim": strconv.Itoa(d), "rows": strconv.Itoa(ix.n), "lists": strconv.Itoa(L)}
	for k, v := range meta {
		md["meta."+k] = v
	}
	return safetensors.WriteFile(path, ts, md)
}

// Load reads an index written by Save, and the meta entries saved with it.
// Errors name the file. The lists are views of one array each for rows and
// vectors; Add copies a list the first time it grows it.
func Load(path string) (*Index, map[string]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	bad := func(format string, a ...any) (*Index, map[string]string, error) {
		return nil, nil, fmt.Errorf("%s: not a dmlgo IVF index: "+format, append([]any{path}, a...)...)
	}
	if f.Metadata["format"] != Format {
		return bad("format %q, want %q", f.Metadata["format"], Format)
	}
	get := func(name, dtype string, dims int) (safetensors.Tensor, bool) {
		t, ok := f.Get(name)
		return t, ok && t.DType == dtype && len(t.Shape) == dims
	}
	storage, err := ParseStorage(f.Metadata["storage"]) // absent: FP32, as the first files
	if err != nil {
		return bad("%v", err)
	}
	ct, ok1 := get("centroids", "F32", 2)
	vt, ok2 := get("vectors", storageDType[storage], 2)
	rt, ok3 := get("rows", "I32", 1)
	ot, ok4 := get("offsets", "I64", 1)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return bad("want centroids F32 (L, D), vectors %s (N, D), rows I32 (N), offsets I64 (L+1)", storageDType[storage])
	}
	L, d, n := ct.Shape[0], ct.Shape[1], vt.Shape[0]
	if d < 1 || L < 1 || vt.Shape[1] != d || rt.Shape[0] != n || ot.Shape[0] != L+1 {
		return bad("shapes centroids %v, vectors %v, rows %v, offsets %v do not agree", ct.Shape, vt.Shape, rt.Shape, ot.Shape)
	}
	cent, err := ct.Float32()
	if err != nil {
		return bad("%v", err)
	}
	var vecs, scales []float32
	var half []uint16
	var codes []int8
	switch storage {
	case FP16:
		half = make([]uint16, n*d)
		for i := range half {
			half[i] = binary.LittleEndian.Uint16(vt.Data[2*i:])
		}
	case INT8:
		codes = make([]int8, n*d)
		for i := range codes {
			codes[i] = int8(vt.Data[i])
		}
		st, ok := get("scales", "F32", 1)
		if !ok || st.Shape[0] != n {
			return bad("an int8 index wants scales F32 (%d)", n)
		}
		if scales, err = st.Float32(); err != nil {
			return bad("%v", err)
		}
	default:
		if vecs, err = vt.Float32(); err != nil {
			return bad("%v", err)
		}
	}
	rows := make([]int32, n)
	seen := make([]bool, n)
	for i := range rows {
		r := int32(binary.LittleEndian.Uint32(rt.Data[4*i:]))
		if r < 0 || int(r) >= n || seen[r] {
			return bad("row number %d at %d: want each of 0…%d once", r, i, n-1)
		}
		seen[r] = true
		rows[i] = r
	}
	ix := &Index{dim: d, n: n, storage: storage, centroids: cent, lists: make([]list, L)}
	prev := int64(0)
	for l := 0; l <= L; l++ {
		o := int64(binary.LittleEndian.Uint64(ot.Data[8*l:]))
		if (l == 0 && o != 0) || o < prev || o > int64(n) || (l == L && o != int64(n)) {
			return bad("offsets: %d at %d (want 0, increasing, ending at %d)", o, l, n)
		}
		if l > 0 {
			lst := list{rows: rows[prev:o:o]}
			lo, hi := prev*int64(d), o*int64(d)
			switch storage {
			case FP16:
				lst.half = half[lo:hi:hi]
			case INT8:
				lst.codes, lst.scales = codes[lo:hi:hi], scales[prev:o:o]
			default:
				lst.vecs = vecs[lo:hi:hi]
			}
			ix.lists[l-1] = lst
		}
		prev = o
	}
	if t, ok := f.Get("calibration"); ok {
		if t.DType != "F32" || len(t.Shape) != 2 || t.Shape[0] < 1 || t.Shape[0] > len(calibDepths) || t.Shape[1] != L {
			return bad("calibration %s %v, want F32 (at most %d, %d)", t.DType, t.Shape, len(calibDepths), L)
		}
		flat, err := t.Float32()
		if err != nil {
			return bad("%v", err)
		}
		for i := range t.Shape[0] {
			ix.calib = append(ix.calib, flat[i*L:(i+1)*L:(i+1)*L])
		}
	}
	meta := map[string]string{}
	for k, v := range f.Metadata {
		if strings.HasPrefix(k, "meta.") {
			meta[strings.TrimPrefix(k, "meta.")] = v
		}
	}
	return ix, meta, nil
}
