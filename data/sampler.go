package data

import (
	"fmt"

	"github.com/dmlgo/dmlgo/data/internal/rng"
)

// Stream tags keep the random streams of different uses apart.
const (
	tagShuffle = 0x5348_5546 // "SHUF"
	tagPK      = 0x504B_5042 // "PKPB"
	tagAugment = 0x4155_474D // "AUGM"
)

// Sampler plans the batches of an epoch as indices into a Subset. A plan
// depends only on (seed, epoch), which is what makes a loader resumable:
// the state (seed, epoch, batch) locates the next batch exactly.
type Sampler interface {
	// Plan returns the batches of an epoch; every batch is non-empty.
	Plan(seed uint64, epoch int) [][]int
}

// SamplerState is where a loader stands: the next batch it delivers is
// batch Batch of epoch Epoch of the plan seeded by Seed. It is small and
// JSON-serialisable so that a training checkpoint can store it.
type SamplerState struct {
	Seed  uint64 `json:"seed"`
	Epoch int    `json:"epoch"`
	Batch int    `json:"batch"`
}

// String renders the state as "seed=S epoch=E batch=B".
func (s SamplerState) String() string {
	return fmt.Sprintf("seed=%d epoch=%d batch=%d", s.Seed, s.Epoch, s.Batch)
}

// SequentialSampler visits elements 0..N-1 in order, in batches of
// BatchSize, the last one possibly smaller. It ignores seed and epoch
// (evaluation).
type SequentialSampler struct {
	N, BatchSize int
}

// Plan implements Sampler.
func (s SequentialSampler) Plan(seed uint64, epoch int) [][]int {
	if s.BatchSize <= 0 {
		panic("data: SequentialSampler with BatchSize <= 0")
	}
	var plan [][]int
	for i := 0; i < s.N; i += s.BatchSize {
		b := make([]int, min(s.BatchSize, s.N-i))
		for j := range b {
			b[j] = i + j
		}
		plan = append(plan, b)
	}
	return plan
}

// ShuffleSampler visits every element once per epoch in a random order, in
// batches of BatchSize; DropLast drops a last batch smaller than BatchSize.
type ShuffleSampler struct {
	N, BatchSize int
	DropLast     bool
}

// Plan implements Sampler.
func (s ShuffleSampler) Plan(seed uint64, epoch int) [][]int {
	if s.BatchSize <= 0 {
		panic("data: ShuffleSampler with BatchSize <= 0")
	}
	r := rng.New(seed, uint64(epoch), tagShuffle)
	perm := r.Perm(s.N)
	var plan [][]int
	for i := 0; i < s.N; i += s.BatchSize {
		end := min(i+s.BatchSize, s.N)
		if s.DropLast && end-i < s.BatchSize {
			break
		}
		plan = append(plan, perm[i:end:end])
	}
	return plan
}

// PKSampler builds identity-balanced batches: P classes, K images of each,
// so every batch holds positives for every anchor. Within a class it
// alternates domains (consumer, shop, consumer, ...) while both have images
// left, so a batch mixes the two domains of each item. A class with fewer
// than K images repeats some (reshuffled). Every class appears once per
// epoch, in a random order; the last group of fewer than P classes is
// dropped (a different one each epoch).
type PKSampler struct {
	P, K int
	// byClass[c][d] lists the subset elements of class c in domain d.
	byClass [][numDomains][]int
}

// NewPKSampler builds a P x K sampler over a labelled subset.
func NewPKSampler(s *Subset, p, k int) (*PKSampler, error) {
	if p <= 0 || k <= 0 {
		return nil, fmt.Errorf("data: PK sampler needs P > 0 and K > 0, got P=%d K=%d", p, k)
	}
	if s.Labels == nil || s.NumClasses == 0 {
		return nil, fmt.Errorf("data: PK sampler needs a labelled subset (a training set)")
	}
	if s.NumClasses < p {
		return nil, fmt.Errorf("data: PK sampler with P=%d needs at least %d classes, the subset has %d", p, p, s.NumClasses)
	}
	sampler := &PKSampler{P: p, K: k, byClass: make([][numDomains][]int, s.NumClasses)}
	for i, c := range s.Labels {
		d := s.Row(i).Domain
		sampler.byClass[c][d] = append(sampler.byClass[c][d], i)
	}
	for c := range sampler.byClass {
		if len(sampler.byClass[c][Shop])+len(sampler.byClass[c][Consumer]) == 0 {
			return nil, fmt.Errorf("data: PK sampler: class %d has no images", c)
		}
	}
	return sampler, nil
}

// BatchSize returns P*K.
func (s *PKSampler) BatchSize() int { return s.P * s.K }

// Plan implements Sampler.
func (s *PKSampler) Plan(seed uint64, epoch int) [][]int {
	r := rng.New(seed, uint64(epoch), tagPK)
	classes := r.Perm(len(s.byClass))
	numBatches := len(classes) / s.P
	plan := make([][]int, numBatches)
	var pools [numDomains][]int
	for b := range plan {
		batch := make([]int, 0, s.P*s.K)
		for _, c := range classes[b*s.P : (b+1)*s.P] {
			for d := range pools {
				pools[d] = append(pools[d][:0], s.byClass[c][d]...)
				r.Shuffle(len(pools[d]), func(i, j int) { pools[d][i], pools[d][j] = pools[d][j], pools[d][i] })
			}
			var next [numDomains]int
			for j := 0; j < s.K; j++ {
				d := Consumer
				if j%2 == 1 {
					d = Shop
				}
				if next[d] >= len(pools[d]) {
					d = 1 - d // this domain is used up: take the other
				}
				if next[d] >= len(pools[d]) {
					// Both used up: start again (repeats, reshuffled).
					for dom := range pools {
						next[dom] = 0
						r.Shuffle(len(pools[dom]), func(i, j int) { pools[dom][i], pools[dom][j] = pools[dom][j], pools[dom][i] })
					}
					if len(pools[d]) == 0 {
						d = 1 - d
					}
				}
				batch = append(batch, pools[d][next[d]])
				next[d]++
			}
		}
		plan[b] = batch
	}
	return plan
}
