package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// reconcile settles the entries an interrupted run left pending: each is
// looked up on the destination and becomes done when found there, or is
// forgotten (and so sent again) when not. It updates entries in place.
//
// A pending message, if the server stored it, has a UID at or above the
// UIDNEXT recorded before its batch was sent, and the same size and digest.
// When the mailbox's UIDVALIDITY changed since, UIDs mean nothing: every
// message of the mailbox is then a candidate, matched by size and digest.
func (a *attempt) reconcile(ctx context.Context, entries map[string]Entry) error {
	var pending []Entry
	for _, e := range entries {
		if e.State == StatePending {
			pending = append(pending, e)
		}
	}
	groups, mailboxes := byMailbox(pending, func(e Entry) string { return e.DestMailbox })
	for _, mb := range mailboxes {
		if err := a.reconcileMailbox(ctx, mb, groups[mb], entries); err != nil {
			return fmt.Errorf("reconciling %d interrupted messages in %q: %w", len(groups[mb]), mb, err)
		}
	}
	return nil
}

func (a *attempt) reconcileMailbox(ctx context.Context, mailbox string, pending []Entry, entries map[string]Entry) error {
	status, err := a.dst.EnsureMailbox(ctx, mailbox)
	if err != nil {
		return err
	}
	// UIDs already owned by done entries are never claimed twice.
	claimed := map[uint32]bool{}
	for _, e := range entries {
		if e.State == StateDone && e.DestMailbox == mailbox && e.DestUIDValidity == status.UIDValidity && e.DestUID != 0 {
			claimed[e.DestUID] = true
		}
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
			"account", a.opts.Account, "mailbox", mailbox)
	}
	cands, err := a.dst.ListSince(ctx, mailbox, status.UIDValidity, max(from, 1))
	if err != nil {
		if errors.Is(err, ErrUIDValidityChanged) {
			return fmt.Errorf("mailbox changed while reconciling: %w", err)
		}
		return fmt.Errorf("listing candidates from UID %d: %w", from, err)
	}
	digests := newDestDigests(a.dst, mailbox)

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
			delete(entries, e.Key)
			// The abandoned APPEND may still land after the copy sent
			// again (see Resent). Had it landed before the STATUS above,
			// the listing would have shown it, so a late copy's UID is
			// at least the UIDNEXT that STATUS gave.
			resent = append(resent, Resent{
				Account: a.opts.Account, Key: e.Key, Mailbox: mailbox,
				UIDValidity: status.UIDValidity, FromUID: max(status.UIDNext, from, 1),
				Digest: e.Digest, Size: e.Size, Recorded: a.opts.Now(),
			})
			continue
		}
		claimed[match] = true
		e.State, e.DestUID, e.DestUIDValidity, e.Updated = StateDone, match, status.UIDValidity, a.opts.Now()
		e.DoneAt = e.Updated
		entries[e.Key] = e
		found = append(found, e)
	}
	if len(found) > 0 {
		if err := a.ledger.Put(ctx, found); err != nil {
			return fatal(err)
		}
		for _, e := range found {
			a.prog.MessageDone(a.opts.Account, OutcomeFound, e.Size)
		}
	}
	if len(missing) > 0 {
		if err := a.ledger.Forget(ctx, a.opts.Account, missing, resent); err != nil {
			return fatal(err)
		}
	}
	a.st.Reconciled += len(found)
	a.st.Resent += len(missing)
	a.log.Info("reconciled interrupted messages", "account", a.opts.Account, "mailbox", mailbox,
		"found", len(found), "not_found", len(missing))
	return nil
}
