package pipeline

import (
	"context"
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
	batch []*item
	bytes int64
	// carry is the outcome of the last batch, not yet committed: it is
	// committed in one transaction with the next batch's pending entries,
	// one disk sync per batch instead of two. Losing it in a crash costs
	// nothing but a reconcile: its pending entries are durable.
	carry []Entry
}

// commitCarry commits the outcome still carried. Callers pass a context
// that outlives a cancelled run, so an interrupted run commits what the
// destination confirmed.
func (w *batchWriter) commitCarry(ctx context.Context) error {
	if len(w.carry) == 0 {
		return nil
	}
	if err := w.a.ledger.Put(ctx, w.carry); err != nil {
		return fmt.Errorf("committing %d messages: %w", len(w.carry), fatal(err))
	}
	w.carry = nil
	w.a.opts.Crashpoint("committed")
	return nil
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
		if b.permanent, err = pf.PermanentFlags(ctx, name); err != nil {
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
		var lingerC <-chan time.Time
		if len(w.batch) > 0 {
			lingerC = linger.C
		}
		select {
		case it, ok := <-items:
			if !ok {
				return w.flush(ctx, budget)
			}
			if len(w.batch) > 0 && w.batch[0].mailbox != it.mailbox {
				// One batch, one mailbox: MULTIAPPEND takes one.
				if err := w.flush(ctx, budget); err != nil {
					return err
				}
			}
			if len(w.batch) == 0 {
				linger.Reset(w.a.opts.Linger)
			}
			w.batch = append(w.batch, it)
			w.bytes += it.body.Size()
			if len(w.batch) >= w.a.opts.BatchMessages || w.bytes >= w.a.opts.BatchBytes {
				if err := w.flush(ctx, budget); err != nil {
					return err
				}
			}
		case <-lingerC:
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

// errStopped ends a batch writer whose sibling failed; the sibling's error
// is the one reported.
var errStopped = errors.New("stopped because another destination session failed")

func (w *batchWriter) releaseAll(budget *byteBudget) {
	for _, it := range w.batch {
		budget.release(it.memBytes)
		it.release()
	}
	w.batch, w.bytes = nil, 0
}

// flush sends the current batch. Skipped items are committed with their
// reason; the rest follow the exactly-once protocol of the package doc.
func (w *batchWriter) flush(ctx context.Context, budget *byteBudget) error {
	if len(w.batch) == 0 {
		return nil
	}
	defer w.releaseAll(budget)
	a := w.a
	st := a.st
	box, err := w.box(ctx, w.batch[0].mailbox)
	if err != nil {
		return err
	}

	var send []*item
	var commit []Entry
	rematched := map[string]string{} // new key → the earlier identity's key it replaces
	now := a.opts.Now()
	for _, it := range w.batch {
		if it.skipReason == "" && box.status.AppendLimit > 0 && it.body.Size() > box.status.AppendLimit {
			it.skipReason = fmt.Sprintf("too big: %d bytes, %q accepts at most %d", it.body.Size(), box.status.Name, box.status.AppendLimit)
		}
		if it.skipReason != "" {
			e := it.entry
			e.State, e.Reason, e.Updated = StateSkipped, it.skipReason, now
			commit = append(commit, e)
			continue
		}
		a.mu.Lock()
		old, ok := a.claimOrphan(it)
		a.mu.Unlock()
		if ok {
			// The same message under an earlier identity is already on
			// the destination: record it, send nothing.
			e := it.entry
			e.State, e.DestMailbox, e.DestUIDValidity, e.DestUID, e.Flags, e.Updated, e.DoneAt =
				StateDone, old.DestMailbox, old.DestUIDValidity, old.DestUID, old.Flags, now, old.DoneAt
			if e.DoneAt.IsZero() {
				e.DoneAt = now
			}
			commit = append(commit, e)
			rematched[e.Key] = old.Key
			continue
		}
		kept, dropped := mapping.CleanFlags(it.out.Flags, box.permanent)
		if len(dropped) > 0 {
			a.mu.Lock()
			st.FlagsDropped += len(dropped)
			a.mu.Unlock()
			a.log.Warn("flags not accepted by the destination, dropped", "account", a.opts.Account,
				"key", it.msg.Key, "mailbox", box.status.Name, "flags", dropped)
		}
		it.out.Flags = kept
		it.entry.Flags = kept
		it.entry.State = StatePending
		it.entry.DestMailbox = box.status.Name
		it.entry.DestUIDValidity = box.status.UIDValidity
		it.entry.DestUIDNext = box.nextUID
		it.entry.Updated = now
		send = append(send, it)
	}

	var appendErr error
	if len(send) > 0 {
		pending := make([]Entry, len(send))
		out := make([]OutgoingMessage, len(send))
		for i, it := range send {
			pending[i] = it.entry
			out[i] = it.out
		}
		// Intent first: after a crash from here on, reconcile finds these.
		// The last batch's outcome goes in the same transaction.
		if err := a.ledger.Put(ctx, append(w.carry, pending...)); err != nil {
			return fmt.Errorf("recording %d pending messages: %w", len(pending), fatal(err))
		}
		if len(w.carry) > 0 {
			w.carry = nil
			a.opts.Crashpoint("committed")
		}
		a.opts.Crashpoint("pending")
		var results []AppendResult
		results, appendErr = w.dst.Append(ctx, box.status.Name, out)
		if appendErr == nil {
			a.opts.Crashpoint("appended")
		}
		var notStored []string
		for i, r := range results {
			if i >= len(send) {
				break
			}
			it := send[i]
			e := it.entry
			e.Updated = a.opts.Now()
			if r.Err != nil {
				if ClassOf(r.Err) == ClassPerMessage {
					// Refused for this message only: skipped for good when
					// the server says it can never take it (TOOBIG), else
					// failed, and tried again by the next run.
					e.State, e.Reason = StateFailed, r.Err.Error()
					if isPermanent(r.Err) {
						e.State = StateSkipped
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
				a.log.Warn("flags refused by the destination, message stored without them", "account", a.opts.Account,
					"key", it.msg.Key, "mailbox", box.status.Name, "flags", r.DroppedFlags)
			}
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
			commit = append(commit, e)
		}
		if len(notStored) > 0 {
			if err := a.ledger.Delete(ctx, a.opts.Account, notStored); err != nil {
				return fmt.Errorf("forgetting %d refused messages: %w", len(notStored), fatal(err))
			}
		}
	}

	w.carry = append(w.carry, commit...)
	if appendErr != nil || len(rematched) > 0 {
		// Stopping, or about to forget earlier identities: the outcome
		// must be durable first.
		if err := w.commitCarry(ctx); err != nil {
			return err
		}
	}
	if len(rematched) > 0 {
		old := make([]string, 0, len(rematched))
		for _, k := range rematched {
			old = append(old, k)
		}
		if err := a.ledger.Delete(ctx, a.opts.Account, old); err != nil {
			return fmt.Errorf("forgetting %d earlier identities: %w", len(old), fatal(err))
		}
		a.mu.Lock()
		st.Rematched += len(old)
		a.mu.Unlock()
	}
	byKey := make(map[string]*item, len(w.batch))
	for _, it := range w.batch {
		byKey[it.msg.Key] = it
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range commit {
		it := byKey[e.Key]
		switch e.State {
		case StateDone:
			a.run.copied[e.Key] = true
			a.doneMsgs = append(a.doneMsgs, it.msg)
			if _, ok := rematched[e.Key]; ok {
				a.prog.MessageDone(a.opts.Account, OutcomeFound, e.Size)
				break
			}
			st.Copied++
			st.Bytes += e.Size
			st.countDate(it.dateSource)
			if n := it.body.LineEndsFixed(); n > 0 {
				st.Normalised++
				st.LineEndsFixed += n
			}
			a.prog.MessageDone(a.opts.Account, OutcomeCopied, e.Size)
		case StateSkipped:
			st.skip(e.Key, e.Reason)
			a.run.skipped[e.Key] = true
			a.log.Warn("message skipped", "account", a.opts.Account, "key", e.Key, "reason", e.Reason)
			a.prog.MessageDone(a.opts.Account, OutcomeSkipped, e.Size)
		case StateFailed:
			st.Failures = append(st.Failures, Skip{Key: e.Key, Reason: e.Reason})
			a.log.Warn("message refused by the destination; the next run tries it again",
				"account", a.opts.Account, "key", e.Key, "reason", e.Reason)
			a.prog.MessageDone(a.opts.Account, OutcomeSkipped, e.Size)
		}
		// The error budget: a destination that refuses message after
		// message (a broken mailbox, a policy) stops the account early.
		if e.State == StateFailed {
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

// byteBudget bounds the memory held by fetched messages waiting to be sent.
// One message may always enter an empty budget, however big.
type byteBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
	wake chan struct{}
}

func newByteBudget(max int64) *byteBudget {
	return &byteBudget{max: max, wake: make(chan struct{})}
}

func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
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

// isPermanent reports whether a per-message refusal can never succeed
// (an error with Permanent() true, e.g. imapdst's TOOBIG).
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
