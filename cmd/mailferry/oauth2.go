package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

// pop3Auth, imapSrcAuth and imapDstAuth map the configured auth setting to
// each protocol package's mechanism selector. "login" is the default of
// each (USER/PASS, LOGIN).
func pop3Auth(a config.Auth) pop3src.AuthMethod {
	switch a {
	case config.AuthPlain:
		return pop3src.AuthPlain
	case config.AuthXOAuth2:
		return pop3src.AuthXOAuth2
	case config.AuthOAuthBearer:
		return pop3src.AuthOAuthBearer
	}
	return pop3src.AuthDefault
}

func imapSrcAuth(a config.Auth) imapsrc.AuthMethod {
	switch a {
	case config.AuthPlain:
		return imapsrc.AuthPlain
	case config.AuthXOAuth2:
		return imapsrc.AuthXOAuth2
	case config.AuthOAuthBearer:
		return imapsrc.AuthOAuthBearer
	}
	return imapsrc.AuthDefault
}

func imapDstAuth(a config.Auth) imapdst.AuthMethod {
	switch a {
	case config.AuthPlain:
		return imapdst.AuthPlain
	case config.AuthXOAuth2:
		return imapdst.AuthXOAuth2
	case config.AuthOAuthBearer:
		return imapdst.AuthOAuthBearer
	}
	return imapdst.AuthDefault
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
