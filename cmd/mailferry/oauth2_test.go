package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/preflight"
)

// TestE2EOAuth2Copy runs `mailferry copy` with OAuth2 bearer tokens on both
// sides (XOAUTH2 on the POP3 source, OAUTHBEARER on the IMAP destination),
// the tokens read from files, against Dovecot's oauth2 passdb.
func TestE2EOAuth2Copy(t *testing.T) {
	srcIntro := dovecot.StartIntrospector(t, map[string]string{"src-token-1": "alice"})
	dstIntro := dovecot.StartIntrospector(t, map[string]string{"dst-token-1": "alice"})
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-osrc", CA: ca, Users: map[string]string{"alice": srcPassword},
		OAuth2IntrospectionURL: srcIntro.URL()})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-odst", CA: ca, Users: map[string]string{"alice": dstPassword},
		OAuth2IntrospectionURL: dstIntro.URL()})
	p.state = filepath.Join(p.dir, "state.db")
	seed(t, p, simpleMessages(4))
	srcTok, dstTok := filepath.Join(p.dir, "src.token"), filepath.Join(p.dir, "dst.token")
	os.WriteFile(srcTok, []byte("src-token-1\n"), 0o600)
	os.WriteFile(dstTok, []byte("dst-token-1\n"), 0o600)
	args := []string{"copy", "pop3s://alice@" + p.src.POP3SAddr() + "?auth=xoauth2",
		"imaps://alice@" + p.dst.IMAPSAddr() + "?auth=oauthbearer", "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--json", "--progress", "none", "--trace",
		"--source-password-file", srcTok, "--dest-password-file", dstTok}
	r := runInProcess(t, func(string) string { return "" }, args...)
	if r.code != exitOK || r.report.Totals.Copied != 4 {
		t.Fatalf("OAuth2 copy: exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	if n, err := p.dst.MailboxCount("alice", "INBOX"); err != nil || n != 4 {
		t.Fatalf("destination holds %d (%v), want 4", n, err)
	}
	if strings.Contains(r.stdout+r.stderr, "src-token-1") || strings.Contains(r.stdout+r.stderr, "dst-token-1") {
		t.Error("a token appears in the output or the trace")
	}
	// A revoked token is an authentication failure: fatal, not retried.
	dstIntro.Set(map[string]string{"dst-token-2": "alice"})
	seed(t, p, [][]byte{[]byte("Subject: one more\r\n\r\nx\r\n")})
	r = runInProcess(t, func(string) string { return "" }, args...)
	if r.code != exitFatal || r.report.Accounts[0].Attempts != 1 {
		t.Fatalf("revoked token: exit %d after %d attempts, want %d after 1\n%s", r.code, r.report.Accounts[0].Attempts, exitFatal, r.stderr)
	}
	// The refreshed token is picked up from the file.
	os.WriteFile(dstTok, []byte("dst-token-2\n"), 0o600)
	r = runInProcess(t, func(string) string { return "" }, args...)
	if r.code != exitOK || r.report.Totals.Copied != 1 {
		t.Fatalf("refreshed token: exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
}

// TestE2EOAuth2VerifyPlan runs plan, run and verify on an account whose
// destination logs in with auth = "xoauth2", the token read from a file:
// plan and verify log in as the copy does (from the config and from
// URLs). After the token is revoked verify fails the account fatally and
// plan reports a destination problem, both with the copy's "server
// rejected the OAuth2 token", and the token never shows.
func TestE2EOAuth2VerifyPlan(t *testing.T) {
	const token, newToken = "dst-token-verify-1", "dst-token-verify-2"
	intro := dovecot.StartIntrospector(t, map[string]string{token: "alice"})
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{dir: t.TempDir()}
	p.src = dovecot.Start(t, dovecot.Options{Name: "mf-vsrc", CA: ca, Users: map[string]string{"alice": srcPassword}})
	p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-vdst", CA: ca, Users: map[string]string{"alice": dstPassword},
		OAuth2IntrospectionURL: intro.URL(), ExtraConfig: "auth_failure_delay = 0"})
	p.state = filepath.Join(p.dir, "state.db")
	seed(t, p, simpleMessages(3))
	tokFile := filepath.Join(p.dir, "dst.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state = %q
[source]
url = "pop3s://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
auth = "xoauth2"
[[account]]
source_user = "alice"
source_password_command = "echo %s"
dest_password_file = %q
`, p.state, p.src.POP3SAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), srcPassword, tokFile)
	path := filepath.Join(p.dir, "migrate.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	plan := func() (int, preflight.Result) {
		t.Helper()
		r := runCmd(t, runPlan, noEnv, "-c", path, "--json")
		var rep planReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
			t.Fatalf("plan --json: exit %d, %d accounts (%v)\n%s\n%s", r.code, len(rep.Accounts), err, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, token) {
			t.Error("plan: the token appears in the output")
		}
		return r.code, rep.Accounts[0]
	}
	verifyCfg := func(extra ...string) (int, verifyAccount) {
		t.Helper()
		args := append([]string{"--json"}, extra...)
		getenv := noEnv
		if len(extra) == 0 {
			args = append(args, "-c", path)
		} else {
			getenv = func(k string) string { return map[string]string{"MAILFERRY_SOURCE_PASSWORD": srcPassword}[k] }
		}
		r := runCmd(t, runVerify, getenv, args...)
		var rep verifyReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Accounts) != 1 {
			t.Fatalf("verify %v: exit %d, %d accounts (%v)\n%s\n%s", extra, r.code, len(rep.Accounts), err, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, token) {
			t.Errorf("verify %v: the token appears in the output", extra)
		}
		return r.code, rep.Accounts[0]
	}

	if code, pa := plan(); code != exitOK || !pa.OK || pa.ToMove != 3 || !pa.DestCaps["UIDPLUS"] {
		t.Fatalf("plan: exit %d, ok %v, %d to move, destination capabilities %v, problems %q; want a login and 3 to move",
			code, pa.OK, pa.ToMove, pa.DestCaps, pa.Problems)
	}
	if r := runInProcess(t, noEnv, "run", "-c", path, "--json", "--progress", "none"); r.code != exitOK || r.report.Totals.Copied != 3 {
		t.Fatalf("run: exit %d, copied %d\n%s", r.code, r.report.Totals.Copied, r.stderr)
	}
	urlArgs := []string{p.srcURL(), p.dstURL() + "?auth=xoauth2", "--tls-ca", p.src.CAFile(), "--state", p.state,
		"--dest-password-file", tokFile}
	for _, extra := range [][]string{nil, urlArgs} {
		if code, va := verifyCfg(extra...); code != exitOK || !va.OK || va.Stats.Matched != 3 {
			t.Fatalf("verify %v: exit %d, stats %+v, error %q; want 3 matched", extra, code, va.Stats, va.Error)
		}
	}

	// Revoked: each login is rejected once (Dovecot delays the logins
	// after each rejection), with the copy path's TokenRejectedError.
	intro.Set(map[string]string{newToken: "alice"})
	const rejected = "AUTHENTICATE XOAUTH2 for alice: server rejected the OAuth2 token"
	if code, va := verifyCfg(); code != exitFatal || va.OK || !strings.Contains(va.Error, rejected) {
		t.Errorf("verify, token revoked: exit %d, ok %v, error %q; want %d and %q", code, va.OK, va.Error, exitFatal, rejected)
	}
	if code, pa := plan(); code != exitPartial || pa.OK || !strings.Contains(strings.Join(pa.Problems, ";"), "destination") ||
		!strings.Contains(strings.Join(pa.Problems, ";"), rejected) {
		t.Errorf("plan, token revoked: exit %d, problems %q; want %d and a destination problem %q", code, pa.Problems, exitPartial, rejected)
	}
}
