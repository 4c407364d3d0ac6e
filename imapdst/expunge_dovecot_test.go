package imapdst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestExpungeRemovesOnlyTheNamedUIDsDovecot: Expunge must remove exactly
// the UIDs it is given, and leave alone a message the user had marked
// \Deleted but not expunged (a plain EXPUNGE would take it too).
func TestExpungeRemovesOnlyTheNamedUIDsDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}})
	ctx := context.Background()
	d := dialDovecot(t, srv, "bob", "pw")
	st, err := d.EnsureMailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []pipeline.OutgoingMessage
	for i := range 5 {
		b := fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i)
		msgs = append(msgs, pipeline.OutgoingMessage{Body: bytes.NewReader(b), Size: int64(len(b))})
	}
	msgs[4].Flags = []string{`\Deleted`} // the user's, not ours to expunge
	res, err := d.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	uid := func(i int) uint32 { return res[i].UID }

	err = d.Expunge(ctx, "INBOX", st.UIDValidity+1, []uint32{uid(1)})
	if !errors.Is(err, pipeline.ErrUIDValidityChanged) {
		t.Errorf("Expunge with a stale UIDVALIDITY = %v, want ErrUIDValidityChanged", err)
	}
	if err := d.Expunge(ctx, "INBOX", st.UIDValidity, []uint32{uid(1), uid(3)}); err != nil {
		t.Fatalf("Expunge: %v", err)
	}
	left, err := d.ListSince(ctx, "INBOX", st.UIDValidity, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for _, m := range left {
		got = append(got, m.UID)
	}
	want := []uint32{uid(0), uid(2), uid(4)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("UIDs left = %v, want %v", got, want)
	}
	// The control connection still works for reading afterwards.
	if _, _, err := d.Digest(ctx, "INBOX", uid(2)); err != nil {
		t.Errorf("Digest after Expunge: %v", err)
	}
}

// A server without UIDPLUS gets no EXPUNGE at all.
func TestExpungeWithoutUIDPlusRefuses(t *testing.T) {
	addr, clientTLS := startMemServerCaps(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	d, err := Dial(context.Background(), Options{
		Addr: addr, TLS: TLSStartTLS, TLSConfig: clientTLS,
		User: "alice", Password: secret.New("s3cret"), IdleTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer d.Close()
	err = d.Expunge(context.Background(), "INBOX", 1, []uint32{1})
	if !errors.Is(err, pipeline.ErrCannotExpunge) {
		t.Errorf("Expunge = %v, want ErrCannotExpunge", err)
	}
}
