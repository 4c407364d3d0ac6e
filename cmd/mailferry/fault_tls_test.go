package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// TestFaultTLSCertificateProblems: a server whose certificate is for
// another host name, or has expired, is refused on the first attempt (no
// retry: only configuration can fix it) with a report that explains the
// problem and names the fix; --insecure-skip-verify accepts it. Each case
// puts the bad server on one side: POP3 source, IMAP source, IMAP
// destination.
func TestFaultTLSCertificateProblems(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Every server holds user "u" with one password (tlsPasswords), as
	// each plays the source in some cases and the destination in others.
	badServer := func(name string, cert dovecot.CertOptions) *dovecot.Server {
		certPEM, keyPEM, err := ca.IssueCert(cert)
		if err != nil {
			t.Fatal(err)
		}
		return dovecot.Start(t, dovecot.Options{Name: name, CA: ca, CertPEM: certPEM, KeyPEM: keyPEM,
			Users: map[string]string{"u": srcPassword}})
	}
	wrongHost := badServer("mf-wronghost", dovecot.CertOptions{Hosts: []string{"mail.example.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)})
	expiredOn := now.AddDate(0, -1, 0)
	expired := badServer("mf-expired", dovecot.CertOptions{Hosts: []string{"127.0.0.1", "localhost", "::1"},
		NotBefore: now.AddDate(-1, 0, 0), NotAfter: expiredOn})
	good := dovecot.Start(t, dovecot.Options{Name: "mf-tlsgood", CA: ca, Users: map[string]string{"u": srcPassword}})
	msgs := userMessages("u", 3, 0)
	for _, s := range []*dovecot.Server{wrongHost, expired, good} {
		pop3Kind.seed(t, s, "u", msgs)
	}

	wantHost := []string{"mail.example.test", "127.0.0.1", "--insecure-skip-verify"}
	wantExpired := []string{"expired", expiredOn.UTC().Format("2006-01-02"), "renew", "--insecure-skip-verify"}
	tests := []struct {
		name     string
		bad      *dovecot.Server
		src, dst string // URLs
		dstSrv   *dovecot.Server
		wantHint []string
	}{
		{name: "pop3 source for another host", bad: wrongHost, src: "pop3s://u@" + wrongHost.POP3SAddr(),
			dst: "imaps://u@" + good.IMAPSAddr(), dstSrv: good, wantHint: wantHost},
		{name: "imap source for another host", bad: wrongHost, src: "imaps://u@" + wrongHost.IMAPSAddr() + "/INBOX",
			dst: "imaps://u@" + good.IMAPSAddr(), dstSrv: good, wantHint: wantHost},
		{name: "imap destination for another host", bad: wrongHost, src: "pop3s://u@" + good.POP3SAddr(),
			dst: "imaps://u@" + wrongHost.IMAPSAddr(), dstSrv: wrongHost, wantHint: wantHost},
		{name: "pop3 source expired", bad: expired, src: "pop3s://u@" + expired.POP3SAddr(),
			dst: "imaps://u@" + good.IMAPSAddr(), dstSrv: good, wantHint: wantExpired},
		{name: "imap source expired", bad: expired, src: "imaps://u@" + expired.IMAPSAddr() + "/INBOX",
			dst: "imaps://u@" + good.IMAPSAddr(), dstSrv: good, wantHint: wantExpired},
		{name: "imap destination expired", bad: expired, src: "pop3s://u@" + good.POP3SAddr(),
			dst: "imaps://u@" + expired.IMAPSAddr(), dstSrv: expired, wantHint: wantExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh destination mailbox per case: the good server is
			// shared, so each case copies into its own folder.
			folder := strings.NewReplacer(" ", "-").Replace(tt.name)
			dst := tt.dst + "/" + folder
			args := []string{"copy", tt.src, dst, "--tls-ca", good.CAFile(), "--state", filepath.Join(t.TempDir(), "state.db"),
				"--json", "--progress", "none", "--attempts", "3", "--create-folders"}

			r := runInProcess(t, tlsPasswords, args...)
			if len(r.report.Accounts) != 1 {
				t.Fatalf("exit %d, %d accounts in the report, want 1\n%s", r.code, len(r.report.Accounts), r.stderr)
			}
			a := r.report.Accounts[0]
			if r.code != exitFatal || a.Attempts != 1 || a.ErrorClass != "fatal" || a.Copied != 0 {
				t.Fatalf("bad certificate: exit %d, %d attempts, class %q, copied %d; want %d, 1 (no retry), fatal, 0\n%s",
					r.code, a.Attempts, a.ErrorClass, a.Copied, exitFatal, r.stderr)
			}
			if !strings.Contains(a.Error, "certificate") {
				t.Errorf("error %q does not say the certificate is the problem", a.Error)
			}
			for _, w := range tt.wantHint {
				if !strings.Contains(a.Hint, w) {
					t.Errorf("hint %q does not mention %q", a.Hint, w)
				}
			}
			// Without --json the summary on stdout shows the same hint.
			text := runInProcess(t, tlsPasswords, slices.DeleteFunc(slices.Clone(args), func(s string) bool { return s == "--json" })...)
			if text.code != exitFatal || !strings.Contains(text.stdout, "hint: "+a.Hint) {
				t.Errorf("the summary (exit %d) does not show the hint %q:\n%s", text.code, a.Hint, text.stdout)
			}
			if got := bodiesUnder(t, tt.dstSrv, folder); len(got) != 0 {
				t.Errorf("%d messages copied although the certificate was refused", len(got))
			}

			r = runInProcess(t, tlsPasswords, append(args, "--insecure-skip-verify")...)
			if r.code != exitOK || r.report.Totals.Copied != len(msgs) {
				t.Fatalf("with --insecure-skip-verify: exit %d, copied %d; want %d, %d\n%s",
					r.code, r.report.Totals.Copied, exitOK, len(msgs), r.stderr)
			}
			if !strings.Contains(r.stderr, "not verified") {
				t.Errorf("--insecure-skip-verify drew no warning:\n%s", r.stderr)
			}
			assertSameMultiset(t, msgs, bodiesUnder(t, tt.dstSrv, folder))
		})
	}
}

// tlsPasswords gives every server of TestFaultTLSCertificateProblems the
// one password they share.
func tlsPasswords(k string) string {
	if k == "MAILFERRY_SOURCE_PASSWORD" || k == "MAILFERRY_DEST_PASSWORD" {
		return srcPassword
	}
	return ""
}

// bodiesUnder returns the messages of user u's folder and of every folder
// below it (an IMAP source's INBOX lands in a subfolder). It reads over
// plaintext IMAP: the servers' certificates are bad on purpose.
func bodiesUnder(t *testing.T, s *dovecot.Server, folder string) [][]byte {
	t.Helper()
	boxes, err := s.Mailboxes("u")
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
	if err != nil {
		t.Fatalf("dialing %s: %v", s.Name(), err)
	}
	defer c.Close()
	if err := c.Login("u", srcPassword).Wait(); err != nil {
		t.Fatalf("logging in on %s: %v", s.Name(), err)
	}
	var out [][]byte
	for _, mb := range boxes {
		if mb != folder && !strings.HasPrefix(mb, folder+s.Separator()) {
			continue
		}
		sel, err := c.Select(mb, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil || sel.NumMessages == 0 {
			continue // a \NoSelect parent, or empty
		}
		var seq imap.SeqSet
		seq.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(seq, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatalf("fetching %s on %s: %v", mb, s.Name(), err)
		}
		for _, m := range msgs {
			for _, b := range m.BodySection {
				out = append(out, b.Bytes)
			}
		}
	}
	return out
}
