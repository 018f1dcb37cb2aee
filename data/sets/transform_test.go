package sets_test

import (
	"path/filepath"
	"testing"

	"github.com/dmlgo/dmlgo/data/sets"
)

// TestTransformMatchesOpen: the transform a model trained on a kind
// expects (Transform) is the one Open gives the data set, for every kind.
func TestTransformMatchesOpen(t *testing.T) {
	root := filepath.Join("..", "testdata")
	for kind, path := range map[string]string{
		sets.FMNISTC2S:         filepath.Join(root, "fmnist", "fashion-mnist-synthetic.tgz"),
		sets.DeepFashionC2S:    filepath.Join(root, "deepfashion", "consumer2shop"),
		sets.DeepFashionInShop: filepath.Join(root, "deepfashion", "inshop"),
		sets.TSV:               filepath.Join(root, "manifest", "example.tsv"),
	} {
		spec := sets.DefaultSpec()
		spec.Kind, spec.Path = kind, path
		if kind == sets.FMNISTC2S {
			spec.TrainItems, spec.TestItems = 10, 10
		}
		set, err := sets.Open(spec, nil)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		got, err := sets.Transform(kind)
		if err != nil {
			t.Fatal(err)
		}
		want := set.Transform
		want.Augment = nil
		if got != want {
			t.Errorf("%s: Transform %+v, sets.Open %+v", kind, got, want)
		}
	}
	if _, err := sets.Transform("imagenet"); err == nil {
		t.Error("unknown kind accepted")
	}
}
