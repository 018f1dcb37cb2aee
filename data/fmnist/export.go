package fmnist

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dmlgo/dmlgo/data"
	"github.com/dmlgo/dmlgo/data/npy"
)

// ExportManifest is the JSON file that Export writes beside the arrays.
type ExportManifest struct {
	Format      string            `json:"format"`
	Description string            `json:"description"`
	Config      Config            `json:"config"`
	Rows        int               `json:"rows"`
	Arrays      map[string]Array  `json:"arrays"`
	Codes       map[string]any    `json:"codes"`
	Protocol    map[string]string `json:"protocol"`
	Source      map[string]any    `json:"source"`
}

// Array describes one exported .npy file.
type Array struct {
	File  string `json:"file"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	About string `json:"about"`
}

// Export writes the benchmark to dir as .npy arrays plus manifest.json:
//
//	images.npy      uint8 (R, 32, 32)  every view; 0 = black
//	item_ids.npy    int64 (R)          item id (source image index)
//	labels.npy      int64 (R)          training class 0..TrainItems-1, -1 for test rows
//	domains.npy     uint8 (R)          0 = shop, 1 = consumer
//	splits.npy      uint8 (R)          0 = train, 2 = test (data.Split codes)
//	categories.npy  uint8 (R)          clothes type 0..9
//	views.npy       int16 (R)          0 = shop view, k = consumer view k
//
// R = rows, in the manifest's order. The JSON names each file's dtype and
// shape, the codes, the protocol and the config that generated the data.
func Export(b *Benchmark, dir string) (*ExportManifest, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fmnist: export: %w", err)
	}
	ds, err := data.NewDataset(b.Manifest, data.ProtocolOptions{AllowNoTrain: true})
	if err != nil {
		return nil, err
	}
	numRows := len(b.Manifest.Rows)
	items := make([]int64, numRows)
	labels := make([]int64, numRows)
	domains := make([]uint8, numRows)
	splits := make([]uint8, numRows)
	cats := make([]uint8, numRows)
	for i := range labels {
		labels[i] = -1
	}
	for i, r := range b.Manifest.Rows {
		items[i] = r.Item
		domains[i] = uint8(r.Domain)
		splits[i] = uint8(r.Split)
		cats[i] = uint8(r.Category)
	}
	for i, row := range ds.Train.Rows {
		labels[row] = int64(ds.Train.Labels[i])
	}
	em := &ExportManifest{
		Format:      "dmlgo fmnist-c2s export v1",
		Description: b.Config.String(),
		Config:      b.Config,
		Rows:        numRows,
		Arrays:      map[string]Array{},
		Codes: map[string]any{
			"domain":   map[string]string{"0": "shop", "1": "consumer"},
			"split":    map[string]string{"0": "train", "2": "test"},
			"category": CategoryNames,
			"view":     "0 = shop view, k >= 1 = consumer view k",
		},
		Protocol: map[string]string{
			"train":   "rows with split == 0 (shop and consumer); class = labels",
			"query":   "rows with split == 2 and domain == 1 (consumer views of test items)",
			"gallery": "rows with split == 2 and domain == 0 (shop views of test items)",
			"metric":  "top-k accuracy: a query is correct when its item_id is among the k nearest gallery rows; k = 1, 5, 10, 20, 30, 40, 50; plus mAP",
		},
		Source: map[string]any{
			"origin":          b.Source.Origin,
			"integrity":       b.Source.Integrity,
			"images":          b.Source.Len(),
			"skipped_rows":    b.Source.TotalSkipped(),
			"package":         Package,
			"pixel_values":    "0..255, background 0",
			"item_id_meaning": "index of the image in the source, grouped by category in file order",
		},
	}
	write := func(name, dtype, about string, shape []int, f func(string) error) error {
		file := name + ".npy"
		if err := f(filepath.Join(dir, file)); err != nil {
			return err
		}
		em.Arrays[name] = Array{File: file, DType: dtype, Shape: shape, About: about}
		return nil
	}
	steps := []error{
		write("images", "uint8", "views, 32 x 32, 0 = black", []int{numRows, ViewSide, ViewSide}, func(p string) error {
			return npy.WriteFile(p, []int{numRows, ViewSide, ViewSide}, b.Pixels)
		}),
		write("item_ids", "int64", "item id", []int{numRows}, func(p string) error { return npy.WriteFile(p, []int{numRows}, items) }),
		write("labels", "int64", "training class, -1 for test rows", []int{numRows}, func(p string) error { return npy.WriteFile(p, []int{numRows}, labels) }),
		write("domains", "uint8", "0 shop, 1 consumer", []int{numRows}, func(p string) error { return npy.WriteFile(p, []int{numRows}, domains) }),
		write("splits", "uint8", "0 train, 2 test", []int{numRows}, func(p string) error { return npy.WriteFile(p, []int{numRows}, splits) }),
		write("categories", "uint8", "clothes type 0..9", []int{numRows}, func(p string) error { return npy.WriteFile(p, []int{numRows}, cats) }),
		write("views", "int16", "0 shop view, k consumer view k", []int{numRows}, func(p string) error { return npy.WriteFile(p, []int{numRows}, b.Views) }),
	}
	for _, err := range steps {
		if err != nil {
			return nil, fmt.Errorf("fmnist: export: %w", err)
		}
	}
	js, err := json.MarshalIndent(em, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("fmnist: export: %w", err)
	}
	return em, nil
}
