package pop3src

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestOAuthResponses(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"xoauth2", XOAuth2Response("alice@example.org", "tok"), "user=alice@example.org\x01auth=Bearer tok\x01\x01"},
		{"oauthbearer", OAuthBearerResponse("alice@example.org", "tok"), "n,a=alice@example.org,\x01auth=Bearer tok\x01\x01"},
		{"oauthbearer escapes gs2", OAuthBearerResponse("a,b=c", "tok"), "n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestTranscriptOAuth(t *testing.T) {
	const token = "ya29.SECRET-token"
	long := strings.Repeat("L", 300) // pushes the AUTH line past 255 octets
	tests := []struct {
		name   string
		mech   AuthMethod
		token  string
		script []step
		status string // "" when authentication succeeds
	}{
		{
			name: "xoauth2 initial response", mech: AuthXOAuth2, token: token,
			script: []step{{want: "AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer "+token+"\x01\x01") + "\r\n", reply: "+OK logged in\r\n"}},
		},
		{
			name: "oauthbearer initial response", mech: AuthOAuthBearer, token: token,
			script: []step{{want: "AUTH OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer "+token+"\x01\x01") + "\r\n", reply: "+OK logged in\r\n"}},
		},
		{
			name: "long token after empty challenge", mech: AuthXOAuth2, token: long,
			script: []step{
				{want: "AUTH XOAUTH2\r\n", reply: "+ \r\n"},
				{want: b64("user=alice\x01auth=Bearer "+long+"\x01\x01") + "\r\n", reply: "+OK logged in\r\n"},
			},
		},
		{
			name: "xoauth2 error challenge", mech: AuthXOAuth2, token: token, status: "401",
			script: []step{
				{want: "AUTH XOAUTH2 " + b64("user=alice\x01auth=Bearer "+token+"\x01\x01") + "\r\n", reply: "+ " + b64(`{"status":"401","schemes":"bearer"}`) + "\r\n"},
				{want: "\r\n", reply: "-ERR [AUTH] Authentication failed.\r\n"},
			},
		},
		{
			name: "oauthbearer error challenge", mech: AuthOAuthBearer, token: token, status: "invalid_token",
			script: []step{
				{want: "AUTH OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer "+token+"\x01\x01") + "\r\n", reply: "+ " + b64(`{"status":"invalid_token"}`) + "\r\n"},
				{want: "AQ==\r\n", reply: "-ERR [AUTH] Authentication failed.\r\n"},
			},
		},
		{
			name: "long token error challenge", mech: AuthOAuthBearer, token: long, status: "401",
			script: []step{
				{want: "AUTH OAUTHBEARER\r\n", reply: "+ \r\n"},
				{want: b64("n,a=alice,\x01auth=Bearer "+long+"\x01\x01") + "\r\n", reply: "+ " + b64(`{"status":"401"}`) + "\r\n"},
				{want: "AQ==\r\n", reply: "-ERR Authentication failed.\r\n"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var trace bytes.Buffer
			script := append([]step{{reply: "+OK ready\r\n"}}, tc.script...)
			c, wait := scripted(t, &ClientOptions{AllowPlaintext: true, Trace: &trace}, script...)
			var err error
			if tc.mech == AuthXOAuth2 {
				err = c.AuthXOAuth2(context.Background(), "alice", secret.New(tc.token))
			} else {
				err = c.AuthOAuthBearer(context.Background(), "alice", secret.New(tc.token))
			}
			wait()
			if tc.status == "" {
				if err != nil {
					t.Fatalf("auth: %v", err)
				}
			} else {
				var rej *TokenRejectedError
				var said *ResponseError
				if !errors.As(err, &rej) || rej.Status != tc.status || !errors.As(rej.Reply, &said) {
					t.Fatalf("err = %v, want a TokenRejectedError with status %q and the server's -ERR", err, tc.status)
				}
				if got := pipeline.ClassOf(err); got != pipeline.ClassFatal {
					t.Errorf("class = %v, want fatal", got)
				}
				if strings.Contains(err.Error(), tc.token) {
					t.Errorf("error %q contains the token", err)
				}
				if err := c.Noop(context.Background()); err == nil {
					t.Error("session still usable after a rejected token")
				}
			}
			for _, secretPart := range []string{tc.token, b64("user=alice\x01auth=Bearer " + tc.token + "\x01\x01")[:20]} {
				if strings.Contains(trace.String(), secretPart) {
					t.Errorf("trace contains a secret: %q", trace.String())
				}
			}
		})
	}
}

func TestOAuthRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, user, token string
	}{
		{"empty token", "alice", ""},
		{"empty user", "", "T0K3N"},
		{"token with CRLF", "alice", "T0K3N\r\nDELE 1"},
		{"user with ^A", "ali\x01ce", "T0K3N"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, wait := scripted(t, plain, step{reply: "+OK ready\r\n"})
			err := c.AuthXOAuth2(context.Background(), tc.user, secret.New(tc.token))
			wait()
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestOpenPasswordFuncError(t *testing.T) {
	boom := errors.New("token command exited with status 1")
	_, err := Open(context.Background(), Options{
		Addr: "127.0.0.1:1", TLS: TLSNone, AllowPlaintext: true, User: "alice", Auth: AuthXOAuth2,
		PasswordFunc: func(context.Context) (secret.Value, error) { return secret.Value{}, boom },
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Open: %v, want the PasswordFunc error (and no dial)", err)
	}
}

// FuzzOAuthChallengeStatus: any challenge yields a short printable status,
// without panicking.
func FuzzOAuthChallengeStatus(f *testing.F) {
	f.Add(b64(`{"status":"401","schemes":"bearer"}`))
	f.Add(b64(`{"status":"a\u0000b\r\n"}`))
	f.Add("not base64!")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got := oauthChallengeStatus(s)
		if len(got) > 64 || strings.ContainsAny(got, "\r\n\x00") {
			t.Errorf("oauthChallengeStatus(%q) = %q", s, got)
		}
	})
}
