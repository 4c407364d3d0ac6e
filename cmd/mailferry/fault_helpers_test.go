package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

// faultEnv is one source and one destination Dovecot holding many users,
// so that each scenario gets a fresh account without a new server.
type faultEnv struct {
	src, dst *dovecot.Server
	dir      string
	// pg, when set, is the PostgreSQL server whose database pgURL is the
	// checkpoint of every scenario (one shared database, as a fleet's);
	// otherwise each user has its own SQLite file.
	pg    *postgres.Server
	pgURL string
}

// usePostgres makes the scenarios' checkpoint a database of a private
// PostgreSQL server.
func (e *faultEnv) usePostgres(t *testing.T) {
	t.Helper()
	e.pg = postgres.Start(t, postgres.Options{})
	e.pgURL = postgres.Database(t, e.pg)
}

// state is user's checkpoint.
func (e *faultEnv) state(user string) string {
	if e.pg != nil {
		return e.pgURL
	}
	return filepath.Join(e.dir, user+".db")
}

// getenv is passwords, and the checkpoint database's password.
func (e *faultEnv) getenv(k string) string {
	if k == statePasswordEnv && e.pg != nil {
		return e.pg.Password()
	}
	return passwords(k)
}

// childEnv is what a child process needs besides the mail passwords.
func (e *faultEnv) childEnv() []string {
	if e.pg == nil {
		return nil
	}
	return []string{statePasswordEnv + "=" + e.pg.Password()}
}

func startFaultEnv(t *testing.T, users []string, dstOpts dovecot.Options) *faultEnv {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srcUsers, dstUsers := map[string]string{}, map[string]string{}
	for _, u := range users {
		srcUsers[u], dstUsers[u] = srcPassword, dstPassword
	}
	e := &faultEnv{dir: t.TempDir()}
	e.src = dovecot.Start(t, dovecot.Options{Name: "mf-fsrc", CA: ca, Users: srcUsers})
	dstOpts.Name, dstOpts.CA, dstOpts.Users = "mf-fdst", ca, dstUsers
	e.dst = dovecot.Start(t, dstOpts)
	return e
}

// passwords is the getenv of in-process runs: the test passwords only.
func passwords(k string) string {
	switch k {
	case "MAILFERRY_SOURCE_PASSWORD":
		return srcPassword
	case "MAILFERRY_DEST_PASSWORD":
		return dstPassword
	}
	return ""
}

// startProxy puts a fault proxy with no faults in front of upstream.
func startProxy(t *testing.T, upstream string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(upstream, faultproxy.Plan{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// popServed returns user's messages as the Dovecot POP3 source serves
// them (line ends made CRLF), straight from the server. A session of a
// killed run may still hold the maildrop for a moment: [IN-USE] is retried.
func popServed(t *testing.T, s *dovecot.Server, user string) [][]byte {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := popFetchAll(ctx, s, user)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading %s's source maildrop: %v", user, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func popFetchAll(ctx context.Context, s *dovecot.Server, user string) ([][]byte, error) {
	c, err := pop3src.Dial(ctx, pop3src.DialOptions{Addr: s.POP3SAddr(), TLS: pop3src.TLSImplicit, TLSConfig: s.TLSConfig()})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(ctx, user, secret.New(srcPassword)); err != nil {
		return nil, err
	}
	n, _, err := c.Stat(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for i := 1; i <= n; i++ {
		var b bytes.Buffer
		if _, err := c.Retr(ctx, i, &b); err != nil {
			return nil, err
		}
		out = append(out, crlf(b.Bytes()))
	}
	return out, c.Quit(ctx)
}

// imapBodies returns every message of user's mailbox on an IMAP server.
func imapBodies(t *testing.T, s *dovecot.Server, user, password, mailbox string) [][]byte {
	t.Helper()
	return fetchBodies(t, s, user, password, mailbox, false)
}

// imapBinaryBodies is imapBodies with BINARY.PEEK[] (RFC 3516): Dovecot
// stores a NUL byte as it was appended but serves it as 0x80 in BODY[].
func imapBinaryBodies(t *testing.T, s *dovecot.Server, user, password, mailbox string) [][]byte {
	t.Helper()
	return fetchBodies(t, s, user, password, mailbox, true)
}

func fetchBodies(t *testing.T, s *dovecot.Server, user, password, mailbox string, binary bool) [][]byte {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("dialing %s: %v", s.Name(), err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("logging in as %s on %s: %v", user, s.Name(), err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		if strings.Contains(err.Error(), "NONEXISTENT") {
			return nil
		}
		t.Fatalf("selecting %s for %s: %v", mailbox, user, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var seq imap.SeqSet
	seq.AddRange(1, sel.NumMessages)
	opts := &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	if binary {
		opts = &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}}
	}
	msgs, err := c.Fetch(seq, opts).Collect()
	if err != nil {
		t.Fatalf("fetching %s for %s: %v", mailbox, user, err)
	}
	out := make([][]byte, 0, len(msgs))
	for _, m := range msgs {
		var body []byte
		for _, b := range m.BodySection {
			body = b.Bytes
		}
		for _, b := range m.BinarySection {
			body = b.Bytes
		}
		out = append(out, body)
	}
	return out
}

// multisetDiff returns how many of want's messages (by digest) got lacks,
// and how many of got's are extra (not in want, or more often than there).
func multisetDiff(want, got [][]byte) (missing, extra int) {
	count := map[string]int{}
	for _, d := range digests(want) {
		count[d]++
	}
	for _, d := range digests(got) {
		count[d]--
	}
	for _, c := range count {
		if c > 0 {
			missing += c
		} else {
			extra -= c
		}
	}
	return missing, extra
}

// subtract returns the multiset all minus some (by digest).
func subtract(all, some [][]byte) [][]byte {
	left := map[string]int{}
	for _, d := range digests(some) {
		left[d]++
	}
	var out [][]byte
	for _, m := range all {
		d := digests([][]byte{m})[0]
		if left[d] > 0 {
			left[d]--
			continue
		}
		out = append(out, m)
	}
	return out
}

// userMessages makes n small distinct messages for user plus dups exact
// copies of some of them (a POP3 maildrop may hold the same bytes twice).
func userMessages(user string, n, dups int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, []byte(fmt.Sprintf("Received: from mx by mx; Mon, 2 Mar 2015 10:%02d:%02d +0100\r\n"+
			"Message-ID: <%s-%d@example.test>\r\nFrom: a@example.test\r\nSubject: %s message %d\r\n\r\n"+
			"body %d\r\n%s\r\n", i/60%60, i%60, user, i, user, i, i, strings.Repeat("y", (i*37)%400))))
	}
	for i := 0; i < dups && n > 0; i++ {
		out = append(out, out[(i*7)%n])
	}
	return out
}
