package pipeline

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mailferry/mailferry/mapping"
)

// batchWriter groups fetched messages into batches, one destination
// mailbox per batch, and runs each through record-pending → append → commit.
type batchWriter struct {
	a     *attempt
	dst   Destination // this writer's session
	boxes map[string]*mailboxState
	perm  map[string][]string // PERMANENTFLAGS of mailboxes only flag syncs used
	batch []*item
	bytes int64
	// mem is the memory budget the batch's messages hold (their
	// InMemoryBytes): a batch is sent once it holds half the budget, so
	// that the fetcher reads the next messages into the other half while
	// this batch is written.
	mem int64
	// carry is the outcome of the last batch, not yet committed: it is
	// committed in one transaction with the next batch's pending entries,
	// one disk sync per batch instead of two. Losing it in a crash costs
	// nothing but a reconcile: its pending entries are durable.
	carry []Entry
	// written are the bytes the carried outcome stored (quota usage,
	// committed with it).
	written int64
	// carryDelete are the carried messages to delete at the source: they
	// go to the attempt's toDelete only once the carry is committed, so a
	// message is never deleted at the source while its ledger entry still
	// says pending.
	carryDelete []SourceMessage
	// inflight are the batches sent and not yet finished, oldest first:
	// with an AppendStarter destination the next batch goes out before the
	// previous one's outcome is known (at most two at a time).
	inflight []*sentBatch
}

// sentBatch is a batch whose pending entries are durable and whose
// messages went to the server.
type sentBatch struct {
	items     []*item // the whole batch, released when finished
	box       *mailboxState
	send      []*item                        // the messages sent, in order
	commit    []Entry                        // outcomes known without the server (skipped, rematched)
	rematched map[string]string              // new key → the earlier identity's key it replaces
	matched   map[string]bool                // keys destination matching found there (not sent)
	wait      func() ([]AppendResult, error) // nil: nothing sent
	async     bool                           // wait waits for the server
	sent      time.Time                      // when it went to the server (wall clock, for crawlWatch)
	bytes     int64                          // the bytes sent
}

// commitCarry commits the outcome still carried. Callers pass a context
// that outlives a cancelled run, so an interrupted run commits what the
// destination confirmed.
func (w *batchWriter) commitCarry(ctx context.Context) error {
	if len(w.carry) == 0 {
		w.carried() // its deletions were committed with an earlier carry
		return nil
	}
	if err := w.a.ledger.Commit(ctx, w.a.opts.Account, Changes{Put: w.carry, Usage: w.a.usage(0, w.written)}); err != nil {
		return fmt.Errorf("committing %d messages: %w", len(w.carry), fatal(err))
	}
	w.carried()
	w.a.opts.Crashpoint("committed")
	return nil
}

// carried forgets the carry once it is committed, and hands its messages
// to delete at the source over to the attempt: from now on the ledger says
// they are done.
func (w *batchWriter) carried() {
	w.carry, w.written = nil, 0
	if len(w.carryDelete) == 0 {
		return
	}
	w.a.mu.Lock()
	w.a.toDelete = append(w.a.toDelete, w.carryDelete...)
	w.a.mu.Unlock()
	w.carryDelete = nil
}

// mailboxState is what the batch writer knows of one destination mailbox.
type mailboxState struct {
	status    MailboxStatus
	nextUID   uint32   // lower bound for the UIDs the next batch will get
	permanent []string // PERMANENTFLAGS; nil when unknown (keep all valid flags)
}

// box returns the state of a destination mailbox, creating the mailbox on
// first use.
func (w *batchWriter) box(ctx context.Context, name string) (*mailboxState, error) {
	if b, ok := w.boxes[name]; ok {
		return b, nil
	}
	status, err := w.dst.EnsureMailbox(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("preparing destination mailbox %q: %w", name, err)
	}
	b := &mailboxState{status: status, nextUID: status.UIDNext}
	if pf, ok := w.dst.(PermanentFlagser); ok {
		if b.permanent, err = pf.PermanentFlags(ctx, status.Name); err != nil {
			return nil, fmt.Errorf("reading the flags %q accepts: %w", name, err)
		}
	}
	w.boxes[name] = b
	return b, nil
}

// consume batches items until the channel closes, ctx ends, or stop is
// closed (a sibling writer failed). stop only ends the taking of new items:
// a batch already sent is finished and committed under ctx, so that one
// session's failure does not cut another's APPEND off after the server
// stored it.
func (w *batchWriter) consume(ctx context.Context, stop <-chan struct{}, items <-chan *item, budget *byteBudget) error {
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	defer linger.Stop()
	for {
		if len(w.inflight) > 0 {
			// A batch is with the server: take the next message if one is
			// ready, else collect the outcome (and free its memory for
			// the fetcher) rather than sit idle.
			select {
			case <-ctx.Done():
				w.releaseAll(budget)
				return ctx.Err()
			case <-stop:
				w.releaseAll(budget)
				return errStopped
			default:
			}
			select {
			case it, ok := <-items:
				if err := w.take(ctx, budget, linger, it, ok); err != nil {
					return err
				}
				if !ok {
					return nil
				}
				continue
			default:
			}
			if err := w.finishAll(ctx, budget); err != nil {
				return err
			}
			continue
		}
		var lingerC <-chan time.Time
		var stalled <-chan struct{}
		if len(w.batch) > 0 {
			lingerC, stalled = linger.C, budget.stalled()
		}
		select {
		case it, ok := <-items:
			if err := w.take(ctx, budget, linger, it, ok); err != nil {
				return err
			}
			if !ok {
				return nil
			}
		case <-lingerC:
			if err := w.flush(ctx, budget); err != nil {
				return err
			}
		case <-stalled:
			// Nothing more comes soon (the fetcher waits for memory
			// that messages gathered here may hold, or reads a large
			// message): waiting out the linger would leave the
			// destination idle. Messages queued meanwhile join the
			// batch first.
			select {
			case it, ok := <-items:
				if err := w.take(ctx, budget, linger, it, ok); err != nil {
					return err
				}
				if !ok {
					return nil
				}
				continue
			default:
			}
			if err := w.flush(ctx, budget); err != nil {
				return err
			}
		case <-ctx.Done():
			w.releaseAll(budget)
			return ctx.Err()
		case <-stop:
			w.releaseAll(budget)
			return errStopped
		}
	}
}

// take adds it to the batch, sending the batch when it is full or it is for
// another mailbox; ok false (the channel closed) sends what is left and
// finishes every batch in flight.
func (w *batchWriter) take(ctx context.Context, budget *byteBudget, linger *time.Timer, it *item, ok bool) error {
	if !ok {
		if err := w.flush(ctx, budget); err != nil {
			return err
		}
		return w.finishAll(ctx, budget)
	}
	if it.flags != nil {
		// Flag changes of earlier copies: the session is free once the
		// batches in flight are finished (a message being gathered is not
		// sent yet).
		budget.release(it.memBytes)
		if err := w.finishAll(ctx, budget); err != nil {
			return err
		}
		return w.syncFlags(ctx, it.flags)
	}
	if it.prepare {
		if len(w.batch) > 0 || len(w.inflight) > 0 {
			return nil // busy: the mailbox is readied with its first batch
		}
		return w.prepare(ctx, it.mailbox)
	}
	if len(w.batch) > 0 && w.batch[0].mailbox != it.mailbox {
		// One batch, one mailbox: MULTIAPPEND takes one.
		if err := w.flush(ctx, budget); err != nil {
			budget.release(it.memBytes)
			it.release()
			return err
		}
	}
	if len(w.batch) == 0 {
		linger.Reset(w.a.opts.Linger)
	}
	w.batch = append(w.batch, it)
	w.bytes += it.size()
	w.mem += it.memBytes
	if len(w.batch) >= w.a.opts.BatchMessages || w.bytes >= w.a.opts.BatchBytes || w.mem >= w.a.opts.QueueBytes/2 {
		return w.flush(ctx, budget)
	}
	return nil
}

// prepare readies mailbox before its first batch, as that batch would:
// the destination starts opening what appending needs (AppendPreparer),
// what it already holds there is listed for matching, and its status and
// the flags it keeps are read. The fetcher reads the first bodies
// meanwhile (issue 18: at a 40 ms round trip these two to five round
// trips came after the first batch was gathered).
func (w *batchWriter) prepare(ctx context.Context, mailbox string) error {
	a := w.a
	if a.halted() {
		return nil // interrupted: no new command
	}
	if p, ok := w.dst.(AppendPreparer); ok {
		// The APPEND connection opens meanwhile (a dry run's destination
		// hides it: it never appends).
		p.PrepareAppend(ctx)
	}
	if a.match.wants(mailbox) {
		if _, err := a.match.box(ctx, a, w.dst, mailbox); err != nil {
			return err
		}
	}
	_, err := w.box(ctx, mailbox)
	return err
}

// errStopped ends a batch writer whose sibling failed; the sibling's error
// is the one reported.
var errStopped = errors.New("stopped because another destination session failed")

func (w *batchWriter) releaseAll(budget *byteBudget) {
	for _, it := range w.batch {
		budget.release(it.memBytes)
		it.release()
	}
	w.batch, w.bytes, w.mem = nil, 0, 0
}

// flush sends the current batch, then finishes the batches sent before it:
// with an AppendStarter destination this batch, unless large
// (keepInFlight), is still with the server when flush returns. Skipped items are committed with their reason; the
// rest follow the exactly-once protocol of the package doc.
func (w *batchWriter) flush(ctx context.Context, budget *byteBudget) error {
	if len(w.batch) == 0 {
		return nil
	}
	if w.a.halted() {
		// Interrupted: fetched, never sent, not yet copied.
		w.releaseAll(budget)
		return errStopped
	}
	if err := w.matchExisting(ctx, budget); err != nil {
		w.releaseAll(budget)
		return err
	}
	sb, err := w.start(ctx)
	if sb == nil {
		w.releaseAll(budget)
	} else {
		w.batch, w.bytes, w.mem = nil, 0, 0
		w.inflight = append(w.inflight, sb)
	}
	if err != nil {
		return err
	}
	for len(w.inflight) > 1 || len(w.inflight) == 1 && !w.keepInFlight(w.inflight[0]) {
		if err := w.finishOldest(ctx, budget); err != nil {
			return err
		}
	}
	return nil
}

// keepInFlight says whether sb may stay with the server while the next
// batch is gathered. Pipelining saves the round trips between small
// batches; a batch holding a large share of the memory budget is finished
// at once, so that the fetcher can go on with the memory it frees.
func (w *batchWriter) keepInFlight(sb *sentBatch) bool {
	if !sb.async {
		return false
	}
	var mem int64
	for _, it := range sb.items {
		mem += it.memBytes
	}
	return mem <= w.a.opts.QueueBytes/int64(2*w.a.opts.DestSessions)
}

// finishAll finishes every batch in flight, oldest first, also after one
// of them failed (a session that stops commits what the server confirmed).
// It returns the first error.
func (w *batchWriter) finishAll(ctx context.Context, budget *byteBudget) error {
	var first error
	for len(w.inflight) > 0 {
		if err := w.finishOldest(ctx, budget); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// start records the batch's entries as pending and sends the batch. It
// returns nil when nothing was sent and nothing is to be finished (an
// error before the pending entries were recorded).
func (w *batchWriter) start(ctx context.Context) (*sentBatch, error) {
	a := w.a
	st := a.st
	if t := a.opts.Traffic; t != nil {
		// A pause or a quota stops the batch before anything of it is
		// recorded or sent; its messages are fetched again later.
		if err := t.Send(ctx, w.bytes); err != nil {
			return nil, err
		}
	}
	box, err := w.box(ctx, w.batch[0].mailbox)
	if err != nil {
		return nil, err
	}
	sb := &sentBatch{items: w.batch, box: box, rematched: map[string]string{}, matched: map[string]bool{}}
	now := a.opts.Now()
	send := func(it *item) {
		kept, dropped := mapping.CleanFlags(it.out.Flags, box.permanent)
		if len(dropped) > 0 {
			a.mu.Lock()
			st.FlagsDropped += len(dropped)
			a.mu.Unlock()
			a.log.Warn("flags not accepted by the destination, dropped", "account", a.opts.Name,
				"key", it.msg.Key, "mailbox", box.status.Name, "flags", dropped)
		}
		it.out.Flags = kept
		it.entry.Flags = kept
		it.entry.State = StatePending
		it.entry.DestMailbox = box.status.Name
		it.entry.DestUIDValidity = box.status.UIDValidity
		// A lower bound also while an earlier batch is in flight: its
		// messages get UIDs from here on too.
		it.entry.DestUIDNext = box.nextUID
		it.entry.Updated = now
		sb.send = append(sb.send, it)
	}
	var adopt []Entry
	var adopting []*item
	for _, it := range w.batch {
		if it.failReason != "" {
			e := it.entry
			e.State, e.ReasonClass, e.Reason, e.Updated = StateFailed, ReasonSource, it.failReason, now
			sb.commit = append(sb.commit, e)
			continue
		}
		if limit := a.limit.Tighten(box.status.AppendLimit); it.skipReason == "" && !limit.Allows(it.body.Size()) {
			it.skipReason, it.skipClass = limit.Reason(it.body.Size()), ReasonTooBig
		}
		if it.skipReason != "" {
			e := it.entry
			e.State, e.Reason, e.ReasonClass, e.Updated = StateSkipped, it.skipReason, it.skipClass, now
			sb.commit = append(sb.commit, e)
			continue
		}
		old, ok, err := a.claimEarlier(ctx, it)
		if err != nil {
			return nil, err
		}
		if ok {
			// The same message under an earlier identity is already on
			// the destination: record it, send nothing.
			e := it.entry
			e.State, e.DestMailbox, e.DestUIDValidity, e.DestUID, e.Flags, e.Updated, e.DoneAt =
				StateDone, old.DestMailbox, old.DestUIDValidity, old.DestUID, old.Flags, now, old.DoneAt
			if e.DoneAt.IsZero() {
				e.DoneAt = now
			}
			sb.commit = append(sb.commit, e)
			sb.rematched[e.Key] = old.Key
			continue
		}
		// Destination matching, for a folder the ledger knew nothing of
		// (match.go): only under the name and UIDVALIDITY it was listed
		// by (a dry run's status has none).
		if (it.matchUID != 0 || it.presentUID != 0) && box.status.Name == it.mailbox &&
			(box.status.UIDValidity == it.matchValidity || box.status.UIDValidity == 0) {
			e := it.entry
			e.DestMailbox, e.DestUIDValidity, e.Updated = box.status.Name, it.matchValidity, now
			if it.matchUID != 0 {
				// Its bytes are there: the copy, as if appended (its
				// flags are brought over by the flag sync), once the
				// ledger lets the account adopt it (below).
				e.State, e.ReasonClass, e.DestUID, e.DoneAt = StateDone, ReasonMatched, it.matchUID, now
				adopt, adopting = append(adopt, e), append(adopting, it)
				continue
			}
			// The UID it names: another account's mirror pass leaves
			// that copy (CopiesQuery.OthersOf), the account's stand-in.
			e.State, e.ReasonClass, e.Reason = StateSkipped, ReasonPresent, presentReason(e.MessageID, it.presentUID, box.status.Name)
			e.DestUID = it.presentUID
			sb.commit = append(sb.commit, e)
			continue
		}
		send(it)
	}
	if len(adopt) > 0 {
		refused, err := w.adopt(ctx, adopt)
		if err != nil {
			return nil, err
		}
		for i, it := range adopting {
			if refused[adopt[i].Key] {
				it.matchUID = 0
				send(it)
				continue
			}
			sb.commit = append(sb.commit, adopt[i])
			sb.matched[adopt[i].Key] = true
		}
	}
	if len(sb.send) == 0 {
		return sb, nil
	}
	pending := make([]Entry, len(sb.send))
	out := make([]OutgoingMessage, len(sb.send))
	for i, it := range sb.send {
		pending[i] = it.entry
		out[i] = it.out
		if t := a.opts.Traffic; t != nil {
			out[i].Body = pacedBody{ctx: ctx, r: it.out.Body, t: t}
		}
	}
	// Intent first: after a crash from here on, reconcile finds these.
	// The last batch's outcome goes in the same transaction.
	var read int64
	for _, it := range sb.items {
		read += it.size()
	}
	if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: append(w.carry, pending...), Usage: a.usage(read, w.written)}); err != nil {
		return nil, fmt.Errorf("recording %d pending messages: %w", len(pending), fatal(err))
	}
	committed := len(w.carry) > 0
	w.carried()
	if committed {
		a.opts.Crashpoint("committed")
	}
	a.opts.Crashpoint("pending")
	sb.sent = time.Now()
	for _, o := range out {
		sb.bytes += o.Size
	}
	if as, ok := w.dst.(AppendStarter); ok {
		sb.wait, sb.async = as.StartAppend(ctx, box.status.Name, out), true
	} else {
		results, err := w.dst.Append(ctx, box.status.Name, out)
		sb.wait = func() ([]AppendResult, error) { return results, err }
	}
	return sb, nil
}

// finishOldest waits for the outcome of the oldest batch in flight and
// commits it (with the next batch's pending entries, or now when the
// session stops or earlier identities are forgotten), then releases the
// batch's messages.
func (w *batchWriter) finishOldest(ctx context.Context, budget *byteBudget) error {
	sb := w.inflight[0]
	w.inflight = w.inflight[1:]
	defer func() {
		for _, it := range sb.items {
			budget.release(it.memBytes)
			it.release()
		}
	}()
	a := w.a
	st := a.st
	box := sb.box
	commit := sb.commit
	rematched := sb.rematched

	var appendErr error
	if sb.wait != nil {
		var results []AppendResult
		results, appendErr = sb.wait()
		if appendErr == nil {
			a.opts.Crashpoint("appended")
		}
		dropsDuplicates := w.dst.Capabilities().DropsDuplicates
		// UIDs the server gave this batch's messages, and those confirmKept
		// found for one: no second entry may take one.
		claimed := map[uint32]bool{}
		for i, r := range results {
			if i < len(sb.send) && r.Err == nil && r.UID != 0 && r.UID >= box.nextUID && r.UID >= sb.send[i].entry.DestUIDNext {
				claimed[r.UID] = true
			}
		}
		var notStored []string
		for i, r := range results {
			if i >= len(sb.send) {
				break
			}
			it := sb.send[i]
			e := it.entry
			e.Updated = a.opts.Now()
			if r.Err != nil {
				if ClassOf(r.Err) == ClassPerMessage {
					// Refused for this message only: skipped for good when
					// the server says it can never take it (TOOBIG), else
					// failed, and tried again by the next run.
					e.State, e.Reason, e.ReasonClass = StateFailed, r.Err.Error(), ReasonRefused
					if isPermanent(r.Err) {
						e.State, e.ReasonClass = StateSkipped, ReasonTooBig
						if it.out.Binary && !w.dst.Capabilities().Binary {
							// Its NUL bytes need BINARY, which this
							// session's server does not offer.
							e.ReasonClass = ReasonNUL
						}
					}
					commit = append(commit, e)
				} else {
					// Refused, so not stored; try again in a later run.
					notStored = append(notStored, e.Key)
					if appendErr == nil {
						appendErr = r.Err
					}
				}
				continue
			}
			if len(r.DroppedFlags) > 0 {
				// e.Flags keeps the refused flags: they count as brought
				// over, so that flag sync does not send them again until
				// the source's flags change.
				a.mu.Lock()
				st.FlagsDropped += len(r.DroppedFlags)
				a.mu.Unlock()
				a.log.Warn("flags refused by the destination, message stored without them", "account", a.opts.Name,
					"key", it.msg.Key, "mailbox", box.status.Name, "flags", r.DroppedFlags)
			}
			// A UID below what this mailbox gave before names a message
			// that was there already.
			fresh := r.UID != 0 && r.UID >= box.nextUID && r.UID >= e.DestUIDNext
			e.State, e.DoneAt = StateDone, e.Updated
			e.DestUID = r.UID
			if r.UIDValidity != 0 {
				e.DestUIDValidity = r.UIDValidity
				if r.UIDValidity != box.status.UIDValidity {
					// The mailbox was deleted and created again under us
					// ([TRYCREATE]): its UIDs start afresh, and the next
					// batch's pending entries must say so, or reconcile
					// would look for them above the old mailbox's UIDNEXT.
					box.status.UIDValidity, box.nextUID = r.UIDValidity, 0
				}
			}
			if r.UID >= box.nextUID {
				box.nextUID = r.UID + 1
			}
			if dropsDuplicates && !fresh {
				var err error
				if e, err = w.confirmKept(ctx, e, claimed); err != nil {
					// Unknown: the entry stays pending, for reconcile.
					if appendErr == nil {
						appendErr = err
					}
					continue
				}
			}
			commit = append(commit, e)
		}
		if appendErr == nil && w.dst.Capabilities().CrawlsAtLimit {
			// After the outcome above is known, so that it is committed
			// before the account pauses.
			appendErr = a.crawl.observe(sb.bytes, sb.sent, time.Now())
		}
		if len(notStored) > 0 {
			if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Delete: notStored}); err != nil {
				return fmt.Errorf("forgetting %d refused messages: %w", len(notStored), fatal(err))
			}
		}
	}

	w.carry = append(w.carry, commit...)
	for _, e := range commit {
		if e.State == StateDone {
			if _, ok := rematched[e.Key]; !ok && !sb.matched[e.Key] {
				w.written += e.Size
			}
		}
	}
	if len(rematched) > 0 {
		// The new identities and the end of the earlier ones in one
		// transaction.
		old := make([]string, 0, len(rematched))
		for _, k := range rematched {
			old = append(old, k)
		}
		if err := a.ledger.Commit(ctx, a.opts.Account, Changes{Put: w.carry, Delete: old, Usage: a.usage(0, w.written)}); err != nil {
			return fmt.Errorf("recording %d messages found under earlier identities: %w", len(old), fatal(err))
		}
		w.carried()
		a.opts.Crashpoint("committed")
		a.mu.Lock()
		st.Rematched += len(old)
		a.mu.Unlock()
	}
	if appendErr != nil {
		// Stopping: the outcome must be durable first.
		if err := w.commitCarry(ctx); err != nil {
			return err
		}
	}
	byKey := make(map[string]*item, len(sb.items))
	for _, it := range sb.items {
		byKey[it.msg.Key] = it
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range commit {
		it := byKey[e.Key]
		switch e.State {
		case StateDone:
			a.finished++
			if a.opts.DeleteSource {
				w.carryDelete = append(w.carryDelete, it.msg) // once committed (carried)
			} else if a.opts.DeleteAfter > 0 {
				a.waiting++ // done just now: its period starts now
			}
			if _, ok := rematched[e.Key]; ok {
				a.prog.MessageDone(a.opts.Name, OutcomeFound, e.Size)
				break
			}
			if sb.matched[e.Key] {
				st.Matched++
				a.prog.MessageDone(a.opts.Name, OutcomeFound, e.Size)
				break
			}
			st.Copied++
			st.Bytes += e.Size
			st.countDate(it.dateSource)
			if n := it.body.LineEndsFixed(); n > 0 {
				st.Normalised++
				st.LineEndsFixed += n
			}
			a.prog.MessageDone(a.opts.Name, OutcomeCopied, e.Size)
		case StateSkipped:
			a.finished++
			st.skip(e.Key, e.Reason)
			if e.ReasonClass == ReasonPresent {
				st.ProbablyPresent++
			}
			a.run.skipped[e.Key] = true
			a.log.Warn("message skipped", "account", a.opts.Name, "key", e.Key, "reason", e.Reason)
			a.prog.MessageDone(a.opts.Name, OutcomeSkipped, e.Size)
		case StateFailed:
			st.Failures = append(st.Failures, Skip{Key: e.Key, Reason: e.Reason})
			who := "destination"
			if it.failReason != "" {
				who = "source"
			}
			a.log.Warn("message refused by the "+who+"; the next run tries it again",
				"account", a.opts.Name, "key", e.Key, "reason", e.Reason)
			a.prog.MessageDone(a.opts.Name, OutcomeSkipped, e.Size)
		}
		// The error budget: a destination that refuses message after
		// message (a broken mailbox, a policy) stops the account early.
		if e.State == StateFailed && it.failReason == "" {
			a.run.refusedInARow++
		} else if e.State == StateDone {
			a.run.refusedInARow = 0
		}
	}
	if n := a.opts.MaxRefusedInARow; n > 0 && a.run.refusedInARow >= n && appendErr == nil {
		appendErr = fatal(fmt.Errorf("the destination refused %d messages in a row (the last: %s); stopping this account",
			a.run.refusedInARow, st.Failures[len(st.Failures)-1].Reason))
	}
	if appendErr != nil {
		return fmt.Errorf("appending to %q: %w", box.status.Name, appendErr)
	}
	return nil
}

// confirmKept checks a copy the destination may have dropped
// (Capabilities.DropsDuplicates: Gmail keeps one message per Message-ID
// and answers OK to an APPEND of another, storing nothing), whose
// APPENDUID names a message older than the batch, or is absent. The
// message there must have e's bytes, and e is then done with its UID. A
// message with e's Message-ID and other bytes means the server kept that
// one and not e's: e is skipped for good, with the reason, rather than
// recorded as a copy that is not there. Without an APPENDUID the messages
// with e's Message-ID are read, else those the mailbox received since the
// batch began (e has no Message-ID, or none had it); one with e's bytes
// is e's copy, among the new ones provided no other entry of the batch
// claimed it (claimed). When none is found the server answered OK and
// kept nothing: e is failed with the reason, and the next run sends it again; it is never recorded on
// trust. An error leaves e unknown (pending).
func (w *batchWriter) confirmKept(ctx context.Context, e Entry, claimed map[uint32]bool) (Entry, error) {
	match := func(uids []uint32, unclaimed bool) (uint32, error) {
		for _, uid := range uids {
			if unclaimed && claimed[uid] {
				continue
			}
			sum, size, err := w.dst.Digest(ctx, e.DestMailbox, uid)
			if err != nil {
				return 0, fmt.Errorf("reading UID %d of %q, which the destination may have kept instead of %q: %w", uid, e.DestMailbox, e.Key, err)
			}
			if size == e.Size && hex.EncodeToString(sum[:]) == e.Digest {
				return uid, nil
			}
		}
		return 0, nil
	}
	kept := func(uid uint32) Entry {
		e.DestUID = uid
		claimed[uid] = true
		return e
	}
	uids := []uint32{e.DestUID}
	if e.DestUID == 0 && e.MessageID != "" {
		var err error
		if uids, err = w.dst.SearchMessageID(ctx, e.DestMailbox, e.MessageID); err != nil {
			return e, fmt.Errorf("looking for %q in %q, which the destination may have dropped as a duplicate: %w", e.MessageID, e.DestMailbox, err)
		}
	} else if e.DestUID == 0 {
		uids = nil
	}
	// Under one Message-ID Gmail keeps one message: two entries with the
	// same bytes are both there at its UID.
	uid, err := match(uids, false)
	if err != nil || uid != 0 {
		return kept(uid), err
	}
	if len(uids) > 0 {
		what := "the message it had"
		if e.MessageID != "" {
			what += " with " + e.MessageID
		}
		e.State, e.DoneAt, e.DestUID, e.ReasonClass = StateSkipped, time.Time{}, 0, ReasonRefused
		e.Reason = fmt.Sprintf("refused for good: the destination keeps one message per Message-ID and answered OK, but kept %s (UID %d of %q), whose bytes differ; nothing was stored",
			what, uids[0], e.DestMailbox)
		return e, nil
	}
	// No APPENDUID and nothing under its Message-ID: look among what the
	// mailbox received since the batch began, by size, then bytes.
	since, err := w.dst.ListSince(ctx, e.DestMailbox, e.DestUIDValidity, max(e.DestUIDNext, 1))
	if err != nil {
		return e, fmt.Errorf("looking in %q for %q, which the destination answered OK without a UID: %w", e.DestMailbox, e.Key, err)
	}
	var sized []uint32
	for _, m := range since {
		if m.Size == e.Size && !m.Deleted {
			sized = append(sized, m.UID)
		}
	}
	// Without one, nothing was dropped for being a duplicate: a message
	// with the same bytes at a UID the batch gave another entry is that
	// entry's copy, not this one's.
	if uid, err = match(sized, true); err != nil || uid != 0 {
		return kept(uid), err
	}
	e.State, e.DoneAt, e.DestUID, e.ReasonClass = StateFailed, time.Time{}, 0, ReasonRefused
	e.Reason = fmt.Sprintf("the destination answered OK but holds no message with these bytes in %q (it keeps one message per Message-ID and may have dropped it); not recorded as copied, the next run sends it again",
		e.DestMailbox)
	return e, nil
}

// byteBudget bounds the memory held by fetched messages waiting to be sent.
// One message may always enter an empty budget, however big.
type byteBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
	wake chan struct{}
	// stalls counts why the fetcher hands nothing over for now (an
	// acquire waiting for room, a large message being read); stalledC is
	// closed while there is one.
	stalls   int
	stalledC chan struct{}
}

func newByteBudget(max int64) *byteBudget {
	return &byteBudget{max: max, wake: make(chan struct{}), stalledC: make(chan struct{})}
}

// stalled returns a channel closed while the fetcher will not hand over a
// message soon: the batch writers then send what they gathered rather than
// wait out the linger for more.
func (b *byteBudget) stalled() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stalledC
}

// stall notes a reason for the fetcher to hand nothing over for now, until
// unstall.
func (b *byteBudget) stall() {
	b.mu.Lock()
	b.stallLocked()
	b.mu.Unlock()
}

func (b *byteBudget) stallLocked() {
	if b.stalls++; b.stalls == 1 {
		close(b.stalledC)
	}
}

func (b *byteBudget) unstall() {
	b.mu.Lock()
	if b.stalls--; b.stalls == 0 {
		b.stalledC = make(chan struct{})
	}
	b.mu.Unlock()
}

// acquire takes n bytes of the budget, waiting for room; it returns
// errCounting once stop is closed (a pause or an interrupt ended the copy:
// the writers that would free room may have stopped).
func (b *byteBudget) acquire(ctx context.Context, stop <-chan struct{}, n int64) error {
	waited := false
	defer func() {
		if waited {
			b.unstall()
		}
	}()
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		if !waited {
			// Until room comes, nothing more reaches the writers.
			waited = true
			b.stallLocked()
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return errCounting
		}
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// usage is what a commit adds to the account's quota window: bytes read
// from the source and written to the destination, in the window of now.
func (a *attempt) usage(read, written int64) Usage {
	if read == 0 && written == 0 {
		return Usage{}
	}
	window := QuotaWindow(a.opts.Now())
	if a.opts.QuotaWindow != nil {
		window = a.opts.QuotaWindow()
	}
	return Usage{Window: window, ReadBytes: read, WrittenBytes: written}
}

// QuotaWindow is the start of the quota day holding t: local midnight.
func QuotaWindow(t time.Time) time.Time {
	y, m, d := t.Local().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.Local)
}
