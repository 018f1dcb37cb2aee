package data

import (
	"encoding/json"
	"image"
	"strings"
	"testing"
)

func TestDomainSplitNames(t *testing.T) {
	for d := Domain(0); d < numDomains; d++ {
		got, err := ParseDomain(strings.ToUpper(d.String()))
		if err != nil || got != d {
			t.Errorf("ParseDomain(%s) = %v, %v", d, got, err)
		}
	}
	for s := Split(0); s < numSplits; s++ {
		got, err := ParseSplit(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSplit(%s) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseDomain("street"); err == nil {
		t.Error("ParseDomain accepted street")
	}
	if _, err := ParseSplit("dev"); err == nil {
		t.Error("ParseSplit accepted dev")
	}
	b, _ := json.Marshal(struct {
		D Domain
		S Split
	}{Consumer, Gallery})
	if string(b) != `{"D":"consumer","S":"gallery"}` {
		t.Errorf("json %s", b)
	}
}

func TestValidate(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 4, 4))
	cases := []struct {
		row  Row
		want string
	}{
		{Row{Path: "a.jpg"}, ""},
		{Row{Image: img}, ""},
		{Row{}, "neither a path nor an image"},
		{Row{Path: "a", Image: img}, "both a path and an image"},
		{Row{Path: "a", Domain: 7}, "unknown domain"},
		{Row{Path: "a", Split: 9}, "unknown split"},
		{Row{Path: "a", Box: image.Rectangle{Min: image.Pt(5, 5), Max: image.Pt(5, 9)}}, "empty or inverted box"},
	}
	for _, c := range cases {
		err := (&Manifest{Name: "m", Rows: []Row{c.row}}).Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.row, err, c.want)
		}
	}
}

func TestStats(t *testing.T) {
	m := &Manifest{Rows: []Row{
		{Path: "a", Item: 1, Domain: Shop, Split: Train, Category: 2, Box: image.Rect(0, 0, 2, 2)},
		{Path: "b", Item: 1, Domain: Consumer, Split: Train, Category: 2},
		{Path: "c", Item: 2, Domain: Consumer, Split: Test, Category: NoCategory},
		{Path: "d", Item: 2, Domain: Shop, Split: Test, Category: 3},
		{Path: "e", Item: 3, Domain: Shop, Split: Test, Category: 3},
	}}
	s := m.Stats()
	if s.Rows != 5 || s.TotalItems != 3 || s.Items[Train] != 1 || s.Items[Test] != 2 || s.Boxes != 1 || s.Categories != 2 {
		t.Errorf("stats %+v", s)
	}
	if s.Images[Test][Shop] != 2 || s.Images[Test][Consumer] != 1 {
		t.Errorf("images %v", s.Images)
	}
	if str := s.String(); !strings.Contains(str, "test            2        2         1") {
		t.Errorf("table:\n%s", str)
	}
	b, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(b), `"test":{"items":2,"shop":2,"consumer":1}`) {
		t.Errorf("json %s %v", b, err)
	}
}

func TestWarnings(t *testing.T) {
	var nilW *Warnings
	nilW.Add("x", "y") // must not panic
	if nilW.Total() != 0 || nilW.String() != "" {
		t.Error("nil warnings not empty")
	}
	w := NewWarnings()
	for i := 0; i < 5; i++ {
		w.Add(WarnMissingImage, string(rune('a'+i)))
	}
	w.AddN(WarnBoxClamped, 3, "box")
	if w.Count(WarnMissingImage) != 5 || w.Total() != 8 || len(w.Examples(WarnMissingImage)) != maxExamples {
		t.Errorf("counts: %s", w)
	}
	o := NewWarnings()
	o.Merge(w)
	o.Merge(w)
	if o.Count(WarnBoxClamped) != 6 || o.Total() != 16 {
		t.Errorf("merged: %s", o)
	}
	if s := w.String(); !strings.Contains(s, "5 missing image (e.g. a, b, c)") {
		t.Errorf("string: %s", s)
	}
	b, _ := json.Marshal(w)
	if !strings.Contains(string(b), `"missing image":{"count":5,"examples":["a","b","c"]}`) {
		t.Errorf("json: %s", b)
	}
}
