package imapdst

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/mapping"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// syncBuffer is a bytes.Buffer safe for the trace writers of two connections.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFoldersAndFlagsMemServer runs the folder and flag calls against
// imapmemserver with SPECIAL-USE, CREATE-SPECIAL-USE, LIST-EXTENDED and
// NAMESPACE advertised.
func TestFoldersAndFlagsMemServer(t *testing.T) {
	serverTLS, clientTLS := imapfake.TLSConfigs(t)
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("alice", "s3cret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapLiteralPlus: {},
			imap.CapSpecialUse: {}, imap.CapCreateSpecialUse: {}, imap.CapListExtended: {}, imap.CapNamespace: {}},
		TLSConfig: serverTLS,
		Logger:    testLogger{t},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ctx := context.Background()
	trace := &syncBuffer{}
	d, err := Dial(ctx, Options{
		Addr: ln.Addr().String(), TLS: TLSStartTLS, TLSConfig: clientTLS,
		User: "alice", Password: secret.New("s3cret"), IdleTimeout: 5 * time.Second, Trace: trace,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer func() { _ = d.Close() }()

	if _, err := d.EnsureMailboxUse(ctx, "Sent Items", mapping.UseSent); err != nil {
		t.Fatalf("EnsureMailboxUse: %v", err)
	}
	if !strings.Contains(trace.String(), `CREATE "Sent Items" (USE (\Sent))`) {
		t.Errorf("trace has no CREATE with USE:\n%s", trace)
	}
	if _, err := d.EnsureMailboxUse(ctx, "Работа/Отчёты", ""); err != nil {
		t.Fatalf("EnsureMailboxUse(non-ASCII): %v", err)
	}
	if !strings.Contains(trace.String(), `&BCAEMAQxBD4EQgQw-/&BB4EQgRHBFEEQgRL-`) {
		t.Errorf("trace has no modified UTF-7 name (RFC 3501 §5.1.3):\n%s", trace)
	}
	if err := d.Subscribe(ctx, "Sent Items"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	fl, err := d.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	if fl.Delim != '/' || fl.Prefix != "" || !fl.SpecialUse || !fl.CreateSpecialUse {
		t.Errorf("Folders = %+v, want '/' separator, no prefix, SPECIAL-USE and CREATE-SPECIAL-USE", fl)
	}
	names := map[string][]string{}
	for _, f := range fl.Folders {
		names[f.Name] = f.Attrs
	}
	if attrs, ok := names["Sent Items"]; !ok || !slices.Contains(attrs, `\Subscribed`) {
		t.Errorf("Folders: Sent Items %q (listed %v), want \\Subscribed", attrs, ok)
	}
	if _, ok := names["Работа/Отчёты"]; !ok {
		t.Errorf("Folders = %+v, want the non-ASCII name decoded", fl.Folders)
	}

	body := "Subject: y\r\n\r\ny\r\n"
	// imapmemserver's PERMANENTFLAGS are the flags in use plus \*, so the
	// first message carries every system flag to make them settable.
	var msgs []pipeline.OutgoingMessage
	for i := range 4 {
		flags := []string{`\Deleted`, "gone"}
		if i == 0 {
			flags = append(flags, `\Seen`, `\Answered`, `\Flagged`, `\Draft`)
		}
		msgs = append(msgs, pipeline.OutgoingMessage{Body: strings.NewReader(body), Size: int64(len(body)), Flags: flags})
	}
	res, err := d.Append(ctx, "Sent Items", msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	perm, err := d.PermanentFlags(ctx, "Sent Items")
	if err != nil || !slices.Contains(perm, `\*`) {
		t.Errorf("PermanentFlags = %q, %v; want \\*", perm, err)
	}
	want := map[uint32][]string{
		res[0].UID: {`\Seen`},
		res[1].UID: {`\Seen`},
		res[2].UID: {"$Forwarded", `\Answered`},
		res[3].UID: nil,
	}
	sr, err := d.StoreFlagsCounted(ctx, "Sent Items", res[0].UIDValidity, want)
	if err != nil || sr.Stored != 4 || sr.Commands != 3 {
		t.Fatalf("StoreFlagsCounted = %+v, %v; want 4 messages in 3 commands", sr, err)
	}
	got := fetchFlagsStartTLS(t, ln.Addr().String(), clientTLS, "Sent Items")
	for uid, fs := range want {
		if !sameFlagSet(got[uid], fs) {
			t.Errorf("UID %d flags = %q, want %q", uid, got[uid], fs)
		}
	}
}
