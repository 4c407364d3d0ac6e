package imapsrc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// memLiteral is an imap.LiteralReader over bytes.
type memLiteral struct {
	*bytes.Reader
	size int64
}

func (l memLiteral) Size() int64 { return l.size }

// memMessage is a message to put on the in-memory server.
type memMessage struct {
	mailbox string
	body    string
	flags   []imap.Flag
	date    time.Time
}

// memServer starts imapmemserver on 127.0.0.1 with user alice, the given
// mailboxes (INBOX is always there) and messages, and returns the user and
// Options to reach it.
func memServer(t *testing.T, caps imap.CapSet, mailboxes []string, msgs []memMessage) (*imapmemserver.User, Options) {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("alice", "s3cret")
	for _, m := range append([]string{"INBOX"}, mailboxes...) {
		if err := user.Create(m, nil); err != nil {
			t.Fatalf("creating %q: %v", m, err)
		}
	}
	for _, m := range msgs {
		if _, err := user.Append(m.mailbox, memLiteral{bytes.NewReader([]byte(m.body)), int64(len(m.body))},
			&imap.AppendOptions{Flags: m.flags, Time: m.date}); err != nil {
			t.Fatalf("appending to %q: %v", m.mailbox, err)
		}
	}
	mem.AddUser(user)
	if caps == nil {
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapNamespace: {}, imap.CapListExtended: {}, imap.CapESearch: {}}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return user, Options{Addr: ln.Addr().String(), TLS: TLSNone, AllowPlaintext: true, User: "alice", Password: secret.New("s3cret")}
}

func openSource(t *testing.T, opts Options) *Source {
	t.Helper()
	s, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(false) })
	return s
}

// fetchAll fetches every listed message and returns the bodies by key.
func fetchAll(t *testing.T, s *Source, msgs []pipeline.SourceMessage) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range msgs {
		var b bytes.Buffer
		n, err := s.Fetch(t.Context(), m, &b)
		if err != nil {
			t.Fatalf("Fetch(%q): %v", m.Key, err)
		}
		if n != int64(b.Len()) {
			t.Fatalf("Fetch(%q) = %d, but wrote %d bytes", m.Key, n, b.Len())
		}
		out[m.Key] = b.String()
	}
	return out
}

func crlfMessage(subject, body string) string {
	return "From: a@example.org\r\nTo: b@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@x>\r\n\r\n" + body + "\r\n"
}

func TestMemServerListFetch(t *testing.T) {
	zone := time.FixedZone("", -(7*3600 + 30*60))
	msgs := []memMessage{
		{"INBOX", crlfMessage("one", "first"), []imap.Flag{imap.FlagSeen}, time.Date(2001, 2, 3, 4, 5, 6, 0, zone)},
		{"INBOX", crlfMessage("two", strings.Repeat("long line ", 2000)), []imap.Flag{imap.FlagFlagged, imap.FlagAnswered, "$Forwarded", "custom_kw"}, time.Date(2019, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"Archive/2019", crlfMessage("three", "archived"), []imap.Flag{imap.FlagDraft, imap.FlagDeleted}, time.Date(2019, 6, 1, 12, 0, 0, 0, time.FixedZone("", 5*3600+45*60))},
		{"Grüße", crlfMessage("four", "umlaut folder"), nil, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	user, opts := memServer(t, nil, []string{"Archive", "Archive/2019", "Grüße", "Empty"}, msgs)
	if err := user.Subscribe("Archive"); err != nil {
		t.Fatal(err)
	}
	s := openSource(t, opts)

	folders, err := s.Folders(t.Context())
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	var names []string
	for _, f := range folders {
		names = append(names, f.Name)
		if f.Delimiter != '/' {
			t.Errorf("folder %q delimiter %q, want '/'", f.Name, f.Delimiter)
		}
		if want := f.Name == "Archive"; f.Subscribed != want {
			t.Errorf("folder %q Subscribed = %v, want %v", f.Name, f.Subscribed, want)
		}
	}
	if want := []string{"Archive", "Archive/2019", "Empty", "Grüße", "INBOX"}; !slices.Equal(names, want) {
		t.Errorf("Folders = %q, want %q", names, want)
	}

	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != len(msgs) {
		t.Fatalf("List returned %d messages, want %d: %+v", len(list), len(msgs), list)
	}
	byMailbox := map[string][]pipeline.SourceMessage{}
	for _, m := range list {
		byMailbox[m.Mailbox] = append(byMailbox[m.Mailbox], m)
	}
	bodies := fetchAll(t, s, list)
	seen := map[string]int{}
	for _, want := range msgs {
		i := seen[want.mailbox]
		seen[want.mailbox]++
		got := byMailbox[want.mailbox][i]
		mbox, uv, uid, err := ParseKey(got.Key)
		if err != nil || mbox != want.mailbox || uv == 0 || uid != uint32(i+1) {
			t.Errorf("key %q: ParseKey = %q, %d, %d, %v; want mailbox %q, UID %d", got.Key, mbox, uv, uid, err, want.mailbox, i+1)
		}
		if got.Size != int64(len(want.body)) {
			t.Errorf("%q: Size = %d, want %d", got.Key, got.Size, len(want.body))
		}
		if !got.InternalDate.Equal(want.date) {
			t.Errorf("%q: InternalDate = %v, want %v", got.Key, got.InternalDate, want.date)
		}
		if _, off := got.InternalDate.Zone(); off != func() int { _, o := want.date.Zone(); return o }() {
			t.Errorf("%q: InternalDate zone offset %d, want that of %v", got.Key, off, want.date)
		}
		wantFlags := make([]string, 0, len(want.flags))
		for _, f := range want.flags {
			wantFlags = append(wantFlags, string(f))
		}
		slices.Sort(wantFlags)
		gotFlags := slices.Sorted(slices.Values(got.Flags))
		if !slices.Equal(gotFlags, wantFlags) {
			t.Errorf("%q: Flags = %q, want %q", got.Key, gotFlags, wantFlags)
		}
		if bodies[got.Key] != want.body {
			t.Errorf("%q: body differs: got %d bytes, want %d", got.Key, len(bodies[got.Key]), len(want.body))
		}
	}

	// Fetch did not set \Seen (BODY.PEEK[] in EXAMINE).
	again, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("second List: %v", err)
	}
	for i := range again {
		if !slices.Equal(slices.Sorted(slices.Values(again[i].Flags)), slices.Sorted(slices.Values(list[i].Flags))) {
			t.Errorf("%q: flags changed by fetching: %q -> %q", again[i].Key, list[i].Flags, again[i].Flags)
		}
	}
}

func TestMemServerSelection(t *testing.T) {
	msgs := []memMessage{
		{"INBOX", crlfMessage("a", "a"), nil, time.Time{}},
		{"Archive/2019", crlfMessage("b", "b"), nil, time.Time{}},
		{"Archive/2020", crlfMessage("c", "c"), nil, time.Time{}},
		{"Trash", crlfMessage("d", "d"), nil, time.Time{}},
	}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string // mailboxes of the listed messages
	}{
		{"everything", nil, nil, []string{"Archive/2019", "Archive/2020", "INBOX", "Trash"}},
		{"one subtree", []string{"Archive/*"}, nil, []string{"Archive/2019", "Archive/2020"}},
		{"one level", []string{"%"}, nil, []string{"INBOX", "Trash"}},
		{"exclude", nil, []string{"Trash", "Archive/2020"}, []string{"Archive/2019", "INBOX"}},
		{"inbox lower case", []string{"inbox"}, nil, []string{"INBOX"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, opts := memServer(t, nil, []string{"Archive", "Archive/2019", "Archive/2020", "Trash"}, msgs)
			opts.Include, opts.Exclude = tt.include, tt.exclude
			list, err := pipeline.ListAll(t.Context(), openSource(t, opts))
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			var got []string
			for _, m := range list {
				got = append(got, m.Mailbox)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List mailboxes = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMemServerFetchBatches(t *testing.T) {
	var msgs []memMessage
	for i := range 23 {
		msgs = append(msgs, memMessage{"INBOX", crlfMessage(fmt.Sprint("m", i), fmt.Sprint("body ", i)), nil, time.Time{}})
	}
	_, opts := memServer(t, nil, nil, msgs)
	// Leave holes in the UID space.
	if err := expungeUIDs(t, opts, 3, 4, 10); err != nil {
		t.Fatal(err)
	}
	opts.FetchBatch = 5
	list, err := pipeline.ListAll(t.Context(), openSource(t, opts))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var uids []uint32
	for _, m := range list {
		_, _, uid, _ := ParseKey(m.Key)
		uids = append(uids, uid)
	}
	var want []uint32
	for u := uint32(1); u <= 23; u++ {
		if u != 3 && u != 4 && u != 10 {
			want = append(want, u)
		}
	}
	if !slices.Equal(uids, want) {
		t.Errorf("List UIDs with FetchBatch 5 = %v, want %v", uids, want)
	}
}

// expungeUIDs deletes uids from INBOX through a Source.
func expungeUIDs(t *testing.T, opts Options, uids ...uint32) error {
	t.Helper()
	s, err := Open(t.Context(), opts)
	if err != nil {
		return err
	}
	defer s.Close(true)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		return err
	}
	var del []pipeline.SourceMessage
	for _, m := range list {
		_, _, uid, _ := ParseKey(m.Key)
		if slices.Contains(uids, uid) {
			del = append(del, m)
		}
	}
	return s.Delete(t.Context(), del)
}

func TestMemServerDelete(t *testing.T) {
	msgs := []memMessage{
		{"INBOX", crlfMessage("keep1", "k"), nil, time.Time{}},
		{"INBOX", crlfMessage("del1", "d"), []imap.Flag{imap.FlagSeen}, time.Time{}},
		{"INBOX", crlfMessage("keep-marked", "someone else's \\Deleted"), []imap.Flag{imap.FlagDeleted}, time.Time{}},
		{"Archive", crlfMessage("del2", "d"), nil, time.Time{}},
		{"Archive", crlfMessage("keep2", "k"), nil, time.Time{}},
	}
	_, opts := memServer(t, nil, []string{"Archive"}, msgs)
	s := openSource(t, opts)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var del []pipeline.SourceMessage
	for _, m := range list {
		if strings.HasPrefix(subjectOf(t, s, m), "del") {
			del = append(del, m)
		}
	}
	if len(del) != 2 {
		t.Fatalf("found %d messages to delete, want 2", len(del))
	}
	if err := s.Delete(t.Context(), del); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// A deleted message is gone for Fetch, per message.
	_, err = s.Fetch(t.Context(), del[0], io.Discard)
	if !errors.Is(err, ErrMessageGone) || pipeline.ClassOf(err) != pipeline.ClassPerMessage {
		t.Errorf("Fetch of a deleted message: %v (class %v), want ErrMessageGone, per message", err, pipeline.ClassOf(err))
	}
	if err := s.Close(true); err != nil {
		t.Fatalf("Close: %v", err)
	}

	after, err := pipeline.ListAll(t.Context(), openSource(t, opts))
	if err != nil {
		t.Fatalf("List after Delete: %v", err)
	}
	s2 := openSource(t, opts)
	var left []string
	for _, m := range after {
		left = append(left, subjectOf(t, s2, m))
	}
	slices.Sort(left)
	if want := []string{"keep-marked", "keep1", "keep2"}; !slices.Equal(left, want) {
		t.Errorf("messages left after Delete = %q, want %q", left, want)
	}
}

// subjectOf fetches m and returns its Subject.
func subjectOf(t *testing.T, s *Source, m pipeline.SourceMessage) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.Fetch(t.Context(), m, &b); err != nil {
		t.Fatalf("Fetch(%q): %v", m.Key, err)
	}
	_, rest, _ := strings.Cut(b.String(), "Subject: ")
	sub, _, _ := strings.Cut(rest, "\r\n")
	return sub
}

func TestMemServerDeleteWithoutUIDPlus(t *testing.T) {
	msgs := []memMessage{{"INBOX", crlfMessage("a", "a"), nil, time.Time{}}}
	_, opts := memServer(t, imap.CapSet{imap.CapIMAP4rev1: {}}, nil, msgs)
	s := openSource(t, opts)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	err = s.Delete(t.Context(), list)
	if !errors.Is(err, ErrNoUIDPlus) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Delete without UIDPLUS: %v (class %v), want ErrNoUIDPlus, fatal", err, pipeline.ClassOf(err))
	}
	if again, err := pipeline.ListAll(t.Context(), s); err != nil || len(again) != 1 {
		t.Errorf("after the refused Delete, List = %d messages, %v; want 1", len(again), err)
	}
}

func TestMemServerUIDValidityChanged(t *testing.T) {
	msgs := []memMessage{{"Work", crlfMessage("a", "a"), nil, time.Time{}}}
	user, opts := memServer(t, nil, []string{"Work"}, msgs)
	s := openSource(t, opts)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d messages, %v", len(list), err)
	}
	// Delete and re-create the folder with a message: same name and UID,
	// new UIDVALIDITY, another message.
	if err := user.Delete("Work"); err != nil {
		t.Fatal(err)
	}
	if err := user.Create("Work", nil); err != nil {
		t.Fatal(err)
	}
	body := crlfMessage("other", "another message")
	if _, err := user.Append("Work", memLiteral{bytes.NewReader([]byte(body)), int64(len(body))}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	s2 := openSource(t, opts)
	var b bytes.Buffer
	_, err = s2.Fetch(t.Context(), list[0], &b)
	if !errors.Is(err, ErrUIDValidityChanged) || !errors.Is(err, pipeline.ErrUIDValidityChanged) || pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Errorf("Fetch after UIDVALIDITY change: %v (class %v), want ErrUIDValidityChanged, transient", err, pipeline.ClassOf(err))
	}
	err = s2.Delete(t.Context(), list)
	if !errors.Is(err, ErrUIDValidityChanged) {
		t.Errorf("Delete after UIDVALIDITY change: %v, want ErrUIDValidityChanged", err)
	}
	if n, _ := pipeline.ListAll(t.Context(), s2); len(n) != 1 {
		t.Errorf("the new message was touched: List has %d messages, want 1", len(n))
	}
}

func TestMemServerAuthFailureIsFatal(t *testing.T) {
	_, opts := memServer(t, nil, nil, nil)
	opts.Password = secret.New("wrong-password")
	_, err := Open(t.Context(), opts)
	if err == nil || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Open with a wrong password: %v (class %v), want fatal", err, pipeline.ClassOf(err))
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestPlaintextRefused(t *testing.T) {
	_, opts := memServer(t, nil, nil, nil)
	opts.AllowPlaintext = false
	_, err := Open(t.Context(), opts)
	if !errors.Is(err, ErrPlaintext) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Open over plaintext without AllowPlaintext: %v, want ErrPlaintext, fatal", err)
	}
}

func TestTraceRedactsCredentialsAndBodies(t *testing.T) {
	msgs := []memMessage{{"INBOX", crlfMessage("traced", "SECRET-BODY-TEXT"), nil, time.Time{}}}
	_, opts := memServer(t, nil, nil, msgs)
	var trace bytes.Buffer
	opts.Trace = &trace
	s := openSource(t, opts)
	list, err := pipeline.ListAll(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	fetchAll(t, s, list)
	if err := s.Close(true); err != nil {
		t.Fatal(err)
	}
	tr := trace.String()
	for _, leak := range []string{"s3cret", "SECRET-BODY-TEXT"} {
		if strings.Contains(tr, leak) {
			t.Errorf("trace contains %q:\n%s", leak, tr)
		}
	}
	for _, want := range []string{`LOGIN "alice" ***`, "UID FETCH", "EXAMINE"} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace lacks %q:\n%s", want, tr)
		}
	}
}

// TestMemServerAgeWindow: MaxAge and MinAge leave messages out of List by
// internal date; a message dated in the future counts as new.
func TestMemServerAgeWindow(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	dates := map[string]time.Time{"old": now.Add(-400 * day), "month": now.Add(-40 * day),
		"week": now.Add(-7 * day), "future": now.Add(time.Hour)}
	var msgs []memMessage
	for subject, d := range dates {
		msgs = append(msgs, memMessage{mailbox: "INBOX", body: crlfMessage(subject, "x"), date: d})
	}
	tests := []struct {
		name           string
		maxAge, minAge time.Duration
		want           []string
	}{
		{"no window", 0, 0, []string{"future", "month", "old", "week"}},
		{"max-age 30d", 30 * day, 0, []string{"future", "week"}},
		{"min-age 30d", 0, 30 * day, []string{"month", "old"}},
		{"both", 365 * day, 30 * day, []string{"month"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, opts := memServer(t, nil, nil, msgs)
			opts.MaxAge, opts.MinAge = tc.maxAge, tc.minAge
			s := openSource(t, opts)
			listed, err := pipeline.ListAll(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range listed {
				got = append(got, subjectOf(t, s, m))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("MaxAge %v, MinAge %v: List = %v, want %v", tc.maxAge, tc.minAge, got, tc.want)
			}
		})
	}
}

// TestMemServerListPages: List hands the messages over batch by batch
// (never more than FetchBatch at once), and the session serves Fetch and
// Delete between pages: the copy fetches a page before the next is
// listed. Deleting messages of the page being listed does not disturb the
// rest of the listing.
func TestMemServerListPages(t *testing.T) {
	var msgs []memMessage
	for i := range 12 {
		msgs = append(msgs, memMessage{"INBOX", crlfMessage(fmt.Sprint("m", i), fmt.Sprint("body ", i)), nil, time.Time{}})
	}
	msgs = append(msgs, memMessage{"Other", crlfMessage("o", "other body"), nil, time.Time{}})
	_, opts := memServer(t, nil, []string{"Other"}, msgs)
	opts.FetchBatch = 5
	s := openSource(t, opts)
	var sizes []int
	fetched := 0
	err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
		sizes = append(sizes, len(page))
		for _, m := range page {
			var buf bytes.Buffer
			if _, err := s.Fetch(t.Context(), m, &buf); err != nil {
				return fmt.Errorf("fetching %q while listing: %w", m.Key, err)
			}
			if !bytes.Contains(buf.Bytes(), []byte("body")) {
				return fmt.Errorf("message %q: %q", m.Key, buf.String())
			}
			fetched++
		}
		if page[0].Mailbox == "INBOX" {
			return s.Delete(t.Context(), page[:1])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want := []int{5, 5, 2, 1}; !slices.Equal(sizes, want) {
		t.Errorf("page sizes = %v, want %v (INBOX in batches of 5, then Other)", sizes, want)
	}
	if fetched != 13 {
		t.Errorf("fetched %d messages while listing, want 13", fetched)
	}
	rest, err := pipeline.ListAll(t.Context(), openSource(t, opts))
	if err != nil || len(rest) != 10 {
		t.Errorf("after deleting one message per INBOX page: %d messages, %v; want 10", len(rest), err)
	}
}
