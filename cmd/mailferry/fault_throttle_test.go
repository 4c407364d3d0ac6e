package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
)

// refusingServer is an in-memory IMAP destination whose APPENDs are refused
// with a scripted reply while refusals remain; it records every message it
// stored.
type refusingServer struct {
	addr string

	mu       sync.Mutex
	refusals []*imap.Error
	stored   [][]byte
	appends  int
}

func startRefusingServer(t *testing.T, user, password string, refusals ...*imap.Error) *refusingServer {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	rs := &refusingServer{refusals: refusals}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &refusingSession{Session: mem.NewSession(), rs: rs}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rs.addr = ln.Addr().String()
	return rs
}

func (rs *refusingServer) messages() [][]byte {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([][]byte(nil), rs.stored...)
}

type refusingSession struct {
	imapserver.Session
	rs *refusingServer
}

func (s *refusingSession) Append(mailbox string, r imap.LiteralReader, opts *imap.AppendOptions) (*imap.AppendData, error) {
	s.rs.mu.Lock()
	s.rs.appends++
	if len(s.rs.refusals) > 0 {
		refusal := s.rs.refusals[0]
		s.rs.refusals = s.rs.refusals[1:]
		s.rs.mu.Unlock()
		return nil, refusal
	}
	s.rs.mu.Unlock()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	data, err := s.Session.Append(mailbox, bytes.NewReader(b), opts)
	if err == nil {
		s.rs.mu.Lock()
		s.rs.stored = append(s.rs.stored, b)
		s.rs.mu.Unlock()
	}
	return data, err
}

// TestFaultThrottled: a destination that throttles (Gmail's [THROTTLED],
// Office 365's "Request is throttled", a rate [LIMIT]) makes mailferry back
// off and go on; the copy completes once, with nothing lost or twice.
//
// The Runner's backoff is fixed (2 s, doubling) and not settable from the
// command line; a suggested backoff in the reply is not honoured yet.
func TestFaultThrottled(t *testing.T) {
	tests := []struct {
		name    string
		refusal *imap.Error
	}{
		{"gmail THROTTLED", &imap.Error{Type: imap.StatusResponseTypeNo, Code: "THROTTLED", Text: "Too many simultaneous operations"}},
		{"office 365 suggested backoff", &imap.Error{Type: imap.StatusResponseTypeNo,
			Text: "Request is throttled. Suggested Backoff Time: 300 milliseconds"}},
		{"rate LIMIT", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many commands, slow down"}},
		{"UNAVAILABLE", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Backend busy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var msgs []pop3fake.Message
			var want [][]byte
			for i, m := range userMessages("t", 9, 0) {
				msgs = append(msgs, pop3fake.Message{UIDL: fmt.Sprintf("u%d", i), Body: m})
				want = append(want, m)
			}
			src := pop3fake.NewStarted(t, pop3fake.Options{Messages: msgs, User: "t", Password: srcPassword})
			dst := startRefusingServer(t, "t", dstPassword, tt.refusal)
			args := []string{"copy", "pop3://t@" + src.Addr() + "?tls=none", "imap://t@" + dst.addr + "?tls=none",
				"--allow-plaintext", "--state", filepath.Join(t.TempDir(), "state.db"), "--json", "--progress", "none",
				"--batch-messages", "4", "--attempts", "3"}
			r := runInProcess(t, passwords, args...)
			a := r.report.Accounts[0]
			if r.code != exitOK || a.Attempts != 2 {
				t.Fatalf("throttled once: exit %d after %d attempts (failed %d %v, error %q); want %d after 2\n%s",
					r.code, a.Attempts, a.Failed, a.Failures, a.Error, exitOK, r.stderr)
			}
			assertSameMultiset(t, want, dst.messages())
		})
	}
}
