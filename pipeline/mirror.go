package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Mirror (issue 22, docs/mirror.md): with Options.Mirror, a pass makes the
// destination follow the source for what mailferry put there. A copied
// message the source no longer lists is removed from the destination; one
// moved between source folders (the same bytes under a new key in another
// folder) is moved on the destination, never appended again. Both go
// through the ledger like appends: the intent (removing, moving) is
// committed before the IMAP command, the outcome (removed, done) after its
// OK, and the next run settles what a crash left in between.
//
// Only copies the ledger names are touched, and never one whose source
// message mailferry deleted itself (ReasonDeleted). A folder that lists
// nothing while the ledger has its messages, a folder whose UIDVALIDITY
// changed (but not one created again after a mirror pass deleted it and
// every copy of it: recreated), or a source whose every known folder
// vanished cannot tell what was deleted: nothing of it is removed, and
// the run says so (exit 3).
// The caps (MaxDelete, MaxDeletePercent) hold back a pass that would
// remove more than they allow, before it removes anything.

// Mover is implemented by destinations that can move messages between
// mailboxes (imapdst: UID MOVE, else UID COPY + STORE \Deleted + UID
// EXPUNGE of exactly those UIDs).
type Mover interface {
	// Move moves exactly uids of mailbox, provided it still has
	// uidValidity (else ErrUIDValidityChanged), to target, and returns
	// target's UIDVALIDITY and the UID each message got there (COPYUID;
	// absent when the server did not say). ErrCannotExpunge: the server
	// cannot move single messages.
	Move(ctx context.Context, mailbox string, uidValidity uint32, uids []uint32, target string) (uint32, map[uint32]uint32, error)
}

// MailboxDeleter is implemented by destinations that can delete a mailbox
// (mirror deletes a destination folder whose source folder is gone and
// which holds nothing else).
type MailboxDeleter interface {
	// DeleteMailbox deletes name when it holds no message and reports
	// whether it is gone (deleted now, or not there: deleting again after
	// a crash is the same); one that holds messages is left as it is.
	DeleteMailbox(ctx context.Context, name string) (bool, error)
}

// Renamer is implemented by destinations that can rename a mailbox
// (imapdst: RENAME, RFC 3501 §6.3.5): mirror renames a destination folder
// that holds only mailferry's copies when its source folder was renamed.
type Renamer interface {
	// RenameMailbox renames from to to, which must not exist, and
	// returns to's status after the rename.
	RenameMailbox(ctx context.Context, from, to string) (MailboxStatus, error)
	// MailboxExists reports whether the mailbox name exists.
	MailboxExists(ctx context.Context, name string) (bool, error)
	// MailboxHasChildren reports whether mailboxes exist under name (a
	// RENAME would carry them along).
	MailboxHasChildren(ctx context.Context, name string) (bool, error)
}

// FolderNamer is implemented by sources with folders (imapsrc): the name
// of every folder the source has, copied or not, so that mirror tells a
// folder deleted or renamed at the source from one the copy leaves out.
type FolderNamer interface {
	FolderNames(ctx context.Context) ([]string, error)
}

// MirrorAction is one removal or move a mirror pass made, would make (dry
// run) or held back (caps).
type MirrorAction struct {
	Action  string `json:"action"` // "remove" or "move"
	Key     string `json:"key"`
	Mailbox string `json:"mailbox"`
	UID     uint32 `json:"uid"`
	To      string `json:"to,omitempty"` // move: the destination mailbox
}

// Default caps of mirror removals per pass: this share of the account's
// copied messages, and never less than this many.
const (
	DefaultMaxDeletePercent = 10
	MinMaxDelete            = 50
)

// maxDelete is the cap of one pass's removals over an account with copied
// messages: MaxDelete when set, MaxDeletePercent of copied when set (the
// smaller of both when both are), else the default share, at least
// MinMaxDelete.
func (o Options) maxDelete(copied int64) int64 {
	byPercent := func(p int) int64 { return copied * int64(p) / 100 }
	switch {
	case o.MaxDelete > 0 && o.MaxDeletePercent > 0:
		return min(int64(o.MaxDelete), byPercent(o.MaxDeletePercent))
	case o.MaxDelete > 0:
		return int64(o.MaxDelete)
	case o.MaxDeletePercent > 0:
		return byPercent(o.MaxDeletePercent)
	}
	return max(byPercent(DefaultMaxDeletePercent), MinMaxDelete)
}

// mirrorState is what one attempt's mirror work knows.
type mirrorState struct {
	// gone are copies the sweeps of this attempt found gone from the
	// source (the ledger has them too, except in a dry run), by key.
	gone map[string]Entry
	// moved are the earlier keys whose copies this attempt moved (or, dry,
	// would move): not removed.
	moved map[string]bool
	// vanished are source folders the ledger knows that the source no
	// longer has (deleted or renamed), by name.
	vanished map[string]bool
	// unsure are source folders that cannot tell what was deleted, with
	// why; "" names a source without folders (POP3).
	unsure map[string]string
	// swept tells that the pre-listing ran (IMAP).
	swept bool
	// emptied are copied folders that list nothing while the ledger has
	// copies of their messages (unsure), with how many: their copies are
	// not removed, but one whose message turns up in another folder (by
	// its bytes) is moved there; a folder whose every copy moved is sure
	// again: its messages were moved out, not lost.
	emptied map[string]int
	// allowedEmpty are copied folders that list nothing while the ledger
	// has copies of their messages, which Options.MirrorAllowEmpty names:
	// their copies are removed as a deleted folder's are.
	allowedEmpty map[string]bool
	// noMove: the destination cannot move single messages.
	noMove bool
	// movedTo counts, per source folder, where the copies of its
	// messages moved (destination folders); removedFrom counts its
	// copies removed: a gone folder whose copies all moved to one folder
	// was renamed.
	movedTo     map[string]map[string]int
	removedFrom map[string]int
	// dryMoved are the new keys of the messages a dry run would move: the
	// copy counts them as done, as a real run would have recorded them.
	dryMoved map[string]bool
	// fresh are the messages the pre-listing found without an entry (new
	// at the source, or moved there), for findMoves, which then need not
	// list the source again; at most maxFresh: beyond, freshOverflow and
	// findMoves lists again (memory stays bounded).
	fresh         []SourceMessage
	freshOverflow bool
}

// maxFresh bounds the new messages a mirror pass's pre-listing keeps
// (about 200 bytes each).
const maxFresh = 20000

func (a *attempt) mirror() *mirrorState {
	if a.mir == nil {
		a.mir = &mirrorState{gone: map[string]Entry{}, moved: map[string]bool{}, vanished: map[string]bool{}, unsure: map[string]string{}}
	}
	return a.mir
}

// noteGone remembers copies a sweep found gone, for the removals.
func (a *attempt) noteGone(entries []Entry) {
	if !a.opts.Mirror {
		return
	}
	m := a.mirror()
	now := a.opts.Now()
	for _, e := range entries {
		if e.State != StateDone || e.ReasonClass == ReasonDeleted {
			continue
		}
		e.State, e.GoneAt, e.Updated = StateGone, now, now
		m.gone[e.Key] = e
	}
}

// copied is how many messages of the account are copied, for the caps.
func copied(c Counts) int64 {
	return c[StateDone].Messages + c[StateGone].Messages + c[StateRemoving].Messages + c[StateMoving].Messages
}

// mirrorBefore runs before the copy of an IMAP source: it lists the source
// once to mark gone what it no longer holds (folder by folder, and the
// folders it no longer has), then moves on the destination the copies of
// messages found again under new keys in other folders, so that the copy
// does not append them again.
func (a *attempt) mirrorBefore(ctx context.Context, dests FolderPlan) error {
	if !a.opts.Mirror || a.opts.KeyFolder == nil {
		return nil
	}
	counts, err := a.ledger.Counts(ctx, a.opts.Account)
	if err != nil {
		return fmt.Errorf("reading the ledger's counts: %w", fatal(err))
	}
	if copied(counts) == 0 {
		return nil // a first pass: nothing to mirror
	}
	m := a.mirror()
	fn, ok := a.src.(FolderNamer)
	if !ok {
		return fatal(fmt.Errorf("mirror: the source cannot list its folders (%T)", a.src))
	}
	names, err := fn.FolderNames(ctx)
	if err != nil {
		return fmt.Errorf("mirror: listing the source's folders: %w", err)
	}
	has := map[string]bool{}
	for _, n := range names {
		has[n] = true
	}
	known, present := 0, 0
	for name, rec := range a.scopes.records {
		if !has[name] && rec.Op != FolderDeleted {
			m.vanished[name] = true
		}
		if rec.Messages == 0 {
			continue
		}
		known++
		if has[name] {
			present++
		}
	}
	if known > 0 && present == 0 {
		// Every folder the ledger knows is gone at once: a wrong login, a
		// changed namespace, not a user's deletions.
		for name := range m.vanished {
			m.unsure[name] = "the source no longer has any folder the ledger knows"
		}
		clear(m.vanished)
	}

	// The listing: what each folder holds, as UID ranges (no record of
	// every message).
	pre := &scopes{records: a.scopes.records, gens: map[string]*genScope{}}
	err = a.src.List(ctx, func(page []SourceMessage) error {
		page = slices.DeleteFunc(page, func(m SourceMessage) bool { _, ok := dests.Dest(m); return !ok })
		if err := pre.enter(ctx, a, page); err != nil {
			return err
		}
		for _, msg := range page {
			pre.listed(msg, false, a.opts.KeyFolder)
		}
		return a.noteFresh(ctx, page)
	})
	if err != nil {
		return fmt.Errorf("mirror: listing the source: %w", err)
	}
	listed := map[string]bool{}
	for _, g := range pre.order {
		listed[g.mailbox] = true
		if rec, ok := a.scopes.records[g.mailbox]; ok && rec.UIDValidity != 0 && rec.UIDValidity != g.place.UIDValidity {
			recreated, err := a.recreated(ctx, rec, g.place)
			if err != nil {
				return err
			}
			if recreated {
				a.log.Info("mirror: a source folder deleted by an earlier pass was created again; it is copied as a new folder",
					"account", a.opts.Name, "folder", g.mailbox, "uidvalidity", g.place.UIDValidity)
			} else {
				m.unsure[g.mailbox] = "its UIDVALIDITY changed: what was copied from it is matched by content, nothing is removed"
			}
		}
		if err := a.sweepScope(ctx, Query{KeyPrefix: g.place.Generation}, func(key string) bool {
			p, ok := a.opts.KeyFolder(key)
			return ok && p.Generation == g.place.Generation && g.has(p.UID)
		}); err != nil {
			return err
		}
	}
	for name, rec := range a.scopes.records {
		if _, mapped := dests.folders[name]; mapped && !listed[name] && has[name] && rec.Messages > 0 {
			if a.allowEmpty(name) {
				if m.allowedEmpty == nil {
					m.allowedEmpty = map[string]bool{}
				}
				m.allowedEmpty[name] = true
				a.log.Info("mirror: a source folder lists no message; allowed to be empty, so its copies are removed within the caps",
					"account", a.opts.Name, "folder", name)
				continue
			}
			m.unsure[name] = "it lists no message, while the ledger has copies of its messages"
			if m.emptied == nil {
				m.emptied = map[string]int{}
			}
			m.emptied[name] = 0
		}
	}
	if len(m.vanished) > 0 || len(m.allowedEmpty) > 0 {
		if err := a.sweepScope(ctx, Query{}, func(key string) bool {
			p, ok := a.opts.KeyFolder(key)
			return !ok || !m.vanished[p.Mailbox] && !m.allowedEmpty[p.Mailbox]
		}); err != nil {
			return err
		}
	}
	m.swept = true
	if a.halted() {
		return ErrInterrupted // no move after Ctrl-C: the next run makes them
	}
	return a.findMoves(ctx, dests)
}

// recreated reports whether a source folder listed under another
// UIDVALIDITY than its record's (p) is one created again after a mirror
// pass deleted the folder of that name: the record says its destination
// folder was deleted (FolderDeleted), and no entry of the folder under
// another generation than p's names a copy on the destination (each is
// removed, or there is none). Such a folder has nothing to tell: none of
// the old folder's copies is left to match or to remove. Entries of p's
// own generation (a pass over the new folder cut short) are its own.
func (a *attempt) recreated(ctx context.Context, rec Folder, p KeyPlace) (bool, error) {
	if rec.Op != FolderDeleted {
		return false, nil
	}
	// Every state but removed may name a copy on the destination (or one
	// on its way there). Two probes, as in retire: the first such key of
	// the folder, and the first after the generation's keys.
	states := []State{StatePending, StateDone, StateSkipped, StateFailed, StateGone, StateRemoving, StateMoving}
	for _, after := range []string{"", p.Generation + "\xff"} {
		page, _, err := a.ledger.Scan(ctx, a.opts.Account, Query{KeyPrefix: p.Folder, After: after, States: states, KeysOnly: true, Limit: 1})
		if err != nil {
			return false, fmt.Errorf("reading the ledger's entries of source folder %q: %w", rec.Name, fatal(err))
		}
		if len(page) > 0 && !strings.HasPrefix(page[0].Key, p.Generation) {
			return false, nil
		}
	}
	return true, nil
}

// noteFresh keeps the messages of a pre-listing page that have no entry
// (m.fresh), up to maxFresh. It records the source's EMAILID of copied
// messages whose entries have none (copied before the server had OBJECTID,
// or by schema 5), so that a later move of theirs is recognised by it.
func (a *attempt) noteFresh(ctx context.Context, page []SourceMessage) error {
	m := a.mirror()
	if len(page) == 0 || m.freshOverflow && !slices.ContainsFunc(page, func(msg SourceMessage) bool { return msg.EmailID != "" }) {
		return nil
	}
	entries, err := a.lookup(ctx, page)
	if err != nil {
		return err
	}
	var learnt []Entry
	for _, msg := range page {
		if e, ok := entries[msg.Key]; ok && msg.EmailID != "" && e.EmailID == "" && e.State == StateDone {
			e.EmailID = msg.EmailID
			learnt = append(learnt, e)
		}
	}
	if len(learnt) > 0 && !a.dry {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: learnt}); err != nil {
			return fmt.Errorf("recording the EMAILIDs of %d copied messages: %w", len(learnt), fatal(err))
		}
	}
	for _, msg := range page {
		if m.freshOverflow {
			return nil
		}
		if _, ok := entries[msg.Key]; ok {
			continue
		}
		if len(m.fresh) >= maxFresh {
			m.fresh, m.freshOverflow = nil, true
			return nil
		}
		m.fresh = append(m.fresh, msg)
	}
	return nil
}

// mirrorCandidates returns the account's copies gone from the source that
// mirror may act on: not deleted by mailferry, with a known UID, not moved
// by this attempt.
func (a *attempt) mirrorCandidates(ctx context.Context) ([]Entry, error) {
	m := a.mirror()
	byKey := map[string]Entry{}
	q := Query{States: []State{StateGone}}
	for {
		page, next, err := a.ledger.Scan(ctx, a.opts.Account, q)
		if err != nil {
			return nil, fmt.Errorf("reading the ledger: %w", fatal(err))
		}
		for _, e := range page {
			byKey[e.Key] = e
		}
		if next == "" {
			break
		}
		q.After = next
	}
	for k, e := range m.gone {
		if _, ok := byKey[k]; !ok {
			byKey[k] = e // a dry run: not in the ledger
		}
	}
	out := make([]Entry, 0, len(byKey))
	for _, e := range byKey {
		if e.ReasonClass == ReasonDeleted || m.moved[e.Key] {
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// move is one copy to move: the earlier entry, and the message listed
// under its new key.
type move struct {
	old    Entry
	msg    SourceMessage
	target string // destination mailbox
}

// findMoves lists the source a second time, when copies are gone from it,
// and looks for their messages under new keys: a new message of the same
// size is read and hashed, and one with the digest of a gone copy is that
// copy's message, moved at the source. Its copy is then moved on the
// destination (or, in the same destination folder, simply taken over).
func (a *attempt) findMoves(ctx context.Context, dests FolderPlan) error {
	m := a.mirror()
	cands, err := a.mirrorCandidates(ctx)
	if err != nil {
		return err
	}
	if len(m.emptied) > 0 {
		// The copies of emptied folders' messages: moved, perhaps.
		q := Query{States: []State{StateDone}}
		for {
			page, next, err := a.ledger.Scan(ctx, a.opts.Account, q)
			if err != nil {
				return fmt.Errorf("reading the ledger: %w", fatal(err))
			}
			for _, e := range page {
				if p, ok := a.keyPlace(e.Key); ok {
					if n, emptied := m.emptied[p.Mailbox]; emptied {
						m.emptied[p.Mailbox] = n + 1
						if e.ReasonClass != ReasonDeleted {
							cands = append(cands, e)
						}
					}
				}
			}
			if next == "" {
				break
			}
			q.After = next
		}
	}
	// A new message is a gone copy's, moved, when the server gives both
	// the same EMAILID (RFC 8474: a message keeps it when moved, and no
	// other message has it), which needs no read; else, when either has
	// none, when it has the same digest, which needs the new message
	// read. Two with EMAILIDs that differ are different messages, even
	// with the same bytes: that tells apart identical messages in two
	// folders moved to two others.
	bySize := map[int64]bool{}    // sizes of candidates for a digest match
	anonymous := map[int64]bool{} // sizes of those among them without an EMAILID
	byDigest := map[string][]Entry{}
	byEmailID := map[string][]Entry{}
	for _, e := range cands {
		if e.DestUID == 0 || e.DestMailbox == "" {
			continue
		}
		if e.EmailID != "" {
			byEmailID[e.EmailID] = append(byEmailID[e.EmailID], e)
		}
		if e.Digest == "" {
			continue
		}
		bySize[e.Size] = true
		if e.EmailID == "" {
			anonymous[e.Size] = true
		}
		byDigest[e.Digest] = append(byDigest[e.Digest], e)
	}
	if len(byDigest) == 0 && len(byEmailID) == 0 {
		return nil
	}
	var moves []move
	// take returns the first of olds not moved yet, and olds without it.
	take := func(olds []Entry, ok func(Entry) bool) (Entry, []Entry, bool) {
		for i, old := range olds {
			if !m.moved[old.Key] && ok(old) {
				return old, slices.Delete(olds, i, i+1), true
			}
		}
		return Entry{}, olds, false
	}
	found := func(old Entry, msg SourceMessage) {
		target, _ := dests.Dest(msg)
		m.moved[old.Key] = true
		if msg.EmailID != "" {
			old.EmailID = msg.EmailID // what the entry under its new key keeps
		}
		moves = append(moves, move{old: old, msg: msg, target: target})
	}
	defer func() { m.fresh = nil }() // not needed by the copy
	// The new messages the pre-listing kept, else a listing again.
	list := func(page func([]SourceMessage) error) error {
		for chunk := range slices.Chunk(m.fresh, ListPage) {
			if err := page(slices.Clone(chunk)); err != nil {
				return err
			}
		}
		return nil
	}
	if m.freshOverflow {
		list = func(page func([]SourceMessage) error) error { return a.src.List(ctx, page) }
	}
	err = list(func(page []SourceMessage) error {
		page = slices.DeleteFunc(page, func(msg SourceMessage) bool {
			if _, ok := dests.Dest(msg); !ok {
				return true
			}
			return len(byEmailID[msg.EmailID]) == 0 && !bySize[a.opts.ExpectedSize(msg)]
		})
		if len(page) == 0 {
			return nil
		}
		entries, err := a.lookup(ctx, page)
		if err != nil {
			return err
		}
		for _, msg := range page {
			if _, ok := entries[msg.Key]; ok {
				continue
			}
			if msg.EmailID != "" {
				old, rest, ok := take(byEmailID[msg.EmailID], func(Entry) bool { return true })
				if ok {
					byEmailID[msg.EmailID] = rest
					found(old, msg)
					continue
				}
				if !anonymous[a.opts.ExpectedSize(msg)] {
					continue // only copies with other EMAILIDs have its size
				}
			}
			it, err := a.fetchOne(ctx, msg)
			if errors.Is(err, ErrMessageGone) {
				continue
			}
			if err != nil {
				return err
			}
			digest, size := it.entry.Digest, it.entry.Size
			it.release()
			old, rest, ok := take(byDigest[digest], func(old Entry) bool {
				return old.Size == size && (old.EmailID == "" || msg.EmailID == "")
			})
			if ok {
				byDigest[digest] = rest
				found(old, msg)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mirror: listing the source for moved messages: %w", err)
	}
	if err := a.doMoves(ctx, moves); err != nil {
		return err
	}
	return a.settleEmptied(ctx)
}

// settleEmptied makes sure again an emptied folder whose every copy
// moved to other folders: its record says it holds nothing, so that later
// passes do not take it for a folder that cannot tell.
func (a *attempt) settleEmptied(ctx context.Context) error {
	m := a.mirror()
	if m.noMove {
		return nil
	}
	var records []Folder
	for name, n := range m.emptied {
		moved := 0
		for _, c := range m.movedTo[name] {
			moved += c
		}
		if n == 0 || moved != n {
			continue
		}
		delete(m.unsure, name)
		rec := a.scopes.records[name]
		rec.Messages, rec.SyncedAt = 0, a.opts.Now()
		records = append(records, rec)
		a.log.Info("mirror: every message of an emptied source folder was moved to other folders", "account", a.opts.Name,
			"folder", name, "messages", n)
	}
	if len(records) == 0 || a.dry {
		return nil
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: records}); err != nil {
		return fmt.Errorf("recording the emptied folders: %w", fatal(err))
	}
	return nil
}

// doMoves moves the copies of moves on the destination, a group of
// copies from one mailbox to another at a time, through the moving state:
// the entry under its new key, still naming the old copy and where it
// goes (and that mailbox's UIDNEXT), is committed with the end of the old
// key before the MOVE; the copy's new place after its OK.
func (a *attempt) doMoves(ctx context.Context, moves []move) error {
	type group struct {
		from        string
		uidValidity uint32
		to          string
	}
	moves, err := a.unsharedMoves(ctx, moves)
	if err != nil {
		return err
	}
	groups := map[group][]move{}
	var order []group
	var same []Entry
	var sameOld []string
	now := a.opts.Now()
	m := a.mirror()
	for _, mv := range moves {
		if p, ok := a.keyPlace(mv.old.Key); ok {
			if m.movedTo == nil {
				m.movedTo = map[string]map[string]int{}
			}
			if m.movedTo[p.Mailbox] == nil {
				m.movedTo[p.Mailbox] = map[string]int{}
			}
			m.movedTo[p.Mailbox][mv.target]++
		}
		if mv.old.DestMailbox == mv.target {
			// The same destination folder (two source folders mapped
			// into one): the copy is already where it belongs.
			e := mv.old
			e.Key, e.State, e.GoneAt, e.Updated = mv.msg.Key, StateDone, time.Time{}, now
			same = append(same, e)
			sameOld = append(sameOld, mv.old.Key)
			continue
		}
		g := group{mv.old.DestMailbox, mv.old.DestUIDValidity, mv.target}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], mv)
	}
	if len(same) > 0 && a.dry {
		if m.dryMoved == nil {
			m.dryMoved = map[string]bool{}
		}
		for _, e := range same {
			m.dryMoved[e.Key] = true
		}
	} else if len(same) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: same, Delete: sameOld}); err != nil {
			return fmt.Errorf("recording %d messages found under new keys: %w", len(same), fatal(err))
		}
	}
	a.mu.Lock()
	a.st.Rematched += len(same)
	a.mu.Unlock()
	for _, g := range order {
		renamed, err := a.renameGroup(ctx, g.from, g.uidValidity, g.to, groups[g])
		if err != nil || renamed {
			if err != nil {
				return err
			}
			continue
		}
		for chunk := range slices.Chunk(groups[g], MaxLookup) {
			if a.mirror().noMove {
				return nil
			}
			if a.halted() {
				// Ctrl-C: the group in flight is settled; no other
				// starts (the next run makes them).
				return ErrInterrupted
			}
			if err := a.moveGroup(ctx, g.from, g.uidValidity, g.to, chunk); err != nil {
				return err
			}
		}
	}
	return nil
}

// renameGroup moves the copies of moves from one destination folder to
// another by renaming the folder, when that is the same as moving them:
// the source folder of every copy is gone (renamed at the source), the
// folder holds exactly these copies and nothing else, the target holds
// nothing, and neither is INBOX. It reports whether it renamed; false:
// the caller moves the copies one by one. Through the ledger: the moving
// entries and the folder's renaming op are committed before the DELETE of
// the empty target and the RENAME; the copies' places (same UIDs, the
// UIDVALIDITY the server has after the rename) and the end of the op
// after its OK. settleRenaming settles what a crash left between.
func (a *attempt) renameGroup(ctx context.Context, from string, uidValidity uint32, to string, moves []move) (bool, error) {
	ren, ok := a.dst.(Renamer)
	del, ok2 := a.dst.(MailboxDeleter)
	if a.dry || !ok || !ok2 || strings.EqualFold(from, "INBOX") || strings.EqualFold(to, "INBOX") || a.halted() {
		return false, nil
	}
	m := a.mirror()
	srcFolder := ""
	for _, mv := range moves {
		p, ok := a.keyPlace(mv.old.Key)
		if !ok || !m.vanished[p.Mailbox] || srcFolder != "" && p.Mailbox != srcFolder {
			return false, nil
		}
		srcFolder = p.Mailbox
	}
	for name, d := range a.plan.folders {
		if d == from && name != srcFolder {
			return false, nil // another source folder still maps there
		}
	}
	held, err := a.dst.ListSince(ctx, from, uidValidity, 1)
	if errors.Is(err, ErrUIDValidityChanged) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mirror: listing destination folder %q: %w", from, err)
	}
	ours := map[uint32]bool{}
	for _, mv := range moves {
		ours[mv.old.DestUID] = true
	}
	if len(held) != len(moves) {
		return false, nil // it holds something else too
	}
	for _, d := range held {
		if !ours[d.UID] || d.Deleted {
			return false, nil
		}
	}
	for _, name := range []string{from, to} {
		// A RENAME carries the folders under it along: perhaps mail
		// that is not mailferry's; and the new folder's must go first.
		children, err := ren.MailboxHasChildren(ctx, name)
		if err != nil {
			return false, fmt.Errorf("mirror: listing the folders under destination folder %q: %w", name, err)
		}
		if children {
			return false, nil
		}
	}
	status, err := a.dst.EnsureMailbox(ctx, to)
	if err != nil {
		return false, fmt.Errorf("mirror: preparing destination mailbox %q: %w", to, err)
	}
	if list, err := a.dst.ListSince(ctx, to, status.UIDValidity, 1); err != nil || len(list) > 0 {
		if err != nil && !errors.Is(err, ErrUIDValidityChanged) {
			return false, fmt.Errorf("mirror: listing destination folder %q: %w", to, err)
		}
		return false, nil
	}

	now := a.opts.Now()
	intent := make([]Entry, len(moves))
	old := make([]string, len(moves))
	for i, mv := range moves {
		e := mv.old
		e.Key, e.State, e.MoveTo, e.DestUIDNext, e.GoneAt, e.Updated = mv.msg.Key, StateMoving, to, status.UIDNext, time.Time{}, now
		intent[i], old[i] = e, mv.old.Key
	}
	op := Folder{Side: DestSide, Name: from, UIDValidity: uidValidity, Op: FolderRenaming, OpName: to}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Take: intent, Delete: old, Folders: []Folder{op}}); err != nil {
		if _, ok := contested(err); ok {
			return false, nil // another account names a copy: moved one by one (moveGroup)
		}
		return false, fmt.Errorf("recording the destination folder %q to rename to %q: %w", from, to, fatal(err))
	}
	a.opts.Crashpoint("renaming")
	// notMade ends the op: the copies move one by one (moveGroup, from
	// the moving entries; it creates the target again if it was deleted).
	notMade := func(why string, err error) (bool, error) {
		a.log.Warn("mirror: a destination folder is not renamed; its copies are moved one by one", "account", a.opts.Name,
			"from", from, "to", to, "why", why, "error", err)
		op.Op, op.OpName = "", ""
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: []Folder{op}}); err != nil {
			return false, fmt.Errorf("recording the rename of %q not made: %w", from, fatal(err))
		}
		return false, nil
	}
	gone, err := del.DeleteMailbox(ctx, to)
	switch {
	case err != nil && ClassOf(err) == ClassTransient:
		return false, fmt.Errorf("mirror: deleting the empty destination folder %q to rename %q to it: %w", to, from, err)
	case err != nil:
		return notMade("the server would not delete the empty new folder", err)
	case !gone:
		return notMade("mail arrived in the new folder", nil)
	}
	after, err := ren.RenameMailbox(ctx, from, to)
	switch {
	case err != nil && ClassOf(err) == ClassTransient:
		// The next run looks at both names (settleRenaming).
		return false, fmt.Errorf("mirror: renaming destination folder %q to %q: %w", from, to, err)
	case err != nil:
		return notMade("the server refused the RENAME", err)
	}
	a.opts.Crashpoint("renamed")
	if err := a.renamed(ctx, op, after, intent); err != nil {
		return false, err
	}
	a.log.Info("renamed on the destination, as at the source", "account", a.opts.Name, "from", from, "to", to,
		"messages", len(intent), "uidvalidity", after.UIDValidity)
	return true, nil
}

// renamed records a destination folder renamed (op): the moving entries
// of its copies are done at the same UIDs in the new folder, under its
// UIDVALIDITY after the rename, and the op ends.
func (a *attempt) renamed(ctx context.Context, op Folder, after MailboxStatus, intent []Entry) error {
	keep := true
	if after.UIDValidity != op.UIDValidity {
		// RFC 3501 lets a server give the renamed folder a new
		// UIDVALIDITY, and then new UIDs: the copies keep theirs only
		// if the folder holds exactly those UIDs, at their sizes.
		list, err := a.dst.ListSince(ctx, op.OpName, after.UIDValidity, 1)
		if err != nil {
			return fmt.Errorf("mirror: listing renamed destination folder %q: %w", op.OpName, err)
		}
		sizes := map[uint32]int64{}
		for _, d := range list {
			sizes[d.UID] = d.Size
		}
		keep = len(list) == len(intent)
		for _, e := range intent {
			if size, ok := sizes[e.DestUID]; !ok || size != e.Size {
				keep = false
			}
		}
		if !keep {
			a.log.Warn("mirror: the destination renumbered a renamed folder; its copies stay, with unknown UIDs (kept by later passes)",
				"account", a.opts.Name, "folder", op.OpName, "messages", len(intent))
		}
	}
	now := a.opts.Now()
	done := make([]Entry, len(intent))
	for i, e := range intent {
		e.State, e.DestMailbox, e.DestUIDValidity, e.MoveTo, e.Updated = StateDone, op.OpName, after.UIDValidity, "", now
		if !keep {
			e.DestUID = 0
		}
		done[i] = e
	}
	op.Op, op.OpName = "", ""
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: done, Folders: []Folder{op}}); err != nil {
		return fmt.Errorf("recording %d messages moved with their renamed folder: %w", len(done), fatal(err))
	}
	a.mu.Lock()
	a.st.Moved += len(done)
	a.mu.Unlock()
	return nil
}

// settleRenaming settles destination folders a crash left renaming: when
// the old folder is gone and the new one there, the rename happened and
// the moving entries of its copies are done there; otherwise it did not,
// and the op ends (settleMoving then moves the copies one by one).
func (a *attempt) settleRenaming(ctx context.Context) error {
	ren, ok := a.dst.(Renamer)
	if !ok {
		return nil
	}
	folders, err := a.ledger.Folders(ctx, a.opts.Account)
	if err != nil {
		return fmt.Errorf("reading the ledger's folders: %w", fatal(err))
	}
	for _, op := range folders {
		if op.Side != DestSide || op.Op != FolderRenaming {
			continue
		}
		oldThere, err := ren.MailboxExists(ctx, op.Name)
		if err != nil {
			return fmt.Errorf("mirror: looking for destination folder %q being renamed: %w", op.Name, err)
		}
		newThere, err := ren.MailboxExists(ctx, op.OpName)
		if err != nil {
			return fmt.Errorf("mirror: looking for destination folder %q being renamed to: %w", op.OpName, err)
		}
		if oldThere || !newThere {
			a.log.Info("mirror: a destination folder rename was cut short before the RENAME; its copies are moved one by one",
				"account", a.opts.Name, "from", op.Name, "to", op.OpName)
			op.Op, op.OpName = "", ""
			if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: []Folder{op}}); err != nil {
				return fmt.Errorf("recording the rename of %q not made: %w", op.Name, fatal(err))
			}
			continue
		}
		moving, err := a.scanAll(ctx, Query{States: []State{StateMoving}})
		if err != nil {
			return err
		}
		moving = slices.DeleteFunc(moving, func(e Entry) bool { return e.DestMailbox != op.Name || e.MoveTo != op.OpName })
		status, err := a.dst.EnsureMailbox(ctx, op.OpName)
		if err != nil {
			return fmt.Errorf("mirror: reading destination folder %q: %w", op.OpName, err)
		}
		a.log.Info("mirror: a destination folder rename cut short after the RENAME is recorded", "account", a.opts.Name,
			"from", op.Name, "to", op.OpName, "messages", len(moving))
		if err := a.renamed(ctx, op, status, moving); err != nil {
			return err
		}
	}
	return nil
}

// keyPlace is Options.KeyFolder, false for sources without folders.
func (a *attempt) keyPlace(key string) (KeyPlace, bool) {
	if a.opts.KeyFolder == nil {
		return KeyPlace{}, false
	}
	return a.opts.KeyFolder(key)
}

func keysOf(entries []Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Key
	}
	return out
}

// moveGroup moves the copies of moves from one mailbox to another.
func (a *attempt) moveGroup(ctx context.Context, from string, uidValidity uint32, to string, moves []move) error {
	actions := make([]MirrorAction, len(moves))
	for i, mv := range moves {
		actions[i] = MirrorAction{Action: "move", Key: mv.old.Key, Mailbox: from, UID: mv.old.DestUID, To: to}
	}
	if a.dry {
		m := a.mirror()
		if m.dryMoved == nil {
			m.dryMoved = map[string]bool{}
		}
		for _, mv := range moves {
			m.dryMoved[mv.msg.Key] = true
		}
		for _, act := range actions {
			a.log.Info("dry run: would move on the destination", "account", a.opts.Name, "key", act.Key,
				"mailbox", act.Mailbox, "uid", act.UID, "to", act.To)
		}
		a.mu.Lock()
		a.st.Moved += len(moves)
		a.st.MirrorActions = append(a.st.MirrorActions, actions...)
		a.mu.Unlock()
		return nil
	}
	mover, ok := a.dst.(Mover)
	if !ok {
		for _, mv := range moves {
			delete(a.mir.moved, mv.old.Key)
		}
		a.mir.noMove = true
		a.log.Warn("mirror: the destination cannot move messages; moved messages are copied again and their old copies removed",
			"account", a.opts.Name, "messages", len(moves))
		return nil
	}
	status, err := a.dst.EnsureMailbox(ctx, to)
	if err != nil {
		return fmt.Errorf("mirror: preparing destination mailbox %q: %w", to, err)
	}
	now := a.opts.Now()
	intent := make([]Entry, len(moves))
	old := make([]string, len(moves))
	uids := make([]uint32, len(moves))
	for i, mv := range moves {
		e := mv.old
		e.Key, e.State, e.MoveTo, e.DestUIDNext, e.GoneAt, e.Updated = mv.msg.Key, StateMoving, to, status.UIDNext, time.Time{}, now
		intent[i], old[i], uids[i] = e, mv.old.Key, mv.old.DestUID
	}
	// Take: checked against the other accounts' entries in the
	// transaction that records the intent (sharedcopies.go).
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Take: intent, Delete: old}); err != nil {
		shared, ok := contested(err)
		if !ok {
			return fmt.Errorf("recording %d messages to move on the destination: %w", len(intent), fatal(err))
		}
		return a.moveShared(ctx, from, uidValidity, to, moves, shared)
	}
	a.opts.Crashpoint("moving")
	newValidity, newUIDs, err := mover.Move(ctx, from, uidValidity, uids, to)
	if errors.Is(err, ErrCannotExpunge) {
		// Refused before anything was sent (no MOVE, no UIDPLUS): the
		// earlier entries come back, the copy appends the messages in
		// their new folders, and the old copies stay (held back).
		back := make([]Entry, len(moves))
		for i, mv := range moves {
			back[i] = mv.old
			delete(a.mir.moved, mv.old.Key)
		}
		if cerr := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: back, Delete: keysOf(intent)}); cerr != nil {
			return fmt.Errorf("recording %d moves not made: %w", len(back), fatal(cerr))
		}
		a.mir.noMove = true
		a.log.Warn("mirror: the destination can move no single message (neither MOVE nor UIDPLUS); moved messages are copied again and their old copies kept",
			"account", a.opts.Name, "messages", len(moves))
		return nil
	}
	if err != nil {
		// The next run settles the moving entries (settleMoving).
		return fmt.Errorf("mirror: moving %d messages from %q to %q: %w", len(uids), from, to, err)
	}
	a.opts.Crashpoint("moved")
	done := make([]Entry, len(intent))
	for i, e := range intent {
		e.State, e.DestMailbox, e.DestUIDValidity, e.DestUID, e.MoveTo = StateDone, to, newValidity, newUIDs[e.DestUID], ""
		if e.DestUIDValidity == 0 {
			e.DestUIDValidity = status.UIDValidity
		}
		done[i] = e
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: done}); err != nil {
		return fmt.Errorf("recording %d messages moved on the destination: %w", len(done), fatal(err))
	}
	a.log.Info("moved on the destination, as at the source", "account", a.opts.Name, "from", from, "to", to, "messages", len(done))
	a.mu.Lock()
	a.st.Moved += len(done)
	a.mu.Unlock()
	return nil
}

// mirrorRemove removes from the destination, after a complete listing,
// the copies of messages gone from the source, within the caps: a pass
// that would remove more than they allow removes nothing and says what it
// would have removed.
func (a *attempt) mirrorRemove(ctx context.Context) error {
	if !a.opts.Mirror || !a.complete {
		return nil
	}
	if a.halted() {
		return ErrInterrupted // nothing removed after Ctrl-C: the next run does it
	}
	m := a.mirror()
	if a.opts.KeyFolder == nil {
		if rec, ok := a.scopes.records[maildropRecord]; a.listed == 0 && (ok && rec.Messages > 0 || a.scopes.live > 0) {
			if !a.allowEmpty(a.opts.Mailbox) {
				m.unsure[""] = "the maildrop lists no message, while the ledger has copies of its messages"
			} else {
				// Allowed: what the ledger has of the maildrop is gone.
				a.log.Info("mirror: the maildrop lists no message; allowed to be empty, so its copies are removed within the caps",
					"account", a.opts.Name, "folder", a.opts.Mailbox)
				if err := a.sweepScope(ctx, Query{}, func(string) bool { return false }); err != nil {
					return err
				}
			}
		}
	} else if !m.swept {
		return nil // nothing was copied before this pass
	}
	cands, err := a.mirrorCandidates(ctx)
	if err != nil {
		return err
	}
	var remove []Entry
	held, noUID := 0, 0
	for _, e := range cands {
		if e.DestUID == 0 || e.DestMailbox == "" {
			noUID++
			continue
		}
		if a.opts.KeyFolder == nil {
			if _, unsure := m.unsure[""]; unsure {
				held++
				continue
			}
			remove = append(remove, e)
			continue
		}
		p, ok := a.opts.KeyFolder(e.Key)
		switch {
		case !ok:
		case m.vanished[p.Mailbox] || m.allowedEmpty[p.Mailbox]:
			remove = append(remove, e)
		case a.scopes.gens[p.Generation] != nil:
			if _, unsure := m.unsure[p.Mailbox]; unsure {
				held++
				continue
			}
			remove = append(remove, e)
		default:
			if _, unsure := m.unsure[p.Mailbox]; unsure {
				held++
			}
		}
	}
	if noUID > 0 {
		a.log.Warn("mirror: copies gone from the source whose destination UID is unknown (copied without UIDPLUS) are kept",
			"account", a.opts.Name, "messages", noUID)
	}
	a.mu.Lock()
	for name, why := range m.unsure {
		label := name
		if label == "" {
			label = a.opts.Mailbox
		}
		a.st.MirrorUnsure = append(a.st.MirrorUnsure, MirrorUnsure{Folder: label, Reason: why})
	}
	slices.SortFunc(a.st.MirrorUnsure, func(x, y MirrorUnsure) int {
		if x.Folder < y.Folder {
			return -1
		}
		if x.Folder > y.Folder {
			return 1
		}
		return 0
	})
	a.st.MirrorHeld += held
	a.mu.Unlock()
	for name, why := range m.unsure {
		a.log.Warn("mirror: cannot tell what was deleted in this source folder; nothing of it is removed", "account", a.opts.Name,
			"folder", name, "why", why)
	}
	if remove, err = a.leaveShared(ctx, remove); err != nil {
		return err
	}
	if len(remove) == 0 {
		if err := a.settleAllowedEmpty(ctx); err != nil {
			return err
		}
		return a.deleteFolders(ctx)
	}
	actions := make([]MirrorAction, len(remove))
	for i, e := range remove {
		actions[i] = MirrorAction{Action: "remove", Key: e.Key, Mailbox: e.DestMailbox, UID: e.DestUID}
		if p, ok := a.keyPlace(e.Key); ok {
			if m.removedFrom == nil {
				m.removedFrom = map[string]int{}
			}
			m.removedFrom[p.Mailbox]++
		}
	}
	counts, err := a.ledger.Counts(ctx, a.opts.Account)
	if err != nil {
		return fmt.Errorf("reading the ledger's counts: %w", fatal(err))
	}
	limit := a.opts.maxDelete(max(copied(counts), int64(len(remove))))
	if int64(len(remove)) > limit {
		a.log.Error("mirror: this pass would remove more copies than the cap allows; nothing removed", "account", a.opts.Name,
			"would_remove", len(remove), "cap", limit)
		a.mu.Lock()
		a.st.MirrorHeld += len(remove)
		a.st.MirrorOverCap, a.st.MirrorCap = true, int(limit)
		a.st.MirrorActions = append(a.st.MirrorActions, actions...)
		a.mu.Unlock()
		return a.deleteFolders(ctx)
	}
	if a.dry {
		for _, act := range actions {
			a.log.Info("dry run: would remove from the destination", "account", a.opts.Name, "key", act.Key,
				"mailbox", act.Mailbox, "uid", act.UID)
		}
		a.mu.Lock()
		a.st.Removed += len(remove)
		a.st.MirrorActions = append(a.st.MirrorActions, actions...)
		a.mu.Unlock()
		return a.deleteFolders(ctx)
	}
	if !a.dst.Capabilities().UIDPlus {
		a.log.Error("mirror: the destination has no UIDPLUS, so it cannot remove single messages; nothing removed", "account", a.opts.Name,
			"would_remove", len(remove))
		a.mu.Lock()
		a.st.MirrorHeld += len(remove)
		a.st.MirrorRefused = "the destination has no UIDPLUS, so it cannot remove single messages (an EXPUNGE would also remove what users marked \\Deleted)"
		a.st.MirrorActions = append(a.st.MirrorActions, actions...)
		a.mu.Unlock()
		return a.deleteFolders(ctx)
	}
	if err := a.removeCopies(ctx, remove); err != nil {
		return err
	}
	if err := a.settleAllowedEmpty(ctx); err != nil {
		return err
	}
	return a.deleteFolders(ctx)
}

// allowEmpty reports whether Options.MirrorAllowEmpty names folder.
func (a *attempt) allowEmpty(folder string) bool {
	return slices.Contains(a.opts.MirrorAllowEmpty, folder)
}

// settleAllowedEmpty records the folders allowed to be empty, whose copies
// this pass removed, as holding nothing: later passes do not take them
// for folders that cannot tell (nor need the override again).
func (a *attempt) settleAllowedEmpty(ctx context.Context) error {
	m := a.mirror()
	if a.dry || len(m.allowedEmpty) == 0 {
		return nil
	}
	var records []Folder
	for name := range m.allowedEmpty {
		rec := a.scopes.records[name]
		rec.Messages, rec.SyncedAt = 0, a.opts.Now()
		records = append(records, rec)
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: records}); err != nil {
		return fmt.Errorf("recording the folders emptied at the source: %w", fatal(err))
	}
	return nil
}

// deleteFolders deletes the destination folders of source folders that
// are gone from the source (deleted, or renamed: their messages moved),
// once each holds nothing: every copy in it was removed or moved, and
// nothing else was put there. One that holds anything stays. A
// destination folder another copied folder maps to, and INBOX, stay.
func (a *attempt) deleteFolders(ctx context.Context) error {
	m := a.mirror()
	if len(m.vanished) == 0 {
		return nil
	}
	if a.halted() {
		return ErrInterrupted
	}
	inUse := map[string]bool{"INBOX": true}
	for _, d := range a.plan.folders {
		inUse[d] = true
	}
	var names []string
	for name := range m.vanished {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rec := a.scopes.records[name]
		dest := rec.OpName
		if dest == "" || inUse[dest] {
			continue
		}
		// Renamed: every copy of the folder moved to one other folder.
		renamedTo := ""
		if to := m.movedTo[name]; len(to) == 1 && m.removedFrom[name] == 0 {
			for d := range to {
				renamedTo = d
			}
		}
		note := func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if renamedTo != "" {
				a.st.FoldersRenamed = append(a.st.FoldersRenamed, dest+" -> "+renamedTo)
				return
			}
			a.st.FoldersDeleted = append(a.st.FoldersDeleted, dest)
		}
		if a.dry {
			// Without asking the destination: a folder this pass
			// empties of copies, or one that had none.
			if m.removedFrom[name] == 0 && len(m.movedTo[name]) == 0 && rec.Messages > 0 {
				continue
			}
			a.log.Info("dry run: would delete the destination folder if it holds nothing else", "account", a.opts.Name,
				"folder", dest, "source_folder", name, "renamed_to", renamedTo)
			note()
			continue
		}
		del, ok := a.dst.(MailboxDeleter)
		if !ok {
			return nil
		}
		if a.halted() {
			return ErrInterrupted // no folder deletion starts after Ctrl-C
		}
		deleted, err := del.DeleteMailbox(ctx, dest)
		if err != nil {
			if ClassOf(err) == ClassTransient {
				return fmt.Errorf("mirror: deleting destination folder %q: %w", dest, err)
			}
			a.log.Warn("mirror: the destination would not delete a folder deleted at the source; it stays", "account", a.opts.Name,
				"folder", dest, "error", err)
			continue
		}
		if !deleted {
			a.log.Info("mirror: a folder deleted at the source still holds messages on the destination; it stays", "account", a.opts.Name,
				"folder", dest, "source_folder", name)
			continue
		}
		a.opts.Crashpoint("folder deleted")
		rec.Op, rec.Messages, rec.SyncedAt = FolderDeleted, 0, a.opts.Now()
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: []Folder{rec}}); err != nil {
			return fmt.Errorf("recording the destination folder %q deleted: %w", dest, fatal(err))
		}
		a.log.Info("mirror: destination folder deleted, as its source folder was", "account", a.opts.Name, "folder", dest, "source_folder", name,
			"renamed_to", renamedTo)
		note()
	}
	return nil
}

// removeCopies removes the copies of entries from the destination through
// the removing state: committed before the STORE and UID EXPUNGE of
// exactly their UIDs, removed after its OK.
func (a *attempt) removeCopies(ctx context.Context, entries []Entry) error {
	for _, group := range byCopyMailbox(entries) {
		for chunk := range slices.Chunk(group, MaxLookup) {
			if a.halted() {
				return ErrInterrupted
			}
			now := a.opts.Now()
			intent := make([]Entry, len(chunk))
			for i, e := range chunk {
				e.State, e.Updated = StateRemoving, now
				if e.GoneAt.IsZero() {
					e.GoneAt = now
				}
				intent[i] = e
			}
			// Take: checked against the other accounts' entries in the
			// transaction that records the intent (sharedcopies.go).
			for {
				err := a.ledger.Commit(ctx, a.opts.Account, Changes{Take: intent})
				if err == nil {
					break
				}
				shared, ok := contested(err)
				if !ok {
					return fmt.Errorf("recording %d copies to remove from the destination: %w", len(intent), fatal(err))
				}
				if intent, err = a.dropShared(ctx, intent, shared); err != nil {
					return err
				}
				if len(intent) == 0 {
					break
				}
			}
			if len(intent) == 0 {
				continue
			}
			a.opts.Crashpoint("removing")
			if err := a.expungeCopies(ctx, chunk[0].DestMailbox, chunk[0].DestUIDValidity, intent); err != nil {
				return err
			}
		}
	}
	return nil
}

// byCopyMailbox groups entries by the mailbox and UIDVALIDITY their copies
// are in, in the order first met.
func byCopyMailbox(entries []Entry) [][]Entry {
	type box struct {
		name        string
		uidValidity uint32
	}
	index := map[box]int{}
	var out [][]Entry
	for _, e := range entries {
		b := box{e.DestMailbox, e.DestUIDValidity}
		i, ok := index[b]
		if !ok {
			i = len(out)
			index[b] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], e)
	}
	return out
}

// expungeCopies removes the copies of removing entries of one mailbox and
// records them removed. A mailbox whose UIDVALIDITY changed no longer
// holds them.
func (a *attempt) expungeCopies(ctx context.Context, mailbox string, uidValidity uint32, entries []Entry) error {
	uids := make([]uint32, len(entries))
	for i, e := range entries {
		uids[i] = e.DestUID
	}
	err := a.dst.Expunge(ctx, mailbox, uidValidity, uids)
	switch {
	case errors.Is(err, ErrUIDValidityChanged):
		a.log.Warn("mirror: the destination folder was renumbered; the copies to remove are no longer there", "account", a.opts.Name,
			"mailbox", mailbox, "messages", len(uids))
	case errors.Is(err, ErrCannotExpunge):
		return fatal(fmt.Errorf("mirror: removing %d copies from %q: %w", len(uids), mailbox, err))
	case err != nil:
		return fmt.Errorf("mirror: removing %d copies from %q: %w", len(uids), mailbox, err)
	}
	a.opts.Crashpoint("removed")
	now := a.opts.Now()
	done := make([]Entry, len(entries))
	for i, e := range entries {
		e.State, e.Updated = StateRemoved, now
		done[i] = e
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: done}); err != nil {
		return fmt.Errorf("recording %d copies removed from the destination: %w", len(done), fatal(err))
	}
	a.log.Info("removed from the destination, as deleted at the source", "account", a.opts.Name, "mailbox", mailbox, "messages", len(done))
	a.mu.Lock()
	a.st.Removed += len(done)
	a.mu.Unlock()
	return nil
}

// settleMirror finishes what a run cut short between a mirror intent and
// its outcome: removing entries are expunged again (by UID: idempotent);
// moving entries are looked for where they were going (found: done
// there), else moved again while the old copy is there, else forgotten,
// so that the copy appends the message (it is at the source and in no
// destination folder).
func (a *attempt) settleMirror(ctx context.Context) error {
	if a.dry {
		return nil
	}
	if a.halted() {
		return ErrInterrupted // the next run settles them
	}
	if err := a.settleRenaming(ctx); err != nil {
		return err
	}
	removing, err := a.scanAll(ctx, Query{States: []State{StateRemoving}})
	if err != nil {
		return err
	}
	// Checked again: another account may have matched a copy since the
	// intent was recorded (sharedcopies.go).
	if removing, err = a.leaveShared(ctx, removing); err != nil {
		return err
	}
	for _, group := range byCopyMailbox(removing) {
		for chunk := range slices.Chunk(group, MaxLookup) {
			if err := a.expungeCopies(ctx, chunk[0].DestMailbox, chunk[0].DestUIDValidity, chunk); err != nil {
				return err
			}
		}
	}
	moving, err := a.scanAll(ctx, Query{States: []State{StateMoving}})
	if err != nil {
		return err
	}
	for _, e := range moving {
		if err := a.settleMoving(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// settleMoving settles one moving entry (see settleMirror).
func (a *attempt) settleMoving(ctx context.Context, e Entry) error {
	status, err := a.dst.EnsureMailbox(ctx, e.MoveTo)
	if err != nil {
		return fmt.Errorf("mirror: preparing destination mailbox %q: %w", e.MoveTo, err)
	}
	found, err := a.findCopy(ctx, e.MoveTo, status.UIDValidity, e.DestUIDNext, e)
	if err != nil {
		return err
	}
	oldThere := false
	if e.DestUID != 0 {
		list, err := a.dst.ListSince(ctx, e.DestMailbox, e.DestUIDValidity, e.DestUID)
		if err != nil && !errors.Is(err, ErrUIDValidityChanged) {
			return fmt.Errorf("mirror: looking for a copy being moved in %q: %w", e.DestMailbox, err)
		}
		oldThere = len(list) > 0 && list[0].UID == e.DestUID
	}
	shared := false
	if oldThere {
		// Another account may have matched the old copy since the intent
		// was recorded: then it stays where it is (sharedcopies.go).
		others, err := a.sharedCopies(ctx, []Entry{e})
		if err != nil {
			return err
		}
		shared = others[e.Key]
	}
	now := a.opts.Now()
	switch {
	case found != 0:
		if oldThere && !shared {
			// Copied, not yet expunged (COPY + EXPUNGE cut short).
			if err := a.dst.Expunge(ctx, e.DestMailbox, e.DestUIDValidity, []uint32{e.DestUID}); err != nil {
				return fmt.Errorf("mirror: removing the moved copy's old place in %q: %w", e.DestMailbox, err)
			}
		}
		e.State, e.DestMailbox, e.DestUIDValidity, e.DestUID, e.MoveTo, e.Updated = StateDone, e.MoveTo, status.UIDValidity, found, "", now
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: []Entry{e}}); err != nil {
			return fmt.Errorf("recording a message moved on the destination: %w", fatal(err))
		}
		a.mu.Lock()
		a.st.Moved++
		a.mu.Unlock()
		return nil
	case oldThere && !shared:
		return a.moveGroup(ctx, e.DestMailbox, e.DestUIDValidity, e.MoveTo, []move{{old: e, msg: SourceMessage{Key: e.Key}, target: e.MoveTo}})
	case shared:
		a.log.Info("mirror: a copy being moved is another account's too; it stays, and the message is copied into its new folder",
			"account", a.opts.Name, "key", e.Key, "from", e.DestMailbox, "to", e.MoveTo)
	default:
		// Neither: the copy is nowhere; the copy appends the message again.
		a.log.Warn("mirror: a copy being moved is in neither folder; it is copied again", "account", a.opts.Name,
			"key", e.Key, "from", e.DestMailbox, "to", e.MoveTo)
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Delete: []string{e.Key}}); err != nil {
		return fmt.Errorf("forgetting a lost copy: %w", fatal(err))
	}
	return nil
}

// findCopy looks in mailbox from UID from for a message of e's size and
// digest that no entry of the account names, and returns its UID (0: none).
func (a *attempt) findCopy(ctx context.Context, mailbox string, uidValidity, from uint32, e Entry) (uint32, error) {
	list, err := a.dst.ListSince(ctx, mailbox, uidValidity, from)
	if err != nil {
		return 0, fmt.Errorf("mirror: looking for a moved copy in %q: %w", mailbox, err)
	}
	var cands []uint32
	for _, d := range list {
		if d.Size == e.Size && !d.Deleted {
			cands = append(cands, d.UID)
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	claims, err := a.claimedUIDs(ctx, a.opts.Account, mailbox, uidValidity, cands, "")
	if err != nil {
		return 0, err
	}
	for _, uid := range cands {
		if claims.UIDs[uid] {
			continue
		}
		sum, size, err := a.dst.Digest(ctx, mailbox, uid)
		if err != nil {
			return 0, fmt.Errorf("mirror: reading a moved copy in %q: %w", mailbox, err)
		}
		if size == e.Size && fmt.Sprintf("%x", sum[:]) == e.Digest {
			return uid, nil
		}
	}
	return 0, nil
}

// MirrorUnsure is a source folder whose deletions a mirror pass could not
// tell, and why.
type MirrorUnsure struct {
	Folder string `json:"folder"`
	Reason string `json:"reason"`
}
