package main

import (
	"slices"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		vs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.vs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.vs, got, c.want)
		}
	}
	vs := []float64{3, 1, 2}
	median(vs)
	if !slices.Equal(vs, []float64{3, 1, 2}) {
		t.Errorf("median reordered its argument: %v", vs)
	}
}

// TestBestRatios: each round's ratio is ours over the best PyTorch
// variant of that same round (not of another round, not of another
// figure), at every precision of the figure; a round without the anchor
// gives none.
func TestBestRatios(t *testing.T) {
	round := func(ours, torch map[string]float64) photoRound {
		var f photoFigures
		for _, tag := range []string{"resnet50_embed_b1", "resnet50_embed_b1_bf16", "resnet50_embed_b32"} {
			f.add(tag, ours[tag])
		}
		return photoRound{ours: f, torch: torch}
	}
	rounds := []photoRound{
		round(map[string]float64{"resnet50_embed_b1": 30, "resnet50_embed_b1_bf16": 45, "resnet50_embed_b32": 40},
			map[string]float64{"torch_eager_resnet50_embed_b1": 20, "torch_optimize_resnet50_embed_b1_tuned": 25, "torch_eager_resnet50_embed_b32": 100}),
		round(map[string]float64{"resnet50_embed_b1": 20, "resnet50_embed_b1_bf16": 30, "resnet50_embed_b32": 40},
			map[string]float64{"torch_eager_resnet50_embed_b1": 40, "torch_optimize_resnet50_embed_b1_tuned": 10, "torch_eager_resnet50_embed_b32": 50}),
		round(map[string]float64{"resnet50_embed_b1": 20, "resnet50_embed_b1_bf16": 30, "resnet50_embed_b32": 40}, nil),
	}
	for _, c := range []struct {
		tag   string
		want  []float64
		bests []string
	}{
		{"resnet50_embed_b1", []float64{30.0 / 25, 20.0 / 40}, []string{"torch_optimize_resnet50_embed_b1_tuned", "torch_eager_resnet50_embed_b1"}},
		{"resnet50_embed_b1_bf16", []float64{45.0 / 25, 30.0 / 40}, []string{"torch_optimize_resnet50_embed_b1_tuned", "torch_eager_resnet50_embed_b1"}},
		{"resnet50_embed_b32", []float64{40.0 / 100, 40.0 / 50}, []string{"torch_eager_resnet50_embed_b32", "torch_eager_resnet50_embed_b32"}},
	} {
		rs, bests := bestRatios(rounds, c.tag)
		if !slices.Equal(rs, c.want) || !slices.Equal(bests, c.bests) {
			t.Errorf("%s: ratios %v against %v, want %v against %v", c.tag, rs, bests, c.want, c.bests)
		}
	}
}

// TestPhotoSchedule: every part once a side per round, ours and the
// anchor's next to each other, the side that goes first alternating from
// round to round; without the anchor, each part once.
func TestPhotoSchedule(t *testing.T) {
	for r := range 4 {
		turns := photoSchedule(r, true)
		if len(turns) != 2*len(photoParts) {
			t.Fatalf("round %d: %d turns for %d parts", r, len(turns), len(photoParts))
		}
		for i, p := range photoParts {
			a, b := turns[2*i], turns[2*i+1]
			if a.part != p || b.part != p || a.torch == b.torch {
				t.Fatalf("round %d, part %v: turns %v and %v", r, p, a, b)
			}
			if a.torch != (r%2 == 1) {
				t.Errorf("round %d, part %v: the anchor first is %v", r, p, a.torch)
			}
		}
		alone := photoSchedule(r, false)
		if len(alone) != len(photoParts) {
			t.Fatalf("round %d without the anchor: %d turns", r, len(alone))
		}
		for i, p := range photoParts {
			if alone[i] != (photoTurn{part: p}) {
				t.Errorf("round %d without the anchor: turn %d is %v", r, i, alone[i])
			}
		}
	}
}
