package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The parallel-for engine: parallelFor and its helpers (splitWith, splitN,
// splitElemsN) spread a loop's ranges over the calling goroutine and the
// helper team below; splitRange cuts a range into fixed parts for loops
// that keep per-part partial sums.

// kernel is the body of a parallel loop: chunk does items [lo, hi).
// Kernels are small structs of their arguments with a chunk method, kept
// in a freeList per type (splitWith), so that a call allocates nothing; a
// closure handed to another goroutine would be allocated on every call.
type kernel interface{ chunk(lo, hi int) }

// funcKernel makes a function a kernel, for code off the hot paths (and
// tests); the closure is allocated per call.
type funcKernel func(lo, hi int)

func (f funcKernel) chunk(lo, hi int) { f(lo, hi) }

// splitWith runs k over [0, n) on up to threads goroutines (parallelFor),
// through a copy kept in list.
func splitWith[K any, PK interface {
	*K
	kernel
}](list *freeList[K], n, threads int, k K) {
	splitGrain[K, PK](list, n, threads, 1, k)
}

// splitGrain is splitWith with ranges of at least grain items, but the
// last (parallelForGrain).
func splitGrain[K any, PK interface {
	*K
	kernel
}](list *freeList[K], n, threads, grain int, k K) {
	p := list.get()
	*p = k
	parallelForGrain(n, threads, grain, PK(p))
	var zero K
	*p = zero // keep no references to the caller's buffers
	list.put(p)
}

// splitN is splitWith over the backend's threads, on one goroutine in
// reference mode.
func splitN[K any, PK interface {
	*K
	kernel
}](b *Backend, list *freeList[K], n int, k K) {
	splitGrainN[K, PK](b, list, n, 1, k)
}

// splitGrainN is splitN with ranges of at least grain items, but the
// last: for loops whose items cost less taken together.
func splitGrainN[K any, PK interface {
	*K
	kernel
}](b *Backend, list *freeList[K], n, grain int, k K) {
	threads := b.Threads()
	if b.ref {
		threads = 1
	}
	splitGrain[K, PK](list, n, threads, grain, k)
}

// splitElemsN is splitN for elementwise work: below 32K elements one
// goroutine.
func splitElemsN[K any, PK interface {
	*K
	kernel
}](b *Backend, list *freeList[K], n int, k K) {
	threads := b.Threads()
	if n < 1<<15 {
		threads = 1
	}
	splitWith[K, PK](list, n, threads, k)
}

// parallelFor runs body over contiguous ranges that cover [0, n), on the
// calling goroutine and up to threads-1 helpers of the team (below). The
// ranges are handed out as goroutines ask, so a helper that arrives late
// or runs on a busy core takes fewer of them; see forJob for their sizes.
func parallelFor(n, threads int, body kernel) {
	parallelForGrain(n, threads, 1, body)
}

// parallelForGrain is parallelFor with ranges of at least grain items,
// but the last.
func parallelForGrain(n, threads, grain int, body kernel) {
	if threads <= 1 || n <= 1 {
		body.chunk(0, n)
		return
	}
	j := forJobs.get()
	// No range shorter than 1/16 of a thread's share: that bounds the
	// ranges (about six a thread) and what each costs to hand out and set
	// up.
	grain = max(grain, (n+16*threads-1)/(16*threads))
	j.body, j.n, j.div, j.grain = body, int64(n), int64(2*threads), int64(grain)
	j.next.Store(0)
	j.teamJob.j = j
	teamRun(threads-1, &j.teamJob)
	j.body = nil
	forJobs.put(j)
}

// forJob is one call of parallelFor. Its ranges shrink as the loop goes
// on ("guided" scheduling): each takes 1/div of the items left (div is
// twice the threads), at least grain, so the first are long and the last
// short, and the goroutines finish within about one short range of each
// other. Equal ranges, four a thread, left one waiting up to a
// quarter of its share at the end of each loop: at batch 1, a tenth of a
// layer's time on the pointwise GEMMs split by columns. The ranges depend
// on n, div and grain alone, not on which goroutine takes them.
// teamRun returns when every goroutine has left run, so every range is
// done by then.
type forJob struct {
	teamJob
	body          kernel
	n, div, grain int64
	next          atomic.Int64 // the start of the next range
}

var forJobs freeList[forJob]

func (j *forJob) run() {
	for {
		lo := j.next.Load()
		if lo >= j.n {
			return
		}
		hi := min(j.n, lo+max(j.grain, (j.n-lo)/j.div))
		if !j.next.CompareAndSwap(lo, hi) {
			continue
		}
		j.body.chunk(int(lo), int(hi))
	}
}

// splitRange cuts [0, n) into at most parts ranges whose boundaries are
// multiples of unit.
func splitRange(n, parts, unit int) [][2]int {
	return splitRangeInto(nil, n, parts, unit)
}

// splitRangeInto is splitRange appending to out.
func splitRangeInto(out [][2]int, n, parts, unit int) [][2]int {
	units := (n + unit - 1) / unit
	parts = min(parts, units)
	start := 0
	for p := 0; p < parts; p++ {
		end := min(n, (units*(p+1)/parts)*unit)
		if end > start {
			out = append(out, [2]int{start, end})
		}
		start = end
	}
	return out
}

// The helper team: goroutines that run the parallel parts of the kernels
// (gemmParallel, parallelFor) beside the calling goroutine.
//
// A goroutine started for each call would be too slow to arrive: the OS
// takes about 0.1 ms (median; several ms at worst) to wake a parked thread
// on the KVM guest this was tuned on, longer than many whole kernels (a
// 256³ SGEMM takes 0.14 ms on one core). So the helpers stay: after a job
// they spin for teamSpin (yielding to other goroutines and threads, see
// relax), during which a new job reaches them in about a microsecond, and
// only then park. Back-to-back kernels, the common case in training, keep
// them hot; an idle program has them all parked.
//
// A job is a function every participant runs once; it hands out its own
// work (an atomic counter) and returns on the calling goroutine only when
// all of it is done, so a helper that arrives late finds nothing left and
// returns at once. One job runs at a time; a concurrent caller gets fresh
// goroutines instead.

// relax is one step of a wait for work that another goroutine does: it
// lets this program's other goroutines run (Gosched) and other threads
// that share this CPU (yieldThread). On an oversubscribed machine the
// thread a waiter waits for may share its CPU, and a waiter that kept the
// CPU would hold it up for a whole OS time slice.
func relax() {
	runtime.Gosched()
	yieldThread()
}

// teamSpin is how long an idle helper waits for the next job before it
// parks.
const teamSpin = 200 * time.Microsecond

// job is a parallel kernel's work: run is called on the calling goroutine
// and on each helper that joins.
type job interface{ run() }

// teamJob is what the team sees of a job; kernels embed it in their job
// state (gemmJob, forJob). teamRun returns only when every helper that
// joined has left run, so the job state can be kept for the next call and
// a call allocates nothing.
//
// A helper may hold a pointer to a job from an earlier call (it read
// team.job just before the job was published again); state makes that
// harmless. It packs how many helpers may join (high half) and how many
// did (low half): a helper joins with a compare-and-swap while a place is
// left, teamRun opens the places only after the job's fields are set, and
// closes them (state 0) before it waits for the joined helpers to leave.
// A late helper therefore either joins the job as it is now, fully set up,
// or not at all.
type teamJob struct {
	j     job
	state atomic.Uint64
	left  atomic.Uint32 // joined helpers that returned from run
}

// join runs the job on a helper if a place is left.
func (tj *teamJob) join() {
	for {
		s := tj.state.Load()
		if uint32(s) >= uint32(s>>32) {
			return
		}
		if tj.state.CompareAndSwap(s, s+1) {
			break
		}
	}
	tj.j.run()
	tj.left.Add(1)
}

// open lets up to helpers helpers join.
func (tj *teamJob) open(helpers int) {
	tj.left.Store(0)
	tj.state.Store(uint64(helpers) << 32)
}

// close stops further joins and waits until the helpers that joined have
// returned from run.
func (tj *teamJob) close() {
	joined := uint32(tj.state.Swap(0))
	for tj.left.Load() < joined {
		relax()
	}
}

var team struct {
	mu      sync.Mutex // held by the caller of the running job
	job     atomic.Pointer[teamJob]
	gen     atomic.Uint64 // bumped with each job
	parked  atomic.Int32
	wake    chan struct{}
	started int // helpers started, under mu
}

// teamRun runs tj.j on the calling goroutine and on up to helpers more,
// and returns when all of them have returned from run.
func teamRun(helpers int, tj *teamJob) {
	helpers = min(helpers, runtime.GOMAXPROCS(0)-1)
	if helpers <= 0 {
		tj.j.run()
		return
	}
	tj.open(helpers)
	defer tj.close()
	if !team.mu.TryLock() {
		// The team is busy (another caller, or a kernel called from a
		// job's body): fresh goroutines.
		for range helpers {
			go tj.join()
		}
		tj.j.run()
		return
	}
	defer team.mu.Unlock()
	if team.wake == nil {
		team.wake = make(chan struct{}, runtime.NumCPU())
	}
	for ; team.started < helpers && team.started < cap(team.wake); team.started++ {
		go teamHelper()
	}
	team.job.Store(tj)
	team.gen.Add(1)
	for n := team.parked.Load(); n > 0; n-- {
		select {
		case team.wake <- struct{}{}:
		default:
		}
	}
	tj.j.run()
}

// teamHelper runs each new job, spinning between jobs for teamSpin.
func teamHelper() {
	var seen uint64
	for {
		gen := team.gen.Load()
		if gen == seen {
			if !teamWait(seen) {
				// Park; re-check after announcing it, so that a job
				// published in between is not missed.
				team.parked.Add(1)
				if team.gen.Load() == seen {
					<-team.wake
				}
				team.parked.Add(-1)
			}
			continue
		}
		seen = gen
		team.job.Load().join()
	}
}

// teamWait spins until a job newer than seen is published (true) or
// teamSpin has passed (false).
func teamWait(seen uint64) bool {
	start := time.Now()
	for i := 0; ; i++ {
		if team.gen.Load() != seen {
			return true
		}
		if i%16 == 15 && time.Since(start) > teamSpin {
			return false
		}
		relax()
	}
}
