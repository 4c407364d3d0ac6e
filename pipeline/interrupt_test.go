package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// gatedSession is a destination session whose appends wait at a gate: the
// test learns when a batch reached the server and how many messages it
// holds (entered) and decides when the server answers (release).
type gatedSession struct {
	Destination
	entered chan<- int
	release <-chan struct{}
}

func (g *gatedSession) Append(ctx context.Context, mailbox string, msgs []OutgoingMessage) ([]AppendResult, error) {
	g.entered <- len(msgs)
	<-g.release
	// A body that fails to read fails the APPEND, as on a connection
	// (the fakes read what they can).
	for _, m := range msgs {
		if _, err := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size)); err != nil {
			return nil, fmt.Errorf("reading message body: %w", err)
		}
	}
	return g.Destination.Append(ctx, mailbox, msgs)
}

// pipelinedGate is gatedSession for an AppendStarter: the batch is with
// the server from StartAppend until its wait returns.
type pipelinedGate struct {
	*pipelinedSession
	entered chan<- int
	release <-chan struct{}
}

func (g *pipelinedGate) StartAppend(ctx context.Context, mailbox string, msgs []OutgoingMessage) func() ([]AppendResult, error) {
	wait := g.pipelinedSession.StartAppend(ctx, mailbox, msgs)
	g.entered <- len(msgs)
	return func() ([]AppendResult, error) {
		<-g.release
		return wait()
	}
}

// ctxTraffic is a Traffic whose Write fails once its context ends, as a
// bandwidth limit that has to wait does.
type ctxTraffic struct{ scriptTraffic }

func (c *ctxTraffic) Write(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.scriptTraffic.Write(ctx, n)
}

// TestStopFinishesBatchesInFlight: Runner.Stop (the first Ctrl-C) while a
// batch is with the server lets that batch finish and commit, starts no
// other, and reports the rest as not yet copied, never as failed; nothing
// stays pending. The next run copies exactly the rest. "paced": the bodies
// in flight are told to Traffic under the batch's context, not the
// fetcher's, which the stop cancels (a batch in flight failed with
// "reading message body: context canceled" and stayed pending).
// "delete_source": nothing is deleted at the source after the stop, not
// even the batches it let finish (the listing goes on counting past
// them); the next run deletes them.
func TestStopFinishesBatchesInFlight(t *testing.T) {
	for _, name := range []string{"append", "pipelined", "paced", "delete_source"} {
		pipelined := name == "pipelined"
		t.Run(name, func(t *testing.T) {
			const n = 40
			msgs := genMessages(n)
			h := newHarness(msgs)
			h.opts.BatchMessages = 5
			if name == "paced" {
				h.opts.Traffic = &ctxTraffic{}
			}
			if name == "delete_source" {
				h.opts.DeleteSource, h.src.immediate = true, true
			}
			stop := make(chan struct{})
			h.runner.Stop = stop
			entered := make(chan int, 16)
			release := make(chan struct{})
			open := func(ctx context.Context) (Destination, error) {
				if pipelined {
					h.dst.pipelined = &pipelining{ledger: h.ledger, account: alice}
					d, _ := h.dst.open(ctx)
					return &pipelinedGate{pipelinedSession: d.(*pipelinedSession), entered: entered, release: release}, nil
				}
				d, _ := h.dst.open(ctx)
				return &gatedSession{Destination: d, entered: entered, release: release}, nil
			}
			var src Source = h.src
			if name == "delete_source" {
				// The listing goes on past the stop while the batch in
				// flight commits: its pages would delete it.
				src = slowPages{Source: h.src, wait: 10 * time.Millisecond}
			}
			var st *Stats
			var err error
			done := make(chan struct{})
			go func() {
				defer close(done)
				st, err = h.runner.RunAccount(context.Background(), Job{
					Options:         h.opts,
					OpenSource:      func(context.Context) (Source, error) { return src, nil },
					OpenDestination: open,
				})
			}()
			// The first batch is with the server. It holds 5 messages, or
			// fewer when the fetcher was slower than the batch's linger (a
			// loaded machine, the race detector).
			inFlight := <-entered
			// A pipelining session may send a second one before the first
			// is answered; none goes out while the server holds them.
			time.Sleep(50 * time.Millisecond)
			for len(entered) > 0 {
				inFlight += <-entered
			}
			close(stop)
			// The server answers only after the interrupt.
			time.Sleep(20 * time.Millisecond)
			close(release)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("RunAccount did not return 10 s after Stop")
			}
			// A batch the engine sent as the stop came (it checks before
			// each send) is with the server too; none may follow it.
			late := 0
			for len(entered) > 0 {
				inFlight += <-entered
				late++
			}
			if late > 1 {
				t.Errorf("%d batches went to the server after the stop, want at most the one sent as it came", late)
			}
			if !errors.Is(err, ErrInterrupted) || st.ErrorClass != "interrupted" {
				t.Fatalf("RunAccount = %v (class %q), want ErrInterrupted", err, st.ErrorClass)
			}
			if st.Copied != inFlight || st.Failed != 0 || st.NotYetCopied != n-inFlight || st.Attempts != 1 {
				t.Errorf("copied %d, failed %d, not yet copied %d, attempts %d; want %d, 0, %d, 1",
					st.Copied, st.Failed, st.NotYetCopied, st.Attempts, inFlight, n-inFlight)
			}
			states := h.ledger.states(alice)
			if states[StatePending] != 0 || states[StateDone] != inFlight {
				t.Errorf("ledger states %v, want %d done and none pending", states, inFlight)
			}
			if got := len(h.dst.bodies("INBOX")); got != inFlight {
				t.Errorf("the destination holds %d messages, want the %d of the batches in flight", got, inFlight)
			}
			if rec := h.ledger.runs[len(h.ledger.runs)-1]; rec.Result != "interrupted" || rec.Failed != 0 {
				t.Errorf("run record %+v, want result interrupted with 0 failed", rec)
			}
			if n := len(h.src.committed); n != 0 {
				t.Errorf("%d messages deleted at the source after the stop, want none", n)
			}
			t.Logf("%d messages were with the server at the interrupt", inFlight)
			if pipelined && len(h.dst.pipelined.errs) > 0 {
				t.Errorf("protocol violations: %v", h.dst.pipelined.errs)
			}

			h.runner.Stop = nil
			st = h.run(t)
			if st.Error != "" || st.Copied != n-inFlight || st.AlreadyDone != inFlight {
				t.Fatalf("re-run: copied %d, already done %d, error %q; want %d and %d", st.Copied, st.AlreadyDone, st.Error, n-inFlight, inFlight)
			}
			if got := len(h.dst.bodies("INBOX")); got != n {
				t.Errorf("after the re-run the destination holds %d messages, want %d", got, n)
			}
			if name == "delete_source" && (st.Deleted != n || len(h.src.committed) != n) {
				t.Errorf("re-run deleted %d (source %d), want all %d", st.Deleted, len(h.src.committed), n)
			}
		})
	}
}

// slowPages is a source whose pages take wait each to list.
type slowPages struct {
	Source
	wait time.Duration
}

func (s slowPages) List(ctx context.Context, page func([]SourceMessage) error) error {
	return s.Source.List(ctx, func(msgs []SourceMessage) error {
		time.Sleep(s.wait)
		return page(msgs)
	})
}

// TestStopDuringRetryWait: Stop ends a run that waits to retry an attempt
// at once; it ends interrupted, with nothing counted as failed.
func TestStopDuringRetryWait(t *testing.T) {
	h := newHarness(genMessages(12))
	h.opts.BatchMessages = 5
	h.dst.loseAfter = 5 // the second batch's connection drops
	h.runner.Backoff = time.Hour
	stop := make(chan struct{})
	h.runner.Stop = stop
	// Stop comes once the runner waits for its retry (it logs that it
	// does), not after a fixed sleep: on a loaded machine the first
	// attempt can still be copying after 100 ms.
	waiting := make(chan struct{})
	h.runner.Logger = slog.New(onMessage{"account attempt failed, retrying", waiting, new(sync.Once)})
	done := make(chan *Stats)
	go func() { done <- h.run(t) }()
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt did not fail within 10 s")
	}
	// The retry waits an hour: Stop must end the wait.
	close(stop)
	var st *Stats
	select {
	case st = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the run waiting for its retry did not end 10 s after Stop")
	}
	if st.ErrorClass != "interrupted" || st.Failed != 0 || st.Copied+st.NotYetCopied != 12 {
		t.Errorf("class %q, copied %d, failed %d, not yet copied %d; want interrupted, nothing failed, copied + not yet copied = 12",
			st.ErrorClass, st.Copied, st.Failed, st.NotYetCopied)
	}
}

// onMessage is a slog handler that closes ch the first time a record with
// message msg is logged.
type onMessage struct {
	msg  string
	ch   chan struct{}
	once *sync.Once
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }
