package deepfashion

import (
	"io"
	"path/filepath"

	"github.com/dmlgo/dmlgo/data"
)

// Consumer-to-Shop list headers.
var (
	c2sPartitionHeader = []string{"image_pair_name_1", "image_pair_name_2", "item_id", "evaluation_status"}
	c2sBBoxHeader      = []string{"image_name", "clothes_type", "source_type", "x_1", "y_1", "x_2", "y_2"}
)

// LoadConsumer2Shop reads the Consumer-to-Shop benchmark under opts.Root:
// Eval/list_eval_partition.txt and Anno/list_bbox_consumer2shop.txt.
// Images are not opened (see data.Manifest.Check).
func LoadConsumer2Shop(opts Options) (*data.Manifest, error) {
	partFile, partName, err := openList(opts.Root, filepath.Join("Eval", "list_eval_partition.txt"), "list_eval_partition.txt")
	if err != nil {
		return nil, err
	}
	defer partFile.Close()
	boxFile, boxName, err := openList(opts.Root, filepath.Join("Anno", "list_bbox_consumer2shop.txt"), "list_bbox_consumer2shop.txt")
	if err != nil {
		return nil, err
	}
	defer boxFile.Close()
	m, err := ParseConsumer2Shop(partFile, partName, boxFile, boxName, opts.Strict)
	if err != nil {
		return nil, err
	}
	m.Root = opts.imageRoot()
	return m, nil
}

// ParseConsumer2Shop builds the manifest from the partition list and the
// bbox list (bbox may be nil: no boxes, no categories). Rows come in order
// of first appearance in the partition list.
//
// Recoverable problems of the lists are counted in the manifest's Warnings
// (data.WarnListBOM, WarnListCount, WarnBoxNoArea, WarnBoxDuplicate,
// WarnSourceMismatch, each with its file:line) and the load goes on; with
// strict each is an error naming the file and line. A bbox row whose image
// no pair lists is counted (WarnBoxUnused) either way.
func ParseConsumer2Shop(partition io.Reader, partitionName string, bbox io.Reader, bboxName string, strict bool) (*data.Manifest, error) {
	l := lists{strict: strict, warn: data.NewWarnings()}
	partTable, err := l.readTable(partition, partitionName, c2sPartitionHeader)
	if err != nil {
		return nil, err
	}
	var boxTable *table
	boxes := map[string]bboxRow{}
	if bbox != nil {
		if boxTable, boxes, err = l.readBoxes(bbox, bboxName, c2sBBoxHeader); err != nil {
			return nil, err
		}
	}
	m := &data.Manifest{
		Name:          "deepfashion-c2s",
		Warnings:      l.warn,
		CategoryNames: map[int32]string{1: "upper-body", 2: "lower-body", 3: "full-body"},
	}
	type seen struct {
		item  int64
		row   int // table row that introduced the image
		index int // its manifest row
	}
	images := map[string]seen{}
	itemSplit := map[int64]data.Split{}
	itemRow := map[int64]int{}
	for i, f := range partTable.rows {
		item, err := parseItemID(f[2])
		if err != nil {
			return nil, partTable.errorf(i, "%v", err)
		}
		split, ok := splitOf(f[3], data.Train, data.Val, data.Test)
		if !ok {
			return nil, partTable.errorf(i, "evaluation_status %q is not train, val or test", f[3])
		}
		if s, ok := itemSplit[item]; ok && s != split {
			return nil, partTable.errorf(i, "item %s is %s here but %s at %s", f[2], split, s, partTable.where(itemRow[item]))
		}
		itemSplit[item], itemRow[item] = split, i
		for col, dom := range [2]data.Domain{data.Consumer, data.Shop} {
			name := f[col]
			if prev, ok := images[name]; ok {
				if prev.item != item {
					return nil, partTable.errorf(i, "image %s belongs to item %d at %s and to item %d here", name, prev.item, partTable.where(prev.row), item)
				}
				if m.Rows[prev.index].Domain != dom {
					return nil, partTable.errorf(i, "image %s appears as both shop and consumer", name)
				}
				continue
			}
			images[name] = seen{item, i, len(m.Rows)}
			row := data.Row{Path: name, Item: item, Domain: dom, Split: split, Category: data.NoCategory}
			if b, ok := boxes[name]; ok {
				want := 1
				if dom == data.Consumer {
					want = 2
				}
				if b.source == want {
					row.Box, row.Category = b.box, int32(b.kind)
				} else if err := l.problem(data.WarnSourceMismatch, boxTable.where(b.row), "source_type %d, but %s is a %s image (column %d of %s)", b.source, name, dom, col+1, partTable.where(i)); err != nil {
					return nil, err
				}
			} else if bbox != nil {
				m.Warnings.Add(data.WarnNoBox, name)
			}
			m.Rows = append(m.Rows, row)
		}
	}
	if boxTable != nil {
		l.unusedBoxes(boxTable, boxes, func(name string) bool { _, ok := images[name]; return ok })
	}
	return m, nil
}
