package pop3src

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestAPOPDigest: the example of RFC 1939 §7.
func TestAPOPDigest(t *testing.T) {
	srv := startFake(t, pop3fake.Options{APOPOnly: true, User: "mrose", Password: "tanstaaf",
		Greeting: "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>"})
	c, err := Dial(context.Background(), DialOptions{Addr: srv.Addr(), TLS: TLSNone, AllowPlaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Apop(context.Background(), "mrose", secret.New("tanstaaf")); err != nil {
		t.Fatalf("Apop: %v", err)
	}
	want := "APOP mrose c4c9334bac560ecc979e58001b3e22fb"
	if !slices.ContainsFunc(srv.Commands(), func(c pop3fake.Command) bool { return c.Line == want }) {
		t.Errorf("commands %+v, want %q", srv.Commands(), want)
	}
	for g, want := range map[string]string{
		"POP3 server ready <1896.697170952@dbc.mtview.ca.us>": "<1896.697170952@dbc.mtview.ca.us>",
		"ready":                   "",
		"ready <no-at-sign>":      "",
		"ready <a b@c>":           "",
		"<x@y> and more <z@w>":    "<x@y>",
		"unterminated <1@example": "",
	} {
		if got := apopTimestamp(g); got != want {
			t.Errorf("apopTimestamp(%q) = %q, want %q", g, got, want)
		}
	}
}

// TestSourceAPOPOnly: a server that offers APOP and neither USER nor SASL
// is logged in to with APOP: found in CAPA, or by USER refused where there
// is no CAPA. Without TLS it needs AllowPlaintext (MD5 is no protection).
func TestSourceAPOPOnly(t *testing.T) {
	msgs := []pop3fake.Message{{UIDL: "u1", Body: []byte("Subject: a\r\n\r\nA\r\n")}}
	for _, noCAPA := range []bool{false, true} {
		srv := startFake(t, pop3fake.Options{APOPOnly: true, NoCAPA: noCAPA, Messages: msgs})
		s := open(t, plainOptions(srv))
		list, err := pipeline.ListAll(context.Background(), s)
		if err != nil || len(list) != 1 {
			t.Fatalf("NoCAPA=%v: List = %v, %v", noCAPA, list, err)
		}
		if !slices.ContainsFunc(srv.Commands(), func(c pop3fake.Command) bool { return strings.HasPrefix(c.Line, "APOP alice ") }) {
			t.Errorf("NoCAPA=%v: no APOP sent: %+v", noCAPA, srv.Commands())
		}
		opts := plainOptions(srv)
		opts.AllowPlaintext = false
		if _, err := Open(context.Background(), opts); !errors.Is(err, ErrPlaintext) {
			t.Errorf("NoCAPA=%v: APOP without TLS or AllowPlaintext: %v, want ErrPlaintext", noCAPA, err)
		}
	}
	// Over TLS it needs nothing more.
	serverTLS, clientTLS, err := pop3fake.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	srv := startFake(t, pop3fake.Options{APOPOnly: true, TLSConfig: serverTLS, ImplicitTLS: true, Messages: msgs})
	s := open(t, Options{Addr: srv.Addr(), TLS: TLSImplicit, TLSConfig: clientTLS, User: testUser, Password: secret.New(testPassword)})
	if _, err := pipeline.ListAll(context.Background(), s); err != nil {
		t.Fatalf("APOP over TLS: %v", err)
	}
}

// TestSourceRETRRefused: a server without RESP-CODES that answers RETR of
// one message with a bare -ERR every time. That message fails on its own
// (per message, with the server's reply) after the RETR was sent again,
// and the messages after it are served, with and without pipelining; on
// a server without UIDL it is listed under its size.
func TestSourceRETRRefused(t *testing.T) {
	msgs := []pop3fake.Message{
		{UIDL: "u1", Body: []byte("Subject: 1\r\n\r\none\r\n")},
		{UIDL: "u2", Body: []byte("Subject: 2\r\n\r\ntwo\r\n")},
		{UIDL: "u3", Body: []byte("Subject: 3\r\n\r\nthree\r\n")},
	}
	for _, tc := range []struct {
		name string
		opts pop3fake.Options
	}{
		{"plain", pop3fake.Options{}},
		{"pipelining", pop3fake.Options{Pipelining: true}},
		{"no UIDL", pop3fake.Options{NoUIDL: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Messages = msgs
			opts.Faults = pop3fake.Faults{Err: map[string]string{"RETR 2": "-ERR message is corrupt"}}
			srv := startFake(t, opts)
			s := open(t, plainOptions(srv))
			list, err := pipeline.ListAll(context.Background(), s)
			if err != nil || len(list) != 3 {
				t.Fatalf("List = %v, %v; want 3 messages", list, err)
			}
			if tc.opts.NoUIDL && list[1].Key != "unreadable:"+strconv.Itoa(len(msgs[1].Body)) {
				t.Errorf("key of the unreadable message = %q", list[1].Key)
			}
			if err := s.Prefetch(context.Background(), list); err != nil {
				t.Fatal(err)
			}
			for i, m := range list {
				var b bytes.Buffer
				_, err := s.Fetch(context.Background(), m, &b)
				if i == 1 {
					if err == nil || pipeline.ClassOf(err) != pipeline.ClassPerMessage || !strings.Contains(err.Error(), "message is corrupt") {
						t.Errorf("Fetch of the refused message: %v (class %v), want per message with the reply", err, pipeline.ClassOf(err))
					}
					continue
				}
				if err != nil || !bytes.Equal(b.Bytes(), msgs[i].Body) {
					t.Errorf("Fetch(%q) = %q, %v; want %q", m.Key, b.Bytes(), err, msgs[i].Body)
				}
			}
			retr2 := 0
			for _, c := range srv.Commands() {
				if c.Line == "RETR 2" {
					retr2++
				}
			}
			if want := len(retrRetries) + 1; retr2 < want {
				t.Errorf("RETR 2 sent %d times, want at least %d", retr2, want)
			}
		})
	}
}

// TestSourceListSizeWrong: LIST sizes that disagree with what RETR serves
// are only advisory: the bytes are RETR's, exactly.
func TestSourceListSizeWrong(t *testing.T) {
	msgs := []pop3fake.Message{
		{UIDL: "small", Body: []byte("Subject: s\r\n\r\n" + strings.Repeat("x", 500) + "\r\n"), ListSize: 10},
		{UIDL: "big", Body: []byte("Subject: b\r\n\r\nb\r\n"), ListSize: 1 << 20},
	}
	srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
	s := open(t, plainOptions(srv))
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if list[0].Size != 10 || list[1].Size != 1<<20 {
		t.Errorf("List sizes %d, %d; want the announced 10 and %d", list[0].Size, list[1].Size, 1<<20)
	}
	if err := s.Prefetch(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	for i, b := range fetchAll(t, s, list) {
		if !bytes.Equal(b, msgs[i].Body) {
			t.Errorf("Fetch(%q) = %d bytes, want %d", list[i].Key, len(b), len(msgs[i].Body))
		}
	}
}

// TestSourceUTF8: a server that offers UTF8 (RFC 6856) and, like Courier's
// pop3d, serves a message with UTF-8 in its header as a notice with a
// fresh MIME boundary unless the client asks for UTF-8 mode. The source
// asks, and the message arrives as stored.
func TestSourceUTF8(t *testing.T) {
	msg := []byte("Subject: Grüße\r\nMessage-ID: <u@x>\r\n\r\nhällo\r\n")
	srv := startFake(t, pop3fake.Options{UTF8: true, Messages: []pop3fake.Message{{UIDL: "u1", Body: msg}}})
	s := open(t, plainOptions(srv))
	list, err := pipeline.ListAll(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchAll(t, s, list); !bytes.Equal(got[0], msg) {
		t.Errorf("Fetch = %q, want the message as stored", got[0])
	}
	sent := 0
	for _, c := range srv.Commands() {
		if c.Line == "UTF8" {
			sent++
		}
	}
	if sent != 1 {
		t.Errorf("UTF8 sent %d times, want once", sent)
	}
}
