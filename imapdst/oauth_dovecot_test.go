package imapdst

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestDovecotOAuth logs both connections of a Destination (the go-imap
// control connection and the appender) in to Dovecot's oauth2 passdb and
// appends a message; rejected tokens fail fatally without showing.
func TestDovecotOAuth(t *testing.T) {
	const good, bad = "good-token-0123456789", "expired-token-9876543210"
	long := strings.Repeat("z", 5000)
	in := dovecot.StartIntrospector(t, map[string]string{good: "bob", long: "bob"})
	srv := dovecot.Start(t, dovecot.Options{
		Users:                  map[string]string{"bob": "pw"},
		OAuth2IntrospectionURL: in.URL(),
		ExtraConfig:            "auth_failure_delay = 0",
	})
	tests := []struct {
		name     string
		auth     AuthMethod
		token    string
		ok       bool
		appender bool // a rejection through DialAppender alone, not Dial
	}{
		{"xoauth2 valid", AuthXOAuth2, good, true, false}, // through PasswordFunc
		{"oauthbearer valid", AuthOAuthBearer, good, true, false},
		{"oauthbearer 5000-byte token", AuthOAuthBearer, long, true, false},
		// Rejections last: after each one Dovecot's anvil delays the next
		// logins from the IP (2 s, 4 s, ...). Dial fails on the control
		// connection, which go-imap abandons at the error challenge.
		{"oauthbearer rejected on the control connection", AuthOAuthBearer, bad, false, false},
		{"xoauth2 rejected on the appender", AuthXOAuth2, bad, false, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var trace syncBuffer // both connections trace at once (Dial, Close)
			opts := Options{
				Addr: srv.IMAPSAddr(), TLS: TLSImplicit, TLSConfig: srv.TLSConfig(),
				User: "bob", Password: secret.New(tc.token), Auth: tc.auth, Trace: &trace,
			}
			if !tc.ok {
				var err error
				if tc.appender {
					// The appender's own AUTHENTICATE answers the error
					// challenge with the dummy response and reads the NO.
					var a *Appender
					if a, err = DialAppender(ctx, opts); err == nil {
						_ = a.Close()
					}
				} else {
					var d *Destination
					if d, err = Dial(ctx, opts); err == nil {
						_ = d.Close()
					}
				}
				var rej *TokenRejectedError
				if !errors.As(err, &rej) || pipeline.ClassOf(err) != pipeline.ClassFatal || strings.Contains(err.Error(), tc.token) {
					t.Errorf("err = %v (class %v), want a fatal TokenRejectedError without the token", err, pipeline.ClassOf(err))
				}
				if tc.appender && rej != nil && rej.Reply == nil {
					t.Errorf("err = %v, want the server's NO after the dummy response", err)
				}
				if strings.Contains(trace.String(), tc.token) {
					t.Errorf("trace shows the token:\n%s", trace.String())
				}
				return
			}
			calls := 0
			if tc.name == "xoauth2 valid" {
				// The token comes from PasswordFunc, once per connection.
				opts.Password = secret.New("stale-token")
				opts.PasswordFunc = func(context.Context) (secret.Value, error) { calls++; return secret.New(tc.token), nil }
				defer func() {
					if calls != 2 {
						t.Errorf("PasswordFunc called %d times, want 2 (appender and control connection)", calls)
					}
				}()
			}
			d, err := Dial(ctx, opts)
			if err != nil {
				t.Fatalf("Dial: %v\n%s", err, srv.LogTail(20))
			}
			body := "From: a@example.org\r\nSubject: oauth " + tc.name + "\r\n\r\nhi\r\n"
			res, err := d.Append(ctx, "INBOX", []pipeline.OutgoingMessage{{Body: strings.NewReader(body), Size: int64(len(body))}})
			if err != nil || len(res) != 1 || res[0].Err != nil {
				t.Fatalf("Append = %+v, %v", res, err)
			}
			msgs, err := d.ListSince(ctx, "INBOX", res[0].UIDValidity, 1)
			if err != nil || len(msgs) != i+1 {
				t.Errorf("ListSince = %d messages, %v; want %d", len(msgs), err, i+1)
			}
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if strings.Contains(trace.String(), tc.token) {
				t.Errorf("trace shows the token:\n%s", trace.String())
			}
		})
	}
}
