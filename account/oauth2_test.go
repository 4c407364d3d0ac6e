package account

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

func TestAuthMapping(t *testing.T) {
	tests := []struct {
		in   config.Auth
		want bearer.Method
	}{
		{config.AuthDefault, bearer.MethodDefault},
		{config.AuthLogin, bearer.MethodDefault},
		{config.AuthPlain, bearer.MethodPlain},
		{config.AuthXOAuth2, bearer.MethodXOAuth2},
		{config.AuthOAuthBearer, bearer.MethodOAuthBearer},
	}
	for _, tc := range tests {
		t.Run(cmp.Or(string(tc.in), "default"), func(t *testing.T) {
			if got := authMethod(tc.in); got != tc.want {
				t.Errorf("authMethod(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestOAuth2TokenReread logs in to Dovecot's oauth2 passdb over POP3 and
// both IMAP connections with a token read from a file through an account's side,
// rotates the token (the old one stops working), and opens again: every
// new session reads the new token. A token fixed at start fails fatally.
func TestOAuth2TokenReread(t *testing.T) {
	in := dovecot.StartIntrospector(t, map[string]string{"token-one-0123456789": "alice"})
	srv := dovecot.Start(t, dovecot.Options{
		Users:                  map[string]string{"alice": "unused"},
		OAuth2IntrospectionURL: in.URL(),
		ExtraConfig:            "auth_failure_delay = 0",
	})
	body := "From: a@example.org\r\nSubject: token\r\n\r\nhi\r\n"
	if err := srv.SeedMaildir("alice", "INBOX", []byte(body), "", time.Unix(1e9, 0)); err != nil {
		t.Fatalf("seeding: %v", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeToken := func(tok string) {
		t.Helper()
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The source side of an account whose token comes from a file.
	side := func(file string) *side {
		t.Helper()
		ep, err := config.ParseURL("pop3s://alice@" + srv.POP3SAddr() + "?auth=xoauth2")
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewSet(Options{}).side(sideSpec{account: "alice", section: "source", ep: ep, srv: &config.Server{Auth: ep.Auth},
			login: Login{Secret: config.SecretSource{File: file}, What: "source password (source_password_file)"}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	fn := side(tokenFile).password
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(pw func(context.Context) (secret.Value, error)) (popErr, imapErr, dstErr error) {
		t.Helper()
		s, popErr := pop3src.Open(ctx, pop3src.Options{Addr: srv.POP3SAddr(), TLS: pop3src.TLSImplicit, TLSConfig: srv.TLSConfig(),
			User: "alice", Auth: pop3src.AuthOAuthBearer, PasswordFunc: pw})
		if popErr == nil {
			_ = s.Close(false)
		}
		is, imapErr := imapsrc.Open(ctx, imapsrc.Options{Addr: srv.IMAPSAddr(), TLS: imapsrc.TLSImplicit, TLSConfig: srv.TLSConfig(),
			User: "alice", Auth: imapsrc.AuthXOAuth2, PasswordFunc: pw})
		if imapErr == nil {
			_ = is.Close(false)
		}
		d, dstErr := imapdst.Dial(ctx, imapdst.Options{Addr: srv.IMAPSAddr(), TLS: imapdst.TLSImplicit, TLSConfig: srv.TLSConfig(),
			User: "alice", Auth: imapdst.AuthOAuthBearer, PasswordFunc: pw})
		if dstErr == nil {
			_ = d.Close()
		}
		return popErr, imapErr, dstErr
	}

	writeToken("token-one-0123456789")
	if p, i, d := open(fn); p != nil || i != nil || d != nil {
		t.Fatalf("first token: pop3 %v, imap source %v, imap destination %v", p, i, d)
	}
	in.Set(map[string]string{"token-two-9876543210": "alice"}) // refreshed: the first token is no longer active
	writeToken("token-two-9876543210")
	if p, i, d := open(fn); p != nil || i != nil || d != nil {
		t.Fatalf("rotated token: pop3 %v, imap source %v, imap destination %v", p, i, d)
	}

	// A token resolved once, as for passwords, is now stale: the login fails
	// fatally and the error does not show it.
	stale := secret.New("token-one-0123456789")
	_, err := pop3src.Open(ctx, pop3src.Options{Addr: srv.POP3SAddr(), TLS: pop3src.TLSImplicit, TLSConfig: srv.TLSConfig(),
		User: "alice", Auth: pop3src.AuthXOAuth2, Password: stale})
	var rej *pop3src.TokenRejectedError
	if !errors.As(err, &rej) || pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), stale.Reveal()) {
		t.Errorf("stale token: %v (class %v), want a fatal TokenRejectedError without the token", err, pipeline.ClassOf(err))
	}

	// A token command that fails fails the open, naming the secret.
	bad := side(filepath.Join(t.TempDir(), "missing")).password
	if _, err := pop3src.Open(ctx, pop3src.Options{Addr: srv.POP3SAddr(), TLS: pop3src.TLSImplicit, TLSConfig: srv.TLSConfig(),
		User: "alice", Auth: pop3src.AuthXOAuth2, PasswordFunc: bad}); err == nil || !strings.Contains(err.Error(), `account "alice": reading the source password (source_password_file)`) {
		t.Errorf("missing token file: %v, want an error naming the secret", err)
	}
}
