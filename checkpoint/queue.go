package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The queue of a fleet (docs/ledger.md "The fleet: queue, leases,
// workers"): every accounts row is also its queue entry. Enqueue puts
// accounts in the open pass; workers Claim the next one with FOR UPDATE
// SKIP LOCKED, so that many claiming at once never get the same account
// and never wait for each other; the claim is the lease Hold takes, and
// releasing it closes the pass once nothing of it is queued or running.
// PostgreSQL only: a SQLite checkpoint runs its own config's accounts.

// ErrNothingToClaim is returned by Claim when no account is claimable now.
var ErrNothingToClaim = errors.New("checkpoint: no account to claim")

// errNoQueue is returned by the queue's methods on a SQLite checkpoint.
var errNoQueue = errors.New("checkpoint: the account queue needs a PostgreSQL checkpoint")

// keepPasses is how many passes the queue keeps (docs/ledger.md
// "Retention"): a row each, pruned when a pass opens.
const keepPasses = 100

// Enqueue puts accounts in the open pass, opening one when none is, and
// returns its id. Accounts already in it, or running, are left as they
// are.
func (l *Ledger) Enqueue(ctx context.Context, accounts []pipeline.AccountID) (int64, error) {
	if err := l.checkOpen(); err != nil {
		return 0, err
	}
	if l.pg == nil {
		return 0, errNoQueue
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("queueing accounts in %s: %w", l.path, explainConnect(err))
	}
	defer func() { _ = tx.Rollback() }()
	// Workers loading the same config at once join one pass.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('mailferry-pass'))`); err != nil {
		return 0, fmt.Errorf("queueing accounts in %s: %w", l.path, err)
	}
	var pass int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM passes WHERE finished IS NULL`).Scan(&pass)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `INSERT INTO passes (started) VALUES (`+pgNow+`) RETURNING id`).Scan(&pass)
		if err == nil {
			// A service polling every few minutes opens a pass each time;
			// only the newest is read (status, the fleet view).
			_, err = tx.ExecContext(ctx, `DELETE FROM passes WHERE finished IS NOT NULL
				AND id < (SELECT min(id) FROM (SELECT id FROM passes ORDER BY id DESC LIMIT $1) AS newest)`, keepPasses)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("opening a pass in %s: %w", l.path, err)
	}
	ids := make([]int64, len(accounts))
	for i, a := range accounts {
		ids[i] = int64(a)
	}
	// One queued_at for the whole load (clock_timestamp() differs row by
	// row): its accounts are claimed in id order, the config's order.
	if _, err := tx.ExecContext(ctx, `WITH t AS (SELECT `+pgNow+` AS now)
		UPDATE accounts SET queue = 'queued', pass = $1, queued_at = (SELECT now FROM t)
		WHERE id = ANY($2) AND pass <> $1 AND queue <> 'running'`, pass, ids); err != nil {
		return 0, fmt.Errorf("queueing accounts in %s: %w", l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("queueing accounts in %s: %w", l.path, err)
	}
	return pass, nil
}

// Claim takes the next claimable account for this worker: queued and not
// paused nor waiting, or running under a lease that expired (its worker
// is gone), oldest first. It returns the account and its hold, or an
// error wrapping ErrNothingToClaim.
func (l *Ledger) Claim(ctx context.Context) (pipeline.AccountID, pipeline.Hold, error) {
	return l.ClaimAmong(ctx, nil)
}

// ClaimAmong is Claim restricted to accounts (all when nil): a worker
// claims only the accounts its config names, since only those it can
// connect to (passwords never go into the checkpoint).
func (l *Ledger) ClaimAmong(ctx context.Context, accounts []pipeline.AccountID) (pipeline.AccountID, pipeline.Hold, error) {
	if err := l.checkOpen(); err != nil {
		return 0, nil, err
	}
	if l.pg == nil {
		return 0, nil, errNoQueue
	}
	e := l.pg
	sent := time.Now()
	var (
		account       pipeline.AccountID
		epoch         int64
		ident         string
		paused, retry bool
		prev          string // the worker whose expired lease this claim takes over
		late          int64  // how long ago that lease ran out (ns)
	)
	filter, args := "", []any{e.worker, e.ttl.Nanoseconds()}
	if accounts != nil {
		filter, args = ` AND id = ANY($3)`, append(args, accountIDs(accounts))
	}
	err := l.w.QueryRowContext(ctx, `WITH c AS (
			SELECT id, queue AS was, lease_worker AS prev, lease_expires AS expired FROM accounts
			WHERE queue <> 'idle' AND NOT paused AND not_before <= `+pgNow+`
				AND (queue = 'queued' OR lease_expires < `+pgNow+`)`+filter+`
			ORDER BY queued_at, id
			LIMIT 1
			FOR UPDATE SKIP LOCKED)
		UPDATE accounts a SET queue = 'running', lease_worker = $1, lease_epoch = a.lease_epoch + 1,
			lease_expires = `+pgNow+` + $2
		FROM c WHERE a.id = c.id
		RETURNING a.id, a.lease_epoch, a.ident, a.paused, a.retry_skipped,
			CASE WHEN c.was = 'running' THEN c.prev ELSE '' END, `+pgNow+` - c.expired`,
		args...).Scan(&account, &epoch, &ident, &paused, &retry, &prev, &late)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, ErrNothingToClaim
	}
	if err != nil {
		return 0, nil, fmt.Errorf("claiming an account in %s: %w", l.path, explainConnect(err))
	}
	h := &hold{l: l, id: account, ident: ident, paused: make(chan struct{}), retrySkipped: retry}
	if prev != "" {
		h.takenFrom, h.takenLate = prev, time.Duration(max(late, 0))
	}
	if paused {
		h.markPaused()
	}
	e.answered()
	h.lease = e.newLease(account, epoch, sent)
	l.mu.Lock()
	if l.closed || l.held[account] != nil {
		// Closed meanwhile, or a Hold of this process on an expired lease
		// of its own (it lost it): give the claim back.
		l.mu.Unlock()
		_ = l.endLease(ctx, h.lease, leaseEnd{queued: true})
		if l.closed {
			return 0, nil, ErrClosed
		}
		return 0, nil, fmt.Errorf("claiming account %q: held by another goroutine of this process: %w", ident, ErrLocked)
	}
	l.held[account] = h
	l.mu.Unlock()
	if err := e.add(h.lease); err != nil {
		_ = h.Release(ctx)
		return 0, nil, err
	}
	l.log.Debug("account claimed", "account", ident, "worker", e.worker, "epoch", epoch)
	return account, h, nil
}

// closePass finishes the pass of account once none of its accounts is
// queued (and not paused) or running; the last worker to finish closes
// it. Called when a lease ends.
func (l *Ledger) closePass(ctx context.Context, account pipeline.AccountID) error {
	_, err := l.w.ExecContext(ctx, `UPDATE passes p SET finished = `+pgNow+`
		WHERE p.finished IS NULL AND p.id = (SELECT pass FROM accounts WHERE id = $1)
			AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pass = p.id
				AND (a.queue = 'running' OR a.queue = 'queued' AND NOT a.paused))`, account)
	if err != nil {
		return fmt.Errorf("closing the pass of account %d in %s: %w", account, l.path, explainConnect(err))
	}
	return nil
}

// Pass is one pass of a fleet over its queue.
type Pass struct {
	ID       int64
	Started  time.Time
	Finished time.Time // zero while open
}

// OpenPass returns the open pass; ok is false when none is open.
func (l *Ledger) OpenPass(ctx context.Context) (p Pass, ok bool, err error) {
	if err := l.checkOpen(); err != nil {
		return p, false, err
	}
	if l.pg == nil {
		return p, false, errNoQueue
	}
	var started int64
	err = l.r.QueryRowContext(ctx, `SELECT id, started FROM passes WHERE finished IS NULL`).Scan(&p.ID, &started)
	if errors.Is(err, sql.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("reading the open pass of %s: %w", l.path, err)
	}
	p.Started = fromNanos(started)
	return p, true, nil
}

// TakenOver tells whether h, a hold from Claim, took its account over from
// a worker whose lease had run out (a worker that died or lost the
// database), which worker, and how long after its lease ran out.
func TakenOver(h pipeline.Hold) (worker string, after time.Duration, ok bool) {
	hh, isHold := h.(*hold)
	if !isHold || hh.takenFrom == "" {
		return "", 0, false
	}
	return hh.takenFrom, hh.takenLate, true
}
