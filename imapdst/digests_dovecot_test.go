package imapdst

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
)

// TestDigestsAndHeadersDovecot: Digests hashes several messages with one
// FETCH and gives what Digest gives for each (NUL bytes through BINARY
// included), leaves out UIDs the mailbox does not hold, and refuses
// another UIDVALIDITY; ListHeaders gives each message's UID, size and
// Message-ID, and nothing for a mailbox that does not exist; Holding
// names the UIDs still there.
func TestDigestsAndHeadersDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}})
	ctx := context.Background()
	d := dialDovecot(t, srv, "bob", "pw")
	st, err := d.EnsureMailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{
		[]byte("Message-ID: <one@example.test>\r\nSubject: one\r\n\r\nfirst\r\n"),
		[]byte("Subject: no id, NUL\r\n\r\nbefore\x00after\r\n"),
		[]byte("Message-Id:\r\n  <folded@example.test>\r\nSubject: 8-bit\r\n\r\n\x80\r\n"),
	}
	var msgs []pipeline.OutgoingMessage
	for _, b := range bodies {
		msgs = append(msgs, pipeline.OutgoingMessage{Body: bytes.NewReader(b), Size: int64(len(b)), Binary: bytes.IndexByte(b, 0) >= 0})
	}
	res, err := d.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Digests(ctx, "INBOX", st.UIDValidity, []uint32{res[0].UID, res[1].UID, res[2].UID, 999})
	if err != nil || len(got) != 3 {
		t.Fatalf("Digests = %v, %v; want the 3 messages, not UID 999", got, err)
	}
	for i, g := range got {
		if g.UID != res[i].UID || g.Sum != sha256.Sum256(bodies[i]) || g.Size != int64(len(bodies[i])) {
			t.Errorf("Digests[%d] = UID %d size %d, want UID %d and the digest of the %d bytes appended", i, g.UID, g.Size, res[i].UID, len(bodies[i]))
		}
	}
	if _, err := d.Digests(ctx, "INBOX", st.UIDValidity+1, []uint32{res[0].UID}); !errors.Is(err, pipeline.ErrUIDValidityChanged) {
		t.Errorf("Digests under another UIDVALIDITY: %v, want ErrUIDValidityChanged", err)
	}
	uv, hdrs, err := d.ListHeaders(ctx, "INBOX")
	if err != nil || uv != st.UIDValidity || len(hdrs) != 3 {
		t.Fatalf("ListHeaders = %d, %v, %v", uv, hdrs, err)
	}
	for i, want := range []string{"<one@example.test>", "", "<folded@example.test>"} {
		if h := hdrs[i]; h.UID != res[i].UID || h.MessageID != want || h.Size <= 0 {
			t.Errorf("ListHeaders[%d] = %+v, want UID %d, Message-ID %q", i, h, res[i].UID, want)
		}
	}
	if uv, hdrs, err := d.ListHeaders(ctx, "Nowhere"); uv != 0 || hdrs != nil || err != nil {
		t.Errorf("ListHeaders of a missing mailbox = %d, %v, %v; want nothing", uv, hdrs, err)
	}
	// Holding: the UIDs still there, not those expunged or never given.
	if err := d.Expunge(ctx, "INBOX", st.UIDValidity, []uint32{res[1].UID}); err != nil {
		t.Fatal(err)
	}
	held, err := d.Holding(ctx, "INBOX", st.UIDValidity, []uint32{res[0].UID, res[1].UID, res[2].UID, 999})
	if err != nil || len(held) != 2 || !held[res[0].UID] || !held[res[2].UID] {
		t.Errorf("Holding = %v, %v; want UIDs %d and %d", held, err, res[0].UID, res[2].UID)
	}
	if _, err := d.Holding(ctx, "INBOX", st.UIDValidity+1, []uint32{res[0].UID}); !errors.Is(err, pipeline.ErrUIDValidityChanged) {
		t.Errorf("Holding under another UIDVALIDITY: %v, want ErrUIDValidityChanged", err)
	}
}
