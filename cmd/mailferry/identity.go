package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// proveIdentity tries to prove that a provisional account (created for
// servers not seen before, while the ledger holds candidates: the same
// protocol and users through other servers) is one of its candidates,
// from what the servers hold (docs/ledger.md "Proving that a renamed
// server is the same mailbox"). Proved, the provisional account is bound
// to the candidate (its new server names become aliases, with the proof)
// and the candidate's number is returned: the run goes on with its
// history. Not proved, the account is confirmed as a mailbox of its own
// and 0 is returned, with the warning naming the candidates; nothing is
// copied twice either way, since destination matching finds what a
// destination folder already holds. An error (a server that cannot be
// reached) leaves the account provisional, for the next run to prove.
func (x *execution) proveIdentity(ctx context.Context, ledger *checkpoint.Ledger, job pipeline.Job, sp checkpoint.AccountSpec, res checkpoint.Resolution) (pipeline.AccountID, error) {
	counts, err := ledger.Counts(ctx, res.Account)
	if err != nil {
		return 0, err
	}
	for _, c := range counts {
		if c.Messages > 0 {
			// An earlier run that could not prove it went on as a new
			// history: it has entries of its own now, which binding
			// would lose. It stays what it became.
			x.log.Warn("an account the checkpoint could not prove to be one it knows has a history of its own now; keeping it",
				"account", job.Options.Name)
			return 0, ledger.ConfirmAccount(ctx, res.Account)
		}
	}
	src, dst, err := openForProof(ctx, job)
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = src.Close(false)
		if dst != nil {
			_ = dst.Close()
		}
	}()
	statuses, err := ledger.Status(ctx, checkpoint.Selector{IDs: res.Candidates})
	if err != nil {
		return 0, fmt.Errorf("reading the candidate accounts: %w", err)
	}
	var names []string
	for _, c := range statuses {
		names = append(names, c.Ident)
		proof, err := pipeline.ProveSource(ctx, src, ledger, c.ID, job.Options.ExpectedSize)
		if err != nil {
			return 0, err
		}
		if !proof.Proved() {
			continue
		}
		how := fmt.Sprintf("%s: %d of %d keys of the source's listing known", sp.KeyScheme, proof.Known, proof.Asked)
		if c.Destination != sp.Destination {
			// The destination was renamed too: it must hold the
			// candidate's copies, or it is another server and everything
			// is to be copied there.
			if dst == nil {
				if dst, err = openDestination(ctx, job); err != nil {
					return 0, err
				}
			}
			ok, err := pipeline.ProveDestination(ctx, dst, ledger, c.ID)
			if err != nil {
				return 0, err
			}
			if !ok {
				x.log.Warn("the source is a mailbox the checkpoint knows, but the destination does not hold its copies: a new history for this destination",
					"account", job.Options.Name, "known_as", c.Ident, "destination", sp.Destination, "known_destination", c.Destination)
				continue
			}
			how += "; a copy found on the destination at its UID"
		}
		h, err := ledger.Hold(ctx, c.ID)
		if err != nil {
			return 0, fmt.Errorf("holding account %s to bind its new server names: %w", c.Ident, err)
		}
		err = ledger.BindAlias(ctx, res.Account, c.ID, how)
		if rerr := h.Release(context.WithoutCancel(ctx)); err == nil {
			err = rerr
		}
		if err != nil {
			return 0, err
		}
		x.log.Info("account reached through a new server address; same mailbox as an account the checkpoint knows, going on with its history",
			"account", job.Options.Name, "same_as", c.Ident, "proved_by", how)
		return c.ID, nil
	}
	if err := ledger.ConfirmAccount(ctx, res.Account); err != nil {
		return 0, err
	}
	x.log.Warn("the checkpoint holds an account with the same users on other servers, and this mailbox could not be proved to be it; it starts its own history (destination matching still finds what the destination holds; set the same id on both to keep one)",
		"account", job.Options.Name, "candidates", names)
	return 0, nil
}

// openForProof opens the job's source (and, when the job opens both at
// once, its destination).
func openForProof(ctx context.Context, job pipeline.Job) (pipeline.Source, pipeline.Destination, error) {
	if job.Open != nil {
		return job.Open(ctx, pipeline.OpenOptions{})
	}
	if job.OpenSource == nil {
		return nil, nil, errors.New("the account cannot open its source")
	}
	src, err := job.OpenSource(ctx)
	return src, nil, err
}

func openDestination(ctx context.Context, job pipeline.Job) (pipeline.Destination, error) {
	if job.OpenDestination == nil {
		return nil, errors.New("the account cannot open its destination")
	}
	return job.OpenDestination(ctx)
}
