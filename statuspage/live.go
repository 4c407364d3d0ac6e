package statuspage

import (
	"sync"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// Live follows a run in this process through the engine's progress
// events: which accounts are queued, which are running and how far they
// are, and the throughput over time. It implements pipeline.Progress and
// is safe for concurrent use. The ledger stays the record of what was
// done; Live adds what only the running process knows.
type Live struct {
	mu  sync.Mutex
	now func() time.Time
	// base reads what the ledger has of an account as it starts (the
	// Server sets it): the run's counts add to it.
	base     func(key string) (done, skipped int, bytes int64)
	accounts map[string]*liveAccount // by ledger key
	running  bool                    // a run is going on
	gen      uint64                  // counts starts and ends of accounts and runs
	// buckets count the messages and bytes done per sampleStep, the last
	// maxBuckets of them; first is the start of buckets[0].
	buckets []Sample
}

// sampleStep and maxBuckets shape the live throughput chart: 5 s bars
// over the last hour.
const (
	sampleStep = 5 * time.Second
	maxBuckets = 720
)

type liveAccount struct {
	queued, running bool
	started         time.Time
	// baseDone, baseSkipped and baseBytes are the ledger's done and
	// skipped messages and done bytes when the run started the account.
	baseDone, baseSkipped int
	baseBytes             int64
	copied                int   // messages this run copied (or found copied)
	copiedBytes           int64 // their bytes
	toCopy                int   // messages this run set out to copy (across attempts)
	toCopyBytes           int64 // their sizes as the source announced them
	done                  int   // messages that reached an outcome in this run
	bytes                 int64 // bytes of those
	// pause is the pause the run waits out (a timetable's), from
	// AccountPaused until the account starts again or finishes.
	pause *pipeline.PausedError
	stats *pipeline.Stats
}

// NewLive returns a Live with no accounts; now is the clock (nil: the
// wall clock).
func NewLive(now func() time.Time) *Live {
	if now == nil {
		now = time.Now
	}
	return &Live{now: now, accounts: map[string]*liveAccount{}}
}

// Queue marks the run's accounts (ledger keys) as queued: it has started
// and will work on each of them.
func (l *Live) Queue(keys []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = true
	l.gen++
	for _, k := range keys {
		a := l.account(k)
		if !a.running {
			a.queued = true
		}
	}
}

// End says the run is over: accounts still queued will not be started
// by it (it was interrupted).
func (l *Live) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running = false
	l.gen++
	for _, a := range l.accounts {
		a.queued = false
	}
}

func (l *Live) account(key string) *liveAccount {
	a := l.accounts[key]
	if a == nil {
		a = &liveAccount{}
		l.accounts[key] = a
	}
	return a
}

// AccountStarted implements pipeline.Progress. A retry of the account
// within its run lists again: what the last attempt announced is replaced.
func (l *Live) AccountStarted(key string, toCopy int, toCopyBytes int64) {
	l.mu.Lock()
	base := l.base
	running := l.account(key).running
	l.mu.Unlock()
	var done, skipped int
	var bytes int64
	if base != nil && !running {
		// Outside the lock: a ledger read.
		done, skipped, bytes = base(key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.account(key)
	if !a.running {
		*a = liveAccount{started: l.now(), baseDone: done, baseSkipped: skipped, baseBytes: bytes}
	}
	a.queued, a.running, a.pause = false, true, nil
	a.toCopy, a.toCopyBytes = a.done+toCopy, a.bytes+toCopyBytes
	l.gen++
}

// MessageDone implements pipeline.Progress.
func (l *Live) MessageDone(key string, outcome pipeline.Outcome, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.account(key)
	a.done++
	a.bytes += bytes
	if outcome == pipeline.OutcomeCopied || outcome == pipeline.OutcomeFound {
		a.copied++
		a.copiedBytes += bytes
	}
	if outcome == pipeline.OutcomeCopied {
		b := l.bucket(l.now())
		b.Messages++
		b.Bytes += bytes
	}
}

// AccountPaused implements pipeline.Progress: the run waits out a pause
// of the account, its sessions closed, until it starts again.
func (l *Live) AccountPaused(key string, p *pipeline.PausedError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.account(key).pause = p
	l.gen++
}

// AccountFinished implements pipeline.Progress.
func (l *Live) AccountFinished(key string, st *pipeline.Stats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.account(key)
	a.queued, a.running, a.pause, a.stats = false, false, nil, st
	l.gen++
}

// generation changes whenever an account starts, pauses or finishes; 0 for a nil
// Live.
func (l *Live) generation() uint64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// bucket returns the sample that now falls in, adding empty ones up to it
// and dropping the oldest beyond maxBuckets.
func (l *Live) bucket(now time.Time) *Sample {
	start := now.Truncate(sampleStep)
	if n := len(l.buckets); n == 0 || start.Sub(l.buckets[n-1].Start) > time.Hour {
		l.buckets = append(l.buckets[:0], Sample{Start: start})
	}
	for last := l.buckets[len(l.buckets)-1].Start; last.Before(start); last = last.Add(sampleStep) {
		l.buckets = append(l.buckets, Sample{Start: last.Add(sampleStep)})
	}
	if over := len(l.buckets) - maxBuckets; over > 0 {
		l.buckets = append(l.buckets[:0], l.buckets[over:]...)
	}
	return &l.buckets[len(l.buckets)-1]
}

// liveView is a copy of what Live knows of one account.
type liveView struct {
	queued, running       bool
	started               time.Time
	baseDone, baseSkipped int
	baseBytes             int64
	copied                int
	copiedBytes           int64
	toCopy, done          int
	toCopyBytes           int64
	bytes                 int64
	pause                 *pipeline.PausedError
	stats                 *pipeline.Stats
}

// snapshot copies what Live knows, under its lock.
func (l *Live) snapshot() (map[string]liveView, []Sample, bool) {
	if l == nil {
		return nil, nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	views := make(map[string]liveView, len(l.accounts))
	for k, a := range l.accounts {
		views[k] = liveView{queued: a.queued, running: a.running, started: a.started, toCopy: a.toCopy,
			baseDone: a.baseDone, baseSkipped: a.baseSkipped, baseBytes: a.baseBytes, copied: a.copied, copiedBytes: a.copiedBytes,
			done: a.done, toCopyBytes: a.toCopyBytes, bytes: a.bytes, pause: a.pause, stats: a.stats}
	}
	if len(l.buckets) > 0 {
		l.bucket(l.now()) // bring the chart up to now, with empty bars
	}
	return views, append([]Sample(nil), l.buckets...), l.running
}

// setBase sets how Live reads an account's ledger counts as it starts.
func (l *Live) setBase(base func(key string) (done, skipped int, bytes int64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.base = base
}
