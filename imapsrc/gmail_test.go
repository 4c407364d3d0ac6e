package imapsrc

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/providerfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/secret"
)

// gmailSource starts an emulated Gmail with alice's labelled mail and
// returns it and the options to read it.
func gmailSource(t *testing.T) (*providerfake.Server, Options) {
	t.Helper()
	g := providerfake.Start(t, providerfake.Gmail())
	g.AddUser("alice", "pw")
	date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	add := func(id string, labels []string, flags ...string) {
		body := []byte(fmt.Sprintf("From: b@example.org\r\nMessage-ID: <%s@example.org>\r\nSubject: %s\r\n\r\n%s\r\n", id, id, id))
		g.Add("alice", "INBOX", providerfake.Message{Body: body, Labels: labels, Flags: flags, Date: date})
	}
	add("inbox-work", []string{`\Inbox`, "Work", `\Important`}, `\Seen`)
	add("work-private", []string{"Work", "Private/Grüße"})
	add("archived", []string{}, `\Seen`, `\Flagged`)
	add("sent", []string{`\Sent`, `\Important`}, `\Seen`)
	add("trashed", []string{`\Trash`})
	add("spam", []string{`\Spam`})
	return g, Options{Addr: g.Addr(), TLS: TLSNone, AllowPlaintext: true, User: "alice", Password: secret.New("pw")}
}

// TestGmailOneCopy: each message once, keyed by X-GM-MSGID, in the folder
// of one of its labels, its other labels as keywords; archived mail in All
// Mail; Trash and Spam as folders; nothing from Important or Starred. The
// server is told Gmail by its capabilities, with no provider given.
func TestGmailOneCopy(t *testing.T) {
	g, opts := gmailSource(t)
	s := openSource(t, opts)
	if s.Provider() != provider.Gmail {
		t.Fatalf("Provider() = %v, want gmail", s.Provider())
	}
	msgs, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pipeline.SourceMessage{}
	for _, m := range msgs {
		if _, ok := ParseGmailKey(m.Key); !ok || m.Seq == 0 {
			t.Errorf("key %q (seq %d) is not a Gmail key", m.Key, m.Seq)
		}
		got[subject(t, s, m)] = m
	}
	want := map[string]struct {
		mailbox string
		flags   []string
	}{
		"inbox-work":   {"INBOX", []string{`\Seen`, "Work", "$Important"}},
		"work-private": {"Private/Grüße", []string{"Work"}},
		"archived":     {"[Gmail]/All Mail", []string{`\Seen`, `\Flagged`}},
		"sent":         {"[Gmail]/Sent Mail", []string{`\Seen`, "$Important"}},
		"trashed":      {"[Gmail]/Trash", []string{}},
		"spam":         {"[Gmail]/Spam", []string{}},
	}
	if len(got) != len(want) || len(msgs) != len(want) {
		t.Errorf("listed %d messages (%d distinct), want %d once each", len(msgs), len(got), len(want))
	}
	for id, w := range want {
		m, ok := got[id]
		if !ok {
			t.Errorf("%s not listed", id)
			continue
		}
		if m.Mailbox != w.mailbox || !sameSet(m.Flags, w.flags) {
			t.Errorf("%s: in %q with %q, want %q with %q", id, m.Mailbox, m.Flags, w.mailbox, w.flags)
		}
	}
	// "Private/Grüße" comes before "Work" by name: the first user label
	// decides; the other is a keyword, in modified UTF-7.
	if m := got["work-private"]; !slices.Contains(m.Flags, "Work") {
		t.Errorf("work-private flags %q", m.Flags)
	}
	if kw := LabelKeyword("Private/Grüße"); kw != "Private/Gr&APwA3w-e" {
		t.Errorf("LabelKeyword = %q", kw)
	}
	if kw := LabelKeyword(`My (old) "stuff"`); kw != "My__old___stuff_" {
		t.Errorf("LabelKeyword = %q", kw)
	}
	_ = g
}

// TestGmailPerLabel: every label folder's messages, and from All Mail
// only the archived one; Important and Starred are not read.
func TestGmailPerLabel(t *testing.T) {
	_, opts := gmailSource(t)
	opts.Labels = LabelsPerLabel
	s := openSource(t, opts)
	msgs, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		if _, ok := ParseGmailKey(m.Key); ok {
			t.Errorf("per-label lists IMAP keys, got %q", m.Key)
		}
		got = append(got, m.Mailbox+": "+subject(t, s, m))
	}
	slices.Sort(got)
	want := []string{"INBOX: inbox-work", "Private/Grüße: work-private", "Work: inbox-work", "Work: work-private",
		"[Gmail]/All Mail: archived", "[Gmail]/Drafts", "[Gmail]/Sent Mail: sent", "[Gmail]/Spam: spam", "[Gmail]/Trash: trashed"}
	want = slices.DeleteFunc(want, func(s string) bool { return !strings.Contains(s, ": ") })
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("per-label listing\n got %q\nwant %q", got, want)
	}
}

// subject fetches m and returns its Subject.
func subject(t *testing.T, s *Source, m pipeline.SourceMessage) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.Fetch(t.Context(), m, &b); err != nil {
		t.Fatalf("Fetch(%q): %v", m.Key, err)
	}
	_, rest, _ := strings.Cut(b.String(), "Subject: ")
	subj, _, _ := strings.Cut(rest, "\r\n")
	return subj
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestGmailOneCopyFilter: in one-copy mode archived mail shows in All
// Mail alone, so a folder filter that leaves All Mail out leaves it out
// (as per-label mode does), and says so with a note that counts it; the
// rest is listed as without the filter. Before, All Mail's exclusion was
// checked by comparing a pointer that never matched, and archived mail
// was copied whatever the filter said.
func TestGmailOneCopyFilter(t *testing.T) {
	for _, tt := range []struct {
		name             string
		include, exclude []string
		want             []string // subjects
		note             bool
	}{
		{"no filter", nil, nil, []string{"archived", "inbox-work", "sent", "spam", "trashed", "work-private"}, false},
		{"All Mail excluded", nil, []string{"[Gmail]/All Mail"}, []string{"inbox-work", "sent", "spam", "trashed", "work-private"}, true},
		{"All Mail not included", []string{"INBOX", "Work"}, nil, []string{"inbox-work", "work-private"}, true},
		{"All Mail included", []string{"INBOX", "[Gmail]/All Mail"}, nil, []string{"archived", "inbox-work"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, opts := gmailSource(t)
			opts.Include, opts.Exclude = tt.include, tt.exclude
			var notes []string
			opts.Quirks = imapconn.NewQuirks(nil, func(n string) { notes = append(notes, n) })
			s := openSource(t, opts)
			msgs, err := pipeline.ListAll(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, subject(t, s, m))
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("listed %q, want %q", got, tt.want)
			}
			noted := slices.ContainsFunc(notes, func(n string) bool {
				return strings.Contains(n, "1 archived messages") && strings.Contains(n, "folder filter excludes")
			})
			if noted != tt.note {
				t.Errorf("notes %q; want the archived mail left out noted: %v", notes, tt.note)
			}
		})
	}
}
