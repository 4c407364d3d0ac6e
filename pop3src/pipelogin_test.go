package pop3src

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

const pipePassword = "pipe-Secret-77"

// capaPipelining is the CAPA before login of a server that offers
// PIPELINING and USER.
const capaPipelining = "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n"

// fakeConversation is one side of a POP3 conversation on a net.Pipe: it
// reads what the client writes, one Write at a time (the client's one
// write of pipelined commands is one chunk), and answers as serve says.
type fakeConversation struct {
	conn   net.Conn
	writes [][]byte // the client's writes, in order
}

// read returns the client's next write, nil once the client has closed.
func (f *fakeConversation) read(t *testing.T) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := f.conn.Read(buf)
	if err != nil {
		return nil
	}
	f.writes = append(f.writes, buf[:n])
	return buf[:n]
}

func (f *fakeConversation) say(s string) { _, _ = io.WriteString(f.conn, s) }

// pipedSource returns a Source whose session runs over a net.Pipe against
// serve (which starts after the greeting, already sent), with its trace in
// trace, and a function that waits for serve to end and returns the
// client's writes.
func pipedSource(t *testing.T, trace *bytes.Buffer, serve func(f *fakeConversation)) (*Source, func() [][]byte) {
	t.Helper()
	cc, sc := net.Pipe()
	f := &fakeConversation{conn: sc}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
		f.say("+OK ready\r\n")
		serve(f)
	}()
	opts := &ClientOptions{AllowPlaintext: true}
	if trace != nil {
		opts.Trace = trace
	}
	c, err := NewClient(cc, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	s := &Source{c: c, log: slog.New(slog.DiscardHandler), server: "piped", user: "alice"}
	return s, func() [][]byte { c.Close(); <-done; return f.writes }
}

// TestPipelinedLogin: with a server that announces PIPELINING (and USER)
// before login, USER, PASS and CAPA go out in one write; every way the
// login can fail gives the error the login one command at a time gives
// (a typed *ResponseError naming USER or PASS, fatal for the engine),
// never the password, in the error or the trace.
func TestPipelinedLogin(t *testing.T) {
	const together = "USER alice\r\nPASS " + pipePassword + "\r\n"
	tests := []struct {
		name string
		// answers holds, for each of the client's writes in turn, what
		// the server says to it, one string a write; after them it waits
		// for the client to close, unless hangUp.
		answers [][]string
		hangUp  bool
		// wantCmd is the command the *ResponseError names; "" for success.
		wantCmd string
		// wantErr is in the error when it is no *ResponseError.
		wantErr string
		usable  bool
		writes  []string
	}{
		{
			name:    "logged in",
			answers: [][]string{{capaPipelining}, {"+OK\r\n+OK logged in\r\n"}},
			usable:  true, writes: []string{"CAPA\r\n", together},
		},
		{
			name:    "the server answers each command late, one at a time",
			answers: [][]string{{capaPipelining}, {"+OK\r\n", "+OK logged in\r\n"}},
			usable:  true, writes: []string{"CAPA\r\n", together},
		},
		{
			name:    "wrong user",
			answers: [][]string{{capaPipelining}, {"-ERR no such user\r\n-ERR no USER given\r\n"}},
			wantCmd: "USER alice", usable: true, writes: []string{"CAPA\r\n", together},
		},
		{
			name:    "wrong password",
			answers: [][]string{{capaPipelining}, {"+OK\r\n-ERR [AUTH] Authentication failed.\r\n"}},
			wantCmd: "PASS ***", usable: true, writes: []string{"CAPA\r\n", together},
		},
		{
			name:    "the server hangs up after refusing USER",
			answers: [][]string{{capaPipelining}, {"-ERR no such user\r\n"}}, hangUp: true,
			wantCmd: "USER alice", writes: []string{"CAPA\r\n", together},
		},
		{
			name:    "the server hangs up without answering USER",
			answers: [][]string{{capaPipelining}, nil}, hangUp: true,
			wantErr: "USER alice: reading reply: unexpected EOF", writes: []string{"CAPA\r\n", together},
		},
		{
			name:    "no PIPELINING: one command at a time, as ever",
			answers: [][]string{{"+OK\r\nUSER\r\nUIDL\r\n.\r\n"}, {"+OK\r\n"}, {"-ERR [AUTH] Authentication failed.\r\n"}},
			wantCmd: "PASS ***", usable: true, writes: []string{"CAPA\r\n", "USER alice\r\n", "PASS " + pipePassword + "\r\n"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trace bytes.Buffer
			s, wait := pipedSource(t, &trace, func(f *fakeConversation) {
				for _, says := range tc.answers {
					f.read(t)
					for _, say := range says {
						f.say(say)
					}
				}
				if !tc.hangUp {
					f.read(t)
				}
			})
			err := s.login(context.Background(), Options{User: "alice", Password: secret.New(pipePassword)})
			usable := s.c.Usable()
			writes := wait()
			var got []string
			for _, w := range writes {
				got = append(got, string(w))
			}
			if !slices.Equal(got, tc.writes) {
				t.Errorf("the client wrote %q, want %q", got, tc.writes)
			}
			if err != nil && strings.Contains(err.Error(), pipePassword) || strings.Contains(trace.String(), pipePassword) {
				t.Errorf("the password shows: error %v, trace:\n%s", err, trace.String())
			}
			if usable != tc.usable {
				t.Errorf("session usable after the login: %v, want %v (error %v)", usable, tc.usable, err)
			}
			var re *ResponseError
			switch {
			case tc.wantCmd == "" && tc.wantErr == "":
				if err != nil {
					t.Fatalf("login: %v", err)
				}
			case tc.wantCmd != "":
				if !errors.As(err, &re) || re.Command != tc.wantCmd || re.ErrorClass() != pipeline.ClassFatal {
					t.Errorf("login error %v (%T), want a fatal -ERR to %q", err, err, tc.wantCmd)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &re) {
					t.Errorf("login error %v, want one saying %q", err, tc.wantErr)
				}
			}
		})
	}
}

// TestPipelinedListing: after a login with a server that announced
// PIPELINING, the CAPA after login, UIDL and LIST go out in one write,
// whatever that CAPA then says; a CAPA after login that calls for UTF8
// (RFC 6856) has the UIDL and LIST replies discarded and both asked again
// after it, so that nothing is listed before UTF8 mode.
func TestPipelinedListing(t *testing.T) {
	const together = "CAPA\r\nUIDL\r\nLIST\r\n"
	for _, tc := range []struct {
		name       string
		capaAfter  string
		pipelining bool
		listing    []string // the client's writes after the login's
	}{
		{"PIPELINING after login", "+OK\r\nUIDL\r\nPIPELINING\r\n.\r\n", true, []string{together}},
		{"PIPELINING gone after login", "+OK\r\nUIDL\r\n.\r\n", false, []string{together}},
		{"no CAPA after login", "-ERR no\r\n", false, []string{together}},
		{"UTF8 after login", "+OK\r\nUIDL\r\nPIPELINING\r\nUTF8\r\n.\r\n", true, []string{together, "UTF8\r\n", "UIDL\r\n", "LIST\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, wait := pipedSource(t, nil, func(f *fakeConversation) {
				f.read(t)
				f.say(capaPipelining)
				f.read(t)
				f.say("+OK\r\n+OK logged in\r\n")
				for {
					w := f.read(t)
					if w == nil {
						return
					}
					for _, cmd := range strings.Split(strings.TrimSuffix(string(w), "\r\n"), "\r\n") {
						switch cmd {
						case "CAPA":
							f.say(tc.capaAfter)
						case "UIDL":
							f.say("+OK\r\n1 u1\r\n2 u2\r\n.\r\n")
						case "LIST":
							f.say("+OK\r\n1 10\r\n2 20\r\n.\r\n")
						default:
							f.say("+OK\r\n")
						}
					}
				}
			})
			ctx := context.Background()
			if err := s.login(ctx, Options{User: "alice", Password: secret.New(pipePassword)}); err != nil {
				t.Fatal(err)
			}
			all, err := pipeline.ListAll(ctx, s)
			if err != nil || len(all) != 2 || all[1].Key != "u2" || all[1].Size != 20 {
				t.Fatalf("listing %+v, %v", all, err)
			}
			if s.pipelining != tc.pipelining {
				t.Errorf("pipelining %v, want %v", s.pipelining, tc.pipelining)
			}
			var got []string
			for _, w := range wait()[2:] {
				got = append(got, string(w))
			}
			if !slices.Equal(got, tc.listing) {
				t.Errorf("after the login the client wrote %q, want %q", got, tc.listing)
			}
		})
	}
}

// TestListAheadDiscarded: a LIST sent with the UIDL (ListSummary told the
// List follows) whose reply the next command does not want is read to
// its end and discarded first, so that the session stays in step.
func TestListAheadDiscarded(t *testing.T) {
	s, wait := pipedSource(t, nil, func(f *fakeConversation) {
		for {
			switch string(f.read(t)) {
			case "":
				return
			case "CAPA\r\nUIDL\r\nLIST\r\n":
				f.say(capaPipelining + "+OK\r\n1 u1\r\n2 u2\r\n.\r\n+OK\r\n1 10\r\n.2 20\r\n.\r\n")
			case "NOOP\r\n":
				f.say("+OK\r\n")
			}
		}
	})
	s.pipelining = true // as a login would have found
	ctx := context.Background()
	if _, ok, err := s.ListSummary(ctx, true); !ok || err != nil {
		t.Fatalf("ListSummary: %v, %v", ok, err)
	}
	// NOOP reads the LIST's reply (a line starting with "." included)
	// before its own.
	if err := s.c.Noop(ctx); err != nil {
		t.Fatalf("NOOP after the LIST sent ahead: %v", err)
	}
	var got []string
	for _, w := range wait() {
		got = append(got, string(w))
	}
	if want := []string{"CAPA\r\nUIDL\r\nLIST\r\n", "NOOP\r\n"}; !slices.Equal(got, want) {
		t.Errorf("the client wrote %q, want %q", got, want)
	}
}
