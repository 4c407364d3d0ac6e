package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/cyrus"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
)

// TestInteropMirrorEmailID: a Cyrus source (OBJECTID, RFC 8474) into
// Dovecot. The bulk pass stores each copy's EMAILID in the ledger; after
// 5 messages moved at the source, the mirror pass moves their copies
// without reading one message from the source (the trace holds no
// BODY.PEEK[]): their EMAILIDs name them. Two messages of the same bytes
// moved to two folders share their EMAILID on Cyrus (derived from the
// bytes), so that pair is matched as by digest: each target folder gets
// one copy, none is appended again or lost.
func TestInteropMirrorEmailID(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	src := cyrus.Start(t, cyrus.Options{CA: ca, Separator: "/", Users: map[string]string{"alice": srcPassword}})
	dst := dovecot.Start(t, dovecot.Options{CA: ca, Users: map[string]string{"alice": dstPassword}})
	ctx := context.Background()
	c, err := imapclient.DialTLS(src.IMAPSAddr(), &imapclient.Options{TLSConfig: src.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", srcPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, mb := range []string{"Work", "Archive", "Twin1", "Twin2"} {
		if err := c.Create(mb, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2022, 3, 1, 8, 0, 0, 0, time.UTC)
	twin := "Message-ID: <twin@example.test>\r\nSubject: twin\r\n\r\nthe same bytes\r\n"
	for i := range 10 {
		body := fmt.Sprintf("Message-ID: <w%d@example.test>\r\nSubject: work %d\r\n\r\nbody %d\r\n", i, i, i)
		if i >= 8 {
			body = twin
		}
		if err := src.Append(ctx, "alice", "Work", []byte(body), []string{`\Seen`}, base.Add(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir() + "/state.db"
	args := func(extra ...string) []string {
		return append([]string{"copy", "imaps://alice@" + src.IMAPSAddr(), "imaps://alice@" + dst.IMAPSAddr(),
			"--tls-ca", dst.CAFile(), "--state", state, "--json", "--progress", "none", "--mirror"}, extra...)
	}
	r := runInProcess(t, passwords, args()...)
	if a := r.report.Accounts[0]; r.code != exitOK || a.Copied != 10 {
		t.Fatalf("bulk pass: exit %d, copied %d; want 0, 10\n%s", r.code, a.Copied, r.stderr)
	}
	db, err := sql.Open("sqlite", state+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var withID, distinct int
	db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT source_emailid) FROM messages WHERE state = 'done' AND source_emailid LIKE 'M%'`).Scan(&withID, &distinct)
	if withID != 10 || distinct != 9 {
		t.Errorf("the ledger holds %d copies with an EMAILID, %d distinct; want 10 and 9 (the twins share one)", withID, distinct)
	}

	if _, err := c.Select("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, mv := range []struct {
		uids imap.UIDSet
		to   string
	}{{imap.UIDSet{{Start: 2, Stop: 6}}, "Archive"}, {imap.UIDSetNum(9), "Twin2"}, {imap.UIDSetNum(10), "Twin1"}} {
		if _, err := c.Move(mv.uids, mv.to).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	r = runInProcess(t, passwords, args("--trace")...)
	a := r.report.Accounts[0]
	if r.code != exitOK || a.Moved != 7 || a.Copied != 0 || a.Removed != 0 {
		t.Fatalf("mirror pass: exit %d, moved %d, copied %d, removed %d; want 0, 7, 0, 0\n%s", r.code, a.Moved, a.Copied, a.Removed, r.stderr)
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "imapsrc") && strings.Contains(l, "BODY.PEEK[]") {
			t.Errorf("the mirror pass read a message from the source to find the moves: %s", l)
		}
	}
	for _, mb := range []string{"Work", "Archive", "Twin1", "Twin2"} {
		want, err := src.Messages(ctx, "alice", mb)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range destMessagesOf(t, dst, "alice", dstPassword, mb) {
			got = append(got, string(m.body))
		}
		slices.Sort(got)
		bodies := func(ms []mailserver.Message) []string {
			var out []string
			for _, m := range ms {
				out = append(out, string(m.Body))
			}
			slices.Sort(out)
			return out
		}
		if g, w := got, bodies(want); !slices.Equal(g, w) {
			t.Errorf("destination %s holds %d messages, the source %d; or other bytes", mb, len(g), len(w))
		}
	}
}
