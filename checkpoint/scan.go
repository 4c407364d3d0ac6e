package checkpoint

import (
	"context"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// ScanOptions select the entries Each reads. The zero value reads every
// entry of the account.
type ScanOptions struct {
	// States, when not empty, reads only entries in these states.
	States []pipeline.State
	// After, when set, starts after this key (paging).
	After string
	// Limit, when positive, reads at most this many entries.
	Limit int
}

// Each calls fn with each entry of the account key names (AccountOfKey),
// in key order, a page of Scan at a time: it holds one page, whatever the
// size of the account. An account the ledger does not know has no
// entries. An error from fn stops it and is returned as it is.
func (l *Ledger) Each(ctx context.Context, key string, opts ScanOptions, fn func(pipeline.Entry) error) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	id, ok, err := l.accountOfKey(ctx, l.r, key)
	if err != nil || !ok {
		return err
	}
	q := pipeline.Query{States: opts.States, After: opts.After}
	n := 0
	for {
		page, next, err := l.Scan(ctx, id, q)
		if err != nil {
			return err
		}
		for _, e := range page {
			if opts.Limit > 0 && n >= opts.Limit {
				return nil
			}
			n++
			if err := fn(e); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		q.After = next
	}
}

// AccountSummary is what the ledger knows about one account, for the
// status page.
type AccountSummary struct {
	Done    int
	Pending int
	Skipped int
	Failed  int
	// Bytes is the total size of the done entries: the bytes moved.
	Bytes int64
	// AllBytes is the total size of the entries in every state the source
	// still lists (not gone, removing, removed).
	AllBytes int64
	// SkipReasons counts the skipped entries by reason.
	SkipReasons map[string]int
	// LastRun is the most recent run, nil when there was none.
	LastRun *pipeline.RunRecord
	// Holder and Worker say who runs the account now (AccountStatus).
	Holder int
	Worker string
}

func summaryOf(a AccountStatus) AccountSummary {
	c := a.Counts
	sum := AccountSummary{Done: int(c[pipeline.StateDone].Messages), Pending: int(c[pipeline.StatePending].Messages),
		Skipped: int(c[pipeline.StateSkipped].Messages), Failed: int(c[pipeline.StateFailed].Messages),
		Bytes: c[pipeline.StateDone].Bytes, SkipReasons: a.SkipReasons, LastRun: a.LastRun, Holder: a.Holder, Worker: a.Worker}
	for _, s := range []pipeline.State{pipeline.StateDone, pipeline.StatePending, pipeline.StateSkipped, pipeline.StateFailed} {
		sum.AllBytes += c[s].Bytes
	}
	return sum
}

// Summary returns what the ledger knows of the account key names; the
// zero AccountSummary for one it does not know.
func (l *Ledger) Summary(ctx context.Context, key string) (AccountSummary, error) {
	if err := l.checkOpen(); err != nil {
		return AccountSummary{}, err
	}
	id, ok, err := l.accountOfKey(ctx, l.r, key)
	if err != nil || !ok {
		return AccountSummary{}, err
	}
	st, err := l.Status(ctx, Selector{IDs: []pipeline.AccountID{id}})
	if err != nil || len(st) == 0 {
		return AccountSummary{}, err
	}
	return summaryOf(st[0]), nil
}

// Summaries returns every account's summary by every key that names it
// (aliases, names, idents), in a few queries whatever the number of
// accounts.
func (l *Ledger) Summaries(ctx context.Context) (map[string]AccountSummary, error) {
	st, err := l.Status(ctx, Selector{All: true})
	if err != nil {
		return nil, err
	}
	keys, err := l.keys(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]AccountSummary, len(keys))
	for _, a := range st {
		sum := summaryOf(a)
		for _, k := range keys[a.ID] {
			out[k] = sum
		}
	}
	return out, nil
}

// keys returns the keys that name each account: its aliases, name and
// ident.
func (l *Ledger) keys(ctx context.Context) (map[pipeline.AccountID][]string, error) {
	rows, err := l.r.QueryContext(ctx, `SELECT account_id, alias FROM account_aliases
		UNION SELECT id, name FROM accounts WHERE name IS NOT NULL
		UNION SELECT id, ident FROM accounts`)
	if err != nil {
		return nil, fmt.Errorf("reading the account keys of %s: %w", l.path, err)
	}
	defer rows.Close()
	out := map[pipeline.AccountID][]string{}
	for rows.Next() {
		var id pipeline.AccountID
		var k string
		if err := rows.Scan(&id, &k); err != nil {
			return nil, fmt.Errorf("reading the account keys of %s: %w", l.path, err)
		}
		out[id] = append(out[id], k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the account keys of %s: %w", l.path, err)
	}
	return out, nil
}

// Accounts returns a key of every account (its name, else its ident),
// sorted.
func (l *Ledger) Accounts(ctx context.Context) ([]string, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT COALESCE(name, ident) AS k FROM accounts ORDER BY k`)
	if err != nil {
		return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("reading the accounts of %s: %w", l.path, err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RunsOf is Runs for the account key names; none for one the ledger
// does not know.
func (l *Ledger) RunsOf(ctx context.Context, key string, limit int) ([]pipeline.RunRecord, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	id, ok, err := l.accountOfKey(ctx, l.r, key)
	if err != nil || !ok {
		return nil, err
	}
	return l.Runs(ctx, id, limit)
}

// Throughput is how much was copied in one interval of DoneHistory.
type Throughput struct {
	Start    time.Time
	Messages int
	Bytes    int64
}

// DoneHistory counts the messages (and their bytes) of every account that
// first became done in each interval of length step from since on, oldest
// first; intervals without any are left out. It reads every done entry
// since then.
func (l *Ledger) DoneHistory(ctx context.Context, since time.Time, step time.Duration) ([]Throughput, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if step <= 0 {
		return nil, fmt.Errorf("reading the copy history of %s: step %v is not positive", l.path, step)
	}
	from := nanos(since)
	// Plain placeholders, each bound: PostgreSQL has no "?1".
	rows, err := l.r.QueryContext(ctx, l.d.q(`SELECT (done_at - ?) / ? AS slot, COUNT(*), COALESCE(SUM(size), 0)
		FROM messages WHERE state = 'done' AND done_at >= ? GROUP BY slot ORDER BY slot`), from, step.Nanoseconds(), from)
	if err != nil {
		return nil, fmt.Errorf("reading the copy history of %s: %w", l.path, err)
	}
	defer rows.Close()
	var out []Throughput
	for rows.Next() {
		var slot int64
		var t Throughput
		if err := rows.Scan(&slot, &t.Messages, &t.Bytes); err != nil {
			return nil, fmt.Errorf("reading the copy history of %s: %w", l.path, err)
		}
		t.Start = fromNanos(from + slot*step.Nanoseconds())
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the copy history of %s: %w", l.path, err)
	}
	return out, nil
}
