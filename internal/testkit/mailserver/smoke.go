package mailserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// SmokeMessage is a small message with CRLF line ends and a line that
// starts with a dot (POP3 must dot-stuff it).
func SmokeMessage(subject string) []byte {
	return []byte("From: Smoke Test <smoke@example.org>\r\n" +
		"To: user@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n" +
		"\r\n" +
		"first line\r\n" +
		".a line that starts with a dot\r\n" +
		"last line\r\n")
}

// ClientTLS returns a client configuration trusting only the PEM file
// caFile, for 127.0.0.1: what a user passes as --tls-ca.
func ClientTLS(t testing.TB, caFile string) *tls.Config {
	t.Helper()
	data, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("reading CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// DialIMAP connects to srv the safest way it offers (implicit TLS, else
// STARTTLS, else plain), verifying the certificate with CAFile, and logs in.
func DialIMAP(t testing.TB, srv IMAPServer, user, password string) (*imapclient.Client, string) {
	t.Helper()
	ep := srv.Endpoints()
	var c *imapclient.Client
	var err error
	var how string
	switch {
	case ep.IMAPS != "":
		how = "imaps://" + ep.IMAPS
		c, err = imapclient.DialTLS(ep.IMAPS, &imapclient.Options{TLSConfig: ClientTLS(t, srv.CAFile())})
	case ep.IMAPStartTLS:
		how = "imap://" + ep.IMAP + " with STARTTLS"
		c, err = imapclient.DialStartTLS(ep.IMAP, &imapclient.Options{TLSConfig: ClientTLS(t, srv.CAFile())})
	default:
		how = "imap://" + ep.IMAP + " without TLS"
		c, err = imapclient.DialInsecure(ep.IMAP, nil)
	}
	if err != nil {
		t.Fatalf("%s: connecting to %s: %v", srv.Info(), how, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("%s: logging in as %s over %s: %v", srv.Info(), user, how, err)
	}
	return c, how
}

// SmokeIMAP checks an IMAP server end to end: the kit seeds a message
// with flags and an internal date and a client reads it back exactly over
// TLS (verified with the kit's CA); the client APPENDs into a new folder
// with hierarchy and a non-ASCII name and the kit reads it back; a wrong
// password is refused. user must exist with password.
func SmokeIMAP(t testing.TB, srv IMAPServer, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := srv.Info().String()
	date := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	seeded := SmokeMessage("seeded by the kit")
	if err := srv.Append(ctx, user, "INBOX", seeded, []string{`\Seen`, `\Flagged`}, date); err != nil {
		t.Fatalf("%s: kit Append: %v", name, err)
	}

	login := srv.Login(user)
	c, how := DialIMAP(t, srv, login, password)
	t.Logf("%s: logged in as %s over %s; capabilities: %v", name, login, how, capNames(c))
	msgs, err := Account{}.fetchAll(c, "INBOX")
	if err != nil {
		t.Fatalf("%s: reading INBOX over %s: %v", name, how, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("%s: INBOX holds %d messages, want the 1 seeded", name, len(msgs))
	}
	checkMessage(t, srv, "seeded INBOX message", msgs[0], seeded, []string{`\Flagged`, `\Seen`}, date)

	folder := srv.Prefix() + "Smoke" + srv.Separator() + "Ärger 2024"
	if err := c.Create(folder, nil).Wait(); err != nil {
		t.Fatalf("%s: CREATE %q: %v", name, folder, err)
	}
	appended := SmokeMessage("appended by the client")
	date2 := time.Date(2022, 12, 31, 23, 59, 58, 0, time.UTC)
	if err := appendOne(c, folder, appended, []string{`\Answered`}, date2); err != nil {
		t.Fatalf("%s: APPEND to %q: %v", name, folder, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("%s: LOGOUT: %v", name, err)
	}
	got, err := srv.Messages(ctx, user, folder)
	if err != nil {
		t.Fatalf("%s: kit Messages(%q): %v", name, folder, err)
	}
	if len(got) != 1 {
		t.Fatalf("%s: %q holds %d messages, want 1", name, folder, len(got))
	}
	checkMessage(t, srv, "appended message", got[0], appended, []string{`\Answered`}, date2)
	boxes, err := srv.Mailboxes(ctx, user)
	if err != nil {
		t.Fatalf("%s: kit Mailboxes: %v", name, err)
	}
	if !slices.ContainsFunc(boxes, func(m Mailbox) bool { return m.Name == folder }) {
		t.Errorf("%s: Mailboxes = %v, want %q among them", name, boxes, folder)
	}

	if ep := srv.Endpoints(); ep.IMAPStartTLS && ep.IMAPS != "" {
		// DialIMAP took implicit TLS; STARTTLS is offered too.
		sc, err := imapclient.DialStartTLS(ep.IMAP, &imapclient.Options{TLSConfig: ClientTLS(t, srv.CAFile())})
		if err != nil {
			t.Fatalf("%s: STARTTLS on %s: %v", name, ep.IMAP, err)
		}
		if err := sc.Login(login, password).Wait(); err != nil {
			t.Errorf("%s: login after STARTTLS on %s: %v", name, ep.IMAP, err)
		}
		sc.Close()
	}

	bad := Account{Addr: srv.Endpoints().IMAP, User: login, Password: password + "-wrong"}
	if c, err := bad.Dial(ctx); err == nil {
		c.Close()
		t.Errorf("%s: login with a wrong password succeeded", name)
	}
}

func capNames(c *imapclient.Client) []string {
	var out []string
	for cp := range c.Caps() {
		out = append(out, string(cp))
	}
	slices.Sort(out)
	return out
}

func checkMessage(t testing.TB, srv Server, what string, m Message, body []byte, flags []string, date time.Time) {
	t.Helper()
	server := srv.Info().String()
	got := m.Body
	if ha, ok := srv.(HeaderAdder); ok {
		got = StripHeaders(got, ha.AddedHeaders())
	}
	if !bytes.Equal(got, body) {
		t.Errorf("%s: %s: body differs:\n got %q\nwant %q", server, what, m.Body, body)
	}
	var sys []string // servers may add \Recent or keywords of their own
	for _, f := range m.Flags {
		if f != `\Recent` {
			sys = append(sys, f)
		}
	}
	if !slices.Equal(sys, flags) {
		t.Errorf("%s: %s: flags %v, want %v", server, what, m.Flags, flags)
	}
	if !m.InternalDate.Equal(date) {
		t.Errorf("%s: %s: internal date %v, want %v", server, what, m.InternalDate, date)
	}
}

// SmokePOP3 checks a POP3 server end to end: the kit delivers a message,
// a client logs in (implicit TLS, else STLS, else plain, certificates
// verified with the kit's CA) and RETRs it, byte-exact after
// dot-unstuffing; a wrong password is refused.
func SmokePOP3(t testing.TB, srv POP3Server, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := srv.Info().String()
	msg := SmokeMessage("delivered for POP3")
	if err := srv.Deliver(ctx, user, msg); err != nil {
		t.Fatalf("%s: kit Deliver: %v", name, err)
	}
	p, how := dialPOP3(t, srv, srv.Endpoints().POP3S != "")
	p.cmd("USER "+srv.Login(user), "+OK")
	p.cmd("PASS "+password, "+OK")
	stat := p.cmd("STAT", "+OK")
	var n, size int
	if _, err := fmt.Sscanf(stat, "+OK %d %d", &n, &size); err != nil || n != 1 {
		t.Fatalf("%s over %s: STAT = %q, want 1 message", name, how, stat)
	}
	got := p.retr(1)
	if ha, ok := srv.(HeaderAdder); ok {
		got = StripHeaders(got, ha.AddedHeaders())
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("%s over %s: RETR 1 differs:\n got %q\nwant %q", name, how, got, msg)
	}
	t.Logf("%s: POP3 over %s: STAT %q, RETR byte-exact: %v", name, how, stat, bytes.Equal(got, msg))
	p.cmd("QUIT", "+OK")

	if ep := srv.Endpoints(); ep.POP3STLS && ep.POP3S != "" {
		// The first session took implicit TLS; STLS is offered too.
		sp, how := dialPOP3(t, srv, false)
		sp.cmd("USER "+srv.Login(user), "+OK")
		sp.cmd("PASS "+password, "+OK")
		if stat := sp.cmd("STAT", "+OK"); !strings.HasPrefix(stat, "+OK 1 ") {
			t.Errorf("%s over %s: STAT = %q, want 1 message", name, how, stat)
		}
		sp.cmd("QUIT", "+OK")
	}

	q, _ := dialPOP3(t, srv, srv.Endpoints().POP3S != "")
	q.cmd("USER "+srv.Login(user), "")
	if line := q.cmd("PASS "+password+"-wrong", ""); !strings.HasPrefix(line, "-ERR") {
		t.Errorf("%s: PASS with a wrong password answered %q, want -ERR", name, line)
	}
}

type pop3Conn struct {
	t    testing.TB
	name string
	conn net.Conn
	r    *bufio.Reader
}

// dialPOP3 connects over implicit TLS when implicit is set, else to the
// plain port with STLS when offered.
func dialPOP3(t testing.TB, srv POP3Server, implicit bool) (*pop3Conn, string) {
	t.Helper()
	ep := srv.Endpoints()
	name := srv.Info().String()
	var conn net.Conn
	var err error
	how := "pop3s://" + ep.POP3S
	if implicit {
		conn, err = tls.Dial("tcp", ep.POP3S, ClientTLS(t, srv.CAFile()))
	} else {
		how = "pop3://" + ep.POP3
		conn, err = net.Dial("tcp", ep.POP3)
	}
	if err != nil {
		t.Fatalf("%s: connecting to %s: %v", name, how, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(time.Minute))
	p := &pop3Conn{t: t, name: name, conn: conn, r: bufio.NewReader(conn)}
	p.line("+OK")
	if !implicit && ep.POP3STLS {
		p.cmd("STLS", "+OK")
		tc := tls.Client(conn, ClientTLS(t, srv.CAFile()))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%s: STLS handshake: %v", name, err)
		}
		p.conn, p.r = tc, bufio.NewReader(tc)
		how += " with STLS"
	} else if !implicit {
		how += " without TLS"
	}
	return p, how
}

func (p *pop3Conn) line(prefix string) string {
	p.t.Helper()
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("%s: reading POP3 reply: %v (got %q)", p.name, err, l)
	}
	if !strings.HasPrefix(l, prefix) {
		p.t.Fatalf("%s: POP3 reply %q, want %s…", p.name, l, prefix)
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *pop3Conn) cmd(line, prefix string) string {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.conn, "%s\r\n", line); err != nil {
		p.t.Fatalf("%s: sending POP3 command: %v", p.name, err)
	}
	return p.line(prefix)
}

// retr reads message n, undoing dot-stuffing (RFC 1939 §3).
func (p *pop3Conn) retr(n int) []byte {
	p.t.Helper()
	p.cmd(fmt.Sprintf("RETR %d", n), "+OK")
	var b bytes.Buffer
	for {
		l, err := p.r.ReadString('\n')
		if err != nil {
			p.t.Fatalf("%s: reading RETR %d: %v", p.name, n, err)
		}
		if l == ".\r\n" {
			return b.Bytes()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
	}
}
