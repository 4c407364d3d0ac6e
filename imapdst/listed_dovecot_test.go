package imapdst

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/secret"
)

// controlCommands counts the control connection's commands in a trace, by
// name ("LIST", "STATUS", …): each one a round trip on a distant server
// when waited for alone.
func controlCommands(trace string) map[string]int {
	re := regexp.MustCompile(`(?m)^control T\d+ ([A-Z]+)\b`)
	n := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(trace, -1) {
		if m[1] != "OK" && m[1] != "NO" && m[1] != "BAD" {
			n[m[1]]++
		}
	}
	return n
}

// TestListedMailboxesDovecot: a mailbox the folder listing (Folders)
// showed is not listed again before the first batch into it (issue 18:
// each LIST waited a round trip on a distant server, two before a copy's
// first APPEND): ListHeaders examines it at once, and EnsureMailbox right
// after takes UIDVALIDITY and UIDNEXT from that EXAMINE (later, it asks
// STATUS, without LIST). One that went after the listing is listed then, as before:
// ListHeaders finds it empty and EnsureMailbox creates it again.
func TestListedMailboxesDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}})
	d0 := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, box := range []string{"Archive", "Archive", "Gone"} {
		if err := srv.SeedMaildir("bob", box, fmt.Appendf(nil, "Message-ID: <%s@x>\r\nSubject: s\r\n\r\nb\r\n", box), "", d0); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	trace := &syncBuffer{}
	d, err := Dial(ctx, Options{
		Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
		User: "bob", Password: secret.New("pw"), IdleTimeout: 10 * time.Second, Trace: trace,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer d.Close()
	if _, err := d.Folders(ctx); err != nil {
		t.Fatalf("Folders: %v", err)
	}
	if _, err := srv.Doveadm("mailbox", "delete", "-u", "bob", "Gone"); err != nil {
		t.Fatal(err)
	}
	listed := len(trace.String())

	uv, hdrs, err := d.ListHeaders(ctx, "Archive")
	if err != nil || uv == 0 || len(hdrs) != 2 {
		t.Fatalf("ListHeaders(Archive) = %d, %d headers, %v; want its UIDVALIDITY and 2", uv, len(hdrs), err)
	}
	st, err := d.EnsureMailbox(ctx, "Archive")
	if err != nil || st.UIDValidity != uv || st.UIDNext != 3 {
		t.Fatalf("EnsureMailbox(Archive) = %+v, %v; want UIDVALIDITY %d, UIDNEXT 3", st, err, uv)
	}
	// EnsureMailbox right after ListHeaders takes the status from its
	// EXAMINE; a later one asks STATUS.
	got := controlCommands(trace.String()[listed:])
	if want := map[string]int{"EXAMINE": 1, "FETCH": 1}; !mapsEqual(got, want) {
		t.Errorf("commands for a listed mailbox: %v; want %v (no LIST, no STATUS)\n%s", got, want, trace.String()[listed:])
	}
	if st, err := d.EnsureMailbox(ctx, "Archive"); err != nil || st.UIDValidity != uv || st.UIDNext != 3 {
		t.Fatalf("EnsureMailbox(Archive) again = %+v, %v; want UIDVALIDITY %d, UIDNEXT 3", st, err, uv)
	}
	got = controlCommands(trace.String()[listed:])
	if want := map[string]int{"EXAMINE": 1, "FETCH": 1, "STATUS": 1}; !mapsEqual(got, want) {
		t.Errorf("commands after a second EnsureMailbox: %v; want %v\n%s", got, want, trace.String()[listed:])
	}

	// Gone was listed, then deleted by another client.
	if uv, hdrs, err := d.ListHeaders(ctx, "Gone"); err != nil || uv != 0 || len(hdrs) != 0 {
		t.Errorf("ListHeaders(Gone) after its deletion = %d, %d headers, %v; want 0, none, nil", uv, len(hdrs), err)
	}
	if st, err := d.EnsureMailbox(ctx, "Gone"); err != nil || st.UIDValidity == 0 || st.UIDNext != 1 {
		t.Errorf("EnsureMailbox(Gone) after its deletion = %+v, %v; want it created again, empty", st, err)
	}
	if !slices.Contains(d.CreatedMailboxes(), "Gone") {
		t.Errorf("CreatedMailboxes = %v; want Gone", d.CreatedMailboxes())
	}
	boxes, err := srv.Mailboxes("bob")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(boxes, "Gone") {
		t.Errorf("mailboxes after EnsureMailbox(Gone): %v; want Gone created again", boxes)
	}
	if !strings.Contains(trace.String()[listed:], `LIST "" "Gone"`) {
		t.Errorf("no LIST of Gone once its EXAMINE was refused:\n%s", trace.String()[listed:])
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
