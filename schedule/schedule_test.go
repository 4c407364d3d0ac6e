package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const every = 10 * time.Second
	tests := []struct {
		name     string
		failures int
		max      time.Duration
		jitter   float64
		r        float64
		want     time.Duration
	}{
		{"success, no jitter", 0, time.Hour, 0.1, 0.5, every},
		{"success, lowest jitter", 0, time.Hour, 0.1, 0, 9 * time.Second},
		{"success, highest jitter", 0, time.Hour, 0.1, 1, 11 * time.Second},
		{"one failure doubles", 1, time.Hour, 0.1, 0.5, 20 * time.Second},
		{"three failures", 3, time.Hour, 0.1, 0.5, 80 * time.Second},
		{"capped", 10, time.Minute, 0.1, 0.5, time.Minute},
		{"capped with jitter", 10, time.Minute, 0.1, 1, 66 * time.Second},
		{"cap below every is every", 3, time.Second, 0, 0, every},
		{"many failures do not overflow", 1000, time.Hour, 0, 0, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Delay(every, tt.failures, tt.max, tt.jitter, tt.r); got != tt.want {
				t.Errorf("Delay(%v, %d, %v, %v, %v) = %v, want %v", every, tt.failures, tt.max, tt.jitter, tt.r, got, tt.want)
			}
		})
	}
}

// TestDelayJitterBounds draws many jittered waits: all within ±10 %, and
// spread over the range (not stuck at one value).
func TestDelayJitterBounds(t *testing.T) {
	o := Options{Every: time.Minute}.withDefaults()
	lo, hi := 54*time.Second, 66*time.Second
	seen := map[bool]bool{}
	for i := 0; i < 1000; i++ {
		d := Delay(o.Every, 0, o.MaxBackoff, o.Jitter, o.Rand())
		if d < lo || d > hi {
			t.Fatalf("jittered wait %v outside [%v, %v]", d, lo, hi)
		}
		seen[d < time.Minute] = true
	}
	if !seen[true] || !seen[false] {
		t.Errorf("1000 jittered waits all on one side of the interval")
	}
}

// fakeClock is a Clock the test advances. After reports each wait on
// sleeping (unbuffered), so the test knows when the scheduler sleeps.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	waiters  []fakeWaiter
	sleeping chan time.Time
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	at := c.now.Add(d)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeWaiter{at: at, ch: ch})
	}
	c.mu.Unlock()
	c.sleeping <- at
	return ch
}

func (c *fakeClock) advanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

type pollCall struct {
	account int
	reply   chan error
}

// harness runs a Scheduler on a fake clock; every channel is unbuffered so
// the test and the scheduler move in lockstep.
type harness struct {
	t       *testing.T
	clock   *fakeClock
	start   time.Time
	calls   chan pollCall
	results chan Result
	sched   *Scheduler
	cancel  func()
	stopped chan error
	outcome func(account, nth int) error
	nth     map[int]int
}

func newHarness(t *testing.T, n int, opts Options, outcome func(account, nth int) error) *harness {
	t.Helper()
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &harness{t: t, clock: &fakeClock{now: start, sleeping: make(chan time.Time)}, start: start,
		calls: make(chan pollCall), results: make(chan Result), stopped: make(chan error, 1),
		outcome: outcome, nth: map[int]int{}}
	opts.Clock = h.clock
	opts.Rand = func() float64 { return 0.5 } // no jitter: exact times
	poll := func(ctx context.Context, i int) error {
		c := pollCall{account: i, reply: make(chan error)}
		h.calls <- c
		return <-c.reply
	}
	h.sched = New(n, poll, func(r Result) { h.results <- r }, opts)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.stopped <- h.sched.Run(ctx) }()
	return h
}

// step advances the clock to offset, answers exactly the polls of the
// accounts in want (any order) and returns their results and when the
// scheduler next wakes up.
func (h *harness) step(offset time.Duration, want []int) ([]Result, time.Duration) {
	h.t.Helper()
	h.clock.advanceTo(h.start.Add(offset))
	var got []int
	var results []Result
	var wake time.Time
	timeout := time.After(5 * time.Second)
	for len(results) < len(want) || wake.IsZero() {
		select {
		case c := <-h.calls:
			got = append(got, c.account)
			h.nth[c.account]++
			c.reply <- h.outcome(c.account, h.nth[c.account])
		case r := <-h.results:
			results = append(results, r)
			wake = time.Time{} // only a wait after the last result counts
		case at := <-h.clock.sleeping:
			if len(results) == len(want) && len(got) == len(want) {
				wake = at
			}
		case <-timeout:
			h.t.Fatalf("at %v: polls %v, results %d; want polls %v", offset, got, len(results), want)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		h.t.Fatalf("at %v: polled %v, want %v", offset, got, want)
	}
	return results, wake.Sub(h.start)
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	for {
		select {
		case err := <-h.stopped:
			if !errors.Is(err, context.Canceled) {
				h.t.Errorf("Run = %v, want context.Canceled", err)
			}
			return
		case <-h.clock.sleeping:
		case <-time.After(5 * time.Second):
			h.t.Fatal("Run did not return after cancel")
		}
	}
}

var errDown = errors.New("server down")

// TestBackoffDoesNotDelayOthers: account 0's server is down for its first
// five polls; its waits double (20 s, 40 s, 80 s) up to the cap (100 s),
// and after one success it is back to 10 s. Account 1 polls every 10 s
// throughout, whatever account 0 does.
func TestBackoffDoesNotDelayOthers(t *testing.T) {
	h := newHarness(t, 2, Options{Every: 10 * time.Second, MaxBackoff: 100 * time.Second, Workers: 2},
		func(account, nth int) error {
			if account == 0 && nth <= 5 {
				return errDown
			}
			return nil
		})
	defer h.stop()
	s := time.Second
	var failures []int
	var waits0 []time.Duration
	now := time.Duration(0)
	want := []int{0, 1}
	due0, due1 := time.Duration(-1), time.Duration(-1)
	for now <= 400*s {
		results, wake := h.step(now, want)
		for _, r := range results {
			next := r.Next.Sub(h.start)
			if r.Account == 0 {
				failures = append(failures, r.Failures)
				waits0 = append(waits0, next-now)
				due0 = next
			} else {
				if next-now != 10*s {
					t.Fatalf("at %v: account 1 next in %v, want 10s", now, next-now)
				}
				due1 = next
			}
		}
		if wake != min(due0, due1) {
			t.Fatalf("at %v: scheduler wakes at %v, want %v", now, wake, min(due0, due1))
		}
		now = wake
		want = nil
		if due0 == now {
			want = append(want, 0)
		}
		if due1 == now {
			want = append(want, 1)
		}
	}
	wantWaits := []time.Duration{20 * s, 40 * s, 80 * s, 100 * s, 100 * s, 10 * s, 10 * s}
	if len(waits0) < len(wantWaits) || !slices.Equal(waits0[:len(wantWaits)], wantWaits) {
		t.Errorf("account 0 waits %v, want %v first", waits0, wantWaits)
	}
	if wantF := []int{1, 2, 3, 4, 5, 0, 0}; len(failures) < len(wantF) || !slices.Equal(failures[:len(wantF)], wantF) {
		t.Errorf("account 0 failures in a row %v, want %v first", failures, wantF)
	}
}

// TestWorkersCap: three accounts, two workers, polls that block until
// released: never more than two run at once, and the third starts as soon
// as one finishes.
func TestWorkersCap(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	entered := make(chan int)
	release := make(chan struct{})
	poll := func(_ context.Context, i int) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		entered <- i
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	s := New(3, poll, nil, Options{Every: time.Hour, Workers: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var order []int
	order = append(order, <-entered, <-entered)
	release <- struct{}{}
	order = append(order, <-entered)
	cancel()
	release <- struct{}{}
	release <- struct{}{}
	<-done
	if most != 2 {
		t.Errorf("%d polls ran at once with two workers", most)
	}
	slices.Sort(order)
	if fmt.Sprint(order) != "[0 1 2]" {
		t.Errorf("polled %v, want [0 1 2]", order)
	}
}

// TestTrigger: a trigger polls a healthy account at once instead of at
// its interval; a trigger while it polls makes one more poll follow; an
// account backing off ignores triggers.
func TestTrigger(t *testing.T) {
	h := newHarness(t, 2, Options{Every: time.Hour, Workers: 2}, func(account, nth int) error {
		if account == 1 {
			return errDown
		}
		return nil
	})
	defer h.stop()
	if _, wake := h.step(0, []int{0, 1}); wake != time.Hour {
		t.Fatalf("after the first polls the scheduler wakes at %v, want 1h", wake)
	}
	h.sched.Trigger(1) // backing off: ignored
	h.sched.Trigger(0)
	// The trigger wakes the scheduler without the clock moving.
	res, _ := h.step(5*time.Second, []int{0})
	if res[0].Account != 0 || res[0].Next.Sub(h.start) != 5*time.Second+time.Hour {
		t.Errorf("triggered poll result %+v, want account 0, next in 1h", res[0])
	}
}

// TestStopWaitsForPollsInFlight: cancelling Run lets the running poll
// finish (it sees the cancellation) before Run returns, and starts no more.
func TestStopWaitsForPollsInFlight(t *testing.T) {
	inPoll := make(chan struct{})
	var finished bool
	poll := func(ctx context.Context, i int) error {
		close(inPoll)
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // committing the batch in flight
		finished = true
		return ctx.Err()
	}
	s := New(1, poll, nil, Options{Every: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-inPoll
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if !finished {
		t.Error("Run returned before the poll in flight finished")
	}
}
