package data

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseTSVPositional(t *testing.T) {
	in := "# a comment\n\n" +
		"a.jpg\t17\tshop\ttrain\n" +
		"b.jpg\t17\tconsumer\ttrain\t3\r\n" +
		"c d.jpg\t18\tConsumer\ttest\t1\t2\t30\t40\n" +
		"/abs/e.png\t18\tshop\ttest\t0\t0\t10\t10\t5\n"
	m, err := ParseTSV(strings.NewReader(in), "m.tsv")
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Path: "a.jpg", Item: 17, Domain: Shop, Split: Train, Category: NoCategory},
		{Path: "b.jpg", Item: 17, Domain: Consumer, Split: Train, Category: 3},
		{Path: "c d.jpg", Item: 18, Domain: Consumer, Split: Test, Box: image.Rect(1, 2, 30, 40), Category: NoCategory},
		{Path: "/abs/e.png", Item: 18, Domain: Shop, Split: Test, Box: image.Rect(0, 0, 10, 10), Category: 5},
	}
	if !reflect.DeepEqual(m.Rows, want) {
		t.Errorf("rows\n%+v\nwant\n%+v", m.Rows, want)
	}
	if m.ItemNames != nil || m.CategoryNames != nil {
		t.Errorf("names for integer ids: %v %v", m.ItemNames, m.CategoryNames)
	}
	m.Root = "/data"
	if p := m.ImagePath(0); p != filepath.Join("/data", "a.jpg") {
		t.Errorf("ImagePath %q", p)
	}
	if p := m.ImagePath(3); p != "/abs/e.png" {
		t.Errorf("absolute ImagePath %q", p)
	}
}

func TestParseTSVHeader(t *testing.T) {
	in := "path\tsplit\tdomain\titem_id\turl\tcategory\n" +
		"x.jpg\ttrain\tshop\tsku-9\thttp://example.invalid/x\tDress\n" +
		"y.jpg\ttest\tconsumer\tsku-3\n" + // missing trailing fields: empty
		"z.jpg\ttest\tshop\tsku-9\t\tSkirt\n"
	m, err := ParseTSV(strings.NewReader(in), "h.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rows) != 3 {
		t.Fatalf("%d rows", len(m.Rows))
	}
	// Names are numbered in order of first appearance.
	if m.Rows[0].Item != 0 || m.Rows[1].Item != 1 || m.Rows[2].Item != 0 || m.ItemNames[0] != "sku-9" || m.ItemNames[1] != "sku-3" {
		t.Errorf("items %+v names %v", m.Rows, m.ItemNames)
	}
	if m.Rows[0].Category != 0 || m.Rows[1].Category != NoCategory || m.Rows[2].Category != 1 || m.CategoryNames[1] != "Skirt" {
		t.Errorf("categories %+v names %v", m.Rows, m.CategoryNames)
	}
}

func TestParseTSVErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"a.jpg\t1\tshop\n", "bad.tsv:1: 3 tab-separated fields"},
		{"# c\na.jpg\t1\tshop\ttrain\n\na.jpg\t1\tshap\ttrain\n", "bad.tsv:4: domain \"shap\""},
		{"a.jpg\t1\tshop\tdev\n", "bad.tsv:1: split \"dev\""},
		{"\t1\tshop\ttrain\n", "bad.tsv:1: empty path"},
		{"a.jpg\t\tshop\ttrain\n", "bad.tsv:1: empty item_id"},
		{"a.jpg\t1\tshop\ttrain\t1\t2\t\t4\n", "bad.tsv:1: bbox"},
		{"a.jpg\t1\tshop\ttrain\t1\t2\tx\t4\n", "bbox field x2 = \"x\" is not an integer"},
		{"a.jpg\t1\tshop\ttrain\t5\t2\t5\t4\n", "is empty (need x2 > x1"},
		{"path\titem_id\tdomain\n", "bad.tsv:1: header lacks the \"split\" column"},
		{"path\titem_id\tdomain\tsplit\tx1\n", "header names 1 of the box columns"},
		{"path\tpath\titem_id\tdomain\tsplit\n", "names column \"path\" twice"},
		{"a.jpg\t1\tshop\ttrain\t-4\n", "category: -4 is outside"},
		{"a.jpg\t" + strings.Repeat("x", 2<<20) + "\tshop\ttrain\n", "longer than 1 MiB"},
	}
	for _, c := range cases {
		_, err := ParseTSV(strings.NewReader(c.in), "bad.tsv")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60q: %v, want %q", c.in, err, c.want)
		}
	}
}

// TestParseTSVBOM checks that a UTF-8 byte-order mark (spreadsheets write
// one) is stripped before the header or the first row is read.
func TestParseTSVBOM(t *testing.T) {
	for _, in := range []string{
		"\uFEFFpath\titem_id\tdomain\tsplit\na.jpg\t7\tshop\ttrain\n",
		"\uFEFFa.jpg\t7\tshop\ttrain\n",
	} {
		m, err := ParseTSV(strings.NewReader(in), "bom.tsv")
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		want := []Row{{Path: "a.jpg", Item: 7, Domain: Shop, Split: Train, Category: NoCategory}}
		if !reflect.DeepEqual(m.Rows, want) {
			t.Errorf("%q: rows %+v, want %+v", in, m.Rows, want)
		}
	}
}

func TestTSVRoundTrip(t *testing.T) {
	m := &Manifest{
		Rows: []Row{
			{Path: "a.jpg", Item: 0, Domain: Shop, Split: Train, Category: 1, Box: image.Rect(1, 2, 3, 4)},
			{Path: "b.jpg", Item: 1, Domain: Consumer, Split: Query, Category: NoCategory},
			{Path: "c.jpg", Item: 0, Domain: Consumer, Split: Gallery, Category: 0},
		},
		ItemNames:     map[int64]string{0: "red dress", 1: "blue coat"},
		CategoryNames: map[int32]string{0: "coat", 1: "dress"},
	}
	var buf bytes.Buffer
	if err := WriteTSV(&buf, m); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "m.tsv")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTSV(p)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if back.Root != dir {
		t.Errorf("root %q", back.Root)
	}
	// Category names are renumbered by first appearance: dress=0, coat=1.
	for i, r := range back.Rows {
		w := m.Rows[i]
		if r.Path != w.Path || r.Domain != w.Domain || r.Split != w.Split || r.Box != w.Box ||
			back.ItemNames[r.Item] != m.ItemNames[w.Item] || back.CategoryNames[r.Category] != m.CategoryNames[w.Category] {
			t.Errorf("row %d: %+v, want %+v", i, r, w)
		}
	}
	if err := WriteTSV(&buf, &Manifest{Rows: []Row{{Image: image.NewGray(image.Rect(0, 0, 1, 1))}}}); err == nil {
		t.Error("WriteTSV wrote an in-memory row")
	}
}

// FuzzParseTSV: no input panics, and whatever parses writes back and parses
// to the same rows.
func FuzzParseTSV(f *testing.F) {
	f.Add("a.jpg\t1\tshop\ttrain\n")
	f.Add("path\titem_id\tdomain\tsplit\tcategory\nx\tsku\tconsumer\ttest\tDress\n")
	f.Add("a b\t-3\tconsumer\tval\t1\t2\t3\t4\t7\r\n# c\n")
	f.Add(" #x\t1\tshop\ttrain\npath\t2\tshop\ttest\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseTSV(strings.NewReader(in), "f.tsv")
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest invalid: %v", err)
		}
		var buf bytes.Buffer
		if err := WriteTSV(&buf, m); err != nil {
			return // e.g. a path with a carriage return cannot be written
		}
		back, err := ParseTSV(&buf, "back.tsv")
		if err != nil {
			t.Fatalf("written manifest does not parse: %v\n%q", err, buf.String())
		}
		if len(back.Rows) != len(m.Rows) {
			t.Fatalf("%d rows back, want %d", len(back.Rows), len(m.Rows))
		}
		for i := range m.Rows {
			a, b := m.Rows[i], back.Rows[i]
			if a.Domain != b.Domain || a.Split != b.Split || a.Box != b.Box {
				t.Fatalf("row %d: %+v back as %+v", i, a, b)
			}
		}
	})
}
