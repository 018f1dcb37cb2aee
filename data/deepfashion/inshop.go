package deepfashion

import (
	"io"
	"path/filepath"

	"github.com/dmlgo/dmlgo/data"
)

// In-Shop list headers.
var (
	inShopPartitionHeader = []string{"image_name", "item_id", "evaluation_status"}
	inShopBBoxHeader      = []string{"image_name", "clothes_type", "pose_type", "x_1", "y_1", "x_2", "y_2"}
)

// LoadInShop reads the In-Shop benchmark under opts.Root:
// list_eval_partition.txt and list_bbox_inshop.txt, in Eval/ and Anno/ or
// directly in Root. Images are not opened (see data.Manifest.Check).
func LoadInShop(opts Options) (*data.Manifest, error) {
	partFile, partName, err := openList(opts.Root, filepath.Join("Eval", "list_eval_partition.txt"), "list_eval_partition.txt")
	if err != nil {
		return nil, err
	}
	defer partFile.Close()
	boxFile, boxName, err := openList(opts.Root, filepath.Join("Anno", "list_bbox_inshop.txt"), "list_bbox_inshop.txt")
	if err != nil {
		return nil, err
	}
	defer boxFile.Close()
	m, err := ParseInShop(partFile, partName, boxFile, boxName, opts.Strict)
	if err != nil {
		return nil, err
	}
	m.Root = opts.imageRoot()
	return m, nil
}

// ParseInShop builds the manifest from the partition list and the bbox list
// (bbox may be nil). Every row has domain shop; status train, query or
// gallery is its split. Recoverable problems of the lists are handled as by
// ParseConsumer2Shop (there is no source column to check).
func ParseInShop(partition io.Reader, partitionName string, bbox io.Reader, bboxName string, strict bool) (*data.Manifest, error) {
	l := lists{strict: strict, warn: data.NewWarnings()}
	partTable, err := l.readTable(partition, partitionName, inShopPartitionHeader)
	if err != nil {
		return nil, err
	}
	var boxTable *table
	boxes := map[string]bboxRow{}
	if bbox != nil {
		if boxTable, boxes, err = l.readBoxes(bbox, bboxName, inShopBBoxHeader); err != nil {
			return nil, err
		}
	}
	m := &data.Manifest{
		Name:          "deepfashion-inshop",
		Warnings:      l.warn,
		CategoryNames: map[int32]string{1: "upper-body", 2: "lower-body", 3: "full-body"},
	}
	seen := map[string]int{}
	for i, f := range partTable.rows {
		item, err := parseItemID(f[1])
		if err != nil {
			return nil, partTable.errorf(i, "%v", err)
		}
		split, ok := splitOf(f[2], data.Train, data.Query, data.Gallery)
		if !ok {
			return nil, partTable.errorf(i, "evaluation_status %q is not train, query or gallery", f[2])
		}
		if prev, dup := seen[f[0]]; dup {
			return nil, partTable.errorf(i, "image %s is listed again (first at %s)", f[0], partTable.where(prev))
		}
		seen[f[0]] = i
		row := data.Row{Path: f[0], Item: item, Domain: data.Shop, Split: split, Category: data.NoCategory}
		if b, ok := boxes[f[0]]; ok {
			row.Box, row.Category = b.box, int32(b.kind)
		} else if bbox != nil {
			m.Warnings.Add(data.WarnNoBox, f[0])
		}
		m.Rows = append(m.Rows, row)
	}
	if boxTable != nil {
		l.unusedBoxes(boxTable, boxes, func(name string) bool { _, ok := seen[name]; return ok })
	}
	return m, nil
}
