package imapsrc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// handler answers one command line (without CRLF) given its tag. It returns
// what to send, with "$TAG" replaced by the tag, and whether to hang up
// after sending it.
type handler func(tag, line string) (reply string, hangup bool)

// scriptServer is a scripted IMAP server (RFC 3501 syntax only as far as
// the tests need): unlike internal/testkit/imapfake it answers by command name, not
// by exact bytes, so a test states only the responses that matter. Each
// accepted connection gets the handlers conns(n) returns for its number n
// (0, 1, ...), on top of defaults for LOGIN, EXAMINE, SEARCH and LOGOUT.
type scriptServer struct {
	ln    net.Listener
	conns func(n int) map[string]handler
	wg    sync.WaitGroup

	mu       sync.Mutex
	commands []string // every command line received, in order
}

func startScript(t *testing.T, conns func(n int) map[string]handler) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{ln: ln, conns: conns}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, conns(n))
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *scriptServer) opts() Options {
	return Options{Addr: s.ln.Addr().String(), TLS: TLSNone, AllowPlaintext: true, User: "alice", Password: secret.New("s3cret"), IdleTimeout: 5 * time.Second}
}

func (s *scriptServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

func (s *scriptServer) serve(c net.Conn, handlers map[string]handler) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defaults := map[string]handler{
		"LOGIN":   reply("$TAG OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in\r\n"),
		"EXAMINE": reply("* 3 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 10] ok\r\n$TAG OK [READ-ONLY] done\r\n"),
		"LOGOUT":  func(string, string) (string, bool) { return "* BYE bye\r\n$TAG OK done\r\n", true },
	}
	if _, err := io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 UIDPLUS] fake ready\r\n"); err != nil {
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.commands = append(s.commands, line)
		s.mu.Unlock()
		tag, rest, _ := strings.Cut(line, " ")
		name, _, _ := strings.Cut(rest, " ")
		name = strings.ToUpper(name)
		if name == "UID" {
			_, after, _ := strings.Cut(rest, " ")
			sub, _, _ := strings.Cut(after, " ")
			name = "UID " + strings.ToUpper(sub)
		}
		h := handlers[name]
		if h == nil {
			h = defaults[name]
		}
		if h == nil {
			h = reply("$TAG BAD unexpected command\r\n")
		}
		out, hangup := h(tag, line)
		if _, err := io.WriteString(c, strings.ReplaceAll(out, "$TAG", tag)); err != nil || hangup {
			return
		}
	}
}

func reply(s string) handler { return func(string, string) (string, bool) { return s, false } }

func hangUp(s string) handler { return func(string, string) (string, bool) { return s, true } }

// fetchResp is an untagged FETCH response with the body as a literal; uid
// goes before or after the body.
func fetchResp(seq, uid int, body string, uidAfter bool) string {
	if uidAfter {
		return fmt.Sprintf("* %d FETCH (BODY[] {%d}\r\n%s UID %d)\r\n", seq, len(body), body, uid)
	}
	return fmt.Sprintf("* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n", seq, uid, len(body), body)
}

const scriptBody = "From: a@example.org\r\nSubject: scripted\r\n\r\nhello\r\n"

func keyMsg(uid uint32) pipeline.SourceMessage {
	return pipeline.SourceMessage{Key: FormatKey("INBOX", 7, uid), Mailbox: "INBOX"}
}

// wellBehaved is a server that serves UID 5 as message 1 with UID first.
func wellBehaved() map[string]handler {
	return map[string]handler{
		"UID FETCH": reply(fetchResp(1, 5, scriptBody, false) + "$TAG OK done\r\n"),
	}
}

func TestFetchUIDAfterBody(t *testing.T) {
	// The server puts UID after BODY[]: go-imap beta.8 drops such a reply
	// to a UID FETCH. The message must still arrive, by sequence number.
	srv := startScript(t, func(int) map[string]handler {
		return map[string]handler{
			"UID FETCH": reply(fetchResp(1, 5, scriptBody, true) + "$TAG OK done\r\n"),
			"SEARCH": func(tag, line string) (string, bool) {
				switch {
				case strings.HasSuffix(line, "UID 5"):
					return "* SEARCH 1\r\n$TAG OK done\r\n", false
				case strings.HasSuffix(line, "UID 6"):
					return "* SEARCH 2\r\n$TAG OK done\r\n", false
				}
				return "* SEARCH\r\n$TAG OK done\r\n", false
			},
			"FETCH": func(tag, line string) (string, bool) {
				switch {
				case strings.HasPrefix(line, tag+" FETCH 1 "):
					return fetchResp(1, 5, scriptBody, true) + "$TAG OK done\r\n", false
				case strings.HasPrefix(line, tag+" FETCH 2 "):
					return fetchResp(2, 6, scriptBody+"two\r\n", true) + "$TAG OK done\r\n", false
				}
				return "$TAG OK nothing\r\n", false
			},
		}
	})
	s := openSource(t, srv.opts())
	var b bytes.Buffer
	n, err := s.Fetch(t.Context(), keyMsg(5), &b)
	if err != nil || b.String() != scriptBody || n != int64(len(scriptBody)) {
		t.Fatalf("Fetch UID 5 = %d, %q, %v; want %q", n, b.String(), err, scriptBody)
	}
	// From now on bodies are fetched by sequence number straight away.
	b.Reset()
	if _, err := s.Fetch(t.Context(), keyMsg(6), &b); err != nil || b.String() != scriptBody+"two\r\n" {
		t.Fatalf("Fetch UID 6 = %q, %v", b.String(), err)
	}
	// A UID the server does not have is gone, per message.
	_, err = s.Fetch(t.Context(), keyMsg(9), io.Discard)
	if !errors.Is(err, ErrMessageGone) || pipeline.ClassOf(err) != pipeline.ClassPerMessage {
		t.Errorf("Fetch UID 9: %v (class %v), want ErrMessageGone, per message", err, pipeline.ClassOf(err))
	}
	uidFetches := 0
	for _, c := range srv.received() {
		if strings.Contains(c, "UID FETCH") {
			uidFetches++
		}
	}
	if uidFetches != 1 {
		t.Errorf("sent %d UID FETCH commands, want 1 (then FETCH by sequence number): %q", uidFetches, srv.received())
	}
}

func TestFetchBrokenServers(t *testing.T) {
	tests := []struct {
		name     string
		fetch    handler
		wantText string // in the error
	}{
		{
			name:     "literal cut mid-way",
			fetch:    hangUp(fmt.Sprintf("* 1 FETCH (UID 5 BODY[] {%d}\r\n%s", len(scriptBody), scriptBody[:20])),
			wantText: fmt.Sprintf("body ended after 20 of %d bytes", len(scriptBody)),
		},
		{
			name:     "connection closed after the body, before OK",
			fetch:    hangUp(fetchResp(1, 5, scriptBody, false)),
			wantText: "EOF",
		},
		{
			name:     "unknown untagged response after the body",
			fetch:    reply(fetchResp(1, 5, scriptBody, false) + "* XAPPLEPUSHSERVICE aps-version 2\r\n$TAG OK done\r\n"),
			wantText: "XAPPLEPUSHSERVICE",
		},
		{
			name:     "unknown untagged response before the body",
			fetch:    reply("* XGMEXT 1\r\n" + fetchResp(1, 5, scriptBody, false) + "$TAG OK done\r\n"),
			wantText: "XGMEXT",
		},
		{
			name:     "unknown FETCH item",
			fetch:    reply("* 1 FETCH (X-GM-LABELS (\\Inbox) UID 5 BODY[] {5}\r\nhello)\r\n$TAG OK done\r\n"),
			wantText: "X-GM-LABELS",
		},
		{
			name:     "BYE mid-fetch",
			fetch:    hangUp("* BYE [UNAVAILABLE] server shutting down\r\n"),
			wantText: "server shutting down",
		},
		{
			// The literal takes ")\r\n* BYE g" as body bytes, as its
			// length says: what is left is no BYE but a malformed reply
			// (internal/imapbye follows the framing).
			name:     "literal announced too long, swallowing the start of a BYE",
			fetch:    hangUp(fmt.Sprintf("* 1 FETCH (UID 5 BODY[] {%d}\r\n%s)\r\n* BYE going away\r\n", len(scriptBody)+10, scriptBody)),
			wantText: `got "o"`,
		},
	}
	for _, tt := range tests {
		// A writer that reads for itself (io.ReaderFrom, as the spool
		// does) is given the literal; any other is copied to.
		for _, sink := range []string{"reads for itself", "written to"} {
			t.Run(tt.name+", "+sink, func(t *testing.T) {
				testFetchBroken(t, tt.fetch, tt.wantText, sink == "reads for itself")
			})
		}
	}
}

// writeOnly hides its writer's io.ReaderFrom.
type writeOnly struct{ w io.Writer }

func (w writeOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

func testFetchBroken(t *testing.T, fetch handler, wantText string, readerFrom bool) {
	t.Helper()
	srv := startScript(t, func(n int) map[string]handler {
		if n == 0 {
			return map[string]handler{"UID FETCH": fetch}
		}
		return wellBehaved()
	})
	s := openSource(t, srv.opts())
	var b bytes.Buffer
	var sink io.Writer = &b
	if !readerFrom {
		sink = writeOnly{&b}
	}
	n, err := s.Fetch(t.Context(), keyMsg(5), sink)
	if err == nil {
		t.Fatalf("Fetch = %d bytes %q, nil error; want an error", n, b.String())
	}
	t.Logf("Fetch error: %v", err)
	if c := pipeline.ClassOf(err); c != pipeline.ClassTransient {
		t.Errorf("Fetch error %v has class %v, want transient", err, c)
	}
	if errors.Is(err, ErrMessageGone) {
		t.Errorf("Fetch error %v says the message is gone", err)
	}
	if !strings.Contains(err.Error(), wantText) {
		t.Errorf("Fetch error %q does not name %q", err, wantText)
	}
	// The session is unusable and says so, without blocking.
	if _, err2 := s.Fetch(t.Context(), keyMsg(5), io.Discard); err2 == nil || pipeline.ClassOf(err2) != pipeline.ClassTransient {
		t.Errorf("second Fetch on the broken session: %v, want a transient error", err2)
	}
	// The engine reconnects: a new session gets the whole message.
	s2 := openSource(t, srv.opts())
	b.Reset()
	if _, err := s2.Fetch(t.Context(), keyMsg(5), sink); err != nil || b.String() != scriptBody {
		t.Errorf("Fetch after reconnecting = %q, %v; want %q", b.String(), err, scriptBody)
	}
}

// failAfter takes n bytes, then fails every write.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// failAfterReader is failAfter reading for itself, as the spool does.
type failAfterReader struct{ failAfter }

func (f *failAfterReader) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writeOnly{&f.failAfter}, r)
}

// TestFetchWriterFails: when the writer fails mid-body (the spool at the
// size limit), Fetch returns its error, not a connection error, and the
// session goes on: the rest of the body is read off the connection.
func TestFetchWriterFails(t *testing.T) {
	full := errors.New("spool full")
	for _, tc := range []struct {
		name string
		sink io.Writer
	}{
		{"reads for itself", &failAfterReader{failAfter{n: 10, err: full}}},
		{"written to", &failAfter{n: 10, err: full}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler { return wellBehaved() })
			s := openSource(t, srv.opts())
			if _, err := s.Fetch(t.Context(), keyMsg(5), tc.sink); !errors.Is(err, full) {
				t.Fatalf("Fetch = %v, want the writer's error", err)
			}
			var b bytes.Buffer
			if _, err := s.Fetch(t.Context(), keyMsg(5), &b); err != nil || b.String() != scriptBody {
				t.Errorf("next Fetch on the session = %q, %v; want %q", b.String(), err, scriptBody)
			}
		})
	}
}

func TestFetchRefusals(t *testing.T) {
	tests := []struct {
		name    string
		h       map[string]handler
		wantIs  error
		class   pipeline.Class
		wantMsg string
	}{
		{
			name: "NO to UID FETCH of a message the server has",
			h: map[string]handler{
				"UID FETCH": reply("$TAG NO message is broken\r\n"),
				"SEARCH":    reply("* SEARCH 1\r\n$TAG OK done\r\n"),
			},
			class: pipeline.ClassPerMessage, wantMsg: "message is broken",
		},
		{
			name: "NO to UID FETCH of an expunged message",
			h: map[string]handler{
				"UID FETCH": reply("$TAG NO some messages could not be fetched\r\n"),
				"SEARCH":    reply("* SEARCH\r\n$TAG OK done\r\n"),
			},
			wantIs: ErrMessageGone, class: pipeline.ClassPerMessage,
		},
		{
			name: "NIL body",
			h: map[string]handler{
				"UID FETCH": reply("* 1 FETCH (UID 5 BODY[] NIL)\r\n$TAG OK done\r\n"),
			},
			class: pipeline.ClassPerMessage, wantMsg: "NIL",
		},
		{
			name: "folder gone",
			h: map[string]handler{
				"EXAMINE": reply("$TAG NO [NONEXISTENT] no such mailbox\r\n"),
			},
			wantIs: ErrMessageGone, class: pipeline.ClassPerMessage,
		},
		{
			name: "UIDVALIDITY changed",
			h: map[string]handler{
				"EXAMINE": reply("* 3 EXISTS\r\n* OK [UIDVALIDITY 8] ok\r\n$TAG OK [READ-ONLY] done\r\n"),
			},
			wantIs: ErrUIDValidityChanged, class: pipeline.ClassTransient,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler { return tt.h })
			s := openSource(t, srv.opts())
			_, err := s.Fetch(t.Context(), keyMsg(5), io.Discard)
			if err == nil {
				t.Fatal("Fetch succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Fetch error %v, want %v", err, tt.wantIs)
			}
			if c := pipeline.ClassOf(err); c != tt.class {
				t.Errorf("Fetch error %v has class %v, want %v", err, c, tt.class)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Fetch error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	tests := []struct {
		name  string
		login handler
		class pipeline.Class
	}{
		{"NO", reply("$TAG NO [AUTHENTICATIONFAILED] invalid credentials\r\n"), pipeline.ClassFatal},
		{"NO without code", reply("$TAG NO go away\r\n"), pipeline.ClassFatal},
		{"UNAVAILABLE", reply("$TAG NO [UNAVAILABLE] try later\r\n"), pipeline.ClassTransient},
		{"hang-up", hangUp(""), pipeline.ClassTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler { return map[string]handler{"LOGIN": tt.login} })
			_, err := Open(t.Context(), srv.opts())
			if err == nil || pipeline.ClassOf(err) != tt.class {
				t.Fatalf("Open: %v (class %v), want class %v", err, pipeline.ClassOf(err), tt.class)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestListHugeLiteral: a LIST reply announcing a folder name of 4 GB fails
// List at once with a fatal ErrLiteralTooLarge (internal/imapconn) instead
// of go-imap buffering it.
func TestListHugeLiteral(t *testing.T) {
	srv := startScript(t, func(int) map[string]handler {
		return map[string]handler{"LIST": reply("* LIST () \"/\" {4000000000}\r\n")}
	})
	s, err := Open(t.Context(), srv.opts())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close(false)
	_, err = pipeline.ListAll(t.Context(), s)
	if !errors.Is(err, imapconn.ErrLiteralTooLarge) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("List = %v (class %v), want a fatal ErrLiteralTooLarge", err, pipeline.ClassOf(err))
	}
}
