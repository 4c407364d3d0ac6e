package oauthserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Texts of Google's token endpoint for service accounts.
const (
	googleBadSignature   = "Invalid JWT Signature."
	googleNoAccount      = "Invalid grant: account not found"
	googleBadUser        = "Invalid email or User ID"
	googleTimeframe      = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	googleUnauthorized   = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."
	googleRevokedRefresh = "Token has been expired or revoked."
)

// jwtBearer is RFC 7523 §2.1 as Google serves it for service accounts:
// the assertion is signed (RS256) by the key of the service account named
// by iss, for aud = the token endpoint, at most an hour long; sub is a user
// of the domain, and the account's client ID holds a delegation for every
// scope asked for.
func (s *Server) jwtBearer(w http.ResponseWriter, r *http.Request) {
	var sa *serviceAccount
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		iss, _ := t.Claims.GetIssuer()
		if sa = s.accounts[iss]; sa == nil {
			return nil, errNoAccount
		}
		if kid, _ := t.Header["kid"].(string); kid != sa.keyID || sa.keyDeleted {
			return nil, errors.New("unknown key")
		}
		return sa.pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(s.TokenURL()), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(time.Minute))
	switch {
	case errors.Is(err, errNoAccount):
		fail(w, 400, "invalid_grant", googleNoAccount)
		return
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		fail(w, 400, "invalid_grant", googleTimeframe)
		return
	case err != nil:
		fail(w, 400, "invalid_grant", googleBadSignature)
		return
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if iat == nil || exp.Sub(iat.Time) > time.Hour {
		fail(w, 400, "invalid_grant", googleTimeframe)
		return
	}
	sub, _ := claims.GetSubject()
	scope, _ := claims["scope"].(string)
	switch {
	case sub == "" || !s.users[sub] || s.revoked[sub]:
		fail(w, 400, "invalid_grant", googleBadUser)
	case s.revoked[sa.clientID] || s.revoked[sa.email] || !scopesIn(scope, s.delegated[sa.clientID]):
		fail(w, 401, "unauthorized_client", googleUnauthorized)
	default:
		s.issue(w, grantToken{user: sub, clientID: sa.clientID, scope: scope, grantOf: sa.clientID}, "")
	}
}

var errNoAccount = errors.New("no such service account")

// clientCredentials is RFC 6749 §4.4 as Microsoft Entra serves it: the
// client authenticates with its secret or a client assertion (RFC 7523
// §2.2), and the scope is a resource's "/.default".
func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	scope := r.PostForm.Get("scope")
	if !strings.HasSuffix(scope, "/.default") || len(strings.Fields(scope)) != 1 {
		fail(w, 400, "invalid_scope", fmt.Sprintf("AADSTS1002012: The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return
	}
	s.issue(w, grantToken{user: c.AppUser, clientID: c.ID, scope: scope, grantOf: c.ID}, "")
}

// authenticateClient finds the client of a request (client_id in the body
// or HTTP Basic, RFC 6749 §2.3.1) and checks its secret or assertion; on
// failure it has written the refusal.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request) (*Client, bool) {
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c := s.clients[id]
	if c == nil {
		fail(w, 400, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory 'test'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", id))
		return nil, false
	}
	if c.Disabled || s.revoked[c.ID] {
		fail(w, 400, "unauthorized_client", fmt.Sprintf("AADSTS7000112: Application '%s'(mailferry) is disabled.", c.ID))
		return nil, false
	}
	if a := r.PostForm.Get("client_assertion"); a != "" {
		if r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || c.cert == nil {
			fail(w, 401, "invalid_client", "AADSTS700027: Client assertion failed signature validation.")
			return nil, false
		}
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(a, claims, func(*jwt.Token) (any, error) { return c.cert, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(s.TokenURL()), jwt.WithIssuer(c.ID),
			jwt.WithSubject(c.ID), jwt.WithExpirationRequired())
		jti, _ := claims["jti"].(string)
		if err != nil || jti == "" || s.jtis[jti] {
			fail(w, 401, "invalid_client", "AADSTS700027: Client assertion failed signature validation.")
			return nil, false
		}
		s.jtis[jti] = true
		return c, true
	}
	if c.Secret == "" || secret != c.Secret {
		if c.Secret == "" && secret == "" && c.cert == nil {
			return c, true // a public client
		}
		fail(w, 401, "invalid_client", fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", c.ID))
		return nil, false
	}
	return c, true
}

// deviceAuth is the device authorization endpoint (RFC 8628 §3.1-3.2).
func (s *Server) deviceAuth(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PostForm.Get("client_id")
	if s.clients[id] == nil {
		fail(w, 400, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory 'test'.", id))
		return
	}
	code := newToken("dc")
	d := &deviceCode{clientID: id, scope: r.PostForm.Get("scope"), userCode: strings.ToUpper(code[3:7] + "-" + code[7:11]),
		expiry: time.Now().Add(s.opts.DeviceCodeLifetime), script: append([]string(nil), s.deviceScript...), user: s.deviceUser}
	s.devices[code] = d
	w.Header().Set("Content-Type", "application/json")
	_ = writeJSON(w, map[string]any{"device_code": code, "user_code": d.userCode,
		"verification_uri": s.srv.URL + "/devicelogin", "expires_in": int64(s.opts.DeviceCodeLifetime / time.Second),
		"interval": 1, "message": "To sign in, open " + s.srv.URL + "/devicelogin and enter the code " + d.userCode + "."})
}

// deviceToken answers a poll (RFC 8628 §3.4-3.5) as the script says.
func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request) {
	d := s.devices[r.PostForm.Get("device_code")]
	switch {
	case d == nil || d.done || d.clientID != r.PostForm.Get("client_id"):
		fail(w, 400, "invalid_grant", "AADSTS70000: The provided value for the 'device_code' is not valid.")
		return
	case !time.Now().Before(d.expiry):
		fail(w, 400, "expired_token", "AADSTS70020: The provided authorization code or refresh token has expired due to it has passed its expiry.")
		return
	}
	if len(d.script) > 0 {
		answer := d.script[0]
		d.script = d.script[1:]
		desc := map[string]string{
			"authorization_pending": "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
			"slow_down":             "slow down: poll less often",
			"access_denied":         "AADSTS70000: The user denied the authorization request.",
			"expired_token":         "AADSTS70020: The device code has expired.",
		}[answer]
		if answer == "access_denied" || answer == "expired_token" {
			d.done = true
		}
		fail(w, 400, answer, desc)
		return
	}
	d.done = true
	rt := newToken("rt")
	s.refresh[rt] = &grantToken{user: d.user, clientID: d.clientID, scope: d.scope, grantOf: d.user}
	s.issue(w, grantToken{user: d.user, clientID: d.clientID, scope: d.scope, grantOf: d.user}, rt)
}

// refreshToken is RFC 6749 §6, rotating the refresh token when
// Options.RotateRefreshTokens is set (the old one stops working, §10.4).
func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticateClient(w, r)
	if !ok {
		return
	}
	old := r.PostForm.Get("refresh_token")
	t := s.refresh[old]
	if t == nil || t.revoked || t.clientID != c.ID || s.revoked[t.user] {
		fail(w, 400, "invalid_grant", googleRevokedRefresh)
		return
	}
	rt := ""
	if s.opts.RotateRefreshTokens {
		t.revoked = true
		rt = newToken("rt")
		s.refresh[rt] = &grantToken{user: t.user, clientID: t.clientID, scope: t.scope, grantOf: t.grantOf}
	}
	s.issue(w, grantToken{user: t.user, clientID: t.clientID, scope: t.scope, grantOf: t.grantOf}, rt)
}
