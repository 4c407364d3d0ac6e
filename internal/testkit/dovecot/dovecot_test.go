package dovecot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// session is a raw line-oriented client conversation for the tests.
type session struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialTLS(t *testing.T, addr, caFile string) *session {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("reading CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("tls.Dial(%s) trusting %s: %v", addr, caFile, err)
	}
	return newSession(t, conn)
}

func dialPlain(t *testing.T, addr string) *session {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("net.Dial(%s): %v", addr, err)
	}
	return newSession(t, conn)
}

func newSession(t *testing.T, conn net.Conn) *session {
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &session{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (s *session) line() string {
	s.t.Helper()
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("reading from %s: %v (got %q)", s.conn.RemoteAddr(), err, l)
	}
	return l
}

// cmd sends one command line and returns the first response line.
func (s *session) cmd(line string) string {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.conn, "%s\r\n", line); err != nil {
		s.t.Fatalf("sending %q: %v", line, err)
	}
	return s.line()
}

func (s *session) expect(line, prefix string) {
	s.t.Helper()
	if got := s.cmd(line); !strings.HasPrefix(got, prefix) {
		s.t.Fatalf("%q: got %q, want %s...", line, got, prefix)
	}
}

// retr reads a multi-line POP3 response body up to "." and undoes the
// dot-stuffing (RFC 1939 §3).
func (s *session) retr(n int) []byte {
	s.t.Helper()
	s.expect(fmt.Sprintf("RETR %d", n), "+OK")
	var body bytes.Buffer
	for {
		l := s.line()
		if l == ".\r\n" {
			return body.Bytes()
		}
		body.WriteString(strings.TrimPrefix(l, "."))
	}
}

func TestTwoInstancesSharedCA(t *testing.T) {
	t.Parallel()
	Require(t)
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"alice": "source-pw"}
	specs := []Options{
		{Name: "test-src", Users: users, Separator: ".", CA: ca},
		{Name: "test-dst", Users: map[string]string{"alice": "dest-pw"}, CA: ca},
	}
	servers := make([]*Server, len(specs))
	errs := make([]error, len(specs))
	elapsed := make([]time.Duration, len(specs))
	var wg sync.WaitGroup
	begin := time.Now()
	for i, opts := range specs {
		dir, err := os.MkdirTemp("", "mfdc-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			servers[i], errs[i] = StartInstance(context.Background(), dir, opts)
			elapsed[i] = time.Since(start)
		}()
	}
	wg.Wait()
	t.Logf("started 2 instances concurrently in %v (each: %v, %v)", time.Since(begin).Round(time.Millisecond),
		elapsed[0].Round(time.Millisecond), elapsed[1].Round(time.Millisecond))
	for i, s := range servers {
		if errs[i] != nil {
			t.Fatalf("StartInstance(%s): %v", specs[i].Name, errs[i])
		}
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Errorf("Stop(%s): %v", s.Name(), err)
			}
		})
	}
	src, dst := servers[0], servers[1]

	srcCA, _ := os.ReadFile(src.CAFile())
	dstCA, _ := os.ReadFile(dst.CAFile())
	if !bytes.Equal(srcCA, dstCA) || len(srcCA) == 0 {
		t.Fatalf("CA files differ or are empty: %s vs %s", src.CAFile(), dst.CAFile())
	}
	addrs := map[string]bool{}
	for _, s := range servers {
		for _, a := range []string{s.IMAPAddr(), s.IMAPSAddr(), s.POP3Addr(), s.POP3SAddr()} {
			if addrs[a] {
				t.Fatalf("address %s used twice", a)
			}
			addrs[a] = true
		}
		// One CA file (the source's) verifies both servers.
		if g := dialTLS(t, s.IMAPSAddr(), src.CAFile()).line(); !strings.HasPrefix(g, "* OK") || !strings.Contains(g, s.Name()) {
			t.Errorf("IMAPS greeting of %s = %q", s.Name(), g)
		}
		if g := dialTLS(t, s.POP3SAddr(), src.CAFile()).line(); !strings.HasPrefix(g, "+OK") || !strings.Contains(g, s.Name()) {
			t.Errorf("POP3S greeting of %s = %q", s.Name(), g)
		}
	}

	// Separators: the source uses ".", the destination "/".
	if err := src.CreateMailbox("alice", "Archive.2019"); err != nil {
		t.Fatal(err)
	}
	if err := dst.CreateMailbox("alice", "Archive/2019"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s    *Server
		want string
	}{{src, "Archive.2019"}, {dst, "Archive/2019"}} {
		boxes, err := c.s.Mailboxes("alice")
		if err != nil {
			t.Fatal(err)
		}
		if !contains(boxes, c.want) {
			t.Errorf("%s: Mailboxes = %q, want it to contain %q", c.s.Name(), boxes, c.want)
		}
	}
	imap := dialTLS(t, src.IMAPSAddr(), src.CAFile())
	imap.line()
	imap.expect("a LOGIN alice source-pw", "a OK")
	if got := imap.cmd(`b LIST "" ""`); !strings.Contains(got, `"."`) {
		t.Errorf("source LIST separator reply = %q, want \".\"", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDeliverAndRetrOverPOP3S(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{"alice": "pw"}})
	msg := []byte("From: a@example.org\nSubject: hello\n\n.leading dot\nbody\n")
	if err := s.Deliver("alice", "INBOX", msg); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MailboxCount("alice", "INBOX"); err != nil || n != 1 {
		t.Fatalf("MailboxCount(alice, INBOX) = %d, %v; want 1", n, err)
	}
	if err := s.Deliver("alice", "Archive/2020", msg); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MailboxCount("alice", "Archive/2020"); err != nil || n != 1 {
		t.Fatalf("MailboxCount(alice, Archive/2020) = %d, %v; want 1", n, err)
	}

	p := dialTLS(t, s.POP3SAddr(), s.CAFile())
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting = %q", g)
	}
	p.expect("USER alice", "+OK")
	p.expect("PASS pw", "+OK")
	if got := p.cmd("STAT"); !strings.HasPrefix(got, "+OK 1 ") {
		t.Errorf("STAT = %q, want one message", got)
	}
	if got := p.cmd("UIDL 1"); !strings.HasPrefix(got, "+OK 1 ") || len(strings.TrimSpace(got)) != len("+OK 1 ")+16 {
		t.Errorf("UIDL 1 = %q, want a 16-digit %%08Xu%%08Xv UIDL", got)
	}
	want := bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
	if got := p.retr(1); !bytes.Equal(got, want) {
		t.Errorf("RETR 1 = %q, want %q", got, want)
	}
	p.expect("QUIT", "+OK")
}

func TestSeedMaildirFlagsAndDate(t *testing.T) {
	t.Parallel()
	for _, sep := range []string{"/", "."} {
		t.Run("separator "+sep, func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{Users: map[string]string{"bob": "pw"}, Separator: sep})
			date := time.Date(2019, 3, 4, 5, 6, 7, 0, time.Local)
			box := "Entwürfe" + sep + "Alt"
			if err := s.SeedMaildir("bob", box, []byte("Subject: a\n\nx\n"), "SF", date); err != nil {
				t.Fatal(err)
			}
			if err := s.SeedMaildir("bob", "INBOX", []byte("Subject: b\n\ny\n"), "", date); err != nil {
				t.Fatal(err)
			}
			for _, b := range []string{box, "INBOX"} {
				if n, err := s.MailboxCount("bob", b); err != nil || n != 1 {
					t.Fatalf("MailboxCount(bob, %q) = %d, %v; want 1", b, n, err)
				}
			}
			out, err := s.Doveadm("-f", "tab", "fetch", "-u", "bob", "flags date.received", "mailbox", box)
			if err != nil {
				t.Fatal(err)
			}
			want := "\\Flagged \\Seen \\Recent\t2019-03-04 05:06:07"
			if got := strings.Split(strings.TrimSpace(string(out)), "\n"); len(got) != 2 || got[1] != want {
				t.Errorf("doveadm fetch flags date.received = %q, want a row %q", out, want)
			}
		})
	}
}

func TestSeedMaildirBulk(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{"bob": "pw"}})
	const n = 300
	// Bare LFs and CRLFs: W= in the file names must be the size Dovecot
	// serves, with CRLF line ends.
	msg := func(i int) []byte {
		return []byte(fmt.Sprintf("Subject: m%d\n\r\nbody %d\r\n\n%s", i, i, strings.Repeat("\n", i%3)))
	}
	if err := s.SeedMaildirBulk("bob", "Many", n, msg); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MailboxCount("bob", "Many"); err != nil || got != n {
		t.Fatalf("MailboxCount(bob, Many) = %d, %v; want %d", got, err, n)
	}
	dir, err := s.maildirPath("bob", "Many")
	if err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(filepath.Join(dir, "cur"))
	if err != nil || len(files) != n || !strings.Contains(files[0].Name(), ",W=") {
		t.Fatalf("cur/ holds %d files (%v), the first %q; want %d, named with W=", len(files), err, files[0].Name(), n)
	}
	out, err := s.Doveadm("-f", "tab", "fetch", "-u", "bob", "uid hdr.subject size.physical size.virtual", "mailbox", "Many")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		uid, rest, _ := strings.Cut(line, "\t")
		subject, sizes, _ := strings.Cut(rest, "\t")
		size, vsize, _ := strings.Cut(sizes, "\t")
		var i int
		if _, err := fmt.Sscanf(subject, "m%d", &i); err != nil {
			t.Fatalf("row %q: %v", line, err)
		}
		if want := fmt.Sprint(i + 1); uid != want { // the names' times order them
			t.Errorf("message %d: UID %s, want %s", i, uid, want)
		}
		if want := fmt.Sprint(len(msg(i))); size != want { // the file as written
			t.Errorf("message %d: physical size %s, want %s", i, size, want)
		}
		crlf := bytes.ReplaceAll(bytes.ReplaceAll(msg(i), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		if want := fmt.Sprint(len(crlf)); vsize != want {
			t.Errorf("message %d: virtual size %s, want %s", i, vsize, want)
		}
		seen[subject] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages, want %d", len(seen), n)
	}
}

// TestBulkMaildirNamesHashApart holds SeedMaildirBulk's names to what a
// delivering server's give Dovecot's table of dovecot-uidlist names: about
// one name per value of its hash (maildir_filename_base_hash, copied
// here). Names that differed only in two counters gave 114,000 values for
// 500,000 names (102,000 for these 200,000), and Dovecot's POP3 sessions
// of the bench's maildrop spent half their CPU in the table's chains.
func TestBulkMaildirNamesHashApart(t *testing.T) {
	hash := func(s string) uint32 { // up to the ':' of the flags
		var h uint32
		for _, c := range []byte(s[:strings.IndexByte(s, ':')]) {
			h = h<<4 + uint32(c)
			if g := h & 0xf0000000; g != 0 {
				h ^= g >> 24
				h ^= g
			}
		}
		return h
	}
	const n = 200000
	first := time.Now().Unix() - n
	seen := make(map[uint32]bool, n)
	for i := range n {
		seen[hash(bulkMaildirName(first+int64(i), i, 4242, uint64(i+1), 2000+i%2000, 2050+i%2000))] = true
	}
	if len(seen) < n*99/100 {
		t.Errorf("%d names hash to %d values of Dovecot's maildir_filename_base_hash, want at least %d", n, len(seen), n*99/100)
	}
}

func TestSeedMaildirRejectsUnknownFlag(t *testing.T) {
	if _, err := maildirInfo("SX"); err == nil {
		t.Error(`maildirInfo("SX") succeeded, want an error for X`)
	}
	for in, want := range map[string]string{"": "", "S": "S", "TSFRD": "DFRST", "SS": "S"} {
		if got, err := maildirInfo(in); err != nil || got != want {
			t.Errorf("maildirInfo(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestQuota(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{"alice": "pw"}, QuotaBytes: 4096})
	if err := s.Deliver("alice", "INBOX", []byte("Subject: small\n\nok\n")); err != nil {
		t.Fatalf("delivering below quota: %v", err)
	}
	big := append([]byte("Subject: big\n\n"), bytes.Repeat([]byte("0123456789abcdef\n"), 1000)...)
	err := s.Deliver("alice", "INBOX", big)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "quota") {
		t.Fatalf("delivering 17 KB into a 4 KB quota: err = %v, want a quota error", err)
	}
	imap := dialTLS(t, s.IMAPSAddr(), s.CAFile())
	imap.line()
	if got := imap.cmd("a LOGIN alice pw"); !strings.Contains(got, "QUOTA") {
		t.Errorf("capabilities after login = %q, want QUOTA", got)
	}
}

func TestMasterUser(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{"alice": "pw"}, MasterUser: "admin", MasterPassword: "master-pw"})
	if err := s.Deliver("alice", "INBOX", []byte("Subject: x\n\ny\n")); err != nil {
		t.Fatal(err)
	}
	p := dialTLS(t, s.POP3SAddr(), s.CAFile())
	p.line()
	p.expect("USER alice*admin", "+OK")
	p.expect("PASS master-pw", "+OK")
	if got := p.cmd("STAT"); !strings.HasPrefix(got, "+OK 1 ") {
		t.Errorf("STAT as alice*admin = %q, want alice's one message", got)
	}
	bad := dialTLS(t, s.POP3SAddr(), s.CAFile())
	bad.line()
	bad.expect("USER alice*admin", "+OK")
	bad.expect("PASS pw", "-ERR")
}

func TestStartFailureReportsLog(t *testing.T) {
	t.Parallel()
	Require(t)
	_, err := StartInstance(t.Context(), shortTempDir(t), Options{ExtraConfig: "no_such_setting_mailferry = 1"})
	if err == nil {
		t.Fatal("StartInstance with an unknown setting succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "no_such_setting_mailferry") || !strings.Contains(msg, "last ") {
		t.Errorf("error = %q, want Dovecot's complaint from the log tail", msg)
	}
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mfdc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestStop(t *testing.T) {
	t.Parallel()
	Require(t)
	s, err := StartInstance(t.Context(), shortTempDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop took %v", time.Since(start).Round(time.Millisecond))
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
	if _, err := net.Dial("tcp", s.IMAPAddr()); err == nil {
		t.Errorf("%s still accepts connections after Stop", s.IMAPAddr())
	}
}

func TestStopReportsCrash(t *testing.T) {
	t.Parallel()
	Require(t)
	s, err := StartInstance(t.Context(), shortTempDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.kill() // the whole process group, as if Dovecot had crashed
	if err := s.Stop(); err == nil || !strings.Contains(err.Error(), "exited before Stop") {
		t.Errorf("Stop after a crash = %v, want an error saying Dovecot had exited", err)
	}
}

func TestStartRejectsUnreachableDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("the traversal check applies only when running as root")
	}
	Require(t)
	parent := shortTempDir(t) // 0700
	_, err := StartInstance(t.Context(), filepath.Join(parent, "inst"), Options{})
	if err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Fatalf("StartInstance below a 0700 directory: err = %v, want a traversal error", err)
	}
}

func TestValidateOptions(t *testing.T) {
	for name, opts := range map[string]Options{
		"separator":      {Separator: ":"},
		"colon in user":  {Users: map[string]string{"a:b": "pw"}},
		"newline in pw":  {Users: map[string]string{"a": "p\nw"}},
		"empty password": {Users: map[string]string{"a": ""}},
		"master no pw":   {MasterUser: "admin"},
		"name spaces":    {Name: "a b"},
	} {
		if err := validate(&opts); err == nil {
			t.Errorf("validate(%s) = nil, want an error", name)
		}
	}
}

func TestSSLRequiredRefusesPlaintextAuth(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Users: map[string]string{"alice": "pw"}, SSLRequired: true})
	imap := dialPlain(t, s.IMAPAddr())
	if g := imap.line(); !strings.Contains(g, "LOGINDISABLED") || !strings.Contains(g, "STARTTLS") {
		t.Errorf("plain IMAP greeting = %q, want LOGINDISABLED and STARTTLS", g)
	}
	got := imap.cmd("a LOGIN alice pw")
	for strings.HasPrefix(got, "* ") { // Dovecot adds an untagged BAD [ALERT]
		got = imap.line()
	}
	if !strings.HasPrefix(got, "a NO") {
		t.Errorf("LOGIN without TLS = %q, want NO", got)
	}
	// STARTTLS through the same port, then LOGIN works.
	imap.expect("b STARTTLS", "b OK")
	tc := tls.Client(imap.conn, s.TLSConfig())
	imap = newSession(t, tc)
	imap.expect("c LOGIN alice pw", "c OK")

	pop := dialPlain(t, s.POP3Addr())
	pop.line()
	pop.expect("USER alice", "-ERR")
	pop.expect("STLS", "+OK")
	pop = newSession(t, tls.Client(pop.conn, s.TLSConfig()))
	pop.expect("USER alice", "+OK")
	pop.expect("PASS pw", "+OK")

	imaps := dialTLS(t, s.IMAPSAddr(), s.CAFile())
	imaps.line()
	imaps.expect("a LOGIN alice pw", "a OK")
}
