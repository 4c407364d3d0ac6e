package pipeline

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// overlapSource is a memSource whose Fetch of a message first waits for
// what the test says it needs (beforeFetch), and tells the test of each
// fetch begun.
type overlapSource struct {
	*memSource
	beforeFetch func(ctx context.Context, key string) error
	fetching    func(key string)
}

func (s *overlapSource) Fetch(ctx context.Context, m SourceMessage, w io.Writer) (int64, error) {
	if s.fetching != nil {
		s.fetching(m.Key)
	}
	if s.beforeFetch != nil {
		if err := s.beforeFetch(ctx, m.Key); err != nil {
			return 0, err
		}
	}
	return s.memSource.Fetch(ctx, m, w)
}

// overlapSession is a memDest session whose Append first waits for what
// the test says it needs (beforeAppend), and tells the test what it
// stored.
type overlapSession struct {
	memDestSession
	beforeAppend func(ctx context.Context, keys []string) error
	appended     func(keys []string)
}

func (s *overlapSession) Append(ctx context.Context, mailbox string, msgs []OutgoingMessage) ([]AppendResult, error) {
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		// The test's bodies start "Message-ID: <KEY@".
		b := make([]byte, 16)
		if _, err := m.Body.ReadAt(b, 0); err != nil {
			return nil, err
		}
		keys[i] = string(b[13:16])
	}
	if s.beforeAppend != nil {
		if err := s.beforeAppend(ctx, keys); err != nil {
			return nil, err
		}
	}
	res, err := s.memDestSession.Append(ctx, mailbox, msgs)
	if s.appended != nil {
		s.appended(keys)
	}
	return res, err
}

// events is what the fake source and destination saw: fetches begun and
// messages stored, each with a channel closed when it happens.
type events struct {
	mu   sync.Mutex
	seen map[string]chan struct{}
	// stuck is why a wait did not end, for the failure message.
	stuck []string
}

func (e *events) ch(name string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen = map[string]chan struct{}{}
	}
	c, ok := e.seen[name]
	if !ok {
		c = make(chan struct{})
		e.seen[name] = c
	}
	return c
}

func (e *events) happened(name string) {
	c := e.ch(name)
	e.mu.Lock()
	defer e.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

// await waits for name to happen; ctx ending first means the copy waits
// for something that only this wait would let happen.
func (e *events) await(ctx context.Context, name, why string) error {
	select {
	case <-e.ch(name):
		return nil
	case <-ctx.Done():
		e.mu.Lock()
		defer e.mu.Unlock()
		e.stuck = append(e.stuck, fmt.Sprintf("%s: %q never happened", why, name))
		return ctx.Err()
	}
}

// TestFetchOverlapsAppend shows the batch writers and the fetcher working
// at once on messages that fill the memory budget: each one fetched while
// the batch before it is stored, and no batch waiting out its linger for
// messages the fetcher cannot read until that batch is sent. The fakes
// wait for each other: a copy that reads and writes in turn waits for
// ever, which the test's deadline turns into a failure (no figure of
// speed is asserted).
func TestFetchOverlapsAppend(t *testing.T) {
	body := func(key string, size int) memMsg {
		b := "Message-ID: <" + key + "@test>\r\n\r\n"
		return memMsg{key: key, body: []byte(b + strings.Repeat("x", size-len(b)-2) + "\r\n")}
	}
	tests := []struct {
		name string
		msgs []memMsg
		opts func(*Options)
		// waits sets the fakes' waits on ev.
		waits func(ev *events, src *overlapSource, s *overlapSession)
	}{{
		// A batch is sent once it holds half of the budget, so the
		// fetcher reads the next messages into the other half while it
		// is stored. The fetcher takes room for a message once it has
		// read it, so it reads one past a full budget: the batch ending
		// at message k waits for the fetch of k+2, which a batch
		// holding the whole budget never sees.
		name: "next message read while a batch is stored",
		msgs: []memMsg{body("m01", 20<<10), body("m02", 20<<10), body("m03", 20<<10), body("m04", 20<<10),
			body("m05", 20<<10), body("m06", 20<<10)},
		opts: func(o *Options) { o.QueueBytes, o.Linger = 64<<10, time.Hour },
		waits: func(ev *events, _ *overlapSource, s *overlapSession) {
			s.beforeAppend = func(ctx context.Context, keys []string) error {
				last, _ := strconv.Atoi(keys[len(keys)-1][1:])
				if last+2 > 6 {
					return nil
				}
				next := fmt.Sprintf("m%02d", last+2)
				return ev.await(ctx, "fetch "+next, "storing "+strings.Join(keys, ",")+" waits for a fetch beyond the budget")
			}
		},
	}, {
		// The fetcher waits for room that the batch being gathered
		// holds: the batch goes at once, not after the linger.
		name: "batch sent when the fetcher waits for memory",
		msgs: []memMsg{body("m01", 1500), body("m02", 7<<10), body("m03", 1500)},
		opts: func(o *Options) { o.QueueBytes, o.Linger = 8<<10, time.Hour },
	}, {
		// The fetcher reads a large message: what was gathered before
		// it goes now, not after the linger or behind it.
		name: "batch sent while a large message is read",
		msgs: []memMsg{body("m01", 200), body("m02", 6<<10), body("m03", 200)},
		opts: func(o *Options) { o.BatchBytes, o.Linger = 8<<10, time.Hour },
		waits: func(ev *events, src *overlapSource, _ *overlapSession) {
			src.beforeFetch = func(ctx context.Context, key string) error {
				if key != "m02" {
					return nil
				}
				return ev.await(ctx, "store m01", "reading the large m02 waits for m01 to be stored")
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(tc.msgs)
			tc.opts(&h.opts)
			ev := &events{}
			src := &overlapSource{memSource: h.src, fetching: func(key string) { ev.happened("fetch " + key) }}
			sess := &overlapSession{memDestSession: memDestSession{h.dst}, appended: func(keys []string) {
				for _, k := range keys {
					ev.happened("store " + k)
				}
			}}
			if tc.waits != nil {
				tc.waits(ev, src, sess)
			}
			// Only a guard against waiting for ever: a copy that
			// overlaps finishes in milliseconds.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := h.runner.RunAccount(ctx, Job{
				Options:         h.opts,
				OpenSource:      func(context.Context) (Source, error) { return src, nil },
				OpenDestination: func(context.Context) (Destination, error) { return sess, nil },
			})
			if err != nil {
				ev.mu.Lock()
				defer ev.mu.Unlock()
				t.Fatalf("copy: %v; waits of the fakes that never ended: %q (none: the copy waited on its own, as a batch waiting out its linger)", err, ev.stuck)
			}
			if st.Copied != len(tc.msgs) {
				t.Fatalf("copied %d of %d messages", st.Copied, len(tc.msgs))
			}
			if got := h.ledger.states(alice)[StateDone]; got != len(tc.msgs) {
				t.Fatalf("%d of %d messages done in the ledger", got, len(tc.msgs))
			}
		})
	}
}
