package pipeline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// heldSource is a memSource whose Close waits for release, as a distant
// server whose reply to LOGOUT or QUIT is still on its way, then returns
// err. closed is closed once Close has returned.
type heldSource struct {
	*memSource
	release <-chan struct{}
	started chan struct{} // closed when Close begins
	closed  chan struct{}
	err     error

	once, closeOnce sync.Once
}

func newHeldSource(msgs []memMsg, release <-chan struct{}) *heldSource {
	return &heldSource{memSource: &memSource{msgs: msgs, pageSize: 5}, release: release,
		started: make(chan struct{}), closed: make(chan struct{})}
}

func (s *heldSource) Close(commit bool) error {
	s.once.Do(func() { close(s.started) })
	<-s.release
	err := s.memSource.Close(commit)
	s.closeOnce.Do(func() { close(s.closed) })
	return errors.Join(err, s.err)
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// runWithin runs job and fails the test if RunAccount has not returned
// within a minute: it waits for something it must not wait for.
func runWithin(t *testing.T, r *Runner, job Job, what string) *Stats {
	t.Helper()
	type result struct {
		st  *Stats
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := r.RunAccount(context.Background(), job)
		ch <- result{st, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("%s: %v", what, res.err)
		}
		return res.st
	case <-time.After(time.Minute):
		t.Fatalf("%s: RunAccount has not returned after a minute: it waits for the sessions' logout", what)
		return nil
	}
}

// TestCloseBehindWorkerGoesOn: with CloseBehind, an account whose source
// holds its logout reply does not hold its worker: RunAccount returns, the
// next account runs while the first one's session is still closing, and
// WaitClosed waits for that close, bounded by CloseWait and by ctx.
func TestCloseBehindWorkerGoesOn(t *testing.T) {
	ledger := newMemLedger()
	r := &Runner{Ledger: ledger, Backoff: time.Millisecond, CloseBehind: true}
	release := make(chan struct{})
	held := newHeldSource(genMessages(12), release)
	opts := func(id AccountID, name string) Options {
		return Options{Account: id, Name: name, BatchMessages: 5, Linger: time.Millisecond}
	}
	first := runWithin(t, r, Job{Options: opts(alice, "alice"),
		OpenSource:      func(context.Context) (Source, error) { return held, nil },
		OpenDestination: newMemDest().open}, "the account whose logout is held")
	if first.Error != "" || first.Copied != 12 {
		t.Fatalf("the account whose logout is held: copied %d, error %q; want 12, none", first.Copied, first.Error)
	}
	<-held.started
	bobSrc, bobDst := &memSource{msgs: genMessages(3)}, newMemDest()
	next := runWithin(t, r, Job{Options: opts(bob, "bob"),
		OpenSource:      func(context.Context) (Source, error) { return bobSrc, nil },
		OpenDestination: bobDst.open}, "the next account")
	if next.Error != "" || next.Copied != 3 {
		t.Fatalf("the next account: copied %d, error %q; want 3, none", next.Copied, next.Error)
	}
	if isDone(held.closed) {
		t.Fatal("the first account's session closed before the next account ran; the test holds it")
	}

	// The next account's own sessions close behind it too, at once (its
	// source holds nothing): wait for them, so that only the held one is
	// left to count.
	if err := r.closes.waitAccount(context.Background(), accountKey{bob, "bob"}); err != nil {
		t.Fatal(err)
	}

	// Bounded: a logout that does not end is left after CloseWait, and
	// at once when ctx has ended.
	r.CloseWait = time.Millisecond
	if n := r.WaitClosed(context.Background()); n != 1 {
		t.Errorf("WaitClosed with the logout held: %d accounts still closing, want 1", n)
	}
	r.CloseWait = 0
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if n := r.WaitClosed(cancelled); n != 1 {
		t.Errorf("WaitClosed after ctx ended, with the logout held: %d accounts still closing, want 1", n)
	}
	close(release)
	if n := r.WaitClosed(context.Background()); n != 0 {
		t.Errorf("WaitClosed after the logout's reply: %d accounts still closing, want 0", n)
	}
	if !isDone(held.closed) {
		t.Error("WaitClosed returned before the held session had closed")
	}
	if n := ledger.states(alice)[StateDone]; n != 12 {
		t.Errorf("ledger: %d of the first account's messages done, want 12", n)
	}
}

// TestCloseBehindRetryWaitsForItsSessions: an attempt that failed leaves
// its sessions closing behind; the account's next attempt opens new ones
// only once those have closed (a server counting the user's connections
// must not see the account twice).
func TestCloseBehindRetryWaitsForItsSessions(t *testing.T) {
	msgs := genMessages(40)
	h := newHarness(msgs)
	h.runner.CloseBehind = true
	h.opts.Linger = time.Minute
	h.dst.loseAfter = 14 // the first attempt fails after two batches
	release := make(chan struct{})
	held := newHeldSource(msgs, release)
	held.memSource = h.src
	var opens, overlaps atomic.Int32
	go func() {
		<-held.started
		// Long enough for an attempt that did not wait to open.
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	job := Job{Options: h.opts, OpenDestination: h.dst.open,
		OpenSource: func(context.Context) (Source, error) {
			if opens.Add(1) == 1 {
				return held, nil
			}
			if !isDone(held.closed) {
				overlaps.Add(1)
			}
			return h.src, nil
		}}
	st := runWithin(t, h.runner, job, "the account")
	h.runner.WaitClosed(context.Background())
	if st.Error != "" || st.Attempts != 2 {
		t.Fatalf("error %q in %d attempts, want none in 2", st.Error, st.Attempts)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the retry opened a source session while the first attempt's was still logging out")
	}
	if got := len(h.dst.bodies("INBOX")); got != 40 {
		t.Errorf("destination holds %d messages, want 40", got)
	}
}

// TestCloseBehindKeepsDeletionsSynchronous: a source with deletions
// issued closes before RunAccount returns, also with CloseBehind: POP3's
// QUIT commits the deletions, and the ledger records them as deleted
// only once the source confirmed them.
func TestCloseBehindKeepsDeletionsSynchronous(t *testing.T) {
	msgs := genMessages(10)
	h := newHarness(msgs)
	h.runner.CloseBehind = true
	h.opts.DeleteSource = true
	release := make(chan struct{})
	held := newHeldSource(msgs, release)
	held.memSource = h.src
	go func() {
		<-held.started
		// A QUIT whose reply takes a while: RunAccount waits for it.
		time.Sleep(20 * time.Millisecond)
		close(release)
	}()
	st := runWithin(t, h.runner, Job{Options: h.opts, OpenDestination: h.dst.open,
		OpenSource: func(context.Context) (Source, error) { return held, nil }}, "the account")
	if !isDone(held.closed) {
		t.Fatal("RunAccount returned before the source's QUIT, which commits its deletions, was answered")
	}
	if st.Error != "" || st.Copied != 10 || st.Deleted != 10 {
		t.Fatalf("copied %d, deleted %d, error %q; want 10, 10, none", st.Copied, st.Deleted, st.Error)
	}
	if got := h.src.deletedKeys(); len(got) != 10 {
		t.Errorf("the source deleted %d messages for good, want 10", len(got))
	}
	for _, m := range msgs {
		if e := h.ledger.entries[alice][m.key]; e.State != StateGone || e.ReasonClass != ReasonDeleted {
			t.Errorf("ledger entry of %q = %v (%q), want gone as deleted at the source", m.key, e.State, e.ReasonClass)
		}
	}
	if n := h.runner.WaitClosed(context.Background()); n != 0 {
		t.Errorf("WaitClosed: %d accounts still closing, want 0", n)
	}
}

// TestCloseBehindErrorChangesNothing: a logout that fails after a clean
// copy is logged at debug level; the account's outcome stays what the copy
// decided (closed in line, the same error failed the attempt and the
// account was tried again).
func TestCloseBehindErrorChangesNothing(t *testing.T) {
	msgs := genMessages(6)
	h := newHarness(msgs)
	var logs bytes.Buffer
	h.runner.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.runner.CloseBehind = true
	release := make(chan struct{})
	close(release)
	held := newHeldSource(msgs, release)
	held.memSource = h.src
	held.err = errors.New("imapconn: logging out of 127.0.0.1:993: connection reset by peer")
	st := runWithin(t, h.runner, Job{Options: h.opts, OpenDestination: h.dst.open,
		OpenSource: func(context.Context) (Source, error) { return held, nil }}, "the account")
	h.runner.WaitClosed(context.Background())
	if st.Error != "" || st.Attempts != 1 || st.Copied != 6 {
		t.Fatalf("copied %d in %d attempts, error %q; want 6 in 1, none", st.Copied, st.Attempts, st.Error)
	}
	if !strings.Contains(logs.String(), "closing the account's sessions after its copy") ||
		!strings.Contains(logs.String(), "connection reset by peer") {
		t.Errorf("the logout's error is not in the log:\n%s", logs.String())
	}
}
