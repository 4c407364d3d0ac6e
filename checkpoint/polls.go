package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/pipeline"
)

// PollSummary is what a long-running service wants to show of an account's
// runs (each poll is a run): the last one that succeeded and the last one
// that ended with an error.
type PollSummary struct {
	// LastSuccess is the newest run with result "ok" or "partial"; nil
	// when there was none.
	LastSuccess *pipeline.RunRecord
	// LastError is the newest run with an error (failed or interrupted);
	// nil when there was none.
	LastError *pipeline.RunRecord
}

// Polls returns the account's last successful run and last run with an
// error. Both queries use the (account, id) index, so they stay cheap
// however many runs a service has recorded.
func (l *Ledger) Polls(ctx context.Context, account string) (PollSummary, error) {
	if err := l.checkOpen(); err != nil {
		return PollSummary{}, err
	}
	var out PollSummary
	var err error
	if out.LastSuccess, err = l.lastRun(ctx, account, `result IN ('ok', 'partial')`); err != nil {
		return PollSummary{}, err
	}
	// A paused run's error column says until when (pipeline.PausedRecord):
	// not an error.
	if out.LastError, err = l.lastRun(ctx, account, `error != '' AND result != 'paused'`); err != nil {
		return PollSummary{}, err
	}
	return out, nil
}

// lastRun is the newest run of account matching where (a constant
// condition, never user input).
func (l *Ledger) lastRun(ctx context.Context, account, where string) (*pipeline.RunRecord, error) {
	rec, err := scanRun(l.r.QueryRowContext(ctx, `SELECT `+runColumns+`
		FROM runs WHERE account = ? AND `+where+` ORDER BY id DESC LIMIT 1`, account).Scan, account)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the last runs of %s from %s: %w", account, l.path, err)
	}
	return &rec, nil
}

// PruneRuns deletes the account's runs older than its keep newest ones,
// except the newest successful run and the newest run with an error (what
// Polls reports), so that a service polling every few minutes does not
// grow the ledger without bound. keep < 1 is taken as 1.
func (l *Ledger) PruneRuns(ctx context.Context, account string, keep int) error {
	if err := l.checkOpen(); err != nil {
		return err
	}
	keep = max(keep, 1)
	_, err := l.w.ExecContext(ctx, `DELETE FROM runs WHERE account = ?1
		AND id < (SELECT MIN(id) FROM (SELECT id FROM runs WHERE account = ?1 ORDER BY id DESC LIMIT ?2))
		AND id != COALESCE((SELECT MAX(id) FROM runs WHERE account = ?1 AND result IN ('ok', 'partial')), 0)
		AND id != COALESCE((SELECT MAX(id) FROM runs WHERE account = ?1 AND error != '' AND result != 'paused'), 0)`, account, keep)
	if err != nil {
		return fmt.Errorf("pruning the runs of %s in %s: %w", account, l.path, err)
	}
	return nil
}
