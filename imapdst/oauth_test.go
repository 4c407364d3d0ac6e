package imapdst

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

func TestAppenderOAuthTranscript(t *testing.T) {
	const token = "ya29.SECRET-token"
	xo := b64("user=alice\x01auth=Bearer " + token + "\x01\x01")
	ob := b64("n,a=alice,\x01auth=Bearer " + token + "\x01\x01")
	tests := []struct {
		name     string
		auth     AuthMethod
		script   []imapfake.Step
		rejected string // TokenRejectedError status; "" for success
	}{
		{
			name: "xoauth2 with SASL-IR", auth: AuthXOAuth2,
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"),
				imapfake.Expect("A1 AUTHENTICATE XOAUTH2 " + xo + "\r\n"),
				imapfake.Send("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"),
			},
		},
		{
			name: "oauthbearer without SASL-IR", auth: AuthOAuthBearer,
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] ready\r\n"),
				imapfake.Expect("A1 AUTHENTICATE OAUTHBEARER\r\n"),
				imapfake.Send("+ \r\n"),
				imapfake.Expect(ob + "\r\n"),
				imapfake.Send("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"),
			},
		},
		{
			name: "xoauth2 error challenge answered with an empty line", auth: AuthXOAuth2, rejected: "401",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"),
				imapfake.Expect("A1 AUTHENTICATE XOAUTH2 " + xo + "\r\n"),
				imapfake.Send("+ " + b64(`{"status":"401","schemes":"bearer","scope":"mail"}`) + "\r\n"),
				imapfake.Expect("\r\n"),
				imapfake.Send("A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
				imapfake.Drain(),
			},
		},
		{
			name: "oauthbearer error challenge answered with ^A", auth: AuthOAuthBearer, rejected: "invalid_token",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready\r\n"),
				imapfake.Expect("A1 AUTHENTICATE OAUTHBEARER " + ob + "\r\n"),
				imapfake.Send("+ " + b64(`{"status":"invalid_token"}`) + "\r\n"),
				imapfake.Expect("AQ==\r\n"),
				imapfake.Send("A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
				imapfake.Drain(),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := imapfake.Start(t, tc.script...)
			opts := testOptions(srv.Addr())
			opts.Auth = tc.auth
			opts.Password = secret.New(token)
			var trace bytes.Buffer
			opts.Trace = &trace
			a, err := DialAppender(context.Background(), opts)
			if a != nil {
				defer func() { _ = a.ic.Close() }()
			}
			for _, bad := range []string{token, xo[:16], ob[:16]} {
				if strings.Contains(trace.String(), bad) {
					t.Errorf("trace shows the token:\n%s", trace.String())
				}
			}
			if tc.rejected == "" {
				if err != nil {
					t.Fatalf("DialAppender: %v", err)
				}
				if !a.Capabilities().UIDPlus {
					t.Error("capabilities from the AUTHENTICATE completion were not taken")
				}
				return
			}
			var rej *TokenRejectedError
			var refused *LoginError
			if !errors.As(err, &rej) || rej.Status != tc.rejected || !errors.As(rej.Reply, &refused) || refused.Code != "AUTHENTICATIONFAILED" {
				t.Fatalf("DialAppender: %v, want a TokenRejectedError with status %q and the server's NO", err, tc.rejected)
			}
			if pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), token) {
				t.Errorf("err = %v (class %v), want fatal without the token", err, pipeline.ClassOf(err))
			}
			// Drain: the client closed the connection after the NO.
			if err := srv.Wait(); err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}

func TestOAuthRefusals(t *testing.T) {
	tests := []struct {
		name     string
		greeting string
		opts     func(*Options)
	}{
		{"mechanism not offered", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n", func(o *Options) { o.Auth = AuthXOAuth2 }},
		{"with AuthzID", "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\r\n", func(o *Options) { o.Auth = AuthXOAuth2; o.AuthzID = "bob" }},
		{"empty token", "* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] ready\r\n", func(o *Options) { o.Auth = AuthOAuthBearer; o.Password = secret.Value{} }},
		{"token with ^A", "* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] ready\r\n", func(o *Options) { o.Auth = AuthOAuthBearer; o.Password = secret.New("T0K3N\x01x") }},
		{"unknown method", "* OK [CAPABILITY IMAP4rev1] ready\r\n", func(o *Options) { o.Auth = AuthMethod(99) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := imapfake.Start(t, imapfake.Send(tc.greeting), imapfake.Drain())
			opts := testOptions(srv.Addr())
			opts.Password = secret.New("T0K3N")
			tc.opts(&opts)
			a, err := DialAppender(context.Background(), opts)
			if a != nil {
				_ = a.ic.Close()
			}
			if err == nil || pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), "T0K3N") {
				t.Fatalf("DialAppender: %v (class %v), want a fatal error without the token", err, pipeline.ClassOf(err))
			}
			_ = srv.Wait()
			if got := srv.Received(); got != "" {
				t.Errorf("client sent %q before refusing", got)
			}
		})
	}
}

func TestPasswordFuncError(t *testing.T) {
	boom := errors.New("token command exited with status 1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	opts := testOptions(ln.Addr().String())
	opts.Auth = AuthXOAuth2
	opts.PasswordFunc = func(context.Context) (secret.Value, error) { return secret.Value{}, boom }
	if _, err := Dial(context.Background(), opts); !errors.Is(err, boom) {
		t.Fatalf("Dial: %v, want the PasswordFunc error", err)
	}
	// Without a token there is nothing to log in with: no connection.
	_ = ln.(*net.TCPListener).SetDeadline(time.Now())
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("Dial connected although the token could not be read")
	}
}

// FuzzChallengeStatus: any challenge yields a short printable status,
// without panicking.
func FuzzChallengeStatus(f *testing.F) {
	f.Add(b64(`{"status":"401","schemes":"bearer"}`))
	f.Add(`{"status":"invalid_token"}`)
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, s string) {
		got := challengeStatus(s)
		if len(got) > 64 || strings.ContainsAny(got, "\r\n\x00") {
			t.Errorf("challengeStatus(%q) = %q", s, got)
		}
	})
}
