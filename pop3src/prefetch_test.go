package pop3src

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
	"github.com/mailferry/mailferry/pipeline"
)

func TestTranscriptPipelinedRetr(t *testing.T) {
	c, wait := scripted(t, plain,
		step{reply: "+OK\r\n"},
		// The three commands arrive before any reply is sent.
		step{want: "RETR 1\r\nRETR 2\r\nRETR 3\r\n", reply: "+OK\r\none\r\n.\r\n-ERR [SYS/TEMP] busy\r\n+OK\r\n..three\r\n.\r\n"},
		step{want: "RETR 4\r\nRETR 5\r\n", reply: "+OK\r\nfour\r\n.\r\n+OK\r\nfive\r\n.\r\n"},
		// DELE reads (and discards) the reply to RETR 5 first.
		step{want: "DELE 4\r\n", reply: "+OK\r\n"},
	)
	ctx := context.Background()
	if err := c.SendRetr(ctx, 1, 2, 3); err != nil {
		t.Fatalf("SendRetr(1, 2, 3): %v", err)
	}
	if _, err := c.ReadRetr(ctx, 2, io.Discard); err == nil || c.Pending() != 3 {
		t.Fatalf("ReadRetr(2) before 1 = %v with %d pending, want an error and nothing read", err, c.Pending())
	}
	var buf bytes.Buffer
	if n, err := c.ReadRetr(ctx, 1, &buf); err != nil || buf.String() != "one\r\n" || n != 5 {
		t.Fatalf("ReadRetr(1) = %d, %q, %v; want 5, %q", n, buf.String(), err, "one\r\n")
	}
	_, err := c.ReadRetr(ctx, 2, io.Discard)
	var re *ResponseError
	if !errors.As(err, &re) || re.Command != "RETR 2" || re.Code != "SYS/TEMP" {
		t.Fatalf("ReadRetr(2) error = %v, want the -ERR for RETR 2", err)
	}
	buf.Reset()
	if _, err := c.ReadRetr(ctx, 3, &buf); err != nil || buf.String() != ".three\r\n" {
		t.Fatalf("ReadRetr(3) = %q, %v", buf.String(), err)
	}
	if err := c.SendRetr(ctx, 4, 5); err != nil {
		t.Fatalf("SendRetr(4, 5): %v", err)
	}
	buf.Reset()
	if _, err := c.ReadRetr(ctx, 4, &buf); err != nil || buf.String() != "four\r\n" {
		t.Fatalf("ReadRetr(4) = %q, %v", buf.String(), err)
	}
	if err := c.Dele(ctx, 4); err != nil {
		t.Fatalf("Dele(4) with RETR 5 unread: %v", err)
	}
	if c.Pending() != 0 {
		t.Errorf("Pending() after Dele = %d, want 0", c.Pending())
	}
	wait()
}

// scriptedSource is a Source over a scripted session that has listed n
// messages of the given sizes with UIDLs "u1".."un" and, when pipelining,
// a CAPA with PIPELINING: one UIDL and one LIST listing, with or without.
// script follows the listing.
func scriptedSource(t *testing.T, sizes []int, pipelining bool, maxAhead int, maxBytes int64, script ...step) (*Source, []pipeline.SourceMessage, func()) {
	t.Helper()
	var list, uidl strings.Builder
	for i, size := range sizes {
		fmt.Fprintf(&list, "%d %d\r\n", i+1, size)
		fmt.Fprintf(&uidl, "%d u%d\r\n", i+1, i+1)
	}
	capa := "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
	if pipelining {
		capa = "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n"
	}
	full := []step{
		{reply: "+OK\r\n"},
		{want: "CAPA\r\n", reply: capa},
		{want: "UIDL\r\n", reply: "+OK\r\n" + uidl.String() + ".\r\n"},
		{want: "LIST\r\n", reply: "+OK\r\n" + list.String() + ".\r\n"},
	}
	full = append(full, script...)
	c, wait := scripted(t, plain, full...)
	s := &Source{c: c, log: slog.New(slog.DiscardHandler), server: "scripted", user: "alice"}
	s.setPrefetchLimits(maxAhead, maxBytes)
	msgs, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return s, msgs, wait
}

// retrReply is the reply to RETR of a message whose body is s.
func retrReply(s string) string { return "+OK\r\n" + s + "\r\n.\r\n" }

// TestTranscriptPrefetchWindow proves the window: every RETR of the window
// is written before the first reply is read (the scripted peer reads them
// all before it answers), and each Fetch tops it up.
func TestTranscriptPrefetchWindow(t *testing.T) {
	tests := []struct {
		name     string
		sizes    []int
		maxAhead int
		maxBytes int64
		script   []step
	}{
		{
			name: "message count bounds the window", sizes: []int{10, 10, 10, 10, 10, 10}, maxAhead: 4, maxBytes: 1 << 20,
			script: []step{
				{want: "RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\n", reply: retrReply("m1")},
				{want: "RETR 5\r\n", reply: retrReply("m2")},
				{want: "RETR 6\r\n", reply: retrReply("m3") + retrReply("m4") + retrReply("m5") + retrReply("m6")},
			},
		},
		{
			name: "announced bytes bound the window", sizes: []int{60, 60, 60, 500, 10, 10}, maxAhead: 16, maxBytes: 130,
			script: []step{
				{want: "RETR 1\r\nRETR 2\r\n", reply: retrReply("m1")},
				{want: "RETR 3\r\n", reply: retrReply("m2")},
				// A message bigger than the bound still goes, alone.
				{reply: retrReply("m3")},
				{want: "RETR 4\r\n", reply: retrReply("m4")},
				{want: "RETR 5\r\nRETR 6\r\n", reply: retrReply("m5") + retrReply("m6")},
			},
		},
		{
			name: "the window is topped up a quarter at a time", sizes: []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10},
			maxAhead: 8, maxBytes: 1 << 20,
			script: []step{
				{want: "RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nRETR 5\r\nRETR 6\r\nRETR 7\r\nRETR 8\r\n", reply: retrReply("m1")},
				{reply: retrReply("m2")}, // 7 of 8 in flight: nothing sent
				{want: "RETR 9\r\nRETR 10\r\n", reply: retrReply("m3")},
				{reply: retrReply("m4")},
				{want: "RETR 11\r\nRETR 12\r\n", reply: retrReply("m5") + retrReply("m6") + retrReply("m7") + retrReply("m8") +
					retrReply("m9") + retrReply("m10") + retrReply("m11") + retrReply("m12")},
			},
		},
		{
			name: "no PIPELINING: one RETR at a time", sizes: []int{10, 10, 10}, maxAhead: -1,
			script: []step{
				{want: "RETR 1\r\n", reply: retrReply("m1")},
				{want: "RETR 2\r\n", reply: retrReply("m2")},
				{want: "RETR 3\r\n", reply: retrReply("m3")},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, msgs, wait := scriptedSource(t, tc.sizes, tc.maxAhead >= 0, tc.maxAhead, tc.maxBytes, tc.script...)
			ctx := context.Background()
			if err := s.Prefetch(ctx, msgs); err != nil {
				t.Fatalf("Prefetch: %v", err)
			}
			for i, m := range msgs {
				var buf bytes.Buffer
				if _, err := s.Fetch(ctx, m, &buf); err != nil {
					t.Fatalf("Fetch(%q): %v", m.Key, err)
				}
				if want := fmt.Sprintf("m%d\r\n", i+1); buf.String() != want {
					t.Errorf("Fetch(%q) = %q, want %q", m.Key, buf.String(), want)
				}
			}
			wait()
		})
	}
}

func TestPrefetchNeedsList(t *testing.T) {
	srv := startFake(t, pop3fake.Options{Messages: testMessages(), Pipelining: true})
	s := open(t, plainOptions(srv))
	if err := s.Prefetch(context.Background(), []pipeline.SourceMessage{{Key: "u1"}}); err == nil {
		t.Fatal("Prefetch before List = nil, want an error")
	}
}

// fetchCase is one Fetch of a prefetch scenario: the index of the message
// in the listing, and whether the Fetch must fail.
type fetchCase struct {
	index   int
	wantErr func(error) bool
}

func ok(i int) fetchCase { return fetchCase{index: i} }

// TestSourcePrefetch runs Prefetch and then Fetch calls against the fake
// server with PIPELINING, checking every message byte for byte, and that
// faults and calls out of order leave the session in step.
func TestSourcePrefetch(t *testing.T) {
	msgs := testMessages()
	isResp := func(err error) bool { var re *ResponseError; return errors.As(err, &re) && re.Code == "SYS/TEMP" }
	isErr := func(err error) bool { return err != nil }
	tests := []struct {
		name    string
		faults  pop3fake.Faults
		plan    []int // indexes announced to Prefetch; nil means all
		fetches []fetchCase
		delete  []int // deleted after the fetches, then committed
		usable  bool  // Close(true) works
	}{
		{name: "in order", fetches: []fetchCase{ok(0), ok(1), ok(2), ok(3), ok(4), ok(5)}, usable: true},
		{
			name: "out of order: skip ahead, step back, go on", usable: true,
			fetches: []fetchCase{ok(0), ok(3), ok(1), ok(4), ok(2), ok(5)},
		},
		{
			name: "a message not announced", plan: []int{0, 2, 4}, usable: true,
			fetches: []fetchCase{ok(0), ok(1), ok(2), ok(4), ok(5)},
		},
		{
			name: "DELE with replies in flight", usable: true,
			fetches: []fetchCase{ok(0), ok(1)}, delete: []int{0, 1},
		},
		{
			name: "-ERR mid-window", usable: true,
			faults:  pop3fake.Faults{Err: map[string]string{"RETR 3": "-ERR [SYS/TEMP] disk busy"}},
			fetches: []fetchCase{ok(0), ok(1), {index: 2, wantErr: isResp}, ok(3), ok(4), ok(5)},
		},
		{
			name:    "cut mid-window",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopCut, RetrStopAfter: 20, RetrStopMessage: 3},
			fetches: []fetchCase{ok(0), ok(1), {index: 2, wantErr: isErr}, {index: 3, wantErr: isErr}, {index: 4, wantErr: isErr}},
		},
		{
			name:    "cut right after +OK of the next message",
			faults:  pop3fake.Faults{RetrStop: pop3fake.StopCut, RetrStopAfter: 0, RetrStopMessage: 2},
			fetches: []fetchCase{ok(0), {index: 1, wantErr: isErr}, {index: 2, wantErr: isErr}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
			opts := plainOptions(srv)
			opts.PrefetchMessages = 3 // smaller than the mailbox: the window moves
			s := open(t, opts)
			ctx := context.Background()
			list, err := pipeline.ListAll(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			srv.SetFaults(tc.faults)
			plan := list
			if tc.plan != nil {
				plan = nil
				for _, i := range tc.plan {
					plan = append(plan, list[i])
				}
			}
			if err := s.Prefetch(ctx, plan); err != nil {
				t.Fatalf("Prefetch: %v", err)
			}
			for _, f := range tc.fetches {
				var buf bytes.Buffer
				n, err := s.Fetch(ctx, list[f.index], &buf)
				if f.wantErr != nil {
					if !f.wantErr(err) {
						t.Fatalf("Fetch(%q) = %d bytes, error %v; want a failure", list[f.index].Key, n, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Fetch(%q): %v", list[f.index].Key, err)
				}
				if want := servedBytes(msgs[f.index].Body); !bytes.Equal(buf.Bytes(), want) || n != int64(len(want)) {
					t.Fatalf("Fetch(%q) = %d, %q; want %q", list[f.index].Key, n, shorten(buf.String()), shorten(string(want)))
				}
			}
			var del []pipeline.SourceMessage
			for _, i := range tc.delete {
				del = append(del, list[i])
			}
			if len(del) > 0 {
				if err := s.Delete(ctx, del); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				// The session is still in step: a later Fetch in the plan works.
				var buf bytes.Buffer
				if _, err := s.Fetch(ctx, list[len(list)-1], &buf); err != nil || !bytes.Equal(buf.Bytes(), servedBytes(msgs[len(msgs)-1].Body)) {
					t.Fatalf("Fetch after Delete = %q, %v", shorten(buf.String()), err)
				}
			}
			err = s.Close(true)
			if tc.usable != (err == nil) {
				t.Fatalf("Close(true) = %v, want usable=%v", err, tc.usable)
			}
			var gone []string
			for _, m := range srv.Deleted() {
				gone = append(gone, m.UIDL)
			}
			var want []string
			for _, i := range tc.delete {
				want = append(want, msgs[i].UIDL)
			}
			if !slices.Equal(gone, want) {
				t.Errorf("deleted at QUIT: %v, want %v", gone, want)
			}
		})
	}
}

// TestSourcePrefetchWriterFails: a failing writer mid-window fails only its
// Fetch; the message is read to its end and the window goes on.
func TestSourcePrefetchWriterFails(t *testing.T) {
	msgs := testMessages()
	srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
	s := open(t, plainOptions(srv))
	ctx := context.Background()
	list, err := pipeline.ListAll(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prefetch(ctx, list); err != nil {
		t.Fatal(err)
	}
	for i, m := range list {
		if i == 1 {
			if _, err := s.Fetch(ctx, m, &failingWriter{after: 3}); !errors.As(err, new(*writerError)) {
				t.Fatalf("Fetch(%q) to a failing writer: error %v, want the writer's", m.Key, err)
			}
			continue
		}
		var buf bytes.Buffer
		if _, err := s.Fetch(ctx, m, &buf); err != nil || !bytes.Equal(buf.Bytes(), servedBytes(msgs[i].Body)) {
			t.Fatalf("Fetch(%q) = %q, %v", m.Key, shorten(buf.String()), err)
		}
	}
}

// TestSourcePrefetchCancel: cancelling a Fetch with replies in flight fails
// it and every later one; nothing is committed.
func TestSourcePrefetchCancel(t *testing.T) {
	srv := startFake(t, pop3fake.Options{Messages: testMessages(), Pipelining: true})
	s := open(t, plainOptions(srv))
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prefetch(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	srv.SetFaults(pop3fake.Faults{RetrStop: pop3fake.StopHang, RetrStopAfter: 5, RetrStopMessage: 2})
	if _, err := s.Fetch(context.Background(), list[0], io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Fetch(ctx, list[1], io.Discard); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch on a stalled window: error %v, want context.DeadlineExceeded", err)
	}
	if _, err := s.Fetch(context.Background(), list[2], io.Discard); err == nil {
		t.Fatal("Fetch after a cancelled one succeeded")
	}
	if err := s.Close(true); err == nil {
		t.Error("Close(true) after a cancelled Fetch = nil, want an error")
	}
}

// delayProxy forwards 127.0.0.1 connections to target, delivering each
// chunk delay after it was read, in each direction (a round trip of
// 2×delay), without limiting bandwidth.
func delayProxy(tb testing.TB, target string, delay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go delayCopy(u, c, delay)
			go delayCopy(c, u, delay)
		}
	}()
	return ln.Addr().String()
}

func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// BenchmarkFetchPrefetch fetches 200 messages of 4 KiB on loopback and
// through a 40 ms round trip, one RETR per round trip and with Prefetch, and
// reports msgs/s.
func BenchmarkFetchPrefetch(b *testing.B) {
	var msgs []pop3fake.Message
	for i := range 200 {
		msgs = append(msgs, pop3fake.Message{UIDL: fmt.Sprintf("m%d", i), Body: bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 64)})
	}
	for _, rtt := range []time.Duration{0, 40 * time.Millisecond} {
		for _, prefetch := range []bool{false, true} {
			b.Run(fmt.Sprintf("rtt=%v/prefetch=%v", rtt, prefetch), func(b *testing.B) {
				benchmarkFetch(b, msgs, rtt, prefetch)
			})
		}
	}
}

func benchmarkFetch(b *testing.B, msgs []pop3fake.Message, rtt time.Duration, prefetch bool) {
	b.ReportAllocs()
	srv := pop3fake.NewStarted(b, pop3fake.Options{User: testUser, Password: testPassword, Messages: msgs, Pipelining: true})
	opts := plainOptions(srv)
	if rtt > 0 {
		opts.Addr = delayProxy(b, srv.Addr(), rtt/2)
	}
	// One session for every round: the fake's maildrop lock outlives a
	// closed connection for a moment.
	s, err := Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(false)
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		b.Fatal(err)
	}
	var fetched int
	var elapsed time.Duration
	for b.Loop() {
		start := time.Now()
		if prefetch {
			if err := s.Prefetch(context.Background(), list); err != nil {
				b.Fatal(err)
			}
		}
		for _, m := range list {
			if _, err := s.Fetch(context.Background(), m, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		elapsed += time.Since(start)
		fetched += len(list)
	}
	b.ReportMetric(float64(fetched)/elapsed.Seconds(), "msgs/s")
}
