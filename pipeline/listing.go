package pipeline

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"
)

// KeyPlace is where a source key says its message lives: IMAP keys embed
// their folder, its UIDVALIDITY and the UID (Options.KeyFolder).
type KeyPlace struct {
	Mailbox     string // the folder's name
	Folder      string // what every key of the folder starts with
	Generation  string // what every key of the folder under UIDValidity starts with
	UIDValidity uint32
	UID         uint32
}

// scopes are what one attempt's listing covered, kept without a record of
// every message (issue 20), to find the entries of messages the source no
// longer lists (sweep) and to retire the entries of a folder's earlier
// UIDVALIDITY.
//
// IMAP keys (KeyFolder): per folder generation listed, its UIDs as ranges
// (a folder listed in UID order is a handful of them) and counts; the
// folder records of the ledger say whether a sweep is needed: one that
// listed fewer messages with entries than its last complete pass is
// swept. Other keys (POP3): the account's counts say whether a sweep is
// needed (the listing found fewer messages with entries than the ledger
// has), and only then is the source listed a second time into one 64-bit
// hash per message (a key wrongly taken for listed, two keys sharing a
// hash, only keeps an entry from being marked gone: the safe side), so
// that a run over a mailbox nobody changed holds nothing per message.
type scopes struct {
	records map[string]Folder // source folder records at the start, by name
	gens    map[string]*genScope
	order   []*genScope

	live  int64 // entries that can be listed, at the start (POP3 sweep)
	found int64 // listed messages with such an entry (non-IMAP keys)
	// others counts listed messages whose keys KeyFolder does not place
	// (a Gmail source's "gm:" keys): swept as POP3's are.
	others int

	// marks are the folders' FolderSummaries taken before the listing,
	// by mailbox: recorded with each folder's complete pass. kept are
	// the records of the folders left out as unchanged, recorded again
	// when this attempt's pass completes.
	marks map[string]FolderSummary
	kept  []Folder
	// since are the folders this attempt asked the source to list by
	// their changes (ChangeLister), with the skipped entries of each
	// (reported as skipped before up front); changes what the listing
	// found of those it did list so.
	since   map[string]changedFolder
	changes map[string]FolderChanges
}

// changedFolder is a folder asked to be listed by its changes.
type changedFolder struct {
	from    FolderSummary
	skipped []Entry
}

// genScope is one folder generation listed by this attempt.
type genScope struct {
	mailbox string
	place   KeyPlace
	uids    []uidRange
	listed  int
	found   int
}

type uidRange struct{ lo, hi uint32 }

// add notes uid, usually one above the last.
func (g *genScope) add(uid uint32) {
	if n := len(g.uids); n > 0 {
		last := &g.uids[n-1]
		switch {
		case uid >= last.lo && uid <= last.hi:
			return
		case uid == last.hi+1:
			last.hi = uid
			return
		case uid > last.hi:
			g.uids = append(g.uids, uidRange{uid, uid})
			return
		}
		// Out of order: insert and merge (sources list in UID order).
		i, _ := slices.BinarySearchFunc(g.uids, uid, func(r uidRange, u uint32) int {
			switch {
			case r.hi < u:
				return -1
			case r.lo > u:
				return 1
			}
			return 0
		})
		g.uids = slices.Insert(g.uids, i, uidRange{uid, uid})
		g.uids = mergeRanges(g.uids)
		return
	}
	g.uids = append(g.uids, uidRange{uid, uid})
}

func mergeRanges(rs []uidRange) []uidRange {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// maxUID returns the highest UID listed; 0 when none.
func (g *genScope) maxUID() uint32 {
	if n := len(g.uids); n > 0 {
		return g.uids[n-1].hi
	}
	return 0
}

func (g *genScope) has(uid uint32) bool {
	_, ok := slices.BinarySearchFunc(g.uids, uid, func(r uidRange, u uint32) int {
		switch {
		case r.hi < u:
			return -1
		case r.lo > u:
			return 1
		}
		return 0
	})
	return ok
}

// live are the states of entries whose message the source may list.
var live = []State{StatePending, StateDone, StateSkipped, StateFailed, StateRemoving, StateMoving}

// newScopes reads what the ledger says of the account before the listing:
// its source folder records and how many entries can be listed. The
// folder records are marked incomplete (SyncedAt zero) until this attempt
// completes a pass: a pass cut short may leave entries the next one must
// sweep.
func (a *attempt) newScopes(ctx context.Context) (*scopes, error) {
	sc := &scopes{records: map[string]Folder{}, gens: map[string]*genScope{}}
	folders, err := a.ledger.Folders(ctx, a.opts.Account)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger's folders: %w", fatal(err))
	}
	var stale []Folder
	for _, f := range folders {
		if f.Side != SourceSide {
			continue
		}
		sc.records[f.Name] = f
		if !f.SyncedAt.IsZero() {
			f.SyncedAt = time.Time{}
			stale = append(stale, f)
		}
	}
	if len(stale) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: stale}); err != nil {
			return nil, fmt.Errorf("recording the folders this run lists: %w", fatal(err))
		}
	}
	counts, err := a.ledger.Counts(ctx, a.opts.Account)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger's counts: %w", fatal(err))
	}
	for _, s := range live {
		sc.live += counts[s].Messages
	}
	return sc, nil
}

// enter notes the folders of a page before its entries are read. A folder
// met for the first time under a generation that is not the one of its
// last complete pass: the entries of its other generations can never be
// listed again (the server renumbered it). They are marked gone (copied
// ones) or dropped (the others), so that their messages, listed under new
// keys, are rematched by digest instead of sent again.
func (sc *scopes) enter(ctx context.Context, a *attempt, msgs []SourceMessage) error {
	if a.opts.KeyFolder == nil {
		return nil
	}
	for _, m := range msgs {
		p, ok := a.opts.KeyFolder(m.Key)
		if !ok {
			continue
		}
		if _, seen := sc.gens[p.Generation]; seen {
			continue
		}
		g := &genScope{mailbox: m.Mailbox, place: p}
		sc.gens[p.Generation] = g
		sc.order = append(sc.order, g)
		if rec, ok := sc.records[m.Mailbox]; ok && rec.UIDValidity == p.UIDValidity {
			continue
		}
		n, err := a.retire(ctx, p)
		if err != nil {
			return err
		}
		if n > 0 {
			a.mu.Lock()
			delete(a.earlierGone, p.Folder)
			a.mu.Unlock()
			a.log.Warn("source folder renumbered (UIDVALIDITY changed): its messages are matched by content to what was copied",
				"account", a.opts.Name, "mailbox", m.Mailbox, "uidvalidity", p.UIDValidity, "earlier_entries", n)
		}
	}
	return nil
}

// listed notes a listed message; live says it has an entry that can be
// listed.
func (sc *scopes) listed(m SourceMessage, live bool, place func(string) (KeyPlace, bool)) {
	if place != nil {
		if p, ok := place(m.Key); ok {
			if g := sc.gens[p.Generation]; g != nil {
				g.add(p.UID)
				g.listed++
				if live {
					g.found++
				}
			}
			return
		}
		sc.others++
	}
	if live {
		sc.found++
	}
}

// retire marks gone the entries of p's folder under other generations.
// It returns how many entries it changed.
func (a *attempt) retire(ctx context.Context, p KeyPlace) (int, error) {
	// Two probes tell whether there is anything to do: the first key of
	// the folder, and the first after the generation's keys (which are
	// the generation prefix and digits, all below "\xff").
	first, _, err := a.ledger.Scan(ctx, a.opts.Account, Query{KeyPrefix: p.Folder, KeysOnly: true, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("reading the ledger: %w", fatal(err))
	}
	after, _, err := a.ledger.Scan(ctx, a.opts.Account, Query{KeyPrefix: p.Folder, After: p.Generation + "\xff", KeysOnly: true, Limit: 1})
	if err != nil {
		return 0, fmt.Errorf("reading the ledger: %w", fatal(err))
	}
	if (len(first) == 0 || strings.HasPrefix(first[0].Key, p.Generation)) && len(after) == 0 {
		return 0, nil
	}
	n := 0
	q := Query{KeyPrefix: p.Folder, KeysOnly: true, States: []State{StateDone, StateSkipped, StateFailed}}
	for {
		page, next, err := a.ledger.Scan(ctx, a.opts.Account, q)
		if err != nil {
			return n, fmt.Errorf("reading the ledger: %w", fatal(err))
		}
		var gone []string
		for _, e := range page {
			if !strings.HasPrefix(e.Key, p.Generation) {
				gone = append(gone, e.Key)
			}
		}
		if len(gone) > 0 {
			if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Gone: gone}); err != nil {
				return n, fmt.Errorf("recording %d entries of an earlier UIDVALIDITY: %w", len(gone), fatal(err))
			}
			n += len(gone)
		}
		if next == "" {
			return n, nil
		}
		q.After = next
		if strings.HasPrefix(next, p.Generation) {
			q.After = p.Generation + "\xff" // skip the generation's own keys
		}
	}
}

// sweep marks gone the entries of messages the source no longer lists,
// after a complete listing, where its counts say some are missing; then
// records the folders' complete passes. An empty listing, or a folder
// that listed nothing, marks nothing: it cannot tell (a server hiccup, a
// wrong login, an expired folder).
func (a *attempt) sweep(ctx context.Context) error {
	sc := a.scopes
	if !a.complete || sc == nil {
		return nil
	}
	// A folder with a message taken for gone at fetch gets no marks: its
	// message has no entry, and the next run must list it to try again.
	goneGens := map[string]bool{}
	if a.opts.KeyFolder != nil {
		a.mu.Lock()
		for k := range a.run.gone {
			if p, ok := a.opts.KeyFolder(k); ok {
				goneGens[p.Generation] = true
			}
		}
		a.mu.Unlock()
	}
	var records []Folder
	// record is a folder's record after this attempt's pass over it.
	record := func(mailbox string, uidValidity, messages, maxUID uint32, gen string) Folder {
		// OpName keeps the destination folder it maps to: mirror deletes
		// it when the source folder goes.
		next := Folder{Side: SourceSide, Name: mailbox, UIDValidity: uidValidity,
			Messages: messages, SyncedAt: a.opts.Now(), OpName: a.plan.folders[mailbox]}
		// The marks taken before the listing: anything that changed the
		// folder since moved them, so the next run lists it again. Not
		// when some flag update of this attempt was refused (it is tried
		// again only by a listing), nor when this run deletes at the
		// source (the next run reads the pages to settle the marks of
		// deletions that did not happen, as for POP3 below), nor when
		// the listing met a message at or past the marks' UIDNEXT (it
		// came during the listing): then Messages is not the count of
		// the messages below it that a listing by changes compares
		// (ChangeLister).
		if m, ok := sc.marks[mailbox]; ok && m.UIDValidity == uidValidity && !a.flagsLag() && maxUID < m.UIDNext &&
			!goneGens[gen] && !a.opts.DeleteSource && a.opts.DeleteAfter == 0 {
			next.UIDNext, next.HighestModSeq = m.UIDNext, m.HighestModSeq
		}
		return next
	}
	for _, g := range sc.order {
		rec, ok := sc.records[g.mailbox]
		if c, byChanges := sc.changes[g.mailbox]; byChanges && c.UIDValidity == g.place.UIDValidity {
			// Nothing below the UIDNEXT it started from is gone, and
			// what it listed is all it holds from there on: no sweep.
			records = append(records, record(g.mailbox, c.UIDValidity, c.Messages, c.MaxUID, g.place.Generation))
			continue
		}
		// With no entry the source could list at the start (a first run),
		// every entry is of a message this attempt listed: reading them
		// all back was 7% of mailferry's CPU on a first IMAP run.
		if sc.live > 0 && (!ok || rec.UIDValidity != g.place.UIDValidity || g.found < int(rec.Messages)) {
			if err := a.sweepScope(ctx, Query{KeyPrefix: g.place.Generation}, func(key string) bool {
				p, ok := a.opts.KeyFolder(key)
				return ok && p.Generation == g.place.Generation && g.has(p.UID)
			}); err != nil {
				return err
			}
		}
		records = append(records, record(g.mailbox, g.place.UIDValidity, uint32(g.listed), g.maxUID(), g.place.Generation))
	}
	for name, c := range sc.changes {
		if !listedAny(sc, name) { // listed by its changes, none found
			records = append(records, record(name, c.UIDValidity, c.Messages, c.MaxUID, sc.since[name].from.Generation))
		}
	}
	if a.opts.KeyFolder != nil {
		// Folders copied that listed nothing: recorded empty, unless the
		// ledger knows them with messages (which cannot tell), or they
		// were left out of the listing as unchanged (recorded below), or
		// listed by their changes (above).
		for name, dest := range a.plan.folders {
			if _, byChanges := sc.changes[name]; dest == "" || listedAny(sc, name) || keptFolder(sc, name) || byChanges {
				continue
			}
			if rec, ok := sc.records[name]; ok && rec.Messages > 0 {
				continue
			}
			if m, ok := sc.marks[name]; ok && m.Messages == 0 {
				// Empty by its marks too: recorded with them, so that the
				// next run need not EXAMINE it either.
				records = append(records, record(name, m.UIDValidity, 0, 0, m.Generation))
				continue
			}
			records = append(records, Folder{Side: SourceSide, Name: name, SyncedAt: a.opts.Now(), OpName: dest})
		}
	}
	for _, rec := range sc.kept {
		rec.SyncedAt = a.opts.Now()
		records = append(records, rec)
	}
	placed := int64(0) // listed messages with entries, of IMAP keys
	for _, g := range sc.order {
		placed += int64(g.found)
	}
	if (a.opts.KeyFolder == nil || sc.others > 0) && sc.found+placed < sc.live && a.listed > 0 {
		// Something the ledger has was not listed: list again, keeping a
		// hash of each key this time. Keys KeyFolder places are left to
		// their folders' scopes above.
		seed := maphash.MakeSeed()
		var hashes []uint64
		err := a.src.List(ctx, func(page []SourceMessage) error {
			for _, m := range page {
				hashes = append(hashes, maphash.String(seed, m.Key))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing the source again to find what it no longer holds: %w", err)
		}
		slices.Sort(hashes)
		if err := a.sweepScope(ctx, Query{}, func(key string) bool {
			if a.opts.KeyFolder != nil {
				if _, ok := a.opts.KeyFolder(key); ok {
					return true
				}
			}
			_, ok := slices.BinarySearch(hashes, maphash.String(seed, key))
			return ok
		}); err != nil {
			return err
		}
	}
	// A run that deletes at the source records no maildrop listing: the
	// deletions are confirmed after it (Close), and the next run must read
	// the pages to settle the marks of those that did not happen.
	if a.opts.KeyFolder == nil && a.summary != nil && !a.opts.DeleteSource && a.opts.DeleteAfter == 0 {
		records = append(records, Folder{Side: SourceSide, Name: maildropRecord, Messages: uint32(a.summary.Messages),
			HighestModSeq: a.summary.Digest, SyncedAt: a.opts.Now()})
	}
	if len(records) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Folders: records}); err != nil {
			return fmt.Errorf("recording the folders listed: %w", fatal(err))
		}
	}
	return nil
}

// pruneFolders deletes the source folder records that can no longer
// tell a later run anything: after a complete pass (and mirror's
// removals and folder deletions, which read them), a record of a folder
// this run did not copy (deleted or renamed at the source, or left out
// by the config) that no entry of the account is in, in any state. An
// entry still in the folder keeps it: mirror sweeps and removes the
// copies of a deleted folder by its record, retire and the sweep compare
// its UIDVALIDITY; gone and removed entries leave with ledger_retention
// (FinishRun), and the record one run later. A folder that comes back
// without its record is listed whole, as a new one: its messages have no
// entry, so nothing is sent twice; ones the ledger still has are kept by
// their entries. Records of folders in flight (renaming, deleting) stay.
func (a *attempt) pruneFolders(ctx context.Context) error {
	sc := a.scopes
	if !a.complete || a.dry || sc == nil || a.opts.KeyFolder == nil || a.opts.FolderKeys == nil || a.plan.folders == nil {
		return nil
	}
	var drop []string
	for name, rec := range sc.records {
		if a.plan.folders[name] != "" || rec.Op == FolderRenaming || rec.Op == FolderDeleting {
			continue
		}
		in, _, err := a.ledger.Scan(ctx, a.opts.Account, Query{KeyPrefix: a.opts.FolderKeys(name), KeysOnly: true, Limit: 1})
		if err != nil {
			return fmt.Errorf("reading the ledger's entries of source folder %q: %w", name, fatal(err))
		}
		if len(in) == 0 {
			drop = append(drop, name)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	slices.Sort(drop)
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{DropFolders: drop}); err != nil {
		return fmt.Errorf("dropping the records of %d source folders no longer copied: %w", len(drop), fatal(err))
	}
	a.log.Info("ledger: records of source folders no longer copied, with no entry, dropped", "account", a.opts.Name,
		"folders", len(drop))
	a.log.Debug("ledger: source folder records dropped", "account", a.opts.Name, "folders", drop)
	return nil
}

// listedAny reports whether the attempt listed messages of mailbox under
// any generation.
func listedAny(sc *scopes, mailbox string) bool {
	for _, g := range sc.order {
		if g.mailbox == mailbox {
			return true
		}
	}
	return false
}

// keptFolder reports whether mailbox was left out of the listing as
// unchanged since its last complete pass (unchangedFolders).
func keptFolder(sc *scopes, mailbox string) bool {
	for _, rec := range sc.kept {
		if rec.Name == mailbox {
			return true
		}
	}
	return false
}

// sweepScope marks gone the entries of q that listed says the listing did
// not name.
func (a *attempt) sweepScope(ctx context.Context, q Query, listed func(key string) bool) error {
	// Mirror removes what is found gone: it needs the whole entries.
	q.KeysOnly = !a.opts.Mirror
	q.States = []State{StateDone, StateSkipped, StateFailed}
	for {
		page, next, err := a.ledger.Scan(ctx, a.opts.Account, q)
		if err != nil {
			return fmt.Errorf("reading the ledger: %w", fatal(err))
		}
		var gone []string
		var goneEntries []Entry
		done := 0
		for _, e := range page {
			// Entries of messages this run deletes are made gone when the
			// source confirms the deletion (ConfirmDeleted).
			if listed(e.Key) || a.run.gone[e.Key] || e.ReasonClass == ReasonDeleted {
				continue
			}
			if a.mir != nil {
				if _, seen := a.mir.gone[e.Key]; seen {
					continue // found by the mirror's listing (a dry run: not recorded)
				}
			}
			gone = append(gone, e.Key)
			goneEntries = append(goneEntries, e)
			if e.State == StateDone {
				done++
			}
		}
		if len(gone) > 0 {
			if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Gone: gone}); err != nil {
				return fmt.Errorf("recording %d messages gone from the source: %w", len(gone), fatal(err))
			}
			a.st.SourceGone += done
			a.noteGone(goneEntries)
		}
		if next == "" {
			return nil
		}
		q.After = next
	}
}

// maildropRecord names the source folder record of a source whose keys
// name no folder (POP3): its maildrop. The record's HighestModSeq holds
// the digest of the listing of the last complete pass (ListSummary): what
// HIGHESTMODSEQ is to an IMAP folder, a mark that moves whenever the
// maildrop changes.
const maildropRecord = "INBOX"

// maxSkippedUnchanged bounds the skipped entries an unchanged listing is
// checked against (each must stay skipped under this run's rules); with
// more, the listing is read page by page.
const maxSkippedUnchanged = 10000

// unchanged asks a ListSummarizer source for its listing's summary and
// reports whether that listing is the last complete pass's over an
// account whose entries are all settled: the same messages, keys and
// sizes, every one done or skipped for good, nothing pending, failed or
// to delete. Then no page needs reading against the ledger (issue 20: a
// no-op re-run of a 500,000-message maildrop), and the attempt counts
// what the ledger says instead. Otherwise the List that follows hands
// over the listing summarized.
func (a *attempt) unchanged(ctx context.Context) (bool, error) {
	ls, ok := a.src.(ListSummarizer)
	if !ok || a.opts.KeyFolder != nil {
		return false, nil
	}
	// Without a complete pass to compare with, or with deletions or
	// retries to do, the pages are read whatever the summary says.
	rec, ok := a.scopes.records[maildropRecord]
	thenList := !ok || rec.SyncedAt.IsZero() || a.opts.DeleteSource || a.opts.DeleteAfter > 0 || a.retrySkipped()
	sum, ok, err := ls.ListSummary(ctx, thenList)
	if err != nil || !ok {
		return false, err
	}
	a.summary = &sum
	if thenList || int(rec.Messages) != sum.Messages || rec.HighestModSeq != sum.Digest {
		return false, nil
	}
	select {
	case <-a.hold.Paused():
		return false, errPaused
	default:
	}
	counts, err := a.ledger.Counts(ctx, a.opts.Account)
	if err != nil {
		return false, fmt.Errorf("reading the ledger's counts: %w", fatal(err))
	}
	for _, s := range openStates {
		if counts[s].Messages > 0 {
			return false, nil
		}
	}
	done, skipped := counts[StateDone].Messages, counts[StateSkipped].Messages
	if done+skipped != int64(sum.Messages) || skipped > maxSkippedUnchanged {
		return false, nil
	}
	var skips []Entry
	if skipped > 0 {
		if skips, err = a.scanAll(ctx, Query{States: []State{StateSkipped}}); err != nil {
			return false, err
		}
		for _, e := range skips {
			if a.disposition(e, true) != SkippedEarlier {
				return false, nil
			}
		}
	}
	for _, e := range skips {
		a.skippedBefore(e)
	}
	a.listed, a.settled, a.doneFound = sum.Messages, sum.Messages, int(done)
	a.scopes.found = a.scopes.live
	a.complete = true
	a.prog.AccountStarted(a.opts.Name, 0, 0)
	a.log.Debug("source listing unchanged since the last complete pass: nothing to read against the ledger",
		"account", a.opts.Name, "messages", sum.Messages)
	return true, nil
}

// openStates are the states of entries that are not settled: a folder
// holding one is listed.
var openStates = []State{StatePending, StateFailed, StateRemoving, StateMoving}

// unchangedFolders asks a FolderSummarizer source for its folders' marks
// (kept for the records of this attempt's pass) and leaves out of the
// listing each folder that is unchanged since its last complete pass
// with every entry settled: the same UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ
// and MESSAGES, nothing pending, failed or being moved, every skipped
// entry skipped for good under this run's rules. Its messages are
// counted from its record instead (issue 18: a no-op re-run of a big
// IMAP account reads no listing). A folder that changed since a record
// with marks, every entry of it settled, is given to a ChangeLister
// source to list by its changes (countUnlisted counts the rest). Deleting at the source needs the
// listing; so does a run without flag sync, whose record could hide flag
// changes from a later run with it, which records no marks.
func (a *attempt) unchangedFolders(ctx context.Context, dests FolderPlan) error {
	fs, ok := a.src.(FolderSummarizer)
	if !ok || a.opts.KeyFolder == nil || !a.opts.SyncFlags {
		return nil
	}
	sums, ok, err := fs.FolderSummaries(ctx)
	if err != nil || !ok {
		return err
	}
	sc := a.scopes
	sc.marks = make(map[string]FolderSummary, len(sums))
	for _, s := range sums {
		sc.marks[s.Mailbox] = s
	}
	if a.opts.DeleteSource || a.opts.DeleteAfter > 0 {
		return nil
	}
	if a.opts.Mirror {
		// A mirror pass lists every folder. An unchanged folder (same
		// UIDNEXT, MESSAGES and HIGHESTMODSEQ) had nothing expunged
		// since its last pass, but copies an earlier pass held back
		// (over the caps, no UIDPLUS) are removed only for folders this
		// listing covers (mirrorRemove asks the scopes).
		return nil
	}
	cl, _ := a.src.(ChangeLister)
	var same, moved []FolderSummary
	var out []string // left out of the listing
	for _, s := range sums {
		if _, ok := dests.Dest(SourceMessage{Mailbox: s.Mailbox}); !ok {
			out = append(out, s.Mailbox) // not copied: its pages would be dropped
			continue
		}
		rec, ok := sc.records[s.Mailbox]
		if !ok || rec.SyncedAt.IsZero() || s.HighestModSeq == 0 || rec.UIDValidity != s.UIDValidity {
			continue
		}
		if rec.UIDNext == s.UIDNext && rec.HighestModSeq == s.HighestModSeq && rec.Messages == s.Messages {
			same = append(same, s)
			continue
		}
		// Changed since a complete pass that recorded its marks: listed
		// by its changes since them, where the source can. Marks that
		// went back are not trusted.
		if cl != nil && rec.UIDNext != 0 && rec.HighestModSeq != 0 && s.UIDNext >= rec.UIDNext && s.HighestModSeq >= rec.HighestModSeq {
			moved = append(moved, s)
		}
	}
	defer func() {
		if len(out) > 0 {
			fs.LeaveOut(out)
		}
	}()
	if len(same)+len(moved) == 0 {
		return nil
	}
	select {
	case <-a.hold.Paused():
		return errPaused
	default:
	}
	counts, err := a.ledger.Counts(ctx, a.opts.Account)
	if err != nil {
		return fmt.Errorf("reading the ledger's counts: %w", fatal(err))
	}
	if counts[StateSkipped].Messages > maxSkippedUnchanged {
		return nil
	}
	unsettled := map[string]bool{} // by generation
	if slices.ContainsFunc(openStates, func(s State) bool { return counts[s].Messages > 0 }) {
		q := Query{States: openStates, KeysOnly: true}
		for {
			page, next, err := a.ledger.Scan(ctx, a.opts.Account, q)
			if err != nil {
				return fmt.Errorf("reading the ledger: %w", fatal(err))
			}
			for _, e := range page {
				if p, ok := a.opts.KeyFolder(e.Key); ok {
					unsettled[p.Generation] = true
				}
			}
			if next == "" {
				break
			}
			q.After = next
		}
	}
	skips := map[string][]Entry{} // by generation
	if counts[StateSkipped].Messages > 0 {
		all, err := a.scanAll(ctx, Query{States: []State{StateSkipped}})
		if err != nil {
			return err
		}
		for _, e := range all {
			p, ok := a.opts.KeyFolder(e.Key)
			if !ok {
				continue
			}
			if a.disposition(e, true) != SkippedEarlier {
				unsettled[p.Generation] = true
			}
			skips[p.Generation] = append(skips[p.Generation], e)
		}
	}
	for _, s := range same {
		skipped := skips[s.Generation]
		if unsettled[s.Generation] || len(skipped) > int(s.Messages) {
			continue
		}
		out = append(out, s.Mailbox)
		sc.kept = append(sc.kept, sc.records[s.Mailbox])
		n := int(s.Messages)
		a.mu.Lock()
		a.listed += n
		a.settled += n
		a.doneFound += n - len(skipped)
		a.mu.Unlock()
		for _, e := range skipped {
			a.skippedBefore(e)
		}
	}
	var since []FolderSince
	for _, s := range moved {
		if unsettled[s.Generation] {
			continue // its open entries are retried by a full listing
		}
		rec := sc.records[s.Mailbox]
		from := FolderSummary{Mailbox: s.Mailbox, Generation: s.Generation, UIDValidity: rec.UIDValidity,
			UIDNext: rec.UIDNext, HighestModSeq: rec.HighestModSeq, Messages: rec.Messages}
		since = append(since, FolderSince{Last: from, Now: s})
		if sc.since == nil {
			sc.since = map[string]changedFolder{}
		}
		sc.since[s.Mailbox] = changedFolder{from: from, skipped: skips[s.Generation]}
		for _, e := range skips[s.Generation] {
			a.skippedBefore(e)
		}
	}
	if len(since) > 0 {
		cl.ListChanges(since)
	}
	if len(sc.kept) == 0 {
		return nil
	}
	a.prog.AccountStarted(a.opts.Name, 0, 0) // the pages of the others replace it
	a.log.Debug("source folders unchanged since their last complete pass: not listed",
		"account", a.opts.Name, "folders", len(sc.kept), "of", len(sums))
	return nil
}

// countUnlisted counts, after a complete listing, the messages of the
// folders listed by their changes that the listing did not hand over:
// unchanged since the last complete pass, settled then (unchangedFolders
// asked for none with open entries), so listed and done, or skipped
// before.
func (a *attempt) countUnlisted() {
	cl, ok := a.src.(ChangeLister)
	sc := a.scopes
	if !ok || sc == nil || len(sc.since) == 0 {
		return
	}
	sc.changes = map[string]FolderChanges{}
	for _, c := range cl.Changes() {
		f, ok := sc.since[c.Mailbox]
		if !ok || c.UIDValidity != f.from.UIDValidity {
			continue
		}
		sc.changes[c.Mailbox] = c
		skipped := 0 // of the unlisted
		for _, e := range f.skipped {
			p, ok := a.opts.KeyFolder(e.Key)
			if g := sc.gens[f.from.Generation]; ok && (g == nil || !g.has(p.UID)) {
				skipped++
			}
		}
		n := int(c.Unlisted)
		a.mu.Lock()
		a.listed += n
		a.settled += n
		a.doneFound += max(n-skipped, 0)
		a.mu.Unlock()
	}
}
