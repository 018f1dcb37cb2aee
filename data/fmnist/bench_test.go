package fmnist

import (
	"os"
	"path/filepath"
	"testing"
)

// benchSource returns the real Fashion-MNIST when it has been fetched, else
// a synthetic source of the same size (70,000 images), and its name.
func benchSource(b *testing.B) (*Source, string) {
	b.Helper()
	if p := realArchivePath(); p != "" {
		src, err := Load(p)
		if err != nil {
			b.Fatal(err)
		}
		return src, "real"
	}
	src := &Source{Pixels: make([]uint8, 0, 70000*Pixels), Origin: "synthetic"}
	for c := 0; c < NumCategories; c++ {
		for i := 0; i < 7000; i++ {
			src.Pixels = append(src.Pixels, synthImage(c, i%500)...)
			src.Categories = append(src.Categories, uint8(c))
		}
	}
	return src, "synthetic"
}

// realArchivePath returns the fetched archive's path, or "": $DMLGO_DATA
// (a relative value, as the Makefile exports, is taken from the repository
// root) or the repository's .cache/data.
func realArchivePath() string {
	root := filepath.Join("..", "..")
	var dirs []string
	if d := os.Getenv("DMLGO_DATA"); d != "" {
		dirs = append(dirs, d)
		if !filepath.IsAbs(d) {
			dirs = append(dirs, filepath.Join(root, d))
		}
	} else {
		dirs = append(dirs, filepath.Join(root, ".cache", "data"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, FileName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// BenchmarkBuildQuick renders the quick preset (3,000 train items x 3
// views, 10,000 test items x 2 views = 29,000 views) with GOMAXPROCS
// workers.
func BenchmarkBuildQuick(b *testing.B) {
	src, kind := benchSource(b)
	cfg, _ := Preset("quick")
	b.ResetTimer()
	views := 0
	for b.Loop() {
		bm, err := Build(src, cfg)
		if err != nil {
			b.Fatal(err)
		}
		views = len(bm.Manifest.Rows)
	}
	b.ReportMetric(float64(views*b.N)/b.Elapsed().Seconds(), "views/s")
	b.Logf("%s source, %d views per build", kind, views)
}

// BenchmarkConsumerView renders one moderate consumer view (one goroutine).
func BenchmarkConsumerView(b *testing.B) {
	img := synthImage(3, 1)
	sh, _ := ShiftLevel("moderate")
	dst := make([]uint8, ViewPixels)
	i := int64(0)
	for b.Loop() {
		ConsumerView(dst, img, &sh, 1, i, 1)
		i++
	}
}

// BenchmarkReadNPM reads the real archive (gzip, tar, streaming JSON).
func BenchmarkReadNPM(b *testing.B) {
	p := realArchivePath()
	if p == "" {
		b.Skip("the real archive is not fetched (make data)")
	}
	for b.Loop() {
		if _, err := Load(p); err != nil {
			b.Fatal(err)
		}
	}
}
