package imapsrc

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/cyrus"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestEmailIDCyrus: Cyrus 3.6 has OBJECTID (RFC 8474); List gives every
// message the EMAILID the server holds for it, the same after a MOVE to
// another folder. Cyrus derives it from the message's bytes ("M" and 24
// hex digits of its GUID, a SHA-1 of the bytes): two messages of the same
// bytes share it, so on Cyrus it tells no more than the digest does, but
// it is known without reading the message.
func TestEmailIDCyrus(t *testing.T) {
	srv := cyrus.Start(t, cyrus.Options{Users: map[string]string{"alice": "pw-alice"}, Separator: "/"})
	c, err := imapclient.DialTLS(srv.IMAPSAddr(), &imapclient.Options{TLSConfig: srv.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw-alice").Wait(); err != nil {
		t.Fatal(err)
	}
	for _, mb := range []string{"A", "B"} {
		if err := c.Create(mb, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	same := crlfMessage("same", "the same bytes twice")
	for _, body := range []string{crlfMessage("one", "once"), same, same} {
		cmd := c.Append("A", int64(len(body)), &imap.AppendOptions{Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)})
		cmd.Write([]byte(body))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(), User: "alice", Password: secret.New("pw-alice")}
	list := func() map[string][]pipeline.SourceMessage {
		s := openSource(t, opts)
		defer s.Close(false)
		got := map[string][]pipeline.SourceMessage{}
		if err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
			for _, m := range page {
				got[m.Mailbox] = append(got[m.Mailbox], m)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	cyrusID := regexp.MustCompile(`^M[0-9a-f]{24}$`)
	before := list()["A"]
	if len(before) != 3 {
		t.Fatalf("A lists %d messages, want 3", len(before))
	}
	for _, m := range before {
		if !cyrusID.MatchString(m.EmailID) {
			t.Errorf("%q: EMAILID %q, want Cyrus's M and 24 hex digits", m.Key, m.EmailID)
		}
	}
	if before[0].EmailID == before[1].EmailID || before[1].EmailID != before[2].EmailID {
		t.Errorf("EMAILIDs %q, %q, %q: want the two messages of the same bytes to share one (Cyrus derives it from the bytes), the other its own",
			before[0].EmailID, before[1].EmailID, before[2].EmailID)
	}

	if _, err := c.Select("A", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.UIDSetNum(1), "B").Wait(); err != nil {
		t.Fatal(err)
	}
	after := list()
	if len(after["B"]) != 1 || after["B"][0].EmailID != before[0].EmailID {
		t.Errorf("after UID MOVE 1 to B, B lists %+v; want the message with EMAILID %q", after["B"], before[0].EmailID)
	}

	// Listed by its changes (CONDSTORE): the new message has its EMAILID.
	s := openSource(t, opts)
	last, _, err := s.FolderSummaries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.Close(false)
	fresh := crlfMessage("fresh", "came later")
	cmd := c.Append("B", int64(len(fresh)), nil)
	cmd.Write([]byte(fresh))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	s = openSource(t, opts)
	now, _, err := s.FolderSummaries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var since []pipeline.FolderSince
	for i, m := range now {
		if m.Mailbox == "B" {
			since = append(since, pipeline.FolderSince{Last: last[i], Now: m})
		}
	}
	s.ListChanges(since)
	var got []pipeline.SourceMessage
	if err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
		for _, m := range page {
			if m.Mailbox == "B" {
				got = append(got, m)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(s.Changes()) != 1 || len(got) != 1 || !cyrusID.MatchString(got[0].EmailID) || got[0].EmailID == before[0].EmailID {
		t.Errorf("B listed by its changes (%d): %+v; want the new message alone, with an EMAILID of its own", len(s.Changes()), got)
	}
}

// TestEmailIDDovecot: Dovecot 2.3 has no OBJECTID (it answers BAD to
// EMAILID): List does not ask, and every message has no EMAILID.
func TestEmailIDDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}})
	if err := srv.SeedMaildir("alice", "INBOX", []byte(crlfMessage("plain", "hello")), "", time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	s := openSource(t, Options{Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(), User: "alice", Password: secret.New("s3cret")})
	n := 0
	if err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
		for _, m := range page {
			n++
			if m.EmailID != "" {
				t.Errorf("%q: EMAILID %q from a server without OBJECTID", m.Key, m.EmailID)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("listed %d, want 1", n)
	}
}

// TestEmailIDScripted: a scripted server that advertises OBJECTID. One
// that sends EMAILIDs has them on its messages (one that is no objectid is
// dropped, not stored); one that answers BAD to the item is listed
// without it, the refusal remembered so that the next listing does not ask.
func TestEmailIDScripted(t *testing.T) {
	listing := func(ids [2]string) string {
		out := ""
		for i, id := range ids {
			extra := ""
			if id != "" {
				extra = " EMAILID (" + id + ")"
			}
			out += fmt.Sprintf("* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE \"01-Jan-2020 00:00:00 +0000\" RFC822.SIZE 10%s)\r\n", i+1, i+1, extra)
		}
		return out + "$TAG OK done\r\n"
	}
	for _, tc := range []struct {
		name    string
		refuse  bool
		sent    [2]string
		want    [2]string
		refused bool
	}{
		{"sends EMAILIDs", false, [2]string{"M0123_abc-Z", "not an objectid!"}, [2]string{"M0123_abc-Z", ""}, false},
		{"refuses EMAILID", true, [2]string{}, [2]string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler {
				return map[string]handler{
					"LOGIN":      reply("$TAG OK [CAPABILITY IMAP4rev1 UIDPLUS OBJECTID] logged in\r\n"),
					"LIST":       reply("* LIST () \"/\" INBOX\r\n$TAG OK done\r\n"),
					"UID SEARCH": reply("* SEARCH 1 2\r\n$TAG OK done\r\n"),
					"UID FETCH": func(tag, line string) (string, bool) {
						asked := strings.Contains(line, "EMAILID")
						if asked && tc.refuse {
							return "$TAG BAD Error in IMAP command UID FETCH: Unknown parameter EMAILID\r\n", false
						}
						if !asked {
							return listing([2]string{}), false
						}
						return listing(tc.sent), false
					},
				}
			})
			opts := srv.opts()
			opts.Quirks = imapconn.NewQuirks(nil, nil)
			s := openSource(t, opts)
			for pass := 1; pass <= 2; pass++ {
				var got []string
				if err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
					for _, m := range page {
						got = append(got, m.EmailID)
					}
					return nil
				}); err != nil {
					t.Fatalf("pass %d: %v", pass, err)
				}
				if len(got) != 2 || got[0] != tc.want[0] || got[1] != tc.want[1] {
					t.Errorf("pass %d: EMAILIDs %q, want %q", pass, got, tc.want)
				}
				if r := opts.Quirks.Refused(imapconn.FeatureObjectID); r != tc.refused {
					t.Errorf("pass %d: EMAILID remembered as refused: %v, want %v", pass, r, tc.refused)
				}
			}
			asked := 0
			for _, c := range srv.received() {
				if strings.Contains(c, "EMAILID") {
					asked++
				}
			}
			if want := map[bool]int{false: 2, true: 1}[tc.refuse]; asked != want {
				t.Errorf("EMAILID asked for %d times in two listings, want %d: %q", asked, want, srv.received())
			}
		})
	}
}
