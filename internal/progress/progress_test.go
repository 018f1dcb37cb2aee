package progress

import (
	"bytes"
	"strings"
	"testing"
)

// TestBarWithoutTerminal: without a terminal the bar prints a line at each
// tenth of the way and one at the end, with the count and the status.
func TestBarWithoutTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "epoch 1/2", 20, false)
	for i := 1; i <= 20; i++ {
		b.Update(i, "loss 1.0")
	}
	b.Finish("done")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 11 {
		t.Fatalf("%d lines, want 10 tenths and the end:\n%s", len(lines), buf.String())
	}
	if !strings.HasPrefix(lines[0], "epoch 1/2 ") || !strings.Contains(lines[0], " 2/20 loss 1.0") {
		t.Errorf("first line %q", lines[0])
	}
	if last := lines[10]; !strings.Contains(last, "20/20 done") || strings.Contains(last, "·") {
		t.Errorf("last line %q", last)
	}
}

// TestBarOnTerminal: on a terminal the line is redrawn in place.
func TestBarOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "x", 3, true)
	b.Update(3, "s")
	b.Finish("end")
	if out := buf.String(); !strings.HasPrefix(out, "\r") || !strings.HasSuffix(out, "\033[K\n") {
		t.Errorf("terminal output %q", out)
	}
}
