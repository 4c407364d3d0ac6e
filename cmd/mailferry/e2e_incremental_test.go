package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// listedReplies counts the FETCH replies a traced run's listing got from
// the IMAP source: those with FLAGS (a body fetch asks for none, and is
// not traced).
func listedReplies(stderr string) int {
	re := regexp.MustCompile(`^trace: imapsrc \* \d+ FETCH \(.*\bFLAGS\b`)
	n := 0
	for _, line := range strings.Split(stderr, "\n") {
		if re.MatchString(line) {
			n++
		}
	}
	return n
}

// dovecotNoCondstore is Dovecot 2.3's capability list after login without
// CONDSTORE and QRESYNC (and without ESEARCH's neighbours that imply
// CONDSTORE): a server that keeps no mod-sequences, as far as clients can
// tell.
const dovecotNoCondstore = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS " +
	"THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 " +
	"ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY SPECIAL-USE LITERAL+"

// TestE2EIncrementalPasses: on a source with CONDSTORE, a re-run lists a
// changed folder by its changes since its last complete pass: after 100
// flag changes in a 5,000-message folder it fetches the attributes of
// those 100 messages alone (not of all 5,000) and brings their flags
// over; after 10 new messages, those 10 alone; an expunge is found (the
// folder is then listed whole and swept). Without ESEARCH the count of
// what is left comes from a plain UID SEARCH; without CONDSTORE every
// folder is listed whole each run, and the same changes are brought over.
func TestE2EIncrementalPasses(t *testing.T) {
	const big = 5000
	for _, tc := range []struct {
		name     string
		caps     string // imap_capability of the source; "" Dovecot's own
		condstor bool
	}{
		{"CONDSTORE", "", true},
		{"CONDSTORE without ESEARCH", strings.Replace(dovecotNoCondstore, "ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH", "CONDSTORE", 1), true},
		{"no CONDSTORE", dovecotNoCondstore, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, err := dovecot.NewCA()
			if err != nil {
				t.Fatal(err)
			}
			p := &pair{dir: t.TempDir()}
			p.src = dovecot.Start(t, dovecot.Options{Name: "mf-incsrc", CA: ca, Separator: ".", IMAPCapability: tc.caps,
				Users: map[string]string{"alice": srcPassword}})
			p.dst = dovecot.Start(t, dovecot.Options{Name: "mf-incdst", CA: ca, Users: map[string]string{"alice": dstPassword}})
			p.state = p.dir + "/state.db"
			if err := p.src.SeedMaildirBulk("alice", "Big", big, func(i int) []byte {
				return fmt.Appendf(nil, "Subject: big %d\r\nMessage-ID: <big%d@example.org>\r\n\r\nbody %d\r\n", i, i, i)
			}); err != nil {
				t.Fatal(err)
			}
			d := time.Date(2022, 3, 4, 5, 6, 7, 0, time.UTC)
			for i := range 3 {
				if err := p.src.SeedMaildir("alice", "INBOX", fmt.Appendf(nil, "Subject: in %d\r\n\r\nin\r\n", i), "S", d); err != nil {
					t.Fatal(err)
				}
			}
			type result struct {
				copied, flags, gone, listed, done, replies int
				cmds                                       []string
			}
			run := func(what string) result {
				t.Helper()
				r := runInProcess(t, p.getenv, p.imapCopyArgs("--trace")...)
				if r.code != exitOK || len(r.report.Accounts) != 1 {
					t.Fatalf("%s: exit %d\n%s", what, r.code, lastLines(r.stderr, 40))
				}
				st := r.report.Accounts[0]
				return result{copied: st.Copied, flags: st.FlagsUpdated, gone: st.SourceGone, listed: st.Listed, done: st.AlreadyDone,
					replies: listedReplies(r.stderr), cmds: sourceCommands(r.stderr, `UID SEARCH|UID FETCH|STATUS`)}
			}
			changedSince := func(cmds []string) bool {
				return strings.Contains(strings.Join(cmds, "\n"), "CHANGEDSINCE")
			}
			if r := run("first run"); r.copied != big+3 {
				t.Fatalf("first run copied %d, want %d", r.copied, big+3)
			}

			// 100 flag changes, by another client.
			if _, err := p.src.Doveadm("flags", "add", "-u", "alice", `\Flagged`, "mailbox", "Big", "uid", "1:50,2001:2050"); err != nil {
				t.Fatal(err)
			}
			r := run("after 100 flag changes")
			if r.flags != 100 || r.copied != 0 || r.gone != 0 || r.listed != big+3 || r.done != big+3 {
				t.Errorf("after 100 flag changes: flags updated %d, copied %d, gone %d, listed %d, already done %d; want 100, 0, 0, %d, %d",
					r.flags, r.copied, r.gone, r.listed, r.done, big+3, big+3)
			}
			if tc.condstor {
				if r.replies != 100 || !changedSince(r.cmds) {
					t.Errorf("after 100 flag changes: the listing got %d FETCH replies (commands %q); want those of the 100 changed messages alone, by CHANGEDSINCE",
						r.replies, r.cmds)
				}
			} else if r.replies < big/2 || changedSince(r.cmds) {
				// (A trace line of the listing can be cut by one of the
				// destination's flag updates going on meanwhile: at least
				// half of them is a listing of everything.)
				t.Errorf("without CONDSTORE: %d FETCH replies, commands %q; want every message listed, no CHANGEDSINCE", r.replies, r.cmds)
			}
			if got, want := summary(destMessages(t, p, "Big")), summary(p.srcMessages(t, "Big")); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("flags not brought over (%d destination messages, %d source)", len(got), len(want))
			}

			// 10 new messages.
			for i := range 10 {
				if err := p.src.SeedMaildir("alice", "Big", fmt.Appendf(nil, "Subject: new %d\r\n\r\nnew\r\n", i), "", d); err != nil {
					t.Fatal(err)
				}
			}
			r = run("after 10 new messages")
			if r.copied != 10 || r.gone != 0 || r.listed != big+13 || r.done != big+3 {
				t.Errorf("after 10 new messages: copied %d, gone %d, listed %d, already done %d; want 10, 0, %d, %d", r.copied, r.gone, r.listed, r.done, big+13, big+3)
			}
			if tc.condstor && r.replies != 10 {
				t.Errorf("after 10 new messages: the listing got %d FETCH replies (commands %q); want those of the 10 new ones", r.replies, r.cmds)
			}

			// An expunge, by another client: its copy's entry is found gone.
			if _, err := p.src.Doveadm("expunge", "-u", "alice", "mailbox", "Big", "uid", "3"); err != nil {
				t.Fatal(err)
			}
			r = run("after an expunge")
			if r.gone != 1 || r.listed != big+12 || r.copied != 0 {
				t.Errorf("after an expunge: gone %d, listed %d, copied %d; want 1, %d, 0", r.gone, r.listed, r.copied, big+12)
			}

			// Nothing changed: nothing listed where the server has CONDSTORE.
			r = run("unchanged")
			if r.copied != 0 || r.flags != 0 || r.gone != 0 || r.listed != big+12 || r.done != big+12 {
				t.Errorf("unchanged: copied %d, flags %d, gone %d, listed %d, done %d; want 0, 0, 0, %d, %d",
					r.copied, r.flags, r.gone, r.listed, r.done, big+12, big+12)
			}
			if tc.condstor && r.replies != 0 {
				t.Errorf("unchanged: %d FETCH replies; want none", r.replies)
			}
			if n := len(destMessages(t, p, "Big")); n != big+10 {
				t.Errorf("destination Big holds %d, want %d (one expunged at the source stays; nothing twice)", n, big+10)
			}
		})
	}
}
