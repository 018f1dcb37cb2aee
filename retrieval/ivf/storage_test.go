package ivf

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
	"github.com/dmlgo/dmlgo/retrieval"
	"github.com/dmlgo/dmlgo/safetensors"
)

// checkExactScores fails unless every hit's score is the inner product of
// its query and its row (rows (·, testD)), computed in float64, and the
// hits are sorted.
func checkExactScores(t *testing.T, name string, got [][]retrieval.Hit, qs, rows []float32) {
	t.Helper()
	for i, hs := range got {
		for j, h := range hs {
			var s float64
			for c := 0; c < testD; c++ {
				s += float64(qs[i*testD+c]) * float64(rows[h.Row*testD+c])
			}
			if math.Abs(s-float64(h.Score)) > 1e-5 || j > 0 && retrieval.Worse(hs[j-1], h) {
				t.Fatalf("%s: query %d hit %d: %+v, its inner product %g", name, i, j, h, s)
			}
		}
	}
}

// TestCompressedStorage: FP16 and INT8 lists find what FP32 lists find
// (the re-ranking with the exact rows recovers the codes' error), return
// exact scores, filter, add, compact, save and load, and take the memory
// they promise.
func TestCompressedStorage(t *testing.T) {
	rows, qs, _ := testData(t)
	b := cpu.New(0)
	exact, err := retrieval.Search(b, qs, testQ, rows, testN, testD, 10, retrieval.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := Build(b, rows, testN, testD, Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := base.NProbe(DefaultRecall)
	want, _ := base.Search(b, qs, testQ, 10, SearchOptions{})
	baseRec := recallAt(want, exact, 10)
	for _, st := range []Storage{FP16, INT8} {
		t.Run(string(st), func(t *testing.T) {
			ix, err := Build(b, rows, testN, testD, Config{Storage: st})
			if err != nil {
				t.Fatal(err)
			}
			if ix.Storage() != st || !slices.Equal(ix.ListSizes(), base.ListSizes()) || ix.NProbe(DefaultRecall) != p {
				t.Fatalf("storage %s, lists %v… (FP32 %v…), nprobe %d (FP32 %d)", ix.Storage(), ix.ListSizes()[:5], base.ListSizes()[:5], ix.NProbe(DefaultRecall), p)
			}
			// Memory: the codes, not the rows.
			ratio := float64(ix.Bytes()) / float64(base.Bytes())
			wantRatio := float64(st.RowBytes(testD)) / float64(FP32.RowBytes(testD))
			t.Logf("memory %d bytes, %.3f of FP32's (rows alone: %.3f)", ix.Bytes(), ratio, wantRatio)
			if ratio > wantRatio+0.05 {
				t.Errorf("memory %.3f of FP32's, want about %.3f", ratio, wantRatio)
			}
			if _, err := ix.Search(b, qs, testQ, 10, SearchOptions{}); err == nil || !strings.Contains(err.Error(), "re-rank") {
				t.Errorf("a search without the exact rows: %v", err)
			}
			if _, err := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows[:testD]}); err == nil {
				t.Error("a search with too few exact rows accepted")
			}
			if _, err := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows, Refine: -1}); err == nil {
				t.Error("refine −1 accepted")
			}

			got, err := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows})
			if err != nil {
				t.Fatal(err)
			}
			rec := recallAt(got, exact, 10)
			t.Logf("default nprobe %d: recall@10 %.4f (FP32 lists %.4f)", p, rec, baseRec)
			if rec < baseRec-0.01 || rec < recallFloor {
				t.Errorf("recall@10 %.4f, FP32 lists %.4f", rec, baseRec)
			}
			checkExactScores(t, "default", got, qs, rows)
			// Every list: the codes' error alone, which the re-ranking
			// hides (with 4k candidates, and here even with k).
			all, _ := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows, NProbe: ix.Lists()})
			one, _ := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows, NProbe: ix.Lists(), Refine: 1})
			rAll, rOne := recallAt(all, exact, 10), recallAt(one, exact, 10)
			t.Logf("every list: recall@10 %.4f re-ranking 40 candidates, %.4f re-ranking 10", rAll, rOne)
			if rAll < 0.995 || rOne > rAll {
				t.Errorf("every list: recall@10 %.4f (refine 4), %.4f (refine 1)", rAll, rOne)
			}
			// Exact is exact search of the rows.
			ex, err := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows, Exact: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := range ex {
				if !slices.Equal(ex[i], exact[i]) {
					t.Fatalf("exact: query %d: %v, want %v", i, ex[i], exact[i])
				}
			}
			// A filter keeps its recall.
			r := rand.New(rand.NewPCG(3, 3))
			allow := retrieval.NewBitset(testN)
			for i := 0; i < testN; i++ {
				if r.Float64() < 0.2 {
					allow.Set(i)
				}
			}
			fexact, _ := retrieval.Search(b, qs, testQ, rows, testN, testD, 10, retrieval.SearchOptions{Allow: allow})
			fgot, err := ix.Search(b, qs, testQ, 10, SearchOptions{Rows: rows, Allow: allow})
			if err != nil {
				t.Fatal(err)
			}
			for i, hs := range fgot {
				for _, h := range hs {
					if !allow.Has(h.Row) {
						t.Fatalf("query %d: row %d is not allowed", i, h.Row)
					}
				}
			}
			if fr := recallAt(fgot, fexact, 10); fr < recallFloor {
				t.Errorf("filtered: recall@10 %.4f", fr)
			}

			// Save and load: the same codes, the same results.
			path := filepath.Join(t.TempDir(), "g.ivf")
			if err := ix.Save(path, nil); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := f.Get("vectors"); v.DType != storageDType[st] || f.Metadata["storage"] != string(st) {
				t.Errorf("file: vectors %s, storage %q", v.DType, f.Metadata["storage"])
			}
			back, _, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if back.Storage() != st || back.Bytes() != ix.Bytes() {
				t.Errorf("loaded: storage %s, %d bytes (saved %d)", back.Storage(), back.Bytes(), ix.Bytes())
			}
			again, err := back.Search(b, qs, testQ, 10, SearchOptions{Rows: rows})
			if err != nil {
				t.Fatal(err)
			}
			for i := range again {
				if !slices.Equal(again[i], got[i]) {
					t.Fatalf("loaded: query %d: %v, before %v", i, again[i], got[i])
				}
			}

			// Add to a half-built index; then compact away 30%.
			half := testN / 2
			grown, err := Build(b, rows[:half*testD], half, testD, Config{Storage: st})
			if err != nil {
				t.Fatal(err)
			}
			snap := grown.Snapshot()
			for r0 := half; r0 < testN; r0 += 1000 {
				if err := grown.Add(b, rows[r0*testD:(r0+1000)*testD], 1000); err != nil {
					t.Fatal(err)
				}
			}
			if snap.Len() != half {
				t.Fatalf("snapshot grew to %d rows", snap.Len())
			}
			gg, err := grown.Search(b, qs, testQ, 10, SearchOptions{Rows: rows})
			if err != nil {
				t.Fatal(err)
			}
			if gr := recallAt(gg, exact, 10); gr < recallFloor {
				t.Errorf("after adds: recall@10 %.4f", gr)
			}
			keep := retrieval.NewBitset(testN)
			var kept []float32
			for i := 0; i < testN; i++ {
				if r.Float64() < 0.7 {
					keep.Set(i)
					kept = append(kept, rows[i*testD:(i+1)*testD]...)
				}
			}
			c, err := grown.Compact(keep)
			if err != nil {
				t.Fatal(err)
			}
			m := keep.Count()
			kexact, _ := retrieval.Search(b, qs, testQ, kept, m, testD, 10, retrieval.SearchOptions{})
			cg, err := c.Search(b, qs, testQ, 10, SearchOptions{Rows: kept})
			if err != nil {
				t.Fatal(err)
			}
			if cr := recallAt(cg, kexact, 10); cr < recallFloor {
				t.Errorf("compacted: recall@10 %.4f", cr)
			}
			checkExactScores(t, "compacted", cg, qs, kept)
		})
	}
	if _, err := Build(b, rows, testN, testD, Config{Storage: "fp8"}); err == nil {
		t.Error("storage fp8 accepted")
	}
	if _, err := ParseStorage("int4"); err == nil {
		t.Error("ParseStorage(int4) accepted")
	}
}

// TestStorageFileErrors: an int8 file without its scales, or of an
// unknown storage, is refused with the file's name.
func TestStorageFileErrors(t *testing.T) {
	rows, _, _ := testData(t)
	b := cpu.New(0)
	ix, err := Build(b, rows[:2000*testD], 2000, testD, Config{Storage: INT8, CalibrationQueries: -1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "g.ivf")
	if err := ix.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(name string, drop string, md map[string]string) string {
		var ts []safetensors.Tensor
		for _, n := range f.Names() {
			if n != drop {
				x, _ := f.Get(n)
				ts = append(ts, x)
			}
		}
		p := filepath.Join(dir, name)
		if err := safetensors.WriteFile(p, ts, md); err != nil {
			t.Fatal(err)
		}
		return p
	}
	md := map[string]string{}
	for k, v := range f.Metadata {
		md[k] = v
	}
	noScales := rewrite("noscales.ivf", "scales", md)
	md["storage"] = "int4"
	unknown := rewrite("int4.ivf", "", md)
	md["storage"] = "fp16"
	mismatch := rewrite("mismatch.ivf", "", md)
	for _, p := range []string{noScales, unknown, mismatch} {
		if _, _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", filepath.Base(p), err)
		}
	}
}
