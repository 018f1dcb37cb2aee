package tensor

// Headers makes tensor headers (the Tensor values, not their storage) from
// memory it keeps, and makes the same memory into new headers after Reset.
// It is for code that builds the same views over and over and knows when
// all of them are dead: autograd's Graph makes a training step's values
// and gradients from one and resets it with the step, so that steady-state
// training allocates no headers.
//
// A header from Headers must not be used after Reset: its memory is
// cleared then (a stale header sees no storage) and handed out again. The
// zero value is ready to use; a Headers is not safe for concurrent use.
type Headers struct {
	chunks [][]Tensor
	n      int // headers handed out since the last Reset
}

// headerChunk is how many headers Headers allocates at a time.
const headerChunk = 256

func (h *Headers) next() *Tensor {
	c, i := h.n/headerChunk, h.n%headerChunk
	if c == len(h.chunks) {
		h.chunks = append(h.chunks, make([]Tensor, headerChunk))
	}
	h.n++
	return &h.chunks[c][i]
}

// New is New (the package function) with a header from h.
func (h *Headers) New(s Storage, offset int, shape ...int) *Tensor {
	return newIn(h.next(), s, offset, shape)
}

// NewLike is NewLike (the package function) with a header from h.
func (h *Headers) NewLike(s Storage, offset int, like *Tensor) *Tensor {
	return newIn(h.next(), s, offset, like.shape)
}

// Reshape is t.Reshape with a header from h.
func (h *Headers) Reshape(t *Tensor, shape ...int) *Tensor {
	return t.reshapeIn(h.next(), shape)
}

// ViewAs is t.ViewAs with a header from h.
func (h *Headers) ViewAs(t, like *Tensor) *Tensor {
	return t.viewAsIn(h.next(), like)
}

// Len is the number of headers handed out since the last Reset.
func (h *Headers) Len() int { return h.n }

// Reset clears every header handed out and makes their memory free for
// the next ones.
func (h *Headers) Reset() {
	for c := 0; c*headerChunk < h.n; c++ {
		clear(h.chunks[c][:min(headerChunk, h.n-c*headerChunk)])
	}
	h.n = 0
}
