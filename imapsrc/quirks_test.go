package imapsrc

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// TestOptionalRefused: a server that advertises NAMESPACE, LIST-EXTENDED,
// ESEARCH and UIDPLUS and answers BAD to each. The session opens, lists
// its folders and messages all the same; Delete marks nothing deleted for
// good and says ErrNoUIDPlus; a second session of the account (same
// Quirks) asks for none of them.
func TestOptionalRefused(t *testing.T) {
	caps := "IMAP4rev1 UIDPLUS NAMESPACE LIST-EXTENDED SPECIAL-USE ESEARCH"
	srv := startScript(t, func(int) map[string]handler {
		return map[string]handler{
			"LOGIN":     reply("$TAG OK [CAPABILITY " + caps + "] logged in\r\n"),
			"NAMESPACE": reply("$TAG BAD Invalid command\r\n"),
			"LIST": func(tag, line string) (string, bool) {
				if strings.Contains(line, "RETURN") {
					return "$TAG BAD LIST Invalid arguments\r\n", false
				}
				return "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Archive\r\n$TAG OK done\r\n", false
			},
			"UID SEARCH": func(tag, line string) (string, bool) {
				if strings.Contains(line, "RETURN") {
					return "$TAG BAD Invalid search\r\n", false
				}
				return "* SEARCH 5\r\n$TAG OK done\r\n", false
			},
			"UID FETCH":   reply("* 1 FETCH (UID 5 FLAGS (\\Seen) INTERNALDATE \"01-Jan-2020 10:00:00 +0000\" RFC822.SIZE 12)\r\n$TAG OK done\r\n"),
			"SELECT":      reply("* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n$TAG OK [READ-WRITE] done\r\n"),
			"UID STORE":   reply("$TAG OK done\r\n"),
			"UID EXPUNGE": reply("$TAG BAD Invalid command\r\n"),
		}
	})
	opts := srv.opts()
	opts.Quirks = imapconn.NewQuirks(nil, nil)
	s := openSource(t, opts)
	folders, err := s.Folders(t.Context())
	if err != nil || len(folders) != 2 {
		t.Fatalf("Folders = %v, %v; want INBOX and Archive", folders, err)
	}
	msgs, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var inbox int
	for _, m := range msgs {
		if m.Mailbox == "INBOX" {
			inbox++
		}
	}
	if inbox != 1 {
		t.Fatalf("List = %+v, want UID 5 in INBOX", msgs)
	}
	if err := s.Delete(t.Context(), msgs[:1]); !errors.Is(err, ErrNoUIDPlus) {
		t.Fatalf("Delete = %v, want ErrNoUIDPlus", err)
	}
	unmarked := slices.ContainsFunc(srv.received(), func(c string) bool { return strings.Contains(c, "-FLAGS.SILENT (\\Deleted)") })
	if !unmarked {
		t.Errorf("\\Deleted not taken off after the refused UID EXPUNGE: %q", srv.received())
	}
	for _, f := range []string{imapconn.FeatureNamespace, imapconn.FeatureListReturn, imapconn.FeatureESearch, imapconn.FeatureUIDExpunge} {
		if !opts.Quirks.Refused(f) {
			t.Errorf("%s not remembered as refused: %q", f, opts.Quirks.List())
		}
	}

	before := len(srv.received())
	s2 := openSource(t, opts)
	if _, err := s2.Folders(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.ListAll(t.Context(), s2); err != nil {
		t.Fatal(err)
	}
	for _, c := range srv.received()[before:] {
		if strings.Contains(c, "NAMESPACE") || strings.Contains(c, "RETURN") {
			t.Errorf("second session sent %q, refused before", c)
		}
	}
}
