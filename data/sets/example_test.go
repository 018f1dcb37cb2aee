package sets_test

import (
	"fmt"
	"io"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/sets"
)

// A training tool's use of the data layer: open the benchmark (here the
// small synthetic archive the tests carry), draw P x K batches that mix the
// two domains, checkpoint the loader state and resume from it.
func Example() {
	spec := sets.DefaultSpec()
	spec.Path = "../testdata/fmnist/fashion-mnist-synthetic.tgz"
	spec.TrainItems, spec.TestItems = 40, 20
	set, err := sets.Open(spec, nil)
	if err != nil {
		panic(err)
	}
	ds := set.Dataset
	fmt.Println(set.Description)
	fmt.Printf("classes %d, train images %d, queries %d, gallery %d\n", len(ds.Classes), ds.Train.Len(), ds.Query.Len(), ds.Gallery.Len())

	pk, err := data.NewPKSampler(ds.Train, 8, 2) // 8 items x 2 images
	if err != nil {
		panic(err)
	}
	tf := set.Transform.Training(set.Augment)
	ld, err := data.NewLoader(ds.Train, pk, tf, data.SamplerState{Seed: 7}, data.LoaderOptions{Epochs: 2})
	if err != nil {
		panic(err)
	}
	defer ld.Close()
	b, _ := ld.Next()
	fmt.Println("batch", b.Shape, "labels", b.Labels[:4], "domains", b.Domains[:4])
	state := ld.State() // store in the checkpoint
	fmt.Println("state", state)

	// Evaluation: queries in order, no augmentation.
	q, _ := data.NewLoader(ds.Query, data.SequentialSampler{N: ds.Query.Len(), BatchSize: 16}, set.Transform, data.SamplerState{}, data.LoaderOptions{Epochs: 1})
	defer q.Close()
	n := 0
	for {
		b, err := q.Next()
		if err == io.EOF {
			break
		}
		n += b.Shape[0]
	}
	fmt.Println("query images embedded:", n)
	// Output:
	// fmnist-c2s shift=moderate train=40 items x (1 shop + 2 consumer) test=20 items x (1 shop + 1 consumer) seed=1
	// classes 40, train images 120, queries 20, gallery 20
	// batch [16 1 32 32] labels [11 11 35 35] domains [consumer shop consumer shop]
	// state seed=7 epoch=0 batch=1
	// query images embedded: 20
}
