package imapdst

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestSessionSetup(t *testing.T) {
	serverTLS, clientTLS := imapfake.TLSConfigs(t)
	tests := []struct {
		name     string
		opts     func(*Options)
		script   []imapfake.Step
		wantErr  error  // errors.Is target
		wantText string // substring of the error
		class    pipeline.Class
		wantCaps pipeline.Capabilities
	}{
		{
			name: "capabilities asked when the greeting has none, and after login",
			script: []imapfake.Step{
				imapfake.Send("* OK ready\r\n"),
				imapfake.Expect("A1 CAPABILITY\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1 LITERAL+\r\nA1 OK done\r\n"),
				imapfake.Expect("A2 LOGIN \"alice\" \"s3cret\"\r\n"),
				imapfake.Send("A2 OK logged in\r\n"),
				imapfake.Expect("A3 CAPABILITY\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND UIDPLUS APPENDLIMIT=1000\r\nA3 OK done\r\n"),
			},
			wantCaps: pipeline.Capabilities{MultiAppend: true, LiteralPlus: true, UIDPlus: true, AppendLimit: 1000},
		},
		{
			name: "user name quoted with escapes, 8-bit password as literal",
			opts: func(o *Options) { o.User = `a"b\c`; o.Password = secret.New("pässword") },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect(`A1 LOGIN "a\"b\\c" {9}` + "\r\n"),
				imapfake.Send("+ ready\r\n"),
				imapfake.Expect("pässword\r\n"),
				imapfake.Send("A1 OK [CAPABILITY IMAP4rev1 MULTIAPPEND] hi\r\n"),
			},
			wantCaps: pipeline.Capabilities{MultiAppend: true},
		},
		{
			name: "LOGINDISABLED uses AUTHENTICATE PLAIN with SASL-IR",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR] ready\r\n"),
				imapfake.Expect("A1 AUTHENTICATE PLAIN " + b64("\x00alice\x00s3cret") + "\r\n"),
				imapfake.Send("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"),
			},
			wantCaps: pipeline.Capabilities{UIDPlus: true},
		},
		{
			name: "master user logs in with authzid, continuation without SASL-IR",
			opts: func(o *Options) { o.User = "admin"; o.AuthzID = "alice" },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
				imapfake.Expect("A1 AUTHENTICATE PLAIN\r\n"),
				imapfake.Send("+ \r\n"),
				imapfake.Expect(b64("alice\x00admin\x00s3cret") + "\r\n"),
				imapfake.Send("A1 OK [CAPABILITY IMAP4rev1] hi\r\n"),
			},
		},
		{
			name: "PREAUTH skips login",
			script: []imapfake.Step{
				imapfake.Send("* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+] welcome\r\n"),
			},
			wantCaps: pipeline.Capabilities{LiteralPlus: true},
		},
		{
			name: "plaintext refused without AllowPlaintext, nothing sent",
			opts: func(o *Options) { o.AllowPlaintext = false },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: ErrPlaintextRefused,
			class:   pipeline.ClassFatal,
		},
		{
			name: "LOGINDISABLED without AUTH=PLAIN",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: ErrLoginDisabled,
			class:   pipeline.ClassFatal,
		},
		{
			name: "CR in password refused before sending",
			opts: func(o *Options) { o.Password = secret.New("pass\r\nA9 LOGOUT") },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: ErrInvalidArgument,
			class:   pipeline.ClassFatal,
		},
		{
			name: "NO to LOGIN is fatal and does not show the password",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect("A1 LOGIN \"alice\" \"s3cret\"\r\n"),
				imapfake.Send("A1 NO [AUTHENTICATIONFAILED] invalid credentials\r\n"),
				imapfake.Drain(),
			},
			wantText: "AUTHENTICATIONFAILED",
			class:    pipeline.ClassFatal,
		},
		{
			name: "BYE greeting is transient and keeps its text",
			script: []imapfake.Step{
				imapfake.Send("* BYE [UNAVAILABLE] too many connections\r\n"),
				imapfake.Close(),
			},
			wantText: "too many connections",
			class:    pipeline.ClassTransient,
		},
		{
			name: "STARTTLS upgrades, then capabilities are asked again",
			opts: func(o *Options) { o.TLS = TLSStartTLS; o.AllowPlaintext = false; o.TLSConfig = clientTLS },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"),
				imapfake.Expect("A1 STARTTLS\r\n"),
				imapfake.Send("A1 OK begin TLS\r\n"),
				imapfake.StartTLS(serverTLS),
				imapfake.Expect("A2 CAPABILITY\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\nA2 OK done\r\n"),
				imapfake.Expect("A3 LOGIN \"alice\" \"s3cret\"\r\n"), // LOGINDISABLED is gone
				imapfake.Send("A3 OK [CAPABILITY IMAP4rev1 MULTIAPPEND LITERAL+] hi\r\n"),
			},
			wantCaps: pipeline.Capabilities{MultiAppend: true, LiteralPlus: true},
		},
		{
			name: "STARTTLS required but not offered",
			opts: func(o *Options) { o.TLS = TLSStartTLS; o.TLSConfig = clientTLS },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: ErrNoStartTLS,
			class:   pipeline.ClassFatal,
		},
		{
			name: "PREAUTH on clear text refused with STARTTLS",
			opts: func(o *Options) { o.TLS = TLSStartTLS; o.TLSConfig = clientTLS },
			script: []imapfake.Step{
				imapfake.Send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n"),
				imapfake.Drain(),
			},
			wantText: "PREAUTH",
			class:    pipeline.ClassFatal,
		},
		{
			name: "implicit TLS",
			opts: func(o *Options) { o.TLS = TLSImplicit; o.AllowPlaintext = false; o.TLSConfig = clientTLS },
			script: []imapfake.Step{
				imapfake.StartTLS(serverTLS),
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect("A1 LOGIN \"alice\" \"s3cret\"\r\n"),
				imapfake.Send("A1 OK [CAPABILITY IMAP4rev1 UIDPLUS] hi\r\n"),
			},
			wantCaps: pipeline.Capabilities{UIDPlus: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := imapfake.Start(t, tc.script...)
			opts := testOptions(srv.Addr())
			if tc.opts != nil {
				tc.opts(&opts)
			}
			a, err := DialAppender(context.Background(), opts)
			if a != nil {
				defer func() { _ = a.ic.Close() }()
			}
			if tc.wantErr == nil && tc.wantText == "" {
				if err != nil {
					t.Fatalf("DialAppender: %v", err)
				}
				if got := a.Capabilities(); got != tc.wantCaps {
					t.Errorf("Capabilities() = %+v, want %+v", got, tc.wantCaps)
				}
				return
			}
			if err == nil {
				t.Fatal("DialAppender succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("DialAppender = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("DialAppender = %v, want it to mention %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), opts.Password.Reveal()) {
				t.Errorf("error %q shows the password", err)
			}
			if c := pipeline.ClassOf(err); c != tc.class {
				t.Errorf("class of %v = %v, want %v", err, c, tc.class)
			}
			if tc.wantErr == ErrPlaintextRefused || tc.wantErr == ErrInvalidArgument {
				_ = srv.Wait()
				if got := srv.Received(); got != "" {
					t.Errorf("client sent %q before refusing", got)
				}
			}
		})
	}
}

func TestCloseLogsOut(t *testing.T) {
	srv := imapfake.Start(t, append(login("LITERAL+"),
		imapfake.Expect("A2 LOGOUT\r\n"),
		imapfake.Send("* BYE bye\r\nA2 OK done\r\n"))...)
	a, err := DialAppender(context.Background(), testOptions(srv.Addr()))
	if err != nil {
		t.Fatalf("DialAppender: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := a.Append(context.Background(), "INBOX", []pipeline.OutgoingMessage{msg("x")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

// An untrusted certificate is fatal: retrying cannot fix it, --tls-ca can.
func TestUntrustedCertificateIsFatal(t *testing.T) {
	serverTLS, _ := imapfake.TLSConfigs(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	opts := testOptions(ln.Addr().String())
	opts.TLS, opts.AllowPlaintext, opts.TLSConfig = TLSImplicit, false, &tls.Config{}
	_, err = DialAppender(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("DialAppender to an untrusted server = %v, want a certificate error", err)
	}
	if c := pipeline.ClassOf(err); c != pipeline.ClassFatal {
		t.Errorf("class of %v = %v, want fatal", err, c)
	}
}
