package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The operator's controls of one account, for callers that name accounts
// by their ledger key (the status page, a run's Runner.Paused): what
// Pause, Resume and Retry do by Selector, on the same columns of accounts
// (paused, pause_reason, paused_at, retry_skipped, retry_asked). There is
// one pause: a run holding the account sees it (Hold.Paused), and runs and
// polls do not start it (Runner.Paused).

// Control is what an operator asked of an account: to leave it alone for
// now (pause), and to try again what failed or was skipped (retry).
type Control struct {
	// Paused accounts are not started by runs or service polls until
	// resumed; a run already working on one commits its batches in flight
	// and stops.
	Paused bool
	// Reason is why it is paused ("" when not).
	Reason string
	// Changed is when Paused last changed; zero when it never did.
	Changed time.Time
	// RetryRequested is when a retry was last asked for; zero when never.
	// `run --rerun-failed` runs an account whose retry was asked for after
	// its last run started.
	RetryRequested time.Time
}

// OperatorPauseReason is why an account an operator paused is paused,
// unless the pause said otherwise.
const OperatorPauseReason = "an operator paused it; runs and polls leave it alone until it is resumed"

// Pause is the operator's pause as the engine knows pauses (Runner.Paused):
// without an Until, since it lasts until resumed; nil when not paused.
func (c Control) Pause() *pipeline.PausedError {
	if !c.Paused {
		return nil
	}
	reason := c.Reason
	if reason == "" {
		reason = OperatorPauseReason
	}
	return &pipeline.PausedError{Reason: reason}
}

// RetryCounts is what RequestRetry made retryable.
type RetryCounts struct {
	// Skipped is how many skipped messages the next run tries again (all
	// but those probably on the destination already).
	Skipped int
	// Failed is how many messages are failed (every run tries those again).
	Failed int
}

// accountOfKey finds the account a ledger key names: an alias (an
// endpoint key, "id:" and a config id), else a config name, else an
// ident. ok is false when none does.
func (l *Ledger) accountOfKey(ctx context.Context, db interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, key string) (pipeline.AccountID, bool, error) {
	var id pipeline.AccountID
	err := db.QueryRowContext(ctx, l.d.q(`SELECT account_id FROM account_aliases WHERE alias = ?
		UNION ALL SELECT id FROM accounts WHERE name = ?
		UNION ALL SELECT id FROM accounts WHERE ident = ? LIMIT 1`), key, key, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("resolving %q in %s: %w", key, l.path, err)
	}
	return id, true, nil
}

// AccountOfKey returns the account a ledger key names (see accountOfKey);
// ok is false when the ledger does not know it.
func (l *Ledger) AccountOfKey(ctx context.Context, key string) (pipeline.AccountID, bool, error) {
	if err := l.checkOpen(); err != nil {
		return 0, false, err
	}
	return l.accountOfKey(ctx, l.r, key)
}

// ensureKey returns the account key names, creating it from the key alone
// when the ledger does not know it yet (an account paused before its first
// run), as an upgrade from schema 4 does: the key is its ident and alias,
// its servers and users are what the key spells, so that the first run's
// ResolveAccount finds it by its endpoint key.
func (l *Ledger) ensureKey(ctx context.Context, tx *sql.Tx, key string) (pipeline.AccountID, error) {
	id, ok, err := l.accountOfKey(ctx, tx, key)
	if err != nil || ok {
		return id, err
	}
	now := nanos(l.now())
	p := parseEndpointKey(key)
	// RETURNING, not LastInsertId: PostgreSQL's driver has none.
	err = tx.QueryRowContext(ctx, l.d.q(`INSERT INTO accounts (ident, src_proto, src_user, dst_user, dst_folder, source, destination, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		key, p.srcProto, strings.ToLower(p.srcUser), strings.ToLower(p.dstUser), strings.ToLower(p.dstFolder),
		p.source, p.destination, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording account %q in %s: %w", key, l.path, err)
	}
	return id, l.addAlias(ctx, tx, key, id, "key", now)
}

// Control returns what was asked of the account key names; the zero
// Control for an account the ledger does not know.
func (l *Ledger) Control(ctx context.Context, key string) (Control, error) {
	if err := l.checkOpen(); err != nil {
		return Control{}, err
	}
	id, ok, err := l.accountOfKey(ctx, l.r, key)
	if err != nil || !ok {
		return Control{}, err
	}
	var c Control
	var changed, retry int64
	err = l.r.QueryRowContext(ctx, l.d.q(`SELECT paused, pause_reason, paused_at, retry_asked FROM accounts WHERE id = ?`), id).
		Scan(&c.Paused, &c.Reason, &changed, &retry)
	if err != nil {
		return Control{}, fmt.Errorf("reading the controls of %s from %s: %w", key, l.path, err)
	}
	c.Changed, c.RetryRequested = fromNanos(changed), fromNanos(retry)
	return c, nil
}

// Controls returns what was asked of every account that was asked
// anything, by every key that names it (aliases, names, idents).
func (l *Ledger) Controls(ctx context.Context) (map[string]Control, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, `SELECT k, paused, pause_reason, paused_at, retry_asked FROM (
			SELECT al.alias AS k, a.* FROM account_aliases al JOIN accounts a ON a.id = al.account_id
			UNION SELECT a.name, a.* FROM accounts a WHERE a.name IS NOT NULL
			UNION SELECT a.ident, a.* FROM accounts a) AS c
		WHERE paused OR paused_at <> 0 OR retry_asked <> 0`)
	if err != nil {
		return nil, fmt.Errorf("reading the controls from %s: %w", l.path, err)
	}
	defer rows.Close()
	out := map[string]Control{}
	for rows.Next() {
		var key string
		var c Control
		var changed, retry int64
		if err := rows.Scan(&key, &c.Paused, &c.Reason, &changed, &retry); err != nil {
			return nil, fmt.Errorf("reading the controls from %s: %w", l.path, err)
		}
		c.Changed, c.RetryRequested = fromNanos(changed), fromNanos(retry)
		out[key] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the controls from %s: %w", l.path, err)
	}
	return out, nil
}

// SetPaused pauses or resumes the account key names, durably (an account
// the ledger does not know yet is recorded, so that its first run sees
// the pause). Setting the state it already has changes nothing (Changed
// keeps its time).
func (l *Ledger) SetPaused(ctx context.Context, key string, paused bool) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	what := "resuming"
	if paused {
		what = "pausing"
	}
	if key == "" {
		return fmt.Errorf("%s an account in %s: empty account", what, l.path)
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s %s in %s: %w", what, key, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	id, err := l.ensureKey(ctx, tx, key)
	if err != nil {
		return err
	}
	reason := ""
	if paused {
		reason = OperatorPauseReason
	}
	if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET paused = ?, pause_reason = ?, paused_at = ?
		WHERE id = ? AND paused <> ?`), paused, reason, nanos(l.now()), id, paused); err != nil {
		return fmt.Errorf("%s %s in %s: %w", what, key, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s %s in %s: %w", what, key, l.path, err)
	}
	return nil
}

// RequestRetry asks for the account key names to be tried again, as
// Retry with skipped does: its next run tries the skipped messages again
// (those skipped for good: too big, NUL bytes, refused; not those probably
// on the destination already), its failed ones as every run does, and
// starts at once whatever quota wait was recorded. The request's time is
// recorded (Control.RetryRequested). It returns how many messages are
// skipped and failed now.
func (l *Ledger) RequestRetry(ctx context.Context, key string) (RetryCounts, error) {
	if err := l.checkOpen(); err != nil {
		return RetryCounts{}, err
	}
	if key == "" {
		return RetryCounts{}, fmt.Errorf("asking for a retry in %s: empty account", l.path)
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", key, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	id, err := l.ensureKey(ctx, tx, key)
	if err != nil {
		return RetryCounts{}, err
	}
	var n RetryCounts
	if err := tx.QueryRowContext(ctx, l.d.q(`SELECT
			COALESCE(SUM(CASE WHEN state = 'skipped' THEN messages END), 0),
			COALESCE(SUM(CASE WHEN state = 'failed' THEN messages END), 0)
		FROM account_counts WHERE account_id = ?`), id).Scan(&n.Skipped, &n.Failed); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", key, l.path, err)
	}
	var present int
	if err := tx.QueryRowContext(ctx, l.d.q(`SELECT COUNT(*) FROM messages`+l.d.indexedBy("messages_open")+`
		WHERE account_id = ? AND state <> 'done' AND state = 'skipped' AND reason_class = ?`), id, string(pipeline.ReasonPresent)).Scan(&present); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", key, l.path, err)
	}
	n.Skipped -= present
	if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET retry_skipped = TRUE, not_before = 0, retry_asked = ? WHERE id = ?`),
		nanos(l.now()), id); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: %w", key, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return RetryCounts{}, fmt.Errorf("asking for a retry of %s in %s: committing: %w", key, l.path, err)
	}
	if l.pg != nil {
		// A fleet's queue: claimable now, as Retry does.
		if err := l.requeue(ctx, Selector{IDs: []pipeline.AccountID{id}}); err != nil {
			return n, err
		}
	}
	return n, nil
}
