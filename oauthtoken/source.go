package oauthtoken

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"github.com/mailferry/mailferry/secret"
)

// Source gives one login's access tokens. It is safe for concurrent use:
// the connections of an account (and the accounts sharing a Config) share
// one token, fetched once.
type Source struct {
	cfg   Config
	saKey *ServiceAccountKey // ServiceAccount
	cert  *clientCert        // ClientCredentials with a certificate

	mu        sync.Mutex
	token     *oauth2.Token
	refreshAt time.Time // fetch a new token from then on; zero: no expiry known
	fetches   int
}

// Refresh margin: a token is replaced when a tenth of its lifetime (at most
// five minutes) is left, so a connection opened just before it expires
// does not meet a server that ends sessions when their token expires.
const maxRefreshMargin = 5 * time.Minute

// New checks cfg and reads the files it names (the service account key,
// the certificate; for Device and RefreshToken that the token file holds a
// refresh token). It does no network I/O. Its errors are configuration
// errors: nothing was asked of a server.
func New(cfg Config) (*Source, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg}
	for _, u := range []struct{ key, url string }{{"token_url", cfg.TokenURL}, {"device_auth_url", cfg.DeviceAuthURL}} {
		if u.url != "" {
			if err := CheckEndpoint(u.url); err != nil {
				return nil, fmt.Errorf("oauth2 %s: %w", u.key, err)
			}
		}
	}
	switch cfg.Grant {
	case ServiceAccount:
		data, err := readSmall(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("oauth2 key_file: %w", err)
		}
		if s.saKey, err = ParseServiceAccountKey(data); err != nil {
			return nil, fmt.Errorf("oauth2 key_file %s: %w", cfg.KeyFile, err)
		}
		if s.cfg.TokenURL == "" {
			s.cfg.TokenURL = s.saKey.TokenURI
		}
	case ClientCredentials:
		if cfg.CertificateFile != "" {
			var err error
			if s.cert, err = loadClientCert(cfg.CertificateFile, cfg.PrivateKeyFile); err != nil {
				return nil, fmt.Errorf("oauth2: %w", err)
			}
		}
	case RefreshToken:
		if _, err := ReadTokenFile(cfg.TokenFile); err != nil {
			return nil, err
		}
	case Device:
		if _, err := ReadTokenFile(cfg.TokenFile); err != nil {
			if errors.Is(err, ErrNoRefreshToken) {
				return nil, fmt.Errorf("%w: run 'mailferry login' for this account first", err)
			}
			return nil, err
		}
	}
	return s, nil
}

// String names the login for messages: the grant and whom it is for.
func (s *Source) String() string {
	return fmt.Sprintf("oauth2 %s grant for %s", s.cfg.Grant, s.cfg.who())
}

// Token returns a valid access token: the cached one, or a new one when it
// is missing, was rejected, or is about to expire. Errors are *Error for
// what the token endpoint said (or that it could not be reached), plain
// errors for local problems (a client secret command that failed, an
// unreadable token file).
func (s *Source) Token(ctx context.Context) (secret.Value, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	if s.token != nil && (s.refreshAt.IsZero() || now.Before(s.refreshAt)) {
		return secret.New(s.token.AccessToken), nil
	}
	tok, err := s.fetch(ctx)
	if err != nil {
		return secret.Value{}, err
	}
	if tok.AccessToken == "" {
		return secret.Value{}, &Error{Grant: s.cfg.Grant, For: s.cfg.who(), Endpoint: redactURL(s.cfg.TokenURL),
			Status: 200, Description: "the answer holds no access_token"}
	}
	s.fetches++
	s.token = tok
	s.refreshAt = time.Time{}
	if !tok.Expiry.IsZero() {
		// x/oauth2 sets Expiry from time.Now and expires_in; measure the
		// lifetime on that clock and place it on ours.
		life := time.Until(tok.Expiry)
		s.refreshAt = now.Add(life - min(life/10, maxRefreshMargin))
	}
	s.cfg.logger().Debug("obtained an OAuth2 access token", "grant", string(s.cfg.Grant), "for", s.cfg.who(),
		"expires", tok.Expiry.Format(time.RFC3339))
	return secret.New(tok.AccessToken), nil
}

// Rejected tells s that a server refused tok: if it is the cached token, it
// is dropped, and the next Token call fetches a new one. A token that was
// already replaced (another connection saw the rejection first) is ignored.
func (s *Source) Rejected(tok secret.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != nil && s.token.AccessToken == tok.Reveal() {
		s.token = nil
		s.cfg.logger().Info("the server rejected the OAuth2 access token; getting a new one",
			"grant", string(s.cfg.Grant), "for", s.cfg.who())
	}
}

// Fetches returns how many tokens s has obtained (for tests and stats).
func (s *Source) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// fetch asks the token endpoint for a new token.
func (s *Source) fetch(ctx context.Context) (*oauth2.Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.cfg.httpClient())
	c := &s.cfg
	switch c.Grant {
	case ServiceAccount:
		jc := &jwt.Config{Email: s.saKey.ClientEmail, PrivateKey: s.saKey.pem, PrivateKeyID: s.saKey.PrivateKeyID,
			Subject: c.Subject, Scopes: c.Scopes, TokenURL: c.TokenURL}
		tok, err := jc.TokenSource(ctx).Token()
		if err != nil {
			return nil, s.newError(c.TokenURL, err)
		}
		return tok, nil
	case ClientCredentials:
		cc := &clientcredentials.Config{ClientID: c.ClientID, TokenURL: c.TokenURL, Scopes: c.Scopes,
			AuthStyle: oauth2.AuthStyleInParams}
		var masks []string
		if s.cert != nil {
			a, err := s.cert.assertion(c.ClientID, c.TokenURL, c.now())
			if err != nil {
				return nil, err
			}
			cc.EndpointParams = url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {a}}
			masks = append(masks, a)
		} else {
			sec, err := c.ClientSecret(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s: reading the client secret: %w", s, err)
			}
			cc.ClientSecret = sec.Reveal()
			masks = append(masks, sec.Reveal())
		}
		tok, err := cc.Token(ctx)
		if err != nil {
			return nil, s.newError(c.TokenURL, err, masks...)
		}
		return tok, nil
	case Device, RefreshToken:
		return s.refresh(ctx)
	}
	return nil, fmt.Errorf("unknown oauth2 grant %q", c.Grant)
}

// refresh runs the refresh token grant (RFC 6749 §6) with the token file's
// refresh token, and writes a rotated one back. It asks for the scopes
// again, as Microsoft's endpoint wants; clientcredentials' grant_type
// override lets x/oauth2 send them (its own refresher sends none).
func (s *Source) refresh(ctx context.Context) (*oauth2.Token, error) {
	c := &s.cfg
	rt, err := ReadTokenFile(c.TokenFile)
	if err != nil {
		return nil, err
	}
	cc := &clientcredentials.Config{ClientID: c.ClientID, TokenURL: c.TokenURL, Scopes: c.Scopes,
		AuthStyle:      oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.Reveal()}}}
	masks := []string{rt.Reveal()}
	if c.ClientSecret != nil {
		sec, err := c.ClientSecret(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: reading the client secret: %w", s, err)
		}
		cc.ClientSecret = sec.Reveal()
		masks = append(masks, sec.Reveal())
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, s.newError(c.TokenURL, err, masks...)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != rt.Reveal() {
		// RFC 6749 §6: the server may issue a new refresh token and revoke
		// the old one; keep the new one or the next run cannot log in.
		if err := WriteTokenFile(c.TokenFile, secret.New(tok.RefreshToken)); err != nil {
			return nil, fmt.Errorf("%s: storing the new refresh token: %w", s, err)
		}
	}
	return tok, nil
}
