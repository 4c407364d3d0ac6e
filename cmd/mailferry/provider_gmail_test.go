package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/providerfake"
)

// The tests of the emulated providers (internal/testkit/providerfake) run
// mailferry end to end against a fake that behaves as the provider is
// documented to, with a real Dovecot on the other side.

// gmailMail is alice's mail on the emulated Gmail: subject → labels.
var gmailMail = []struct {
	subject string
	labels  []string
	flags   []string
}{
	{"inbox-work", []string{`\Inbox`, "Work", `\Important`}, []string{`\Seen`}},
	{"inbox-only", []string{`\Inbox`}, nil},
	{"work-private", []string{"Work", "Private/Grüße"}, []string{`\Answered`}},
	{"archived", []string{}, []string{`\Seen`, `\Flagged`}},
	{"sent", []string{`\Sent`, `\Important`}, []string{`\Seen`}},
	{"trashed", []string{`\Trash`}, nil},
	{"spam", []string{`\Spam`}, nil},
}

func gmailBody(subject string) []byte {
	return []byte(fmt.Sprintf("From: bob@example.org\r\nTo: alice@example.org\r\nMessage-ID: <%s@example.org>\r\nSubject: %s\r\n\r\nabout %s\r\n", subject, subject, subject))
}

// startGmail starts an emulated Gmail holding gmailMail for alice.
func startGmail(t *testing.T) *providerfake.Server {
	t.Helper()
	g := providerfake.Start(t, providerfake.Gmail())
	g.AddUser("alice", srcPassword)
	date := time.Date(2023, 11, 12, 13, 14, 15, 0, time.UTC)
	for _, m := range gmailMail {
		g.Add("alice", "INBOX", providerfake.Message{Body: gmailBody(m.subject), Labels: m.labels, Flags: m.flags, Date: date})
	}
	return g
}

// destFolders returns, per folder of user on s, the subjects of its
// messages with their flags: "subject [flags]".
func destFolders(t *testing.T, s *dovecot.Server, user, password string, folders ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, f := range folders {
		for _, m := range destMessagesOf(t, s, user, password, f) {
			_, rest, _ := strings.Cut(string(m.body), "Subject: ")
			subj, _, _ := strings.Cut(rest, "\r\n")
			out[f] = append(out[f], subj+" ["+flagSet(m.flags)+"]")
		}
		slices.Sort(out[f])
	}
	return out
}

// TestProviderGmailSource: Gmail as a source, one copy per message (the
// default): each message once, in the folder of one of its labels (INBOX,
// else a user label, else Sent), its other labels as keywords, archived
// mail in Archive, Trash and Spam in theirs, nothing from All Mail,
// Important or Starred twice; a second run copies nothing; verify agrees.
// The server is told Gmail by its X-GM-EXT-1 capability (it is on
// 127.0.0.1). Before the Gmail profile, All Mail was skipped as virtual
// (archived mail lost) and inbox-work was copied to INBOX and to Work.
func TestProviderGmailSource(t *testing.T) {
	g := startGmail(t)
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-gdst", Users: map[string]string{"alice": dstPassword}})
	state := filepath.Join(t.TempDir(), "state.db")
	src := "imap://alice@" + g.Addr() + "?tls=none"
	args := []string{"copy", src, "imaps://alice@" + dst.IMAPSAddr(), "--tls-ca", dst.CAFile(), "--allow-plaintext",
		"--state", state, "--json", "--progress", "none"}
	r := runInProcess(t, passwords, args...)
	if r.code != exitOK {
		t.Fatalf("copy: exit %d\n%s", r.code, r.stderr)
	}
	if a := r.report.Accounts[0]; a.Copied != len(gmailMail) || a.Listed != len(gmailMail) {
		t.Errorf("copy: listed %d, copied %d; want %d once each", a.Listed, a.Copied, len(gmailMail))
	}
	got := destFolders(t, dst, "alice", dstPassword, "INBOX", "Work", "Private/Grüße", "Archive", "Sent", "Trash", "Junk")
	want := map[string][]string{
		"INBOX":         {"inbox-only []", "inbox-work [$important \\seen work]"},
		"Private/Grüße": {"work-private [\\answered work]"},
		"Archive":       {"archived [\\flagged \\seen]"},
		"Sent":          {"sent [$important \\seen]"},
		"Trash":         {"trashed []"},
		"Junk":          {"spam []"},
	}
	for f, w := range want {
		if !slices.Equal(got[f], w) {
			t.Errorf("destination %s holds %q, want %q", f, got[f], w)
		}
	}
	if len(got["Work"]) != 0 {
		t.Errorf("destination Work holds %q: a second copy", got["Work"])
	}
	again := runInProcess(t, passwords, args...)
	if a := again.report.Accounts[0]; again.code != exitOK || a.Copied != 0 || a.AlreadyDone != len(gmailMail) {
		t.Errorf("second run: exit %d, copied %d, already done %d\n%s", again.code, a.Copied, a.AlreadyDone, again.stderr)
	}
	for _, full := range []string{"", "--full"} {
		v := runInProcess(t, passwords, slices.DeleteFunc([]string{"verify", src, "imaps://alice@" + dst.IMAPSAddr(), "--tls-ca", dst.CAFile(),
			"--allow-plaintext", "--state", state, full}, func(s string) bool { return s == "" })...)
		if v.code != exitOK || !strings.Contains(v.stdout, fmt.Sprintf("%d match", len(gmailMail))) {
			t.Errorf("verify %s: exit %d\n%s%s", full, v.code, v.stdout, v.stderr)
		}
	}
	// Without the checkpoint verify finds each message by content, in the
	// folder the copy's rule gives it.
	v := runInProcess(t, passwords, "verify", src, "imaps://alice@"+dst.IMAPSAddr(), "--tls-ca", dst.CAFile(), "--allow-plaintext", "--no-ledger")
	if v.code != exitOK {
		t.Errorf("verify --no-ledger: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// TestProviderGmailPerLabel: folders.gmail_labels = "per-label" (the
// config key, through run) copies every label folder's messages, as
// imapsync does, and from All Mail only the archived ones; verify with
// --gmail-labels per-label agrees, and a second run copies nothing.
func TestProviderGmailPerLabel(t *testing.T) {
	g := startGmail(t)
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-gpl", Users: map[string]string{"alice": dstPassword}})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "migrate.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state = %q
[source]
url = "imap://%s?tls=none"
allow_plaintext = true
[destination]
url = "imaps://%s"
tls_ca = %q
[folders]
gmail_labels = "per-label"
[[account]]
source_user = "alice"
source_password = %q
dest_password = %q
`, filepath.Join(dir, "state.db"), g.Addr(), dst.IMAPSAddr(), dst.CAFile(), srcPassword, dstPassword)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runInProcess(t, passwords, "run", "-c", cfg, "--json", "--progress", "none")
	if r.code != exitOK {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
	got := destFolders(t, dst, "alice", dstPassword, "INBOX", "Work", "Private/Grüße", "Archive", "Sent", "Trash", "Junk")
	want := map[string][]string{
		"INBOX":         {"inbox-only []", "inbox-work [\\seen]"},
		"Work":          {"inbox-work [\\seen]", "work-private [\\answered]"},
		"Private/Grüße": {"work-private [\\answered]"},
		"Archive":       {"archived [\\flagged \\seen]"},
		"Sent":          {"sent [\\seen]"},
		"Trash":         {"trashed []"},
		"Junk":          {"spam []"},
	}
	for f, w := range want {
		if !slices.Equal(got[f], w) {
			t.Errorf("destination %s holds %q, want %q", f, got[f], w)
		}
	}
	if a := r.report.Accounts[0]; a.Copied != 9 {
		t.Errorf("copied %d, want 9 (one per label folder)", a.Copied)
	}
	again := runInProcess(t, passwords, "run", "-c", cfg, "--json", "--progress", "none")
	if a := again.report.Accounts[0]; again.code != exitOK || a.Copied != 0 {
		t.Errorf("second run: exit %d, copied %d\n%s", again.code, a.Copied, again.stderr)
	}
	v := runInProcess(t, passwords, "verify", "-c", cfg, "--full")
	if v.code != exitOK || !strings.Contains(v.stdout, "9 match") {
		t.Errorf("verify --full: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
	v = runInProcess(t, passwords, "verify", "-c", cfg, "--no-ledger")
	if v.code != exitOK {
		t.Errorf("verify --no-ledger: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}
