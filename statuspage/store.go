package statuspage

import (
	"context"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// Ledger is what the page reads from the ledger and asks of it. The page
// declares it; LedgerOf adapts today's SQLite checkpoint, so that a new
// ledger (another schema, another engine) changes only an adapter.
type Ledger interface {
	// Summaries returns what the ledger knows of every account, by ledger
	// key: counts, bytes, last run and controls. The page calls it for
	// each refresh of the account list, so it must not cost a query per
	// account.
	Summaries(ctx context.Context) (map[string]Summary, error)
	// Summary is Summaries for one account; the zero Summary for an
	// account the ledger does not know.
	Summary(ctx context.Context, key string) (Summary, error)
	// Runs returns the account's last runs, newest first, at most limit.
	Runs(ctx context.Context, key string, limit int) ([]pipeline.RunRecord, error)
	// Messages calls fn with the account's entries, in key order, one at a
	// time: only those in states when states is not empty, at most limit
	// when limit > 0. It returns fn's first error.
	Messages(ctx context.Context, key string, states []pipeline.State, limit int, fn func(pipeline.Entry) error) error
	// History counts the messages (and bytes) that became copied in each
	// interval of length step since since, oldest first.
	History(ctx context.Context, since time.Time, step time.Duration) ([]Sample, error)

	// SetPaused pauses (true) or resumes an account, durably: runs and
	// service polls do not start a paused account.
	SetPaused(ctx context.Context, key string, paused bool) error
	// RequestRetry asks that the next run (or poll) tries the account's
	// failed and skipped messages again, and returns how many of each.
	RequestRetry(ctx context.Context, key string) (RetryCounts, error)
}

// Summary is what the ledger knows of one account.
type Summary struct {
	Done, Pending, Skipped, Failed int
	DoneBytes                      int64 // bytes of the done (copied) messages
	Bytes                          int64 // bytes of the messages in every state
	LastRun                        *pipeline.RunRecord
	// Pause is the operator's pause (SetPaused), which lasts until
	// resumed; nil when the account is not paused that way. A pause of
	// traffic control is in LastRun (pipeline.RunRecord.PausedAt).
	Pause *pipeline.PausedError
	// RetryRequested is when a retry was last asked for; zero: never.
	RetryRequested time.Time
	// Holder is the pid of the process running the account now (on this
	// machine, or on the one Worker names), 0 when none; Worker is the
	// fleet worker holding its lease ("<host>:<pid>:…"), "" when none.
	// A last run that has not finished, with no holder, was killed.
	Holder int
	Worker string
}

// RetryCounts is what a retry request made retryable.
type RetryCounts struct {
	Skipped int `json:"skipped"` // skipped messages the next run tries again
	Failed  int `json:"failed"`  // failed messages, which every run tries again
}

// Sample is how much was copied in one interval.
type Sample struct {
	Start    time.Time `json:"start"`
	Messages int       `json:"messages"`
	Bytes    int64     `json:"bytes"`
}

// LedgerOf adapts the SQLite checkpoint to Ledger.
func LedgerOf(l *checkpoint.Ledger) Ledger { return checkpointLedger{l} }

type checkpointLedger struct{ l *checkpoint.Ledger }

func (c checkpointLedger) Summaries(ctx context.Context) (map[string]Summary, error) {
	sums, err := c.l.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	controls, err := c.l.Controls(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Summary, len(sums))
	for k, s := range sums {
		out[k] = summaryOf(s, controls[k])
	}
	for k, ctl := range controls {
		if _, ok := out[k]; !ok {
			out[k] = summaryOf(checkpoint.AccountSummary{}, ctl)
		}
	}
	return out, nil
}

func (c checkpointLedger) Summary(ctx context.Context, key string) (Summary, error) {
	s, err := c.l.Summary(ctx, key)
	if err != nil {
		return Summary{}, err
	}
	ctl, err := c.l.Control(ctx, key)
	if err != nil {
		return Summary{}, err
	}
	return summaryOf(s, ctl), nil
}

func summaryOf(s checkpoint.AccountSummary, ctl checkpoint.Control) Summary {
	return Summary{Done: s.Done, Pending: s.Pending, Skipped: s.Skipped, Failed: s.Failed,
		DoneBytes: s.Bytes, Bytes: s.AllBytes, LastRun: s.LastRun,
		Pause: ctl.Pause(), RetryRequested: ctl.RetryRequested, Holder: s.Holder, Worker: s.Worker}
}

func (c checkpointLedger) Runs(ctx context.Context, key string, limit int) ([]pipeline.RunRecord, error) {
	return c.l.RunsOf(ctx, key, limit)
}

func (c checkpointLedger) Messages(ctx context.Context, key string, states []pipeline.State, limit int, fn func(pipeline.Entry) error) error {
	return c.l.Each(ctx, key, checkpoint.ScanOptions{States: states, Limit: limit}, fn)
}

func (c checkpointLedger) History(ctx context.Context, since time.Time, step time.Duration) ([]Sample, error) {
	h, err := c.l.DoneHistory(ctx, since, step)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, len(h))
	for i, t := range h {
		out[i] = Sample{Start: t.Start, Messages: t.Messages, Bytes: t.Bytes}
	}
	return out, nil
}

func (c checkpointLedger) SetPaused(ctx context.Context, key string, paused bool) error {
	return c.l.SetPaused(ctx, key, paused)
}

func (c checkpointLedger) RequestRetry(ctx context.Context, key string) (RetryCounts, error) {
	n, err := c.l.RequestRetry(ctx, key)
	return RetryCounts{Skipped: n.Skipped, Failed: n.Failed}, err
}
