package live

// The write-ahead log: a header, then records of adds and removes, each
// framed as
//
//	u32 payload length | u32 CRC-32C of the payload | payload
//
// (little endian). A change is acknowledged only after its record is
// written and fsynced. A record cut short by a crash, or one whose
// checksum fails, ends the log: a writer truncates it away (under the
// lock) before it appends; a reader stops before it and tries again later.
//
// Payloads:
//
//	add:    0x01 | u32 n | n × (i64 item | str path | str category | dim × f32)
//	remove: 0x02 | u8 key kind (1 item, 2 path, 3 row id) | u32 n | n × key
//
// where str is u32 length | bytes, an item or row id is i64.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// walMagic opens every log file.
const walMagic = "DMLGOWAL1\n"

// maxRecord bounds one record (a bigger length is taken for damage).
const maxRecord = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	opAdd    = 0x01
	opRemove = 0x02
)

// KeyKind says what a removal names.
type KeyKind uint8

// The keys a removal may name rows by.
const (
	ByItem KeyKind = 1 // every row of an item id
	ByPath KeyKind = 2 // every row with this image path
	ByID   KeyKind = 3 // the row with this stable row id
)

func (k KeyKind) String() string {
	switch k {
	case ByItem:
		return "item"
	case ByPath:
		return "path"
	case ByID:
		return "row id"
	}
	return fmt.Sprintf("key kind %d", uint8(k))
}

// record is one decoded log entry.
type record struct {
	op     byte
	rows   []Row    // add
	kind   KeyKind  // remove
	ints   []int64  // remove by item or id
	paths  []string // remove by path
	length int64    // bytes in the file, framing included
}

type encoder struct{ b []byte }

func (e *encoder) u8(v byte)     { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32)  { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) i64(v int64)   { e.b = binary.LittleEndian.AppendUint64(e.b, uint64(v)) }
func (e *encoder) str(s string)  { e.u32(uint32(len(s))); e.b = append(e.b, s...) }
func (e *encoder) f32(v float32) { e.u32(math.Float32bits(v)) }

// frame wraps a payload with its length and checksum.
func frame(payload []byte) []byte {
	out := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(out, uint32(len(payload)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(payload, castagnoli))
	return append(out, payload...)
}

func encodeAdd(rows []Row) []byte {
	var e encoder
	e.u8(opAdd)
	e.u32(uint32(len(rows)))
	for _, r := range rows {
		e.i64(r.Item)
		e.str(r.Path)
		e.str(r.Category)
		for _, v := range r.Embedding {
			e.f32(v)
		}
	}
	return frame(e.b)
}

func encodeRemove(kind KeyKind, ints []int64, paths []string) []byte {
	var e encoder
	e.u8(opRemove)
	e.u8(byte(kind))
	if kind == ByPath {
		e.u32(uint32(len(paths)))
		for _, p := range paths {
			e.str(p)
		}
	} else {
		e.u32(uint32(len(ints)))
		for _, v := range ints {
			e.i64(v)
		}
	}
	return frame(e.b)
}

// errTorn marks the end of the complete records: a record cut short or
// damaged.
var errTorn = errors.New("torn or damaged record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errTorn
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}
func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}
func (d *decoder) i64() int64 {
	if v := d.take(8); v != nil {
		return int64(binary.LittleEndian.Uint64(v))
	}
	return 0
}
func (d *decoder) str() string { return string(d.take(int(d.u32()))) }

// readRecord reads the record at the start of r. It returns io.EOF at a
// clean end, errTorn (wrapped) for a record cut short or damaged.
func readRecord(r io.Reader, dim int) (record, error) {
	var hdr [8]byte
	n, err := io.ReadFull(r, hdr[:])
	if n == 0 && err == io.EOF {
		return record{}, io.EOF
	}
	if err != nil {
		return record{}, fmt.Errorf("%w: header: %v", errTorn, err)
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	if size == 0 || size > maxRecord {
		return record{}, fmt.Errorf("%w: length %d", errTorn, size)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return record{}, fmt.Errorf("%w: payload: %v", errTorn, err)
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
		return record{}, fmt.Errorf("%w: checksum", errTorn)
	}
	rec, err := decodePayload(payload, dim)
	rec.length = 8 + int64(size)
	return rec, err
}

func decodePayload(p []byte, dim int) (record, error) {
	d := &decoder{b: p}
	rec := record{op: d.u8()}
	switch rec.op {
	case opAdd:
		n := int(d.u32())
		if n > len(p) {
			return record{}, fmt.Errorf("%w: %d rows in %d bytes", errTorn, n, len(p))
		}
		rec.rows = make([]Row, n)
		for i := range rec.rows {
			r := &rec.rows[i]
			r.Item = d.i64()
			r.Path = d.str()
			r.Category = d.str()
			raw := d.take(4 * dim)
			if raw == nil {
				break
			}
			r.Embedding = make([]float32, dim)
			for j := range r.Embedding {
				r.Embedding[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
			}
		}
	case opRemove:
		rec.kind = KeyKind(d.u8())
		n := int(d.u32())
		if n > len(p) {
			return record{}, fmt.Errorf("%w: %d keys in %d bytes", errTorn, n, len(p))
		}
		switch rec.kind {
		case ByPath:
			rec.paths = make([]string, n)
			for i := range rec.paths {
				rec.paths[i] = d.str()
			}
		case ByItem, ByID:
			rec.ints = make([]int64, n)
			for i := range rec.ints {
				rec.ints[i] = d.i64()
			}
		default:
			return record{}, fmt.Errorf("%w: %v", errTorn, rec.kind)
		}
	default:
		return record{}, fmt.Errorf("%w: operation %#x", errTorn, rec.op)
	}
	if d.err != nil {
		return record{}, d.err
	}
	if len(d.b) != 0 {
		return record{}, fmt.Errorf("%w: %d bytes after the record", errTorn, len(d.b))
	}
	return rec, nil
}

// checkHeader reads the log's magic.
func checkHeader(r io.Reader) error {
	buf := make([]byte, len(walMagic))
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, []byte(walMagic)) {
		return fmt.Errorf("not a dmlgo catalog log (header %q)", buf)
	}
	return nil
}
