package data

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tsvColumns are the column names a header may use.
var tsvColumns = []string{"path", "item_id", "domain", "split", "x1", "y1", "x2", "y2", "category"}

const (
	colPath = iota
	colItem
	colDomain
	colSplit
	colX1
	colY1
	colX2
	colY2
	colCategory
	numCols
)

// ReadTSV reads a TSV manifest file. Relative paths in it are relative to the
// file's folder.
//
// # TSV manifest format
//
// A TSV manifest lists one image per line, fields separated by one tab:
//
//	path  item_id  domain  split  [x1  y1  x2  y2]  [category]
//
// The columns:
//   - path: the image file, relative to the manifest's folder or absolute.
//   - item_id: the product; rows with the same item_id show the same garment.
//     Integers are used as they are; if any item_id is not an integer, every
//     item_id is treated as a name and numbered in order of first appearance.
//   - domain: shop or consumer.
//   - split: train, val, test, query or gallery.
//   - x1 y1 x2 y2: optional bounding box in pixels (x2, y2 exclusive), all
//     four or none; it may reach outside the image (it is clamped, and counted).
//   - category: optional clothes type, an integer or a name (names are
//     numbered like item names).
//
// A UTF-8 byte-order mark at the start of the file (spreadsheets write one)
// is ignored, as are blank lines and lines whose first non-blank character
// is #. The first other line may be a header naming the columns (its first
// field is "path"); with a header, columns may come in any order, unknown
// columns are ignored and missing trailing fields count as empty. Without a
// header a line has 4, 5 (+ category), 8 (+ box) or 9 (+ box and category)
// fields.
func ReadTSV(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	m, err := ParseTSV(f, path)
	if err != nil {
		return nil, err
	}
	m.Root = filepath.Dir(path)
	return m, nil
}

// ParseTSV reads a TSV manifest from r; name is used in error messages
// ("name:line: ...") and as the manifest's name. Root is left empty.
func ParseTSV(r io.Reader, name string) (*Manifest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var (
		cols     []int // cols[c] = field index of column c, or -1
		rows     []Row
		itemKeys []string
		catKeys  []string
		lineNo   int
	)
	fail := func(format string, a ...any) error {
		return fmt.Errorf("data: %s:%d: %s", name, lineNo, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if lineNo == 1 {
			line = strings.TrimPrefix(line, "\uFEFF") // a UTF-8 byte-order mark
		}
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if cols == nil && len(rows) == 0 && strings.EqualFold(strings.TrimSpace(fields[0]), "path") {
			var err error
			if cols, err = headerColumns(fields); err != nil {
				return nil, fail("%v", err)
			}
			continue
		}
		var get func(c int) string
		if cols != nil {
			get = func(c int) string {
				if cols[c] < 0 || cols[c] >= len(fields) {
					return ""
				}
				return strings.TrimSpace(fields[cols[c]])
			}
		} else {
			pos, err := positionalColumns(len(fields))
			if err != nil {
				return nil, fail("%v", err)
			}
			get = func(c int) string {
				if pos[c] < 0 {
					return ""
				}
				return strings.TrimSpace(fields[pos[c]])
			}
		}
		row := Row{Category: NoCategory}
		if row.Path = get(colPath); row.Path == "" {
			return nil, fail("empty path")
		}
		item := get(colItem)
		if item == "" {
			return nil, fail("empty item_id")
		}
		itemKeys = append(itemKeys, item)
		var err error
		if row.Domain, err = ParseDomain(get(colDomain)); err != nil {
			return nil, fail("%v", err)
		}
		if row.Split, err = ParseSplit(get(colSplit)); err != nil {
			return nil, fail("%v", err)
		}
		if row.Box, err = parseBox(get(colX1), get(colY1), get(colX2), get(colY2)); err != nil {
			return nil, fail("%v", err)
		}
		catKeys = append(catKeys, get(colCategory))
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("data: %s:%d: line longer than 1 MiB", name, lineNo+1)
		}
		return nil, fmt.Errorf("data: %s: %w", name, err)
	}
	m := &Manifest{Name: name, Rows: rows, Warnings: NewWarnings()}
	ids, names, err := numberKeys(itemKeys, false)
	if err != nil {
		return nil, fmt.Errorf("data: %s: item_id: %v", name, err)
	}
	for i := range rows {
		rows[i].Item = ids[i]
	}
	m.ItemNames = names
	cats, catNames, err := numberKeys(catKeys, true)
	if err != nil {
		return nil, fmt.Errorf("data: %s: category: %v", name, err)
	}
	for i := range rows {
		rows[i].Category = int32(cats[i])
	}
	if catNames != nil {
		m.CategoryNames = map[int32]string{}
		for k, v := range catNames {
			m.CategoryNames[int32(k)] = v
		}
	}
	return m, nil
}

// headerColumns maps column names to field positions.
func headerColumns(fields []string) ([]int, error) {
	cols := make([]int, numCols)
	for i := range cols {
		cols[i] = -1
	}
	for f, h := range fields {
		h = strings.ToLower(strings.TrimSpace(h))
		for c, name := range tsvColumns {
			if h == name {
				if cols[c] >= 0 {
					return nil, fmt.Errorf("header names column %q twice", name)
				}
				cols[c] = f
			}
		}
	}
	for c := colPath; c <= colSplit; c++ {
		if cols[c] < 0 {
			return nil, fmt.Errorf("header lacks the %q column (need path, item_id, domain, split)", tsvColumns[c])
		}
	}
	nbox := 0
	for c := colX1; c <= colY2; c++ {
		if cols[c] >= 0 {
			nbox++
		}
	}
	if nbox != 0 && nbox != 4 {
		return nil, fmt.Errorf("header names %d of the box columns x1 y1 x2 y2; name all four or none", nbox)
	}
	return cols, nil
}

// positionalColumns maps columns to positions for a line of n fields in a
// manifest without header.
func positionalColumns(n int) ([]int, error) {
	cols := []int{0, 1, 2, 3, -1, -1, -1, -1, -1}
	switch n {
	case 4:
	case 5:
		cols[colCategory] = 4
	case 8, 9:
		cols[colX1], cols[colY1], cols[colX2], cols[colY2] = 4, 5, 6, 7
		if n == 9 {
			cols[colCategory] = 8
		}
	default:
		return nil, fmt.Errorf("%d tab-separated fields; want 4 (path item_id domain split), 5 (+ category), 8 (+ x1 y1 x2 y2) or 9 (+ box and category)", n)
	}
	return cols, nil
}

// parseBox parses four box fields: all empty (no box) or four integers
// describing a non-empty rectangle.
func parseBox(x1, y1, x2, y2 string) (image.Rectangle, error) {
	s := [4]string{x1, y1, x2, y2}
	empty := 0
	for _, f := range s {
		if f == "" {
			empty++
		}
	}
	if empty == 4 {
		return image.Rectangle{}, nil
	}
	if empty != 0 {
		return image.Rectangle{}, fmt.Errorf("bbox %q: give all four of x1 y1 x2 y2 or none", strings.Join(s[:], " "))
	}
	var v [4]int
	for i, f := range s {
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return image.Rectangle{}, fmt.Errorf("bbox field %s = %q is not an integer", tsvColumns[colX1+i], f)
		}
		v[i] = int(n)
	}
	if v[2] <= v[0] || v[3] <= v[1] {
		return image.Rectangle{}, fmt.Errorf("bbox x1 y1 x2 y2 = %d %d %d %d is empty (need x2 > x1 and y2 > y1)", v[0], v[1], v[2], v[3])
	}
	return image.Rect(v[0], v[1], v[2], v[3]), nil
}

// numberKeys turns keys into ids: integers when every non-empty key is one,
// otherwise dense numbers in order of first appearance, returned with their
// names. Empty keys (allowed only when optional) become NoCategory. Ids of
// optional keys must fit an int32 and be non-negative.
func numberKeys(keys []string, optional bool) ([]int64, map[int64]string, error) {
	ids := make([]int64, len(keys))
	numeric := true
	for i, k := range keys {
		if k == "" {
			ids[i] = NoCategory
			continue
		}
		v, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			numeric = false
			break
		}
		if optional && (v < 0 || v > 1<<31-1) {
			return nil, nil, fmt.Errorf("%d is outside 0..2147483647", v)
		}
		ids[i] = v
	}
	if numeric {
		return ids, nil, nil
	}
	names := map[int64]string{}
	index := map[string]int64{}
	for i, k := range keys {
		if k == "" {
			ids[i] = NoCategory
			continue
		}
		id, ok := index[k]
		if !ok {
			id = int64(len(index))
			index[k] = id
			names[id] = k
		}
		ids[i] = id
	}
	return ids, names, nil
}

// WriteTSV writes m as a TSV manifest with a header. Box and category
// columns are written when any row has them. In-memory rows cannot be
// written.
func WriteTSV(w io.Writer, m *Manifest) error {
	hasBox, hasCat := false, false
	for i, r := range m.Rows {
		if r.Path == "" {
			return fmt.Errorf("data: WriteTSV: row %d is an in-memory image; only file rows can be written", i)
		}
		if strings.ContainsAny(r.Path, "\t\n\r") {
			return fmt.Errorf("data: WriteTSV: row %d: path %q contains a tab or newline", i, r.Path)
		}
		hasBox = hasBox || r.Box != (image.Rectangle{})
		hasCat = hasCat || r.Category != NoCategory
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("path\titem_id\tdomain\tsplit")
	if hasBox {
		bw.WriteString("\tx1\ty1\tx2\ty2")
	}
	if hasCat {
		bw.WriteString("\tcategory")
	}
	bw.WriteByte('\n')
	for _, r := range m.Rows {
		item := strconv.FormatInt(r.Item, 10)
		if n, ok := m.ItemNames[r.Item]; ok {
			item = n
		}
		fmt.Fprintf(bw, "%s\t%s\t%s\t%s", r.Path, item, r.Domain, r.Split)
		if hasBox {
			if r.Box == (image.Rectangle{}) {
				bw.WriteString("\t\t\t\t")
			} else {
				fmt.Fprintf(bw, "\t%d\t%d\t%d\t%d", r.Box.Min.X, r.Box.Min.Y, r.Box.Max.X, r.Box.Max.Y)
			}
		}
		if hasCat {
			bw.WriteByte('\t')
			if r.Category != NoCategory {
				if n, ok := m.CategoryNames[r.Category]; ok {
					bw.WriteString(n)
				} else {
					bw.WriteString(strconv.Itoa(int(r.Category)))
				}
			}
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
