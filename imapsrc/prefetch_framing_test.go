package imapsrc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// framingBodies are the bodies of UIDs 1, 2 and 3 (sequence numbers 1 to 3)
// of the scripted INBOX in the batched-fetch framing tests.
var framingBodies = map[int]string{
	1: "From: a@example.org\r\nSubject: one\r\n\r\nfirst\r\n",
	2: "From: a@example.org\r\nSubject: two\r\n\r\nsecond message\r\n",
	3: "From: a@example.org\r\nSubject: three\r\n\r\nthe third\r\n",
}

// framingList is the plan of the framing tests: UIDs 1 to 3 of INBOX.
func framingList() []pipeline.SourceMessage {
	var out []pipeline.SourceMessage
	for uid := 1; uid <= 3; uid++ {
		m := keyMsg(uint32(uid))
		m.Size = int64(len(framingBodies[uid]))
		out = append(out, m)
	}
	return out
}

// framingReply is the FETCH reply for uid, well formed.
func framingReply(uid int) string { return fetchResp(uid, uid, framingBodies[uid], false) }

// framingBatch is the answer to UID FETCH 1:3 with bad in place of uid's
// reply, then the tagged OK (unless bad is empty, when all are well formed).
func framingBatch(uid int, bad string) string {
	var b strings.Builder
	for u := 1; u <= 3; u++ {
		if u == uid {
			b.WriteString(bad)
			continue
		}
		b.WriteString(framingReply(u))
	}
	b.WriteString("$TAG OK done\r\n")
	return b.String()
}

// garbageAfter is uid's reply with its literal followed by the tail of a
// BYE line instead of ")" CRLF.
func garbageAfter(uid int) string {
	body := framingBodies[uid]
	return fmt.Sprintf("* %d FETCH (UID %d BODY[] {%d}\r\n%sILABLE] going down\r\n", uid, uid, len(body), body)
}

func TestPrefetchReplyFraming(t *testing.T) {
	body2 := framingBodies[2]
	tests := []struct {
		name string
		// fetch answers the UID FETCH commands of the first connection.
		fetch handler
		// failUID is the UID whose Fetch must fail (0: none); the UIDs
		// before it must be served.
		failUID uint32
		// uidFetches is how many UID FETCH commands the first
		// connection must get (0: not checked).
		uidFetches int
		wantText   string // in the error
	}{
		{
			name:       "well formed",
			fetch:      reply(framingBatch(0, "")),
			uidFetches: 1,
		},
		{
			name:     "garbage after the first literal",
			fetch:    reply(framingBatch(1, garbageAfter(1))),
			failUID:  1,
			wantText: `got "I"`,
		},
		{
			name:     "garbage after a middle literal",
			fetch:    reply(framingBatch(2, garbageAfter(2))),
			failUID:  2,
			wantText: `got "I"`,
		},
		{
			name:     "garbage after the last literal",
			fetch:    reply(framingBatch(3, garbageAfter(3))),
			failUID:  3,
			wantText: `got "I"`,
		},
		{
			name: "literal announced too short",
			// The body's last 7 bytes are left over after the literal.
			fetch:    reply(framingBatch(2, fmt.Sprintf("* 2 FETCH (UID 2 BODY[] {%d}\r\n%s)\r\n", len(body2)-7, body2))),
			failUID:  2,
			wantText: "did not parse to its end",
		},
		{
			name: "literal announced too long, swallowing the next reply's start",
			fetch: reply(fmt.Sprintf("* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n", len(framingBodies[1])+len(")\r\n* 2 FETC"), framingBodies[1]) +
				framingReply(2) + framingReply(3) + "$TAG OK done\r\n"),
			failUID:  1,
			wantText: "did not parse to its end",
		},
		{
			name: "literal announced too long, swallowing the start of a BYE",
			fetch: hangUp(framingReply(1) + framingReply(2) +
				fmt.Sprintf("* 3 FETCH (UID 3 BODY[] {%d}\r\n%s)\r\n* BYE [UNAVAILABLE] going down\r\n", len(framingBodies[3])+len(")\r\n* BYE [UNAVA"), framingBodies[3])),
			failUID:  3,
			wantText: `got "I"`,
		},
		{
			// The connection drops inside UID 2's literal: the batch is
			// abandoned unread (go-imap would read the cut literal again
			// while its reader goroutine goes on: a data race).
			name:     "literal cut mid-way",
			fetch:    hangUp(framingReply(1) + fmt.Sprintf("* 2 FETCH (UID 2 BODY[] {%d}\r\n%s", len(body2), body2[:10])),
			failUID:  2,
			wantText: fmt.Sprintf("body ended after 10 of %d bytes", len(body2)),
		},
		{
			name: "NO after part of the batch",
			// The server serves UIDs 1 and 2, refuses the rest, and serves
			// UID 3 when asked for it again.
			fetch: func(tag, line string) (string, bool) {
				if strings.Contains(line, "UID FETCH 3 ") {
					return framingReply(3) + "$TAG OK done\r\n", false
				}
				return framingReply(1) + framingReply(2) + "$TAG NO [UNAVAILABLE] try again\r\n", false
			},
			uidFetches: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startScript(t, func(n int) map[string]handler {
				if n == 0 {
					return map[string]handler{"UID FETCH": tt.fetch}
				}
				return map[string]handler{"UID FETCH": reply(framingBatch(0, ""))}
			})
			s := openSource(t, srv.opts())
			list := framingList()
			if err := s.Prefetch(t.Context(), list); err != nil {
				t.Fatalf("Prefetch: %v", err)
			}
			for i, m := range list {
				uid := uint32(i + 1)
				var b bytes.Buffer
				n, err := s.Fetch(t.Context(), m, &b)
				if uid != tt.failUID {
					if err != nil || b.String() != framingBodies[i+1] || n != int64(b.Len()) {
						t.Fatalf("Fetch(UID %d) = %d, %q, %v; want %q", uid, n, b.String(), err, framingBodies[i+1])
					}
					continue
				}
				if err == nil {
					t.Fatalf("Fetch(UID %d) = %d bytes %q, nil error; want an error", uid, n, b.String())
				}
				t.Logf("Fetch error: %v", err)
				if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
					t.Errorf("Fetch error %v has class %v, want transient", err, c)
				}
				if errors.Is(err, ErrMessageGone) {
					t.Errorf("Fetch error %v says the message is gone", err)
				}
				for _, want := range []string{fmt.Sprintf(`UID %d of "INBOX"`, uid), tt.wantText} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("Fetch error %q does not name %q", err, want)
					}
				}
				// The session is unusable and says so, without blocking.
				if _, err2 := s.Fetch(t.Context(), m, io.Discard); err2 == nil || pipeline.ClassOf(err2) != pipeline.ClassTransient {
					t.Errorf("Fetch again on the broken session: %v, want a transient error", err2)
				}
				break
			}
			if tt.uidFetches > 0 {
				got := 0
				for _, c := range srv.received() {
					if strings.Contains(c, "UID FETCH") {
						got++
					}
				}
				if got != tt.uidFetches {
					t.Errorf("sent %d UID FETCH commands, want %d: %q", got, tt.uidFetches, srv.received())
				}
			}
			if tt.failUID == 0 {
				return
			}
			// The engine reconnects: a new session gets every message whole.
			s2 := openSource(t, srv.opts())
			if err := s2.Prefetch(t.Context(), list); err != nil {
				t.Fatalf("Prefetch after reconnecting: %v", err)
			}
			got := fetchAll(t, s2, list)
			for i, m := range list {
				if got[m.Key] != framingBodies[i+1] {
					t.Errorf("Fetch(UID %d) after reconnecting = %q, want %q", i+1, got[m.Key], framingBodies[i+1])
				}
			}
		})
	}
}

// TestPrefetchConfirmDoesNotWaitForNextBody checks that confirming a reply
// waits only for the next reply to begin: Fetch of UID 1 returns while the
// body of UID 2 is still on its way, so bodies still stream one by one.
func TestPrefetchConfirmDoesNotWaitForNextBody(t *testing.T) {
	body2 := framingBodies[2]
	head := framingReply(1) + fmt.Sprintf("* 2 FETCH (UID 2 BODY[] {%d}\r\n%s", len(body2), body2[:10])
	rest := body2[10:] + ")\r\n" + framingReply(3)
	release := make(chan struct{})
	addr := gatedServer(t, head, rest, release)
	s := openSource(t, Options{Addr: addr, TLS: TLSNone, AllowPlaintext: true, User: "alice", Password: secret.New("s3cret"), IdleTimeout: 5 * time.Second})
	list := framingList()
	if err := s.Prefetch(t.Context(), list); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	type result struct {
		body string
		err  error
	}
	first := make(chan result, 1)
	go func() {
		var b bytes.Buffer
		_, err := s.Fetch(t.Context(), list[0], &b)
		first <- result{b.String(), err}
	}()
	select {
	case r := <-first:
		if r.err != nil || r.body != framingBodies[1] {
			t.Fatalf("Fetch(UID 1) = %q, %v; want %q", r.body, r.err, framingBodies[1])
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Fetch(UID 1) did not return before the body of UID 2 was complete")
	}
	close(release)
	got := fetchAll(t, s, list[1:])
	for i, m := range list[1:] {
		if got[m.Key] != framingBodies[i+2] {
			t.Errorf("Fetch(UID %d) = %q, want %q", i+2, got[m.Key], framingBodies[i+2])
		}
	}
}

// gatedServer is an IMAP server (as far as the test needs) on 127.0.0.1
// that answers UID FETCH with head, then waits for release before sending
// rest and the tagged OK. It returns the address to dial.
func gatedServer(t *testing.T, head, rest string, release <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 UIDPLUS] gated\r\n"); err != nil {
			return
		}
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest2, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			var out string
			switch cmd := strings.ToUpper(rest2); {
			case strings.HasPrefix(cmd, "LOGIN "):
				out = tag + " OK logged in\r\n"
			case strings.HasPrefix(cmd, "EXAMINE "):
				out = "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag + " OK [READ-ONLY] done\r\n"
			case strings.HasPrefix(cmd, "UID FETCH "):
				if _, err := io.WriteString(c, head); err != nil {
					return
				}
				select {
				case <-release:
				case <-stop:
					return
				}
				out = rest + tag + " OK done\r\n"
			case cmd == "LOGOUT":
				_, _ = io.WriteString(c, "* BYE bye\r\n"+tag+" OK done\r\n")
				return
			default:
				out = tag + " BAD unexpected\r\n"
			}
			if _, err := io.WriteString(c, out); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); _ = ln.Close(); <-done })
	return ln.Addr().String()
}
