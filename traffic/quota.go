package traffic

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// Usage is what an account moved in one quota window (a day).
type Usage struct {
	Window       time.Time // start of the window
	ReadBytes    int64     // bytes of messages read from the source
	WrittenBytes int64     // bytes of messages written to the destination
}

// UsageStore keeps what each account moved per quota window, so that a
// quota holds across the polls of the service. Across runs, the ledger's
// usage (RecordedUsage) takes its place for an account.
type UsageStore interface {
	// Usage returns what account moved in the window starting at window.
	Usage(ctx context.Context, account string, window time.Time) (Usage, error)
	// AddUsage adds u to account's window u.Window.
	AddUsage(ctx context.Context, account string, u Usage) error
}

// MemoryUsage is a UsageStore in memory. The zero value is ready to use.
type MemoryUsage struct {
	mu sync.Mutex
	m  map[string]Usage // by account and window
}

func usageKey(account string, window time.Time) string {
	return account + "\x00" + window.UTC().Format(time.RFC3339)
}

// Usage implements UsageStore.
func (m *MemoryUsage) Usage(_ context.Context, account string, window time.Time) (Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.m[usageKey(account, window)]
	u.Window = window
	return u, nil
}

// AddUsage implements UsageStore.
func (m *MemoryUsage) AddUsage(_ context.Context, account string, u Usage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]Usage{}
	}
	k := usageKey(account, u.Window)
	cur := m.m[k]
	cur.ReadBytes += u.ReadBytes
	cur.WrittenBytes += u.WrittenBytes
	m.m[k] = cur
	return nil
}

// storeEvery is how much usage an account gathers before it is added to
// the store (and when a quota check or a new window comes).
const storeEvery = 1 << 20

// dayOf returns the quota window holding now: local midnight to midnight.
func dayOf(now time.Time) (start, end time.Time) {
	y, m, d := now.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, now.Location()), time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
}

// sync moves the usage to the window of now, storing what it gathered of
// the old one and loading the new one's. Called with a.mu held.
func (a *Account) syncWindow(ctx context.Context, now time.Time) error {
	start, _ := dayOf(now.In(a.run.loc))
	if a.window.Equal(start) {
		return nil
	}
	if err := a.store(ctx); err != nil {
		return err
	}
	var u Usage
	var err error
	if a.recorded != nil {
		u, err = a.recorded(ctx, start)
		u.Window = start
	} else {
		u, err = a.run.usage.Usage(ctx, a.name, start)
	}
	if err != nil {
		return fmt.Errorf("reading the daily quota's usage of %s: %w", a.name, err)
	}
	a.window, a.usage, a.unstored = start, u, Usage{Window: start}
	return nil
}

// store adds the usage gathered since the last store. Called with a.mu
// held.
func (a *Account) store(ctx context.Context) error {
	if a.window.IsZero() || a.unstored.ReadBytes == 0 && a.unstored.WrittenBytes == 0 {
		return nil
	}
	if a.recorded != nil {
		// The engine records the usage itself, with the commits of the
		// messages it belongs to: adding it here too would count it twice.
		a.unstored = Usage{Window: a.window}
		return nil
	}
	if err := a.run.usage.AddUsage(ctx, a.name, a.unstored); err != nil {
		return fmt.Errorf("recording the daily quota's usage of %s: %w", a.name, err)
	}
	a.unstored = Usage{Window: a.window}
	return nil
}

// count adds u to the account's usage. A failing store is logged: bytes
// already moved cannot be taken back, and the count in memory still
// holds the quota for this process.
func (a *Account) count(ctx context.Context, u Usage) {
	if a.quota == (Quota{}) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.syncWindow(ctx, a.run.clock.Now()); err != nil {
		a.run.log.Warn("daily quota", "account", a.name, "error", err)
	}
	a.usage.ReadBytes += u.ReadBytes
	a.usage.WrittenBytes += u.WrittenBytes
	a.unstored.ReadBytes += u.ReadBytes
	a.unstored.WrittenBytes += u.WrittenBytes
	if a.unstored.ReadBytes+a.unstored.WrittenBytes >= storeEvery {
		if err := a.store(ctx); err != nil {
			a.run.log.Warn("daily quota", "account", a.name, "error", err)
		}
	}
}

// quotaReached returns a *pipeline.PausedError (without Wait) when reading
// read more bytes or writing written more would pass a daily quota. The
// first message or batch of a day always passes, however large: else a
// message larger than the quota would stop the account for ever.
func (a *Account) quotaReached(ctx context.Context, now time.Time, read, written int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Before(a.exhausted) {
		if err := a.store(ctx); err != nil {
			a.run.log.Warn("daily quota", "account", a.name, "error", err)
		}
		return &pipeline.PausedError{Until: a.exhausted, Reason: a.exhaustedWhy}
	}
	if a.quota == (Quota{}) {
		return nil
	}
	if err := a.syncWindow(ctx, now); err != nil {
		return err
	}
	q, u := a.quota, a.usage
	var why string
	switch {
	case q.ReadBytes > 0 && u.ReadBytes > 0 && u.ReadBytes+read > q.ReadBytes:
		why = fmt.Sprintf("daily quota of %s read reached (%s read today)", formatBytes(q.ReadBytes), formatBytes(u.ReadBytes))
	case q.WrittenBytes > 0 && u.WrittenBytes > 0 && u.WrittenBytes+written > q.WrittenBytes:
		why = fmt.Sprintf("daily quota of %s written reached (%s written today)", formatBytes(q.WrittenBytes), formatBytes(u.WrittenBytes))
	default:
		return nil
	}
	if err := a.store(ctx); err != nil {
		a.run.log.Warn("daily quota", "account", a.name, "error", err)
	}
	_, end := dayOf(now.In(a.run.loc))
	a.exhausted, a.exhaustedWhy = end, why
	return &pipeline.PausedError{Until: end, Reason: why}
}

// formatBytes prints n as the rates print bytes: "500 MB", "2.5 GB".
func formatBytes(n int64) string { return strings.TrimSuffix(FormatRate(float64(n), Bytes), "/s") }

// ServerQuota implements pipeline.Traffic: a server refused the account
// more today, so it pauses until the end of the quota window (local
// midnight in the run's zone), as when its own quota is reached. The
// ledger's usage (RecordedUsage) is not consulted: the server, not a
// count of bytes, said the day is over.
func (a *Account) ServerQuota(reason string) *pipeline.PausedError {
	_, end := dayOf(a.run.clock.Now().In(a.run.loc))
	a.Exhausted(end, reason)
	return &pipeline.PausedError{Until: end, Reason: reason}
}

// RecordedUsage makes the account's daily quota hold across runs: read
// returns what earlier runs recorded of a window (the ledger's usage,
// filed under Run.Window), read once when the account first moves bytes
// in a window; this run's bytes are counted on top in memory and not
// handed to the run's UsageStore, since the engine records them with
// its commits. Call it before the account moves anything.
func (a *Account) RecordedUsage(read func(ctx context.Context, window time.Time) (Usage, error)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recorded = read
}

// Exhausted tells the account that a quota was reached and that it must
// not go on before until (an earlier run's pause, recorded in the
// ledger): Ready and Fetch return a pause with reason until then.
func (a *Account) Exhausted(until time.Time, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if until.After(a.exhausted) {
		a.exhausted, a.exhaustedWhy = until, reason
	}
}
