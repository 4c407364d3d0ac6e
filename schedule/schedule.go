// Package schedule decides when each account of a long-running service
// polls: every interval with jitter, at most Workers polls at once, an
// exponential backoff per account after failed polls that never delays the
// other accounts, and an early poll when a watcher (IMAP IDLE) says new
// mail has arrived. It knows nothing about mail: a poll is a function. The
// clock is injected, so tests drive time.
//
// Timing, for an interval E, jitter fraction J (default 0.1) and backoff
// cap C (default 1 h, or E when E is longer):
//
//   - every account polls once at start, then E·(1±J) after each
//     successful poll (uniformly drawn, so that accounts started together
//     drift apart and do not hit the servers in step);
//   - after k failed polls in a row the wait is min(E·2^k, C), with the
//     same jitter; one successful poll resets k to 0;
//   - Trigger makes a healthy account due at once (while it polls, one
//     more poll follows it); an account backing off ignores it.
package schedule

import (
	"context"
	"math/rand/v2"
	"sort"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultJitter     = 0.1
	DefaultMaxBackoff = time.Hour
)

// Clock is the time source. Real is the wall clock.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Real is the wall clock.
var Real Clock = realClock{}

// Options configures a Scheduler.
type Options struct {
	// Every is the interval between polls of an account. Required (> 0).
	Every time.Duration
	// Jitter is the fraction of each wait drawn at random on either side
	// (0.1: ±10 %). 0: DefaultJitter; negative: none.
	Jitter float64
	// MaxBackoff caps the wait after failed polls. 0: DefaultMaxBackoff;
	// never less than Every.
	MaxBackoff time.Duration
	// Workers is how many polls may run at once. 0: 1.
	Workers int
	// Clock is the time source; nil: Real.
	Clock Clock
	// Rand returns a number in [0, 1) for the jitter; nil: math/rand/v2.
	Rand func() float64
}

func (o Options) withDefaults() Options {
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	}
	if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.Jitter > 1 {
		o.Jitter = 1
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.Every)
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Clock == nil {
		o.Clock = Real
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	return o
}

// Delay is the wait before an account's next poll after failures failed
// polls in a row (0 after a success), with r in [0, 1) drawing the jitter:
// min(every·2^failures, maxBackoff) scaled by 1 + jitter·(2r − 1).
func Delay(every time.Duration, failures int, maxBackoff time.Duration, jitter, r float64) time.Duration {
	d := every
	for i := 0; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, max(maxBackoff, every))
	return time.Duration(float64(d) * (1 + jitter*(2*r-1)))
}

// Result is the outcome of one poll, as OnResult sees it.
type Result struct {
	Account  int
	Started  time.Time
	Duration time.Duration
	Err      error
	// Failures is how many polls of the account have failed in a row,
	// this one included (0 after a success).
	Failures int
	// Next is when the account polls next (earlier if Trigger is called).
	Next time.Time
}

// Scheduler polls accounts 0..n-1. Build it with New; Run it once.
type Scheduler struct {
	n        int
	poll     func(ctx context.Context, account int) error
	opts     Options
	onResult func(Result)
	trigger  chan int
}

// New returns a Scheduler for n accounts that calls poll for each poll;
// a non-nil error counts as a failure. onResult, when not nil, is called
// after each poll from Run's goroutine (never concurrently).
func New(n int, poll func(ctx context.Context, account int) error, onResult func(Result), opts Options) *Scheduler {
	return &Scheduler{n: n, poll: poll, opts: opts.withDefaults(), onResult: onResult, trigger: make(chan int, 64)}
}

// Trigger asks for a poll of account as soon as a worker is free: new
// mail was announced. It never blocks; triggers are coalesced. It is safe
// to call from any goroutine, also before Run and after it returned.
func (s *Scheduler) Trigger(account int) {
	select {
	case s.trigger <- account:
	default:
		// The buffer is full of triggers Run has not read yet: the loop is
		// busy and will read them; dropping one loses at most an early
		// poll, never mail (the interval still polls).
	}
}

type accountState struct {
	due      time.Time
	running  bool
	again    bool // triggered while running: poll once more right after
	failures int
}

type done struct {
	account  int
	started  time.Time
	finished time.Time
	err      error
}

// Run polls until ctx ends, then stops starting polls, waits for the polls
// in flight (they see ctx's cancellation: they should finish what they
// are committing and return) and returns ctx's error.
func (s *Scheduler) Run(ctx context.Context) error {
	o := s.opts
	now := o.Clock.Now()
	st := make([]accountState, s.n)
	for i := range st {
		st[i].due = now
	}
	results := make(chan done)
	running := 0
	for {
		if ctx.Err() != nil {
			for ; running > 0; running-- {
				d := <-results
				s.finish(st, d)
			}
			return ctx.Err()
		}
		now = o.Clock.Now()
		// Start what is due, earliest first, while workers are free.
		for _, i := range s.dueOrder(st, now) {
			if running == o.Workers {
				break
			}
			st[i].running, st[i].again = true, false
			running++
			started := now
			go func() {
				err := s.poll(ctx, i)
				results <- done{account: i, started: started, finished: o.Clock.Now(), err: err}
			}()
		}
		// Sleep until the next due account, if a worker could take it.
		var wake <-chan time.Time
		if running < o.Workers {
			if next, ok := s.nextDue(st); ok {
				wake = o.Clock.After(max(0, next.Sub(now)))
			}
		}
		select {
		case <-ctx.Done():
		case d := <-results:
			running--
			s.finish(st, d)
		case i := <-s.trigger:
			if i >= 0 && i < s.n && st[i].failures == 0 {
				if st[i].running {
					st[i].again = true
				} else if st[i].due.After(now) {
					st[i].due = now
				}
			}
		case <-wake:
		}
	}
}

// finish records a poll's outcome and schedules the account's next poll.
func (s *Scheduler) finish(st []accountState, d done) {
	o := s.opts
	a := &st[d.account]
	a.running = false
	if d.err != nil {
		a.failures++
	} else {
		a.failures = 0
	}
	a.due = d.finished.Add(Delay(o.Every, a.failures, o.MaxBackoff, o.Jitter, o.Rand()))
	if a.again && a.failures == 0 {
		a.due = d.finished
	}
	a.again = false
	if s.onResult != nil {
		s.onResult(Result{Account: d.account, Started: d.started, Duration: d.finished.Sub(d.started),
			Err: d.err, Failures: a.failures, Next: a.due})
	}
}

// dueOrder returns the accounts due at now and not running, earliest
// first (ties by index).
func (s *Scheduler) dueOrder(st []accountState, now time.Time) []int {
	var out []int
	for i := range st {
		if !st[i].running && !st[i].due.After(now) {
			out = append(out, i)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return st[out[a]].due.Before(st[out[b]].due) })
	return out
}

// nextDue is the earliest due time of the accounts not running.
func (s *Scheduler) nextDue(st []accountState) (time.Time, bool) {
	var next time.Time
	found := false
	for i := range st {
		if !st[i].running && (!found || st[i].due.Before(next)) {
			next, found = st[i].due, true
		}
	}
	return next, found
}
