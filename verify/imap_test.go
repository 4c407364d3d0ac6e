package verify

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/imapdst"
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
		// noConnect: DialIMAP must fail before it connects.
		noConnect bool
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
			name: "PasswordFunc error fails before connecting",
			opts: IMAPOptions{Auth: imapdst.AuthXOAuth2,
				PasswordFunc: func(context.Context) (secret.Value, error) { return secret.Value{}, errors.New("token command failed") }},
			noConnect: true,
			wantErr:   func(err error) bool { return strings.Contains(err.Error(), "token command failed") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opts := tc.opts
			// Port 1: nothing listens; a connection attempt would fail
			// with another error.
			opts.Addr, opts.TLS, opts.AllowPlaintext = "127.0.0.1:1", imapdst.TLSNone, true
			var srv *imapfake.Server
			if !tc.noConnect {
				srv = imapfake.Start(t, tc.script...)
				opts.Addr = srv.Addr()
			}
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
			if tc.noConnect {
				return
			}
			if err := srv.Wait(); err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}
