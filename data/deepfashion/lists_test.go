package deepfashion

import (
	"image"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data"
)

// Small Consumer-to-Shop lists for the recoverable-problem tests: item 1
// (train) and item 2 (test), one consumer and one shop image each.
const (
	c2sPH = "image_pair_name_1 image_pair_name_2 item_id evaluation_status"
	c2sBH = "image_name clothes_type source_type x_1 y_1 x_2 y_2"

	c1 = "img/TOPS/T_Shirt/id_00000001/comsumer_01.jpg"
	s1 = "img/TOPS/T_Shirt/id_00000001/shop_01.jpg"
	c2 = "img/TROUSER/Jeans/id_00000002/comsumer_01.jpg"
	s2 = "img/TROUSER/Jeans/id_00000002/shop_01.jpg"

	pairs = c1 + " " + s1 + " id_00000001 train\n" + c2 + " " + s2 + " id_00000002 test\n"
	// Rows 3 to 6 of the bbox list, one per image.
	boxC1 = c1 + " 1 2 1 2 30 40\n"
	boxS1 = s1 + " 1 1 3 4 50 60\n"
	boxC2 = c2 + " 2 2 5 6 70 80\n"
	boxS2 = s2 + " 2 1 7 8 90 99\n"
)

// c2sRows are the manifest rows of pairs with the four boxes above.
func c2sRows() []data.Row {
	return []data.Row{
		{Path: c1, Item: 1, Domain: data.Consumer, Split: data.Train, Box: image.Rect(1, 2, 30, 40), Category: 1},
		{Path: s1, Item: 1, Domain: data.Shop, Split: data.Train, Box: image.Rect(3, 4, 50, 60), Category: 1},
		{Path: c2, Item: 2, Domain: data.Consumer, Split: data.Test, Box: image.Rect(5, 6, 70, 80), Category: 2},
		{Path: s2, Item: 2, Domain: data.Shop, Split: data.Test, Box: image.Rect(7, 8, 90, 99), Category: 2},
	}
}

// recoverable is one list defect that is a counted warning, or an error
// naming where it is under Strict.
type recoverable struct {
	name       string
	part, bbox string
	kind       string     // the warning counted
	where      string     // its example, file:line
	strictErr  string     // what the strict error says after "where: "
	rows       []data.Row // the rows kept
}

// c2sRecoverable are the Consumer-to-Shop cases.
func c2sRecoverable() []recoverable {
	bbox := func(n int, rows ...string) string {
		return strconv.Itoa(n) + "\n" + c2sBH + "\n" + strings.Join(rows, "")
	}
	noBox := func(rows []data.Row, i int, keepCategory bool) []data.Row {
		rows[i].Box = image.Rectangle{}
		if !keepCategory {
			rows[i].Category = data.NoCategory
		}
		return rows
	}
	all := bbox(4, boxC1, boxS1, boxC2, boxS2)
	return []recoverable{
		{
			name: "BOM in the partition list",
			part: "\uFEFF2\n" + c2sPH + "\n" + pairs, bbox: all,
			kind: data.WarnListBOM, where: "p.txt:1", strictErr: "UTF-8 byte-order mark",
			rows: c2sRows(),
		},
		{
			name: "BOM in the bbox list",
			part: "2\n" + c2sPH + "\n" + pairs, bbox: "\uFEFF" + all,
			kind: data.WarnListBOM, where: "b.txt:1", strictErr: "UTF-8 byte-order mark",
			rows: c2sRows(),
		},
		{
			// The benchmark's README calls the count the number of images.
			name: "count line says more",
			part: "239557\n" + c2sPH + "\n" + pairs, bbox: all,
			kind: data.WarnListCount, where: "p.txt:1", strictErr: "says 239557 rows, the file has 2",
			rows: c2sRows(),
		},
		{
			name: "count line says fewer",
			part: "2\n" + c2sPH + "\n" + pairs, bbox: bbox(3, boxC1, boxS1, boxC2, boxS2),
			kind: data.WarnListCount, where: "b.txt:1", strictErr: "says 3 rows, the file has 4",
			rows: c2sRows(),
		},
		{
			name: "x_1 == x_2",
			part: "2\n" + c2sPH + "\n" + pairs, bbox: bbox(4, boxC1, s1+" 1 1 50 4 50 60\n", boxC2, boxS2),
			kind: data.WarnBoxNoArea, where: "b.txt:4", strictErr: "box x_1 y_1 x_2 y_2 = 50 4 50 60 is empty",
			rows: noBox(c2sRows(), 1, true),
		},
		{
			name: "y_1 == y_2",
			part: "2\n" + c2sPH + "\n" + pairs, bbox: bbox(4, boxC1, boxS1, c2+" 2 2 5 80 70 80\n", boxS2),
			kind: data.WarnBoxNoArea, where: "b.txt:5", strictErr: "box x_1 y_1 x_2 y_2 = 5 80 70 80 is empty",
			rows: noBox(c2sRows(), 2, true),
		},
		{
			// The first row counts; the second (another box) is dropped.
			name: "duplicate bbox row",
			part: "2\n" + c2sPH + "\n" + pairs, bbox: bbox(5, boxC1, boxS1, boxC2, c2+" 3 2 0 0 9 9\n", boxS2),
			kind: data.WarnBoxDuplicate, where: "b.txt:6", strictErr: c2 + " has a second bbox row (first at b.txt:5)",
			rows: c2sRows(),
		},
		{
			// The pair list says consumer: the row stays a consumer
			// image, without the contradicted bbox row's box and type.
			name: "source_type disagrees",
			part: "2\n" + c2sPH + "\n" + pairs, bbox: bbox(4, boxC1, boxS1, c2+" 2 1 5 6 70 80\n", boxS2),
			kind: data.WarnSourceMismatch, where: "b.txt:5", strictErr: "source_type 1, but " + c2 + " is a consumer image",
			rows: noBox(c2sRows(), 2, false),
		},
	}
}

// checkRecoverable parses c leniently (one warning of c.kind with example
// c.where, exactly c.rows kept) and strictly (an error at c.where).
func checkRecoverable(t *testing.T, c recoverable, parse func(part, bbox io.Reader, strict bool) (*data.Manifest, error)) {
	t.Helper()
	m, err := parse(strings.NewReader(c.part), strings.NewReader(c.bbox), false)
	if err != nil {
		t.Errorf("%s: %v", c.name, err)
		return
	}
	w := m.Warnings
	if w.Count(c.kind) != 1 || w.Total() != 1 {
		t.Errorf("%s: warnings\n%s\nwant one %q", c.name, w, c.kind)
	}
	if ex := w.Examples(c.kind); len(ex) != 1 || ex[0] != c.where {
		t.Errorf("%s: examples %q, want [%s]", c.name, ex, c.where)
	}
	if !reflect.DeepEqual(m.Rows, c.rows) {
		t.Errorf("%s: rows\n%+v\nwant\n%+v", c.name, m.Rows, c.rows)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("%s: %v", c.name, err)
	}
	_, err = parse(strings.NewReader(c.part), strings.NewReader(c.bbox), true)
	if want := c.where + ": " + c.strictErr; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: strict: %v, want an error containing %q", c.name, err, want)
	}
}

// TestConsumer2ShopRecoverable checks each recoverable defect of the lists:
// a BOM, a count line that disagrees, an empty box, a duplicate bbox row and
// a source_type that disagrees with the pair list.
func TestConsumer2ShopRecoverable(t *testing.T) {
	parse := func(part, bbox io.Reader, strict bool) (*data.Manifest, error) {
		return ParseConsumer2Shop(part, "p.txt", bbox, "b.txt", strict)
	}
	for _, c := range c2sRecoverable() {
		checkRecoverable(t, c, parse)
	}
}

// TestInShopRecoverable checks the shared list defects through the In-Shop
// reader.
func TestInShopRecoverable(t *testing.T) {
	const ph = "image_name item_id evaluation_status"
	const bh = "image_name clothes_type pose_type x_1 y_1 x_2 y_2"
	const (
		a = "img/WOMEN/Dresses/id_00000002/02_1_front.jpg"
		b = "img/WOMEN/Dresses/id_00000002/02_2_side.jpg"
	)
	part := ph + "\n" + a + " id_00000002 query\n" + b + " id_00000002 gallery\n"
	boxA, boxB := a+" 3 1 1 2 30 40\n", b+" 3 2 3 4 50 60\n"
	rows := func() []data.Row {
		return []data.Row{
			{Path: a, Item: 2, Domain: data.Shop, Split: data.Query, Box: image.Rect(1, 2, 30, 40), Category: 3},
			{Path: b, Item: 2, Domain: data.Shop, Split: data.Gallery, Box: image.Rect(3, 4, 50, 60), Category: 3},
		}
	}
	noBoxB := rows()
	noBoxB[1].Box = image.Rectangle{}
	parse := func(p, bb io.Reader, strict bool) (*data.Manifest, error) {
		return ParseInShop(p, "p.txt", bb, "b.txt", strict)
	}
	for _, c := range []recoverable{
		{name: "BOM", part: "\uFEFF2\n" + part, bbox: "2\n" + bh + "\n" + boxA + boxB,
			kind: data.WarnListBOM, where: "p.txt:1", strictErr: "UTF-8 byte-order mark", rows: rows()},
		{name: "count", part: "52712\n" + part, bbox: "2\n" + bh + "\n" + boxA + boxB,
			kind: data.WarnListCount, where: "p.txt:1", strictErr: "says 52712 rows, the file has 2", rows: rows()},
		{name: "empty box", part: "2\n" + part, bbox: "2\n" + bh + "\n" + boxA + b + " 3 2 3 60 50 60\n",
			kind: data.WarnBoxNoArea, where: "b.txt:4", strictErr: "box x_1 y_1 x_2 y_2 = 3 60 50 60 is empty", rows: noBoxB},
		{name: "duplicate", part: "2\n" + part, bbox: "3\n" + bh + "\n" + boxA + boxB + a + " 1 1 0 0 5 5\n",
			kind: data.WarnBoxDuplicate, where: "b.txt:5", strictErr: a + " has a second bbox row (first at b.txt:3)", rows: rows()},
	} {
		checkRecoverable(t, c, parse)
	}
}

// TestUnusedBoxes checks that a bbox row for an image no pair lists is
// counted, with its file:line, and is not an error even under Strict (the
// manifest does not depend on it).
func TestUnusedBoxes(t *testing.T) {
	const extra = "img/TOPS/T_Shirt/id_00000003/shop_01.jpg 1 1 1 1 9 9\n"
	bbox := "5\n" + c2sBH + "\n" + boxC1 + boxS1 + extra + boxC2 + boxS2
	for _, strict := range []bool{false, true} {
		m, err := ParseConsumer2Shop(strings.NewReader("2\n"+c2sPH+"\n"+pairs), "p.txt", strings.NewReader(bbox), "b.txt", strict)
		if err != nil {
			t.Fatalf("strict %v: %v", strict, err)
		}
		if w := m.Warnings; w.Count(data.WarnBoxUnused) != 1 || w.Total() != 1 || !reflect.DeepEqual(w.Examples(data.WarnBoxUnused), []string{"b.txt:5"}) {
			t.Errorf("strict %v: warnings\n%s\nwant one %q at b.txt:5", strict, w, data.WarnBoxUnused)
		}
		if !reflect.DeepEqual(m.Rows, c2sRows()) {
			t.Errorf("strict %v: rows\n%+v", strict, m.Rows)
		}
	}
	const ih = "2\nimage_name item_id evaluation_status\nimg/a/id_00000001/1.jpg id_00000001 query\nimg/a/id_00000001/2.jpg id_00000001 gallery\n"
	const ib = "3\nimage_name clothes_type pose_type x_1 y_1 x_2 y_2\nimg/a/id_00000001/1.jpg 1 1 1 1 9 9\nimg/a/id_00000001/9.jpg 1 1 1 1 9 9\nimg/a/id_00000001/2.jpg 1 1 1 1 9 9\n"
	m, err := ParseInShop(strings.NewReader(ih), "p.txt", strings.NewReader(ib), "b.txt", true)
	if err != nil {
		t.Fatal(err)
	}
	if w := m.Warnings; w.Count(data.WarnBoxUnused) != 1 || w.Total() != 1 || !reflect.DeepEqual(w.Examples(data.WarnBoxUnused), []string{"b.txt:4"}) {
		t.Errorf("in-shop warnings\n%s\nwant one %q at b.txt:4", w, data.WarnBoxUnused)
	}
}

// TestLoadStrict checks that Options.Strict reaches the readers: the same
// folder loads with a warning, and fails naming the file and line under
// Strict.
func TestLoadStrict(t *testing.T) {
	root := t.TempDir()
	for p, s := range map[string]string{
		"Eval/list_eval_partition.txt":      "239557\n" + c2sPH + "\n" + pairs,
		"Anno/list_bbox_consumer2shop.txt":  "\uFEFF4\n" + c2sBH + "\n" + boxC1 + boxS1 + boxC2 + boxS2,
		"In-shop/list_eval_partition.txt":   "\uFEFF1\nimage_name item_id evaluation_status\nimg/a/id_00000001/1.jpg id_00000001 query\n",
		"In-shop/Anno/list_bbox_inshop.txt": "1\nimage_name clothes_type pose_type x_1 y_1 x_2 y_2\nimg/a/id_00000001/1.jpg 1 1 1 1 9 9\n",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := LoadConsumer2Shop(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	partition := filepath.Join(root, "Eval", "list_eval_partition.txt")
	bbox := filepath.Join(root, "Anno", "list_bbox_consumer2shop.txt")
	if got := m.Warnings.Examples(data.WarnListCount); !reflect.DeepEqual(got, []string{partition + ":1"}) {
		t.Errorf("count warning examples %q", got)
	}
	if got := m.Warnings.Examples(data.WarnListBOM); !reflect.DeepEqual(got, []string{bbox + ":1"}) {
		t.Errorf("BOM warning examples %q", got)
	}
	if !reflect.DeepEqual(m.Rows, c2sRows()) {
		t.Errorf("rows\n%+v", m.Rows)
	}
	if _, err := LoadConsumer2Shop(Options{Root: root, Strict: true}); err == nil || !strings.Contains(err.Error(), partition+":1: says 239557 rows") {
		t.Errorf("strict load: %v", err)
	}
	inshop := filepath.Join(root, "In-shop")
	if m, err := LoadInShop(Options{Root: inshop}); err != nil || m.Warnings.Count(data.WarnListBOM) != 1 || len(m.Rows) != 1 {
		t.Errorf("in-shop load: %v", err)
	}
	if _, err := LoadInShop(Options{Root: inshop, Strict: true}); err == nil || !strings.Contains(err.Error(), filepath.Join(inshop, "list_eval_partition.txt")+":1: UTF-8 byte-order mark") {
		t.Errorf("strict in-shop load: %v", err)
	}
}
