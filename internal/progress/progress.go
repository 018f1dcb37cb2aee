// Package progress draws the commands' progress bars on stderr.
package progress

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Bar draws a one-line progress bar on a terminal (stderr): a bar,
// counts, and the caller's status (loss, images/s), with an ETA. It redraws
// at most ten times a second; without a terminal it prints a line at each
// tenth of the way instead.
type Bar struct {
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

// New starts a bar of total steps.
func New(w io.Writer, label string, total int, tty bool) *Bar {
	now := time.Now()
	return &Bar{W: w, Label: label, Total: max(total, 1), TTY: tty, start: now}
}

// Update sets the completed count and the status text, and draws the bar
// when it is due (see Due).
func (p *Bar) Update(done int, status string) {
	p.status = status
	if !p.Due(done) {
		return
	}
	if p.TTY {
		p.last = time.Now()
		fmt.Fprintf(p.W, "\r%s\033[K", p.line())
		return
	}
	p.decile = done * 10 / p.Total
	fmt.Fprintln(p.W, p.line())
}

// Due sets the completed count and reports whether Update would draw the
// bar now: on a terminal every 100 ms and at the end, else at each tenth
// of the total. A caller whose status text costs something to build (a
// training step's) builds it only when the bar is due.
func (p *Bar) Due(done int) bool {
	p.done = done
	if p.TTY {
		return time.Since(p.last) >= 100*time.Millisecond || done >= p.Total
	}
	return done*10/p.Total > p.decile
}

// Finish ends the bar's line.
func (p *Bar) Finish(status string) {
	p.status = status
	if p.TTY {
		fmt.Fprintf(p.W, "\r%s\033[K\n", p.line())
	} else {
		fmt.Fprintln(p.W, p.line())
	}
}

func (p *Bar) line() string {
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
