package traffic

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailferry/mailferry/pipeline"
)

// MaxHold is the longest the engine is made to wait with its sessions
// open: a longer wait (the next message under a slow message rate, a
// pause, a quota) ends the attempt instead, and the sessions are opened
// again when it is over. Servers drop idle IMAP sessions after 30 minutes
// at the earliest (RFC 3501 §5.4) and POP3 sessions after 10 (RFC 1939
// §3); the connections' own idle timeout is 2 minutes.
const MaxHold = 30 * time.Second

// Limits are the rate limits of one scope: an account, or the whole run.
// Zero timetables limit nothing.
type Limits struct {
	Read     Timetable // bytes per second read from the source
	Write    Timetable // bytes per second written to the destination
	Messages Timetable // messages per second fetched
}

// Quota is an account's daily quota: bytes of messages read from the
// source and written to the destination per day (the Location's midnight
// to midnight); 0: none.
type Quota struct {
	ReadBytes, WrittenBytes int64
}

// Options configure a Run.
type Options struct {
	// Clock is the time source; nil: Real.
	Clock Clock
	// Location is the zone of the timetables and of the quota days;
	// nil: time.Local.
	Location *time.Location
	// Total are the whole run's limits, shared by its accounts.
	Total Limits
	// Usage keeps the quota usage; nil: a MemoryUsage of this Run.
	Usage UsageStore
	// Logger receives the limits' changes and the pauses; nil discards.
	Logger *slog.Logger
}

// Run holds what the accounts of one command share: the run's limits and
// clock. It is safe for concurrent use.
type Run struct {
	clock Clock
	loc   *time.Location
	usage UsageStore
	log   *slog.Logger
	total scope
}

// scope is the limits of an account or of the run.
type scope struct {
	read, write, msgs *limit
}

func (s scope) all() []*limit { return []*limit{s.read, s.write, s.msgs} }

// NewRun returns the run's traffic control.
func NewRun(o Options) *Run {
	r := &Run{clock: o.Clock, loc: o.Location, usage: o.Usage, log: o.Logger}
	if r.clock == nil {
		r.clock = Real
	}
	if r.loc == nil {
		r.loc = time.Local
	}
	if r.usage == nil {
		r.usage = &MemoryUsage{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.total = r.scope(o.Total, "run", "_total")
	return r
}

func (r *Run) scope(l Limits, who, suffix string) scope {
	return scope{
		read:  newLimit(l.Read, "bwlimit_read"+suffix, who, r.log),
		write: newLimit(l.Write, "bwlimit_write"+suffix, who, r.log),
		msgs:  newLimit(l.Messages, "max_messages_per_second"+suffix, who, r.log),
	}
}

// Location is the zone of the timetables and quota days.
func (r *Run) Location() *time.Location { return r.loc }

// Account returns the traffic control of one account (name is its ledger
// key: the quota's usage is kept under it). Each call makes a new one:
// call it once per account and command.
func (r *Run) Account(name string, l Limits, q Quota) *Account {
	return &Account{run: r, name: name, own: r.scope(l, name, ""), quota: q}
}

// Account paces one account; it implements pipeline.Traffic.
type Account struct {
	run   *Run
	name  string
	own   scope
	quota Quota

	mu        sync.Mutex
	window    time.Time // start of the quota day usage counts
	usage     Usage     // of window, stored and not yet stored
	unstored  Usage     // added since the last AddUsage
	holdUntil time.Time // a message rate too slow to wait for with sessions open
	holdWhy   string
	// exhausted: a quota was reached; the account pauses until then.
	exhausted    time.Time
	exhaustedWhy string
	// recorded, when set, reads what earlier runs recorded of a window
	// (the ledger's usage, which the engine adds to with each commit): it
	// replaces the run's UsageStore for this account (see RecordedUsage).
	recorded func(ctx context.Context, window time.Time) (Usage, error)
}

var _ pipeline.Traffic = (*Account)(nil)

// Window returns the start of the quota day the run's clock is in:
// midnight in the run's zone. The engine files the usage it records
// under it, so that the ledger's days are the quotas' days.
func (r *Run) Window() time.Time {
	start, _ := dayOf(r.clock.Now().In(r.loc))
	return start
}

func (a *Account) limits() []*limit {
	return append(a.own.all(), a.run.total.all()...)
}

// pause returns the pause in effect at now, if any timetable of the
// account or the run says pause: until when (the earliest time one of
// them changes) and which.
func (a *Account) pause(now time.Time) (until time.Time, why string, paused bool) {
	for _, l := range a.limits() {
		if l == nil {
			continue
		}
		v, next := l.at(now.In(a.run.loc))
		if v.Kind != Pause {
			continue
		}
		if !paused || !next.IsZero() && next.Before(until) {
			until, why = next, l.key+" timetable ("+l.tt.String()+")"
		}
		paused = true
	}
	return until, why, paused
}

// Ready implements pipeline.Traffic.
func (a *Account) Ready(ctx context.Context) error {
	c := a.run.clock
	for {
		now := c.Now()
		a.mu.Lock()
		hold, why := a.holdUntil, a.holdWhy
		a.mu.Unlock()
		if now.Before(hold) {
			a.run.log.Info("waiting before the next message", "account", a.name, "until", hold.Format(time.RFC3339), "because", why)
			if err := c.WaitUntil(ctx, hold); err != nil {
				return err
			}
			continue
		}
		if until, why, paused := a.pause(now); paused {
			if until.IsZero() {
				return &pipeline.PausedError{Until: time.Time{}, Reason: why + " pauses it at all times", Wait: false}
			}
			a.run.log.Info("paused by the schedule; sessions closed", "account", a.name, "until", until.In(a.run.loc).Format(time.RFC3339), "because", why)
			if err := c.WaitUntil(ctx, until); err != nil {
				return err
			}
			continue
		}
		if err := a.quotaReached(ctx, now, 0, 0); err != nil {
			return err
		}
		return nil
	}
}

// Fetch implements pipeline.Traffic.
func (a *Account) Fetch(ctx context.Context, size int64) error {
	c := a.run.clock
	now := c.Now()
	if until, why, paused := a.pause(now); paused {
		return a.paused(until, why)
	}
	if err := a.quotaReached(ctx, now, max(size, 1), 0); err != nil {
		return err
	}
	ls := []*limit{a.own.msgs, a.run.total.msgs}
	wake, rs := reserve(now, a.run.loc, 1, ls)
	if wake.Sub(now) > MaxHold {
		cancel(rs, now)
		a.mu.Lock()
		a.holdUntil, a.holdWhy = wake, "max_messages_per_second"
		a.mu.Unlock()
		return &pipeline.PausedError{Until: wake, Reason: "the message rate allows the next message in " + wake.Sub(now).Round(time.Second).String() +
			": sessions are closed meanwhile", Wait: true}
	}
	return wait(ctx, c, now, wake, rs)
}

// paused is the error of a timetable's pause until until.
func (a *Account) paused(until time.Time, why string) error {
	if until.IsZero() {
		return &pipeline.PausedError{Reason: why + " pauses it at all times"}
	}
	return &pipeline.PausedError{Until: until, Reason: why, Wait: true}
}

// Send implements pipeline.Traffic.
func (a *Account) Send(ctx context.Context, bytes int64) error {
	now := a.run.clock.Now()
	if until, why, paused := a.pause(now); paused {
		return a.paused(until, why)
	}
	return a.quotaReached(ctx, now, 0, max(bytes, 1))
}

// Read implements pipeline.Traffic.
func (a *Account) Read(ctx context.Context, n int) error {
	a.count(ctx, Usage{ReadBytes: int64(n)})
	return pace(ctx, a.run.clock, a.run.loc, n, a.own.read, a.run.total.read)
}

// Write implements pipeline.Traffic.
func (a *Account) Write(ctx context.Context, n int) error {
	a.count(ctx, Usage{WrittenBytes: int64(n)})
	return pace(ctx, a.run.clock, a.run.loc, n, a.own.write, a.run.total.write)
}

// limit is one rate limit following its timetable.
type limit struct {
	tt       Timetable
	key, who string
	log      *slog.Logger

	mu  sync.Mutex
	lim *rate.Limiter
	cur Value
	set bool
	// last is the latest time a reservation was made at. Goroutines
	// sharing a limit read the clock before taking its lock, so one may
	// arrive with a time earlier than another's; rate.Limiter then moves
	// its own clock back and hands out the tokens of that interval twice.
	last time.Time
}

func newLimit(tt Timetable, key, who string, log *slog.Logger) *limit {
	if len(tt.changes) == 0 {
		return nil
	}
	return &limit{tt: tt, key: key, who: who, log: log}
}

// burstOf is a bucket's depth: a tenth of a second of the rate, so that
// any wait is short and a minute's average within a fraction of a percent
// of the rate.
func burstOf(r float64) int { return int(math.Max(1, math.Ceil(r/10))) }

// at sets the bucket to the timetable's value at now and returns it.
func (l *limit) at(now time.Time) (Value, time.Time) {
	v, next := l.tt.At(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set && v == l.cur {
		return v, next
	}
	if l.set {
		l.log.Info("traffic limit changed", "limit", l.key, "for", l.who, "from", l.cur.format(l.tt.unit), "to", v.format(l.tt.unit))
	}
	if v.Kind == Limit {
		if l.lim == nil {
			l.lim = rate.NewLimiter(rate.Limit(v.Rate), burstOf(v.Rate))
		} else {
			l.lim.SetLimitAt(now, rate.Limit(v.Rate))
			l.lim.SetBurstAt(now, burstOf(v.Rate))
		}
	}
	l.cur, l.set = v, true
	return v, next
}

// reserve takes n tokens (at most each bucket's depth) of every limit in
// effect at now; wake is when they are all there.
func reserve(now time.Time, loc *time.Location, n int, ls []*limit) (wake time.Time, rs []*rate.Reservation) {
	wake = now
	for _, l := range ls {
		if l == nil {
			continue
		}
		if v, _ := l.at(now.In(loc)); v.Kind != Limit {
			continue
		}
		l.mu.Lock()
		at := now
		if at.Before(l.last) {
			at = l.last
		}
		l.last = at
		r := l.lim.ReserveN(at, min(n, l.lim.Burst()))
		l.mu.Unlock()
		if !r.OK() {
			continue
		}
		rs = append(rs, r)
		if t := at.Add(r.DelayFrom(at)); t.After(wake) {
			wake = t
		}
	}
	return wake, rs
}

func cancel(rs []*rate.Reservation, now time.Time) {
	for _, r := range rs {
		r.CancelAt(now)
	}
}

// wait waits until wake, giving the reservations back when ctx ends.
func wait(ctx context.Context, c Clock, now, wake time.Time, rs []*rate.Reservation) error {
	if !wake.After(now) {
		return ctx.Err()
	}
	if err := c.WaitUntil(ctx, wake); err != nil {
		cancel(rs, c.Now())
		return err
	}
	return nil
}

// pace waits as n bytes require under every limit of ls in effect, chunk
// by chunk (no chunk larger than a bucket's depth).
func pace(ctx context.Context, c Clock, loc *time.Location, n int, ls ...*limit) error {
	for n > 0 {
		now := c.Now()
		chunk := n
		for _, l := range ls {
			if l == nil {
				continue
			}
			if v, _ := l.at(now.In(loc)); v.Kind == Limit {
				chunk = min(chunk, burstOf(v.Rate))
			}
		}
		wake, rs := reserve(now, loc, chunk, ls)
		if err := wait(ctx, c, now, wake, rs); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// String describes the account's limits for logs.
func (a *Account) String() string {
	return fmt.Sprintf("%s: read %v, write %v, messages %v, quota read %d written %d", a.name,
		ttOf(a.own.read), ttOf(a.own.write), ttOf(a.own.msgs), a.quota.ReadBytes, a.quota.WrittenBytes)
}

func ttOf(l *limit) string {
	if l == nil {
		return "off"
	}
	return l.tt.String()
}
