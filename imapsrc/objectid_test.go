package imapsrc

import (
	"regexp"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

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
