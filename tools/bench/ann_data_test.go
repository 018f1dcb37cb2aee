package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data/npy"
	"github.com/dmlgo/dmlgo/retrieval"
)

// writeNPY writes a .npy file into t's temporary folder.
func writeNPY[T npy.Elem](t *testing.T, name string, shape []int, x []T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := npy.WriteFile(p, shape, x); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadUnitRows(t *testing.T) {
	// Row 0 is unit length, row 1 has length 5, row 2 is unit length to
	// within float32 rounding.
	x := []float32{1, 0, 0, 3, 4, 0, 0.6, 0.8, 1e-7}
	got, rows, d, nrm, err := readUnitRows(writeNPY(t, "b.npy", []int{3, 3}, x))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 || d != 3 || nrm != 1 {
		t.Fatalf("rows %d, d %d, normalised %d; want 3, 3, 1", rows, d, nrm)
	}
	want := []float32{1, 0, 0, 0.6, 0.8, 0, 0.6, 0.8, 1e-7}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("element %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestReadUnitRowsErrors(t *testing.T) {
	// A big-endian header: npy reads only little-endian data.
	be := filepath.Join(t.TempDir(), "be.npy")
	if err := os.WriteFile(be, append(npy.Header(">f4", []int{1, 2}), make([]byte, 8)...), 0o644); err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(t.TempDir(), "trunc.npy")
	if err := os.WriteFile(trunc, append(npy.Header("<f4", []int{4, 2}), make([]byte, 8)...), 0o644); err != nil {
		t.Fatal(err)
	}
	notNPY := filepath.Join(t.TempDir(), "text.npy")
	if err := os.WriteFile(notNPY, []byte("0.1,0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, want string
	}{
		{"float64", writeNPY(t, "f8.npy", []int{2, 2}, []float64{1, 0, 0, 1}), "type <f8, want float32"},
		{"int", writeNPY(t, "i8.npy", []int{2, 2}, []int64{1, 0, 0, 1}), "type <i8, want float32"},
		{"1-D", writeNPY(t, "1d.npy", []int{4}, []float32{1, 0, 0, 1}), "shape [4], want (rows, dimension)"},
		{"3-D", writeNPY(t, "3d.npy", []int{1, 2, 2}, []float32{1, 0, 0, 1}), "shape [1 2 2]"},
		{"no rows", writeNPY(t, "empty.npy", []int{0, 4}, []float32{}), "shape [0 4]"},
		{"NaN", writeNPY(t, "nan.npy", []int{2, 2}, []float32{1, 0, 0, float32(math.NaN())}), "row 1, column 1 is NaN"},
		{"Inf", writeNPY(t, "inf.npy", []int{2, 2}, []float32{float32(math.Inf(-1)), 0, 0, 1}), "row 0, column 0 is -Inf"},
		{"zero row", writeNPY(t, "zero.npy", []int{2, 2}, []float32{1, 0, 0, 0}), "row 1 is all zeros"},
		{"big-endian", be, "little-endian"},
		{"truncated", trunc, "unexpected EOF"},
		{"not npy", notNPY, "not a .npy file"},
		{"missing", filepath.Join(t.TempDir(), "missing.npy"), "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, _, err := readUnitRows(c.path)
			if err == nil {
				t.Fatalf("no error, want one containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q: want the file name and %q", err, c.want)
			}
		})
	}
}

func TestAnnFileData(t *testing.T) {
	// 5 unit gallery rows and 3 queries of dimension 2, the first query
	// of length 2.
	base := writeNPY(t, "base.npy", []int{5, 2}, []float32{1, 0, 0, 1, 0.6, 0.8, 0.8, 0.6, -1, 0})
	q := writeNPY(t, "q.npy", []int{3, 2}, []float32{2, 0, 0, 1, 0, -1})

	ad, err := annFileData(base, q, 0, 0, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ad.n != 5 || ad.nq != 3 || ad.d != 2 || ad.na != 0 {
		t.Fatalf("n %d, nq %d, d %d, na %d; want 5, 3, 2, 0", ad.n, ad.nq, ad.d, ad.na)
	}
	// The gallery is unit already: its file is the one searched; the
	// first query was normalised, so the queries have no file.
	if ad.baseFile != base || ad.queriesFile != "" {
		t.Fatalf("files %q, %q; want %q and none", ad.baseFile, ad.queriesFile, base)
	}
	if ad.queries[0] != 1 {
		t.Fatalf("query 0 = %v, want normalised to (1, 0)", ad.queries[:2])
	}

	// The first rows, and the adds going round the file.
	ad, err = annFileData(base, q, 3, 2, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ad.n != 3 || ad.nq != 2 || len(ad.base) != 6 || len(ad.queries) != 4 || ad.baseFile != "" {
		t.Fatalf("n %d, nq %d, %d and %d floats, base file %q", ad.n, ad.nq, len(ad.base), len(ad.queries), ad.baseFile)
	}
	wantAdds := []float32{0.8, 0.6, -1, 0, 1, 0, 0, 1} // rows 3, 4, 0, 1
	for i, v := range wantAdds {
		if ad.adds[i] != v {
			t.Fatalf("adds %v, want %v", ad.adds, wantAdds)
		}
	}

	other := writeNPY(t, "q3.npy", []int{1, 3}, []float32{1, 0, 0})
	for _, c := range []struct {
		name       string
		q          string
		n, nq, k   int
		wantSubstr string
	}{
		{"dimensions", other, 0, 0, 1, "dimension 3"},
		{"too many rows", q, 6, 0, 1, "-n 6: " + base + " has only 5 rows"},
		{"too many queries", q, 0, 4, 1, "-nq 4: " + q + " has only 3 rows"},
		{"k above n", q, 2, 0, 3, "2 gallery rows for k = 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := annFileData(base, c.q, c.n, c.nq, 0, c.k)
			if err == nil || !strings.Contains(err.Error(), c.wantSubstr) {
				t.Fatalf("error %v, want one containing %q", err, c.wantSubstr)
			}
		})
	}
}

func TestAnnFilesAndExactIDs(t *testing.T) {
	dir := t.TempDir()
	ad := annMixtureData(50, 4, 0, 1)
	b, q, err := annFiles(ad, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	// Read back, the files hold the rows searched.
	for _, f := range []struct {
		path string
		want []float32
		rows int
	}{{b, ad.base, 50}, {q, ad.queries, 4}} {
		got, rows, d, nrm, err := readUnitRows(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if rows != f.rows || d != 128 || nrm != 0 {
			t.Fatalf("%s: %d rows of %d, %d normalised", f.path, rows, d, nrm)
		}
		for i := range got {
			if got[i] != f.want[i] {
				t.Fatalf("%s: element %d is %v, want %v", f.path, i, got[i], f.want[i])
			}
		}
	}
	ids := filepath.Join(dir, "ids.npy")
	exact := [][]retrieval.Hit{{{Row: 7, Score: 0.9}, {Row: 3, Score: 0.8}}, {{Row: 49, Score: 0.5}, {Row: 0, Score: 0.5}}}
	if err := writeExactIDs(ids, exact, 2); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(ids)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	v, err := npy.Values[int64](a)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != 2 || a.Shape[1] != 2 || v[0] != 7 || v[1] != 3 || v[2] != 49 || v[3] != 0 {
		t.Fatalf("ids %v %v, want (2, 2) [7 3 49 0]", a.Shape, v)
	}
	if err := writeExactIDs(ids, exact, 3); err == nil {
		t.Fatal("no error for queries with fewer than k hits")
	}
}
