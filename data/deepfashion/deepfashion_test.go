package deepfashion

import (
	"image"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/data"
)

func loadC2S(t *testing.T) *data.Manifest {
	t.Helper()
	m, err := LoadConsumer2Shop(Options{Root: filepath.Join(fixtureDir, "consumer2shop")})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConsumer2Shop(t *testing.T) {
	m := loadC2S(t)
	if want := filepath.Join(fixtureDir, "consumer2shop", "Img"); m.Root != want {
		t.Errorf("image root %q, want %q (the Img/img layout)", m.Root, want)
	}
	st := m.Stats()
	// 8 items: shops 2+1+1+1+1+2+1+1 = 10, consumers 2+2+1+1+2+1+1+1 = 11.
	if st.Rows != 21 || st.TotalItems != 8 {
		t.Fatalf("stats %+v", st)
	}
	want := map[data.Split][2]int{data.Train: {4, 5}, data.Val: {1, 1}, data.Test: {5, 5}}
	for sp, w := range want {
		if got := [2]int{st.Images[sp][data.Shop], st.Images[sp][data.Consumer]}; got != w {
			t.Errorf("split %s: shop, consumer = %v, want %v", sp, got, w)
		}
	}
	if st.Boxes != 21 || st.Categories != 3 {
		t.Errorf("boxes %d categories %d", st.Boxes, st.Categories)
	}
	for _, r := range m.Rows {
		isCons := strings.Contains(r.Path, "comsumer_")
		if isCons != (r.Domain == data.Consumer) {
			t.Errorf("%s has domain %s", r.Path, r.Domain)
		}
	}
	if b := boxOf(m, "img/TOPS/Summer_Wear/id_00000001/shop_02.jpg"); b != image.Rect(9, 10, 40, 57) {
		t.Errorf("box %v", b)
	}
	if m.Warnings.Total() != 0 {
		t.Errorf("warnings: %s", m.Warnings)
	}
}

func boxOf(m *data.Manifest, path string) image.Rectangle {
	for _, r := range m.Rows {
		if r.Path == path {
			return r.Box
		}
	}
	return image.Rectangle{}
}

func TestConsumer2ShopProtocol(t *testing.T) {
	m := loadC2S(t)
	// Check with the header: the missing shop image of item 7 and the
	// corrupt consumer image of item 3 are skipped; the box of item 2's
	// first consumer image is clamped.
	checked, err := m.Check(data.CheckOptions{Mode: data.CheckHeader})
	if err != nil {
		t.Fatal(err)
	}
	w := checked.Warnings
	if w.Count(data.WarnMissingImage) != 1 || w.Count(data.WarnCorruptImage) != 1 || w.Count(data.WarnBoxClamped) != 1 {
		t.Fatalf("warnings after check:\n%s", w)
	}
	if len(checked.Rows) != 19 {
		t.Fatalf("%d rows after check, want 19", len(checked.Rows))
	}
	// A full decode also finds the truncated JPEG of item 8.
	decoded, err := m.Check(data.CheckOptions{Mode: data.CheckDecode, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if n := decoded.Warnings.Count(data.WarnCorruptImage); n != 2 || len(decoded.Rows) != 18 {
		t.Errorf("decode check: %d corrupt, %d rows; want 2, 18:\n%s", n, len(decoded.Rows), decoded.Warnings)
	}
	if _, err := m.Check(data.CheckOptions{Mode: data.CheckHeader, Strict: true}); err == nil || !strings.Contains(err.Error(), "id_0000000") {
		t.Errorf("strict check: %v", err)
	}
	ds, err := data.NewDataset(checked, data.ProtocolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Train: items 1, 2, 3 -> 3 classes; 4+5-1 (corrupt) = 8 images.
	if len(ds.Classes) != 3 || ds.Train.Len() != 8 {
		t.Errorf("train: %d classes, %d images", len(ds.Classes), ds.Train.Len())
	}
	// Queries: consumer test images of 5 (2), 6 (1), 7 (1, excluded: its
	// shop image is missing), 8 (1).
	if ds.Query.Len() != 4 || len(ds.Excluded) != 1 || ds.Gallery.Len() != 4 {
		t.Errorf("queries %d excluded %d gallery %d", ds.Query.Len(), len(ds.Excluded), ds.Gallery.Len())
	}
	for _, r := range ds.Query.Rows {
		if row := checked.Rows[r]; row.Domain != data.Consumer || row.Split != data.Test {
			t.Errorf("query row %+v", row)
		}
	}
	if _, err := data.NewDataset(checked, data.ProtocolOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), "item 7") {
		t.Errorf("strict protocol: %v", err)
	}
	withVal, err := data.NewDataset(checked, data.ProtocolOptions{GalleryWithVal: true})
	if err != nil {
		t.Fatal(err)
	}
	if withVal.Gallery.Len() != 5 {
		t.Errorf("gallery with val: %d images, want 5", withVal.Gallery.Len())
	}
}

// TestConsumer2ShopLoader decodes the fixture through the loader: the
// box crop of each image is the item's colour; the EXIF-rotated image comes
// out upright; the truncated JPEG (which the header check lets through) is
// counted at load time.
func TestConsumer2ShopLoader(t *testing.T) {
	m, err := loadC2S(t).Check(data.CheckOptions{Mode: data.CheckHeader})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.NewDataset(m, data.ProtocolOptions{GalleryWithVal: true})
	if err != nil {
		t.Fatal(err)
	}
	tf := data.RGBTransform(16)
	tf.Mean, tf.Std = [3]float32{}, [3]float32{1, 1, 1} // raw [0, 1] values
	for _, set := range []*data.Subset{ds.Train, ds.Query, ds.Gallery} {
		ld, err := data.NewLoader(set, data.SequentialSampler{N: set.Len(), BatchSize: 3}, tf, data.SamplerState{}, data.LoaderOptions{Epochs: 1, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		for {
			b, err := ld.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < b.Shape[0]; i++ {
				row := m.Rows[b.Rows[i]]
				want := itemColour(int(row.Item))
				img := b.Images[i*tf.Len() : (i+1)*tf.Len()]
				if strings.Contains(row.Path, "id_00000008/comsumer") {
					continue // truncated: zero-filled, counted below
				}
				// Centre pixel of the crop has the garment colour.
				c := 8*16 + 8
				for ch, v := range []uint8{want.R, want.G, want.B} {
					if got := img[ch*256+c] * 255; math.Abs(float64(got)-float64(v)) > 12 {
						t.Errorf("%s channel %d: %.0f, want %d", row.Path, ch, got, v)
					}
				}
			}
		}
		if set == ds.Query && ld.Warnings().Count(data.WarnCorruptImage) != 1 {
			t.Errorf("query loader warnings: %s", ld.Warnings())
		}
		ld.Close()
	}
	// Strict: the truncated image stops the query loader with an error.
	ld, err := data.NewLoader(ds.Query, data.SequentialSampler{N: ds.Query.Len(), BatchSize: 8}, tf, data.SamplerState{}, data.LoaderOptions{Epochs: 1, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	if _, err := ld.Next(); err == nil || !strings.Contains(err.Error(), "id_00000008") {
		t.Errorf("strict loader: %v", err)
	}
}

// TestEXIFFixture checks that the EXIF-tagged consumer image of item 6
// decodes upright (64 x 48) with its white marker top-left.
func TestEXIFFixture(t *testing.T) {
	img, err := data.DecodeFile(filepath.Join(fixtureDir, "consumer2shop/Img/img/TROUSER/Jeans/id_00000006/comsumer_01.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 48 {
		t.Fatalf("bounds %v, want 64 x 48", b)
	}
	r, g, b, _ := img.At(2, 2).RGBA()
	if r>>8 < 230 || g>>8 < 230 || b>>8 < 230 {
		t.Errorf("top-left marker is %d %d %d, want white", r>>8, g>>8, b>>8)
	}
}

func TestInShop(t *testing.T) {
	m, err := LoadInShop(Options{Root: filepath.Join(fixtureDir, "inshop")})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(fixtureDir, "inshop"); m.Root != want {
		t.Errorf("image root %q, want %q", m.Root, want)
	}
	st := m.Stats()
	if st.Rows != 10 || st.Images[data.Train][data.Shop] != 4 || st.Images[data.Query][data.Shop] != 3 || st.Images[data.Gallery][data.Shop] != 3 {
		t.Fatalf("stats %+v", st)
	}
	checked, err := m.Check(data.CheckOptions{Mode: data.CheckDecode})
	if err != nil {
		t.Fatal(err)
	}
	if checked.Warnings.Total() != 0 {
		t.Errorf("warnings %s", checked.Warnings)
	}
	ds, err := data.NewDataset(checked, data.ProtocolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Classes) != 2 || ds.Query.Len() != 2 || ds.Gallery.Len() != 3 || len(ds.Excluded) != 1 {
		t.Errorf("classes %d queries %d gallery %d excluded %d", len(ds.Classes), ds.Query.Len(), ds.Gallery.Len(), len(ds.Excluded))
	}
	if ds.Warnings.Count(data.WarnQueryExcluded) != 1 {
		t.Errorf("exclusion not counted: %s", ds.Warnings)
	}
}

func TestMissingLists(t *testing.T) {
	_, err := LoadConsumer2Shop(Options{Root: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "list_eval_partition.txt") {
		t.Errorf("missing lists: %v", err)
	}
}

// TestMalformed checks that each malformed list is an error naming the file
// and line. The recoverable problems (warnings, errors only under Strict)
// are tested in lists_test.go.
func TestMalformed(t *testing.T) {
	const ph = "image_pair_name_1 image_pair_name_2 item_id evaluation_status"
	const bh = "image_name clothes_type source_type x_1 y_1 x_2 y_2"
	good := "1\n" + ph + "\nimg/a/id_00000001/comsumer_01.jpg img/a/id_00000001/shop_01.jpg id_00000001 train\n"
	goodBox := "2\n" + bh + "\nimg/a/id_00000001/comsumer_01.jpg 1 2 1 1 10 10\nimg/a/id_00000001/shop_01.jpg 1 1 1 1 10 10\n"
	cases := []struct {
		name, part, bbox, want string
	}{
		{"ok", good, goodBox, ""},
		{"empty", "", goodBox, "p.txt: empty file"},
		{"count", "x\n", goodBox, "p.txt:1: want the number of rows"},
		{"no header", "1\n", goodBox, "p.txt: no header line"},
		{"header", "1\nimage_name item_id evaluation_status\n", goodBox, "p.txt:2: header"},
		{"fields", "1\n" + ph + "\na b id_00000001\n", goodBox, "p.txt:3: 3 fields, want 4"},
		{"item", "1\n" + ph + "\na.jpg b.jpg item1 train\n", "", "p.txt:3: item id \"item1\""},
		{"status", "1\n" + ph + "\na.jpg b.jpg id_00000001 query\n", "", "p.txt:3: evaluation_status \"query\""},
		{"split conflict", "2\n" + ph + "\na.jpg b.jpg id_00000001 train\nc.jpg d.jpg id_00000001 test\n", "", "p.txt:4: item id_00000001 is test here but train at p.txt:3"},
		{"image in two items", "2\n" + ph + "\na.jpg b.jpg id_00000001 train\na.jpg d.jpg id_00000002 train\n", "", "p.txt:4: image a.jpg belongs to item 1"},
		{"both domains", "2\n" + ph + "\na.jpg b.jpg id_00000001 train\nb.jpg a.jpg id_00000001 train\n", "", "appears as both shop and consumer"},
		{"box int", good, "1\n" + bh + "\nx.jpg 1 2 a 1 10 10\n", "b.txt:3: x_1 = \"a\" is not an integer"},
	}
	for _, c := range cases {
		var bbox io.Reader
		if c.bbox != "" {
			bbox = strings.NewReader(c.bbox)
		}
		_, err := ParseConsumer2Shop(strings.NewReader(c.part), "p.txt", bbox, "b.txt", false)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
	// In-Shop specifics.
	const ih = "image_name item_id evaluation_status"
	for _, c := range []struct{ part, want string }{
		{"1\n" + ih + "\na.jpg id_00000001 test\n", "p.txt:3: evaluation_status \"test\" is not train, query or gallery"},
		{"2\n" + ih + "\na.jpg id_00000001 train\na.jpg id_00000001 train\n", "p.txt:4: image a.jpg is listed again (first at p.txt:3)"},
	} {
		if _, err := ParseInShop(strings.NewReader(c.part), "p.txt", nil, "", false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("in-shop: %v, want %q", err, c.want)
		}
	}
}

func FuzzParseConsumer2Shop(f *testing.F) {
	_, part, bbox := c2sFixture()
	f.Add([]byte(part), []byte(bbox))
	f.Add([]byte("1\nimage_pair_name_1 image_pair_name_2 item_id evaluation_status\na b id_1 val\n"), []byte("0\nimage_name clothes_type source_type x_1 y_1 x_2 y_2\n"))
	f.Fuzz(func(t *testing.T, part, bbox []byte) {
		m, err := ParseConsumer2Shop(strings.NewReader(string(part)), "p", strings.NewReader(string(bbox)), "b", false)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest is invalid: %v", err)
		}
	})
}

func FuzzParseInShop(f *testing.F) {
	_, part, bbox := inShopFixture()
	f.Add([]byte(part), []byte(bbox))
	f.Fuzz(func(t *testing.T, part, bbox []byte) {
		m, err := ParseInShop(strings.NewReader(string(part)), "p", strings.NewReader(string(bbox)), "b", false)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest is invalid: %v", err)
		}
	})
}
