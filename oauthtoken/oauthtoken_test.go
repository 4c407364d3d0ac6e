package oauthtoken

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/oauthserver"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

const gmailScope = "https://mail.google.com/"

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// introspect asks the server whether tok is active, as Dovecot does.
func active(t *testing.T, srv *oauthserver.Server, tok secret.Value) bool {
	t.Helper()
	resp, err := httpPostForm(srv.IntrospectionURL(), "token="+tok.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(resp, `"active":true`)
}

func TestServiceAccount(t *testing.T) {
	srv := oauthserver.Start(t, oauthserver.Options{})
	key, clientID := srv.AddServiceAccount("ferry@project.iam.gserviceaccount.com")
	srv.AddUser("alice@example.com")
	srv.Delegate(clientID, gmailScope)
	keyFile := writeFile(t, "key.json", key, 0o600)
	ctx := context.Background()
	s, err := New(Config{Grant: ServiceAccount, KeyFile: keyFile, Subject: "alice@example.com", Scopes: []string{gmailScope}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(ctx)
	if err != nil || !active(t, srv, tok) {
		t.Fatalf("Token = %v (%v), want an active token", tok, err)
	}
	if again, _ := s.Token(ctx); again != tok || s.Fetches() != 1 {
		t.Errorf("second Token: fetches %d, same token %v; want the cached one", s.Fetches(), again == tok)
	}
	s.Rejected(secret.New("some-other-token"))
	if s.Token(ctx); s.Fetches() != 1 {
		t.Errorf("Rejected(another token) dropped the cached one")
	}
	s.Rejected(tok)
	if fresh, err := s.Token(ctx); err != nil || fresh == tok || s.Fetches() != 2 {
		t.Errorf("after Rejected: %v, fetches %d; want a new token", err, s.Fetches())
	}

	tests := []struct {
		name, subject    string
		setup            func()
		code, hint, desc string
	}{
		{"unknown user", "bob@example.com", nil, "invalid_grant", "not an active user of the Workspace domain", "Invalid email or User ID"},
		{"delegation missing the scope", "alice@example.com", func() { srv.Delegate(clientID, "https://www.googleapis.com/auth/gmail.readonly") },
			"unauthorized_client", "Manage Domain Wide Delegation, the service account's client ID " + clientID + " must be listed with the scope " + gmailScope, "Client is unauthorized"},
		{"key deleted", "alice@example.com", func() { srv.DeleteServiceAccountKey("ferry@project.iam.gserviceaccount.com") },
			"invalid_grant", "create a new JSON key", "Invalid JWT Signature."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			s, err := New(Config{Grant: ServiceAccount, KeyFile: keyFile, Subject: tc.subject, Scopes: []string{gmailScope}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Token(ctx)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Hint, tc.hint) || !strings.Contains(e.Description, tc.desc) {
				t.Fatalf("Token error = %v; want code %s, description %q, hint %q", err, tc.code, tc.desc, tc.hint)
			}
			if pipeline.ClassOf(err) != pipeline.ClassFatal || !strings.Contains(err.Error(), "oauth2 service-account grant for "+tc.subject) {
				t.Errorf("error %q: class %v; want fatal, naming the grant and the subject", err, pipeline.ClassOf(err))
			}
		})
	}
}

func TestUnreachableEndpointIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := New(Config{Grant: ClientCredentials, ClientID: "app", TokenURL: "http://" + addr + "/token",
		ClientSecret: func(context.Context) (secret.Value, error) { return secret.New("s3cret-value"), nil },
		Scopes:       []string{"https://outlook.office365.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Token(context.Background())
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() || pipeline.ClassOf(err) != pipeline.ClassTransient ||
		!strings.Contains(err.Error(), "could not be reached") || !strings.Contains(e.Hint, "reachable") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Token = %v; want a transient *Error saying the endpoint could not be reached", err)
	}
}

// selfSigned returns a certificate and key (PEM) for client assertions.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailferry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func TestClientCredentials(t *testing.T) {
	const scope = "https://outlook.office365.com/.default"
	srv := oauthserver.Start(t, oauthserver.Options{})
	certPEM, keyPEM := selfSigned(t)
	otherCert, otherKey := selfSigned(t)
	srv.AddClient(oauthserver.Client{ID: "app-secret", Secret: "right-secret-value", AppUser: "app@example.com"})
	srv.AddClient(oauthserver.Client{ID: "app-cert", CertPEM: certPEM, AppUser: "app@example.com"})
	srv.AddClient(oauthserver.Client{ID: "app-off", Secret: "right-secret-value", Disabled: true})
	secretOf := func(v string) func(context.Context) (secret.Value, error) {
		return func(context.Context) (secret.Value, error) { return secret.New(v), nil }
	}
	tests := []struct {
		name       string
		cfg        Config
		code, hint string
	}{
		{"secret", Config{ClientID: "app-secret", ClientSecret: secretOf("right-secret-value")}, "", ""},
		{"certificate", Config{ClientID: "app-cert", CertificateFile: writeFile(t, "c.pem", certPEM, 0o600), PrivateKeyFile: writeFile(t, "k.pem", keyPEM, 0o600)}, "", ""},
		{"certificate and key in one file", Config{ClientID: "app-cert", CertificateFile: writeFile(t, "ck.pem", append(append([]byte{}, certPEM...), keyPEM...), 0o600)}, "", ""},
		{"wrong secret", Config{ClientID: "app-secret", ClientSecret: secretOf("wrong-secret-value")}, "invalid_client", "not its Secret ID"},
		{"certificate not uploaded", Config{ClientID: "app-cert", CertificateFile: writeFile(t, "o.pem", otherCert, 0o600), PrivateKeyFile: writeFile(t, "ok.pem", otherKey, 0o600)}, "invalid_client", "upload certificate_file"},
		{"unknown application", Config{ClientID: "nobody", ClientSecret: secretOf("x-secret")}, "unauthorized_client", "check client_id and tenant"},
		{"disabled application", Config{ClientID: "app-off", ClientSecret: secretOf("right-secret-value")}, "unauthorized_client", "disabled in this tenant"},
		{"wrong scope", Config{ClientID: "app-secret", ClientSecret: secretOf("right-secret-value"), Scopes: []string{"https://outlook.office365.com/IMAP.AccessAsApp"}}, "invalid_scope", "https://outlook.office365.com/.default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Grant, tc.cfg.TokenURL, tc.cfg.Provider = ClientCredentials, srv.TokenURL(), "microsoft365"
			if tc.cfg.Scopes == nil {
				tc.cfg.Scopes = []string{scope}
			}
			s, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := s.Token(context.Background())
			if tc.code == "" {
				if err != nil || !active(t, srv, tok) {
					t.Fatalf("Token = %v; want an active token", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Hint, tc.hint) || pipeline.ClassOf(err) != pipeline.ClassFatal {
				t.Fatalf("Token error = %v; want a fatal %s with hint %q", err, tc.code, tc.hint)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestRefreshTokenRotation(t *testing.T) {
	srv := oauthserver.Start(t, oauthserver.Options{RotateRefreshTokens: true})
	srv.AddClient(oauthserver.Client{ID: "desktop"})
	rt := srv.RefreshToken("desktop", "alice@example.com", "imap")
	file := writeFile(t, "alice.token", []byte(rt+"\n"), 0o600)
	s, err := New(Config{Grant: RefreshToken, ClientID: "desktop", TokenURL: srv.TokenURL(), TokenFile: file, Scopes: []string{"imap"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(context.Background())
	if err != nil || !active(t, srv, tok) {
		t.Fatalf("Token = %v", err)
	}
	stored, err := ReadTokenFile(file)
	if err != nil || stored.Reveal() == rt {
		t.Fatalf("token file after rotation: %v, changed %v; want the new refresh token", err, stored.Reveal() != rt)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	s.Rejected(tok)
	if _, err := s.Token(context.Background()); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	srv.Revoke("alice@example.com")
	s.Rejected(secret.New(""))
	s2, _ := New(Config{Grant: RefreshToken, ClientID: "desktop", TokenURL: srv.TokenURL(), TokenFile: file, Scopes: []string{"imap"}})
	_, err = s2.Token(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" || !strings.Contains(e.Hint, "mailferry login") {
		t.Fatalf("revoked: %v; want invalid_grant with a hint to log in again", err)
	}
}

// TestRefreshBeforeExpiry: a token is replaced once a tenth of its lifetime
// is left, not only after it expired.
func TestRefreshBeforeExpiry(t *testing.T) {
	srv := oauthserver.Start(t, oauthserver.Options{TokenLifetime: 100 * time.Second})
	srv.AddClient(oauthserver.Client{ID: "app", Secret: "sec-1234"})
	now := time.Now()
	s, err := New(Config{Grant: ClientCredentials, ClientID: "app", TokenURL: srv.TokenURL(), Scopes: []string{"x/.default"},
		ClientSecret: func(context.Context) (secret.Value, error) { return secret.New("sec-1234"), nil },
		Now:          func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		at      time.Duration
		fetches int
	}{{0, 1}, {80 * time.Second, 1}, {89 * time.Second, 1}, {91 * time.Second, 2}, {150 * time.Second, 2}, {185 * time.Second, 3}} {
		now = time.Now().Add(step.at)
		if _, err := s.Token(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s.Fetches() != step.fetches {
			t.Errorf("at +%v: %d fetches, want %d", step.at, s.Fetches(), step.fetches)
		}
	}
}

func TestDeviceLogin(t *testing.T) {
	t.Parallel()
	srv := oauthserver.Start(t, oauthserver.Options{})
	srv.AddClient(oauthserver.Client{ID: "public-app"})
	cfg := Config{Grant: Device, ClientID: "public-app", TokenURL: srv.TokenURL(), DeviceAuthURL: srv.DeviceAuthURL(),
		Scopes: []string{"imap", "offline_access"}, TokenFile: filepath.Join(t.TempDir(), "sub", "bob.token")}
	if _, err := New(cfg); !errors.Is(err, ErrNoRefreshToken) || !strings.Contains(err.Error(), "mailferry login") {
		t.Fatalf("New before login: %v; want ErrNoRefreshToken naming mailferry login", err)
	}
	srv.Device("bob@example.com", "authorization_pending", "slow_down")
	var shown DevicePrompt
	start := time.Now()
	if err := DeviceLogin(context.Background(), cfg, func(p DevicePrompt) { shown = p }); err != nil {
		t.Fatalf("DeviceLogin: %v", err)
	}
	// Polls at 1 s, 2 s (slow_down: 6 s from then on), 8 s.
	if took := time.Since(start); took < 7*time.Second || shown.Code == "" || !strings.HasPrefix(shown.URL, srv.URL()) {
		t.Errorf("DeviceLogin took %v, showed %+v; want the URL and code, and slow_down honoured", took, shown)
	}
	if got := srv.Requests("urn:ietf:params:oauth:grant-type:device_code"); got != 3 {
		t.Errorf("%d polls, want 3 (pending, slow_down, token)", got)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Token(context.Background()); err != nil || !active(t, srv, tok) {
		t.Fatalf("Token after login: %v", err)
	}
	for _, refusal := range []string{"access_denied", "expired_token"} {
		srv.Device("bob@example.com", "authorization_pending", refusal)
		err := DeviceLogin(context.Background(), cfg, func(DevicePrompt) {})
		var e *Error
		if !errors.As(err, &e) || e.Code != refusal {
			t.Errorf("DeviceLogin with %s: %v", refusal, err)
		}
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	srv := oauthserver.Start(t, oauthserver.Options{})
	key, _ := srv.AddServiceAccount("sa@p.iam.gserviceaccount.com")
	dir := t.TempDir()
	good := writeFile(t, "good.json", key, 0o600)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing key file", Config{Grant: ServiceAccount, KeyFile: filepath.Join(dir, "nope.json"), Subject: "a@b"}, "no such file"},
		{"malformed JSON", Config{Grant: ServiceAccount, KeyFile: writeFile(t, "bad.json", []byte(`{"type": "service_account",`), 0o600), Subject: "a@b"}, "invalid JSON"},
		{"a user's credentials", Config{Grant: ServiceAccount, KeyFile: writeFile(t, "user.json", []byte(`{"type":"authorized_user","client_id":"x","refresh_token":"y"}`), 0o600), Subject: "a@b"}, "domain-wide delegation needs a service account"},
		{"no subject", Config{Grant: ServiceAccount, KeyFile: good}, "needs subject"},
		{"http token URL", Config{Grant: ServiceAccount, KeyFile: good, Subject: "a@b", TokenURL: "http://oauth.example.com/token"}, "only allowed to a loopback address"},
		{"token file open to others", Config{Grant: RefreshToken, ClientID: "c", TokenURL: srv.TokenURL(), TokenFile: writeFile(t, "t", []byte("rt\n"), 0o644)}, "chmod 600"},
		{"empty token file", Config{Grant: RefreshToken, ClientID: "c", TokenURL: srv.TokenURL(), TokenFile: writeFile(t, "e", []byte("\n"), 0o600)}, "first line is empty"},
		{"secret and certificate", Config{Grant: ClientCredentials, ClientID: "c", TokenURL: srv.TokenURL(), CertificateFile: good,
			ClientSecret: func(context.Context) (secret.Value, error) { return secret.Value{}, nil }}, "exclude each other"},
		{"certificate without key", Config{Grant: ClientCredentials, ClientID: "c", TokenURL: srv.TokenURL(), CertificateFile: good}, "holds no PEM certificate"},
		{"unknown grant", Config{Grant: "password"}, "unknown oauth2 grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			} else if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
}

func TestCheckEndpoint(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://login.microsoftonline.com/contoso/oauth2/v2.0/token", true},
		{"http://127.0.0.1:8080/token", true},
		{"http://[::1]:80/token", true},
		{"http://localhost/token", true},
		{"http://oauth2.googleapis.com/token", false},
		{"ftp://x/token", false},
		{"/token", false},
	}
	for _, tc := range tests {
		if err := CheckEndpoint(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckEndpoint(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

func FuzzParseServiceAccountKey(f *testing.F) {
	f.Add([]byte(`{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}`))
	f.Add([]byte(`{"type":"authorized_user"}`))
	f.Add([]byte(`{"type":1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseServiceAccountKey(b)
		if err == nil && (k.ClientEmail == "" || len(k.pem) == 0 || CheckEndpoint(k.TokenURI) != nil) {
			t.Fatalf("ParseServiceAccountKey(%q) accepted an incomplete key: %+v", b, k)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Fatalf("error quotes the key: %v", err)
		}
	})
}
