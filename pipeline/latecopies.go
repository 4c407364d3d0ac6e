package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// settleResent looks for late copies of the messages reconcile forgot and
// sent again (Resent): an APPEND given up on can still be completed by the
// server after its second copy was stored, and then the message is there
// twice. Each record is matched with at most one copy in its mailbox, with
// a UID at or above the record's FromUID, the same size and digest, that no
// done entry of the ledger names:
//
//   - its message is done and the copy the ledger names is still there,
//     unchanged: the late copy is a duplicate and is expunged;
//   - its message is not done (the second copy never got there, or the
//     message left the source), or the named copy is gone (a user deleted
//     one of the two): the late copy is the message's copy, recorded as
//     done;
//   - the named copy is in another folder (the mapping changed): both stay.
//
// A record is dropped once it is settled, or when a run at least
// LateCopyWindow after it was recorded finds no late copy. It runs at the
// start of an attempt, after reconcile, and again at the end, when the
// attempt's own resends are committed. entries is the account's ledger,
// kept up to date; nil reads it afresh.
func (a *attempt) settleResent(ctx context.Context) error {
	if a.st.DryRun {
		return nil // it would write on both sides; reconcile tells enough
	}
	recs, err := a.ledger.Resent(ctx, a.opts.Account)
	if err != nil {
		return fmt.Errorf("reading resent messages: %w", fatal(err))
	}
	if len(recs) == 0 {
		return nil
	}
	// The entries of the records' messages (records are few: they live
	// one LateCopyWindow).
	entries := map[string]Entry{}
	// And the removal intents a run cut short (lateCopyKey).
	keys := make([]string, 0, 2*len(recs))
	for _, r := range recs {
		keys = append(keys, r.Key, lateCopyKey(r.ID))
	}
	for chunk := range slices.Chunk(keys, MaxLookup) {
		err := a.ledger.Lookup(ctx, a.opts.Account, chunk, func(e Entry) error {
			entries[e.Key] = e
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading the ledger: %w", fatal(err))
		}
	}
	groups, mailboxes := byMailbox(recs, func(r Resent) string { return r.Mailbox })
	for _, mb := range mailboxes {
		if err := a.settleMailbox(ctx, mb, groups[mb], entries); err != nil {
			return fmt.Errorf("looking for late copies of %d resent messages in %q: %w", len(groups[mb]), mb, err)
		}
	}
	return nil
}

func (a *attempt) settleMailbox(ctx context.Context, mailbox string, recs []Resent, entries map[string]Entry) error {
	now := a.opts.Now()
	expired := func(r Resent) bool { return now.Sub(r.Recorded) >= a.opts.LateCopyWindow }
	status, err := a.dst.EnsureMailbox(ctx, mailbox)
	if err != nil {
		return err
	}
	var drop []int64
	var forget []string // removal intents settled
	var live []Resent
	var resume []lateDup // removals a run cut short after their intent
	from := uint32(0)
	for _, r := range recs {
		if in, ok := entries[lateCopyKey(r.ID)]; ok {
			// The intent holds the copy (no other account could adopt it
			// since): expunge it again (by UID: idempotent), unless the
			// mailbox was replaced or a mirror pass settled it.
			if in.State == StateRemoving && in.DestUIDValidity == status.UIDValidity && r.UIDValidity == status.UIDValidity {
				resume = append(resume, lateDup{rec: r.ID, intent: in})
			} else {
				drop, forget = append(drop, r.ID), append(forget, in.Key)
			}
			continue
		}
		if r.UIDValidity != status.UIDValidity {
			// The mailbox was replaced: a late copy into the old one is
			// gone with it, and the new one's UIDs say nothing.
			a.log.Warn("destination mailbox changed UIDVALIDITY; no longer looking for a late copy", "account", a.opts.Name,
				"mailbox", mailbox, "key", r.Key)
			drop = append(drop, r.ID)
			continue
		}
		if e, ok := entries[r.Key]; ok && e.State == StatePending {
			continue // a batch of its own is still unsettled; reconcile first
		}
		live = append(live, r)
		if from == 0 || r.FromUID < from {
			from = r.FromUID
		}
	}
	var cands []DestMessage
	if len(live) > 0 {
		cands, err = a.dst.ListSince(ctx, mailbox, status.UIDValidity, max(from, 1))
		if errors.Is(err, ErrUIDValidityChanged) {
			return fmt.Errorf("mailbox changed while looking for late copies: %w", err)
		}
		if err != nil {
			return fmt.Errorf("listing candidates from UID %d: %w", from, err)
		}
	}
	digests := newDestDigests(a.dst, mailbox)
	listed := make(map[uint32]DestMessage, len(cands))
	for _, c := range cands {
		listed[c.UID] = c
	}
	// present reports whether the copy a done entry names is still in
	// this mailbox, unchanged and not marked \Deleted: only then is
	// another copy a duplicate. (The copy sent again has a UID above the
	// record's FromUID, so it is among the candidates when it is there.)
	present := func(e Entry, r Resent) (bool, error) {
		c, ok := listed[e.DestUID]
		if !ok || c.Deleted || e.DestMailbox != mailbox || e.DestUIDValidity != status.UIDValidity || c.Size != r.Size {
			return false, nil
		}
		d, err := digests.of(ctx, e.DestUID)
		return d == r.Digest, err
	}
	// The account's own copied entries claim their UIDs; a done entry
	// without a UID (no APPENDUID) makes its digest's copies impossible
	// to tell apart. Other accounts' entries (and pending ones) claim
	// copies of their digest.
	uids := make([]uint32, len(cands))
	for i, c := range cands {
		uids[i] = c.UID
	}
	ownClaims, err := a.claimedUIDs(ctx, a.opts.Account, mailbox, status.UIDValidity, uids, "")
	if err != nil {
		return err
	}
	own := ownClaims.UIDs
	noUID := map[string]bool{}
	others := map[string]Claims{}
	claimsOf := func(digest string) (Claims, error) {
		if cl, ok := others[digest]; ok {
			return cl, nil
		}
		mine, err := a.claimedUIDs(ctx, a.opts.Account, mailbox, status.UIDValidity, nil, digest)
		if err != nil {
			return Claims{}, err
		}
		cl, err := a.claimedUIDs(ctx, 0, mailbox, status.UIDValidity, uids, digest)
		if err != nil {
			return Claims{}, err
		}
		noUID[digest] = mine.NoUID
		others[digest] = cl
		return cl, nil
	}
	claimed := func(uid uint32, digest string) (bool, error) {
		if own[uid] {
			return true, nil
		}
		cl, err := claimsOf(digest)
		return cl.Has(uid), err
	}
	// Hash every candidate at once (one FETCH), as reconcile does.
	sizes := map[int64]bool{}
	for _, r := range live {
		sizes[r.Size] = true
	}
	var hash []uint32
	for _, c := range cands {
		if !c.Deleted && c.UID >= from && sizes[c.Size] {
			hash = append(hash, c.UID)
		}
	}
	if err := digests.load(ctx, status.UIDValidity, hash); err != nil {
		return err
	}
	used := map[uint32]bool{}
	var dups []lateDup
	var adopted []Entry
	for _, r := range live {
		if _, err := claimsOf(r.Digest); err != nil {
			return err
		}
		if noUID[r.Digest] {
			a.log.Warn("the destination gave no UID for an earlier copy; a late copy of a resent message cannot be told apart, not looking for it",
				"account", a.opts.Name, "mailbox", mailbox, "key", r.Key)
			drop = append(drop, r.ID)
			continue
		}
		match := uint32(0)
		for _, c := range cands {
			// A copy marked \Deleted is on its way out; it is nobody's.
			if used[c.UID] || c.Deleted || c.UID < r.FromUID || c.Size != r.Size {
				continue
			}
			d, err := digests.of(ctx, c.UID)
			if err != nil {
				return err
			}
			if d != r.Digest {
				continue
			}
			cl, err := claimed(c.UID, d)
			if err != nil {
				return err
			}
			if !cl {
				match = c.UID
				break
			}
		}
		if match == 0 {
			if expired(r) {
				drop = append(drop, r.ID)
			}
			continue
		}
		used[match] = true
		e, ok := entries[r.Key]
		if (!ok || e.State != StateDone) && a.opts.KeyFolder != nil {
			// Copied since under a new identity (an IMAP folder whose
			// UIDVALIDITY changed): that entry names the message's copy.
			if o, found, err := a.newIdentity(ctx, r); err != nil {
				return err
			} else if found {
				e, ok = o, true
			}
		}
		if ok && e.State == StateDone {
			named, err := present(e, r)
			if err != nil {
				return err
			}
			switch {
			case named:
				a.log.Warn("a resent message's first APPEND was stored late; removing that second copy", "account", a.opts.Name,
					"mailbox", mailbox, "key", r.Key, "uid", match, "kept_uid", e.DestUID)
				dups = append(dups, lateDup{rec: r.ID, intent: Entry{
					Key: lateCopyKey(r.ID), State: StateRemoving, Digest: r.Digest, Size: r.Size,
					DestMailbox: mailbox, DestUIDValidity: status.UIDValidity, DestUID: match, Updated: now, GoneAt: now,
				}})
				continue
			case e.DestMailbox != mailbox:
				// The message was copied into another folder since (the
				// folder mapping changed): two folders, two copies; not
				// ours to choose.
				a.log.Warn("a resent message's first APPEND was stored late; keeping it, its other copy is in another folder",
					"account", a.opts.Name, "mailbox", mailbox, "key", r.Key, "uid", match, "other_mailbox", e.DestMailbox)
				drop = append(drop, r.ID)
				continue
			}
			// The copy the ledger names is gone or being deleted (a user
			// removed one of the two): the late copy is the message's
			// copy now.
		}
		a.log.Info("a resent message's first APPEND was stored late; it is the message's copy", "account", a.opts.Name,
			"mailbox", mailbox, "key", r.Key, "uid", match)
		doneAt := now
		if ok && e.State == StateDone && !e.DoneAt.IsZero() {
			doneAt = e.DoneAt
		}
		key := r.Key
		if ok {
			key = e.Key
		}
		n := Entry{
			Key: key, State: StateDone, Digest: r.Digest, Size: r.Size,
			MessageID: e.MessageID, DestMailbox: mailbox, DestUIDValidity: status.UIDValidity, DestUID: match,
			Flags: e.Flags, Updated: now, DoneAt: doneAt,
		}
		adopted = append(adopted, n)
		// A second record for the same message now finds this copy named.
		entries[key], own[match] = n, true
		drop = append(drop, r.ID)
	}
	if len(adopted) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: adopted}); err != nil {
			return fatal(err)
		}
		a.st.LateCopiesAdopted += len(adopted)
	}
	if len(dups) > 0 {
		var left []int64
		if dups, left, err = a.takeLateCopies(ctx, mailbox, dups); err != nil {
			return err
		}
		drop = append(drop, left...)
	}
	if dups = append(resume, dups...); len(dups) > 0 {
		a.opts.Crashpoint("late copy removing")
		uids := make([]uint32, len(dups))
		for i, d := range dups {
			uids[i] = d.intent.DestUID
		}
		err := a.dst.Expunge(ctx, mailbox, status.UIDValidity, uids)
		switch {
		case errors.Is(err, ErrCannotExpunge):
			// Keep the records: a later run against a better server, or
			// the user, can still act on them; they expire like others.
			// The intents go: they would hold the copies meanwhile.
			a.log.Error("cannot remove late duplicate copies: the destination cannot expunge single messages",
				"account", a.opts.Name, "mailbox", mailbox, "uids", uids)
			a.st.LateCopiesKept += len(dups)
			for _, d := range dups {
				forget = append(forget, d.intent.Key)
			}
		case err != nil:
			return fmt.Errorf("removing %d late duplicate copies: %w", len(dups), err)
		default:
			a.st.LateCopiesRemoved += len(dups)
			for _, d := range dups {
				drop, forget = append(drop, d.rec), append(forget, d.intent.Key)
			}
		}
	}
	if len(drop) > 0 || len(forget) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{DropResent: drop, Delete: forget}); err != nil {
			return fatal(err)
		}
	}
	return nil
}

// lateDup is a late duplicate copy to expunge: its record's ID, and the
// removal intent that holds the copy until it is gone.
type lateDup struct {
	rec    int64
	intent Entry
}

// LateCopyKeyPrefix starts the key of every intent to remove a late copy
// (lateCopyKey). Such an entry is no message of the account: Ledger.Counts
// and the ledger's status leave it out (it is neither a copy for mirror's
// caps nor mirroring work), while Changes.Take and Changes.Adopt treat it
// as any removing entry, so that it holds its copy.
const LateCopyKeyPrefix = "\x01late copy\x01"

// lateCopyKey is the key of the intent to remove the late copy of record
// id. The intent is an entry of the account (removing, naming the copy),
// recorded through Changes.Take like mirror's, so that another account's
// destination matching cannot adopt the copy while it is being expunged,
// and deleted with the record once the copy is gone. Source keys never
// start with \x01 (POP3 UIDs are printable; IMAP keys start with a
// mailbox name). A mirror pass settling removing entries (settleMirror,
// after settleResent) would expunge the copy too and record it removed,
// which settleResent takes as settled.
func lateCopyKey(id int64) string {
	return LateCopyKeyPrefix + strconv.FormatInt(id, 10)
}

// takeLateCopies records the intents of dups (Changes.Take) and returns
// those the ledger allowed, and the records of the others: a copy another
// account's entry came to name since settleMailbox looked (its destination
// matching adopted it) is that account's copy now; it stays, and only this
// account's record is settled.
func (a *attempt) takeLateCopies(ctx context.Context, mailbox string, dups []lateDup) ([]lateDup, []int64, error) {
	var left []int64
	for len(dups) > 0 {
		take := make([]Entry, len(dups))
		for i, d := range dups {
			take[i] = d.intent
		}
		err := a.ledger.Commit(ctx, a.opts.Account, Changes{Take: take})
		refused, ok := contested(err)
		if !ok {
			if err != nil {
				return nil, nil, fmt.Errorf("recording the removal of %d late duplicate copies: %w", len(dups), fatal(err))
			}
			return dups, left, nil
		}
		a.log.Info("late duplicate copies another account's entries came to name stay on the destination",
			"account", a.opts.Name, "mailbox", mailbox, "copies", len(refused))
		n := len(dups)
		dups = slices.DeleteFunc(dups, func(d lateDup) bool {
			if refused[d.intent.Key] {
				left = append(left, d.rec)
			}
			return refused[d.intent.Key]
		})
		if len(dups) == n {
			// Refused, naming none of them: asking again would loop.
			return nil, nil, fmt.Errorf("recording the removal of %d late duplicate copies: %w", n, fatal(err))
		}
	}
	return nil, left, nil
}

// newIdentity finds the entry a resent message was copied under since its
// key changed (its folder's UIDVALIDITY did): a done entry of the same
// folder, another generation, with its digest.
func (a *attempt) newIdentity(ctx context.Context, r Resent) (Entry, bool, error) {
	p, ok := a.opts.KeyFolder(r.Key)
	if !ok || r.Digest == "" {
		return Entry{}, false, nil
	}
	cands, err := a.scanAll(ctx, Query{KeyPrefix: p.Folder, States: []State{StateDone}, Digest: r.Digest})
	if err != nil {
		return Entry{}, false, err
	}
	for _, o := range cands {
		if sameOrigin(a.opts.KeyFolder, r.Key, o.Key) {
			return o, true, nil
		}
	}
	return Entry{}, false, nil
}
