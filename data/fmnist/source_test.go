package fmnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadNPM(t *testing.T) {
	src, arc := synthSource(t, 14)
	if src.Len() != 140 {
		t.Fatalf("%d images, want 140", src.Len())
	}
	if src.Skipped != [NumCategories]int{2} || src.TotalSkipped() != 2 {
		t.Errorf("skipped %v", src.Skipped)
	}
	if !slices.Equal(src.SkippedRows, []string{"0.json row 3: 0 values, want 784", "0.json row 15: 0 values, want 784"}) {
		t.Errorf("skipped rows %q", src.SkippedRows)
	}
	// Image 3 of category 0 is the one after the empty row.
	if !slices.Equal(src.Image(3), synthImage(0, 3)) || !slices.Equal(src.Image(14*7+5), synthImage(7, 5)) {
		t.Error("pixels differ from the archive's")
	}
	for i, c := range src.Categories {
		if int(c) != i/14 {
			t.Fatalf("image %d has category %d", i, c)
		}
	}
	want, _ := FileIntegrity(writeTemp(t, "a.tgz", arc))
	if src.Integrity != want {
		t.Errorf("integrity %s, want %s", src.Integrity, want)
	}
	train, test := src.Split()
	for c := range train {
		if len(train[c]) != 12 || len(test[c]) != 2 || test[c][1] != c*14+13 {
			t.Errorf("category %d: train %v test %v", c, train[c], test[c])
		}
	}
}

func TestReadNPMErrors(t *testing.T) {
	rows := synthRows(2)
	cases := []struct {
		arc  []byte
		want string
	}{
		{npmArchive(t, rows, 4), "package/src/clothes/4.json is missing"},
		{[]byte("not gzip"), "not a gzip file"},
	}
	// A syntax error inside a category file names the file and the byte.
	bad := synthRows(2)
	bad[2] = nil
	arc := npmArchive(t, bad, -1)
	var raw bytes.Buffer
	{
		// Re-pack with a broken 2.json.
		zr, _ := gzip.NewReader(bytes.NewReader(arc))
		io.Copy(&raw, zr)
	}
	broken := bytes.Replace(raw.Bytes(), []byte(`{"data":[]}`), []byte(`{"data":[}}`), 1)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(broken)
	zw.Close()
	cases = append(cases, struct {
		arc  []byte
		want string
	}{gz.Bytes(), "package/src/clothes/2.json: byte 9: found '}', want a value"})
	for _, c := range cases {
		_, err := ReadNPM(bytes.NewReader(c.arc), "x.tgz")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestParseClothes(t *testing.T) {
	row := func(n int, v string) string { return "[" + strings.TrimSuffix(strings.Repeat(v+",", n), ",") + "]" }
	cases := []struct {
		in    string
		valid int
		bad   []string
		err   string
	}{
		{`{"data":[]}`, 0, nil, ""},
		{` { "x" : {"a":[1,"s",null,true]}, "data" : [ ` + row(784, "7") + ` , [] ] } `, 1, []string{"1: 0 values, want 784"}, ""},
		{`{"data":[` + row(783, "1") + `,` + row(785, "1") + `]}`, 0, []string{"0: 783 values", "1: 785 values"}, ""},
		{`{"data":[` + row(784, "256") + `,` + row(784, "1.5") + `,` + row(784, "-1") + `]}`, 0, []string{"0: a value", "1: a value", "2: a value"}, ""},
		{`{"data":[null,"x",` + row(784, "0") + `]}`, 1, []string{"0: not an array", "1: not an array"}, ""},
		{`{"data":[` + row(784, `"1"`) + `]}`, 0, []string{"0: a value"}, ""},
		{`{"other":1}`, 0, nil, "no \"data\" key"},
		{`[1]`, 0, nil, "byte 0: found '[', want '{'"},
		{`{"data":[[1,2}`, 0, nil, "byte 13: found '}' in row 0"},
		{`{"data":[[1,2]`, 0, nil, "unexpected end of input"},
		{`{"data":[]} x`, 0, nil, "after the top-level object"},
		{`{"data":[[` + strings.Repeat("[", 600) + `]]}`, 0, nil, "nested more than"},
		{`{"data`, 0, nil, "unterminated string"},
	}
	for _, c := range cases {
		valid := 0
		var bad []string
		err := parseClothes(strings.NewReader(c.in), "f.json", func(pix []uint8) {
			if len(pix) != Pixels {
				t.Fatal("row callback with a wrong length")
			}
			valid++
		}, func(i int, why string) { bad = append(bad, fmt.Sprintf("%d: %s", i, why)) })
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%.50q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%.50q: %v", c.in, err)
			continue
		}
		if valid != c.valid || len(bad) != len(c.bad) {
			t.Errorf("%.50q: %d valid, bad %q; want %d, %q", c.in, valid, bad, c.valid, c.bad)
			continue
		}
		for i := range bad {
			if !strings.HasPrefix(bad[i], c.bad[i]) {
				t.Errorf("%.50q: bad row %q, want %q", c.in, bad[i], c.bad[i])
			}
		}
	}
}

// FuzzParseClothes: no input panics or loops; valid rows are 784 pixels.
func FuzzParseClothes(f *testing.F) {
	f.Add([]byte(`{"data":[[1,2,3],[],null]}`))
	f.Add([]byte(`{"a":{"b":[true,false,null,"x\"y"]},"data":[[0]]}`))
	f.Add(clothesJSON(synthRows(1)[0][:1]))
	f.Fuzz(func(t *testing.T, in []byte) {
		parseClothes(bytes.NewReader(in), "fuzz.json", func(pix []uint8) {
			if len(pix) != Pixels {
				t.Fatalf("row of %d pixels", len(pix))
			}
		}, func(int, string) {})
	})
}

// idxFile encodes an IDX array of bytes.
func idxFile(dims []int, data []uint8, gz bool) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	if !gz {
		return b.Bytes()
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b.Bytes())
	w.Close()
	return z.Bytes()
}

func TestLoadIDX(t *testing.T) {
	dir := t.TempDir()
	// train: 3 images with labels 2, 0, 2; test: 2 images with labels 0, 2.
	sets := []struct {
		prefix string
		labels []uint8
		gz     bool
	}{{"train", []uint8{2, 0, 2}, true}, {"t10k", []uint8{0, 2}, false}}
	for s, set := range sets {
		var pix []uint8
		for i := range set.labels {
			pix = append(pix, synthImage(s, i)...)
		}
		suffix := ""
		if set.gz {
			suffix = ".gz"
		}
		os.WriteFile(filepath.Join(dir, set.prefix+"-images-idx3-ubyte"+suffix), idxFile([]int{len(set.labels), 28, 28}, pix, set.gz), 0o644)
		os.WriteFile(filepath.Join(dir, set.prefix+"-labels-idx1-ubyte"+suffix), idxFile([]int{len(set.labels)}, set.labels, set.gz), 0o644)
	}
	src, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Category 0: train #1, then test #0; category 2: train #0, #2, then test #1.
	if !slices.Equal(src.Categories, []uint8{0, 0, 2, 2, 2}) {
		t.Fatalf("categories %v", src.Categories)
	}
	wantImgs := [][]uint8{synthImage(0, 1), synthImage(1, 0), synthImage(0, 0), synthImage(0, 2), synthImage(1, 1)}
	for i, w := range wantImgs {
		if !slices.Equal(src.Image(i), w) {
			t.Errorf("image %d out of place", i)
		}
	}
	// Errors: bad magic, label out of range, count mismatch.
	for _, c := range []struct {
		img, lab []byte
		want     string
	}{
		{idxFile([]int{1, 28}, make([]uint8, 28), false), idxFile([]int{1}, []uint8{0}, false), "bad IDX magic"},
		{idxFile([]int{1, 28, 28}, make([]uint8, 784), false), idxFile([]int{1}, []uint8{10}, false), "label 10 of image 0"},
		{idxFile([]int{2, 28, 28}, make([]uint8, 2*784), false), idxFile([]int{1}, []uint8{1}, false), "2 images but 1 labels"},
		{idxFile([]int{2, 28, 28}, make([]uint8, 784), false), idxFile([]int{2}, []uint8{1, 1}, false), "reading 1568 IDX bytes"},
	} {
		_, _, err := ReadIDX(bytes.NewReader(c.img), bytes.NewReader(c.lab))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadIDX: %v, want %q", err, c.want)
		}
	}
}

func TestLoadDetection(t *testing.T) {
	_, arc := synthSource(t, 7)
	// Any other name: read without the pinned-integrity check.
	if src, err := Load(writeTemp(t, "mine.tgz", arc)); err != nil || src.Len() != 70 {
		t.Errorf("Load(mine.tgz): %v", err)
	}
	// The canonical name in a folder: the integrity must be the pinned one.
	dir := filepath.Dir(writeTemp(t, FileName, arc))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Errorf("Load(folder with a foreign %s): %v", FileName, err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "holds neither") {
		t.Errorf("Load(empty folder): %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nothing")); err == nil || !strings.Contains(err.Error(), "make data") {
		t.Errorf("Load(missing): %v", err)
	}
}

// FuzzReadIDX: no input panics or allocates without bound.
func FuzzReadIDX(f *testing.F) {
	f.Add(idxFile([]int{1, 28, 28}, make([]uint8, 784), false), idxFile([]int{1}, []uint8{3}, false))
	f.Add(idxFile([]int{1, 28, 28}, make([]uint8, 784), true), idxFile([]int{1}, []uint8{3}, true))
	f.Fuzz(func(t *testing.T, img, lab []byte) {
		pix, labels, err := ReadIDX(bytes.NewReader(img), bytes.NewReader(lab))
		if err == nil && len(pix) != len(labels)*Pixels {
			t.Fatalf("%d pixels for %d labels", len(pix), len(labels))
		}
	})
}

// TestLoadMissingNamesTheFlag: the message for missing data names the
// flag that exists (-data-path), not one that does not.
func TestLoadMissingNamesTheFlag(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.tgz"))
	if err == nil || !strings.Contains(err.Error(), "-data-path") || strings.Contains(err.Error(), "-data-dir") {
		t.Errorf("missing data: %v", err)
	}
}
