package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// batchWriter groups fetched messages into batches and runs each through
// record-pending → append → commit.
type batchWriter struct {
	a       *attempt
	mailbox MailboxStatus
	nextUID uint32 // lower bound for the UIDs the next batch will get
	batch   []*item
	bytes   int64
	done    []SourceMessage
}

func (w *batchWriter) consume(ctx context.Context, items <-chan *item, budget *byteBudget) error {
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
		}
	}
}

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

	var send []*item
	var commit []Entry
	now := a.opts.Now()
	for _, it := range w.batch {
		if it.skipReason != "" {
			e := it.entry
			e.State, e.Reason, e.Updated = StateSkipped, it.skipReason, now
			commit = append(commit, e)
			continue
		}
		it.entry.State = StatePending
		it.entry.DestMailbox = w.mailbox.Name
		it.entry.DestUIDValidity = w.mailbox.UIDValidity
		it.entry.DestUIDNext = w.nextUID
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
		if err := a.ledger.Put(ctx, pending); err != nil {
			return fmt.Errorf("recording %d pending messages: %w", len(pending), fatal(err))
		}
		a.opts.Crashpoint("pending")
		var results []AppendResult
		results, appendErr = a.dst.Append(ctx, w.mailbox.Name, out)
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
					e.State, e.Reason = StateSkipped, r.Err.Error()
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
			e.State = StateDone
			e.DestUID = r.UID
			if r.UIDValidity != 0 {
				e.DestUIDValidity = r.UIDValidity
			}
			if r.UID >= w.nextUID {
				w.nextUID = r.UID + 1
			}
			commit = append(commit, e)
		}
		if len(notStored) > 0 {
			if err := a.ledger.Delete(ctx, a.opts.Account, notStored); err != nil {
				return fmt.Errorf("forgetting %d refused messages: %w", len(notStored), fatal(err))
			}
		}
	}

	if err := a.ledger.Put(ctx, commit); err != nil {
		return fmt.Errorf("committing %d messages: %w", len(commit), fatal(err))
	}
	a.opts.Crashpoint("committed")
	byKey := make(map[string]*item, len(w.batch))
	for _, it := range w.batch {
		byKey[it.msg.Key] = it
	}
	for _, e := range commit {
		it := byKey[e.Key]
		switch e.State {
		case StateDone:
			st.Copied++
			st.Bytes += e.Size
			st.countDate(it.dateSource)
			if n := it.body.LineEndsFixed(); n > 0 {
				st.Normalised++
				st.LineEndsFixed += n
			}
			a.run.copied[e.Key] = true
			w.done = append(w.done, it.msg)
			a.prog.MessageDone(a.opts.Account, OutcomeCopied, e.Size)
		case StateSkipped:
			st.skip(e.Key, e.Reason)
			a.run.skipped[e.Key] = true
			a.log.Warn("message skipped", "account", a.opts.Account, "key", e.Key, "reason", e.Reason)
			a.prog.MessageDone(a.opts.Account, OutcomeSkipped, e.Size)
		}
	}
	if appendErr != nil {
		return fmt.Errorf("appending to %q: %w", w.mailbox.Name, appendErr)
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
