package main

import (
	"math"
	"strings"
	"testing"

	"github.com/dmlgo/dmlgo/backend/cpu"
)

// TestResNetLayers: the layers suite's list of a network's convolutions,
// read from its modules, has every convolution once (the stem, three per
// bottleneck or two per basic block, the downsamples), with the shapes
// of torchvision's networks at 224×224: their multiply-adds add up to
// the known totals (ResNet-50 4.09 G, ResNet-18 1.81 G, less the fc).
func TestResNetLayers(t *testing.T) {
	for _, c := range []struct {
		arch           string
		convs, shapes  int
		macs           float64 // without the fc (512 or 2048 × 1000)
		firstTag, last string
	}{
		{"resnet50", 1 + 16*3 + 4, 24, 4.0895e9, "k64_c3_7x7_s2_224_pool", "k512_c512_3x3_s1_7"},
		{"resnet18", 1 + 8*2 + 3, 15, 1.8136e9, "k64_c3_7x7_s2_224_pool", "k512_c512_3x3_s1_7"},
	} {
		layers, err := resnetLayers(cpu.New(1), c.arch)
		if err != nil {
			t.Fatal(err)
		}
		var macs float64
		for _, l := range layers {
			macs += l.macs() * float64(l.count)
		}
		if n := sumCounts(layers); n != c.convs || len(layers) != c.shapes {
			t.Errorf("%s: %d convolutions in %d shapes, want %d in %d", c.arch, n, len(layers), c.convs, c.shapes)
		}
		if math.Abs(macs-c.macs) > 0.001*c.macs {
			t.Errorf("%s: %.4g multiply-adds, want %.4g", c.arch, macs, c.macs)
		}
		if layers[0].tag != c.firstTag || layers[0].count != 1 || !layers[0].pool {
			t.Errorf("%s: first layer %+v, want the stem %s with its pooling", c.arch, layers[0], c.firstTag)
		}
		if l := layers[len(layers)-1]; l.tag != c.last {
			t.Errorf("%s: last distinct layer %s, want %s", c.arch, l.tag, c.last)
		}
		for _, l := range layers {
			// The residual ends a block, after its ReLU-less downsample.
			if l.res != strings.HasSuffix(l.tag, "_res") || l.relu == strings.HasSuffix(l.tag, "_norelu") || l.p.N != 0 {
				t.Errorf("%s: %s: res %v relu %v, N %d", c.arch, l.tag, l.res, l.relu, l.p.N)
			}
		}
	}
}

// TestTorchBest: a layer's PyTorch time is the least over the variants
// and the anchor's runs, matched by the whole tag (channels_last's
// underscore included); other figures and non-positive times are
// ignored, and a layer without figures is left out.
func TestTorchBest(t *testing.T) {
	layers := []convLayer{{tag: "k64_c64_1x1_s1_56"}, {tag: "k256_c64_1x1_s1_56_res"}, {tag: "k512_c512_3x3_s1_7"}}
	runs := []map[string]float64{
		{"torch_eager_k64_c64_1x1_s1_56": 0.5, "torch_channels_last_k64_c64_1x1_s1_56": 0.4, "torch_optimize_k256_c64_1x1_s1_56_res": 0.9,
			"torch_eager_k256_c64_1x1_s1_56_res": 0, "other_k64_c64_1x1_s1_56": 0.01},
		nil,
		{"torch_optimize_k64_c64_1x1_s1_56": 0.45, "torch_eager_k256_c64_1x1_s1_56_res": 0.7, "torch_channels_last_k256_c64_1x1_s1_56_res": math.NaN()},
	}
	got := torchBest(runs, layers)
	want := map[string]float64{"k64_c64_1x1_s1_56": 0.4, "k256_c64_1x1_s1_56_res": 0.7}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
}
