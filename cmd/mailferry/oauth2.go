package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/bearer"
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
