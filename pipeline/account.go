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

// Options configures the copy of one account.
type Options struct {
	// Account is the account's key in the ledger. It must stay the same
	// across runs for resuming to work.
	Account string
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
	// the unit of a ledger commit. Defaults 50 and 16 MiB.
	BatchMessages int
	BatchBytes    int64
	// QueueBytes bounds the memory of messages fetched but not yet
	// appended. Default 16 MiB.
	QueueBytes int64
	// Linger is how long a partial batch waits for more messages before it
	// is sent. Default 100 ms.
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
	// listed in the report and are no failure.
	RetrySkipped bool
	// SameOrigin, when set, tells whether a ledger entry whose key is no
	// longer listed may be an earlier identity of a listed message (an IMAP
	// folder whose UIDVALIDITY changed). Such a message with the same size
	// and digest as the earlier copy is recorded as done, not sent again.
	SameOrigin func(oldKey, newKey string) bool
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
	// Traffic, when set, paces the copy: bandwidth and message rates,
	// their timetables and pauses, daily quotas (package traffic). Nil:
	// no limits.
	Traffic Traffic
	// Crashpoint, when set, is called at each step of the exactly-once
	// protocol: "pending" (intent recorded, nothing sent), "appended" (the
	// server confirmed, nothing committed), "committed", and "deleted"
	// (deletions sent to the source, session not yet closed). Crash tests
	// kill the process there; it must not be set otherwise.
	Crashpoint func(point string)
}

func (o Options) withDefaults() Options {
	if o.Mailbox == "" {
		o.Mailbox = "INBOX"
	}
	if o.BatchMessages <= 0 {
		o.BatchMessages = 50
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 16 << 20
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
	return o
}

// item is one fetched message on its way to the destination.
type item struct {
	msg        SourceMessage
	mailbox    string // destination mailbox
	body       *spool.Message
	skipReason string // non-empty: do not send, record as skipped
	failReason string // non-empty: the source would not serve it; record as failed
	entry      Entry
	out        OutgoingMessage
	dateSource string
	memBytes   int64
}

// attempt copies what remains of one account, once. State that must
// survive a retry lives in run.
type attempt struct {
	run    *accountRun
	src    Source
	dst    Destination
	ledger Ledger
	opts   Options
	log    *slog.Logger
	prog   Progress
	st     *Stats
	// raw are the source and destination before dry-run decoration, for
	// MapFolders; create says whether MapFolders may create folders.
	rawSrc Source
	rawDst Destination
	create bool
	// limit is the size limit of the copy (set by copy; mailboxes with an
	// APPENDLIMIT of their own tighten it).
	limit SizeLimit
	// binary: the destination takes messages with NUL bytes (BINARY,
	// RFC 3516); set by copy.
	binary bool
	// doneMsgs are the messages committed as done by this attempt's copy.
	doneMsgs []SourceMessage
	// orphans are done entries whose keys the source no longer lists, by
	// digest, for SameOrigin matching; claimed ones are removed.
	orphans map[string][]Entry
	// openDst opens another destination session (DestSessions > 1).
	openDst func(ctx context.Context) (Destination, error)
	// mu guards st, run and orphans while several batch writers run.
	mu sync.Mutex
}

// do runs the attempt: list, reconcile, copy, commit, delete.
func (a *attempt) do(ctx context.Context) error {
	msgs, err := a.src.List(ctx)
	if err != nil {
		return fmt.Errorf("listing source messages: %w", err)
	}
	dests, err := a.planFolders(ctx)
	if err != nil {
		return err
	}
	msgs = slices.DeleteFunc(msgs, func(m SourceMessage) bool { _, ok := dests.Dest(m); return !ok })
	a.st.Listed = len(msgs)
	a.run.listed = msgs

	entries, err := a.ledger.Entries(ctx, a.opts.Account)
	if err != nil {
		return fmt.Errorf("reading the ledger: %w", fatal(err))
	}
	if err := a.reconcile(ctx, entries); err != nil {
		return err
	}
	if err := a.settleResent(ctx, entries); err != nil {
		return err
	}

	var todo, toDelete, done []SourceMessage
	var todoBytes int64
	waiting := 0 // done, but DeleteAfter has not passed yet
	defer func() { a.st.DeleteWaiting = waiting }()
	dueBy := a.opts.Now().Add(-a.opts.DeleteAfter)
	listed := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		listed[m.Key] = true
		e, ok := entries[m.Key]
		switch DispositionOf(e, ok) {
		case AlreadyDone:
			if !a.run.copied[m.Key] && !a.run.counted[m.Key] {
				a.st.AlreadyDone++
				a.run.counted[m.Key] = true
			}
			done = append(done, m)
			switch {
			case a.opts.DeleteSource:
				toDelete = append(toDelete, m)
			case a.opts.DeleteAfter > 0 && deleteDue(e, dueBy):
				toDelete = append(toDelete, m)
			case a.opts.DeleteAfter > 0:
				waiting++
			}
		case SkippedEarlier:
			if a.opts.RetrySkipped && !a.run.skipped[m.Key] {
				// --retry-skipped: the admin changed something.
				todo = append(todo, m)
				todoBytes += m.Size
				break
			}
			if !a.run.counted[m.Key] && !a.run.skipped[m.Key] {
				// Skipped for good and reported when it was: listed
				// again, not a failure of this run.
				a.st.SkippedBefore++
				a.st.SkipsBefore = append(a.st.SkipsBefore, Skip{Key: m.Key, Reason: e.Reason})
				a.run.counted[m.Key] = true
			}
		default:
			todo = append(todo, m)
			todoBytes += m.Size
		}
	}
	if a.opts.SameOrigin != nil {
		a.orphans = map[string][]Entry{}
		for k, e := range entries {
			if e.State == StateDone && !listed[k] && e.Digest != "" {
				a.orphans[e.Digest] = append(a.orphans[e.Digest], e)
			}
		}
	}
	a.prog.AccountStarted(a.opts.Account, len(todo), todoBytes)
	a.log.Info("account listed", "account", a.opts.Account, "listed", len(msgs),
		"to_copy", len(todo), "already_done", len(done))

	if a.opts.SyncFlags {
		if err := a.syncFlags(ctx, done, entries); err != nil {
			return err
		}
	}
	var paused error // a pause ends the copy, not the attempt's deletions
	if len(todo) > 0 {
		newlyDone, err := a.copy(ctx, todo, dests)
		switch {
		case a.opts.DeleteSource:
			toDelete = append(toDelete, newlyDone...)
		case a.opts.DeleteAfter > 0:
			// Done just now: their period starts now.
			waiting += len(newlyDone)
		}
		if _, ok := isPaused(err); ok && ctx.Err() == nil {
			paused, err = err, nil
		}
		if err != nil {
			return err
		}
		// A first APPEND given up on earlier in this run may have landed
		// while this attempt sent its copy again.
		if paused == nil {
			if err := a.settleResent(ctx, nil); err != nil {
				return err
			}
		}
	}

	// Every message in toDelete is done in the ledger, committed (synced)
	// before this point: by an earlier run, or by this attempt's copy,
	// which has returned.
	if len(toDelete) > 0 {
		if a.opts.DeleteAfter > 0 {
			a.log.Info("deleting at the source the messages copied at least delete_after ago", "account", a.opts.Account,
				"messages", len(toDelete), "delete_after", a.opts.DeleteAfter, "waiting", waiting)
		}
		if err := a.src.Delete(ctx, toDelete); err != nil {
			return fmt.Errorf("deleting %d copied messages at the source: %w", len(toDelete), err)
		}
		a.run.deletePending = len(toDelete)
		a.opts.Crashpoint("deleted")
	}
	return paused
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

// copy fetches todo in order and appends it in batches. It returns the
// messages it committed as done, also when it stops with an error.
func (a *attempt) copy(ctx context.Context, todo []SourceMessage, dests FolderPlan) ([]SourceMessage, error) {
	caps := a.dst.Capabilities()
	a.limit = NewSizeLimit(a.opts.MaxMessageBytes, caps.AppendLimit)
	a.binary = caps.Binary

	if p, ok := a.src.(Prefetcher); ok {
		// Only a hint: without it fetching is slower, not wrong. Messages
		// skipped by their announced size are never fetched, so not
		// announced either (a batched UID FETCH would download them).
		ahead := todo
		if slices.ContainsFunc(todo, a.skipUnread) {
			ahead = slices.DeleteFunc(slices.Clone(todo), a.skipUnread)
		}
		if err := p.Prefetch(ctx, ahead); err != nil {
			a.log.Warn("cannot fetch ahead; fetching one message at a time", "account", a.opts.Account, "error", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	budget := newByteBudget(a.opts.QueueBytes)
	items := make(chan *item, a.opts.BatchMessages)
	fetchErr := make(chan error, 1)
	go func() {
		defer close(items)
		fetchErr <- a.fetchAll(ctx, todo, dests, budget, items)
	}()

	err := a.writeAll(ctx, items, budget, (len(todo)+a.opts.BatchMessages-1)/a.opts.BatchMessages)
	cancel()
	// Drain so the fetcher can end and release its spools.
	for it := range items {
		it.release()
	}
	ferr := <-fetchErr
	if err == nil {
		// The batcher drained the channel, so the fetcher has finished:
		// its error (a failed fetch, or the run's context) decides.
		err = ferr
	}
	return a.doneMsgs, err
}

// writeAll runs up to DestSessions batch writers on the fetched messages;
// the first uses the attempt's destination and starts at once, the others
// open their own sessions meanwhile (on a distant server each costs several
// round trips) and join when ready; batches is how many batches the copy
// makes at least, and no more sessions than that are opened. Each writer
// commits what its destination confirmed, also when it stops.
func (a *attempt) writeAll(ctx context.Context, items <-chan *item, budget *byteBudget, batches int) error {
	sessions := a.opts.DestSessions
	if a.openDst == nil {
		sessions = 1
	}
	sessions = max(1, min(sessions, batches))
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
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 0 {
				write(i, a.dst)
				return
			}
			d, err := a.openDst(ctx)
			if err != nil {
				// Fewer sessions is slower, not wrong.
				if ctx.Err() == nil {
					a.log.Warn("cannot open another destination session; going on with fewer", "account", a.opts.Account,
						"session", i+1, "error", err)
				}
				return
			}
			defer d.Close()
			write(i, d)
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
	return first
}

// fetchAll reads each message into a spool and hands it to the batcher.
func (a *attempt) fetchAll(ctx context.Context, todo []SourceMessage, dests FolderPlan, budget *byteBudget, out chan<- *item) error {
	for _, m := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if t := a.opts.Traffic; t != nil && !a.skipUnread(m) {
			if err := t.Fetch(ctx, a.opts.ExpectedSize(m)); err != nil {
				return err
			}
		}
		it, err := a.fetchOne(ctx, m)
		if errors.Is(err, ErrMessageGone) && ctx.Err() == nil {
			a.log.Warn("message gone from the source since it was listed", "account", a.opts.Account, "key", m.Key, "error", err)
			a.mu.Lock()
			a.st.Gone++
			a.run.gone[m.Key] = true
			a.mu.Unlock()
			continue
		}
		if err != nil && ClassOf(err) == ClassPerMessage && ctx.Err() == nil {
			// The source will not serve this message (it refused it,
			// after its own retries): it fails on its own, with the
			// reason, and the next run tries it again; the messages
			// after it go on.
			it = &item{msg: m, failReason: err.Error(), entry: Entry{Account: a.opts.Account, Key: m.Key, Size: m.Size}}
			err = nil
		}
		if err != nil {
			return err
		}
		it.mailbox, _ = dests.Dest(m)
		if err := budget.acquire(ctx, it.memBytes); err != nil {
			it.release()
			return err
		}
		select {
		case out <- it:
		case <-ctx.Done():
			budget.release(it.memBytes)
			it.release()
			return ctx.Err()
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
	tooBig := func(reason string) *item {
		return &item{msg: m, skipReason: reason, entry: Entry{Account: a.opts.Account, Key: m.Key, Size: expected}}
	}
	if a.limit.SkipAnnounced(expected) {
		return tooBig(a.limit.AnnouncedReason(expected)), nil
	}
	so := a.opts.Spool
	so.MaxBytes = a.limit.Bytes
	w, err := StartMessage(&so, a.opts.AddHeader, m)
	if errors.Is(err, spool.ErrTooBig) {
		return tooBig(a.limit.StoppedReason(expected)), nil
	}
	if err != nil {
		return nil, fmt.Errorf("spooling message %q: %w", m.Key, fatal(err))
	}
	var dst io.Writer = w
	if t := a.opts.Traffic; t != nil {
		dst = pacedWriter{ctx: ctx, w: w, t: t}
	}
	if _, err := a.src.Fetch(ctx, m, dst); err != nil {
		w.Discard()
		if errors.Is(err, spool.ErrTooBig) {
			return tooBig(a.limit.StoppedReason(expected)), nil
		}
		return nil, fmt.Errorf("fetching message %q: %w", m.Key, err)
	}
	body, err := w.Finish()
	if errors.Is(err, spool.ErrTooBig) {
		return tooBig(a.limit.StoppedReason(expected)), nil
	}
	if err != nil {
		return nil, fmt.Errorf("spooling message %q: %w", m.Key, fatal(err))
	}
	it := &item{msg: m, body: body, memBytes: body.InMemoryBytes()}
	header := mapping.HeaderSection(body.Header())
	it.entry = Entry{
		Account:   a.opts.Account,
		Key:       m.Key,
		Digest:    hex.EncodeToString(digestOf(body)),
		Size:      body.Size(),
		MessageID: mapping.MessageID(header),
	}
	switch {
	case body.HasNUL() && !a.binary:
		it.skipReason = NULReason
	case body.Size() == 0:
		it.skipReason = EmptyReason
	case !a.limit.Allows(body.Size()):
		it.skipReason = a.limit.Reason(body.Size())
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
	it.out = OutgoingMessage{Body: body, Size: body.Size(), Flags: flags, InternalDate: date, Binary: body.HasNUL()}
	if t := a.opts.Traffic; t != nil {
		it.out.Body = pacedBody{ctx: ctx, r: body, t: t}
	}
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

func digestOf(m *spool.Message) []byte {
	d := m.Digest()
	return d[:]
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
