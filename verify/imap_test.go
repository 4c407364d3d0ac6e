package verify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestDialIMAPLogin checks that DialIMAP logs in with imapdst.Login, as
// the copy's control connection does: OAuth2 tokens (read through
// PasswordFunc), master users, and the copy's errors.
func TestDialIMAPLogin(t *testing.T) {
	const token = "ya29.verify-SECRET"
	loggedIn := []imapfake.Step{
		imapfake.Expect("T2 CAPABILITY\r\n"),
		imapfake.Send("* CAPABILITY IMAP4rev1 QUOTA\r\nT2 OK done\r\n"),
		imapfake.Expect("T3 LOGOUT\r\n"),
		imapfake.Send("* BYE bye\r\nT3 OK done\r\n"),
	}
	tests := []struct {
		name    string
		opts    IMAPOptions
		script  []imapfake.Step
		wantErr func(error) bool // nil: success
	}{
		{
			name: "xoauth2 with the token from PasswordFunc",
			opts: IMAPOptions{Auth: imapdst.AuthXOAuth2, Password: secret.New("stale"),
				PasswordFunc: func(context.Context) (secret.Value, error) { return secret.New(token), nil }},
			script: append([]imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer "+token+"\x01\x01") + "\r\n"),
				imapfake.Send("T1 OK [CAPABILITY IMAP4rev1 QUOTA] logged in\r\n"),
			}, loggedIn...),
		},
		{
			name: "master user with AUTHENTICATE PLAIN",
			opts: IMAPOptions{User: "admin", AuthzID: "alice", Password: secret.New(token)},
			script: append([]imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE PLAIN " + b64("alice\x00admin\x00"+token) + "\r\n"),
				imapfake.Send("T1 OK [CAPABILITY IMAP4rev1 QUOTA] logged in\r\n"),
			}, loggedIn...),
		},
		{
			name: "oauthbearer error challenge is a fatal TokenRejectedError",
			opts: IMAPOptions{Auth: imapdst.AuthOAuthBearer, Password: secret.New(token)},
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer "+token+"\x01\x01") + "\r\n"),
				imapfake.Send("+ " + b64(`{"status":"invalid_token"}`) + "\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool {
				var rej *imapdst.TokenRejectedError
				return errors.As(err, &rej) && rej.Status == "invalid_token" && pipeline.ClassOf(err) == pipeline.ClassFatal
			},
		},
		{
			name: "xoauth2 the server does not offer",
			opts: IMAPOptions{Auth: imapdst.AuthXOAuth2, Password: secret.New(token)},
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool {
				return strings.Contains(err.Error(), "server does not offer AUTH=XOAUTH2") && pipeline.ClassOf(err) == pipeline.ClassFatal
			},
		},
		{
			name: "PasswordFunc error fails before anything is sent",
			opts: IMAPOptions{Auth: imapdst.AuthXOAuth2,
				PasswordFunc: func(context.Context) (secret.Value, error) { return secret.Value{}, errors.New("token command failed") }},
			script:  nil, // not even connecting: a connection would be refused
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "token command failed") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var srv *imapfake.Server
			addr := closedAddr(t)
			if tc.script != nil {
				srv = imapfake.Start(t, tc.script...)
				addr = srv.Addr()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opts := tc.opts
			opts.Addr, opts.TLS, opts.AllowPlaintext = addr, imapdst.TLSNone, true
			if opts.User == "" {
				opts.User = "alice"
			}
			s, err := DialIMAP(ctx, opts)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("DialIMAP: %v", err)
				}
				if !s.HasCapability("quota") {
					t.Error("capabilities after login not read")
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			} else if err == nil || !tc.wantErr(err) {
				t.Fatalf("DialIMAP: %v (class %v), not the error wanted", err, pipeline.ClassOf(err))
			} else if strings.Contains(err.Error(), token) {
				t.Errorf("DialIMAP: %v shows the token", err)
			}
			if srv == nil {
				return
			}
			if err := srv.Wait(); err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestStatusHugeLiteral: a LIST reply announcing a mailbox name of 4 GB
// fails Status at once with ErrLiteralTooLarge (internal/imapconn) instead
// of go-imap buffering it.
func TestStatusHugeLiteral(t *testing.T) {
	srv := imapfake.Start(t,
		imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
		imapfake.Expect("T1 LOGIN \"alice\" \"pw\"\r\n"),
		imapfake.Send("T1 OK [CAPABILITY IMAP4rev1] logged in\r\n"),
		imapfake.Expect("T2 CAPABILITY\r\n"),
		imapfake.Send("* CAPABILITY IMAP4rev1\r\nT2 OK done\r\n"),
		imapfake.Expect("T3 LIST \"\" INBOX\r\n"),
		imapfake.Send("* LIST () \"/\" {4000000000}\r\n"),
		imapfake.Drain())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := DialIMAP(ctx, IMAPOptions{Addr: srv.Addr(), TLS: imapdst.TLSNone, AllowPlaintext: true, User: "alice", Password: secret.New("pw")})
	if err != nil {
		t.Fatalf("DialIMAP: %v", err)
	}
	defer s.c.Close()
	_, err = s.Status(ctx, "INBOX")
	if !errors.Is(err, imapconn.ErrLiteralTooLarge) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Status = %v (class %v), want a fatal ErrLiteralTooLarge", err, pipeline.ClassOf(err))
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("script: %v", err)
	}
}

// TestIMAPLiteralCut: the destination hangs up inside a message's literal.
// Fetch and List fail saying the body or header ended early, and the FETCH
// is abandoned unread: go-imap beta.8 resumes its reader goroutine on the
// literal's read error, and draining the reply would read the same buffer
// at once (go test -race reports it). Close then has nothing to do.
func TestIMAPLiteralCut(t *testing.T) {
	login := []imapfake.Step{
		imapfake.Send("* OK [CAPABILITY IMAP4rev1] fake ready\r\n"),
		imapfake.Expect("T1 LOGIN \"alice\" \"pw\"\r\n"),
		imapfake.Send("T1 OK [CAPABILITY IMAP4rev1] logged in\r\n"),
		imapfake.Expect("T2 CAPABILITY\r\n"),
		imapfake.Send("* CAPABILITY IMAP4rev1\r\nT2 OK done\r\n"),
	}
	examine := func(tag int) []imapfake.Step {
		return []imapfake.Step{
			imapfake.Expect(fmt.Sprintf("T%d EXAMINE INBOX\r\n", tag)),
			imapfake.Send(fmt.Sprintf("* 1 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\nT%d OK [READ-ONLY] examined\r\n", tag)),
		}
	}
	tests := []struct {
		name   string
		script []imapfake.Step
		run    func(s *IMAP) error
	}{
		{
			name: "Fetch",
			script: append(examine(3),
				imapfake.Expect("T4 SEARCH UID 7\r\n"),
				imapfake.Send("* SEARCH 1\r\nT4 OK searched\r\n"),
				imapfake.Expect("T5 FETCH 1 (UID BODY.PEEK[])\r\n"),
				imapfake.Send("* 1 FETCH (UID 7 BODY[] {50}\r\nSubject: cut\r\n"),
				imapfake.Close(),
			),
			run: func(s *IMAP) error {
				_, err := s.Fetch(context.Background(), "INBOX", 7, io.Discard)
				return err
			},
		},
		{
			name: "List",
			script: append([]imapfake.Step{
				imapfake.Expect("T3 LIST \"\" INBOX\r\n"),
				imapfake.Send("* LIST () \"/\" INBOX\r\nT3 OK listed\r\n"),
			}, append(examine(4),
				imapfake.ExpectLinePrefix("T5 FETCH 1 ("),
				imapfake.Send("* 1 FETCH (UID 7 BODY[HEADER.FIELDS (Message-ID)] {50}\r\nMessage-ID: <a@"),
				imapfake.Close())...),
			run: func(s *IMAP) error {
				_, err := s.List(context.Background(), "INBOX")
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := imapfake.Start(t, append(login, tt.script...)...)
			s, err := DialIMAP(context.Background(), IMAPOptions{Addr: srv.Addr(), TLS: imapdst.TLSNone,
				User: "alice", Password: secret.New("pw"), AllowPlaintext: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.run(s); err == nil || !strings.Contains(err.Error(), "ended after") {
				t.Fatalf("%s with the literal cut: %v; want an error saying it ended early", tt.name, err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close after the cut: %v", err)
			}
		})
	}
}

// TestIMAPOptionalRefused: `plan` and `verify` ask the destination for
// STATUS … (APPENDLIMIT) and GETQUOTAROOT. A server that advertises both
// and refuses them (Cyrus 3.6 the STATUS item) still answers: the STATUS
// again without the item, no quota, no error; a refused STATUS falls
// back to EXAMINE (GNU Mailutils, an INBOX that never received mail).
func TestIMAPOptionalRefused(t *testing.T) {
	srv := imapfake.Start(t,
		imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
		imapfake.Expect("T1 LOGIN \"alice\" \"pw\"\r\n"),
		imapfake.Send("T1 OK [CAPABILITY IMAP4rev1 QUOTA APPENDLIMIT=1000] logged in\r\n"),
		imapfake.Expect("T2 CAPABILITY\r\n"),
		imapfake.Send("* CAPABILITY IMAP4rev1 QUOTA APPENDLIMIT=1000\r\nT2 OK done\r\n"),
		imapfake.Expect("T3 LIST \"\" INBOX\r\n"),
		imapfake.Send("* LIST () \"/\" INBOX\r\nT3 OK done\r\n"),
		imapfake.ExpectLineWords("T4 STATUS INBOX (", "MESSAGES", "UIDVALIDITY", "APPENDLIMIT"),
		imapfake.Send("T4 BAD Invalid Status attributes appendlimit\r\n"),
		imapfake.ExpectLineWords("T5 STATUS INBOX (", "MESSAGES", "UIDVALIDITY"),
		imapfake.Send("T5 NO STATUS Error opening mailbox\r\n"),
		imapfake.Expect("T6 EXAMINE INBOX\r\n"),
		imapfake.Send("* 2 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\nT6 OK [READ-ONLY] done\r\n"),
		imapfake.Expect("T7 GETQUOTAROOT INBOX\r\n"),
		imapfake.Send("T7 BAD Invalid command\r\n"),
		imapfake.Expect("T8 LOGOUT\r\n"),
		imapfake.Send("* BYE bye\r\nT8 OK done\r\n"),
	)
	q := imapconn.NewQuirks(nil, nil)
	s, err := DialIMAP(t.Context(), IMAPOptions{Addr: srv.Addr(), TLS: imapdst.TLSNone, AllowPlaintext: true,
		User: "alice", Password: secret.New("pw"), Quirks: q})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(t.Context(), "INBOX")
	if want := (MailboxStatus{Exists: true, Messages: 2, UIDValidity: 42, AppendLimit: 1000}); err != nil || st != want {
		t.Errorf("Status = %+v, %v; want %+v", st, err, want)
	}
	for range 2 { // the second call asks nothing
		if qs, err := s.Quota(t.Context(), "INBOX"); err != nil || qs != nil {
			t.Errorf("Quota = %v, %v; want none, no error", qs, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if !q.Refused(imapconn.FeatureQuota) || !q.Refused(imapconn.FeatureStatusAppendLimit) {
		t.Errorf("refusals not remembered: %q", q.List())
	}
}
