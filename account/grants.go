package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/secret"
)

// logins holds the OAuth2 token sources of a Set. Accounts whose logins
// are alike share one: a tenant's app-only token serves all its
// mailboxes, and is fetched once, not once per account.
type logins struct {
	mu      sync.Mutex
	sources map[string]*oauthtoken.Source
}

// TokenConfig is the oauthtoken configuration of user's login to server s,
// which has an oauth2 table. A client secret is read when a token is
// fetched (a failing secret command is a *SecretError, naming account,
// "" for none); its warnings go to log.
func TokenConfig(s *config.Server, user, account string, log *slog.Logger) oauthtoken.Config {
	o := s.OAuth2
	cfg := oauthtoken.Config{Grant: o.Grant, Provider: s.Provider, TokenURL: o.TokenURL, DeviceAuthURL: o.DeviceAuthURL,
		ClientID: o.ClientID, KeyFile: o.KeyFile, Subject: o.SubjectFor(user), Scopes: o.Scopes(),
		TokenFile: o.TokenFileFor(user), CertificateFile: o.CertificateFile, PrivateKeyFile: o.PrivateKeyFile, Logger: log}
	if cfg.Grant != oauthtoken.ServiceAccount {
		cfg.Subject = ""
	}
	if !o.ClientSecret.IsZero() {
		src := o.ClientSecret
		what := "OAuth2 client secret (" + src.Key("oauth2.client_secret") + ")"
		cfg.ClientSecret = func(ctx context.Context) (secret.Value, error) {
			return secretRead(ctx, src, account, what, log)
		}
	}
	return cfg
}

// source returns the token source of user's login to server s, shared
// with the alike logins of other accounts. It reads the key, certificate
// or token file now, so that a bad one is a configuration error before
// anything connects; tokens are fetched when sessions open.
func (l *logins) source(s *config.Server, user, account string, log *slog.Logger) (*oauthtoken.Source, error) {
	cfg := TokenConfig(s, user, account, log)
	o := s.OAuth2
	// Everything that makes the token, never the secret itself (the key
	// names where it comes from).
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%q\x00%s\x00%s\x00%s\x00%s", cfg.Grant, cfg.TokenURL, cfg.DeviceAuthURL,
		cfg.ClientID, o.ClientSecret, cfg.KeyFile, cfg.Subject, cfg.Scopes, cfg.TokenFile, cfg.CertificateFile, cfg.PrivateKeyFile, s.Provider)
	l.mu.Lock()
	defer l.mu.Unlock()
	if src := l.sources[key]; src != nil {
		return src, nil
	}
	src, err := oauthtoken.New(cfg)
	if err != nil {
		return nil, err
	}
	if l.sources == nil {
		l.sources = map[string]*oauthtoken.Source{}
	}
	l.sources[key] = src
	return src, nil
}

// grant is a side's OAuth2 login: where its tokens come from.
type grant struct {
	src      *oauthtoken.Source
	name     oauthtoken.Grant
	provider string // "gmail", "microsoft365" or ""
}

// TokenCheck is the outcome of getting one side's OAuth2 token.
type TokenCheck struct {
	Side  string           // "source" or "destination"
	Grant oauthtoken.Grant // how the token is obtained
	// Login names the grant and whom the token is for: "oauth2
	// service-account grant for alice@example.com".
	Login string
	// Err, when not nil, says why no token was obtained: an
	// *oauthtoken.Error names the grant and what an administrator should
	// check; a *SecretError a client secret that could not be read.
	Err error
}

// CheckTokens obtains a token for each side of a that logs in with an
// OAuth2 grant, connecting to no mail server, so that a missing consent,
// delegation or secret is found before anything is copied (`mailferry
// plan`). The tokens stay cached for the sessions that follow. A side
// without a grant has no entry.
func (a *Account) CheckTokens(ctx context.Context) []TokenCheck {
	var out []TokenCheck
	for _, sd := range []struct {
		name string
		d    *side
	}{{"source", a.src}, {"destination", a.dst}} {
		g := sd.d.grant
		if g == nil {
			continue
		}
		_, err := g.src.Token(ctx)
		out = append(out, TokenCheck{Side: sd.name, Grant: g.name, Login: g.src.String(), Err: err})
	}
	return out
}

// TokenRefusedError is a mail server's refusal of a login with a token
// that the side's OAuth2 grant obtained, when a fresh token was refused
// too: the token endpoint was content, so what is missing is a setting of
// the mail service (Exchange's service principal or mailbox permission,
// IMAP access). Hint says which, for a known provider. The class is Err's
// (fatal).
type TokenRefusedError struct {
	Provider string // "gmail", "microsoft365" or "" when unknown
	Grant    oauthtoken.Grant
	Protocol config.Protocol // the refusing server's
	Err      error
}

func (e *TokenRefusedError) Error() string {
	return fmt.Sprintf("%v (with a token the oauth2 %s grant obtained)", e.Err, e.Grant)
}

func (e *TokenRefusedError) Unwrap() error { return e.Err }

// Hint says what to check, in the provider's terms; "" when the provider
// is not known.
func (e *TokenRefusedError) Hint() string {
	p := provider.Lookup(e.Provider)
	if p == nil {
		return ""
	}
	appOnly := e.Grant == oauthtoken.ServiceAccount || e.Grant == oauthtoken.ClientCredentials
	proto := "imap"
	if e.Protocol == config.POP3 {
		proto = "pop3"
	}
	return p.RefusedToken(appOnly, proto)
}

// refused wraps err, from opening side d, in a *TokenRefusedError when d
// logs in with a grant and the server refused the login.
func (d *side) refused(err error) error {
	if err == nil || d.grant == nil || !loginRefused(err) {
		return err
	}
	return &TokenRefusedError{Provider: d.grant.provider, Grant: d.grant.name, Protocol: d.ep.Protocol, Err: err}
}

// loginRefused reports whether err is a server's refusal of a login: a
// rejected OAuth2 token (*bearer.RejectedError, whichever client), a NO
// or BAD to LOGIN or AUTHENTICATE on any IMAP connection
// (*imapconn.LoginError) or a -ERR to AUTH, USER or PASS. A refusal that
// says the server is busy (a BYE, a throttling text, IN-USE, LOGIN-DELAY:
// transient) says nothing about the token.
func loginRefused(err error) bool {
	var (
		rej      *bearer.RejectedError
		loginErr *imapconn.LoginError
		popErr   *pop3src.ResponseError
	)
	switch {
	case errors.As(err, &rej):
		return true
	case errors.As(err, &loginErr):
		return loginErr.ErrorClass() == pipeline.ClassFatal
	case errors.As(err, &popErr):
		verb, _, _ := strings.Cut(strings.ToUpper(popErr.Command), " ")
		return (verb == "AUTH" || verb == "USER" || verb == "PASS") && popErr.ErrorClass() == pipeline.ClassFatal
	}
	return false
}
