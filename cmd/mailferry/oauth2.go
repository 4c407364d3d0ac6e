package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/secret"
)

// authMethod maps the configured auth setting to the login method the
// POP3 and IMAP clients share. "login" is the default of each (USER/PASS,
// LOGIN).
func authMethod(a config.Auth) bearer.Method {
	switch a {
	case config.AuthPlain:
		return bearer.MethodPlain
	case config.AuthXOAuth2:
		return bearer.MethodXOAuth2
	case config.AuthOAuthBearer:
		return bearer.MethodOAuthBearer
	}
	return bearer.MethodDefault
}

// tokenFunc resolves src afresh on every call: the PasswordFunc of an
// OAuth2 login, so that each new connection reads the current token from
// its command, file or variable (tokens expire during long runs). what
// names the secret in errors ("source password of account \"alice\"");
// warnings (a world-readable token file) go to log.
func tokenFunc(src config.SecretSource, what string, log *slog.Logger) func(context.Context) (secret.Value, error) {
	return func(ctx context.Context) (secret.Value, error) {
		v, warns, err := src.Resolve(ctx)
		for _, w := range warns {
			log.Warn(w.String())
		}
		if err != nil {
			return secret.Value{}, fmt.Errorf("reading the %s: %w", what, err)
		}
		return v, nil
	}
}

// oauthLogins holds the OAuth2 token sources of one run. Accounts whose
// logins are alike share one: a tenant's app-only token serves all its
// mailboxes, and is fetched once, not once per account.
type oauthLogins struct {
	mu      sync.Mutex
	sources map[string]*oauthtoken.Source
}

// login returns the PasswordFunc and the rejection hook of user's login
// to server s, which has an oauth2 table. It reads the key, certificate
// or token file now, so that a bad one is a configuration error (exit 2)
// before anything is copied; tokens are fetched when connections open.
func (l *oauthLogins) login(s *config.Server, user string, log *slog.Logger) (func(context.Context) (secret.Value, error), func(secret.Value), error) {
	o := s.OAuth2
	cfg := oauthtoken.Config{Grant: o.Grant, Provider: s.Provider, TokenURL: o.TokenURL, DeviceAuthURL: o.DeviceAuthURL,
		ClientID: o.ClientID, KeyFile: o.KeyFile, Subject: o.SubjectFor(user), Scopes: o.Scopes(),
		TokenFile: o.TokenFileFor(user), CertificateFile: o.CertificateFile, PrivateKeyFile: o.PrivateKeyFile, Logger: log}
	if cfg.Grant != oauthtoken.ServiceAccount {
		cfg.Subject = ""
	}
	if !o.ClientSecret.IsZero() {
		src := o.ClientSecret
		cfg.ClientSecret = func(ctx context.Context) (secret.Value, error) {
			v, warns, err := src.Resolve(ctx)
			for _, w := range warns {
				log.Warn(w.String())
			}
			return v, err
		}
	}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%q\x00%s\x00%s\x00%s\x00%s", cfg.Grant, cfg.TokenURL, cfg.DeviceAuthURL,
		cfg.ClientID, o.ClientSecret, cfg.KeyFile, cfg.Subject, cfg.Scopes, cfg.TokenFile, cfg.CertificateFile, cfg.PrivateKeyFile, s.Provider)
	l.mu.Lock()
	defer l.mu.Unlock()
	src := l.sources[key]
	if src == nil {
		var err error
		if src, err = oauthtoken.New(cfg); err != nil {
			return nil, nil, err
		}
		if l.sources == nil {
			l.sources = map[string]*oauthtoken.Source{}
		}
		l.sources[key] = src
	}
	return src.Token, src.Rejected, nil
}

// flagLogin is a side's OAuth2 login from `copy --source-oauth2` or
// `--dest-oauth2`.
type flagLogin struct {
	auth     config.Auth
	token    func(context.Context) (secret.Value, error)
	rejected func(secret.Value)
}

// oauth2FlagLogin builds the login of a copy flag's oauth2 keys for url's
// user; nil when the flag was not given.
func oauth2FlagLogin(l *oauthLogins, flag, url, user string, kv map[string]string, log *slog.Logger) (*flagLogin, error) {
	if len(kv) == 0 {
		return nil, nil
	}
	srv, err := config.OAuth2Flag(flag, url, kv)
	if err != nil {
		return nil, err
	}
	fl := &flagLogin{auth: srv.Auth}
	if fl.token, fl.rejected, err = l.login(srv, user, log); err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return fl, nil
}

// use makes s log in with fl's tokens (nil fl: as it was).
func (fl *flagLogin) use(s *serverSetup) {
	if fl != nil {
		s.auth, s.passwordFunc, s.tokenRejected = fl.auth, fl.token, fl.rejected
	}
}
