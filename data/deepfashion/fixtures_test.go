package deepfashion

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The fixtures under ../testdata/deepfashion are small copies of the two
// benchmarks in their exact formats, written by writeFixtures. Run
//
//	go test ./data/deepfashion -run TestFixtures -update
//
// to regenerate them after changing this file.
var update = flag.Bool("update", false, "rewrite the committed test fixtures")

const fixtureDir = "../testdata/deepfashion"

// fixtureImage describes one generated photo: a garment rectangle of the
// item's colour at box on a grey background.
type fixtureImage struct {
	path     string
	w, h     int
	box      image.Rectangle
	colour   color.RGBA
	exif     int  // EXIF orientation to write (0 = none); pixels are stored turned
	corrupt  bool // write garbage instead of a JPEG
	truncate bool // cut the end of the JPEG off (the header is intact)
	missing  bool // list it but do not write it
}

// itemColour gives each item a distinct, saturated colour.
func itemColour(item int) color.RGBA {
	palette := []color.RGBA{{200, 40, 40, 255}, {40, 160, 40, 255}, {40, 60, 200, 255}, {200, 180, 30, 255},
		{160, 40, 160, 255}, {30, 170, 170, 255}, {230, 120, 20, 255}, {90, 90, 90, 255}}
	return palette[item%len(palette)]
}

// renderJPEG draws the garment and encodes it. With exif = 6 the pixels are
// stored rotated 90° counter-clockwise and tagged so that a viewer (and
// data.DecodeFile) turns them back.
func renderJPEG(im fixtureImage) []byte {
	img := image.NewRGBA(image.Rect(0, 0, im.w, im.h))
	draw.Draw(img, img.Rect, image.NewUniform(color.RGBA{128, 128, 128, 255}), image.Point{}, draw.Src)
	draw.Draw(img, im.box.Intersect(img.Rect), image.NewUniform(im.colour), image.Point{}, draw.Src)
	// A white marker in the top-left corner shows the orientation.
	draw.Draw(img, image.Rect(0, 0, 6, 6), image.White, image.Point{}, draw.Src)
	var stored image.Image = img
	if im.exif == 6 {
		// Stored = displayed turned 90° counter-clockwise.
		r := image.NewRGBA(image.Rect(0, 0, im.h, im.w))
		for y := 0; y < im.h; y++ {
			for x := 0; x < im.w; x++ {
				r.Set(y, im.w-1-x, img.At(x, y))
			}
		}
		stored = r
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, stored, &jpeg.Options{Quality: 90}); err != nil {
		panic(err)
	}
	b := buf.Bytes()
	if im.exif != 0 {
		b = withEXIFOrientation(b, im.exif)
	}
	if im.truncate {
		b = b[:len(b)-64] // cut inside the entropy-coded data
	}
	return b
}

// withEXIFOrientation inserts an APP1 Exif segment holding only the
// orientation tag right after the SOI marker.
func withEXIFOrientation(jpg []byte, o int) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("MM\x00\x2a")
	binary.Write(&tiff, binary.BigEndian, uint32(8))      // IFD0 offset
	binary.Write(&tiff, binary.BigEndian, uint16(1))      // one entry
	binary.Write(&tiff, binary.BigEndian, uint16(0x0112)) // Orientation
	binary.Write(&tiff, binary.BigEndian, uint16(3))      // SHORT
	binary.Write(&tiff, binary.BigEndian, uint32(1))      // count
	binary.Write(&tiff, binary.BigEndian, uint16(o))      // value
	binary.Write(&tiff, binary.BigEndian, uint16(0))      // padding
	binary.Write(&tiff, binary.BigEndian, uint32(0))      // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

// c2sItem is one Consumer-to-Shop item of the fixture.
type c2sItem struct {
	id       int
	dir      string
	status   string
	shops    int
	consumer int
	kind     int // clothes type
}

var c2sItems = []c2sItem{
	{1, "img/TOPS/Summer_Wear", "train", 2, 2, 1},
	{2, "img/TOPS/Summer_Wear", "train", 1, 2, 1},
	{3, "img/TROUSER/Jeans", "train", 1, 1, 2},
	{4, "img/DRESSES/Dress", "val", 1, 1, 3},
	{5, "img/TOPS/Blouse", "test", 1, 2, 1},
	{6, "img/TROUSER/Jeans", "test", 2, 1, 2},
	{7, "img/DRESSES/Dress", "test", 1, 1, 3}, // its shop image is missing: the query is excluded
	{8, "img/TOPS/Blouse", "test", 1, 1, 1},
}

// c2sFixture returns the Consumer-to-Shop images and list files.
func c2sFixture() (images []fixtureImage, partition, bbox string) {
	var pairs, boxes []string
	for _, it := range c2sItems {
		base := fmt.Sprintf("%s/id_%08d", it.dir, it.id)
		var shops, cons []string
		for s := 1; s <= it.shops; s++ {
			shops = append(shops, fmt.Sprintf("%s/shop_%02d.jpg", base, s))
		}
		for c := 1; c <= it.consumer; c++ {
			cons = append(cons, fmt.Sprintf("%s/comsumer_%02d.jpg", base, c))
		}
		for _, c := range cons {
			for _, s := range shops {
				pairs = append(pairs, fmt.Sprintf("%s %s id_%08d %s", c, s, it.id, it.status))
			}
		}
		for j, p := range append(append([]string{}, shops...), cons...) {
			im := fixtureImage{path: p, w: 48, h: 64, colour: itemColour(it.id)}
			source := 1
			if strings.Contains(p, "comsumer") {
				source = 2
				im.w, im.h = 64, 48
			}
			im.box = image.Rect(8+j, 10, im.w-8, im.h-6-j)
			switch {
			case it.id == 7 && source == 1:
				im.missing = true
			case it.id == 2 && source == 2 && j == 1:
				im.box = image.Rect(40, 30, 90, 70) // reaches outside: clamped
			case it.id == 3 && source == 2:
				im.corrupt = true
			case it.id == 6 && source == 2:
				im.exif = 6
			case it.id == 8 && source == 2:
				im.truncate = true
			}
			images = append(images, im)
			boxes = append(boxes, fmt.Sprintf("%s %d %d %d %d %d %d", p, it.kind, source, im.box.Min.X, im.box.Min.Y, im.box.Max.X, im.box.Max.Y))
		}
	}
	partition = fmt.Sprintf("%d\nimage_pair_name_1 image_pair_name_2 item_id evaluation_status\n%s\n", len(pairs), strings.Join(pairs, "\n"))
	bbox = fmt.Sprintf("%d\nimage_name clothes_type source_type x_1 y_1 x_2 y_2\n%s\n", len(boxes), strings.Join(boxes, "\n"))
	return images, partition, bbox
}

// inShopFixture returns the In-Shop images and list files.
func inShopFixture() (images []fixtureImage, partition, bbox string) {
	type row struct {
		name, status string
		item         int
	}
	var rows []row
	add := func(item int, dir, status string, views ...string) {
		for _, v := range views {
			rows = append(rows, row{fmt.Sprintf("img/%s/id_%08d/%s.jpg", dir, item, v), status, item})
		}
	}
	add(2, "WOMEN/Dresses", "train", "02_1_front", "02_2_side")
	add(3, "MEN/Denim", "train", "01_1_front", "01_4_full")
	add(4, "WOMEN/Blouses_Shirts", "query", "01_1_front")
	add(4, "WOMEN/Blouses_Shirts", "gallery", "01_2_side", "01_3_back")
	add(5, "MEN/Tees_Tanks", "query", "03_1_front")
	add(5, "MEN/Tees_Tanks", "gallery", "03_2_side")
	add(6, "WOMEN/Skirts", "query", "01_1_front") // no gallery image: excluded
	var lines, boxes []string
	for i, r := range rows {
		im := fixtureImage{path: r.name, w: 40, h: 56, colour: itemColour(r.item), box: image.Rect(6, 8+i%3, 34, 50)}
		images = append(images, im)
		lines = append(lines, fmt.Sprintf("%s id_%08d %s", r.name, r.item, r.status))
		boxes = append(boxes, fmt.Sprintf("%s %d %d %d %d %d %d", r.name, 1+r.item%3, 1+i%4, im.box.Min.X, im.box.Min.Y, im.box.Max.X, im.box.Max.Y))
	}
	// Real lists pad the columns with spaces; so does this one.
	partition = fmt.Sprintf("%d\nimage_name item_id evaluation_status\n%s\n", len(lines), strings.Join(lines, "\n"))
	bbox = fmt.Sprintf("%d\nimage_name  clothes_type  pose_type  x_1  y_1  x_2  y_2\n%s\n", len(boxes), strings.Join(boxes, "\n"))
	return images, partition, bbox
}

// fixtureFiles returns every fixture file by path relative to fixtureDir.
func fixtureFiles() map[string][]byte {
	files := map[string][]byte{}
	put := func(root string, images []fixtureImage) {
		for _, im := range images {
			switch {
			case im.missing:
			case im.corrupt:
				files[filepath.Join(root, im.path)] = []byte("this is not an image\n")
			default:
				files[filepath.Join(root, im.path)] = renderJPEG(im)
			}
		}
	}
	images, part, bbox := c2sFixture()
	files["consumer2shop/Eval/list_eval_partition.txt"] = []byte(part)
	files["consumer2shop/Anno/list_bbox_consumer2shop.txt"] = []byte(bbox)
	put("consumer2shop/Img", images) // the Img/img layout of the download
	images, part, bbox = inShopFixture()
	files["inshop/Eval/list_eval_partition.txt"] = []byte(part)
	files["inshop/Anno/list_bbox_inshop.txt"] = []byte(bbox)
	put("inshop", images) // the img/ layout directly under the root
	return files
}

// TestFixtures checks that the committed fixtures are what this file
// generates (or rewrites them with -update).
func TestFixtures(t *testing.T) {
	files := fixtureFiles()
	if *update {
		if err := os.RemoveAll(fixtureDir); err != nil {
			t.Fatal(err)
		}
		for p, b := range files {
			full := filepath.Join(fixtureDir, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var onDisk []string
	total := 0
	filepath.Walk(fixtureDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(fixtureDir, p)
			onDisk = append(onDisk, rel)
			total += int(fi.Size())
		}
		return nil
	})
	sort.Strings(onDisk)
	if len(onDisk) != len(files) {
		t.Errorf("%d fixture files on disk, the generator makes %d (run with -update)", len(onDisk), len(files))
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(fixtureDir, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("fixture %s differs from the generator's output (run go test ./data/deepfashion -run TestFixtures -update)", p)
		}
	}
	if total > 200*1024 {
		t.Errorf("fixtures take %d bytes; keep them small", total)
	}
	t.Logf("%d fixture files, %d bytes", len(onDisk), total)
}
