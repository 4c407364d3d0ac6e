package imapdst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
)

// TestMoveDovecot: Move moves exactly the UIDs it is given and names
// their new UIDs, with UID MOVE and, on a server without MOVE, with UID
// COPY + STORE + UID EXPUNGE (which leaves a message the user marked
// \Deleted alone); DeleteMailbox deletes only an empty mailbox.
func TestMoveDovecot(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps string // imap_capability; "" Dovecot's own (with MOVE)
	}{
		{"UID MOVE", ""},
		{"UID COPY and UID EXPUNGE", "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SEARCHRES MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED SPECIAL-USE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"bob": "pw"}, IMAPCapability: tc.caps})
			ctx := context.Background()
			d := dialDovecot(t, srv, "bob", "pw")
			if got := d.ctl.c.Caps().Has(imap.CapMove); got != (tc.caps == "") {
				t.Fatalf("the server offers MOVE: %v", got)
			}
			st, err := d.EnsureMailbox(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			target, err := d.EnsureMailbox(ctx, "Work")
			if err != nil {
				t.Fatal(err)
			}
			var msgs []pipeline.OutgoingMessage
			for i := range 4 {
				b := fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i)
				msgs = append(msgs, pipeline.OutgoingMessage{Body: bytes.NewReader(b), Size: int64(len(b))})
			}
			msgs[3].Flags = []string{`\Deleted`} // the user's
			res, err := d.Append(ctx, "INBOX", msgs)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.Move(ctx, "INBOX", st.UIDValidity+1, []uint32{res[0].UID}, "Work"); !errors.Is(err, pipeline.ErrUIDValidityChanged) {
				t.Errorf("Move with a stale UIDVALIDITY = %v, want ErrUIDValidityChanged", err)
			}
			want0, _, err := d.Digest(ctx, "INBOX", res[0].UID)
			if err != nil {
				t.Fatal(err)
			}
			uv, moved, err := d.Move(ctx, "INBOX", st.UIDValidity, []uint32{res[0].UID, res[2].UID}, "Work")
			if err != nil {
				t.Fatalf("Move: %v", err)
			}
			if uv != target.UIDValidity || len(moved) != 2 || moved[res[0].UID] == 0 || moved[res[2].UID] == 0 {
				t.Fatalf("Move = %d, %v; want Work's UIDVALIDITY %d and two new UIDs", uv, moved, target.UIDValidity)
			}
			if got, _, err := d.Digest(ctx, "Work", moved[res[0].UID]); err != nil || got != want0 {
				t.Errorf("the moved message in Work: %v, same bytes %v", err, got == want0)
			}
			left, err := d.ListSince(ctx, "INBOX", st.UIDValidity, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 2 || left[0].UID != res[1].UID || left[1].UID != res[3].UID || !left[1].Deleted {
				t.Errorf("INBOX after the move: %+v; want UIDs %d and %d (still \\Deleted)", left, res[1].UID, res[3].UID)
			}

			// DeleteMailbox: not an empty one; an empty one; one not there.
			if gone, err := d.DeleteMailbox(ctx, "Work"); err != nil || gone {
				t.Errorf("DeleteMailbox of a folder holding messages = %v, %v; want kept", gone, err)
			}
			if _, err := d.EnsureMailbox(ctx, "Empty"); err != nil {
				t.Fatal(err)
			}
			if gone, err := d.DeleteMailbox(ctx, "Empty"); err != nil || !gone {
				t.Errorf("DeleteMailbox of an empty folder = %v, %v; want deleted", gone, err)
			}
			if gone, err := d.DeleteMailbox(ctx, "Empty"); err != nil || !gone {
				t.Errorf("DeleteMailbox of a folder not there = %v, %v; want gone, no error", gone, err)
			}
			boxes, err := srv.Mailboxes("bob")
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(boxes)
			if fmt.Sprint(boxes) != "[INBOX Work]" {
				t.Errorf("mailboxes left: %v, want INBOX and Work", boxes)
			}
		})
	}
}
