// Package deepfashion reads the DeepFashion Consumer-to-Shop and In-Shop
// retrieval benchmarks into a data.Manifest.
//
// Both ship annotation lists in one format: a line with the number of
// rows, a header line naming the columns, then one whitespace-separated
// row per line. The readers check all three (the count must match, the
// header must be the documented one, each row must have one field per
// column) and report a malformed line as "file:line: what is wrong".
//
// Consumer-to-Shop (Eval/list_eval_partition.txt and
// Anno/list_bbox_consumer2shop.txt; image files named comsumer_NN.jpg, sic):
//
//	239557
//	image_pair_name_1 image_pair_name_2 item_id evaluation_status
//	img/TOPS/Summer_Wear/id_00000001/comsumer_01.jpg img/TOPS/Summer_Wear/id_00000001/shop_01.jpg id_00000001 train
//
//	239557
//	image_name clothes_type source_type x_1 y_1 x_2 y_2
//	img/TOPS/Summer_Wear/id_00000001/comsumer_01.jpg 1 2 41 35 259 300
//
// Each pair gives a consumer image (first column) and a shop image (second)
// of one item; images repeat across pairs and are kept once. The item's
// evaluation status is its split. The bbox list gives each image's clothes
// type (1 upper, 2 lower, 3 full body; the row's Category), its source (1
// shop, 2 consumer; checked against the pair column) and its box.
//
// In-Shop (list_eval_partition.txt and list_bbox_inshop.txt):
//
//	52712
//	image_name item_id evaluation_status
//	img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train
//
// Status train, query or gallery is the row's split. All In-Shop images are
// shop photos, so every row has domain shop; the protocol queries with the
// query split against the gallery split.
package deepfashion

import (
	"bufio"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dmlgo/dmlgo/data"
)

// DefaultMargin is the bounding-box margin suggested for DeepFashion crops
// (10% of the box on each side).
const DefaultMargin = 0.1

// table is a parsed annotation list.
type table struct {
	name  string     // file name, for messages
	rows  [][]string // fields of each row
	lines []int      // line number of each row
}

// where names row i of the table as "file:line".
func (t *table) where(i int) string { return fmt.Sprintf("%s:%d", t.name, t.lines[i]) }

// errorf returns an error naming row i.
func (t *table) errorf(i int, format string, a ...any) error {
	return fmt.Errorf("deepfashion: %s: %s", t.where(i), fmt.Sprintf(format, a...))
}

// readTable reads a count line, a header line equal to header, and the
// rows, each with len(header) fields. Blank lines after the header are
// ignored.
func readTable(r io.Reader, name string, header []string) (*table, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	t := &table{name: name}
	line := 0
	fail := func(format string, a ...any) error {
		return fmt.Errorf("deepfashion: %s:%d: %s", name, line, fmt.Sprintf(format, a...))
	}
	count := -1
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		switch line {
		case 1:
			if len(fields) != 1 {
				return nil, fail("want the number of rows, found %q", sc.Text())
			}
			n, err := strconv.Atoi(fields[0])
			if err != nil || n < 0 {
				return nil, fail("want the number of rows, found %q", fields[0])
			}
			count = n
			continue
		case 2:
			if strings.Join(fields, " ") != strings.Join(header, " ") {
				return nil, fail("header %q, want %q", strings.Join(fields, " "), strings.Join(header, " "))
			}
			continue
		}
		if len(fields) == 0 {
			continue
		}
		if len(fields) != len(header) {
			return nil, fail("%d fields, want %d (%s)", len(fields), len(header), strings.Join(header, " "))
		}
		t.rows = append(t.rows, fields)
		t.lines = append(t.lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("deepfashion: %s: line %d: %w", name, line+1, err)
	}
	switch {
	case line == 0:
		return nil, fmt.Errorf("deepfashion: %s: empty file", name)
	case line == 1:
		return nil, fmt.Errorf("deepfashion: %s: no header line", name)
	case count != len(t.rows):
		return nil, fmt.Errorf("deepfashion: %s:1: says %d rows, the file has %d (truncated or edited?)", name, count, len(t.rows))
	}
	return t, nil
}

// parseItemID parses "id_00000123" as 123.
func parseItemID(s string) (int64, error) {
	num, ok := strings.CutPrefix(s, "id_")
	if !ok || num == "" {
		return 0, fmt.Errorf("item id %q does not look like id_NNNNNNNN", s)
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("item id %q does not look like id_NNNNNNNN", s)
	}
	return v, nil
}

// bboxRow is one row of a bbox list.
type bboxRow struct {
	kind, source int // clothes type; source or pose type
	box          image.Rectangle
	row          int // index in the table
}

// readBoxes parses a bbox list whose columns are image_name, clothes_type,
// a second type column, and x_1 y_1 x_2 y_2.
func readBoxes(r io.Reader, name string, header []string) (*table, map[string]bboxRow, error) {
	t, err := readTable(r, name, header)
	if err != nil {
		return nil, nil, err
	}
	boxes := make(map[string]bboxRow, len(t.rows))
	for i, f := range t.rows {
		var v [6]int
		for j := range v {
			n, err := strconv.Atoi(f[1+j])
			if err != nil {
				return nil, nil, t.errorf(i, "%s = %q is not an integer", header[1+j], f[1+j])
			}
			v[j] = n
		}
		if v[4] <= v[2] || v[5] <= v[3] {
			return nil, nil, t.errorf(i, "box x_1 y_1 x_2 y_2 = %d %d %d %d is empty", v[2], v[3], v[4], v[5])
		}
		if _, dup := boxes[f[0]]; dup {
			return nil, nil, t.errorf(i, "%s has a second bbox row", f[0])
		}
		boxes[f[0]] = bboxRow{kind: v[0], source: v[1], box: image.Rect(v[2], v[3], v[4], v[5]), row: i}
	}
	return t, boxes, nil
}

// Options locate a DeepFashion benchmark on disk.
type Options struct {
	// Root is the benchmark's folder, holding Anno/ and Eval/ (the lists
	// may also sit directly in Root).
	Root string
	// ImageRoot is the folder the image paths (img/...) are relative to;
	// default: Root if Root/img exists, else Root/Img if Root/Img/img
	// exists, else Root.
	ImageRoot string
}

// imageRoot resolves Options.ImageRoot.
func (o Options) imageRoot() string {
	if o.ImageRoot != "" {
		return o.ImageRoot
	}
	if isDir(filepath.Join(o.Root, "img")) {
		return o.Root
	}
	if isDir(filepath.Join(o.Root, "Img", "img")) {
		return filepath.Join(o.Root, "Img")
	}
	return o.Root
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// openList opens the first existing candidate path under root.
func openList(root string, candidates ...string) (*os.File, string, error) {
	for _, c := range candidates {
		p := filepath.Join(root, c)
		f, err := os.Open(p)
		if err == nil {
			return f, p, nil
		}
		if !os.IsNotExist(err) {
			return nil, "", fmt.Errorf("deepfashion: %w", err)
		}
	}
	return nil, "", fmt.Errorf("deepfashion: %s: none of %s found (is -root the benchmark's folder?)", root, strings.Join(candidates, ", "))
}

// splitOf maps an evaluation status to a split.
func splitOf(status string, allowed ...data.Split) (data.Split, bool) {
	s, err := data.ParseSplit(status)
	if err != nil {
		return 0, false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	return 0, false
}
