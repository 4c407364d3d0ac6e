package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/mailferry/mailferry/mapping"
)

// PermanentFlagser is implemented by destinations that can tell which
// flags a mailbox keeps (IMAP PERMANENTFLAGS, RFC 3501 §7.1). nil means
// unknown: every valid flag is sent.
type PermanentFlagser interface {
	PermanentFlags(ctx context.Context, mailbox string) ([]string, error)
}

// FlagStorer is implemented by destinations that can replace the flags of
// stored messages (IMAP UID STORE FLAGS).
type FlagStorer interface {
	// StoreFlags sets each UID's flags to exactly the given set, provided
	// the mailbox still has uidValidity (else ErrUIDValidityChanged).
	StoreFlags(ctx context.Context, mailbox string, uidValidity uint32, flags map[uint32][]string) error
}

// syncFlags brings the flags of messages copied by earlier runs up to date:
// users keep reading mail between a bulk pass and the cutover.
func (a *attempt) syncFlags(ctx context.Context, done []SourceMessage, entries map[string]Entry) error {
	fs, ok := a.dst.(FlagStorer)
	if !ok {
		return nil
	}
	type change struct {
		entry Entry
		flags []string
	}
	byBox := map[string][]change{}
	permanent := map[string][]string{}
	for _, m := range done {
		if m.Flags == nil || a.run.copied[m.Key] {
			continue // a POP3 source has no flags; copied just now: up to date
		}
		e := entries[m.Key]
		if e.DestUID == 0 || e.DestMailbox == "" {
			continue // no UIDPLUS when it was copied: cannot address it
		}
		perm, seen := permanent[e.DestMailbox]
		if !seen {
			if pf, ok := a.dst.(PermanentFlagser); ok {
				var err error
				if perm, err = pf.PermanentFlags(ctx, e.DestMailbox); err != nil {
					return fmt.Errorf("reading the flags %q accepts: %w", e.DestMailbox, err)
				}
			}
			permanent[e.DestMailbox] = perm
		}
		want, _ := mapping.CleanFlags(m.Flags, perm)
		if mapping.SameFlags(want, e.Flags) {
			continue
		}
		byBox[e.DestMailbox] = append(byBox[e.DestMailbox], change{entry: e, flags: want})
	}
	for mailbox, changes := range byBox {
		// One UIDVALIDITY per request; entries of an older one are skipped.
		validity := changes[0].entry.DestUIDValidity
		set := map[uint32][]string{}
		var updated []Entry
		for _, c := range changes {
			if c.entry.DestUIDValidity != validity {
				continue
			}
			set[c.entry.DestUID] = c.flags
			e := c.entry
			e.Flags, e.Updated = c.flags, a.opts.Now()
			updated = append(updated, e)
		}
		if err := fs.StoreFlags(ctx, mailbox, validity, set); err != nil {
			if ClassOf(err) != ClassPerMessage {
				return fmt.Errorf("updating the flags of %d messages in %q: %w", len(set), mailbox, err)
			}
			// The server refused some flags (a keyword too long for it):
			// the messages are there, only their flags lag. Not recorded,
			// so the next run tries again.
			a.log.Warn("the destination refused some flag updates", "account", a.opts.Account,
				"mailbox", mailbox, "messages", len(set), "error", err)
			continue
		}
		if err := a.ledger.Put(ctx, updated); err != nil {
			return fmt.Errorf("recording updated flags: %w", fatal(err))
		}
		a.st.FlagsUpdated += len(updated)
	}
	return nil
}

// claimOrphan finds the earlier identity of it's message, if SameOrigin
// allows one: a done entry no longer listed, with the same digest and size.
func (a *attempt) claimOrphan(it *item) (Entry, bool) {
	if a.orphans == nil {
		return Entry{}, false
	}
	cands := a.orphans[it.entry.Digest]
	for i, old := range cands {
		if old.Size == it.entry.Size && a.opts.SameOrigin(old.Key, it.msg.Key) {
			a.orphans[it.entry.Digest] = slices.Delete(cands, i, i+1)
			return old, true
		}
	}
	return Entry{}, false
}
