package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The workers of a fleet (docs/fleet.md): each `mailferry run` on a
// PostgreSQL checkpoint registers in the workers table under its lease
// name, heartbeats there (adding what it moved to the throughput table),
// reads whether an operator asked it to drain, and leaves the table when
// it ends. A worker that died stays with an old heartbeat, which status
// shows; its accounts go to others when their leases run out.

// ErrUnknownWorker is wrapped by Drain when no worker has the given name.
var ErrUnknownWorker = errors.New("checkpoint: no such worker")

// forgetWorkers is how long the workers table keeps a worker that stopped
// heartbeating (it died, or lost the database for good).
const forgetWorkers = 24 * time.Hour

// keepThroughput is how long the throughput table keeps a worker's
// minutes apart; older ones are folded into one row (minute 0, no worker)
// by the heartbeats, so that the table stays bounded while the fleet's
// total stays whole.
const keepThroughput = 7 * 24 * time.Hour

// Beat is what a worker reports with its heartbeat: what it moved since
// the last one.
type Beat struct {
	Version  string
	Messages int64
	Bytes    int64
}

// Heartbeat registers this worker or renews its heartbeat, adds b's
// figures to the current minute's throughput, and returns whether the
// worker was asked to drain (claim nothing new).
func (l *Ledger) Heartbeat(ctx context.Context, b Beat) (draining bool, err error) {
	if err := l.checkOpen(); err != nil {
		return false, err
	}
	if l.pg == nil {
		return false, errNoQueue
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("recording the heartbeat of worker %s in %s: %w", l.pg.worker, l.path, explainConnect(err))
	}
	defer func() { _ = tx.Rollback() }()
	err = tx.QueryRowContext(ctx, `INSERT INTO workers AS w (id, host, pid, version, started, heartbeat)
			VALUES ($1, $2, $3, $4, `+pgNow+`, `+pgNow+`)
		ON CONFLICT (id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat, version = EXCLUDED.version
		RETURNING w.draining`, l.pg.worker, hostname(), os.Getpid(), b.Version).Scan(&draining)
	if err != nil {
		return false, fmt.Errorf("recording the heartbeat of worker %s in %s: %w", l.pg.worker, l.path, explainConnect(err))
	}
	// Workers silent for a day are long gone (their leases ran out long
	// ago): status need not list them for ever.
	if _, err := tx.ExecContext(ctx, `DELETE FROM workers WHERE heartbeat < `+pgNow+` - $1 AND id <> $2`,
		int64(forgetWorkers), l.pg.worker); err != nil {
		return false, fmt.Errorf("forgetting old workers in %s: %w", l.path, explainConnect(err))
	}
	if b.Messages > 0 || b.Bytes > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO throughput AS t (minute, worker, messages, bytes)
				VALUES (`+pgNow+` / 60000000000 * 60000000000, $1, $2, $3)
			ON CONFLICT (minute, worker) DO UPDATE SET messages = t.messages + EXCLUDED.messages, bytes = t.bytes + EXCLUDED.bytes`,
			l.pg.worker, b.Messages, b.Bytes); err != nil {
			return false, fmt.Errorf("recording the throughput of worker %s in %s: %w", l.pg.worker, l.path, explainConnect(err))
		}
	}
	// The old minutes are deleted first and what the DELETE returned is
	// added: a row another worker folds at the same time waits for its
	// commit and is then gone, so none is counted twice.
	if _, err := tx.ExecContext(ctx, `WITH old AS (
			DELETE FROM throughput WHERE minute > 0 AND minute < `+pgNow+` - $1 RETURNING messages, bytes)
		INSERT INTO throughput AS t (minute, worker, messages, bytes)
			SELECT 0, '', SUM(messages), SUM(bytes) FROM old HAVING COUNT(*) > 0
		ON CONFLICT (minute, worker) DO UPDATE SET messages = t.messages + EXCLUDED.messages, bytes = t.bytes + EXCLUDED.bytes`,
		int64(keepThroughput)); err != nil {
		return false, fmt.Errorf("folding the old throughput in %s: %w", l.path, explainConnect(err))
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("recording the heartbeat of worker %s in %s: %w", l.pg.worker, l.path, explainConnect(err))
	}
	return draining, nil
}

// LeaveFleet removes this worker from the workers table: it ended and
// holds nothing. Its throughput stays.
func (l *Ledger) LeaveFleet(ctx context.Context) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if l.pg == nil {
		return errNoQueue
	}
	if _, err := l.w.ExecContext(ctx, `DELETE FROM workers WHERE id = $1`, l.pg.worker); err != nil {
		return fmt.Errorf("removing worker %s from %s: %w", l.pg.worker, l.path, explainConnect(err))
	}
	return nil
}

// Drain asks the worker named worker to claim nothing new and end once
// the accounts it holds are done. worker is its full name or its
// "<host>:<pid>" (as status shows it); it returns the full names it
// marked, or an error wrapping ErrUnknownWorker.
func (l *Ledger) Drain(ctx context.Context, worker string) ([]string, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if l.pg == nil {
		return nil, errNoQueue
	}
	// A worker's name is "<host>:<pid>:<start>...": a "<host>:<pid>" given
	// alone matches its prefix up to the next colon.
	rows, err := l.w.QueryContext(ctx, `UPDATE workers SET draining = TRUE
		WHERE id = $1 OR (strpos($1, ':') > 0 AND starts_with(id, $1 || ':')) RETURNING id`, worker)
	if err != nil {
		return nil, fmt.Errorf("draining worker %s in %s: %w", worker, l.path, explainConnect(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("draining worker %s in %s: %w", worker, l.path, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("draining worker %s in %s: %w", worker, l.path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("draining worker %q in %s: %w (status lists the workers)", worker, l.path, ErrUnknownWorker)
	}
	return out, nil
}

// WorkerStatus is one registered worker.
type WorkerStatus struct {
	ID        string
	Host      string
	PID       int
	Version   string
	Started   time.Time
	Heartbeat time.Time
	Draining  bool
	// Holding is how many accounts it holds under a live lease.
	Holding int
}

// Workers returns the registered workers, oldest first. now is the
// database's clock, to judge heartbeats against.
func (l *Ledger) Workers(ctx context.Context) (ws []WorkerStatus, now time.Time, err error) {
	if err := l.checkOpen(); err != nil {
		return nil, now, err
	}
	if l.pg == nil {
		return nil, now, errNoQueue
	}
	var dbNow int64
	if err := l.r.QueryRowContext(ctx, `SELECT `+pgNow).Scan(&dbNow); err != nil {
		return nil, now, fmt.Errorf("reading the workers of %s: %w", l.path, explainConnect(err))
	}
	rows, err := l.r.QueryContext(ctx, `SELECT w.id, w.host, w.pid, w.version, w.started, w.heartbeat, w.draining,
			(SELECT COUNT(*) FROM accounts a WHERE a.lease_worker = w.id AND a.queue = 'running' AND a.lease_expires > $1)
		FROM workers w ORDER BY w.started, w.id`, dbNow)
	if err != nil {
		return nil, now, fmt.Errorf("reading the workers of %s: %w", l.path, explainConnect(err))
	}
	defer rows.Close()
	for rows.Next() {
		var w WorkerStatus
		var started, beat int64
		if err := rows.Scan(&w.ID, &w.Host, &w.PID, &w.Version, &started, &beat, &w.Draining, &w.Holding); err != nil {
			return nil, now, fmt.Errorf("reading the workers of %s: %w", l.path, err)
		}
		w.Started, w.Heartbeat = fromNanos(started), fromNanos(beat)
		ws = append(ws, w)
	}
	return ws, fromNanos(dbNow), rows.Err()
}

// QueueLeft is what the queue still holds of some accounts.
type QueueLeft struct {
	// Queued can be claimed now; Waiting are queued for later (a service
	// poll's next time, a daily quota); Paused are queued but paused;
	// Running are held, by a live lease or one that ran out (a dead
	// worker's, claimable again).
	Queued, Waiting, Paused, Running int
}

// Left counts what the queue holds of accounts (all accounts when nil).
func (l *Ledger) Left(ctx context.Context, accounts []pipeline.AccountID) (QueueLeft, error) {
	var q QueueLeft
	if err := l.checkOpen(); err != nil {
		return q, err
	}
	if l.pg == nil {
		return q, errNoQueue
	}
	filter, args := "", []any{}
	if accounts != nil {
		filter, args = ` AND id = ANY($1)`, []any{accountIDs(accounts)}
	}
	err := l.r.QueryRowContext(ctx, `SELECT
			COUNT(*) FILTER (WHERE queue = 'queued' AND NOT paused AND not_before <= `+pgNow+`),
			COUNT(*) FILTER (WHERE queue = 'queued' AND NOT paused AND not_before > `+pgNow+`),
			COUNT(*) FILTER (WHERE queue = 'queued' AND paused),
			COUNT(*) FILTER (WHERE queue = 'running')
		FROM accounts WHERE queue <> 'idle'`+filter, args...).Scan(&q.Queued, &q.Waiting, &q.Paused, &q.Running)
	if err != nil {
		return q, fmt.Errorf("reading the queue of %s: %w", l.path, explainConnect(err))
	}
	return q, nil
}

// accountIDs is accounts as a PostgreSQL BIGINT array.
func accountIDs(accounts []pipeline.AccountID) []int64 {
	ids := make([]int64, len(accounts))
	for i, a := range accounts {
		ids[i] = int64(a)
	}
	return ids
}

// Requeue ends h's lease (a hold from Claim or Hold on a PostgreSQL
// checkpoint) and puts its account back in the queue, claimable from
// notBefore (zero: at once): a service's next poll, or a paused account
// that resumes. Release ends it idle instead.
func (l *Ledger) Requeue(h pipeline.Hold, notBefore time.Time) error {
	hh, ok := h.(*hold)
	if !ok || hh.l != l || hh.lease == nil {
		return fmt.Errorf("re-queueing an account in %s: not a lease of this checkpoint", l.path)
	}
	err := fmt.Errorf("re-queueing account %d in %s: already released", hh.id, l.path)
	hh.release.Do(func() {
		hh.releaseErr = l.releaseLease(hh, leaseEnd{queued: true, notBefore: notBefore})
		err = hh.releaseErr
	})
	return err
}

// RunningAccount is an account a worker runs now.
type RunningAccount struct {
	ID     pipeline.AccountID
	Name   string // the config's name, or the ident
	Worker string
	// Since is when its current run started (zero when it has not
	// recorded one yet); Done the messages it moved since.
	Since time.Time
	Done  int
}

// FleetStatus is the whole fleet's queue at a glance.
type FleetStatus struct {
	Now time.Time // the database's clock
	// Pass is the open pass (zero ID when none).
	Pass    Pass
	Left    QueueLeft
	Running []RunningAccount
	// Idle counts the accounts not in the queue by their last run's
	// result ("ok", "partial", "failed", ...; "" never run), or "paused"
	// for those paused.
	Idle map[string]int
	// LastMinutes is what the fleet moved in the last 5 minutes (messages,
	// bytes), from the workers' heartbeats.
	Messages5m, Bytes5m int64
	// Total is everything the throughput table holds.
	MessagesTotal, BytesTotal int64
}

// Fleet reads the queue, who runs what since when, and the throughput.
func (l *Ledger) Fleet(ctx context.Context) (FleetStatus, error) {
	var f FleetStatus
	if err := l.checkOpen(); err != nil {
		return f, err
	}
	if l.pg == nil {
		return f, errNoQueue
	}
	tx, err := l.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return f, fmt.Errorf("reading the fleet of %s: %w", l.path, explainConnect(err))
	}
	defer func() { _ = tx.Rollback() }()
	var now int64
	if err := tx.QueryRowContext(ctx, `SELECT `+pgNow).Scan(&now); err != nil {
		return f, fmt.Errorf("reading the fleet of %s: %w", l.path, explainConnect(err))
	}
	f.Now = fromNanos(now)
	var started, finished sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT id, started, finished FROM passes ORDER BY id DESC LIMIT 1`).Scan(&f.Pass.ID, &started, &finished)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return f, fmt.Errorf("reading the passes of %s: %w", l.path, err)
	}
	f.Pass.Started, f.Pass.Finished = fromNanos(started.Int64), fromNanos(finished.Int64)
	if err := tx.QueryRowContext(ctx, `SELECT
			COUNT(*) FILTER (WHERE queue = 'queued' AND NOT paused AND not_before <= $1),
			COUNT(*) FILTER (WHERE queue = 'queued' AND NOT paused AND not_before > $1),
			COUNT(*) FILTER (WHERE queue = 'queued' AND paused),
			COUNT(*) FILTER (WHERE queue = 'running')
		FROM accounts`, now).Scan(&f.Left.Queued, &f.Left.Waiting, &f.Left.Paused, &f.Left.Running); err != nil {
		return f, fmt.Errorf("reading the queue of %s: %w", l.path, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT a.id, COALESCE(a.name, a.ident), a.lease_worker, COALESCE(r.started, 0),
			(SELECT COUNT(*) FROM messages m WHERE m.account_id = a.id AND m.state = 'done' AND m.done_at >= COALESCE(r.started, 0))
		FROM accounts a LEFT JOIN runs r ON r.id = a.last_run AND r.finished IS NULL
		WHERE a.queue = 'running' ORDER BY r.started, a.id`)
	if err != nil {
		return f, fmt.Errorf("reading the running accounts of %s: %w", l.path, err)
	}
	for rows.Next() {
		var r RunningAccount
		var since int64
		if err := rows.Scan(&r.ID, &r.Name, &r.Worker, &since, &r.Done); err != nil {
			rows.Close()
			return f, fmt.Errorf("reading the running accounts of %s: %w", l.path, err)
		}
		if since > 0 {
			r.Since = fromNanos(since)
		} else {
			r.Done = 0
		}
		f.Running = append(f.Running, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("reading the running accounts of %s: %w", l.path, err)
	}
	f.Idle = map[string]int{}
	rows, err = tx.QueryContext(ctx, `SELECT CASE WHEN a.paused THEN 'paused' ELSE COALESCE(r.result, '') END, COUNT(*)
		FROM accounts a LEFT JOIN runs r ON r.id = a.last_run
		WHERE a.queue = 'idle' GROUP BY 1`)
	if err != nil {
		return f, fmt.Errorf("reading the results of %s: %w", l.path, err)
	}
	for rows.Next() {
		var result string
		var n int
		if err := rows.Scan(&result, &n); err != nil {
			rows.Close()
			return f, fmt.Errorf("reading the results of %s: %w", l.path, err)
		}
		f.Idle[result] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("reading the results of %s: %w", l.path, err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(messages) FILTER (WHERE minute >= $1), 0), COALESCE(SUM(bytes) FILTER (WHERE minute >= $1), 0),
			COALESCE(SUM(messages), 0), COALESCE(SUM(bytes), 0)
		FROM throughput`, now-int64(5*time.Minute)).Scan(&f.Messages5m, &f.Bytes5m, &f.MessagesTotal, &f.BytesTotal); err != nil {
		return f, fmt.Errorf("reading the throughput of %s: %w", l.path, err)
	}
	return f, nil
}

// WorkerHost is the "<host>:<pid>" part of a worker's name, as status
// shows it and Drain accepts it.
func WorkerHost(worker string) string {
	parts := strings.SplitN(worker, ":", 3)
	if len(parts) < 3 {
		return worker
	}
	return parts[0] + ":" + parts[1]
}

// DueNow makes a queued account claimable at once (a service's IDLE
// watch announced new mail): its next poll need not wait for its time.
func (l *Ledger) DueNow(ctx context.Context, account pipeline.AccountID) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	if l.pg == nil {
		return errNoQueue
	}
	if _, err := l.w.ExecContext(ctx, `UPDATE accounts SET not_before = 0 WHERE id = $1 AND queue = 'queued'`, account); err != nil {
		return fmt.Errorf("making account %d due in %s: %w", account, l.path, explainConnect(err))
	}
	return nil
}
