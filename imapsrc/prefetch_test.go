package imapsrc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/pipeline"
)

// prefetchFixture is a server with messages in three folders, some larger
// than the batch's byte bound, and a session that has listed them.
func prefetchFixture(t *testing.T, opts func(*Options)) (*Source, []pipeline.SourceMessage, map[string]string, Options, *bytes.Buffer) {
	t.Helper()
	var msgs []memMessage
	for i := range 30 {
		box := []string{"INBOX", "Archive", "Sent"}[i/10]
		body := fmt.Sprint("message ", i)
		if i%7 == 3 {
			body = strings.Repeat(fmt.Sprintf("large message %d line\r\n", i), 3000) // ~70 KB
		}
		msgs = append(msgs, memMessage{box, crlfMessage(fmt.Sprint("m", i), body), []imap.Flag{imap.FlagSeen}, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)})
	}
	_, o := memServer(t, nil, []string{"Archive", "Sent"}, msgs)
	o.PrefetchMessages, o.PrefetchBytes = 4, 100<<10
	if opts != nil {
		opts(&o)
	}
	var trace bytes.Buffer
	o.Trace = &trace
	s := openSource(t, o)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != len(msgs) {
		t.Fatalf("List returned %d messages, want %d", len(list), len(msgs))
	}
	// Messages were appended in order, so in each folder UID n is the
	// folder's n-th message.
	want := map[string]string{}
	for _, l := range list {
		_, _, uid, err := ParseKey(l.Key)
		if err != nil {
			t.Fatal(err)
		}
		box := slices.Index([]string{"INBOX", "Archive", "Sent"}, l.Mailbox)
		want[l.Key] = msgs[box*10+int(uid)-1].body
	}
	return s, list, want, o, &trace
}

// batchesSent counts the batched UID FETCH commands in a trace.
func batchesSent(trace string) int {
	return strings.Count(trace, "messages; the replies' bodies are not traced]")
}

func TestPrefetchFetchOrders(t *testing.T) {
	tests := []struct {
		name  string
		order func(list []pipeline.SourceMessage) []pipeline.SourceMessage
		// minBatches is the fewest batched FETCHes the order must cause
		// (0: batching is not required).
		minBatches, maxBatches int
	}{
		{
			name:       "as announced",
			order:      func(l []pipeline.SourceMessage) []pipeline.SourceMessage { return l },
			minBatches: 9, maxBatches: 12, // 3 folders × 10 messages, ≤ 4 and ≤ 100 KB per batch
		},
		{
			name: "every other message",
			order: func(l []pipeline.SourceMessage) []pipeline.SourceMessage {
				var out []pipeline.SourceMessage
				for i := 0; i < len(l); i += 2 {
					out = append(out, l[i])
				}
				return out
			},
			minBatches: 3, maxBatches: 12,
		},
		{
			name: "reversed",
			order: func(l []pipeline.SourceMessage) []pipeline.SourceMessage {
				out := slices.Clone(l)
				slices.Reverse(out)
				return out
			},
			maxBatches: 30,
		},
		{
			name: "folders interleaved",
			order: func(l []pipeline.SourceMessage) []pipeline.SourceMessage {
				var out []pipeline.SourceMessage
				for i := range 10 {
					out = append(out, l[i], l[10+i], l[20+i])
				}
				return out
			},
			maxBatches: 30,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, list, want, _, trace := prefetchFixture(t, nil)
			if err := s.Prefetch(t.Context(), list); err != nil {
				t.Fatalf("Prefetch: %v", err)
			}
			for _, m := range tt.order(list) {
				var b bytes.Buffer
				n, err := s.Fetch(t.Context(), m, &b)
				if err != nil {
					t.Fatalf("Fetch(%q): %v", m.Key, err)
				}
				if n != int64(b.Len()) || b.String() != want[m.Key] {
					t.Fatalf("Fetch(%q) = %d bytes, want the %d bytes appended", m.Key, b.Len(), len(want[m.Key]))
				}
			}
			if err := s.Close(false); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := batchesSent(trace.String()); got < tt.minBatches || got > tt.maxBatches {
				t.Errorf("%d batched UID FETCHes, want %d to %d", got, tt.minBatches, tt.maxBatches)
			}
		})
	}
}

func TestPrefetchOffFetchesOneByOne(t *testing.T) {
	s, list, want, _, trace := prefetchFixture(t, func(o *Options) { o.PrefetchMessages = -1 })
	if err := s.Prefetch(t.Context(), list); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	got := fetchAll(t, s, list)
	for k, body := range want {
		if got[k] != body {
			t.Errorf("Fetch(%q) differs from the message appended", k)
		}
	}
	s.Close(false)
	if n := batchesSent(trace.String()); n != 0 {
		t.Errorf("%d batched UID FETCHes with prefetching off, want 0", n)
	}
}

func TestPrefetchExpungedSinceList(t *testing.T) {
	tests := []struct {
		name string
		uids []uint32 // UIDs expunged after List, in every folder
	}{
		{name: "first of a batch", uids: []uint32{1}},
		{name: "middle of a batch", uids: []uint32{2, 3}},
		{name: "last of a batch and of the folder", uids: []uint32{4, 10}},
		{name: "a whole batch", uids: []uint32{5, 6, 7, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, list, want, opts, _ := prefetchFixture(t, nil)
			if err := s.Prefetch(t.Context(), list); err != nil {
				t.Fatalf("Prefetch: %v", err)
			}
			if err := expungeUIDs(t, opts, tt.uids...); err != nil {
				t.Fatalf("expunging %v: %v", tt.uids, err)
			}
			for _, m := range list {
				_, _, uid, _ := ParseKey(m.Key)
				var b bytes.Buffer
				_, err := s.Fetch(t.Context(), m, &b)
				if slices.Contains(tt.uids, uid) {
					if !errors.Is(err, pipeline.ErrMessageGone) || pipeline.ClassOf(err) != pipeline.ClassPerMessage {
						t.Errorf("Fetch(UID %d, expunged) = %v (class %v), want ErrMessageGone, per message", uid, err, pipeline.ClassOf(err))
					}
					continue
				}
				if err != nil {
					t.Fatalf("Fetch(%q): %v", m.Key, err)
				}
				if b.String() != want[m.Key] {
					t.Errorf("Fetch(%q) differs from the message appended", m.Key)
				}
			}
		})
	}
}

func TestPrefetchUIDValidityChanged(t *testing.T) {
	var msgs []memMessage
	for _, box := range []string{"Alpha", "Zulu"} {
		for i := range 6 {
			msgs = append(msgs, memMessage{box, crlfMessage(fmt.Sprint(box, i), "work"), nil, time.Time{}})
		}
	}
	user, opts := memServer(t, nil, []string{"Alpha", "Zulu"}, msgs)
	s := openSource(t, opts)
	list, err := pipeline.ListAll(t.Context(), s) // leaves Zulu selected
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if err := s.Prefetch(t.Context(), list); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	// Another client deletes and recreates Alpha: same name, new
	// UIDVALIDITY, the same UIDs naming other messages.
	if err := user.Delete("Alpha"); err != nil {
		t.Fatal(err)
	}
	if err := user.Create("Alpha", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		body := crlfMessage(fmt.Sprint("other", i), "not the listed one")
		if _, err := user.Append("Alpha", memLiteral{bytes.NewReader([]byte(body)), int64(len(body))}, &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range list {
		var b bytes.Buffer
		_, err = s.Fetch(t.Context(), m, &b)
		if m.Mailbox == "Zulu" {
			if err != nil {
				t.Errorf("Fetch(%q) in the folder left alone: %v", m.Key, err)
			}
			continue
		}
		if !errors.Is(err, ErrUIDValidityChanged) || pipeline.ClassOf(err) != pipeline.ClassTransient {
			t.Errorf("Fetch(%q) after the folder was recreated = %v (class %v), want ErrUIDValidityChanged, transient", m.Key, err, pipeline.ClassOf(err))
		}
		if b.Len() != 0 {
			t.Errorf("Fetch(%q) wrote %d bytes of another message", m.Key, b.Len())
		}
	}
}

func TestPrefetchOtherCommandsEndTheBatch(t *testing.T) {
	s, list, want, _, _ := prefetchFixture(t, nil)
	if err := s.Prefetch(t.Context(), list); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	for i, m := range list {
		if i == 1 {
			// A batch is in flight: List must still get its own replies.
			again, err := pipeline.ListAll(t.Context(), s)
			if err != nil || len(again) != len(list) {
				t.Fatalf("List during a batch = %d messages, %v; want %d", len(again), err, len(list))
			}
		}
		if i == 2 {
			// A writer failing stops that message only.
			if _, err := s.Fetch(t.Context(), m, failingWriter{}); err == nil {
				t.Fatalf("Fetch into a failing writer succeeded")
			}
		}
		var b bytes.Buffer
		if _, err := s.Fetch(t.Context(), m, &b); err != nil {
			t.Fatalf("Fetch(%q): %v", m.Key, err)
		}
		if b.String() != want[m.Key] {
			t.Errorf("Fetch(%q) differs from the message appended", m.Key)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPrefetchCloseDuringBatch(t *testing.T) {
	s, list, _, opts, _ := prefetchFixture(t, func(o *Options) { o.PrefetchMessages = 10; o.PrefetchBytes = 10 << 20 })
	if err := s.Prefetch(t.Context(), list); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	if _, err := s.Fetch(t.Context(), list[0], io.Discard); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(false) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close during a batch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close during a batch did not return")
	}
	if _, err := s.Fetch(t.Context(), list[1], io.Discard); !errors.Is(err, ErrClosed) {
		t.Errorf("Fetch after Close = %v, want ErrClosed", err)
	}
	// The server is fine: a new session reads everything.
	if _, err := pipeline.ListAll(t.Context(), openSource(t, opts)); err != nil {
		t.Errorf("List in a new session: %v", err)
	}
}
