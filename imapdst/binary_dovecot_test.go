package imapdst

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
)

// TestBinaryDigestDovecot: a message with NUL bytes goes to Dovecot as a
// literal8 (BINARY) and Digest gives the digest of the bytes appended,
// although Dovecot serves each NUL as 0x80 in BODY[]; else reconcile would
// never find such a copy and append it again. A message with 0x80 bytes of
// its own (8-bit, no NUL) keeps the digest of what BODY[] serves.
func TestBinaryDigestDovecot(t *testing.T) {
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}})
	ctx := context.Background()
	d := dialDovecot(t, srv, "bob", "pw")
	if _, err := d.EnsureMailbox(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	if !d.Capabilities().Binary {
		t.Fatal("Dovecot offers BINARY; the destination does not say so")
	}
	bodies := [][]byte{
		[]byte("Subject: NUL\r\n\r\nbefore\x00after\r\n"),
		[]byte("Subject: 8-bit\r\n\r\nbefore\x80after\r\n"),
		[]byte("Subject: both\r\n\r\n\x80 and \x00\r\n"),
	}
	var msgs []pipeline.OutgoingMessage
	for _, b := range bodies {
		msgs = append(msgs, pipeline.OutgoingMessage{Body: bytes.NewReader(b), Size: int64(len(b)), Binary: bytes.IndexByte(b, 0) >= 0})
	}
	res, err := d.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		if res[i].Err != nil || res[i].UID == 0 {
			t.Fatalf("message %d: %+v", i, res[i])
		}
		sum, size, err := d.Digest(ctx, "INBOX", res[i].UID)
		if err != nil {
			t.Fatalf("Digest of message %d: %v", i, err)
		}
		if sum != sha256.Sum256(b) || size != int64(len(b)) {
			t.Errorf("message %d (%q): Digest is not that of the bytes appended (size %d, want %d)", i, b, size, len(b))
		}
	}
}
