package checkpoint

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// StartRun records the start of a run over account and returns its id for
// FinishRun. A run that is never finished (crash) keeps a zero Finished.
func (l *Ledger) StartRun(ctx context.Context, account string, started time.Time) (int64, error) {
	if err := l.checkOpen(); err != nil {
		return 0, err
	}
	if account == "" {
		return 0, fmt.Errorf("starting run in %s: empty account", l.path)
	}
	if started.IsZero() {
		started = l.now()
	}
	res, err := l.w.ExecContext(ctx,
		`INSERT INTO runs (account, started) VALUES (?, ?)`, account, nanos(started))
	if err != nil {
		return 0, fmt.Errorf("starting run of %s in %s: %w", account, l.path, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("starting run of %s in %s: reading run id: %w", account, l.path, err)
	}
	return id, nil
}

// FinishRun records the outcome of run runID: rec's Finished (the current
// time when zero), Result, Error and counts. rec.Started is ignored (StartRun
// recorded it); rec.Account, when set, must be the run's account. It fails
// with an error wrapping ErrUnknownRun when no run has that id.
func (l *Ledger) FinishRun(ctx context.Context, runID int64, rec pipeline.RunRecord) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	finished := rec.Finished
	if finished.IsZero() {
		finished = l.now()
	}
	q := `UPDATE runs SET finished = ?, result = ?, error = ?, error_class = ?, hint = ?, copied = ?, skipped = ?, failed = ?
		WHERE id = ?`
	args := []any{nanos(finished), rec.Result, rec.Error, rec.ErrorClass, rec.Hint, rec.Copied, rec.Skipped, rec.Failed, runID}
	if rec.Account != "" {
		q += ` AND account = ?`
		args = append(args, rec.Account)
	}
	res, err := l.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("finishing run %d of %s in %s: %w", runID, rec.Account, l.path, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("finishing run %d of %s in %s: %w", runID, rec.Account, l.path, err)
	}
	if n == 0 {
		return fmt.Errorf("finishing run %d of %s in %s: %w", runID, rec.Account, l.path, ErrUnknownRun)
	}
	return nil
}

// Runs returns the runs of account, newest first, at most limit of them
// (all when limit <= 0).
func (l *Ledger) Runs(ctx context.Context, account string, limit int) ([]pipeline.RunRecord, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := l.r.QueryContext(ctx, `SELECT `+runColumns+`
		FROM runs WHERE account = ? ORDER BY id DESC LIMIT ?`, account, limit)
	if err != nil {
		return nil, fmt.Errorf("reading runs of %s from %s: %w", account, l.path, err)
	}
	defer rows.Close()
	var out []pipeline.RunRecord
	for rows.Next() {
		rec, err := scanRun(rows.Scan, account)
		if err != nil {
			return nil, fmt.Errorf("reading runs of %s from %s: %w", account, l.path, err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading runs of %s from %s: %w", account, l.path, err)
	}
	return out, nil
}

// runColumns are the columns scanRun reads, in its order.
const runColumns = `started, finished, result, error, error_class, hint, copied, skipped, failed`

// scanRun reads one run of account from a row of runColumns.
func scanRun(scan func(...any) error, account string) (pipeline.RunRecord, error) {
	var (
		rec      = pipeline.RunRecord{Account: account}
		started  int64
		finished sql.NullInt64
	)
	if err := scan(&started, &finished, &rec.Result, &rec.Error, &rec.ErrorClass, &rec.Hint,
		&rec.Copied, &rec.Skipped, &rec.Failed); err != nil {
		return rec, err
	}
	rec.Started = fromNanos(started)
	if finished.Valid {
		rec.Finished = fromNanos(finished.Int64)
	}
	return rec, nil
}
