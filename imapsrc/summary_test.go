package imapsrc

import (
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/pipeline"
)

// TestFolderSummaries: with CONDSTORE, one STATUS (MESSAGES UIDNEXT
// UIDVALIDITY HIGHESTMODSEQ) per included folder, sent before any reply
// is read; a folder with NOMODSEQ or whose STATUS fails is left out (it is
// listed); without CONDSTORE, or where the server refuses the item,
// nothing is asked and there are no summaries; LeaveOut holds for the
// next List only.
func TestFolderSummaries(t *testing.T) {
	const condstore = "$TAG OK [CAPABILITY IMAP4rev1 UIDPLUS CONDSTORE] logged in\r\n"
	list := reply("* LIST () \"/\" INBOX\r\n* LIST () \"/\" Sent\r\n* LIST () \"/\" Gone\r\n* LIST () \"/\" Plain\r\n$TAG OK done\r\n")
	status := func(_, line string) (string, bool) {
		switch {
		case strings.Contains(line, "Sent"):
			return "* STATUS Sent (MESSAGES 4 UIDNEXT 9 UIDVALIDITY 7 HIGHESTMODSEQ 12)\r\n$TAG OK done\r\n", false
		case strings.Contains(line, "INBOX"):
			return "* STATUS INBOX (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 7 HIGHESTMODSEQ 40)\r\n$TAG OK done\r\n", false
		case strings.Contains(line, "Plain"): // NOMODSEQ
			return "* STATUS Plain (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 HIGHESTMODSEQ 0)\r\n$TAG OK done\r\n", false
		}
		return "$TAG NO [NONEXISTENT] no such mailbox\r\n", false
	}
	cases := []struct {
		name     string
		handlers map[string]handler
		want     []pipeline.FolderSummary
		ok       bool
		refused  bool
	}{
		{"condstore", map[string]handler{"LOGIN": reply(condstore), "LIST": list, "STATUS": status}, []pipeline.FolderSummary{
			{Mailbox: "INBOX", Generation: KeyPrefix("INBOX", 7), UIDValidity: 7, UIDNext: 10, HighestModSeq: 40, Messages: 3},
			{Mailbox: "Sent", Generation: KeyPrefix("Sent", 7), UIDValidity: 7, UIDNext: 9, HighestModSeq: 12, Messages: 4},
		}, true, false},
		{"no condstore", map[string]handler{"LIST": list, "STATUS": status}, nil, false, false},
		{"item refused", map[string]handler{"LOGIN": reply(condstore), "LIST": list,
			"STATUS": reply("$TAG BAD unknown status item\r\n")}, nil, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler { return c.handlers })
			opts := srv.opts()
			opts.Quirks = imapconn.NewQuirks(nil, nil)
			s := openSource(t, opts)
			got, ok, err := s.FolderSummaries(t.Context())
			if err != nil || ok != c.ok || !slices.Equal(got, c.want) {
				t.Errorf("FolderSummaries = %+v, %v, %v; want %+v, %v", got, ok, err, c.want, c.ok)
			}
			if r := opts.Quirks.Refused(imapconn.FeatureCondStore); r != c.refused {
				t.Errorf("CONDSTORE refused: %v, want %v", r, c.refused)
			}
			var statuses []string
			for _, l := range srv.received() {
				if _, rest, _ := strings.Cut(l, " "); strings.HasPrefix(rest, "STATUS") {
					statuses = append(statuses, rest)
				}
			}
			if c.handlers["LOGIN"] == nil && len(statuses) != 0 {
				t.Errorf("without CONDSTORE the source was asked %q", statuses)
			}
			if c.ok && (len(statuses) != 4 || !strings.Contains(statuses[0], "HIGHESTMODSEQ")) {
				t.Errorf("STATUS commands %q; want one per folder asking HIGHESTMODSEQ", statuses)
			}
			if !c.ok {
				return
			}
			// LeaveOut: the next List examines neither INBOX nor Sent; the
			// one after it lists everything again.
			s.LeaveOut([]string{"INBOX", "Sent", "Gone", "Plain"})
			before := len(srv.received())
			if err := s.List(t.Context(), func([]pipeline.SourceMessage) error { return nil }); err != nil {
				t.Fatal(err)
			}
			for _, l := range srv.received()[before:] {
				if strings.Contains(l, "EXAMINE") {
					t.Errorf("a folder left out was examined: %q", l)
				}
			}
			before = len(srv.received())
			_ = s.List(t.Context(), func([]pipeline.SourceMessage) error { return nil })
			if !slices.ContainsFunc(srv.received()[before:], func(l string) bool { return strings.Contains(l, "EXAMINE") }) {
				t.Error("the List after the next one left folders out too")
			}
		})
	}
}

// TestFolderSummariesListStatus: where the server offers LIST-STATUS
// (RFC 5819), the LIST asks the folders' marks and FolderSummaries sends
// STATUS only for a folder the LIST gave none of (Gone), with the same
// summaries as TestFolderSummaries'; a server that refuses the LIST asking
// them is asked again without, and FolderSummaries sends STATUS for each
// folder, remembering the refusal.
func TestFolderSummariesListStatus(t *testing.T) {
	const login = "$TAG OK [CAPABILITY IMAP4rev1 UIDPLUS CONDSTORE LIST-EXTENDED LIST-STATUS] logged in\r\n"
	const folders = "* LIST () \"/\" INBOX\r\n* LIST () \"/\" Sent\r\n* LIST () \"/\" Gone\r\n* LIST () \"/\" Plain\r\n"
	inbox := "* STATUS INBOX (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 7 HIGHESTMODSEQ 40)\r\n"
	sent := "* STATUS Sent (MESSAGES 4 UIDNEXT 9 UIDVALIDITY 7 HIGHESTMODSEQ 12)\r\n"
	plain := "* STATUS Plain (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7 HIGHESTMODSEQ 0)\r\n"
	withStatus := reply("* LIST () \"/\" INBOX\r\n" + inbox + "* LIST () \"/\" Sent\r\n" + sent +
		"* LIST () \"/\" Gone\r\n* LIST () \"/\" Plain\r\n" + plain + "$TAG OK done\r\n")
	refusing := func(_, line string) (string, bool) {
		if strings.Contains(line, "STATUS") {
			return "$TAG BAD unknown return option\r\n", false
		}
		return folders + "$TAG OK done\r\n", false
	}
	status := func(_, line string) (string, bool) {
		switch {
		case strings.Contains(line, "Sent"):
			return sent + "$TAG OK done\r\n", false
		case strings.Contains(line, "INBOX"):
			return inbox + "$TAG OK done\r\n", false
		case strings.Contains(line, "Plain"):
			return plain + "$TAG OK done\r\n", false
		}
		return "$TAG NO [NONEXISTENT] no such mailbox\r\n", false
	}
	want := []pipeline.FolderSummary{
		{Mailbox: "INBOX", Generation: KeyPrefix("INBOX", 7), UIDValidity: 7, UIDNext: 10, HighestModSeq: 40, Messages: 3},
		{Mailbox: "Sent", Generation: KeyPrefix("Sent", 7), UIDValidity: 7, UIDNext: 9, HighestModSeq: 12, Messages: 4},
	}
	cases := []struct {
		name         string
		list         handler
		wantStatuses []string // the folders STATUS is sent for, by name
		refused      bool
	}{
		{"in the list", withStatus, []string{"Gone"}, false},
		{"list refused", refusing, []string{"Gone", "INBOX", "Plain", "Sent"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler {
				return map[string]handler{"LOGIN": reply(login), "LIST": c.list, "STATUS": status}
			})
			opts := srv.opts()
			opts.Quirks = imapconn.NewQuirks(nil, nil)
			s := openSource(t, opts)
			if _, err := s.Folders(t.Context()); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.FolderSummaries(t.Context())
			if err != nil || !ok || !slices.Equal(got, want) {
				t.Errorf("FolderSummaries = %+v, %v, %v; want %+v, true", got, ok, err, want)
			}
			var statuses []string
			var lists int
			for _, l := range srv.received() {
				_, rest, _ := strings.Cut(l, " ")
				if strings.HasPrefix(rest, "STATUS") {
					f := strings.Fields(rest)
					statuses = append(statuses, strings.Trim(f[1], `"`))
				}
				if strings.HasPrefix(rest, "LIST") {
					lists++
					// go-imap writes the items in no set order.
					_, items, _ := strings.Cut(rest, "STATUS (")
					for _, item := range []string{"MESSAGES", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ"} {
						if lists == 1 && !strings.Contains(items, item) {
							t.Errorf("LIST %q asks no %s", rest, item)
						}
					}
				}
			}
			if !slices.Equal(statuses, c.wantStatuses) {
				t.Errorf("STATUS sent for %q, want %q", statuses, c.wantStatuses)
			}
			if r := opts.Quirks.Refused(featureListStatus); r != c.refused {
				t.Errorf("LIST-STATUS refused: %v, want %v", r, c.refused)
			}
			if opts.Quirks.Refused(imapconn.FeatureListReturn) || opts.Quirks.Refused(imapconn.FeatureCondStore) {
				t.Errorf("other features refused: %q", opts.Quirks.List())
			}
			// The account's next session asks the marks in its LIST again
			// only where the server took them.
			before := len(srv.received())
			s2 := openSource(t, opts)
			if _, err := s2.Folders(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, l := range srv.received()[before:] {
				if _, rest, _ := strings.Cut(l, " "); strings.HasPrefix(rest, "LIST") && strings.Contains(rest, "STATUS") == c.refused {
					t.Errorf("second session sent %q (LIST-STATUS refused before: %v)", rest, c.refused)
				}
			}
		})
	}
}
