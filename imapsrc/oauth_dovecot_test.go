package imapsrc

import (
	"bytes"
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
	long := strings.Repeat("z", 5000)
	in := dovecot.StartIntrospector(t, map[string]string{good: "alice", long: "alice"})
	srv := dovecot.Start(t, dovecot.Options{
		Users:                  map[string]string{"alice": "s3cret"},
		OAuth2IntrospectionURL: in.URL(),
		ExtraConfig:            "auth_failure_delay = 0",
	})
	if err := srv.SeedMaildir("alice", "INBOX", []byte("From: a@example.org\r\nSubject: oauth\r\n\r\nhi\r\n"), "", time.Unix(1e9, 0)); err != nil {
		t.Fatalf("seeding: %v", err)
	}
	tests := []struct {
		name  string
		auth  AuthMethod
		token string
		ok    bool
	}{
		{"xoauth2 valid", AuthXOAuth2, good, true},
		{"oauthbearer valid", AuthOAuthBearer, good, true},
		{"xoauth2 5000-byte token", AuthXOAuth2, long, true},
		// Last: anvil delays the logins from an IP after rejections.
		{"xoauth2 rejected", AuthXOAuth2, bad, false},
		{"oauthbearer rejected", AuthOAuthBearer, bad, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trace bytes.Buffer
			s, err := Open(t.Context(), Options{
				Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
				User: "alice", Password: secret.New(tc.token), Auth: tc.auth, Trace: &trace,
			})
			if strings.Contains(trace.String(), tc.token) {
				t.Errorf("trace shows the token:\n%s", trace.String())
			}
			if !tc.ok {
				if err == nil {
					_ = s.Close(false)
					t.Fatal("Open succeeded with a rejected token")
				}
				var rej *TokenRejectedError
				if !errors.As(err, &rej) || pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), tc.token) {
					t.Errorf("err = %v (class %v), want a fatal TokenRejectedError without the token", err, pipeline.ClassOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v\n%s", err, srv.LogTail(20))
			}
			defer s.Close(false)
			folders, err := s.Folders(t.Context())
			if err != nil || len(folders) == 0 {
				t.Fatalf("Folders = %v, %v", folders, err)
			}
		})
	}
}
