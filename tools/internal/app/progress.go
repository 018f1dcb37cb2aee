package app

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress draws a one-line progress bar on a terminal (stderr): a bar,
// counts, and the caller's status (loss, images/s), with an ETA. It redraws
// at most ten times a second; without a terminal it prints a line at each
// tenth of the way instead.
type Progress struct {
	W      io.Writer
	Label  string
	Total  int
	TTY    bool
	start  time.Time
	last   time.Time
	done   int
	status string
	decile int
}

// NewProgress starts a bar of total steps.
func NewProgress(w io.Writer, label string, total int, tty bool) *Progress {
	now := time.Now()
	return &Progress{W: w, Label: label, Total: max(total, 1), TTY: tty, start: now}
}

// Update sets the completed count and the status text.
func (p *Progress) Update(done int, status string) {
	p.done, p.status = done, status
	if p.TTY {
		if time.Since(p.last) < 100*time.Millisecond && done < p.Total {
			return
		}
		p.last = time.Now()
		fmt.Fprintf(p.W, "\r%s\033[K", p.line())
		return
	}
	if d := done * 10 / p.Total; d > p.decile {
		p.decile = d
		fmt.Fprintln(p.W, p.line())
	}
}

// Finish ends the bar's line.
func (p *Progress) Finish(status string) {
	p.status = status
	if p.TTY {
		fmt.Fprintf(p.W, "\r%s\033[K\n", p.line())
	} else {
		fmt.Fprintln(p.W, p.line())
	}
}

func (p *Progress) line() string {
	const width = 24
	filled := p.done * width / p.Total
	bar := strings.Repeat("█", filled) + strings.Repeat("·", width-filled)
	el := time.Since(p.start)
	eta := "?"
	if p.done > 0 {
		eta = (time.Duration(float64(el) / float64(p.done) * float64(p.Total-p.done))).Round(time.Second).String()
	}
	return fmt.Sprintf("%s %s %d/%d %s elapsed %s eta %s", p.Label, bar, p.done, p.Total, p.status, el.Round(time.Second), eta)
}
