package checkpoint

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// ScanOptions select the entries Scan reads. The zero value reads every
// entry of the account.
type ScanOptions struct {
	// States, when not empty, reads only entries in these states.
	States []pipeline.State
	// After, when set, starts after this key (paging).
	After string
	// Limit, when positive, reads at most this many entries.
	Limit int
}

// Scan calls fn with each entry of account, in key order, as it reads them
// from one cursor: unlike Entries it holds one entry at a time, whatever
// the size of the account. An error from fn stops the scan and is
// returned as it is. The cursor is a read transaction: writers go on
// meanwhile (WAL), and fn sees the ledger as it was when Scan started.
func (l *Ledger) Scan(ctx context.Context, account string, opts ScanOptions, fn func(pipeline.Entry) error) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	q := `SELECT source_key, state, reason, digest, size, message_id,
		dest_mailbox, dest_uidvalidity, dest_uid, dest_uidnext, flags, updated, done_at
		FROM messages WHERE account = ? AND source_key > ?`
	args := []any{account, opts.After}
	if len(opts.States) > 0 {
		q += ` AND state IN (?` + strings.Repeat(", ?", len(opts.States)-1) + `)`
		for _, s := range opts.States {
			if !validState(s) {
				return fmt.Errorf("scanning %s in %s: state %d: %w", account, l.path, int(s), ErrInvalidEntry)
			}
			args = append(args, s.String())
		}
	}
	q += ` ORDER BY source_key`
	if opts.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, opts.Limit)
	}
	rows, err := l.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("scanning the entries of %s in %s: %w", account, l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return fmt.Errorf("scanning the entries of %s in %s: %w", account, l.path, err)
		}
		e.Account = account
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scanning the entries of %s in %s: %w", account, l.path, err)
	}
	return nil
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
	rows, err := l.r.QueryContext(ctx, `SELECT (done_at - ?1) / ?2 AS slot, COUNT(*), COALESCE(SUM(size), 0)
		FROM messages WHERE state = 'done' AND done_at >= ?1 GROUP BY slot ORDER BY slot`, from, step.Nanoseconds())
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
