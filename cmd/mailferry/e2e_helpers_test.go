package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

// TestMain lets the test binary act as the mailferry binary, so crash tests
// can run it as a subprocess and kill it. Unlike the release binary, it
// honours the test hooks (testhooks_test.go).
func TestMain(m *testing.M) {
	if os.Getenv("MAILFERRY_E2E_AS_MAIN") == "1" {
		e := processEnv()
		e.testHooks = testHooks
		// The fleet tests shorten the PostgreSQL leases of the workers
		// they start (the release binary has no such knob).
		if d, err := time.ParseDuration(os.Getenv("MAILFERRY_TEST_LEASE_TTL")); err == nil {
			e.leaseTTL = d
		}
		os.Exit(run(context.Background(), os.Args[1:], e))
	}
	os.Exit(m.Run())
}

const (
	srcPassword = "src-Secret-Pw-77"
	dstPassword = "dst-Secret-Pw-88"
)

// pair is a source and a destination Dovecot with user alice on each.
type pair struct {
	src, dst *dovecot.Server
	state    string
	dir      string
	// statePassword is the checkpoint database's password when state is
	// a PostgreSQL URL (onPostgres): getenv and runSubprocess hand it on.
	statePassword string
}

func startPair(t *testing.T) *pair {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-src", CA: ca, Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-dst", CA: ca, Users: map[string]string{"alice": dstPassword}})
	p.state = filepath.Join(p.dir, "state.db")
	return p
}

func (p *pair) srcURL() string { return "pop3s://alice@" + p.src.POP3SAddr() }
func (p *pair) dstURL() string { return "imaps://alice@" + p.dst.IMAPSAddr() }

func (p *pair) getenv(k string) string {
	switch k {
	case "MAILFERRY_SOURCE_PASSWORD":
		return srcPassword
	case "MAILFERRY_DEST_PASSWORD":
		return dstPassword
	case statePasswordEnv:
		return p.statePassword
	}
	return ""
}

// copyArgs is a copy command line for the pair with a JSON report.
func (p *pair) copyArgs(extra ...string) []string {
	return append([]string{"copy", p.srcURL(), p.dstURL(), "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none"}, extra...)
}

// runResult is a finished in-process or subprocess run.
type runResult struct {
	code   int
	stdout string
	stderr string
	report report
}

// runInProcess runs mailferry in the test process.
func runInProcess(t *testing.T, getenv func(string) string, args ...string) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: getenv, testHooks: testHooks})
	r := runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if strings.Contains(strings.Join(args, " "), "--json") && stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil {
			t.Fatalf("the --json report does not parse: %v\n%s", err, stdout.String())
		}
	}
	return r
}

// runSubprocess runs mailferry as a child process (the test binary in
// main mode) with extra environment variables.
func runSubprocess(t *testing.T, p *pair, envs []string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILFERRY_E2E_AS_MAIN=1",
		"MAILFERRY_SOURCE_PASSWORD="+srcPassword, "MAILFERRY_DEST_PASSWORD="+dstPassword)
	if p != nil && p.statePassword != "" {
		cmd.Env = append(cmd.Env, statePasswordEnv+"="+p.statePassword)
	}
	cmd.Env = append(cmd.Env, envs...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode() // -1 when killed by a signal
	} else if err != nil {
		t.Fatalf("running mailferry: %v", err)
	}
	r := runResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if code >= 0 && stdout.Len() > 0 {
		_ = json.Unmarshal(stdout.Bytes(), &r.report)
	}
	return r
}

// crlf is the one change mailferry makes, written independently of the
// spool: every CRLF, bare CR and bare LF becomes one CRLF.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// sourceServed returns every message as the POP3 source serves it, with
// line ends made CRLF: what the destination must hold (a POP3 server ends
// every message in CRLF).
func sourceServed(t *testing.T, p *pair) [][]byte {
	t.Helper()
	ctx := context.Background()
	c, err := pop3src.Dial(ctx, pop3src.DialOptions{Addr: p.src.POP3SAddr(), TLS: pop3src.TLSImplicit, TLSConfig: p.src.TLSConfig()})
	if err != nil {
		t.Fatalf("dialing the source: %v", err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", secret.New(srcPassword)); err != nil {
		t.Fatal(err)
	}
	n, _, err := c.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 1; i <= n; i++ {
		var b bytes.Buffer
		if _, err := c.Retr(ctx, i, &b); err != nil {
			t.Fatalf("RETR %d: %v", i, err)
		}
		out = append(out, crlf(b.Bytes()))
	}
	return out
}

type destMsg struct {
	uid   imap.UID
	body  []byte
	date  time.Time
	flags []imap.Flag
}

// destMessages fetches every message of a destination mailbox.
func destMessages(t *testing.T, p *pair, mailbox string) []destMsg {
	t.Helper()
	return p.destMessagesAs(t, mailbox, dstPassword)
}

func (p *pair) destMessagesAs(t *testing.T, mailbox, password string) []destMsg {
	t.Helper()
	return destMessagesOf(t, p.dst, "alice", password, mailbox)
}

// destMessagesOf fetches every message of a mailbox of user on s.
func destMessagesOf(t *testing.T, s *dovecot.Server, user, password, mailbox string) []destMsg {
	t.Helper()
	c, err := imapclient.DialTLS(s.IMAPSAddr(), &imapclient.Options{TLSConfig: s.TLSConfig()})
	if err != nil {
		t.Fatalf("dialing %s: %v", s.IMAPSAddr(), err)
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("selecting %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var seq imap.SeqSet
	seq.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(seq, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("fetching %s: %v", mailbox, err)
	}
	var out []destMsg
	for _, m := range msgs {
		var body []byte
		for _, b := range m.BodySection {
			body = b.Bytes
		}
		out = append(out, destMsg{uid: m.UID, body: body, date: m.InternalDate, flags: m.Flags})
	}
	return out
}

// digests returns the sorted hex SHA-256 of each message: a multiset.
func digests(bodies [][]byte) []string {
	out := make([]string, len(bodies))
	for i, b := range bodies {
		s := sha256.Sum256(b)
		out[i] = hex.EncodeToString(s[:])
	}
	sort.Strings(out)
	return out
}

func destBodies(msgs []destMsg) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.body
	}
	return out
}

// assertSameMultiset fails unless dest holds exactly the source's
// messages, byte for byte, each as often as the source has it.
func assertSameMultiset(t *testing.T, want, got [][]byte) {
	t.Helper()
	w, g := digests(want), digests(got)
	if strings.Join(w, ",") == strings.Join(g, ",") {
		return
	}
	count := map[string]int{}
	for _, d := range w {
		count[d]++
	}
	for _, d := range g {
		count[d]--
	}
	var missing, extra int
	for _, c := range count {
		if c > 0 {
			missing += c
		} else {
			extra -= c
		}
	}
	t.Fatalf("destination holds %d messages, source %d: %d missing or different, %d extra or duplicated",
		len(got), len(want), missing, extra)
}

// seed puts messages into alice's source INBOX with the given internal dates.
func seed(t *testing.T, p *pair, msgs [][]byte) {
	t.Helper()
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, m := range msgs {
		if err := p.src.SeedMaildir("alice", "INBOX", m, "", base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
}

// simpleMessages makes n distinct small messages.
func simpleMessages(n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, []byte(fmt.Sprintf("Received: from mx by mx; Mon, 2 Mar 2015 10:%02d:%02d +0100\r\n"+
			"Message-ID: <gen-%d@example.test>\r\nFrom: a@example.test\r\nSubject: generated %d\r\n\r\n"+
			"body of message %d\r\n%s\r\n", i/60%60, i%60, i, i, i, strings.Repeat("x", i%200))))
	}
	return out
}

var _ = io.Discard
