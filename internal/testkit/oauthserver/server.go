// Package oauthserver is a local OAuth 2.0 authorization server for tests:
// the token endpoint of the JWT bearer grant (RFC 7523 §2.1, with Google's
// service account keys and domain-wide delegation), the client credentials
// grant (RFC 6749 §4.4, client secret or RFC 7523 §2.2 client assertion,
// answering as Microsoft's endpoint does), the device authorization grant
// (RFC 8628) and the refresh token grant (RFC 6749 §6, with optional
// rotation); revocation (RFC 7009, and Revoke for an administrator's
// withdrawal of a grant); and the token introspection endpoint (RFC 7662)
// with which a test Dovecot's oauth2 passdb checks the tokens it issued.
//
// Signatures, issuers, audiences, subjects, scopes and expiry times are
// checked for real; refusals carry the error codes and texts the providers
// send, so tests see what users will.
package oauthserver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a Server.
type Options struct {
	// TokenLifetime is how long an access token is active. Default 1 h.
	TokenLifetime time.Duration
	// AdvertisedLifetime, when set, is the expires_in the server sends
	// instead of TokenLifetime: a longer one makes a client believe a token
	// is good after the server stopped accepting it (as after a
	// revocation the client was not told of).
	AdvertisedLifetime time.Duration
	// RotateRefreshTokens issues a new refresh token on each refresh and
	// revokes the old one.
	RotateRefreshTokens bool
	// DeviceCodeLifetime is the expires_in of device codes. Default 10 min.
	DeviceCodeLifetime time.Duration
}

// Server is a running authorization server. Its methods are safe for
// concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu           sync.Mutex
	accounts     map[string]*serviceAccount // by client_email
	delegated    map[string]map[string]bool // client ID -> scopes allowed (domain-wide delegation)
	users        map[string]bool            // subjects that exist
	clients      map[string]*Client         // by client ID
	tokens       map[string]*grantToken     // access tokens
	refresh      map[string]*grantToken     // refresh tokens
	devices      map[string]*deviceCode     // by device_code
	revoked      map[string]bool            // subjects and client IDs whose grants were withdrawn
	mailDenied   map[string]bool            // subjects and client IDs whose tokens the mail server refuses
	jtis         map[string]bool            // client assertion IDs seen (replay)
	counts       map[string]int             // token requests by grant_type
	issued       int
	deviceScript []string
	deviceUser   string
}

// Client is an application registered for the client credentials, device
// or refresh token grants.
type Client struct {
	ID     string
	Secret string // "" when the client authenticates with a certificate or is public
	// CertPEM is the certificate whose key signs its client assertions.
	CertPEM []byte
	// Tenant names the directory in AADSTS texts.
	Tenant string
	// AppUser is the user name introspection gives for the client's own
	// (client credentials) tokens: a Dovecot with username_format = %d
	// accepts it for every user of its domain, as Exchange accepts an
	// app-only token for the mailboxes the app may open.
	AppUser string
	// Disabled makes the endpoint refuse the client, as Entra does for a
	// disabled application.
	Disabled bool
	cert     *rsa.PublicKey
}

type serviceAccount struct {
	email, clientID, keyID string
	pub                    *rsa.PublicKey
	keyDeleted             bool
}

// grantToken is an issued access or refresh token.
type grantToken struct {
	user, clientID, scope string
	grantOf               string // the subject or client whose revocation ends it
	expiry                time.Time
	revoked               bool
}

type deviceCode struct {
	clientID, scope, userCode string
	expiry                    time.Time
	script                    []string
	user                      string
	done                      bool
}

// Start serves a Server on 127.0.0.1 until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.DeviceCodeLifetime <= 0 {
		opts.DeviceCodeLifetime = 10 * time.Minute
	}
	s := &Server{opts: opts, accounts: map[string]*serviceAccount{}, delegated: map[string]map[string]bool{},
		users: map[string]bool{}, clients: map[string]*Client{}, tokens: map[string]*grantToken{},
		refresh: map[string]*grantToken{}, devices: map[string]*deviceCode{}, revoked: map[string]bool{},
		mailDenied: map[string]bool{}, jtis: map[string]bool{}, counts: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /device", s.deviceAuth)
	mux.HandleFunc("POST /revoke", s.revoke)
	mux.Handle("POST /introspect", IntrospectionHandler(s.introspect))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.srv.URL + "/token" }

// DeviceAuthURL is the device authorization endpoint (RFC 8628 §3.1).
func (s *Server) DeviceAuthURL() string { return s.srv.URL + "/device" }

// RevocationURL is the token revocation endpoint (RFC 7009).
func (s *Server) RevocationURL() string { return s.srv.URL + "/revoke" }

// IntrospectionURL is the introspection endpoint for
// dovecot.Options.OAuth2IntrospectionURL.
func (s *Server) IntrospectionURL() string { return s.srv.URL + "/introspect" }

// AddUser makes user a subject that exists (a Workspace user, a tenant's
// user).
func (s *Server) AddUser(users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range users {
		s.users[u] = true
	}
}

// AddServiceAccount creates a service account and returns its JSON key
// file, as the Google Cloud console downloads it, with token_uri this
// server's token endpoint, and its numeric client ID.
func (s *Server) AddServiceAccount(email string) (keyJSON []byte, clientID string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1e15))
	clientID = fmt.Sprintf("1%020d", n)
	var kid [20]byte
	rand.Read(kid[:])
	sa := &serviceAccount{email: email, clientID: clientID, keyID: hex.EncodeToString(kid[:]), pub: &key.PublicKey}
	s.mu.Lock()
	s.accounts[email] = sa
	s.mu.Unlock()
	keyJSON, _ = json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": "mailferry-test", "private_key_id": sa.keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": email, "client_id": clientID,
		"auth_uri": s.srv.URL + "/auth", "token_uri": s.TokenURL(),
	}, "", "  ")
	return keyJSON, clientID
}

// DeleteServiceAccountKey deletes a service account's key: assertions it
// signs are refused as Google refuses them ("Invalid JWT Signature.").
func (s *Server) DeleteServiceAccountKey(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sa := s.accounts[email]; sa != nil {
		sa.keyDeleted = true
	}
}

// Delegate authorizes a service account's client ID for scopes across the
// domain (Google Admin console: domain-wide delegation).
func (s *Server) Delegate(clientID string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for _, sc := range scopes {
		m[sc] = true
	}
	s.delegated[clientID] = m
}

// AddClient registers an application.
func (s *Server) AddClient(c Client) {
	if len(c.CertPEM) > 0 {
		blk, _ := pem.Decode(c.CertPEM)
		if blk == nil {
			panic("oauthserver: CertPEM holds no PEM block")
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			panic(err)
		}
		c.cert = cert.PublicKey.(*rsa.PublicKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = &c
}

// DisableClient makes the token endpoint refuse a client (AADSTS7000112).
func (s *Server) DisableClient(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[id]; c != nil {
		c.Disabled = true
	}
}

// Device makes the next device codes answer the polls of the token
// endpoint with script in order ("authorization_pending", "slow_down",
// "access_denied", "expired_token"), and then, if the script did not end
// with a refusal, with tokens for user, as if user had signed in.
func (s *Server) Device(user string, script ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deviceUser, s.deviceScript = user, script
}

// Revoke withdraws every grant of who (a subject or a client ID): its
// access and refresh tokens stop working at once (introspection says
// inactive), and new requests for it are refused as the provider refuses
// them (delegation removed, consent revoked, refresh token revoked).
func (s *Server) Revoke(who string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[who] = true
	for _, m := range []map[string]*grantToken{s.tokens, s.refresh} {
		for _, t := range m {
			if t.grantOf == who || t.user == who {
				t.revoked = true
			}
		}
	}
}

// DenyMail makes the mail server refuse the tokens of who (a subject or a
// client ID) while the endpoint goes on issuing them: introspection says
// inactive, as Exchange refuses an app-only token whose service principal
// is not registered or has no permission on the mailbox, or Gmail one for
// a user whose IMAP access is off.
func (s *Server) DenyMail(who string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mailDenied[who] = true
}

// Expire ends every access token now, as if their lifetime had passed (the
// refresh tokens stay good).
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.revoked = true
	}
}

// Issued is how many access tokens the server issued.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Requests is how many token requests came with grant_type (any outcome).
func (s *Server) Requests(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[grantType]
}

// RefreshToken issues a refresh token for user and client, as an earlier
// sign-in would have (for the refresh token grant's tests).
func (s *Server) RefreshToken(clientID, user, scope string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := newToken("rt")
	s.refresh[tok] = &grantToken{user: user, clientID: clientID, scope: scope, grantOf: user}
	return tok
}

func (s *Server) introspect(token string) (Introspection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[token]
	if t == nil || t.revoked || !time.Now().Before(t.expiry) || s.mailDenied[t.grantOf] || s.mailDenied[t.user] {
		return Introspection{}, false
	}
	return Introspection{Username: t.user, Scope: t.scope, ClientID: t.clientID, Expiry: t.expiry.Unix()}, true
}

// revoke is RFC 7009 §2.1: the token is invalid afterwards; unknown tokens
// are not an error.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	tok := r.Form.Get("token")
	s.mu.Lock()
	for _, m := range []map[string]*grantToken{s.tokens, s.refresh} {
		if t := m[tok]; t != nil {
			t.revoked = true
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// issue creates an access token (s.mu held) and writes the token response
// (RFC 6749 §5.1), with a refresh token when refresh is set.
func (s *Server) issue(w http.ResponseWriter, t grantToken, refresh string) {
	tok := newToken("at")
	t.expiry = time.Now().Add(s.opts.TokenLifetime)
	s.tokens[tok] = &t
	s.issued++
	life := s.opts.TokenLifetime
	if s.opts.AdvertisedLifetime > 0 {
		life = s.opts.AdvertisedLifetime
	}
	resp := map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int64((life + time.Second - 1) / time.Second)}
	if t.scope != "" {
		resp["scope"] = t.scope
	}
	if refresh != "" {
		resp["refresh_token"] = refresh
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// fail writes an RFC 6749 §5.2 error.
func fail(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func newToken(prefix string) string {
	var b [24]byte
	rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		fail(w, 400, "invalid_request", "the body does not parse")
		return
	}
	gt := r.PostForm.Get("grant_type")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[gt]++
	switch gt {
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		s.jwtBearer(w, r)
	case "client_credentials":
		s.clientCredentials(w, r)
	case "urn:ietf:params:oauth:grant-type:device_code":
		s.deviceToken(w, r)
	case "refresh_token":
		s.refreshToken(w, r)
	default:
		fail(w, 400, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt))
	}
}

// scopesIn reports whether every scope of want is in have (space-separated).
func scopesIn(want string, have map[string]bool) bool {
	for _, sc := range strings.Fields(want) {
		if !have[sc] {
			return false
		}
	}
	return want != ""
}

func writeJSON(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }
