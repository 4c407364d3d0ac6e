package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// The ledger under a scheduled fetch job (DECISIONS #14): a mailbox that
// gets new mail and loses old mail poll after poll must not make the
// checkpoint grow forever. Entries of messages the source no longer lists,
// whose copy was confirmed (done, then gone), are pruned after the
// retention, so entries and bytes level off. Through the real checkpoint,
// on an injected clock: it measures sizes, never time.

// dropSource is a POP3-like maildrop: new mail arrives between polls, a
// deletion is issued during a session and takes effect when the session
// ends cleanly (QUIT).
type dropSource struct {
	mu      sync.Mutex
	keys    []string // in arrival order
	arrived map[string]int
	marked  []string // deleted in this session, applied at Close(true)
	next    int
}

func newDropSource() *dropSource { return &dropSource{arrived: map[string]int{}} }

func (s *dropSource) arrive(n, poll int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next++
		k := fmt.Sprintf("%08X%08X", s.next, 1700000000)
		s.keys = append(s.keys, k)
		s.arrived[k] = poll
	}
}

// expunge deletes, as another mail client would, the messages that
// arrived before poll.
func (s *dropSource) expunge(before int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = slices.DeleteFunc(s.keys, func(k string) bool { return s.arrived[k] < before })
}

func (s *dropSource) body(key string) []byte {
	return fmt.Appendf(nil, "Message-ID: <%s@drop>\r\nSubject: %s\r\n\r\nhello\r\n", key, key)
}

func (s *dropSource) List(_ context.Context, page func([]pipeline.SourceMessage) error) error {
	s.mu.Lock()
	var msgs []pipeline.SourceMessage
	for _, k := range s.keys {
		msgs = append(msgs, pipeline.SourceMessage{Key: k, Size: int64(len(s.body(k)))})
	}
	s.mu.Unlock()
	for start := 0; start < len(msgs); start += pipeline.ListPage {
		if err := page(msgs[start:min(start+pipeline.ListPage, len(msgs))]); err != nil {
			return err
		}
	}
	return nil
}

func (s *dropSource) Fetch(_ context.Context, m pipeline.SourceMessage, w io.Writer) (int64, error) {
	n, err := w.Write(s.body(m.Key))
	return int64(n), err
}

func (s *dropSource) Delete(_ context.Context, msgs []pipeline.SourceMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.marked = append(s.marked, m.Key)
	}
	return nil
}

func (s *dropSource) Close(commit bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if commit {
		s.keys = slices.DeleteFunc(s.keys, func(k string) bool { return slices.Contains(s.marked, k) })
	}
	s.marked = nil
	return nil
}

func (s *dropSource) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

func TestFetchJobLedgerStaysBounded(t *testing.T) {
	const (
		polls     = 48
		perPoll   = 25
		every     = time.Hour
		retention = 12 * time.Hour
	)
	tests := []struct {
		name string
		opts pipeline.Options
		// expungeAfter > 0: another client deletes what is that many
		// polls old; the job itself deletes nothing.
		expungeAfter int
	}{
		{name: "delete_source: the job deletes what it copied", opts: pipeline.Options{DeleteSource: true}},
		{name: "delete_after: the job deletes after 3 hours", opts: pipeline.Options{DeleteAfter: 3 * time.Hour}},
		{name: "another client deletes after 5 polls", expungeAfter: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			path := filepath.Join(t.TempDir(), "ledger.db")
			l, err := checkpoint.Open(ctx, path, &checkpoint.Options{Now: clock, Retention: retention})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			res, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{Endpoint: "drop", KeyScheme: "pop3"})
			if err != nil {
				t.Fatal(err)
			}
			src, dst := newDropSource(), &sinkDest{}
			runner := &pipeline.Runner{Ledger: l, Attempts: 1}
			opts := tt.opts
			opts.Account, opts.Name, opts.Now, opts.Linger = res.Account, "drop", clock, time.Millisecond
			// Entries the ledger may hold at most: the messages the source
			// still lists, plus those gone within the retention, plus one
			// poll's worth gone since the last prune.
			limit := func() int64 { return int64(src.len()) + perPoll*(int64(retention/every)+1) }
			var steady int64 // bytes once the retention is full
			copied := 0
			for poll := range polls {
				src.arrive(perPoll, poll)
				if tt.expungeAfter > 0 {
					src.expunge(poll - tt.expungeAfter)
				}
				st, err := runner.RunAccount(ctx, pipeline.Job{
					Options:         opts,
					OpenSource:      func(context.Context) (pipeline.Source, error) { return src, nil },
					OpenDestination: func(context.Context) (pipeline.Destination, error) { return dst, nil },
				})
				if err != nil || st.Error != "" || st.Copied != perPoll {
					t.Fatalf("poll %d: %v (%q), copied %d, want %d", poll, err, st.Error, st.Copied, perPoll)
				}
				copied += st.Copied
				bytes, entries, err := l.Size(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if entries > limit() {
					t.Fatalf("poll %d: the ledger holds %d entries for %d listed messages; want at most %d (%d copied in all)",
						poll, entries, src.len(), limit(), copied)
				}
				switch {
				case poll == polls/2:
					steady = bytes
				case poll > polls/2 && bytes > steady+steady/4:
					t.Fatalf("poll %d: the ledger takes %d bytes, %d at poll %d: it keeps growing", poll, bytes, steady, polls/2)
				}
				now = now.Add(every)
			}
			bytes, entries, _ := l.Size(ctx)
			t.Logf("%d polls, %d messages copied: %d entries (at most %d), %d bytes (%d at poll %d)",
				polls, copied, entries, limit(), bytes, steady, polls/2)
			if err := l.Check(ctx); err != nil {
				t.Errorf("the ledger after %d polls: %v", polls, err)
			}
		})
	}
}
