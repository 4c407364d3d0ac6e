package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailferry/mailferry/pipeline"
)

// TestSummaryTableFitsWidth: the table of a run fits the terminal's width,
// long account names shortened in the middle; the lines under it say
// which account each is about.
func TestSummaryTableFitsWidth(t *testing.T) {
	long := "pop3s://alice.longname@pop.old-provider.example:995 -> imaps://alice.longname%40new.example@imap.new.example:993/INBOX"
	stats := []*pipeline.Stats{
		{Account: "bob", LedgerKey: "k1", Listed: 12, Copied: 12, Bytes: 1_234_567, Seconds: 3.2},
		{Account: long, LedgerKey: "k2", Listed: 20000, Copied: 19999, AlreadyDone: 1, Failed: 1, Bytes: 2_000_000_000, Seconds: 1234.5,
			Failures: []pipeline.Skip{{Key: "UIDL-7", Reason: "NO refused"}}},
		{Account: "carol@example.org", LedgerKey: "k3", Error: "connecting to the source: LOGIN refused", ErrorClass: "fatal", Hint: "check the password"},
	}
	for _, width := range []int{80, 100, 200} {
		r := newReport("run", false, time.Now(), stats, false)
		var b bytes.Buffer
		r.writeText(&b, width)
		out := b.String()
		table := strings.SplitN(out, "\n\n", 2)[0]
		for _, l := range strings.Split(table, "\n") {
			if n := utf8.RuneCountInString(l); n > width {
				t.Errorf("width %d: a table line has %d columns: %q", width, n, l)
			}
		}
		if width < 150 && !strings.Contains(table, "…") {
			t.Errorf("width %d: the long name is not shortened:\n%s", width, table)
		}
		if width == 200 && !strings.Contains(table, long) {
			t.Errorf("width 200: the long name is shortened though it fits:\n%s", table)
		}
		for _, want := range []string{
			"carol@example.org: error (fatal): connecting to the source: LOGIN refused\n",
			"carol@example.org: hint: check the password\n",
			long + ": failed UIDL-7 (the next run tries again): NO refused\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("width %d: the summary lacks %q:\n%s", width, want, out)
			}
		}
	}
}

func TestElide(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"alice", 10, "alice"},
		{"alice.longname@example.org", 12, "alice.…e.org"},
		{"abcdef", 5, "ab…ef"},
		{"äöüßéè", 4, "äö…è"},
	}
	for _, tc := range tests {
		if got := elide(tc.in, tc.n); got != tc.want || utf8.RuneCountInString(got) > max(tc.n, utf8.RuneCountInString(tc.in)) {
			t.Errorf("elide(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestSummaryWording: JSON keeps "->" as it is, a dry run prints no rate,
// and counts of one are singular.
func TestSummaryWording(t *testing.T) {
	st := &pipeline.Stats{Account: "pop3s://alice@old:995 -> imaps://alice@new:993", LedgerKey: "pop3://alice@old:995 -> imap://alice@new:993/INBOX",
		Listed: 1, Copied: 1, Bytes: 2000, Seconds: 0.5}
	r := newReport("copy", false, time.Now().Add(-time.Second), []*pipeline.Stats{st}, false)
	var j bytes.Buffer
	if err := r.writeJSON(&j); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(j.String(), `\u003e`) || !strings.Contains(j.String(), `"account": "pop3s://alice@old:995 -> imaps://alice@new:993"`) ||
		!strings.Contains(j.String(), `"ledger_key": "pop3://alice@old:995 -> imap://alice@new:993/INBOX"`) {
		t.Errorf("JSON report:\n%s", j.String())
	}
	var b bytes.Buffer
	r.writeText(&b, 80)
	if !strings.HasPrefix(b.String(), "pop3s://alice@old:995 -> imaps://alice@new:993\n") || !strings.Contains(b.String(), "copied 1 of 1 message,") ||
		!strings.Contains(b.String(), "msg/s") {
		t.Errorf("summary:\n%s", b.String())
	}

	r = newReport("copy", true, time.Now().Add(-time.Second), []*pipeline.Stats{st}, false)
	b.Reset()
	r.writeText(&b, 80)
	if strings.Contains(b.String(), "msg/s") || strings.Contains(b.String(), "MB/s") || !strings.Contains(b.String(), "would copy 1 of 1 message") {
		t.Errorf("a dry run's summary:\n%s", b.String())
	}
}

// TestUsageWording: "got 1 argument", not "1 arguments".
func TestUsageWording(t *testing.T) {
	r := runInProcess(t, func(string) string { return "" }, "copy", "pop3s://alice@127.0.0.1:1")
	if r.code != exitUsage || !strings.Contains(r.stderr, "got 1 argument\n") {
		t.Errorf("copy with one URL: exit %d\n%s", r.code, r.stderr)
	}
}

// TestDidYouMean: an unknown flag or command names the nearest ones.
func TestDidYouMean(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--dry-rn", "a", "b"}, "unknown flag: --dry-rn; did you mean --dry-run?"},
		{[]string{"run", "--creat-folders", "-c", "x.toml"}, "unknown flag: --creat-folders; did you mean --create-folders?"},
		{[]string{"verify", "--stric=true"}, "unknown flag: --stric; did you mean --strict?"},
		{[]string{"cpy"}, `unknown command "cpy"; did you mean "copy"?`},
	} {
		r := runInProcess(t, noEnv, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q\n%s", tc.args, r.code, exitUsage, tc.want, r.stderr)
		}
	}
	if r := runInProcess(t, noEnv, "copy", "--zzzzzzzz"); strings.Contains(r.stderr, "did you mean") {
		t.Errorf("a flag near nothing got a suggestion:\n%s", r.stderr)
	}
}
