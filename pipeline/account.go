package pipeline

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/spool"
)

// DefaultBatchMessages is Options.BatchMessages when it is 0, and the
// default of --batch-messages and batch_messages. The destination's cost
// of an APPEND transaction grows with its mailbox (Dovecot commits one
// per APPEND command), so fewer, larger batches cost it less per message: into a maildir of 20,000, batches of
// 250 took the destination Dovecot 0.074 ms a message against 0.102 with
// 100, and mailferry 0.066 against 0.074 (its ledger commits one per
// batch), for about 15 MB more peak RSS; 500 added nothing more
// (docs/performance.md, "Batches of 250"). Earlier, 100 against 50 into a
// folder of 100,000: 0.064 against 0.087 (issue 20). A batch is still
// bounded by BatchBytes and sent sooner when memory or time says so.
const DefaultBatchMessages = 250

// DefaultBatchBytes is Options.BatchBytes when it is 0, and the default of
// --batch-bytes and batch_bytes (16 MiB): whichever of the two limits a
// batch reaches first ends it.
const DefaultBatchBytes = 16 << 20

// Options configures the copy of one account.
type Options struct {
	// Account is the account's number in the ledger (checkpoint's
	// ResolveAccount gives it). 0 in a dry run of an account the ledger
	// does not know yet: it reads as an empty account.
	Account AccountID
	// Name names the account in logs and progress (its ledger key, which
	// the status page and notifications look accounts up by):
	// Stats.LedgerKey carries it.
	Name string
	// Label is how people know the account (the config's account name,
	// or the URLs as given): Stats.Account carries it. Default Name.
	Label string
	// Mailbox is the destination mailbox for sources without folders (POP3).
	Mailbox    string
	DatePolicy mapping.DatePolicy
	FlagPolicy mapping.FlagPolicy
	// DeleteSource deletes at the source what the ledger has as done.
	DeleteSource bool
	// DeleteAfter, when positive, deletes at the source the messages that
	// the ledger has had as done for at least this long (by Entry.DoneAt
	// and Now), still after this run's copy and commit; younger ones wait
	// for a later run. It excludes DeleteSource. 0: keep (unless
	// DeleteSource).
	DeleteAfter time.Duration
	// MaxMessageBytes skips larger messages (0: only the destination's
	// APPENDLIMIT applies).
	MaxMessageBytes int64
	// Spool bounds each message's memory; its MaxBytes is set per message
	// from the size limit (SizeLimit), so the disk a message takes never
	// passes the limit.
	Spool spool.Options
	// BatchMessages and BatchBytes bound one APPEND batch, which is also
	// the unit of a ledger commit. Defaults DefaultBatchMessages and
	// 16 MiB.
	BatchMessages int
	BatchBytes    int64
	// QueueBytes bounds the memory of messages fetched but not yet
	// appended. Default 16 MiB. A batch is sent once its messages hold
	// half of it, so that the next ones are read while it is stored.
	QueueBytes int64
	// Linger is how long a partial batch waits for more messages before it
	// is sent. Default 100 ms. It goes at once when none can come soon:
	// the fetcher waits for memory, or reads a message of a quarter of
	// BatchBytes or more.
	Linger time.Duration
	// Now is the clock: for the "now" date policy, the times recorded in
	// the ledger and DeleteAfter. Default time.Now.
	Now func() time.Time
	// MapFolders, when set, maps each source mailbox to its destination
	// mailbox (IMAP sources); a mailbox it leaves out, or maps to "", is
	// not copied. It may create the destination folders, unless create is
	// false (dry runs). Without it every message goes to Mailbox.
	MapFolders func(ctx context.Context, src Source, dst Destination, create bool) (map[string]string, error)
	// SyncFlags brings the flags of messages copied earlier up to date
	// when the source has flags (IMAP) and the destination can store them.
	SyncFlags bool
	// RetrySkipped sends again the messages earlier runs skipped for good
	// (too big, NUL bytes without BINARY, refused for good), after the
	// admin changed something (--retry-skipped); without it they are
	// listed in the report and are no failure. It is the run's form of
	// the account's retry flag (Hold.RetrySkipped, the status page's
	// retry): either one retries them, except those probably present on
	// the destination already.
	RetrySkipped bool
	// KeyFolder, when set, splits a source key into the prefix every key
	// of its folder starts with and the longer prefix of the folder's keys
	// under its current UIDVALIDITY (its generation): imapsrc.KeyFolder
	// for IMAP sources. Once a folder is listed under one generation, the
	// entries of its other generations can never be listed again (a server
	// that renumbered the folder); a listed message with the same size and
	// digest as such an entry's copy is recorded as done under its new
	// key, not sent again.
	KeyFolder func(key string) (KeyPlace, bool)
	// FolderKeys, when set with KeyFolder, returns what every key of a
	// source mailbox starts with, under any UIDVALIDITY (KeyPlace.Folder;
	// imapsrc.KeyPrefix(mailbox, 0)): a folder record whose folder no
	// entry is in can be pruned once the folder is no longer copied.
	FolderKeys func(mailbox string) string
	// DestSessions is how many destination sessions append at once, each
	// with its own batches (Dovecot commits one transaction per APPEND
	// command, so parallel batches are the next lever after MULTIAPPEND).
	// The first is the attempt's own; the others are opened for the copy.
	// Default 1.
	DestSessions int
	// MaxRefusedInARow stops the account when the destination refuses
	// this many messages in a row (an error budget: a hopeless account ends
	// early instead of trying every message). Default 25; negative: never.
	MaxRefusedInARow int
	// AddHeader, when set, returns a header field (with its CRLF) to put
	// before each message, e.g. "X-UIDL: ..." so that a Dovecot destination
	// with pop3_reuse_xuidl keeps the POP3 UIDLs users' clients know. It
	// is the one change to message bytes a user can ask for; "" adds none.
	AddHeader func(SourceMessage) string
	// LateCopyWindow is how long after a message was resent (reconcile did
	// not find its first copy) runs still look for that first copy
	// arriving late, to remove it as a duplicate (see Resent). Default 1 h.
	LateCopyWindow time.Duration
	// Crawl says when a destination that slows to a crawl at its daily
	// limit (Capabilities.CrawlsAtLimit) is taken to crawl; zero fields:
	// the defaults of CrawlRule.
	Crawl CrawlRule
	// Traffic, when set, paces the copy: bandwidth and message rates,
	// their timetables and pauses, daily quotas (package traffic). Nil:
	// no limits.
	Traffic Traffic
	// Mirror makes the destination follow the source for what mailferry
	// put there (issue 22, mirror.go): copies of messages gone from the
	// source are removed, copies of messages moved between source folders
	// are moved.
	Mirror bool
	// MaxDelete and MaxDeletePercent cap the removals of one mirror pass
	// (a pass that would remove more removes nothing): at most MaxDelete
	// copies, at most MaxDeletePercent of the account's copied messages,
	// the smaller when both are set. Neither: DefaultMaxDeletePercent, at
	// least MinMaxDelete.
	MaxDelete        int
	MaxDeletePercent int
	// MirrorAllowEmpty names source folders (as a mirror pass's "cannot
	// tell" names them; a POP3 source's is Mailbox) whose every message
	// the admin knows was deleted at the source: when such a folder lists
	// nothing while the ledger has copies of its messages, those copies are
	// removed (within the caps) instead of held back as "cannot tell".
	MirrorAllowEmpty []string
	// QuotaWindow, when set, returns the start of the current quota day:
	// the window each commit files its bytes under in the ledger's usage
	// (traffic's Run.Window: midnight in the limits' zone, on the clock
	// the quotas are checked by). Nil: QuotaWindow of Now, local midnight.
	QuotaWindow func() time.Time
	// NoMatchExisting turns destination matching off (match.go): by
	// default a copy into a destination folder the ledger has nothing for
	// yet first matches what the folder holds, and sends only what it
	// does not hold byte for byte.
	NoMatchExisting bool
	// Crashpoint, when set, is called at each step of the exactly-once
	// protocol: "pending" (intent recorded, nothing sent), "appended" (the
	// server confirmed, nothing committed), "committed", and "deleted"
	// (deletions sent to the source, session not yet closed); with Mirror
	// also "moving", "moved", "removing", "removed", "renaming" and
	// "renamed" (intent recorded; the server confirmed, nothing
	// committed), and "folder deleted" (a destination folder deleted,
	// its source folder's record not yet marked). Crash tests
	// kill the process there; it must not be set otherwise.
	Crashpoint func(point string)
}

func (o Options) withDefaults() Options {
	if o.Label == "" {
		o.Label = o.Name
	}
	if o.Mailbox == "" {
		o.Mailbox = "INBOX"
	}
	if o.BatchMessages <= 0 {
		o.BatchMessages = DefaultBatchMessages
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 16 << 20
	}
	if o.Linger <= 0 {
		o.Linger = 100 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DestSessions <= 0 {
		o.DestSessions = 1
	}
	if o.MaxRefusedInARow == 0 {
		o.MaxRefusedInARow = 25
	}
	if o.LateCopyWindow <= 0 {
		o.LateCopyWindow = time.Hour
	}
	if o.Crashpoint == nil {
		o.Crashpoint = func(string) {}
	}
	o.Crawl = o.Crawl.withDefaults()
	return o
}

// item is one fetched message on its way to the destination, or (flags
// set) a page's flag changes for earlier copies, which a batch writer
// stores through its session.
type item struct {
	msg        SourceMessage
	mailbox    string // destination mailbox
	body       *spool.Message
	skipReason string      // non-empty: do not send, record as skipped
	skipClass  ReasonClass // the skip's class
	failReason string      // non-empty: the source would not serve it; record as failed
	entry      Entry
	out        OutgoingMessage
	dateSource string
	memBytes   int64
	flags      []flagChange
	// matchUID: destination matching found the message's bytes there
	// (recorded as done, not sent); presentUID: a message with its
	// Message-ID and size, other bytes (skipped as probably present);
	// matchValidity is the folder's UIDVALIDITY they were found under.
	matchUID, presentUID uint32
	matchValidity        uint32
	// prepare: no message, a hint that mailbox is about to get its first
	// messages (see batchWriter.prepare).
	prepare bool
}

// attempt copies what remains of one account, once. State that must
// survive a retry lives in run.
type attempt struct {
	run    *accountRun
	src    Source
	dst    Destination
	ledger Ledger
	hold   Hold
	opts   Options
	log    *slog.Logger
	prog   Progress
	st     *Stats
	// raw are the source and destination before dry-run decoration, for
	// MapFolders; create says whether MapFolders may create folders.
	rawSrc Source
	rawDst Destination
	create bool
	dry    bool // a dry run: mirror lists what it would do
	// match is destination matching (match.go), nil when off.
	match *destMatcher
	// mir is the mirror pass's state (Options.Mirror), nil until used.
	mir *mirrorState
	// plan is the attempt's folder plan.
	plan FolderPlan
	// limit is the size limit of the copy (set by copy; mailboxes with an
	// APPENDLIMIT of their own tighten it).
	limit SizeLimit
	// binary: the destination takes messages with NUL bytes (BINARY,
	// RFC 3516); set with limit.
	binary bool
	// crawl watches how fast the destination takes batches, where it may
	// slow to a crawl at its daily limit (crawl.go).
	crawl *crawlWatch
	// openDst opens another destination session (DestSessions > 1).
	openDst func(ctx context.Context) (Destination, error)
	// halt is Runner.Stop (the first Ctrl-C): when closed, no new phase,
	// fetch or batch starts, and the batches sent are finished and
	// committed. The listing goes on counting (interrupt), so that the run
	// knows what is not yet copied, and nothing is deleted.
	halt <-chan struct{}

	// What the listing found, page by page: never a per-message record
	// of the whole account.
	listed    int   // messages listed (in the folder plan)
	settled   int   // of which done or skipped when listed
	finished  int   // of which this attempt's copy committed as done or skipped, or found gone
	doneFound int   // done when listed
	toCopy    int   // to copy, found so far
	toCopyB   int64 // their announced bytes
	waiting   int   // done, but DeleteAfter has not passed yet
	earlier   int   // this run's done messages before the listing (see AlreadyDone)
	deleted   int   // deletions issued at the source
	complete  bool  // the listing went through to its end
	// scopes are what the listing covered, to find entries the source no
	// longer lists (listing.go).
	scopes *scopes
	// summary is the source's ListSummary of this attempt's listing, when
	// it gave one: recorded with a complete pass (listing.go).
	summary *ListSummary

	// mu guards st, run, claimed, earlierGone, toDelete, flagsRefused and
	// the counters the batch writers update while the listing goes on.
	mu sync.Mutex
	// claimed are the keys of earlier identities rematched by this attempt:
	// one earlier copy is never claimed by two new keys.
	claimed map[string]bool
	// earlierGone tells, per folder (KeyPlace.Folder), whether the ledger
	// holds gone entries in it, asked once per folder and forgotten when
	// retire marks some: with none, no new message of the folder needs a
	// look for its earlier identity.
	earlierGone map[string]bool
	// flagsRefused: the destination refused some flag update of this
	// attempt, which only a listing tries again (no folder marks are
	// recorded).
	flagsRefused bool
	// toDelete are messages this attempt committed as done, to delete at
	// the source (DeleteSource): the listing issues them between pages.
	toDelete []SourceMessage
	// sessions opens the extra destination sessions as the copy grows.
	sessions *sessionGate
	// prepared are the destination mailboxes a prepare hint went out
	// for (the listing's goroutine only).
	prepared map[string]bool
	// closing counts the extra destination sessions still logging out
	// (closeLater); the attempt waits for them when it closes its own.
	closing sync.WaitGroup
	// paused is the traffic pause (Options.Traffic) that ended the
	// copy; the listing goes on only counting, so that the run knows what
	// is left, and still deletes what is done. stop is closed with it, or
	// by interrupt (halt).
	paused    error
	stop      chan struct{}
	pauseOnce sync.Once
}

// flagsLag reports whether some flag update of this attempt was refused.
func (a *attempt) flagsLag() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flagsRefused
}

// pause ends the copy for a traffic pause: nothing more is fetched or
// sent; the listing goes on counting.
func (a *attempt) pause(err error) {
	a.pauseOnce.Do(func() {
		a.mu.Lock()
		a.paused = err
		a.mu.Unlock()
		close(a.stop)
	})
}

// interrupt ends the copy for halt (Runner.Stop) as a pause does: nothing
// more is fetched, the listing goes on counting. Unlike a pause, the
// batch writers send no new batch (they only finish the ones sent), and
// nothing is deleted at the source: the attempt ends with ErrInterrupted.
func (a *attempt) interrupt() {
	a.pauseOnce.Do(func() { close(a.stop) })
}

// halted reports whether Runner.Stop stopped the attempt.
func (a *attempt) halted() bool { return stopped(a.halt) }

// counting reports whether the copy ended for a pause or an interrupt.
func (a *attempt) counting() bool {
	select {
	case <-a.stop:
		return true
	default:
		return false
	}
}

// do runs the attempt: reconcile, then list page by page, copying each
// page's new messages while the next pages are listed; delete at the
// source what is done; mark gone what the source no longer lists.
func (a *attempt) do(ctx context.Context) error {
	dests, err := a.planFolders(ctx)
	if err != nil {
		return err
	}
	a.plan = dests
	if a.halted() {
		return ErrInterrupted
	}
	if err := a.reconcile(ctx); err != nil {
		return err
	}
	if err := a.settleResent(ctx); err != nil {
		return err
	}
	if err := a.settleMirror(ctx); err != nil {
		return err
	}
	if a.match, err = a.newDestMatcher(ctx); err != nil {
		return err
	}
	a.earlier = a.st.Copied + a.st.Reconciled + a.st.Rematched + a.st.LateCopiesAdopted + a.st.Matched
	caps := a.dst.Capabilities()
	a.limit = NewSizeLimit(a.opts.MaxMessageBytes, caps.AppendLimit)
	a.binary = caps.Binary
	if a.scopes, err = a.newScopes(ctx); err != nil {
		return err
	}
	if a.halted() {
		return ErrInterrupted
	}
	defer func() {
		a.st.DeleteWaiting = a.waiting
		a.st.Listed = a.listed
		a.st.AlreadyDone = max(a.st.AlreadyDone, a.doneFound-a.earlier)
	}()

	if err := a.mirrorBefore(ctx, dests); err != nil {
		return err
	}
	same, err := a.unchanged(ctx)
	if err == nil && !same {
		err = a.unchangedFolders(ctx, dests)
	}
	if err != nil {
		return err
	}
	if !same {
		err = a.copy(ctx, func(ctx context.Context, out *pageSink) error {
			return a.src.List(ctx, func(page []SourceMessage) error {
				return a.page(ctx, page, dests, out)
			})
		})
	}
	if a.complete {
		a.countUnlisted()
	}
	a.run.noteAttempt(a)
	if a.complete {
		a.log.Info("account listed", "account", a.opts.Name, "listed", a.listed,
			"to_copy", a.toCopy, "already_done", a.doneFound)
	}
	if a.halted() {
		// The batches sent are committed; no deletion, no sweep: the
		// next run does them. An error of its own (a ledger failure)
		// still says what went wrong.
		if _, ok := isPaused(err); err != nil && !ok && !errors.Is(err, ErrInterrupted) {
			return err
		}
		return ErrInterrupted
	}
	var paused error // a pause ends the copy, not the attempt's deletions
	if _, ok := isPaused(err); ok && ctx.Err() == nil {
		paused, err = err, nil
	}
	if err != nil {
		return err
	}
	// A first APPEND given up on earlier in this run may have landed
	// while this attempt sent its copy again.
	if a.toCopy > 0 && paused == nil {
		if err := a.settleResent(ctx); err != nil {
			return err
		}
		if a.halted() {
			return ErrInterrupted
		}
	}
	// Every message in toDelete is done in the ledger, committed (synced)
	// before this point by the copy, which has returned.
	if err := a.deleteAtSource(ctx, nil, a.takeToDelete()); err != nil {
		return err
	}
	if paused != nil {
		return paused // the listing did not end: nothing to sweep
	}
	if err := a.sweep(ctx); err != nil {
		return err
	}
	if err := a.mirrorRemove(ctx); err != nil {
		return err
	}
	return a.pruneFolders(ctx)
}

// deleteDue reports whether a done entry has been done since dueBy or
// earlier. An entry without DoneAt (a ledger that never recorded it) counts
// from its last update, which is never earlier than the real time.
func deleteDue(e Entry, dueBy time.Time) bool {
	t := e.DoneAt
	if t.IsZero() {
		t = e.Updated
	}
	return !t.IsZero() && !t.After(dueBy)
}

// planFolders returns which source mailboxes are copied, and where.
func (a *attempt) planFolders(ctx context.Context) (FolderPlan, error) {
	if a.opts.MapFolders == nil {
		return AllTo(a.opts.Mailbox), nil
	}
	dests, err := a.opts.MapFolders(ctx, a.rawSrc, a.rawDst, a.create)
	if err != nil {
		return FolderPlan{}, fmt.Errorf("mapping folders: %w", err)
	}
	return MappedFolders(dests), nil
}

// page handles one page of the listing: what the ledger says of each
// message; the flag changes of earlier copies (for the batch writers);
// the new messages, fetched and queued for the writers; then the
// deletions at the source that are due. It returns once the page's
// messages are queued, so that the source is idle again for the next
// page.
func (a *attempt) page(ctx context.Context, msgs []SourceMessage, dests FolderPlan, out *pageSink) error {
	select {
	case <-a.hold.Paused():
		return errPaused
	default:
	}
	msgs = slices.DeleteFunc(msgs, func(m SourceMessage) bool { _, ok := dests.Dest(m); return !ok })
	if len(msgs) == 0 {
		return nil
	}
	if err := a.scopes.enter(ctx, a, msgs); err != nil {
		return err
	}
	entries, err := a.lookup(ctx, msgs)
	if err != nil {
		return err
	}
	dueBy := a.opts.Now().Add(-a.opts.DeleteAfter)
	var todo, del []SourceMessage
	var flags []flagChange
	var fix []Entry // gone entries listed again, marks of deletions not made
	var todoBytes int64
	for _, m := range msgs {
		a.listed++
		e, ok := entries[m.Key]
		if !ok && a.mir != nil && a.mir.dryMoved[m.Key] {
			// A dry run's mirror would have moved its copy here.
			a.scopes.listed(m, true, a.opts.KeyFolder)
			a.settled++
			a.doneFound++
			continue
		}
		a.scopes.listed(m, ok && e.State != StateGone && e.State != StateRemoved, a.opts.KeyFolder)
		if ok && e.State == StateGone {
			// Listed again (a server restored it): its copy is still
			// there.
			e.State, e.GoneAt, e.Updated = StateDone, time.Time{}, a.opts.Now()
			fix = append(fix, e)
		}
		switch a.disposition(e, ok) {
		case AlreadyDone:
			a.settled++
			a.doneFound++
			deleting := false
			switch {
			case a.opts.DeleteSource:
				deleting = true
			case a.opts.DeleteAfter > 0 && deleteDue(e, dueBy):
				deleting = true
			case a.opts.DeleteAfter > 0:
				a.waiting++
			}
			if deleting {
				del = append(del, m)
			} else if e.ReasonClass == ReasonDeleted {
				// Marked by a run whose deletion did not happen, and not
				// deleted now: not mailferry's deletion after all.
				e.ReasonClass, e.Updated = "", a.opts.Now()
				fix = append(fix, e)
			}
			if a.opts.SyncFlags && m.Flags != nil && e.DestUID != 0 && e.DestMailbox != "" && !mapping.SameFlags(m.Flags, e.Flags) {
				flags = append(flags, flagChange{entry: e, flags: m.Flags})
			}
		case SkippedEarlier:
			a.settled++
			a.skippedBefore(e)
		default:
			todo = append(todo, m)
			todoBytes += m.Size
		}
	}
	if len(fix) > 0 {
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: fix}); err != nil {
			return fmt.Errorf("recording %d listed messages: %w", len(fix), fatal(err))
		}
	}
	a.mu.Lock()
	a.toCopy += len(todo)
	a.toCopyB += todoBytes
	remaining, remainingB := a.toCopy-a.finished, a.toCopyB
	a.mu.Unlock()
	a.prog.AccountStarted(a.opts.Name, remaining, remainingB)
	if len(flags) > 0 && !a.counting() {
		if err := out.send(ctx, &item{flags: flags}); err != nil && !errors.Is(err, errCounting) {
			return err
		}
	}
	if err := a.fetchPage(ctx, todo, dests, out); err != nil {
		return err
	}
	if a.halted() {
		return nil // interrupted: the next run deletes what is due
	}
	return a.deleteAtSource(ctx, del, a.takeToDelete())
}

// skippedBefore reports e, which an earlier run skipped for good, once per
// run: listed again (Stats.SkipsBefore), not a failure of this run.
func (a *attempt) skippedBefore(e Entry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.run.skipped[e.Key] {
		a.st.SkippedBefore++
		a.st.SkipsBefore = append(a.st.SkipsBefore, Skip{Key: e.Key, Reason: e.Reason})
		a.run.skipped[e.Key] = true
	}
}

// retrySkipped reports whether skipped messages are tried again this run:
// the account's retry flag (the status page, Retry) or the run's option
// (--retry-skipped), one mechanism.
func (a *attempt) retrySkipped() bool {
	return a.opts.RetrySkipped || a.hold.RetrySkipped()
}

// disposition is DispositionOf with the run's retry rules: skipped
// messages are tried again when a retry is asked for (retrySkipped;
// except those probably present already, and those this run has skipped
// again), and one skipped as too big when the limit in force has grown
// past its size.
func (a *attempt) disposition(e Entry, ok bool) Disposition {
	d := DispositionOf(e, ok)
	if d != SkippedEarlier {
		return d
	}
	switch {
	case a.retrySkipped() && e.ReasonClass != ReasonPresent && !a.skippedThisRun(e.Key):
		return ToCopy
	case e.ReasonClass == ReasonTooBig && e.Size > 0 && a.limit.Bytes > 0 && e.Size <= a.limit.Bytes:
		// The limit in force has grown past it (a server refusal without a
		// known limit is retried only when asked).
		return ToCopy
	}
	return d
}

// skippedThisRun reports whether key was reported skipped by this run
// (an earlier attempt skipped it again): a retry sends it once per run.
func (a *attempt) skippedThisRun(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.run.skipped[key]
}

// lookup returns the ledger's entries of msgs, by key.
func (a *attempt) lookup(ctx context.Context, msgs []SourceMessage) (map[string]Entry, error) {
	out := make(map[string]Entry, len(msgs))
	keys := make([]string, 0, min(len(msgs), MaxLookup))
	for chunk := range slices.Chunk(msgs, MaxLookup) {
		keys = keys[:0]
		for _, m := range chunk {
			keys = append(keys, m.Key)
		}
		err := a.ledger.Lookup(ctx, a.opts.Account, keys, func(e Entry) error {
			out[e.Key] = e
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the ledger: %w", fatal(err))
		}
	}
	return out, nil
}

// deleteAtSource deletes msgs and done (every one done in the ledger and
// committed) at the source (for POP3 only at QUIT, which closing a clean
// attempt sends). Their entries are marked first as mailferry's deletions
// (ReasonDeleted), so that mirror never removes their copies.
func (a *attempt) deleteAtSource(ctx context.Context, msgs, done []SourceMessage) error {
	msgs = append(msgs, done...)
	if len(msgs) == 0 {
		return nil
	}
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		keys[i] = m.Key
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Deleting: keys}); err != nil {
		return fmt.Errorf("recording %d messages to delete at the source: %w", len(keys), fatal(err))
	}
	if a.opts.DeleteAfter > 0 {
		a.log.Info("deleting at the source messages copied at least delete_after ago", "account", a.opts.Name,
			"messages", len(msgs), "delete_after", a.opts.DeleteAfter)
	}
	if err := a.src.Delete(ctx, msgs); err != nil {
		return fmt.Errorf("deleting %d copied messages at the source: %w", len(msgs), err)
	}
	a.deleted += len(msgs)
	a.opts.Crashpoint("deleted")
	return nil
}

// takeToDelete returns the messages the batch writers committed as done
// that are to be deleted at the source, and forgets them.
func (a *attempt) takeToDelete() []SourceMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.toDelete
	a.toDelete = nil
	return out
}

// pageSink is where the listing puts what the batch writers do.
type pageSink struct {
	items chan<- *item
	stop  <-chan struct{} // closed: a pause or an interrupt ended the copy
	// wait is the listing's context, ended also by an interrupt: for
	// the waits for the traffic limits before a message is fetched.
	wait   context.Context
	budget *byteBudget
	queued int // messages queued, to open extra sessions as the copy grows
	grow   func(queued int)
}

// send queues it for the batch writers, waiting for room in the memory
// budget.
func (p *pageSink) send(ctx context.Context, it *item) error {
	if err := p.budget.acquire(ctx, p.stop, it.memBytes); err != nil {
		it.release()
		return err
	}
	select {
	case p.items <- it:
		if it.flags == nil && !it.prepare {
			p.queued++
			p.grow(p.queued)
		}
		return nil
	case <-ctx.Done():
		p.budget.release(it.memBytes)
		it.release()
		return ctx.Err()
	case <-p.stop:
		p.budget.release(it.memBytes)
		it.release()
		return errCounting
	}
}

// errCounting tells the listing that a pause ended the copy: it goes on
// counting, fetching nothing.
var errCounting = errors.New("the copy is paused; the listing only counts")

// copy runs list, which lists the source and queues what is to copy into
// its sink, while batch writers append and commit it. It returns when
// both are done; the writers commit what their destination confirmed,
// also when they stop.
func (a *attempt) copy(ctx context.Context, list func(context.Context, *pageSink) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	budget := newByteBudget(a.opts.QueueBytes)
	items := make(chan *item, a.opts.BatchMessages)
	a.sessions = newSessionGate(a.opts.DestSessions, a.opts.BatchMessages)
	if a.openDst == nil {
		a.sessions = newSessionGate(1, a.opts.BatchMessages)
	}
	writeErr := make(chan error, 1)
	a.stop = make(chan struct{})
	waitCtx := ctx
	if a.halt != nil {
		// The interrupt ends the copy between messages, and a wait for
		// the traffic limits at once: what the fetcher has not handed on
		// is never sent, and the listing goes on counting on a session
		// left in step.
		var cancelWait context.CancelFunc
		waitCtx, cancelWait = context.WithCancel(ctx)
		defer cancelWait()
		copied := make(chan struct{})
		defer close(copied)
		go func() {
			select {
			case <-a.halt:
				a.interrupt()
				cancelWait()
			case <-copied:
			}
		}()
	}
	go func() {
		err := a.writeAll(ctx, items, budget)
		if _, paused := isPaused(err); paused && ctx.Err() == nil {
			// A pause: the listing goes on counting what is left.
			a.pause(err)
		} else if errors.Is(err, ErrInterrupted) && ctx.Err() == nil {
			// So does an interrupt: the writers finished their batches.
			a.interrupt()
		} else if err != nil {
			cancel() // the listing stops: nobody takes its messages
		}
		writeErr <- err
	}()
	sink := &pageSink{items: items, stop: a.stop, wait: waitCtx, budget: budget, grow: a.sessions.grow}
	lerr := list(ctx, sink)
	if lerr == nil {
		a.complete = true
	}
	close(items)
	a.sessions.listed()
	err := <-writeErr
	// Drain so that nothing queued keeps its spool.
	for it := range items {
		it.release()
	}
	if err == nil {
		// The writers took every message: the listing's error (a failed
		// fetch, or the run's context) decides.
		err = lerr
	}
	if err == nil {
		err = a.paused
	}
	return err
}

// sessionGate opens the extra destination sessions as the copy grows: the
// i-th extra one once the listing has queued more than i batches (a copy
// of a few messages opens none), and none once the listing ended short.
type sessionGate struct {
	mu     sync.Mutex
	batch  int
	opened []chan struct{} // closed: session i may open
	need   []bool
	done   bool
}

func newSessionGate(sessions, batch int) *sessionGate {
	g := &sessionGate{batch: batch, opened: make([]chan struct{}, max(sessions, 1)), need: make([]bool, max(sessions, 1))}
	for i := range g.opened {
		g.opened[i] = make(chan struct{})
	}
	close(g.opened[0])
	g.need[0] = true
	return g
}

func (g *sessionGate) sessions() int { return len(g.opened) }

// grow notes that queued messages are queued in all.
func (g *sessionGate) grow(queued int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := 1; i < len(g.opened); i++ {
		if !g.need[i] && queued > i*g.batch {
			g.need[i] = true
			close(g.opened[i])
		}
	}
}

// listed notes the end of the listing: sessions not needed by then never
// open.
func (g *sessionGate) listed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return
	}
	g.done = true
	for i := range g.opened {
		if !g.need[i] {
			close(g.opened[i])
		}
	}
}

// wait blocks until session i may open or is not needed, or stop closes
// (a writer failed: the copy ends, and a writer that failed before taking
// a message, e.g. readying its first mailbox, left the listing's count
// short of opening the next session); it reports whether it is needed.
func (g *sessionGate) wait(ctx context.Context, stop <-chan struct{}, i int) bool {
	select {
	case <-g.opened[i]:
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.need[i]
}

// writeAll runs up to DestSessions batch writers on the fetched messages;
// the first uses the attempt's destination and starts at once, the others
// open their own sessions as the copy grows (on a distant server each
// costs several round trips) and join when ready. Each writer commits
// what its destination confirmed, also when it stops.
func (a *attempt) writeAll(ctx context.Context, items <-chan *item, budget *byteBudget) error {
	sessions := a.sessions.sessions()
	stop := make(chan struct{})
	var stopOnce sync.Once
	errs := make([]error, sessions)
	var wg sync.WaitGroup
	write := func(i int, d Destination) {
		w := batchWriter{a: a, dst: d, boxes: map[string]*mailboxState{}}
		err := w.consume(ctx, stop, items, budget)
		// Batches still with the server are finished and committed, also
		// when the run is cancelled (their wait then fails at once).
		if ferr := w.finishAll(context.WithoutCancel(ctx), budget); ferr != nil && err == nil {
			err = ferr
		}
		if cerr := w.commitCarry(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			stopOnce.Do(func() { close(stop) }) // the others take no new messages
		}
		errs[i] = err
	}
	// An interrupt stops the writers as a failed sibling does: no new
	// batch, the ones sent finished and committed.
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		select {
		case <-a.halt:
			stopOnce.Do(func() { close(stop) })
		case <-watchDone:
		}
	}()
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				write(i, a.dst)
				return
			}
			if !a.sessions.wait(ctx, stop, i) || a.halted() {
				return
			}
			d, err := a.openDst(ctx)
			if err != nil {
				// Fewer sessions is slower, not wrong.
				if ctx.Err() == nil {
					a.log.Warn("cannot open another destination session; going on with fewer", "account", a.opts.Name,
						"session", i+1, "error", err)
				}
				return
			}
			defer a.closeLater(d)
			write(i, d)
			a.mu.Lock()
			a.st.noteCreated(d)
			a.mu.Unlock()
		}()
	}
	wg.Wait()
	// The first real error wins over the stops it caused.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, errStopped) && !errors.Is(err, errStopped)) {
			first = err
		}
	}
	if errors.Is(first, errStopped) && a.halted() {
		first = ErrInterrupted
	}
	return first
}

// closeLater closes an extra destination session once its writer is done,
// without holding the copy up: on a distant server its LOGOUT waits a round
// trip, which the attempt's own sessions' LOGOUTs then overlap (the attempt
// waits for closing before it returns).
func (a *attempt) closeLater(d Destination) {
	a.closing.Add(1)
	go func() {
		defer a.closing.Done()
		d.Close()
	}()
}

// fetchPage reads each message of todo into a spool and queues it for the
// batch writers, announcing them first to a source that fetches ahead.
func (a *attempt) fetchPage(ctx context.Context, todo []SourceMessage, dests FolderPlan, out *pageSink) error {
	if len(todo) == 0 || a.counting() {
		return nil
	}
	if p, ok := a.src.(Prefetcher); ok {
		// Only a hint: without it fetching is slower, not wrong. Messages
		// skipped by their announced size are never fetched, so not
		// announced either (a batched UID FETCH would download them).
		ahead := todo
		if slices.ContainsFunc(todo, a.skipUnread) {
			ahead = slices.DeleteFunc(slices.Clone(todo), a.skipUnread)
		}
		if err := p.Prefetch(ctx, ahead); err != nil {
			a.log.Warn("cannot fetch ahead; fetching one message at a time", "account", a.opts.Name, "error", err)
		}
	}
	if mailbox, ok := dests.Dest(todo[0]); ok && !a.prepared[mailbox] {
		if a.prepared == nil {
			a.prepared = map[string]bool{}
		}
		a.prepared[mailbox] = true
		if err := out.send(ctx, &item{prepare: true, mailbox: mailbox}); err != nil {
			if errors.Is(err, errCounting) {
				return nil
			}
			return err
		}
	}
	for _, m := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if a.counting() {
			return nil
		}
		if t := a.opts.Traffic; t != nil && !a.skipUnread(m) {
			if err := t.Fetch(out.wait, a.opts.ExpectedSize(m)); err != nil {
				if _, paused := isPaused(err); paused {
					a.pause(err)
					return nil
				}
				if a.halted() && ctx.Err() == nil {
					return nil // interrupted while it waited: counting
				}
				return err
			}
		}
		large := a.opts.ExpectedSize(m) > a.opts.BatchBytes/4 && !a.skipUnread(m)
		if large {
			// Reading it takes a while: the writers send what they
			// gathered meanwhile instead of waiting for it.
			out.budget.stall()
		}
		it, err := a.fetchOne(ctx, m)
		if large {
			out.budget.unstall()
		}
		if errors.Is(err, ErrMessageGone) && ctx.Err() == nil {
			a.log.Warn("message gone from the source since it was listed", "account", a.opts.Name, "key", m.Key, "error", err)
			a.mu.Lock()
			a.st.Gone++
			a.run.gone[m.Key] = true
			a.finished++
			a.mu.Unlock()
			continue
		}
		if err != nil && ClassOf(err) == ClassPerMessage && ctx.Err() == nil {
			// The source will not serve this message (it refused it,
			// after its own retries): it fails on its own, with the
			// reason, and the next run tries it again; the messages
			// after it go on.
			it = &item{msg: m, failReason: err.Error(), entry: Entry{Key: m.Key, Size: m.Size}}
			err = nil
		}
		if err != nil {
			return err
		}
		it.mailbox, _ = dests.Dest(m)
		if err := out.send(ctx, it); errors.Is(err, errCounting) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// skipUnread reports whether m is skipped by the size its source announces,
// without fetching it (SizeLimit.SkipAnnounced).
func (a *attempt) skipUnread(m SourceMessage) bool {
	return a.limit.SkipAnnounced(a.opts.ExpectedSize(m))
}

// fetchOne reads m into a spool and decides whether it can be sent. A
// message over the size limit is not read at all when the source announces
// it so, else the spool stops taking its bytes at the limit (the source
// then reads the rest of it off the connection, discarding it, to keep its
// session in step).
func (a *attempt) fetchOne(ctx context.Context, m SourceMessage) (*item, error) {
	expected := a.opts.ExpectedSize(m)
	// A message skipped as too big records a size it is known to have at
	// least: a later run tries it again only once the limit has grown
	// past that.
	tooBig := func(reason string, atLeast int64) *item {
		return &item{msg: m, skipReason: reason, skipClass: ReasonTooBig, entry: Entry{Key: m.Key, Size: max(expected, atLeast)}}
	}
	if a.limit.SkipAnnounced(expected) {
		return tooBig(a.limit.AnnouncedReason(expected), 0), nil
	}
	so := a.opts.Spool
	so.MaxBytes = a.limit.Bytes
	var w *spool.Writer
	for again := false; ; again = true {
		var err error
		w, err = StartMessage(&so, a.opts.AddHeader, m)
		if errors.Is(err, spool.ErrTooBig) {
			return tooBig(a.limit.StoppedReason(expected), a.limit.Bytes+1), nil
		}
		if err != nil {
			return nil, fmt.Errorf("spooling message %q: %w", m.Key, fatal(err))
		}
		var dst io.Writer = w
		if t := a.opts.Traffic; t != nil {
			dst = pacedWriter{ctx: ctx, w: w, t: t}
		}
		_, err = a.src.Fetch(ctx, m, dst)
		if err == nil {
			break
		}
		w.Discard()
		if errors.Is(err, ErrFetchAgain) && !again {
			continue // once: the source said how to read it right
		}
		if errors.Is(err, spool.ErrTooBig) {
			return tooBig(a.limit.StoppedReason(expected), a.limit.Bytes+1), nil
		}
		return nil, fmt.Errorf("fetching message %q: %w", m.Key, err)
	}
	body, err := w.Finish()
	if errors.Is(err, spool.ErrTooBig) {
		return tooBig(a.limit.StoppedReason(expected), a.limit.Bytes+1), nil
	}
	if err != nil {
		return nil, fmt.Errorf("spooling message %q: %w", m.Key, fatal(err))
	}
	it := &item{msg: m, body: body, memBytes: body.InMemoryBytes()}
	header := mapping.HeaderSection(body.Header())
	it.entry = Entry{
		Key:       m.Key,
		Digest:    digestOf(body),
		Size:      body.Size(),
		MessageID: mapping.MessageID(header),
		EmailID:   m.EmailID,
	}
	switch {
	case body.HasNUL() && !a.binary:
		it.skipReason, it.skipClass = NULReason, ReasonNUL
	case body.HasNUL() && declaresBinaryPart(body, body.Size()):
		it.skipReason, it.skipClass = NULBinaryPartReason, ReasonNUL
	case body.Size() == 0:
		it.skipReason, it.skipClass = EmptyReason, ReasonEmpty
	case !a.limit.Allows(body.Size()):
		it.skipReason, it.skipClass = a.limit.Reason(body.Size()), ReasonTooBig
	}
	if it.skipReason != "" {
		return it, nil
	}
	date := m.InternalDate
	it.dateSource = "source"
	if date.IsZero() {
		var src mapping.DateSource
		date, src = mapping.InternalDate(header, a.opts.DatePolicy, a.opts.Now())
		it.dateSource = src.String()
	}
	flags := m.Flags
	if flags == nil {
		flags = mapping.Flags(header, a.opts.FlagPolicy)
	}
	// The body is paced (Traffic.Write) when a batch sends it, under the
	// batch's context (batchWriter.start), not under ctx, the listing's:
	// a batch in flight at the first Ctrl-C must still be sent whole.
	it.out = OutgoingMessage{Body: body, Size: body.Size(), Flags: flags, InternalDate: date, Binary: body.HasNUL()}
	return it, nil
}

// pacedWriter tells Traffic the bytes a source fetches as they arrive, and
// waits as the read limits require: the source reads no faster from its
// connection than the limit.
type pacedWriter struct {
	ctx context.Context
	w   io.Writer
	t   Traffic
}

func (p pacedWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if n > 0 {
		if terr := p.t.Read(p.ctx, n); terr != nil && err == nil {
			err = terr
		}
	}
	return n, err
}

// pacedBody tells Traffic the bytes of a message the destination reads to
// send them, and waits as the write limits require. A message sent again
// (one by one after a refused MULTIAPPEND) counts again: its bytes go
// over the network again.
type pacedBody struct {
	ctx context.Context
	r   io.ReaderAt
	t   Traffic
}

func (p pacedBody) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	if n > 0 {
		if terr := p.t.Write(p.ctx, n); terr != nil && (err == nil || err == io.EOF) {
			err = terr
		}
	}
	return n, err
}

// digestOf is m's SHA-256 in lower-case hex, as the ledger keeps it.
func digestOf(m *spool.Message) string {
	d := m.Digest()
	var hexd [2 * len(d)]byte // on the stack: one allocation, the string's
	hex.Encode(hexd[:], d[:])
	return string(hexd[:])
}

// size is the message's size as sent; 0 when it was not read (skipped
// by its size).
func (it *item) size() int64 {
	if it.body == nil {
		return 0
	}
	return it.body.Size()
}

func (it *item) release() {
	if it.body != nil {
		it.body.Close()
		it.body = nil
	}
}

// fatal marks err as stopping the account (ledger failures).
func fatal(err error) error { return Fatal(err) }
