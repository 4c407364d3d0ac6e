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

// flagChange is an earlier copy whose source flags differ from the flags
// its entry says the copy was given.
type flagChange struct {
	entry Entry
	flags []string // the source's
}

// syncFlags brings the flags of messages copied by earlier runs up to date
// through this writer's session (users keep reading mail between a bulk
// pass and the cutover). The listing finds them page by page.
func (w *batchWriter) syncFlags(ctx context.Context, changes []flagChange) error {
	a := w.a
	fs, ok := w.dst.(FlagStorer)
	if dr, dry := w.dst.(*dryRunDestination); !ok || dry && !dr.storesFlags() {
		return nil
	}
	byBox := map[string][]flagChange{}
	for _, c := range changes {
		perm, err := w.permanentFlags(ctx, c.entry.DestMailbox)
		if err != nil {
			return err
		}
		want, _ := mapping.CleanFlags(c.flags, perm)
		if mapping.SameFlags(want, c.entry.Flags) {
			continue
		}
		byBox[c.entry.DestMailbox] = append(byBox[c.entry.DestMailbox], flagChange{entry: c.entry, flags: want})
	}
	mailboxes := make([]string, 0, len(byBox))
	for mb := range byBox {
		mailboxes = append(mailboxes, mb)
	}
	slices.Sort(mailboxes)
	for _, mailbox := range mailboxes {
		changes := byBox[mailbox]
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
			a.log.Warn("the destination refused some flag updates", "account", a.opts.Name,
				"mailbox", mailbox, "messages", len(set), "error", err)
			a.mu.Lock()
			a.flagsRefused = true
			a.mu.Unlock()
			continue
		}
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: updated}); err != nil {
			return fmt.Errorf("recording updated flags: %w", fatal(err))
		}
		a.mu.Lock()
		a.st.FlagsUpdated += len(updated)
		a.mu.Unlock()
	}
	return nil
}

// permanentFlags returns the flags mailbox keeps (nil: unknown, keep all
// valid ones), asking the destination once per mailbox.
func (w *batchWriter) permanentFlags(ctx context.Context, mailbox string) ([]string, error) {
	if b, ok := w.boxes[mailbox]; ok {
		return b.permanent, nil
	}
	if perm, ok := w.perm[mailbox]; ok {
		return perm, nil
	}
	var perm []string
	if pf, ok := w.dst.(PermanentFlagser); ok {
		var err error
		if perm, err = pf.PermanentFlags(ctx, mailbox); err != nil {
			return nil, fmt.Errorf("reading the flags %q accepts: %w", mailbox, err)
		}
	}
	if w.perm == nil {
		w.perm = map[string][]string{}
	}
	w.perm[mailbox] = perm
	return perm, nil
}

// folderHasGone tells whether the ledger holds gone entries in folder (a
// KeyPlace.Folder), asking once per folder until retire marks some.
func (a *attempt) folderHasGone(ctx context.Context, folder string) (bool, error) {
	a.mu.Lock()
	has, known := a.earlierGone[folder]
	a.mu.Unlock()
	if known {
		return has, nil
	}
	page, _, err := a.ledger.Scan(ctx, a.opts.Account, Query{States: []State{StateGone}, KeyPrefix: folder, KeysOnly: true, Limit: 1})
	if err != nil {
		return false, fmt.Errorf("reading the ledger: %w", fatal(err))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.earlierGone == nil {
		a.earlierGone = map[string]bool{}
	}
	a.earlierGone[folder] = len(page) > 0
	return len(page) > 0, nil
}

// claimEarlier finds the earlier identity of it's message: a gone entry
// of an earlier generation of its folder (Options.KeyFolder, retired when
// the folder was listed under its new UIDVALIDITY), with the same digest
// and size, not claimed yet by this attempt.
func (a *attempt) claimEarlier(ctx context.Context, it *item) (Entry, bool, error) {
	if a.opts.KeyFolder == nil || it.entry.Digest == "" {
		return Entry{}, false, nil
	}
	p, ok := a.opts.KeyFolder(it.msg.Key)
	if !ok {
		return Entry{}, false, nil
	}
	if has, err := a.folderHasGone(ctx, p.Folder); err != nil || !has {
		return Entry{}, false, err
	}
	cands, err := a.scanAll(ctx, Query{States: []State{StateGone}, Digest: it.entry.Digest, KeyPrefix: p.Folder})
	if err != nil {
		return Entry{}, false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, old := range cands {
		if old.Size == it.entry.Size && !a.claimed[old.Key] && sameOrigin(a.opts.KeyFolder, old.Key, it.msg.Key) {
			if a.claimed == nil {
				a.claimed = map[string]bool{}
			}
			a.claimed[old.Key] = true
			return old, true, nil
		}
	}
	return Entry{}, false, nil
}

// sameOrigin tells whether oldKey may be an earlier identity of newKey:
// the same folder under another generation.
func sameOrigin(keyFolder func(string) (KeyPlace, bool), oldKey, newKey string) bool {
	if keyFolder == nil {
		return false
	}
	o, ok1 := keyFolder(oldKey)
	n, ok2 := keyFolder(newKey)
	return ok1 && ok2 && o.Folder == n.Folder && o.Generation != n.Generation
}
