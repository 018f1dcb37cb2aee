// Package deepfashion reads the DeepFashion Consumer-to-Shop and In-Shop
// retrieval benchmarks into a data.Manifest.
//
// Both ship annotation lists in one format: a line with the number of
// rows, a header line naming the columns, then one whitespace-separated
// row per line. The readers check the header and that each row has one
// field per column, and report a malformed line as "file:line: what is
// wrong".
//
// Consumer-to-Shop (Eval/list_eval_partition.txt and
// Anno/list_bbox_consumer2shop.txt; image files named comsumer_NN.jpg, sic;
// the box values below are illustrative):
//
//	195540
//	image_pair_name_1 image_pair_name_2 item_id evaluation_status
//	img/TOPS/T_Shirt/id_00000001/comsumer_01.jpg img/TOPS/T_Shirt/id_00000001/shop_01.jpg id_00000001 test
//
//	239557
//	image_name clothes_type source_type x_1 y_1 x_2 y_2
//	img/TOPS/T_Shirt/id_00000001/comsumer_01.jpg 1 2 41 35 259 300
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
//
// # Problems found in real copies
//
// These are counted in the manifest's Warnings, with a file:line example,
// and the load goes on; Options.Strict (the tools' -strict) makes each an
// error naming the file and line:
//   - a UTF-8 byte-order mark before the count (data.WarnListBOM): stripped;
//   - a count line that is not the number of rows (WarnListCount; the
//     benchmark's README calls it the number of images, so a copy may say
//     239557 for the 195540-pair partition): the rows are kept;
//   - a box with x_2 <= x_1 or y_2 <= y_1 (WarnBoxNoArea): the box is
//     dropped (the whole image is used), the clothes type kept;
//   - a second bbox row for an image (WarnBoxDuplicate): dropped, the first
//     row counts;
//   - a source_type that disagrees with the pair column
//     (WarnSourceMismatch): the pair list decides the domain; the row's box
//     and clothes type are dropped.
//
// A bbox row for an image that no partition row lists is counted
// (WarnBoxUnused) and ignored, also under Strict: the manifest does not
// depend on it.
//
// # Consumer-to-Shop protocol
//
// data.NewDataset queries with the consumer images of the test items and
// searches the shop images of the test items, each image once. The
// -gallery-val option (data.ProtocolOptions.GalleryWithVal) adds the shop
// images of the val items to the gallery, which gives the gallery image set
// of mmfashion's Consumer-to-Shop retrieval. It does not give mmfashion's
// protocol: mmfashion also queries with the consumer images of the val
// items, keeps an image once per pair it appears in (queries and gallery
// entries repeat), and reports Recall@k for k in {3, 5, 10, 20, 30, 50}.
// Numbers from the two are not directly comparable.
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

// lists reads annotation lists. A recoverable problem (a byte-order mark, a
// count line that disagrees, an empty or second box, a contradicted source)
// is counted in warn with its file:line as the example, or, when strict, is
// an error naming the file and line.
type lists struct {
	strict bool
	warn   *data.Warnings
}

// problem reports a recoverable problem of the given kind at where
// ("file:line"): an error when strict, otherwise a warning and nil.
func (l lists) problem(kind, where, format string, a ...any) error {
	if l.strict {
		return fmt.Errorf("deepfashion: %s: %s", where, fmt.Sprintf(format, a...))
	}
	l.warn.Add(kind, where)
	return nil
}

// bom is the UTF-8 byte-order mark some copies of the lists start with.
const bom = "\uFEFF"

// readTable reads a count line, a header line equal to header, and the
// rows, each with len(header) fields. Blank lines after the header are
// ignored. A byte-order mark before the count, and a count that is not the
// number of rows, are recoverable problems.
func (l lists) readTable(r io.Reader, name string, header []string) (*table, error) {
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
		text := sc.Text()
		switch line {
		case 1:
			var found bool
			if text, found = strings.CutPrefix(text, bom); found {
				if err := l.problem(data.WarnListBOM, name+":1", "UTF-8 byte-order mark before the count"); err != nil {
					return nil, err
				}
			}
			fields := strings.Fields(text)
			if len(fields) != 1 {
				return nil, fail("want the number of rows, found %q", text)
			}
			n, err := strconv.Atoi(fields[0])
			if err != nil || n < 0 {
				return nil, fail("want the number of rows, found %q", fields[0])
			}
			count = n
			continue
		case 2:
			if got := strings.Join(strings.Fields(text), " "); got != strings.Join(header, " ") {
				return nil, fail("header %q, want %q", got, strings.Join(header, " "))
			}
			continue
		}
		fields := strings.Fields(text)
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
	switch line {
	case 0:
		return nil, fmt.Errorf("deepfashion: %s: empty file", name)
	case 1:
		return nil, fmt.Errorf("deepfashion: %s: no header line", name)
	}
	if count != len(t.rows) {
		// The benchmark's README calls the count the number of images,
		// and some copies give that for the partition list.
		if err := l.problem(data.WarnListCount, name+":1", "says %d rows, the file has %d (truncated or edited?)", count, len(t.rows)); err != nil {
			return nil, err
		}
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
	kind, source int             // clothes type; source or pose type
	box          image.Rectangle // zero when the row's box is empty
	row          int             // index in the table
}

// readBoxes parses a bbox list whose columns are image_name, clothes_type,
// a second type column, and x_1 y_1 x_2 y_2, keyed by image name. An empty
// box (x_2 <= x_1 or y_2 <= y_1) is dropped, the row's types kept; a second
// row for an image is dropped. Both are recoverable problems.
func (l lists) readBoxes(r io.Reader, name string, header []string) (*table, map[string]bboxRow, error) {
	t, err := l.readTable(r, name, header)
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
		if first, dup := boxes[f[0]]; dup {
			if err := l.problem(data.WarnBoxDuplicate, t.where(i), "%s has a second bbox row (first at %s)", f[0], t.where(first.row)); err != nil {
				return nil, nil, err
			}
			continue
		}
		b := bboxRow{kind: v[0], source: v[1], row: i}
		if v[4] <= v[2] || v[5] <= v[3] {
			if err := l.problem(data.WarnBoxNoArea, t.where(i), "box x_1 y_1 x_2 y_2 = %d %d %d %d is empty", v[2], v[3], v[4], v[5]); err != nil {
				return nil, nil, err
			}
		} else {
			b.box = image.Rect(v[2], v[3], v[4], v[5])
		}
		boxes[f[0]] = b
	}
	return t, boxes, nil
}

// unusedBoxes counts the kept rows of bbox list t whose image is not in
// used. They do not change the manifest, so they are warnings even when
// strict.
func (l lists) unusedBoxes(t *table, boxes map[string]bboxRow, used func(name string) bool) {
	for i, f := range t.rows {
		if b := boxes[f[0]]; b.row == i && !used(f[0]) {
			l.warn.Add(data.WarnBoxUnused, t.where(i))
		}
	}
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
	// Strict makes each recoverable list problem (see the package
	// comment) an error naming the file and line; otherwise it is counted
	// in the manifest's Warnings.
	Strict bool
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
