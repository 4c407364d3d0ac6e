package imapsrc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// xstep is one exchange of an exact transcript: the client must send want
// (with its command tag in place of "$TAG"), then the server sends reply.
type xstep struct{ want, reply string }

// transcript serves one connection: greeting, then steps, then it expects
// the client to close without another byte. It returns the address and a
// wait func that reports deviations.
func transcript(t *testing.T, greeting string, steps ...xstep) (addr string, wait func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		_ = ln.Close()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, greeting)
		r := bufio.NewReader(c)
		tag := ""
		for i, s := range steps {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Errorf("step %d: reading %q: %v", i, s.want, err)
				return
			}
			if strings.Contains(s.want, "$TAG") {
				tag, _, _ = strings.Cut(line, " ")
			}
			if want := strings.ReplaceAll(s.want, "$TAG", tag); line != want {
				t.Errorf("step %d: client sent %q, want %q", i, line, want)
				return
			}
			_, _ = io.WriteString(c, strings.ReplaceAll(s.reply, "$TAG", tag))
		}
		extra, _ := io.ReadAll(r)
		if len(extra) > 0 && !bytes.Contains(extra, []byte("LOGOUT")) {
			t.Errorf("client sent %q after the transcript", extra)
		}
	}()
	return ln.Addr().String(), func() { t.Helper(); <-done }
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestTranscriptOAuth(t *testing.T) {
	const token = "ya29.SECRET-token"
	xo := b64("user=alice\x01auth=Bearer " + token + "\x01\x01")
	ob := b64("n,a=alice,\x01auth=Bearer " + token + "\x01\x01")
	const withIR = "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n"
	const noIR = "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n"
	const ok = "$TAG OK [CAPABILITY IMAP4rev1] logged in\r\n"
	tests := []struct {
		name     string
		auth     AuthMethod
		greeting string
		steps    []xstep
		rejected string // the TokenRejectedError status; "" for success
	}{
		{"xoauth2 SASL-IR", AuthXOAuth2, withIR, []xstep{{"$TAG AUTHENTICATE XOAUTH2 " + xo + "\r\n", ok}}, ""},
		{"oauthbearer SASL-IR", AuthOAuthBearer, withIR, []xstep{{"$TAG AUTHENTICATE OAUTHBEARER " + ob + "\r\n", ok}}, ""},
		{"xoauth2 without SASL-IR", AuthXOAuth2, noIR, []xstep{
			{"$TAG AUTHENTICATE XOAUTH2\r\n", "+ \r\n"},
			{xo + "\r\n", ok},
		}, ""},
		{"xoauth2 error challenge", AuthXOAuth2, withIR, []xstep{
			{"$TAG AUTHENTICATE XOAUTH2 " + xo + "\r\n", "+ " + b64(`{"status":"401","schemes":"bearer"}`) + "\r\n"},
		}, "401"},
		{"oauthbearer error challenge", AuthOAuthBearer, noIR, []xstep{
			{"$TAG AUTHENTICATE OAUTHBEARER\r\n", "+ \r\n"},
			{ob + "\r\n", "+ " + b64(`{"status":"invalid_token"}`) + "\r\n"},
		}, "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The post-login CAPABILITY lacks NAMESPACE: Open asks nothing more.
			addr, wait := transcript(t, tc.greeting, tc.steps...)
			var trace bytes.Buffer
			s, err := Open(t.Context(), Options{
				Addr: addr, TLS: TLSNone, AllowPlaintext: true, IdleTimeout: 5 * time.Second,
				User: "alice", Password: secret.New(token), Auth: tc.auth, Trace: &trace,
			})
			if s != nil {
				_ = s.c.Close()
			}
			wait()
			if strings.Contains(trace.String(), token) || strings.Contains(trace.String(), xo[:16]) || strings.Contains(trace.String(), ob[:16]) {
				t.Errorf("trace shows the token:\n%s", trace.String())
			}
			if tc.rejected == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			var rej *TokenRejectedError
			if !errors.As(err, &rej) || rej.Status != tc.rejected {
				t.Fatalf("Open: %v, want TokenRejectedError with status %q", err, tc.rejected)
			}
			if pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), token) {
				t.Errorf("err = %v (class %v), want fatal without the token", err, pipeline.ClassOf(err))
			}
		})
	}
}

// noConnection listens on 127.0.0.1 and returns its address and a func
// that fails the test when a client connected.
func noConnection(t *testing.T) (addr string, wait func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), func() {
		t.Helper()
		defer ln.Close()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
		if c, err := ln.Accept(); err == nil {
			_ = c.Close()
			t.Error("the client connected, want it to refuse before connecting")
		}
	}
}

func TestOAuthRefusals(t *testing.T) {
	tests := []struct {
		name     string
		greeting string // "": refused before connecting
		opts     func(*Options)
	}{
		{"mechanism not offered", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n", func(o *Options) { o.Auth = AuthXOAuth2 }},
		{"with AuthzID", "", func(o *Options) { o.Auth = AuthXOAuth2; o.AuthzID = "bob" }},
		{"empty token", "", func(o *Options) { o.Auth = AuthOAuthBearer; o.Password = secret.Value{} }},
		{"unknown method", "", func(o *Options) { o.Auth = AuthMethod(99) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, wait := noConnection(t)
			if tc.greeting != "" {
				addr, wait = transcript(t, tc.greeting)
			}
			o := Options{Addr: addr, TLS: TLSNone, AllowPlaintext: true, IdleTimeout: 5 * time.Second, User: "alice", Password: secret.New("T0K3N")}
			tc.opts(&o)
			s, err := Open(t.Context(), o)
			if s != nil {
				_ = s.c.Close()
			}
			wait()
			if err == nil || pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), "T0K3N") {
				t.Fatalf("Open: %v (class %v), want a fatal error without the token", err, pipeline.ClassOf(err))
			}
		})
	}
}

func TestOAuthPasswordFunc(t *testing.T) {
	const token = "fresh-token"
	addr, wait := transcript(t, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n",
		xstep{"$TAG AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer "+token+"\x01\x01") + "\r\n", "$TAG OK [CAPABILITY IMAP4rev1] hi\r\n"})
	calls := 0
	s, err := Open(t.Context(), Options{
		Addr: addr, TLS: TLSNone, AllowPlaintext: true, IdleTimeout: 5 * time.Second, User: "alice",
		Password: secret.New("stale-token"), Auth: AuthXOAuth2,
		PasswordFunc: func(context.Context) (secret.Value, error) { calls++; return secret.New(token), nil },
	})
	if s != nil {
		_ = s.c.Close()
	}
	wait()
	if err != nil || calls != 1 {
		t.Fatalf("Open: %v, PasswordFunc called %d times; want success and 1 call", err, calls)
	}
	boom := errors.New("token command exited with status 1")
	_, err = Open(t.Context(), Options{Addr: "127.0.0.1:1", TLS: TLSNone, AllowPlaintext: true, User: "alice", Auth: AuthXOAuth2,
		PasswordFunc: func(context.Context) (secret.Value, error) { return secret.Value{}, boom }})
	if !errors.Is(err, boom) {
		t.Fatalf("Open: %v, want the PasswordFunc error", err)
	}
}
