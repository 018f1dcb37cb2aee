package safetensors_test

import (
	"bytes"
	"fmt"

	"github.com/dmlgo/dmlgo/safetensors"
)

func Example() {
	var buf bytes.Buffer
	err := safetensors.Write(&buf, []safetensors.Tensor{
		safetensors.FromFloat32("fc.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		safetensors.FromInt64("bn1.num_batches_tracked", nil, []int64{100}),
	}, map[string]string{"format": "pt"})
	if err != nil {
		panic(err)
	}

	f, err := safetensors.Read(buf.Bytes())
	if err != nil {
		panic(err)
	}
	w, _ := f.Get("fc.weight")
	v, _ := w.Float32()
	fmt.Println(f.Names(), f.Metadata["format"])
	fmt.Println(w.DType, w.Shape, v)
	// Output:
	// [fc.weight bn1.num_batches_tracked] pt
	// F32 [2 3] [1 2 3 4 5 6]
}
