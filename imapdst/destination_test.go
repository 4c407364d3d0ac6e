package imapdst

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf("imapserver: "+format, args...) }

// startMemServer runs imapmemserver on 127.0.0.1 with STARTTLS and user
// alice; it returns the address and a client TLS config that trusts it.
func startMemServer(t *testing.T) (string, *tls.Config) {
	t.Helper()
	return startMemServerCaps(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapLiteralPlus: {}})
}

// startMemServerCaps is startMemServer with the given capabilities.
func startMemServerCaps(t *testing.T, caps imap.CapSet) (string, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := imapfake.TLSConfigs(t)
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("alice", "s3cret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatalf("creating INBOX: %v", err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:      caps,
		TLSConfig: serverTLS,
		Logger:    testLogger{t},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), clientTLS
}

func TestDestinationEndToEnd(t *testing.T) {
	addr, clientTLS := startMemServer(t)
	ctx := context.Background()
	opts := Options{
		Addr: addr, TLS: TLSStartTLS, TLSConfig: clientTLS,
		User: "alice", Password: secret.New("s3cret"), IdleTimeout: 5 * time.Second,
	}
	d, err := Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if caps := d.Capabilities(); !caps.UIDPlus || !caps.LiteralPlus || caps.MultiAppend {
		t.Errorf("Capabilities() = %+v, want UIDPLUS and LITERAL+ without MULTIAPPEND", caps)
	}

	st, err := d.EnsureMailbox(ctx, "Archive")
	if err != nil {
		t.Fatalf("EnsureMailbox: %v", err)
	}
	if st.UIDValidity == 0 || st.UIDNext != 1 {
		t.Errorf("EnsureMailbox = %+v, want UIDVALIDITY set and UIDNEXT 1", st)
	}
	if again, err := d.EnsureMailbox(ctx, "Archive"); err != nil || again.UIDValidity != st.UIDValidity {
		t.Errorf("EnsureMailbox again = %+v, %v; want the same mailbox", again, err)
	}

	bodies := []string{
		"Message-ID: <one@example>\r\nSubject: one\r\n\r\nfirst body\r\n",
		"Message-ID: <two@example>\r\nSubject: two\r\n\r\n" + strings.Repeat("long line of text\r\n", 400),
		"Message-ID: <one@example.org>\r\nSubject: three\r\n\r\nthird\r\n",
	}
	date := time.Date(2019, 5, 6, 7, 8, 9, 0, time.FixedZone("", -7*3600-30*60))
	msgs := []pipeline.OutgoingMessage{
		{Body: strings.NewReader(bodies[0]), Size: int64(len(bodies[0])), Flags: []string{`\Seen`, "$Forwarded"}, InternalDate: date},
		{Body: strings.NewReader(bodies[1]), Size: int64(len(bodies[1])), Flags: []string{`\Flagged`}},
		{Body: strings.NewReader(bodies[2]), Size: int64(len(bodies[2]))},
	}
	res, err := d.Append(ctx, "Archive", msgs)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	for i, r := range res {
		if r.Err != nil || r.UIDValidity != st.UIDValidity || r.UID != uint32(i+1) {
			t.Errorf("result %d = %+v, want UIDValidity %d UID %d", i, r, st.UIDValidity, i+1)
		}
	}

	list, err := d.ListSince(ctx, "Archive", st.UIDValidity, 2)
	if err != nil {
		t.Fatalf("ListSince: %v", err)
	}
	want := []pipeline.DestMessage{{UID: 2, Size: int64(len(bodies[1]))}, {UID: 3, Size: int64(len(bodies[2]))}}
	if !slices.Equal(list, want) {
		t.Errorf("ListSince(2) = %+v, want %+v", list, want)
	}
	if list, err := d.ListSince(ctx, "Archive", st.UIDValidity, 10); err != nil || len(list) != 0 {
		t.Errorf("ListSince(10) = %+v, %v; want nothing (10:* must not return UID 3)", list, err)
	}
	if _, err := d.ListSince(ctx, "Archive", st.UIDValidity+1, 1); !errors.Is(err, pipeline.ErrUIDValidityChanged) {
		t.Errorf("ListSince with another UIDVALIDITY = %v, want ErrUIDValidityChanged", err)
	}

	uids, err := d.SearchMessageID(ctx, "Archive", "<one@example>")
	if err != nil || !slices.Equal(uids, []uint32{1}) {
		t.Errorf("SearchMessageID(<one@example>) = %v, %v; want [1] (not the substring match 3)", uids, err)
	}
	if uids, err := d.SearchMessageID(ctx, "Archive", "<none@example>"); err != nil || len(uids) != 0 {
		t.Errorf("SearchMessageID(<none@example>) = %v, %v; want none", uids, err)
	}

	for i, b := range bodies {
		sum, size, err := d.Digest(ctx, "Archive", uint32(i+1))
		if err != nil {
			t.Fatalf("Digest(%d): %v", i+1, err)
		}
		if sum != sha256.Sum256([]byte(b)) || size != int64(len(b)) {
			t.Errorf("Digest(%d) = %x, %d; want the sha256 of the %d bytes appended", i+1, sum, size, len(b))
		}
	}
	if _, _, err := d.Digest(ctx, "Archive", 99); !errors.Is(err, ErrMessageNotFound) {
		t.Errorf("Digest(99) = %v, want ErrMessageNotFound", err)
	}

	checkStored(t, addr, clientTLS, date)
}

// checkStored reads flags and internal date of message 1 with go-imap.
func checkStored(t *testing.T, addr string, clientTLS *tls.Config, date time.Time) {
	t.Helper()
	cfg := clientTLS.Clone()
	cfg.ServerName = "127.0.0.1"
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: cfg})
	if err != nil {
		t.Fatalf("DialStartTLS: %v", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Login("alice", "s3cret").Wait(); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if _, err := c.Select("Archive", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("Select: %v", err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Fetch = %v, %v", msgs, err)
	}
	flags := msgs[0].Flags
	if !slices.Contains(flags, imap.FlagSeen) || !slices.Contains(flags, imap.Flag("$Forwarded")) {
		t.Errorf("flags = %v, want \\Seen and $Forwarded", flags)
	}
	if !msgs[0].InternalDate.Equal(date) {
		t.Errorf("internal date = %v, want %v", msgs[0].InternalDate, date)
	}
}

func TestDialRefusesPlaintext(t *testing.T) {
	addr, _ := startMemServer(t)
	_, err := Dial(context.Background(), Options{Addr: addr, TLS: TLSNone, User: "alice", Password: secret.New("s3cret")})
	if !errors.Is(err, ErrPlaintextRefused) {
		t.Fatalf("Dial = %v, want ErrPlaintextRefused", err)
	}
}

func TestDialWrongPassword(t *testing.T) {
	addr, clientTLS := startMemServer(t)
	_, err := Dial(context.Background(), Options{Addr: addr, TLS: TLSStartTLS, TLSConfig: clientTLS, User: "alice", Password: secret.New("wrong")})
	var le *LoginError
	if !errors.As(err, &le) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Dial = %v, want a fatal *LoginError", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q shows the password", err)
	}
}
