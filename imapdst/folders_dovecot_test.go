package imapdst

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestFoldersAndFlagsDovecot runs folder creation, special use,
// subscriptions and flag updates against real Dovecot with "." as separator.
func TestFoldersAndFlagsDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}, Separator: "."})
	ctx := context.Background()
	d, err := Dial(ctx, Options{
		Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
		User: "bob", Password: secret.New("pw"), IdleTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	fl, err := d.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	if fl.Delim != '.' || fl.Prefix != "" || !fl.SpecialUse {
		t.Errorf("Folders = delim %q prefix %q special-use %v; want '.', \"\", true", fl.Delim, fl.Prefix, fl.SpecialUse)
	}
	t.Logf("Dovecot CREATE-SPECIAL-USE: %v", fl.CreateSpecialUse)

	// Special folders named after the configuration get its attributes;
	// nested and non-ASCII folders are created with their parents.
	for _, c := range []struct{ name, use string }{
		{"Sent", mapping.UseSent},
		{"Trash", mapping.UseTrash},
		{"Projekte.2024.Q1", ""},
		{"Entwürfe alt.Übersicht", ""},
	} {
		st, err := d.EnsureMailboxUse(ctx, c.name, c.use)
		if err != nil {
			t.Fatalf("EnsureMailboxUse(%q, %q): %v", c.name, c.use, err)
		}
		if st.UIDValidity == 0 {
			t.Errorf("EnsureMailboxUse(%q) = %+v, want a UIDVALIDITY", c.name, st)
		}
	}
	if err := d.Subscribe(ctx, "Sent"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := d.Subscribe(ctx, "Sent"); err != nil {
		t.Errorf("Subscribe again: %v", err)
	}
	fl, err = d.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	byName := map[string]mapping.Folder{}
	for _, f := range fl.Folders {
		byName[f.Name] = f
	}
	for _, want := range []string{"INBOX", "Sent", "Trash", "Projekte", "Projekte.2024", "Projekte.2024.Q1", "Entwürfe alt", "Entwürfe alt.Übersicht"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("Folders has no %q: %+v", want, fl.Folders)
		}
	}
	if got := mapping.SpecialUseOf("", byName["Sent"].Attrs); got != mapping.UseSent {
		t.Errorf("Sent attributes %q, want \\Sent", byName["Sent"].Attrs)
	}
	if !slices.Contains(byName["Sent"].Attrs, `\Subscribed`) {
		t.Errorf("Sent attributes %q, want \\Subscribed", byName["Sent"].Attrs)
	}
	boxes, err := srv.Mailboxes("bob")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(boxes, "Entwürfe alt.Übersicht") {
		t.Errorf("doveadm mailbox list = %q, want the non-ASCII name round-tripped", boxes)
	}

	// The destination's listing drives a folder map: a Courier source's
	// "INBOX.Gesendete Objekte" goes to the Sent made above.
	m, err := mapping.NewFolderMap(mapping.FolderOptions{
		SourcePrefix: "INBOX.", DestDelim: fl.Delim, DestPrefix: fl.Prefix, DestFolders: fl.Folders,
	})
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{"INBOX.Gesendete Objekte": "Sent", "INBOX.Projekte.2024": "Projekte.2024", "INBOX.Papierkorb": "Trash", "INBOX.Spam": "Junk"} {
		if got, ok := m.Map(mapping.Folder{Name: src, Delim: '.'}); !ok || got != want {
			t.Errorf("Map(%q) = %q, %v; want %q", src, got, ok, want)
		}
	}

	// Flags: append three messages, then set exact flag sets.
	body := "Subject: x\r\n\r\nx\r\n"
	msgs := make([]pipeline.OutgoingMessage, 3)
	for i := range msgs {
		msgs[i] = pipeline.OutgoingMessage{Body: strings.NewReader(body), Size: int64(len(body)), Flags: []string{`\Seen`, "$Old"}}
	}
	res, err := d.Append(ctx, "Sent", msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	perm, err := d.PermanentFlags(ctx, "Sent")
	if err != nil || !slices.Contains(perm, `\*`) || !slices.Contains(perm, `\Seen`) {
		t.Fatalf("PermanentFlags(Sent) = %q, %v; want \\Seen and \\*", perm, err)
	}
	v := res[0].UIDValidity
	want := map[uint32][]string{
		res[0].UID: {`\Answered`, `\Flagged`, "$Forwarded", `\Recent`},
		res[1].UID: {},
		res[2].UID: {`\Seen`, `\Draft`, "$label1", "not(valid"},
	}
	sr, err := d.StoreFlagsCounted(ctx, "Sent", v, want)
	if err != nil {
		t.Fatalf("StoreFlagsCounted: %v", err)
	}
	if sr.Stored != 3 || sr.Commands != 3 || sr.Dropped[`\Recent`] != 1 || sr.Dropped["not(valid"] != 1 {
		t.Errorf("StoreFlagsCounted = %+v, want 3 stored in 3 commands, \\Recent and not(valid dropped", sr)
	}
	got := fetchFlags(t, func() (*imapclient.Client, error) {
		return imapclient.DialTLS(srv.IMAPSAddr(), &imapclient.Options{TLSConfig: srv.TLSConfig()})
	}, "bob", "pw", "Sent")
	for uid, fs := range want {
		kept, _ := mapping.CleanFlags(fs, nil)
		if !sameFlagSet(got[uid], kept) {
			t.Errorf("UID %d flags = %q, want %q", uid, got[uid], kept)
		}
	}
	if _, err := d.StoreFlagsCounted(ctx, "Sent", v+1, want); !errors.Is(err, pipeline.ErrUIDValidityChanged) {
		t.Errorf("StoreFlagsCounted with another UIDVALIDITY = %v, want ErrUIDValidityChanged", err)
	}
}

// fetchFlags returns the flags of every message in mailbox, by UID.
func fetchFlags(t *testing.T, dial func() (*imapclient.Client, error), user, pass, mailbox string) map[uint32][]string {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("Select: %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	out := map[uint32][]string{}
	for _, m := range msgs {
		fs := []string{}
		for _, f := range m.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fs = append(fs, string(f))
			}
		}
		out[uint32(m.UID)] = fs
	}
	return out
}

func sameFlagSet(a, b []string) bool {
	return flagKey(a) == flagKey(b)
}

// fetchFlagsStartTLS is fetchFlags for the imapmemserver of these tests.
func fetchFlagsStartTLS(t *testing.T, addr string, clientTLS *tls.Config, mailbox string) map[uint32][]string {
	t.Helper()
	cfg := clientTLS.Clone()
	cfg.ServerName = "127.0.0.1"
	return fetchFlags(t, func() (*imapclient.Client, error) {
		return imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: cfg})
	}, "alice", "s3cret", mailbox)
}
