package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/fakeclock"
	"github.com/mailferry/mailferry/internal/testkit/providerfake"
	"github.com/mailferry/mailferry/pipeline"
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

// gmailDest is a POP3 source on Dovecot (alice) and an emulated Gmail
// destination (alice), with a checkpoint.
type gmailDest struct {
	p     *pair
	g     *providerfake.Server
	state string
}

func startGmailDest(t *testing.T, o providerfake.Options) *gmailDest {
	t.Helper()
	d := &gmailDest{p: &pair{dir: t.TempDir()}}
	d.p.src = dovecot.Start(t, dovecot.Options{Name: "mf-gsrc", Users: map[string]string{"alice": srcPassword}})
	d.g = providerfake.Start(t, o)
	d.g.AddUser("alice", dstPassword)
	d.state = filepath.Join(d.p.dir, "state.db")
	return d
}

func (d *gmailDest) args(extra ...string) []string {
	return append([]string{"copy", "pop3s://alice@" + d.p.src.POP3SAddr(), "imap://alice@" + d.g.Addr() + "/INBOX?tls=none",
		"--tls-ca", d.p.src.CAFile(), "--allow-plaintext", "--state", d.state, "--json", "--progress", "none"}, extra...)
}

// withID makes a message with Message-ID id and body text.
func withID(id, text string) []byte {
	return []byte("From: carol@example.org\r\nMessage-ID: <" + id + "@example.org>\r\nSubject: " + id + "\r\n\r\n" + text + "\r\n")
}

// TestProviderGmailDestination: Gmail as a destination. A message over its
// APPENDLIMIT (35,651,584 bytes) is skipped with the reason and not sent;
// an APPEND of a message Gmail already holds (the same Message-ID) is
// answered OK with the UID of the one there and stores nothing: a second
// copy with the same bytes is recorded at that UID, one with other bytes
// is skipped for good with the reason, never recorded as a copy that is
// not there. The first run exits 3 for the two skips, which are reported
// once: the next run lists them and exits 0; --retry-skipped tries them
// again. Tested with and without APPENDUID for the dropped message.
func TestProviderGmailDestination(t *testing.T) {
	for _, dup := range []providerfake.Duplicates{providerfake.DuplicatesDroppedUID, providerfake.DuplicatesDropped} {
		t.Run(map[providerfake.Duplicates]string{providerfake.DuplicatesDroppedUID: "APPENDUID of the one there", providerfake.DuplicatesDropped: "no APPENDUID"}[dup], func(t *testing.T) {
			o := providerfake.Gmail()
			o.Duplicates = dup
			d := startGmailDest(t, o)
			big := append([]byte("Message-ID: <big@example.org>\r\nSubject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\r\n"), providerfake.GmailAppendLimit/64+10)...)
			msgs := [][]byte{withID("a", "first"), withID("c", "the first with this Message-ID"), withID("d", "twice"),
				withID("c", "the second with this Message-ID, other bytes"), withID("d", "twice"), big, withID("e", "last")}
			seed(t, d.p, msgs)
			r := runInProcess(t, passwords, d.args()...)
			a := r.report.Accounts[0]
			if r.code != exitPartial || a.Copied != 5 || a.Skipped != 2 || a.Failed != 0 {
				t.Fatalf("first run: exit %d, copied %d, skipped %d, failed %d; want 3, 5, 2, 0\n%s", r.code, a.Copied, a.Skipped, a.Failed, r.stderr)
			}
			reasons := map[string]bool{}
			for _, sk := range a.Skips {
				switch {
				case strings.Contains(sk.Reason, "too big") && strings.Contains(sk.Reason, "35651584"):
					reasons["big"] = true
				case strings.Contains(sk.Reason, "keeps one message per Message-ID") && strings.Contains(sk.Reason, "<c@example.org>"):
					reasons["dup"] = true
				}
			}
			if !reasons["big"] || !reasons["dup"] {
				t.Errorf("skips %+v; want one too big for the APPENDLIMIT and one Message-ID kept by Gmail", a.Skips)
			}
			var stored []string
			for _, m := range d.g.Messages("alice", "INBOX") {
				stored = append(stored, string(m.Body))
				if len(m.Body) > providerfake.GmailAppendLimit {
					t.Errorf("a message of %d bytes reached Gmail", len(m.Body))
				}
			}
			if want := []string{string(withID("a", "first")), string(withID("c", "the first with this Message-ID")),
				string(withID("d", "twice")), string(withID("e", "last"))}; !slices.Equal(stored, want) {
				t.Errorf("Gmail holds %q, want %q", stored, want)
			}
			// Reported once: listed again, exit 0.
			again := runInProcess(t, passwords, d.args()...)
			b := again.report.Accounts[0]
			if again.code != exitOK || b.Copied != 0 || b.Skipped != 0 || b.SkippedBefore != 2 || len(b.SkipsBefore) != 2 {
				t.Errorf("second run: exit %d, copied %d, skipped %d, skipped before %d %v; want 0, 0, 0, 2\n%s",
					again.code, b.Copied, b.Skipped, b.SkippedBefore, b.SkipsBefore, again.stderr)
			}
			text := runInProcess(t, passwords, slices.DeleteFunc(d.args(), func(s string) bool { return s == "--json" })...)
			if !strings.Contains(text.stdout, "skipped by an earlier run") || !strings.Contains(text.stdout, "2 skipped for good by earlier runs") {
				t.Errorf("the summary does not list the earlier skips:\n%s", text.stdout)
			}
			st := runInProcess(t, passwords, "status", "--state", d.state)
			if !strings.Contains(st.stdout, "keeps one message per Message-ID") || !strings.Contains(st.stdout, "too big") {
				t.Errorf("status does not list the skipped messages:\n%s", st.stdout)
			}
			// --retry-skipped tries them again: refused again, reported
			// again (exit 3), nothing stored twice.
			retry := runInProcess(t, passwords, d.args("--retry-skipped")...)
			if c := retry.report.Accounts[0]; retry.code != exitPartial || c.Skipped != 2 || c.Copied != 0 {
				t.Errorf("--retry-skipped: exit %d, skipped %d, copied %d; want 3, 2, 0\n%s", retry.code, c.Skipped, c.Copied, retry.stderr)
			}
			if n := len(d.g.Messages("alice", "INBOX")); n != 4 {
				t.Errorf("Gmail holds %d messages after --retry-skipped, want 4", n)
			}
		})
	}
}

// TestProviderGmailDailyLimit: once an account has uploaded its day's
// allowance Gmail answers APPEND with "[OVERQUOTA] Account exceeded command
// or bandwidth limits" and ends the connection. The account pauses until
// the next quota day (midnight in --timezone), which is no failure (exit
// 0); what was refused is not recorded as copied; the next day goes on,
// until everything is there once. Before the Gmail profile the refusal
// (OVERQUOTA) was fatal: the account failed.
func TestProviderGmailDailyLimit(t *testing.T) {
	o := providerfake.Gmail()
	msgs := bigMessages(12, 20_000)
	o.DailyUpload = int64(3*len(msgs[0]) + 100) // three messages a day
	d := startGmailDest(t, o)
	seed(t, d.p, msgs)
	served := popServed(t, d.p.src, "alice")
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 10*time.Hour)
	clock := fakeclock.New(day)
	// The daily quota of the Gmail preset (500 MB written) is not what
	// stops the copy here: Gmail's own refusal is.
	args := d.args("--batch-messages", "1", "--dest-sessions", "1", "--timezone", "UTC")
	copied := 0
	for n := 0; copied < len(msgs); n++ {
		if n > 6 {
			t.Fatalf("after %d days %d of %d copied", n, copied, len(msgs))
		}
		midnight := day.Truncate(24 * time.Hour).Add(time.Duration(n+1) * 24 * time.Hour)
		r := runClocked(t, passwords, clock, args...)
		a := r.report.Accounts[0]
		if r.code != exitOK || a.Error != "" || a.Failed != 0 {
			t.Fatalf("day %d: exit %d, error %q, failed %d; want 0 (a paused account is no failure)\n%s", n, r.code, a.Error, a.Failed, r.stderr)
		}
		copied += a.Copied
		if copied < len(msgs) {
			if a.PausedUntil == nil || !a.PausedUntil.Equal(midnight) || !strings.Contains(a.PausedReason, "bandwidth limits") || a.Waiting != len(msgs)-copied {
				t.Fatalf("day %d: paused until %v (%q), %d waiting; want until %v with %d waiting", n, a.PausedUntil, a.PausedReason, a.Waiting, midnight, len(msgs)-copied)
			}
			// The same day again: nothing is sent, the pause holds.
			before := d.g.Count("APPEND")
			again := runClocked(t, passwords, clock, args...)
			if b := again.report.Accounts[0]; again.code != exitOK || b.Copied != 0 || b.PausedUntil == nil || d.g.Count("APPEND") != before {
				t.Fatalf("day %d, again: exit %d, copied %d, paused until %v, %d APPENDs sent\n%s", n, again.code, b.Copied, b.PausedUntil, d.g.Count("APPEND")-before, again.stderr)
			}
		}
		clock.Set(midnight.Add(time.Minute))
		d.g.ResetDailyUpload()
	}
	var got [][]byte
	for _, m := range d.g.Messages("alice", "INBOX") {
		got = append(got, m.Body)
	}
	assertSameMultiset(t, served, got)
}

// TestProviderGmailDroppedNoMessageID: Gmail answers an APPEND OK and
// stores nothing when it drops a message; a message without a Message-ID
// cannot be looked up by it, and was recorded as copied on trust. Now its
// copy is confirmed by its bytes among what the mailbox received since the
// batch began: the message Gmail dropped (the hook answers its APPEND OK
// without storing it) is failed with the reason, not recorded (exit 3),
// and the next run copies it; in the end every message is there once and
// verify agrees. Two messages with the same bytes and no Message-ID are
// both copied and each recorded at its own UID.
func TestProviderGmailDroppedNoMessageID(t *testing.T) {
	o := providerfake.Gmail()
	o.Duplicates = providerfake.DuplicatesDropped
	var dropped atomic.Int32
	o.Hook = func(c providerfake.Call) *providerfake.Reply {
		if c.Name == "APPEND" && c.N == 2 {
			dropped.Add(1)
			return &providerfake.Reply{Status: "OK", Text: "APPEND completed."}
		}
		return nil
	}
	d := startGmailDest(t, o)
	twin := []byte("From: carol@example.org\r\nSubject: twin\r\n\r\nthe same bytes twice\r\n")
	msgs := [][]byte{
		[]byte("From: carol@example.org\r\nSubject: one\r\n\r\nno Message-ID\r\n"),
		[]byte("From: carol@example.org\r\nSubject: two\r\n\r\nno Message-ID either\r\n"),
		twin,
		[]byte("From: carol@example.org\r\nSubject: three\r\n\r\nand none here\r\n"),
		twin,
	}
	seed(t, d.p, msgs)
	args := d.args("--dest-sessions", "1")
	r := runInProcess(t, passwords, args...)
	a := r.report.Accounts[0]
	if dropped.Load() != 1 {
		t.Fatalf("the hook dropped %d APPENDs, want 1", dropped.Load())
	}
	if r.code != exitPartial || a.Copied != len(msgs)-1 || a.Failed != 1 {
		t.Fatalf("first run: exit %d, copied %d, failed %d; want 3, %d, 1 (the dropped one not recorded)\n%s", r.code, a.Copied, a.Failed, len(msgs)-1, r.stderr)
	}
	if !strings.Contains(a.Failures[0].Reason, "holds no message with these bytes") {
		t.Errorf("failure %+v; want the reason that nothing with its bytes is there", a.Failures[0])
	}
	again := runInProcess(t, passwords, args...)
	if b := again.report.Accounts[0]; again.code != exitOK || b.Copied != 1 {
		t.Errorf("second run: exit %d, copied %d; want 0, 1\n%s", again.code, b.Copied, again.stderr)
	}
	assertSameMultiset(t, msgs, bodiesOf(d.g, "INBOX"))
	v := runInProcess(t, passwords, "verify", "pop3s://alice@"+d.p.src.POP3SAddr(), "imap://alice@"+d.g.Addr()+"/INBOX?tls=none",
		"--tls-ca", d.p.src.CAFile(), "--allow-plaintext", "--state", d.state, "--full")
	if v.code != exitOK || !strings.Contains(v.stdout, fmt.Sprintf("%d match", len(msgs))) {
		t.Errorf("verify --full: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// TestProviderGmailCrawl: after its daily upload allowance Gmail may take
// APPENDs ever more slowly instead of refusing them. The hook makes every
// APPEND after the third take 300 ms (a crawl, against a few milliseconds
// before); with a crawl rule of one second the account pauses until the
// next quota day as at the daily limit: no failure (exit 0), what Gmail
// took is recorded and nothing else, the same day again sends nothing,
// and the next day, the crawl over, copies the rest: every message there
// once. Without the crawl watch the run crawled on to the end (or to the
// idle timeout, a failed attempt).
func TestProviderGmailCrawl(t *testing.T) {
	o := providerfake.Gmail()
	var crawling atomic.Bool
	crawling.Store(true)
	o.Hook = func(c providerfake.Call) *providerfake.Reply {
		if c.Name == "APPEND" && c.N > 3 && crawling.Load() {
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	}
	msgs := bigMessages(12, 20_000)
	d := startGmailDest(t, o)
	seed(t, d.p, msgs)
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 10*time.Hour)
	clock := fakeclock.New(day)
	midnight := day.Truncate(24 * time.Hour).Add(24 * time.Hour)
	runDay := func(args ...string) runResult {
		t.Helper()
		var stdout, stderr bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: passwords, clock: clock,
			crawl: pipeline.CrawlRule{Window: time.Second, Factor: 20, Floor: 1}}
		r := runResult{code: run(context.Background(), args, e), stdout: stdout.String(), stderr: stderr.String()}
		if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil {
			t.Fatalf("the --json report does not parse: %v\n%s", err, stdout.String())
		}
		return r
	}
	args := d.args("--batch-messages", "1", "--dest-sessions", "1", "--timezone", "UTC")
	r := runDay(args...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Error != "" || a.Failed != 0 {
		t.Fatalf("crawling day: exit %d, error %q, failed %d; want 0 (a paused account is no failure)\n%s", r.code, a.Error, a.Failed, r.stderr)
	}
	if a.PausedUntil == nil || !a.PausedUntil.Equal(midnight) || !strings.Contains(a.PausedReason, "crawl") {
		t.Fatalf("paused until %v (%q); want until %v for the crawl\n%s", a.PausedUntil, a.PausedReason, midnight, r.stderr)
	}
	if a.Copied <= 3 || a.Copied >= len(msgs) || len(d.g.Messages("alice", "INBOX")) != a.Copied {
		t.Errorf("copied %d, Gmail holds %d; want some after the third, as many as recorded", a.Copied, len(d.g.Messages("alice", "INBOX")))
	}
	before := d.g.Count("APPEND")
	again := runDay(args...)
	if b := again.report.Accounts[0]; again.code != exitOK || b.Copied != 0 || b.PausedUntil == nil || d.g.Count("APPEND") != before {
		t.Errorf("same day again: exit %d, copied %d, paused until %v, %d APPENDs sent\n%s", again.code, b.Copied, b.PausedUntil, d.g.Count("APPEND")-before, again.stderr)
	}
	crawling.Store(false)
	clock.Set(midnight.Add(time.Minute))
	next := runDay(args...)
	if b := next.report.Accounts[0]; next.code != exitOK || b.Copied != len(msgs)-a.Copied || b.PausedUntil != nil {
		t.Errorf("next day: exit %d, copied %d, paused until %v; want 0, %d, not paused\n%s", next.code, b.Copied, b.PausedUntil, len(msgs)-a.Copied, next.stderr)
	}
	assertSameMultiset(t, msgs, bodiesOf(d.g, "INBOX"))
}
