package pop3fake

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStuff(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{name: "empty", msg: "", want: ".\r\n"},
		{name: "ends in CRLF", msg: "a\r\n", want: "a\r\n.\r\n"},
		{name: "no final CRLF", msg: "a", want: "a\r\n.\r\n"},
		{name: "final bare CR", msg: "a\r", want: "a\r\r\n.\r\n"},
		{name: "leading dot", msg: ".a\r\n", want: "..a\r\n.\r\n"},
		{name: "dot line", msg: "a\r\n.\r\nb\r\n", want: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "dot after bare LF not stuffed", msg: "a\n.b\r\n", want: "a\n.b\r\n.\r\n"},
		{name: "dot mid-line not stuffed", msg: "a.b\r\n", want: "a.b\r\n.\r\n"},
	}
	for _, tc := range tests {
		if got := string(Stuff([]byte(tc.msg))); got != tc.want {
			t.Errorf("%s: Stuff(%q) = %q, want %q", tc.name, tc.msg, got, tc.want)
		}
	}
}

// peer is a raw client for checking the server's exact bytes.
type peer struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *Server) *peer {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	p := &peer{t: t, c: c, r: bufio.NewReader(c)}
	p.expect("+OK pop3fake ready\r\n")
	return p
}

func (p *peer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.c, line+"\r\n"); err != nil {
		p.t.Fatalf("sending %q: %v", line, err)
	}
}

func (p *peer) expect(want string) {
	p.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(p.r, got); err != nil {
		p.t.Fatalf("reading %q: %v (got %q)", want, err, got)
	}
	if string(got) != want {
		p.t.Fatalf("server sent %q, want %q", got, want)
	}
}

func (p *peer) cmd(line, want string) {
	p.t.Helper()
	p.send(line)
	p.expect(want)
}

func TestSessionDeletesOnlyOnQuit(t *testing.T) {
	s := NewStarted(t, Options{User: "u", Password: "p", Messages: []Message{
		{UIDL: "a", Body: []byte(".x\r\n")}, {UIDL: "b", Body: []byte("yy")},
	}})
	p := dial(t, s)
	p.cmd("USER u", "+OK send PASS\r\n")
	p.cmd("PASS p", "+OK maildrop has 2 messages\r\n")
	p.cmd("STAT", "+OK 2 6\r\n")
	p.cmd("LIST", "+OK listing follows\r\n1 4\r\n2 2\r\n.\r\n")
	p.cmd("UIDL 2", "+OK 2 b\r\n")
	p.cmd("RETR 1", "+OK message follows\r\n..x\r\n.\r\n")
	p.cmd("RETR 2", "+OK message follows\r\nyy\r\n.\r\n")
	p.cmd("DELE 1", "+OK message 1 deleted\r\n")
	p.cmd("RETR 1", "-ERR message already deleted\r\n")
	p.cmd("LIST", "+OK listing follows\r\n2 2\r\n.\r\n")
	p.c.Close() // no QUIT: nothing deleted

	p = loginUnlocked(t, s, "+OK maildrop has 2 messages\r\n")
	p.cmd("DELE 2", "+OK message 2 deleted\r\n")
	p.cmd("QUIT", "+OK bye\r\n")
	if got := s.Messages(); len(got) != 1 || got[0].UIDL != "a" {
		t.Errorf("after QUIT the maildrop is %v, want only a", got)
	}
	if got := s.Deleted(); len(got) != 1 || got[0].UIDL != "b" {
		t.Errorf("Deleted() = %v, want b", got)
	}
}

// loginUnlocked logs in as u once the server has released the maildrop:
// it notices a client's closed connection, and unlocks, only when its read
// fails, a moment after the close (longer on a loaded machine). A real
// client would see the same [IN-USE] and try again.
func loginUnlocked(t *testing.T, s *Server, want string) *peer {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := dial(t, s)
		p.cmd("USER u", "+OK send PASS\r\n")
		p.send("PASS p")
		line, err := p.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the reply to PASS: %v", err)
		}
		if !strings.HasPrefix(line, "-ERR [IN-USE]") || time.Now().After(deadline) {
			if line != want {
				t.Fatalf("server sent %q, want %q", line, want)
			}
			return p
		}
		p.c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListSize(t *testing.T) {
	s := NewStarted(t, Options{User: "u", Password: "p", Messages: []Message{
		{UIDL: "a", Body: []byte("abc"), ListSize: 1 << 40}, {UIDL: "b", Body: []byte("yy")},
	}})
	p := dial(t, s)
	p.cmd("USER u", "+OK send PASS\r\n")
	p.cmd("PASS p", "+OK maildrop has 2 messages\r\n")
	p.cmd("STAT", "+OK 2 1099511627778\r\n")
	p.cmd("LIST", "+OK listing follows\r\n1 1099511627776\r\n2 2\r\n.\r\n")
	p.cmd("LIST 1", "+OK 1 1099511627776\r\n")
	p.cmd("RETR 1", "+OK message follows\r\nabc\r\n.\r\n")
}

func TestSessionLockAndAuth(t *testing.T) {
	s := NewStarted(t, Options{User: "u", Password: "p", MasterUser: "m", MasterPassword: "mp"})
	p1 := dial(t, s)
	p1.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("u\x00m\x00mp")), "+OK maildrop has 0 messages\r\n")
	p2 := dial(t, s)
	p2.cmd("USER u", "+OK send PASS\r\n")
	p2.cmd("PASS p", "-ERR [IN-USE] maildrop already locked\r\n")
	p2.cmd("USER u", "+OK send PASS\r\n")
	p2.cmd("PASS bad", "-ERR [AUTH] invalid user name or password\r\n")
	p2.cmd("AUTH PLAIN", "+ \r\n")
	p2.cmd("*", "-ERR authentication cancelled\r\n")
	p1.cmd("QUIT", "+OK bye\r\n")
	p2.cmd("AUTH PLAIN", "+ \r\n")
	p2.cmd(base64.StdEncoding.EncodeToString([]byte("\x00u\x00p")), "+OK maildrop has 0 messages\r\n")
}

func TestFaults(t *testing.T) {
	s := NewStarted(t, Options{User: "u", Password: "p", Messages: []Message{{UIDL: "a", Body: []byte("0123456789\r\n")}}})
	s.SetFaults(Faults{Err: map[string]string{"STAT": "-ERR [SYS/TEMP] busy"}, RetrStop: StopCut, RetrStopAfter: 4})
	p := dial(t, s)
	p.cmd("USER u", "+OK send PASS\r\n")
	p.cmd("PASS p", "+OK maildrop has 1 messages\r\n")
	p.cmd("STAT", "-ERR [SYS/TEMP] busy\r\n")
	p.cmd("RETR 1", "+OK message follows\r\n0123")
	if rest, err := io.ReadAll(p.r); len(rest) != 0 || err != nil {
		t.Errorf("after the cut the server sent %q (err %v), want EOF", rest, err)
	}
}

func TestSTLS(t *testing.T) {
	serverTLS, clientTLS, err := TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	s := NewStarted(t, Options{User: "u", Password: "p", STLS: true, TLSConfig: serverTLS})
	p := dial(t, s)
	p.cmd("CAPA", "+OK capability list follows\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nUIDL\r\nSTLS\r\nIMPLEMENTATION pop3fake\r\n.\r\n")
	p.cmd("STLS", "+OK begin TLS negotiation\r\n")
	cfg := clientTLS.Clone()
	cfg.ServerName = "127.0.0.1"
	tc := tls.Client(p.c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	p.c, p.r = tc, bufio.NewReader(tc)
	p.cmd("USER u", "+OK send PASS\r\n")
	p.cmd("PASS p", "+OK maildrop has 0 messages\r\n")
	cmds := s.Commands()
	if last := cmds[len(cmds)-1]; !strings.HasPrefix(last.Line, "PASS") || !last.TLS || last.Session != 1 {
		t.Errorf("last command = %+v, want PASS under TLS in session 1", last)
	}
}

func TestPipelining(t *testing.T) {
	s := NewStarted(t, Options{User: "u", Password: "p", Pipelining: true, Messages: []Message{
		{UIDL: "a", Body: []byte("aa\r\n")}, {UIDL: "b", Body: []byte("bb\r\n")}, {UIDL: "c", Body: []byte("cc\r\n")},
	}})
	s.SetFaults(Faults{RetrStop: StopCut, RetrStopAfter: 1, RetrStopMessage: 3})
	p := dial(t, s)
	p.cmd("CAPA", "+OK capability list follows\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nUIDL\r\nPIPELINING\r\nIMPLEMENTATION pop3fake\r\n.\r\n")
	// Commands sent in one write are answered in order.
	p.send("USER u\r\nPASS p\r\nRETR 1\r\nRETR 2\r\nRETR 3")
	p.expect("+OK send PASS\r\n+OK maildrop has 3 messages\r\n" +
		"+OK message follows\r\naa\r\n.\r\n+OK message follows\r\nbb\r\n.\r\n+OK message follows\r\nc")
	if rest, err := io.ReadAll(p.r); len(rest) != 0 || err != nil {
		t.Errorf("after the cut of message 3 the server sent %q (err %v), want EOF", rest, err)
	}
}
