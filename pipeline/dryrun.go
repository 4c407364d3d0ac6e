package pipeline

import (
	"context"
	"log/slog"
	"time"
)

// Dry-run decorators: reads go through, writes do nothing. The source is
// still read in full, so the report shows what a real run would copy and
// skip.
//
// A wrapper that embeds an interface hides the optional interfaces of what
// it wraps: each one the engine asks for (Prefetcher, ListSummarizer,
// PermanentFlagser, FlagStorer) is answered here explicitly, and TestDryRunKeepsOptionalInterfaces
// fails for one the engine starts asking for without an answer here.

type dryRunSource struct {
	Source
	log     *slog.Logger
	account string
}

// dryRunLogKeys bounds the keys one dry-run deletion names in the log.
const dryRunLogKeys = 20

// Delete deletes nothing; it logs what a real run would delete.
func (d dryRunSource) Delete(_ context.Context, msgs []SourceMessage) error {
	keys := make([]string, 0, min(len(msgs), dryRunLogKeys))
	for _, m := range msgs[:min(len(msgs), dryRunLogKeys)] {
		keys = append(keys, m.Key)
	}
	d.log.Info("dry run: would delete at the source", "account", d.account, "messages", len(msgs), "keys", keys)
	return nil
}

func (d dryRunSource) Prefetch(ctx context.Context, msgs []SourceMessage) error {
	if p, ok := d.Source.(Prefetcher); ok {
		return p.Prefetch(ctx, msgs)
	}
	return nil
}

// ListSummary passes the real source's on: a dry run reads the listing
// as a real run would.
func (d dryRunSource) ListSummary(ctx context.Context, thenList bool) (ListSummary, bool, error) {
	if ls, ok := d.Source.(ListSummarizer); ok {
		return ls.ListSummary(ctx, thenList)
	}
	return ListSummary{}, false, nil
}

// FolderNames passes the real source's on: mirror's dry run tells folders
// deleted at the source as a real run would.
func (d dryRunSource) FolderNames(ctx context.Context) ([]string, error) {
	if fn, ok := d.Source.(FolderNamer); ok {
		return fn.FolderNames(ctx)
	}
	return nil, nil
}

// dryRunDestination answers neither Mover, MailboxDeleter nor Renamer: a
// dry run's mirror lists what it would move and delete, and never asks.
type dryRunDestination struct{ Destination }

func (d *dryRunDestination) EnsureMailbox(_ context.Context, name string) (MailboxStatus, error) {
	return MailboxStatus{Name: name}, nil
}

func (d *dryRunDestination) Append(_ context.Context, _ string, msgs []OutgoingMessage) ([]AppendResult, error) {
	return make([]AppendResult, len(msgs)), nil
}

func (d *dryRunDestination) Expunge(context.Context, string, uint32, []uint32) error {
	return nil
}

func (d *dryRunDestination) ListSince(context.Context, string, uint32, uint32) ([]DestMessage, error) {
	return nil, nil
}

// PermanentFlags reads what the real destination keeps, so that a dry run
// reports the flags a copy would drop. A mailbox the dry run did not
// create (a new folder) cannot tell: unknown, every valid flag.
func (d *dryRunDestination) PermanentFlags(ctx context.Context, mailbox string) ([]string, error) {
	if pf, ok := d.Destination.(PermanentFlagser); ok {
		perm, err := pf.PermanentFlags(ctx, mailbox)
		if err != nil && ClassOf(err) != ClassTransient {
			return nil, nil
		}
		return perm, err
	}
	return nil, nil
}

// StoreFlags stores nothing; the flag sync counts what it would update.
// A destination that cannot store flags answers as it would in a real run.
func (d *dryRunDestination) StoreFlags(_ context.Context, _ string, _ uint32, _ map[uint32][]string) error {
	return nil
}

// storesFlags tells whether the real destination can store flags: flag
// sync reports nothing to update for one that cannot.
func (d *dryRunDestination) storesFlags() bool {
	_, ok := d.Destination.(FlagStorer)
	return ok
}

// dryRunLedger reads the real ledger and writes nothing.
type dryRunLedger struct{ Ledger }

// Hold takes the real hold, so that a dry run does not read an account
// while a real run changes it; an account the ledger does not know yet
// (0) has nothing to read and nobody to exclude.
func (l dryRunLedger) Hold(ctx context.Context, account AccountID) (Hold, error) {
	if account == 0 {
		return nopHold{}, nil
	}
	return l.Ledger.Hold(ctx, account)
}

func (dryRunLedger) Commit(context.Context, AccountID, Changes) error { return nil }
func (dryRunLedger) StartRun(context.Context, AccountID, time.Time) (int64, error) {
	return 0, nil
}
func (dryRunLedger) UpdateRun(context.Context, int64, RunRecord) error { return nil }
func (dryRunLedger) FinishRun(context.Context, int64, RunRecord) error { return nil }

// nopHold holds nothing.
type nopHold struct{}

func (nopHold) Lost() <-chan struct{}         { return nil }
func (nopHold) Paused() <-chan struct{}       { return nil }
func (nopHold) RetrySkipped() bool            { return false }
func (nopHold) Release(context.Context) error { return nil }

// FolderSummaries and LeaveOut pass the real source's on: a dry run lists
// the folders a real run would.
func (d dryRunSource) FolderSummaries(ctx context.Context) ([]FolderSummary, bool, error) {
	if fs, ok := d.Source.(FolderSummarizer); ok {
		return fs.FolderSummaries(ctx)
	}
	return nil, false, nil
}

func (d dryRunSource) LeaveOut(mailboxes []string) {
	if fs, ok := d.Source.(FolderSummarizer); ok {
		fs.LeaveOut(mailboxes)
	}
}

// Digests and ListHeaders pass the real destination's on: they only read,
// and a dry run matches what the destination holds as a real run would.
func (d *dryRunDestination) Digests(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) ([]DestDigest, error) {
	return digestsOf(ctx, d.Destination, mailbox, uidValidity, uids)
}

// Holding passes the real destination's on, as Digests does.
func (d *dryRunDestination) Holding(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32) (map[uint32]bool, error) {
	return holding(ctx, d.Destination, mailbox, uidValidity, uids)
}

func (d *dryRunDestination) ListHeaders(ctx context.Context, mailbox string) (uint32, []DestHeader, error) {
	if hl, ok := d.Destination.(HeaderLister); ok {
		return hl.ListHeaders(ctx, mailbox)
	}
	return 0, nil, nil
}

// ListChanges and Changes pass the real source's on: a dry run lists what
// a real run would. A source that cannot list by changes lists every
// folder whole, and names none in Changes.
func (d dryRunSource) ListChanges(since []FolderSince) {
	if cl, ok := d.Source.(ChangeLister); ok {
		cl.ListChanges(since)
	}
}

func (d dryRunSource) Changes() []FolderChanges {
	if cl, ok := d.Source.(ChangeLister); ok {
		return cl.Changes()
	}
	return nil
}
