package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// Control is what an operator asked of an account: to leave it alone for
// now (pause), and to try again what failed or was skipped (retry). The
// status page's actions write it; runs read it before they start an
// account. It lives in the ledger, so it holds across processes and
// restarts, and every run sharing the ledger sees it.
type Control struct {
	// Paused accounts are not started by runs or service polls until
	// resumed; a run already working on one finishes.
	Paused bool
	// Changed is when Paused last changed; zero when it never did.
	Changed time.Time
	// RetryRequested is when a retry was last asked for; zero when never.
	// `run --rerun-failed` runs an account whose retry was asked for after
	// its last run started.
	RetryRequested time.Time
}

// OperatorPauseReason is why an account an operator paused is paused.
const OperatorPauseReason = "an operator paused it; runs and polls leave it alone until it is resumed"

// Pause is the operator's pause as the engine knows pauses (Runner.Paused):
// without an Until, since it lasts until resumed; nil when not paused.
func (c Control) Pause() *pipeline.PausedError {
	if !c.Paused {
		return nil
	}
	return &pipeline.PausedError{Reason: OperatorPauseReason}
}

// RetryCounts is what RequestRetry did.
type RetryCounts struct {
	// Skipped is how many skipped messages were made failed, so that the
	// next run tries them again.
	Skipped int
	// Failed is how many messages were failed already (every run tries
	// those again).
	Failed int
}

// Control returns what was asked of account; the zero Control when
// nothing was.
func (l *Ledger) Control(ctx context.Context, account string) (Control, error) {
	if err := l.checkOpen(); err != nil {
		return Control{}, err
	}
	var paused bool
	var changed, retry int64
	err := l.r.QueryRowContext(ctx, `SELECT paused, changed, retry_requested FROM account_control
		WHERE account = ?`, account).Scan(&paused, &changed, &retry)
	if errors.Is(err, sql.ErrNoRows) {
		return Control{}, nil
	}
	if err != nil {
		return Control{}, fmt.Errorf("reading the controls of %s from %s: %w", account, l.path, err)
	}
	c := Control{Paused: paused}
	if changed != 0 {
		c.Changed = fromNanos(changed)
	}
	if retry != 0 {
		c.RetryRequested = fromNanos(retry)
	}
	return c, nil
}

// SetPaused pauses or resumes account, durably. Setting the state it
// already has changes nothing (Changed keeps its time).
func (l *Ledger) SetPaused(ctx context.Context, account string, paused bool) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if account == "" {
		return fmt.Errorf("pausing an account in %s: empty account", l.path)
	}
	what := "resuming"
	if paused {
		what = "pausing"
	}
	_, err := l.w.ExecContext(ctx, `INSERT INTO account_control (account, paused, changed) VALUES (?1, ?2, ?3)
		ON CONFLICT (account) DO UPDATE SET paused = ?2, changed = ?3 WHERE paused <> ?2`,
		account, paused, nanos(l.now()))
	if err != nil {
		return fmt.Errorf("%s %s in %s: %w", what, account, l.path, err)
	}
	return nil
}

// RequestRetry asks for account to be tried again: in one durable
// transaction its skipped messages become failed (their reason keeps why
// they were skipped), which the next run tries again like every failed
// one, and the request's time is recorded (Control.RetryRequested).
// Skipped messages are those the engine would otherwise never try again
// (too big, NUL bytes, refused for good): a retry is for after the admin
// changed something.
func (l *Ledger) RequestRetry(ctx context.Context, account string) (RetryCounts, error) {
	if err := l.checkOpen(); err != nil {
		return RetryCounts{}, err
	}
	if account == "" {
		return RetryCounts{}, fmt.Errorf("asking for a retry in %s: empty account", l.path)
	}
	now := nanos(l.now())
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	var n RetryCounts
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE account = ? AND state = 'failed'`,
		account).Scan(&n.Failed); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", account, l.path, err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE messages SET state = 'failed',
		reason = 'retry asked for; had been skipped: ' || reason, updated = ?
		WHERE account = ? AND state = 'skipped'`, now, account)
	if err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", account, l.path, err)
	}
	skipped, err := res.RowsAffected()
	if err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", account, l.path, err)
	}
	n.Skipped = int(skipped)
	if _, err := tx.ExecContext(ctx, `INSERT INTO account_control (account, retry_requested) VALUES (?1, ?2)
		ON CONFLICT (account) DO UPDATE SET retry_requested = ?2`, account, now); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", account, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: committing: %w", account, l.path, err)
	}
	return n, nil
}

// Controls returns what was asked of every account that was asked
// anything, by account.
func (l *Ledger) Controls(ctx context.Context) (map[string]Control, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT account, paused, changed, retry_requested FROM account_control`)
	if err != nil {
		return nil, fmt.Errorf("reading the controls from %s: %w", l.path, err)
	}
	defer rows.Close()
	out := map[string]Control{}
	for rows.Next() {
		var account string
		var paused bool
		var changed, retry int64
		if err := rows.Scan(&account, &paused, &changed, &retry); err != nil {
			return nil, fmt.Errorf("reading the controls from %s: %w", l.path, err)
		}
		c := Control{Paused: paused}
		if changed != 0 {
			c.Changed = fromNanos(changed)
		}
		if retry != 0 {
			c.RetryRequested = fromNanos(retry)
		}
		out[account] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the controls from %s: %w", l.path, err)
	}
	return out, nil
}
