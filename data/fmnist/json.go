package fmnist

import (
	"errors"
	"fmt"
	"io"
)

// The npm package stores each category as {"data": [[784 ints], ...]}. The
// parser below streams it: it never holds more than a buffer of the file and
// one row, checks the JSON syntax, and reports rows that are not exactly 784
// integers in 0..255 (the empty rows of category 0) instead of failing.

// maxDepth bounds the nesting of JSON values skipped in unknown places.
const maxDepth = 512

// scanner reads bytes from r through a buffer and counts the offset.
type scanner struct {
	r    io.Reader
	buf  []byte
	pos  int
	end  int
	base int64 // offset of buf[0] in the stream
	err  error // sticky read error (io.EOF at the end)
	name string
}

func newScanner(r io.Reader, name string) *scanner {
	return &scanner{r: r, buf: make([]byte, 256*1024), name: name}
}

// fill reads more input; it returns false at the end or on error.
func (s *scanner) fill() bool {
	if s.err != nil {
		return false
	}
	s.base += int64(s.end)
	s.pos, s.end = 0, 0
	for s.end == 0 {
		n, err := s.r.Read(s.buf)
		s.end = n
		if err != nil {
			s.err = err
			return n > 0
		}
	}
	return true
}

// peek returns the next byte without consuming it; ok is false at the end.
func (s *scanner) peek() (byte, bool) {
	if s.pos < s.end {
		return s.buf[s.pos], true
	}
	if !s.fill() {
		return 0, false
	}
	return s.buf[s.pos], true
}

// offset is the stream offset of the next byte.
func (s *scanner) offset() int64 { return s.base + int64(s.pos) }

// syntax returns an error naming the file and offset.
func (s *scanner) syntax(format string, a ...any) error {
	if s.err != nil && !errors.Is(s.err, io.EOF) {
		return fmt.Errorf("fmnist: %s: %w", s.name, s.err)
	}
	return fmt.Errorf("fmnist: %s: byte %d: %s", s.name, s.offset(), fmt.Sprintf(format, a...))
}

// skipSpace consumes JSON whitespace and returns the next byte.
func (s *scanner) skipSpace() (byte, bool) {
	for {
		for s.pos < s.end {
			c := s.buf[s.pos]
			if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
				return c, true
			}
			s.pos++
		}
		if !s.fill() {
			return 0, false
		}
	}
}

// expect consumes byte c after optional whitespace.
func (s *scanner) expect(c byte) error {
	got, ok := s.skipSpace()
	if !ok {
		return s.syntax("unexpected end of input, want %q", c)
	}
	if got != c {
		return s.syntax("found %q, want %q", got, c)
	}
	s.pos++
	return nil
}

// delim consumes the ',' or the closing byte that follows a value; closed
// is true for the closing byte. where names the container in errors, with
// row (when >= 0) formatted into it: it runs once per pixel, so nothing is
// formatted unless there is an error.
func (s *scanner) delim(closing byte, where string, row int) (closed bool, err error) {
	if s.pos < s.end {
		if c := s.buf[s.pos]; c == ',' || c == closing {
			s.pos++
			return c == closing, nil
		}
	}
	c, ok := s.skipSpace()
	if row >= 0 {
		where = fmt.Sprintf(where, row)
	}
	if !ok {
		return false, s.syntax("unexpected end of input in %s", where)
	}
	if c != ',' && c != closing {
		return false, s.syntax("found %q in %s, want ',' or %q", c, where, closing)
	}
	s.pos++
	return c == closing, nil
}

// readString consumes a JSON string and returns its raw contents (escapes
// are kept as written; only keys are read, and "data" has none).
func (s *scanner) readString() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	var out []byte
	for {
		c, ok := s.peek()
		if !ok {
			return "", s.syntax("unterminated string")
		}
		s.pos++
		switch {
		case c == '"':
			return string(out), nil
		case c == '\\':
			e, ok := s.peek()
			if !ok {
				return "", s.syntax("unterminated string")
			}
			s.pos++
			out = append(out, c, e)
		case c < 0x20:
			return "", s.syntax("control character in string")
		default:
			if len(out) < 1024 {
				out = append(out, c)
			}
		}
	}
}

// number consumes a JSON number. It returns its value when it is an
// integer in 0..255, else -1 (still a valid number).
func (s *scanner) number() (int, error) {
	v, digits, other := 0, 0, 0
	for {
		i := s.pos
		for ; i < s.end; i++ {
			c := s.buf[i]
			if c >= '0' && c <= '9' {
				if v <= 255 {
					v = v*10 + int(c-'0')
				}
				digits++
				continue
			}
			if c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				other++
				continue
			}
			break
		}
		done := i < s.end
		s.pos = i
		if done || !s.fill() {
			break
		}
	}
	if digits+other == 0 {
		c, _ := s.peek()
		return 0, s.syntax("found %q, want a value", c)
	}
	if other > 0 || v > 255 {
		return -1, nil
	}
	return v, nil
}

// skipValue consumes any JSON value.
func (s *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return s.syntax("values nested more than %d deep", maxDepth)
	}
	c, ok := s.skipSpace()
	if !ok {
		return s.syntax("unexpected end of input, want a value")
	}
	switch {
	case c == '"':
		_, err := s.readString()
		return err
	case c == '[' || c == '{':
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		s.pos++
		if d, ok := s.skipSpace(); ok && d == closing {
			s.pos++
			return nil
		}
		for {
			if c == '{' {
				if _, err := s.readString(); err != nil {
					return err
				}
				if err := s.expect(':'); err != nil {
					return err
				}
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			if closed, err := s.delim(closing, "a value", -1); closed || err != nil {
				return err
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if lit[0] == c {
				for i := 0; i < len(lit); i++ {
					d, ok := s.peek()
					if !ok || d != lit[i] {
						return s.syntax("bad literal, want %s", lit)
					}
					s.pos++
				}
				return nil
			}
		}
	}
	_, err := s.number()
	return err
}

// parseClothes reads one category file. It calls row with each valid row
// (784 pixels; the slice is reused) and bad with the index of each row that
// is not 784 integers in 0..255. Syntax errors are returned.
func parseClothes(r io.Reader, name string, row func([]uint8), bad func(index int, why string)) error {
	s := newScanner(r, name)
	if err := s.expect('{'); err != nil {
		return err
	}
	found := false
	if c, ok := s.skipSpace(); ok && c == '}' {
		s.pos++
	} else {
		for {
			key, err := s.readString()
			if err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			if key == "data" && !found {
				found = true
				if err := parseRows(s, row, bad); err != nil {
					return err
				}
			} else if err := s.skipValue(0); err != nil {
				return err
			}
			closed, err := s.delim('}', "the top-level object", -1)
			if err != nil {
				return err
			}
			if closed {
				break
			}
		}
	}
	if c, ok := s.skipSpace(); ok {
		return s.syntax("found %q after the top-level object", c)
	}
	if s.err != nil && !errors.Is(s.err, io.EOF) {
		return fmt.Errorf("fmnist: %s: %w", name, s.err)
	}
	if !found {
		return fmt.Errorf("fmnist: %s: no \"data\" key in the top-level object", name)
	}
	return nil
}

// parseRows reads the array of rows.
func parseRows(s *scanner, row func([]uint8), bad func(int, string)) error {
	if err := s.expect('['); err != nil {
		return err
	}
	pix := make([]uint8, Pixels)
	if c, ok := s.skipSpace(); ok && c == ']' {
		s.pos++
		return nil
	}
	for index := 0; ; index++ {
		c, ok := s.skipSpace()
		if !ok {
			return s.syntax("unexpected end of input in the data array")
		}
		if c != '[' {
			if err := s.skipValue(0); err != nil {
				return err
			}
			bad(index, "not an array")
		} else {
			s.pos++
			n, valid := 0, true
			if c, ok := s.skipSpace(); ok && c == ']' {
				s.pos++
			} else {
				for {
					c, ok := s.skipSpace()
					if !ok {
						return s.syntax("unexpected end of input in row %d", index)
					}
					v := -1
					if (c >= '0' && c <= '9') || c == '-' {
						var err error
						if v, err = s.number(); err != nil {
							return err
						}
					} else if err := s.skipValue(1); err != nil {
						return err
					}
					if v < 0 {
						valid = false
					} else if n < Pixels {
						pix[n] = uint8(v)
					}
					n++
					closed, err := s.delim(']', "row %d", index)
					if err != nil {
						return err
					}
					if closed {
						break
					}
				}
			}
			switch {
			case !valid:
				bad(index, "a value is not an integer in 0..255")
			case n != Pixels:
				bad(index, fmt.Sprintf("%d values, want %d", n, Pixels))
			default:
				row(pix)
			}
		}
		if closed, err := s.delim(']', "the data array", -1); closed || err != nil {
			return err
		}
	}
}
