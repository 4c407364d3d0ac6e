package pop3src

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

func TestDovecotOAuth(t *testing.T) {
	const good, bad = "good-token-0123456789", "expired-token-9876543210"
	long := strings.Repeat("z", 400) // AUTH line over 255 octets: no initial response
	in := dovecot.StartIntrospector(t, map[string]string{good: "alice", long: "alice"})
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "s3cret"}, OAuth2IntrospectionURL: in.URL(),
		// No 2 s delay per rejection (anvil's per-IP penalty still applies).
		ExtraConfig: "auth_failure_delay = 0"})
	body := []byte("From: a@example.org\r\nSubject: oauth\r\n\r\nhello\r\n")
	if err := srv.SeedMaildir("alice", "INBOX", body, "", time.Unix(1e9, 0)); err != nil {
		t.Fatalf("seeding: %v", err)
	}
	tests := []struct {
		name    string
		auth    AuthMethod
		token   string
		ok      bool
		viaFunc bool // the token comes from PasswordFunc
	}{
		{"xoauth2 valid", AuthXOAuth2, good, true, false},
		{"oauthbearer valid", AuthOAuthBearer, good, true, false},
		{"oauthbearer long token", AuthOAuthBearer, long, true, false},
		{"xoauth2 token from PasswordFunc", AuthXOAuth2, good, true, true},
		// Last: anvil delays the logins from an IP after rejections.
		{"xoauth2 rejected", AuthXOAuth2, bad, false, false},
		{"oauthbearer rejected", AuthOAuthBearer, bad, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trace bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			opts := Options{
				Addr: srv.POP3SAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
				User: "alice", Password: secret.New(tc.token), Auth: tc.auth, Trace: &trace,
			}
			calls := 0
			if tc.viaFunc {
				opts.Password = secret.New("stale-token")
				opts.PasswordFunc = func(context.Context) (secret.Value, error) { calls++; return secret.New(tc.token), nil }
			}
			s, err := Open(ctx, opts)
			if tc.viaFunc && calls != 1 {
				t.Errorf("PasswordFunc called %d times, want 1", calls)
			}
			if strings.Contains(trace.String(), tc.token) {
				t.Errorf("trace contains the token:\n%s", trace.String())
			}
			if !tc.ok {
				if err == nil {
					_ = s.c.Close()
					t.Fatal("Open succeeded with a rejected token")
				}
				if pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), tc.token) {
					t.Errorf("err = %v (class %v), want fatal without the token", err, pipeline.ClassOf(err))
				}
				var rej *TokenRejectedError
				var re *ResponseError
				if !errors.As(err, &rej) && !errors.As(err, &re) {
					t.Errorf("err = %v, want a TokenRejectedError or the server's -ERR", err)
				}
				t.Logf("rejected: %v\n%s", err, trace.String())
				return
			}
			if err != nil {
				t.Fatalf("Open: %v\n%s\n%s", err, trace.String(), srv.LogTail(20))
			}
			defer s.c.Close()
			n, _, err := s.c.Stat(ctx)
			if err != nil || n != 1 {
				t.Fatalf("STAT = %d, %v; want 1 message", n, err)
			}
		})
	}
}
