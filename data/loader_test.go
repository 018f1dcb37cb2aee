package data

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// memSet returns a labelled training subset of n in-memory 32 x 32 grey
// images over n/per items, alternating shop and consumer rows.
func memSet(n, per int) *Subset {
	m := &Manifest{Name: "mem"}
	for i := 0; i < n; i++ {
		g := image.NewGray(image.Rect(0, 0, 32, 32))
		for j := range g.Pix {
			g.Pix[j] = uint8(i*7 + j)
		}
		m.Rows = append(m.Rows, Row{Image: g, Item: int64(i / per), Domain: Domain(i % 2), Split: Train, Category: NoCategory})
	}
	// Ensure a test row so NewDataset is happy.
	m.Rows = append(m.Rows, Row{Image: image.NewGray(image.Rect(0, 0, 32, 32)), Item: 0, Domain: Consumer, Split: Test},
		Row{Image: image.NewGray(image.Rect(0, 0, 32, 32)), Item: 0, Domain: Shop, Split: Test})
	ds, err := NewDataset(m, ProtocolOptions{})
	if err != nil {
		panic(err)
	}
	return ds.Train
}

func TestSequentialAndShuffle(t *testing.T) {
	plan := SequentialSampler{N: 10, BatchSize: 4}.Plan(1, 0)
	if len(plan) != 3 || !slices.Equal(plan[2], []int{8, 9}) {
		t.Errorf("sequential %v", plan)
	}
	s := ShuffleSampler{N: 10, BatchSize: 4}
	a, b, c := s.Plan(7, 0), s.Plan(7, 0), s.Plan(7, 1)
	if len(a) != 3 || !slices.EqualFunc(a, b, slices.Equal[[]int]) {
		t.Error("shuffle plan not deterministic")
	}
	if slices.EqualFunc(a, c, slices.Equal[[]int]) {
		t.Error("epochs 0 and 1 have the same order")
	}
	var all []int
	for _, bt := range a {
		all = append(all, bt...)
	}
	slices.Sort(all)
	if !slices.Equal(all, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("shuffle is not a permutation: %v", all)
	}
	if p := (ShuffleSampler{N: 10, BatchSize: 4, DropLast: true}).Plan(7, 0); len(p) != 2 {
		t.Errorf("drop last: %d batches", len(p))
	}
}

func TestPKSampler(t *testing.T) {
	set := memSet(60, 3) // 20 classes, 3 images each, domains alternate
	pk, err := NewPKSampler(set, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	plan := pk.Plan(3, 0)
	if len(plan) != 5 {
		t.Fatalf("%d batches, want 20/4 = 5", len(plan))
	}
	seen := map[int32]bool{}
	for _, b := range plan {
		if len(b) != 8 {
			t.Fatalf("batch of %d, want 8", len(b))
		}
		for j := 0; j < 8; j += 2 {
			l0, l1 := set.Labels[b[j]], set.Labels[b[j+1]]
			if l0 != l1 {
				t.Fatalf("pair %d has classes %d and %d", j, l0, l1)
			}
			if seen[l0] {
				t.Fatalf("class %d twice in an epoch", l0)
			}
			seen[l0] = true
			// Every class here has both domains: the pair mixes them.
			if set.Row(b[j]).Domain == set.Row(b[j+1]).Domain {
				t.Errorf("class %d: both images from %s", l0, set.Row(b[j]).Domain)
			}
		}
	}
	// K larger than a class: images repeat, batch stays P x K.
	pk5, _ := NewPKSampler(set, 2, 5)
	for _, b := range pk5.Plan(1, 2) {
		if len(b) != 10 {
			t.Fatalf("K=5 batch of %d", len(b))
		}
	}
	if _, err := NewPKSampler(set, 30, 2); err == nil {
		t.Error("P larger than the number of classes accepted")
	}
	if _, err := NewPKSampler(&Subset{Manifest: set.Manifest, Rows: set.Rows}, 2, 2); err == nil {
		t.Error("unlabelled subset accepted")
	}
}

// collect runs a loader to the end (or n batches) and returns copies of
// every batch's images and labels.
func collect(t *testing.T, ld *Loader, n int) (imgs [][]float32, labels [][]int32, states []SamplerState) {
	t.Helper()
	for n < 0 || len(imgs) < n {
		b, err := ld.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, slices.Clone(b.Images))
		labels = append(labels, slices.Clone(b.Labels))
		states = append(states, ld.State())
	}
	return
}

func TestLoaderMatchesTransform(t *testing.T) {
	set := memSet(10, 2)
	tf := GreyTransform(32)
	ld, err := NewLoader(set, SequentialSampler{N: set.Len(), BatchSize: 4}, tf, SamplerState{}, LoaderOptions{Epochs: 1, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	i := 0
	for {
		b, err := ld.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Shape != [4]int{len(b.Index), 1, 32, 32} {
			t.Fatalf("shape %v", b.Shape)
		}
		for j := range b.Index {
			want := tf.Image(set.Row(i).Image, image.Rectangle{})
			if !slices.Equal(b.Images[j*1024:(j+1)*1024], want) {
				t.Fatalf("element %d differs from Transform.Image", i)
			}
			if b.Labels[j] != set.Labels[i] || b.Items[j] != set.Row(i).Item || b.Domains[j] != set.Row(i).Domain {
				t.Fatalf("element %d: label %d item %d", i, b.Labels[j], b.Items[j])
			}
			i++
		}
	}
	if i != set.Len() {
		t.Errorf("delivered %d of %d", i, set.Len())
	}
	if st := ld.State(); st.Epoch != 1 || st.Batch != 0 {
		t.Errorf("state after the epoch: %v", st)
	}
	if _, err := ld.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
}

// TestLoaderDeterministicResume: the same seed gives the same batches for
// any number of workers, and a loader started from a saved state (through
// JSON) continues exactly, across an epoch boundary.
func TestLoaderDeterministicResume(t *testing.T) {
	set := memSet(40, 2)
	tf := GreyTransform(32).Training(&Augment{Scale: [2]float64{0.5, 1}, Flip: 0.5, Brightness: 0.3, Contrast: 0.3})
	sampler := ShuffleSampler{N: set.Len(), BatchSize: 6}
	start := SamplerState{Seed: 99}
	opts := LoaderOptions{Epochs: 3, Workers: 1, Prefetch: 1}
	ld, err := NewLoader(set, sampler, tf, start, opts)
	if err != nil {
		t.Fatal(err)
	}
	ref, refLabels, states := collect(t, ld, -1)
	ld.Close()
	if len(ref) != 3*7 || ld.BatchesPerEpoch() != 7 {
		t.Fatalf("%d batches, want 21; %d per epoch", len(ref), ld.BatchesPerEpoch())
	}
	opts.Workers, opts.Prefetch = 4, 8
	ld2, _ := NewLoader(set, sampler, tf, start, opts)
	got, _, _ := collect(t, ld2, -1)
	ld2.Close()
	for i := range ref {
		if !slices.Equal(ref[i], got[i]) {
			t.Fatalf("batch %d differs with 4 workers", i)
		}
	}
	if slices.Equal(ref[0], ref[7]) {
		t.Error("epochs 0 and 1 start with the same batch")
	}
	for _, cut := range []int{3, 6, 7, 15} { // 6: the last batch of epoch 0
		js, _ := json.Marshal(states[cut-1])
		var st SamplerState
		if err := json.Unmarshal(js, &st); err != nil {
			t.Fatal(err)
		}
		ld3, err := NewLoader(set, sampler, tf, st, LoaderOptions{Epochs: 3, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		rest, restLabels, _ := collect(t, ld3, -1)
		ld3.Close()
		if len(rest) != len(ref)-cut {
			t.Fatalf("resumed at %s: %d batches, want %d", st, len(rest), len(ref)-cut)
		}
		for i := range rest {
			if !slices.Equal(rest[i], ref[cut+i]) || !slices.Equal(restLabels[i], refLabels[cut+i]) {
				t.Fatalf("resumed at %s: batch %d differs", st, i)
			}
		}
	}
	// A state at the very end of an epoch (Batch = number of batches) is
	// the start of the next one.
	ld4, err := NewLoader(set, sampler, tf, SamplerState{Seed: 99, Epoch: 0, Batch: 7}, opts)
	if err != nil {
		t.Fatal(err)
	}
	rest, _, _ := collect(t, ld4, 1)
	ld4.Close()
	if !slices.Equal(rest[0], ref[7]) {
		t.Error("a state at the end of epoch 0 does not resume at the start of epoch 1")
	}
	if _, err := NewLoader(set, sampler, tf, SamplerState{Seed: 99, Batch: 8}, opts); err == nil {
		t.Error("state past the end of the epoch accepted")
	}
}

func TestLoaderBadImages(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	jpeg.Encode(&buf, image.NewUniform(color.White), nil)
	img := image.NewRGBA(image.Rect(0, 0, 20, 20))
	buf.Reset()
	jpeg.Encode(&buf, img, nil)
	os.WriteFile(filepath.Join(dir, "ok.jpg"), buf.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.jpg"), []byte("garbage"), 0o644)
	m := &Manifest{Name: "files", Root: dir, Rows: []Row{
		{Path: "ok.jpg", Item: 1, Split: Train},
		{Path: "bad.jpg", Item: 1, Split: Train, Domain: Consumer},
		{Path: "gone.jpg", Item: 2, Split: Train},
		{Path: "ok.jpg", Item: 2, Split: Train, Box: image.Rect(10, 10, 50, 50)},
	}}
	set := &Subset{Manifest: m, Rows: []int{0, 1, 2, 3}}
	tf := RGBTransform(8)
	ld, err := NewLoader(set, SequentialSampler{N: 4, BatchSize: 4}, tf, SamplerState{}, LoaderOptions{Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ld.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b.Failed != 2 || b.Labels[0] != -1 {
		t.Errorf("failed %d labels %v", b.Failed, b.Labels)
	}
	w := ld.Warnings()
	if w.Count(WarnCorruptImage) != 1 || w.Count(WarnMissingImage) != 1 || w.Count(WarnBoxClamped) != 1 {
		t.Errorf("warnings: %s", w)
	}
	for _, v := range b.Images[192:384] {
		if v != 0 {
			t.Fatal("a failed image is not zero-filled")
		}
	}
	ld.Close()
	ld, _ = NewLoader(set, SequentialSampler{N: 4, BatchSize: 4}, tf, SamplerState{}, LoaderOptions{Epochs: 1, Strict: true})
	defer ld.Close()
	if _, err := ld.Next(); err == nil || !strings.Contains(err.Error(), "bad.jpg") {
		t.Errorf("strict: %v", err)
	}
	if _, err := ld.Next(); err == nil {
		t.Error("the error is not sticky")
	}
}

// TestLoaderClose: closing a loader that runs forever, mid-epoch, returns
// promptly and leaves no goroutines behind.
func TestLoaderClose(t *testing.T) {
	before := runtime.NumGoroutine()
	set := memSet(64, 2)
	ld, err := NewLoader(set, ShuffleSampler{N: set.Len(), BatchSize: 8}, GreyTransform(32), SamplerState{Seed: 1}, LoaderOptions{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ { // runs past the end of the first epochs
		if _, err := ld.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if st := ld.State(); st.Epoch != 2 || st.Batch != 4 {
		t.Errorf("state after 20 batches of 8 per epoch: %v", st)
	}
	done := make(chan struct{})
	go func() { ld.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if _, err := ld.Next(); err == nil {
		t.Error("Next after Close succeeded")
	}
	// Goroutines of other tests may still be ending: wait (bounded) for
	// the count to come back, so that only a leak fails.
	after := runtime.NumGoroutine()
	for i := 0; after > before && i < 200; i++ {
		time.Sleep(10 * time.Millisecond)
		after = runtime.NumGoroutine()
	}
	if after > before {
		t.Errorf("%d goroutines before, %d after Close", before, after)
	}
}

func TestCheckInMemory(t *testing.T) {
	m := &Manifest{Rows: []Row{
		{Image: image.NewGray(image.Rect(0, 0, 10, 10)), Box: image.Rect(5, 5, 20, 20)},
		{Image: image.NewGray(image.Rect(0, 0, 10, 10)), Box: image.Rect(50, 50, 60, 60)},
	}}
	out, err := m.Check(CheckOptions{Mode: CheckExists})
	if err != nil {
		t.Fatal(err)
	}
	if out.Rows[0].Box != image.Rect(5, 5, 10, 10) || out.Rows[1].Box != (image.Rectangle{}) {
		t.Errorf("boxes %v %v", out.Rows[0].Box, out.Rows[1].Box)
	}
	if m.Rows[0].Box != image.Rect(5, 5, 20, 20) {
		t.Error("Check modified its input")
	}
	if out.Warnings.Count(WarnBoxClamped) != 1 || out.Warnings.Count(WarnBoxEmpty) != 1 {
		t.Errorf("warnings %s", out.Warnings)
	}
	for _, s := range []string{"none", "exists", "header", "decode"} {
		if c, err := ParseCheckMode(s); err != nil || c.String() != s {
			t.Errorf("ParseCheckMode(%s)", s)
		}
	}
}

func TestDatasetErrors(t *testing.T) {
	row := func(item int64, d Domain, s Split) Row { return Row{Path: "x.jpg", Item: item, Domain: d, Split: s} }
	cases := []struct {
		rows []Row
		opts ProtocolOptions
		want string
	}{
		{[]Row{row(1, Shop, Test), row(1, Consumer, Test)}, ProtocolOptions{}, "the train split is empty"},
		{[]Row{row(1, Shop, Train), row(1, Consumer, Test)}, ProtocolOptions{}, "the gallery is empty"},
		{[]Row{row(1, Shop, Train), row(1, Shop, Test), row(1, Shop, Val)}, ProtocolOptions{}, "there are no queries"},
		{[]Row{row(1, Shop, Train), row(1, Shop, Test), row(2, Consumer, Test)}, ProtocolOptions{}, "no query has its item in the gallery"},
		{[]Row{row(1, Shop, Train), row(1, Shop, Test), row(2, Consumer, Test), row(1, Consumer, Test)}, ProtocolOptions{Strict: true}, "1 queries have no image of their item in the gallery, e.g. item 2"},
	}
	for _, c := range cases {
		_, err := NewDataset(&Manifest{Name: "m", Rows: c.rows}, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.rows, err, c.want)
		}
	}
	// Eval only, In-Shop style, classes sorted by item id.
	ds, err := NewDataset(&Manifest{Name: "m", Rows: []Row{row(9, Shop, Train), row(3, Shop, Train), row(5, Shop, Query), row(5, Shop, Gallery), row(6, Shop, Gallery)}}, ProtocolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.Classes, []int64{3, 9}) || !slices.Equal(ds.Train.Labels, []int32{1, 0}) || ds.Gallery.Len() != 2 {
		t.Errorf("classes %v labels %v gallery %d", ds.Classes, ds.Train.Labels, ds.Gallery.Len())
	}
	if !strings.Contains(ds.Summary(), "train 2 images of 2 items; 1 queries; gallery 2 images of 2 items") {
		t.Errorf("summary %q", ds.Summary())
	}
}
