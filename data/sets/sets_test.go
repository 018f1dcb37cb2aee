package sets

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data"
)

const (
	synthetic = "../testdata/fmnist/fashion-mnist-synthetic.tgz"
	c2sRoot   = "../testdata/deepfashion/consumer2shop"
	inShop    = "../testdata/deepfashion/inshop"
	tsvFile   = "../testdata/manifest/example.tsv"
)

func parseSpec(t *testing.T, args ...string) Spec {
	t.Helper()
	s := DefaultSpec()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	s.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFMNISTSpec(t *testing.T) {
	s := parseSpec(t, "-data-path", synthetic, "-preset", "tiny", "-train-items", "50", "-test-items", "30", "-shift", "strong", "-data-seed", "9", "-test-views", "2")
	cfg, err := s.FMNISTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrainItems != 50 || cfg.TestItems != 30 || cfg.TrainViews != 2 || cfg.TestViews != 2 || cfg.Seed != 9 || cfg.Shift.Name != "strong" {
		t.Errorf("config %+v", cfg)
	}
	var log bytes.Buffer
	set, err := Open(s, &log)
	if err != nil {
		t.Fatal(err)
	}
	ds := set.Dataset
	if len(ds.Classes) != 50 || ds.Train.Len() != 150 || ds.Query.Len() != 60 || ds.Gallery.Len() != 30 {
		t.Errorf("classes %d train %d queries %d gallery %d", len(ds.Classes), ds.Train.Len(), ds.Query.Len(), ds.Gallery.Len())
	}
	if set.Transform.Size != 32 || set.Transform.Channels != 1 || set.Augment == nil {
		t.Errorf("transform %+v", set.Transform)
	}
	if !strings.Contains(log.String(), "2 invalid source row skipped") || !strings.Contains(set.Description, "shift=strong") {
		t.Errorf("log:\n%s\ndescription %q", log.String(), set.Description)
	}
	for _, bad := range [][]string{{"-preset", "huge"}, {"-shift", "wild"}} {
		if _, err := Open(parseSpec(t, append([]string{"-data-path", synthetic}, bad...)...), nil); err == nil || !strings.HasPrefix(err.Error(), bad[0]) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if _, err := Open(parseSpec(t, "-data-path", synthetic, "-train-items", "1000"), nil); err == nil || !strings.Contains(err.Error(), "train-items 1000") {
		t.Errorf("too many train items: %v", err)
	}
}

func TestFileSets(t *testing.T) {
	cases := []struct {
		args                   []string
		classes, query, galery int
	}{
		{[]string{"-data", "deepfashion-c2s", "-data-path", c2sRoot}, 3, 4, 4},
		{[]string{"-data", "deepfashion-c2s", "-data-path", c2sRoot, "-gallery-val", "-check", "decode"}, 3, 3, 5},
		{[]string{"-data", "deepfashion-inshop", "-data-path", inShop}, 2, 2, 3},
		{[]string{"-data", "tsv", "-data-path", tsvFile}, 2, 2, 2},
	}
	for _, c := range cases {
		set, err := Open(parseSpec(t, c.args...), io.Discard)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		ds := set.Dataset
		if len(ds.Classes) != c.classes || ds.Query.Len() != c.query || ds.Gallery.Len() != c.galery {
			t.Errorf("%v: classes %d queries %d gallery %d\n%s", c.args, len(ds.Classes), ds.Query.Len(), ds.Gallery.Len(), ds.Warnings)
		}
		if set.Transform.Size != 224 || set.Transform.Margin != 0.1 {
			t.Errorf("%v: transform %+v", c.args, set.Transform)
		}
	}
	// The TSV example: the missing shop image of grey-dress is skipped and
	// its query excluded; the clamped box is counted.
	set, _ := Open(parseSpec(t, "-data", "tsv", "-data-path", tsvFile), io.Discard)
	w := set.Dataset.Warnings
	if w.Count(data.WarnMissingImage) != 1 || w.Count(data.WarnQueryExcluded) != 1 || w.Count(data.WarnBoxClamped) != 1 {
		t.Errorf("tsv warnings:\n%s", w)
	}
	if _, err := Open(parseSpec(t, "-data", "tsv", "-data-path", tsvFile, "-strict"), io.Discard); err == nil || !strings.Contains(err.Error(), "id_00000007/shop_01.jpg") {
		t.Errorf("strict: %v", err)
	}
	for _, bad := range [][]string{{"-data", "mnist"}, {"-data", "tsv"}, {"-data", "deepfashion-c2s"}, {"-data", "tsv", "-data-path", tsvFile, "-check", "all"}} {
		if _, err := Open(parseSpec(t, bad...), nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
