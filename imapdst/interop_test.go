package imapdst

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/courier"
	"github.com/mailferry/mailferry/internal/testkit/cyrus"
	"github.com/mailferry/mailferry/internal/testkit/mailserver"
	"github.com/mailferry/mailferry/internal/testkit/mailutils"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// dialKit opens a Destination on a kit's IMAPS listener as user.
func dialKit(t *testing.T, s mailserver.IMAPServer, user, password string, sh *Shared) *Destination {
	t.Helper()
	d, err := Dial(context.Background(), Options{
		Addr: s.Endpoints().IMAPS, TLS: TLSImplicit, TLSConfig: s.TLSConfig(),
		User: s.Login(user), Password: secret.New(password), IdleTimeout: 20 * time.Second, Shared: sh,
	})
	if err != nil {
		t.Fatalf("Dial %s: %v", s.Info(), err)
	}
	return d
}

func numbered(n int) []pipeline.OutgoingMessage {
	var out []pipeline.OutgoingMessage
	// Not UTC: GNU Mailutils drops an APPEND date's zone offset.
	date := time.Date(2021, 5, 4, 10, 0, 0, 0, time.FixedZone("", 2*3600))
	for i := range n {
		body := fmt.Sprintf("Message-ID: <n%d@mf.test>\r\nSubject: number %d\r\n\r\nbody %d\r\n", i, i, i)
		out = append(out, pipeline.OutgoingMessage{Body: strings.NewReader(body), Size: int64(len(body)),
			Flags: []string{`\Seen`}, InternalDate: date.Add(time.Duration(i) * time.Minute)})
	}
	return out
}

// TestMailutilsKeepsEveryAppend: GNU Mailutils writes an mbox back from
// the view of the session that has it selected read-write when that
// session leaves it, dropping what the appender stored meanwhile. The
// destination's first steps on a mailbox (EnsureMailbox, PermanentFlags)
// used to leave it SELECTed: 8 APPENDs answered OK, 1 message kept. Now
// all 8 are there, for an INBOX that existed and for one that did not
// (STATUS refused until EXAMINE opens it; [TRYCREATE] in the text), with
// their internal dates (sent in UTC: Mailutils drops the zone offset).
func TestMailutilsKeepsEveryAppend(t *testing.T) {
	for _, noInbox := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoInbox=%v", noInbox), func(t *testing.T) {
			s := mailutils.Start(t, mailutils.Options{NoInbox: noInbox, Users: map[string]string{"alice": "pw-alice"}})
			ctx := context.Background()
			d := dialKit(t, s, "alice", "pw-alice", nil)
			if _, err := d.EnsureMailbox(ctx, "INBOX"); err != nil {
				t.Fatalf("EnsureMailbox: %v", err)
			}
			perm, err := d.PermanentFlags(ctx, "INBOX")
			if err != nil {
				t.Fatalf("PermanentFlags: %v", err)
			}
			t.Logf("PERMANENTFLAGS %q", perm)
			res, err := d.Append(ctx, "INBOX", numbered(8))
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			for i, r := range res {
				if r.Err != nil {
					t.Errorf("message %d: %v", i, r.Err)
				}
			}
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			msgs, err := s.Messages(ctx, "alice", "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 8 {
				t.Fatalf("INBOX holds %d messages after 8 APPENDs answered OK, want 8\n%s", len(msgs), s.LogTail(20))
			}
			for i, m := range msgs {
				if want := numbered(8)[i].InternalDate; !m.InternalDate.Equal(want) {
					t.Errorf("message %d: internal date %v, want %v", i, m.InternalDate, want)
				}
			}
		})
	}
}

// TestCyrusStatusAppendLimit: Cyrus 3.6 refuses the STATUS item
// APPENDLIMIT it advertises; EnsureMailbox works all the same, for INBOX
// and for a new folder, and the refusal is remembered.
func TestCyrusStatusAppendLimit(t *testing.T) {
	s := cyrus.Start(t, cyrus.Options{Users: map[string]string{"alice": "pw-alice"}})
	ctx := context.Background()
	q := imapconn.NewQuirks(nil, nil)
	d := dialKit(t, s, "alice", "pw-alice", NewShared(q))
	defer d.Close()
	for _, mb := range []string{"INBOX", "INBOX.Old.Archive"} {
		st, err := d.EnsureMailbox(ctx, mb)
		if err != nil {
			t.Fatalf("EnsureMailbox(%q): %v", mb, err)
		}
		if st.UIDValidity == 0 || st.AppendLimit == 0 {
			t.Errorf("EnsureMailbox(%q) = %+v, want UIDVALIDITY and the server-wide APPENDLIMIT", mb, st)
		}
	}
	if !q.Refused(imapconn.FeatureStatusAppendLimit) {
		t.Errorf("STATUS APPENDLIMIT not remembered as refused: %q", q.List())
	}
}

// TestNamespacePrefixFolder: Courier and Cyrus (classic namespace) keep a
// user's folders under "INBOX." and refuse "Archive" at the top ("Invalid
// mailbox name", "Permission denied"): the destination folder a user
// typed is created under the prefix instead, said in a note, and found
// there again by a later session.
func TestNamespacePrefixFolder(t *testing.T) {
	servers := map[string]mailserver.IMAPServer{
		"cyrus":   cyrus.Start(t, cyrus.Options{Users: map[string]string{"alice": "pw-alice"}}),
		"courier": courier.Start(t, courier.Options{Users: map[string]string{"alice": "pw-alice"}}),
	}
	for name, s := range servers {
		t.Run(name, func(t *testing.T) {
			var notes []string
			sh := NewShared(imapconn.NewQuirks(nil, func(n string) { notes = append(notes, n) }))
			for range 2 {
				d := dialKit(t, s, "alice", "pw-alice", sh)
				st, err := d.EnsureMailbox(context.Background(), "Archive/2019")
				if err != nil {
					t.Fatalf("EnsureMailbox: %v", err)
				}
				if st.Name != "INBOX.Archive.2019" || st.UIDValidity == 0 {
					t.Errorf("EnsureMailbox = %+v, want INBOX.Archive.2019", st)
				}
				if err := d.Close(); err != nil {
					t.Error(err)
				}
				sh = NewShared(imapconn.NewQuirks(nil, func(n string) { notes = append(notes, n) }))
			}
			var said []string
			for _, n := range notes {
				if strings.Contains(n, `is "INBOX.Archive.2019"`) {
					said = append(said, n)
				}
			}
			if len(said) != 2 || !strings.Contains(said[0], "it refused") || !strings.Contains(said[1], "an earlier run created it") {
				t.Errorf("notes %q, want the refusal, then the folder found again", notes)
			}
		})
	}
}
