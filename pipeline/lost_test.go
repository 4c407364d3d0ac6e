package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// lostHold is a hold the test loses (a lease this worker could not renew).
type lostHold struct {
	*memHold
	lost chan struct{}
}

func (h *lostHold) Lost() <-chan struct{} { return h.lost }

// fencedLedger refuses every Commit once the hold is lost, as the
// checkpoint's lease does.
type fencedLedger struct {
	*memLedger
	lost chan struct{}
}

func (l fencedLedger) Commit(ctx context.Context, account AccountID, c Changes) error {
	if stopped(l.lost) {
		return fmt.Errorf("the lease was not renewed in time: %w", ErrHoldLost)
	}
	return l.memLedger.Commit(ctx, account, c)
}

// TestLostHoldStopsSending: a hold lost while a batch is with the server
// (Job.Hold, a fleet worker's claim) ends the copy at once: no batch is
// sent after it (one sent as it came at most), the run fails with
// ErrHoldLost (no retry, not "interrupted"), and the runner does not
// release a hold it did not take. "fenced": the checkpoint refuses the
// commits after the loss, so the batch in flight stays pending for the
// worker that takes over. "unfenced": commits still go through (the lease
// counts as lost before the database refuses anything): only Lost stops
// the copy.
func TestLostHoldStopsSending(t *testing.T) {
	for _, fenced := range []bool{true, false} {
		t.Run(map[bool]string{true: "fenced", false: "unfenced"}[fenced], func(t *testing.T) { testLostHold(t, fenced) })
	}
}

func testLostHold(t *testing.T, fenced bool) {
	const n = 40
	h := newHarness(genMessages(n))
	h.opts.BatchMessages = 5
	lost := make(chan struct{})
	if fenced {
		h.runner.Ledger = fencedLedger{memLedger: h.ledger, lost: lost}
	}
	held, err := h.ledger.Hold(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	hold := &lostHold{memHold: held.(*memHold), lost: lost}
	entered := make(chan int, 16)
	release := make(chan struct{})
	open := func(ctx context.Context) (Destination, error) {
		d, _ := h.dst.open(ctx)
		return &gatedSession{Destination: d, entered: entered, release: release}, nil
	}
	var st *Stats
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err = h.runner.RunAccount(context.Background(), Job{Options: h.opts, Hold: hold,
			OpenSource:      func(context.Context) (Source, error) { return h.src, nil },
			OpenDestination: open})
	}()
	inFlight := <-entered
	close(lost)
	time.Sleep(20 * time.Millisecond)
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunAccount did not return 10 s after the hold was lost")
	}
	late := 0
	for len(entered) > 0 {
		inFlight += <-entered
		late++
	}
	if late > 1 {
		t.Errorf("%d batches went to the server after the hold was lost, want at most the one sent as it came", late)
	}
	if !errors.Is(err, ErrHoldLost) || st.ErrorClass == "interrupted" || st.Attempts != 1 {
		t.Fatalf("RunAccount = %v (class %q, %d attempts), want ErrHoldLost after 1 attempt", err, st.ErrorClass, st.Attempts)
	}
	states := h.ledger.states(alice)
	if fenced && (states[StateDone] != 0 || states[StatePending] != inFlight) {
		t.Errorf("ledger states %v, want the %d sent pending and none done", states, inFlight)
	}
	if !fenced && states[StateDone]+states[StatePending] != inFlight {
		t.Errorf("ledger states %v, want the %d sent and nothing more", states, inFlight)
	}
	if got := len(h.dst.bodies("INBOX")); got != inFlight {
		t.Errorf("the destination holds %d messages, want the %d sent", got, inFlight)
	}
	h.ledger.mu.Lock()
	stillHeld := h.ledger.locked[alice]
	h.ledger.mu.Unlock()
	if !stillHeld {
		t.Error("the runner released a hold it was given (Job.Hold): the caller releases it")
	}
}

// stuckSource is a source whose server stopped answering in the middle of
// a fetch: Fetch returns only when its context ends. closed records
// Close, the end of the mail connection.
type stuckSource struct {
	*memSource
	fetching chan struct{}
	closed   chan bool
}

func (s *stuckSource) Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	select {
	case s.fetching <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return 0, ctx.Err()
}

func (s *stuckSource) Close(commit bool) error {
	s.closed <- commit
	return s.memSource.Close(commit)
}

// TestLostHoldClosesConnections: a hold lost while the attempt waits on
// something that never ends by itself (here a source that stopped
// answering; in a fleet, a read of the ledger whose database is out of
// reach) ends the attempt at once and closes the account's sessions,
// without QUIT. A fleet worker's connection slots expire some time after
// its lease is lost (checkpoint/slots.go): a connection still open then
// passes the fleet's cap once another worker takes the slot
// (TestE2EFleetWorkers saw 3 connections at a cap of 2).
func TestLostHoldClosesConnections(t *testing.T) {
	h := newHarness(genMessages(4))
	held, err := h.ledger.Hold(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{})
	hold := &lostHold{memHold: held.(*memHold), lost: lost}
	src := &stuckSource{memSource: h.src, fetching: make(chan struct{}, 1), closed: make(chan bool, 1)}
	var st *Stats
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err = h.runner.RunAccount(context.Background(), Job{Options: h.opts, Hold: hold,
			OpenSource:      func(context.Context) (Source, error) { return src, nil },
			OpenDestination: h.dst.open})
	}()
	select {
	case <-src.fetching:
	case <-time.After(10 * time.Second):
		t.Fatal("the copy never fetched")
	}
	close(lost)
	select {
	case commit := <-src.closed:
		if commit {
			t.Error("the source session was closed with QUIT after the hold was lost, want without")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the source session was still open 10 s after the hold was lost")
	}
	<-done
	if !errors.Is(err, ErrHoldLost) || st.Attempts != 1 {
		t.Fatalf("RunAccount = %v after %d attempts, want ErrHoldLost after 1", err, st.Attempts)
	}
	if n := len(h.dst.bodies("INBOX")); n != 0 {
		t.Errorf("the destination holds %d messages, want none", n)
	}
}
