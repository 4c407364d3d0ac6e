package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// AccountSummary is what the ledger knows about one account, for
// `mailferry status`.
type AccountSummary struct {
	Done    int
	Pending int
	Skipped int
	Failed  int
	// Bytes is the total size of the done entries: the bytes moved.
	Bytes int64
	// AllBytes is the total size of the entries in every state.
	AllBytes int64
	// SkipReasons counts the skipped entries by reason.
	SkipReasons map[string]int
	// LastRun is the most recent run, nil when there was none.
	LastRun *pipeline.RunRecord
}

// add counts n entries of bytes in the stored state; false for a state
// it does not know.
func (sum *AccountSummary) add(state string, n int, bytes int64) bool {
	sum.AllBytes += bytes
	switch stateNames[state] {
	case pipeline.StateDone:
		sum.Done, sum.Bytes = n, bytes
	case pipeline.StatePending:
		sum.Pending = n
	case pipeline.StateSkipped:
		sum.Skipped = n
	case pipeline.StateFailed:
		sum.Failed = n
	default:
		return false
	}
	return true
}

// Accounts returns every account that has entries or runs, sorted.
func (l *Ledger) Accounts(ctx context.Context) ([]string, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT DISTINCT account FROM messages
		UNION SELECT DISTINCT account FROM runs ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("listing accounts in %s: %w", l.path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("listing accounts in %s: %w", l.path, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing accounts in %s: %w", l.path, err)
	}
	return out, nil
}

// Summary counts the entries of account by state and returns its last run.
// An unknown account gives a zero summary (with an empty SkipReasons map).
func (l *Ledger) Summary(ctx context.Context, account string) (AccountSummary, error) {
	if err := l.checkOpen(); err != nil {
		return AccountSummary{}, err
	}
	// One read transaction, so that counts and reasons come from one snapshot.
	tx, err := l.r.BeginTx(ctx, nil)
	if err != nil {
		return AccountSummary{}, fmt.Errorf("summarising %s in %s: %w", account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()

	sum := AccountSummary{SkipReasons: make(map[string]int)}
	rows, err := tx.QueryContext(ctx, `SELECT state, COUNT(*), COALESCE(SUM(size), 0)
		FROM messages WHERE account = ? GROUP BY state`, account)
	if err != nil {
		return AccountSummary{}, fmt.Errorf("summarising %s in %s: %w", account, l.path, err)
	}
	for rows.Next() {
		var (
			state string
			n     int
			bytes int64
		)
		if err := rows.Scan(&state, &n, &bytes); err != nil {
			rows.Close()
			return AccountSummary{}, fmt.Errorf("summarising %s in %s: %w", account, l.path, err)
		}
		if !sum.add(state, n, bytes) {
			rows.Close()
			return AccountSummary{}, fmt.Errorf("summarising %s in %s: unknown state %q", account, l.path, state)
		}
	}
	if err := rows.Close(); err != nil {
		return AccountSummary{}, fmt.Errorf("summarising %s in %s: %w", account, l.path, err)
	}
	if err := rows.Err(); err != nil {
		return AccountSummary{}, fmt.Errorf("summarising %s in %s: %w", account, l.path, err)
	}

	rows, err = tx.QueryContext(ctx, `SELECT reason, COUNT(*) FROM messages
		WHERE account = ? AND state = ? GROUP BY reason`, account, pipeline.StateSkipped.String())
	if err != nil {
		return AccountSummary{}, fmt.Errorf("summarising skip reasons of %s in %s: %w", account, l.path, err)
	}
	for rows.Next() {
		var (
			reason string
			n      int
		)
		if err := rows.Scan(&reason, &n); err != nil {
			rows.Close()
			return AccountSummary{}, fmt.Errorf("summarising skip reasons of %s in %s: %w", account, l.path, err)
		}
		sum.SkipReasons[reason] = n
	}
	if err := rows.Close(); err != nil {
		return AccountSummary{}, fmt.Errorf("summarising skip reasons of %s in %s: %w", account, l.path, err)
	}
	if err := rows.Err(); err != nil {
		return AccountSummary{}, fmt.Errorf("summarising skip reasons of %s in %s: %w", account, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return AccountSummary{}, fmt.Errorf("summarising %s in %s: %w", account, l.path, err)
	}

	runs, err := l.Runs(ctx, account, 1)
	if err != nil {
		return AccountSummary{}, err
	}
	if len(runs) > 0 {
		sum.LastRun = &runs[0]
	}
	return sum, nil
}

// DoneSince counts the done entries of account that first became done after
// since, and returns the earliest of those times (zero when there is none).
// With a delete_after period P and since = now - P, these are the messages
// still waiting out their period before they are deleted at the source, and
// the first of them falls due at earliest + P.
func (l *Ledger) DoneSince(ctx context.Context, account string, since time.Time) (n int, earliest time.Time, err error) {
	if err := l.checkOpen(); err != nil {
		return 0, time.Time{}, err
	}
	var first sql.NullInt64
	// state = 'done' is spelled out so that SQLite can use the partial
	// index messages_account_done_at.
	if err := l.r.QueryRowContext(ctx, `SELECT COUNT(*), MIN(done_at) FROM messages
		WHERE account = ? AND state = 'done' AND done_at > ?`,
		account, nanos(since)).Scan(&n, &first); err != nil {
		return 0, time.Time{}, fmt.Errorf("counting messages of %s done since %v in %s: %w", account, since, l.path, err)
	}
	if first.Valid && n > 0 {
		earliest = fromNanos(first.Int64)
	}
	return n, earliest, nil
}

// Summaries returns the counts, bytes and last run of every account that
// has entries or runs, by account, from one snapshot and three queries
// whatever the number of accounts (SkipReasons is left nil): for a page
// that shows thousands of accounts at once.
func (l *Ledger) Summaries(ctx context.Context) (map[string]AccountSummary, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	tx, err := l.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("summarising the accounts in %s: %w", l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	out := map[string]AccountSummary{}
	rows, err := tx.QueryContext(ctx, `SELECT account, state, COUNT(*), COALESCE(SUM(size), 0)
		FROM messages GROUP BY account, state`)
	if err != nil {
		return nil, fmt.Errorf("summarising the accounts in %s: %w", l.path, err)
	}
	for rows.Next() {
		var (
			account, state string
			n              int
			bytes          int64
		)
		if err := rows.Scan(&account, &state, &n, &bytes); err != nil {
			rows.Close()
			return nil, fmt.Errorf("summarising the accounts in %s: %w", l.path, err)
		}
		sum := out[account]
		if !sum.add(state, n, bytes) {
			rows.Close()
			return nil, fmt.Errorf("summarising %s in %s: unknown state %q", account, l.path, state)
		}
		out[account] = sum
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("summarising the accounts in %s: %w", l.path, err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summarising the accounts in %s: %w", l.path, err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT account, `+runColumns+` FROM runs
		WHERE id IN (SELECT MAX(id) FROM runs GROUP BY account)`)
	if err != nil {
		return nil, fmt.Errorf("reading the last runs in %s: %w", l.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var account string
		rec, err := scanRun(func(dest ...any) error { return rows.Scan(append([]any{&account}, dest...)...) }, "")
		if err != nil {
			return nil, fmt.Errorf("reading the last runs in %s: %w", l.path, err)
		}
		rec.Account = account
		sum := out[account]
		sum.LastRun = &rec
		out[account] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the last runs in %s: %w", l.path, err)
	}
	return out, nil
}
