package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// sourceCommands returns the commands a traced run sent to the IMAP
// source whose name matches re (e.g. `EXAMINE|UID FETCH|UID SEARCH`), as
// the trace shows them.
func sourceCommands(stderr, re string) []string {
	cmd := regexp.MustCompile(`^trace: imapsrc \S+ (` + re + `)\b(.*)$`)
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if m := cmd.FindStringSubmatch(strings.TrimRight(line, "\r")); m != nil {
			out = append(out, m[1]+m[2])
		}
	}
	return out
}

// TestE2EUnchangedFoldersNotListed: on a source with CONDSTORE (Dovecot),
// a re-run sends no EXAMINE, UID SEARCH or UID FETCH to a folder whose
// UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and MESSAGES are those of its last
// complete pass (STATUS tells them), and reports what a full listing
// would; a flag change, a new message and an expunge have their folder,
// and only it, listed again and brought over.
func TestE2EUnchangedFoldersNotListed(t *testing.T) {
	p := imapPair(t)
	d := time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC)
	for _, m := range []seeded{
		{"INBOX", "Subject: in 1\r\n\r\none\r\n", "S", d},
		{"INBOX", "Subject: in 2\r\n\r\ntwo\r\n", "", d},
		{"INBOX", "Subject: in 3\r\n\r\nthree\r\n", "F", d},
		{"Archive.2019", "Subject: arch 1\r\n\r\narchived\r\n", "S", d},
		{"Archive.2019", "Subject: arch 2\r\n\r\narchived too\r\n", "S", d},
	} {
		if err := p.src.SeedMaildir("alice", m.folder, []byte(m.body), m.flags, m.date); err != nil {
			t.Fatal(err)
		}
	}
	listing := `EXAMINE|SELECT|UID SEARCH|UID FETCH|FETCH`
	run := func(what string) (pipeline.Stats, []string) {
		t.Helper()
		r := runInProcess(t, p.getenv, p.imapCopyArgs("--trace")...)
		if r.code != exitOK || len(r.report.Accounts) != 1 {
			t.Fatalf("%s: exit %d\n%s", what, r.code, r.stderr)
		}
		if len(sourceCommands(r.stderr, `STATUS`)) == 0 {
			t.Fatalf("%s: no STATUS sent to the source: the trace shows no CONDSTORE summary\n%s", what, r.stderr)
		}
		return *r.report.Accounts[0], sourceCommands(r.stderr, listing)
	}
	listed := func(cmds []string, mailbox string) bool {
		for _, c := range cmds {
			if strings.HasPrefix(c, "EXAMINE") && strings.Contains(c, mailbox) {
				return true
			}
		}
		return false
	}

	if st, cmds := run("first run"); st.Copied != 5 || !listed(cmds, "INBOX") || !listed(cmds, "Archive.2019") {
		t.Fatalf("first run: copied %d, source commands %q; want 5, both folders listed", st.Copied, cmds)
	}
	st, cmds := run("unchanged re-run")
	if len(cmds) != 0 {
		t.Errorf("unchanged re-run sent the source %q; want no listing of any folder", cmds)
	}
	if st.Copied != 0 || st.Listed != 5 || st.AlreadyDone != 5 {
		t.Errorf("unchanged re-run: copied %d, listed %d, already done %d; want 0, 5, 5", st.Copied, st.Listed, st.AlreadyDone)
	}

	// A flag set by another client moves Archive.2019's HIGHESTMODSEQ.
	if _, err := p.src.Doveadm("flags", "add", "-u", "alice", `\Flagged`, "mailbox", "Archive.2019", "subject", "arch 1"); err != nil {
		t.Fatal(err)
	}
	st, cmds = run("after a flag change")
	if st.FlagsUpdated != 1 || !listed(cmds, "Archive.2019") || listed(cmds, "INBOX") {
		t.Errorf("after a flag change: flags updated %d, source commands %q; want 1, Archive.2019 alone listed", st.FlagsUpdated, cmds)
	}
	if got, w := summary(destMessages(t, p, "Archive/2019")), summary(p.srcMessages(t, "Archive.2019")); strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Errorf("flags not brought over:\n got %q\nwant %q", got, w)
	}

	// A new message in INBOX.
	if err := p.src.SeedMaildir("alice", "INBOX", []byte("Subject: in 4\r\n\r\nnew\r\n"), "", d); err != nil {
		t.Fatal(err)
	}
	st, cmds = run("after a new message")
	if st.Copied != 1 || !listed(cmds, "INBOX") || listed(cmds, "Archive.2019") {
		t.Errorf("after a new message: copied %d, source commands %q; want 1, INBOX alone listed", st.Copied, cmds)
	}

	// An expunge in INBOX: the copy's entry is found gone.
	if _, err := p.src.Doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "subject", "in 2"); err != nil {
		t.Fatal(err)
	}
	st, cmds = run("after an expunge")
	if st.SourceGone != 1 || st.Listed != 5 || !listed(cmds, "INBOX") || listed(cmds, "Archive.2019") {
		t.Errorf("after an expunge: gone %d, listed %d, source commands %q; want 1, 5, INBOX alone listed", st.SourceGone, st.Listed, cmds)
	}

	if st, cmds = run("unchanged again"); len(cmds) != 0 || st.AlreadyDone != 5 || st.Copied != 0 {
		t.Errorf("unchanged again: source commands %q, already done %d, copied %d; want none, 5, 0", cmds, st.AlreadyDone, st.Copied)
	}
	if n := len(destMessages(t, p, "INBOX")); n != 4 {
		t.Errorf("destination INBOX holds %d, want 4 (nothing copied twice)", n)
	}
}
