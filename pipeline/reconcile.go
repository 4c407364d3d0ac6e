package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// reconcile settles the entries an interrupted run left pending: each is
// looked up on the destination and becomes done when found there, or is
// forgotten (and so sent again) when not.
//
// A pending message, if the server stored it, has a UID at or above the
// UIDNEXT recorded before its batch was sent, and the same size and digest.
// When the mailbox's UIDVALIDITY changed since, UIDs mean nothing: every
// message of the mailbox is then a candidate, matched by size and digest.
// Pending entries are the batches in flight when a run stopped: a few,
// read whole.
func (a *attempt) reconcile(ctx context.Context) error {
	pending, err := a.scanAll(ctx, Query{States: []State{StatePending}})
	if err != nil {
		return err
	}
	groups, mailboxes := byMailbox(pending, func(e Entry) string { return e.DestMailbox })
	for _, mb := range mailboxes {
		if err := a.reconcileMailbox(ctx, mb, groups[mb]); err != nil {
			return fmt.Errorf("reconciling %d interrupted messages in %q: %w", len(groups[mb]), mb, err)
		}
	}
	return nil
}

// scanAll returns every entry q selects: for the small sets only (pending
// entries, a resent message's possible identities).
func (a *attempt) scanAll(ctx context.Context, q Query) ([]Entry, error) {
	var out []Entry
	for {
		page, next, err := a.ledger.Scan(ctx, a.opts.Account, q)
		if err != nil {
			return nil, fmt.Errorf("reading the ledger: %w", fatal(err))
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.After = next
	}
}

// claimedUIDs returns which of uids entries of this account (any account
// with digest set) name in mailbox under uidValidity, asking the ledger a
// chunk at a time; with digest, claims also holds the lowest UID a
// pending entry of that digest may own.
func (a *attempt) claimedUIDs(ctx context.Context, account AccountID, mailbox string, uidValidity uint32, uids []uint32, digest string) (Claims, error) {
	out := Claims{UIDs: map[uint32]bool{}}
	for chunk := range slices.Chunk(uids, MaxLookup) {
		cl, err := a.ledger.Copies(ctx, CopiesQuery{Account: account, Mailbox: mailbox, UIDValidity: uidValidity, UIDs: chunk, Digest: digest})
		if err != nil {
			return out, fmt.Errorf("reading the ledger's copies in %q: %w", mailbox, fatal(err))
		}
		for u := range cl.UIDs {
			out.UIDs[u] = true
		}
		if cl.PendingFrom != 0 && (out.PendingFrom == 0 || cl.PendingFrom < out.PendingFrom) {
			out.PendingFrom = cl.PendingFrom
		}
		out.NoUID = out.NoUID || cl.NoUID
	}
	if len(uids) == 0 && digest != "" {
		return a.ledger.Copies(ctx, CopiesQuery{Account: account, Mailbox: mailbox, UIDValidity: uidValidity, Digest: digest})
	}
	return out, nil
}

func (a *attempt) reconcileMailbox(ctx context.Context, mailbox string, pending []Entry) error {
	status, err := a.dst.EnsureMailbox(ctx, mailbox)
	if err != nil {
		return err
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Key < pending[j].Key })

	from := uint32(0)
	changed := false
	for _, e := range pending {
		if e.DestUIDValidity != status.UIDValidity || e.DestUIDNext == 0 {
			changed = true
			continue
		}
		if from == 0 || e.DestUIDNext < from {
			from = e.DestUIDNext
		}
	}
	if changed {
		from = 1
		a.log.Warn("destination mailbox changed UIDVALIDITY since the interrupted run; matching by content",
			"account", a.opts.Name, "mailbox", mailbox)
	}
	cands, err := a.dst.ListSince(ctx, mailbox, status.UIDValidity, max(from, 1))
	if err != nil {
		if errors.Is(err, ErrUIDValidityChanged) {
			return fmt.Errorf("mailbox changed while reconciling: %w", err)
		}
		return fmt.Errorf("listing candidates from UID %d: %w", from, err)
	}
	// UIDs already owned by copied entries are never claimed twice.
	uids := make([]uint32, len(cands))
	for i, c := range cands {
		uids[i] = c.UID
	}
	owned, err := a.claimedUIDs(ctx, a.opts.Account, mailbox, status.UIDValidity, uids, "")
	if err != nil {
		return err
	}
	claimed := owned.UIDs
	// Every candidate a pending entry could be (its size, not claimed) is
	// hashed at once: one FETCH for the mailbox, not a round trip per
	// message (issue 14: a resume sat for 12 s at 100% doing them one by
	// one).
	sizes := map[int64]bool{}
	for _, e := range pending {
		sizes[e.Size] = true
	}
	var hash []uint32
	for _, c := range cands {
		if !claimed[c.UID] && sizes[c.Size] {
			hash = append(hash, c.UID)
		}
	}
	a.log.Info("reconciling interrupted messages", "account", a.opts.Name, "mailbox", mailbox,
		"pending", len(pending), "from_uid", max(from, 1), "listed", len(cands), "to_hash", len(hash))
	digests := newDestDigests(a.dst, mailbox)
	if err := digests.load(ctx, status.UIDValidity, hash); err != nil {
		return err
	}

	var found []Entry
	var missing []string
	var resent []Resent
	for _, e := range pending {
		match := uint32(0)
		for _, c := range cands {
			if claimed[c.UID] || c.Size != e.Size {
				continue
			}
			if e.DestUIDValidity == status.UIDValidity && e.DestUIDNext != 0 && c.UID < e.DestUIDNext {
				continue
			}
			d, err := digests.of(ctx, c.UID)
			if err != nil {
				return err
			}
			if d == e.Digest {
				match = c.UID
				break
			}
		}
		if match == 0 {
			missing = append(missing, e.Key)
			// The abandoned APPEND may still land after the copy sent
			// again (see Resent). Had it landed before the STATUS above,
			// the listing would have shown it, so a late copy's UID is
			// at least the UIDNEXT that STATUS gave.
			resent = append(resent, Resent{
				Key: e.Key, Mailbox: mailbox,
				UIDValidity: status.UIDValidity, FromUID: max(status.UIDNext, from, 1),
				Digest: e.Digest, Size: e.Size, Recorded: a.opts.Now(),
			})
			continue
		}
		claimed[match] = true
		e.State, e.DestUID, e.DestUIDValidity, e.Updated = StateDone, match, status.UIDValidity, a.opts.Now()
		e.DoneAt = e.Updated
		found = append(found, e)
	}
	// Found and forgotten in one transaction: an entry is never gone
	// without the note that its first APPEND may still land late.
	if len(found) > 0 {
		// Announced before they are done, so that a display counts them
		// among the messages it shows (the listing's announcement that
		// follows keeps them): never more done than announced
		// (copied=18350 of=18250, issue 14), and a status page that
		// reads the ledger's done count at the announcement does not
		// count them twice.
		a.prog.AccountStarted(a.opts.Name, len(found), 0)
	}
	if len(found)+len(missing) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: found, Delete: missing, Resent: resent}); err != nil {
			return fatal(err)
		}
	}
	for _, e := range found {
		a.prog.MessageDone(a.opts.Name, OutcomeFound, e.Size)
	}
	a.st.Reconciled += len(found)
	a.st.Resent += len(missing)
	a.log.Info("reconciled interrupted messages", "account", a.opts.Name, "mailbox", mailbox,
		"found", len(found), "not_found", len(missing))
	return nil
}
