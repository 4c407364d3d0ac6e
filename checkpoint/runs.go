package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// runColumns are the columns of a RunRecord.
const runColumns = `started, finished, result, error, error_class, hint, listed, listed_bytes, copied, found, skipped, failed,
	gone, moved, removed, deleted, bytes`

// scanFunc makes a Scan method of a function (a row with more columns).
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

func scanRun(row interface{ Scan(...any) error }) (pipeline.RunRecord, error) {
	var rec pipeline.RunRecord
	var started int64
	var finished sql.NullInt64
	err := row.Scan(&started, &finished, &rec.Result, &rec.Error, &rec.ErrorClass, &rec.Hint, &rec.Listed, &rec.ListedBytes,
		&rec.Copied, &rec.Found, &rec.Skipped, &rec.Failed, &rec.Gone, &rec.Moved, &rec.Removed, &rec.Deleted, &rec.Bytes)
	rec.Started = fromNanos(started)
	if finished.Valid {
		rec.Finished = fromNanos(finished.Int64)
	}
	return rec, err
}

// StartRun records the start of a run over account and returns its id for
// UpdateRun and FinishRun. A run that is never finished (crash) keeps a
// zero Finished.
func (l *Ledger) StartRun(ctx context.Context, account pipeline.AccountID, started time.Time) (int64, error) {
	if err := l.checkOpen(); err != nil {
		return 0, err
	}
	if started.IsZero() {
		started = l.now()
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("starting a run of account %d in %s: %w", account, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	var id int64
	err = tx.QueryRowContext(ctx, l.d.q(`INSERT INTO runs (account_id, worker, pass, started)
		VALUES (?, ?, (SELECT pass FROM accounts WHERE id = ?), ?) RETURNING id`), account, l.workerID(), account, nanos(started)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("starting a run of account %d in %s: %w", account, l.path, err)
	}
	if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET last_run = ? WHERE id = ?`), id, account); err != nil {
		return 0, fmt.Errorf("starting a run of account %d in %s: %w", account, l.path, err)
	}
	return id, tx.Commit()
}

// UpdateRun records a running run's figures, for a status page.
func (l *Ledger) UpdateRun(ctx context.Context, runID int64, rec pipeline.RunRecord) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	res, err := l.w.ExecContext(ctx, l.d.q(`UPDATE runs SET listed = ?, listed_bytes = ?, copied = ?, found = ?, skipped = ?,
		failed = ?, gone = ?, moved = ?, removed = ?, deleted = ?, bytes = ? WHERE id = ? AND finished IS NULL`),
		rec.Listed, rec.ListedBytes, rec.Copied, rec.Found, rec.Skipped, rec.Failed, rec.Gone, rec.Moved, rec.Removed,
		rec.Deleted, rec.Bytes, runID)
	if err != nil {
		return fmt.Errorf("updating run %d in %s: %w", runID, l.path, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("updating run %d in %s: %w", runID, l.path, errors.Join(err, ErrUnknownRun))
	}
	return nil
}

// FinishRun records the outcome of run runID (rec.Started is ignored:
// StartRun recorded it; a zero Finished is now), sets the account's newest
// successful and failed runs, clears its retry flag, and applies the
// pruning rules, in one transaction:
//
//   - runs: the newest 100 of the account, plus its newest successful run
//     and its newest run with an error;
//   - gone entries older than the retention (Options.Retention), unless
//     the account mirrors (rec.Mirror) and mailferry did not delete their
//     message itself: their removal is still to come;
//   - removed entries older than the retention;
//   - quota windows older than 7 days.
//
// It fails with an error wrapping ErrUnknownRun when no run has that id.
func (l *Ledger) FinishRun(ctx context.Context, runID int64, rec pipeline.RunRecord) (err error) {
	if err := l.checkOpen(); err != nil {
		return err
	}
	now := l.now()
	finished := rec.Finished
	if finished.IsZero() {
		finished = now
	}
	if l.pg != nil {
		var cancel context.CancelFunc
		ctx, cancel = l.pg.final(ctx, "the run's end was not recorded (it stays unfinished; the account's next run resumes it)")
		defer cancel()
		defer func() {
			if oor := outOfReach(ctx, err); oor != err {
				err = fmt.Errorf("finishing run %d in %s: %w", runID, l.path, oor)
			}
		}()
	}
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("finishing run %d in %s: %w", runID, l.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	var account pipeline.AccountID
	err = tx.QueryRowContext(ctx, l.d.q(`UPDATE runs SET finished = ?, result = ?, error = ?, error_class = ?, hint = ?, listed = ?,
		listed_bytes = ?, copied = ?, found = ?, skipped = ?, failed = ?, gone = ?, moved = ?, removed = ?, deleted = ?, bytes = ?
		WHERE id = ? RETURNING account_id`),
		nanos(finished), rec.Result, rec.Error, rec.ErrorClass, rec.Hint, rec.Listed, rec.ListedBytes, rec.Copied, rec.Found,
		rec.Skipped, rec.Failed, rec.Gone, rec.Moved, rec.Removed, rec.Deleted, rec.Bytes, runID).Scan(&account)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("finishing run %d in %s: %w", runID, l.path, ErrUnknownRun)
	}
	if err != nil {
		return fmt.Errorf("finishing run %d in %s: %w", runID, l.path, err)
	}
	ok := rec.Result == "ok" || rec.Result == "partial"
	if _, err := tx.ExecContext(ctx, l.d.q(`UPDATE accounts SET
			last_ok_run = CASE WHEN ? THEN ? ELSE last_ok_run END,
			last_err_run = CASE WHEN ? THEN ? ELSE last_err_run END,
			retry_skipped = FALSE,
			not_before = CASE WHEN ? THEN ? ELSE not_before END,
			wait_reason = CASE WHEN ? THEN 'quota' ELSE wait_reason END
		WHERE id = ?`),
		ok, runID, failed(rec), runID, !rec.ResumeAt.IsZero(), nanos(rec.ResumeAt), !rec.ResumeAt.IsZero(), account); err != nil {
		return fmt.Errorf("finishing run %d in %s: %w", runID, l.path, err)
	}
	if err := l.prune(ctx, tx, account, rec.Mirror, now); err != nil {
		return fmt.Errorf("finishing run %d in %s: %w", runID, l.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("finishing run %d in %s: %w", runID, l.path, err)
	}
	return nil
}

// prune applies the pruning rules of one account (see FinishRun).
func (l *Ledger) prune(ctx context.Context, tx *sql.Tx, account pipeline.AccountID, mirror bool, now time.Time) error {
	if _, err := tx.ExecContext(ctx, l.d.q(`DELETE FROM runs WHERE account_id = ?
		AND id < COALESCE((SELECT MIN(id) FROM (SELECT id FROM runs WHERE account_id = ? ORDER BY id DESC LIMIT ?) AS newest), 0)
		AND id <> COALESCE((SELECT last_ok_run FROM accounts WHERE id = ?), 0)
		AND id <> COALESCE((SELECT last_err_run FROM accounts WHERE id = ?), 0)`),
		account, account, keepRuns, account, account); err != nil {
		return fmt.Errorf("pruning runs: %w", err)
	}
	before := nanos(now.Add(-l.retention))
	gone := `DELETE FROM messages` + l.d.indexedBy("messages_open") + ` WHERE account_id = ? AND state <> 'done' AND state = 'gone' AND gone_at < ?`
	if mirror {
		gone += ` AND reason_class = 'deleted'`
	}
	if _, err := tx.ExecContext(ctx, l.d.q(gone), account, before); err != nil {
		return fmt.Errorf("pruning gone entries: %w", err)
	}
	if _, err := tx.ExecContext(ctx, l.d.q(`DELETE FROM messages`+l.d.indexedBy("messages_open")+` WHERE account_id = ? AND state <> 'done' AND state = 'removed' AND gone_at < ?`),
		account, before); err != nil {
		return fmt.Errorf("pruning removed entries: %w", err)
	}
	if _, err := tx.ExecContext(ctx, l.d.q(`DELETE FROM usage WHERE account_id = ? AND window_start < ?`),
		account, nanos(now.Add(-usageDays*24*time.Hour))); err != nil {
		return fmt.Errorf("pruning quota windows: %w", err)
	}
	return nil
}

// Runs returns the runs of account, newest first, at most limit of them
// (all when limit <= 0).
func (l *Ledger) Runs(ctx context.Context, account pipeline.AccountID, limit int) ([]pipeline.RunRecord, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	q, args := `SELECT `+runColumns+` FROM runs WHERE account_id = ? ORDER BY id DESC`, []any{account}
	if limit > 0 {
		q, args = q+` LIMIT ?`, append(args, limit)
	}
	rows, err := l.r.QueryContext(ctx, l.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("reading runs of account %d from %s: %w", account, l.path, err)
	}
	defer rows.Close()
	var out []pipeline.RunRecord
	for rows.Next() {
		rec, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("reading runs of account %d from %s: %w", account, l.path, err)
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// failed reports whether a run ended with an error: a paused run's error
// column says until when (pipeline.PausedRecord), which is none.
func failed(rec pipeline.RunRecord) bool {
	return rec.Error != "" && rec.Result != "paused"
}
