package fmnist

import (
	"testing"
	"time"
)

// realArchive returns the path of the fetched archive, looked up from the
// repository root (DMLGO_DATA or .cache/data), or skips the test.
func realArchive(tb testing.TB) string {
	tb.Helper()
	p := realArchivePath()
	if p == "" {
		tb.Skip("the real archive is not fetched (run make data)")
	}
	return p
}

// TestRealArchive checks the loader against the real npm package when it
// has been fetched: 70,000 images, two empty rows of category 0 skipped,
// the pinned integrity.
func TestRealArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 155 MB of JSON")
	}
	p := realArchive(t)
	start := time.Now()
	src, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read %s in %v", p, time.Since(start))
	if src.Len() != 70000 {
		t.Errorf("%d images, want 70000", src.Len())
	}
	if src.Skipped != [NumCategories]int{2} {
		t.Errorf("skipped %v, want 2 in category 0", src.Skipped)
	}
	if src.Integrity != Integrity {
		t.Errorf("integrity %s", src.Integrity)
	}
	t.Log(src.SkippedRows)
	train, test := src.Split()
	for c := range train {
		if len(train[c]) != 6000 || len(test[c]) != 1000 {
			t.Errorf("category %d: %d train %d test", c, len(train[c]), len(test[c]))
		}
	}
}
