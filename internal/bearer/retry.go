package bearer

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/secret"
)

// WithFreshToken is how every client logs in with a token that may have
// gone stale: it calls login with get's token and, when the server rejects
// that token (a *RejectedError in login's error) and rejected is not nil,
// calls rejected with it, so that a token cache drops it, then login once
// more with get's next token. A server that ends sessions when their token
// expires, or a token revoked early, then costs one retry, not the
// account; a second rejection is returned as it is.
//
// An error of get fails the login, wrapped to name whose password or token
// it was getting (of: "alice for mail.example.com:993"); it should say
// what it ran, never a secret.
//
// The IMAP connections of internal/imapconn, imapdst's appender and the
// POP3 source each dial through it, so that they behave the same.
func WithFreshToken[T any](ctx context.Context, of string, get func(context.Context) (secret.Value, error),
	rejected func(secret.Value), login func(secret.Value) (T, error)) (T, error) {
	var zero T
	tok, err := get(ctx)
	if err != nil {
		return zero, fmt.Errorf("getting the password or token of %s: %w", of, err)
	}
	c, err := login(tok)
	var rej *RejectedError
	if err == nil || rejected == nil || !errors.As(err, &rej) {
		return c, err
	}
	rejected(tok)
	if tok, err = get(ctx); err != nil {
		return zero, fmt.Errorf("getting a fresh token of %s after a rejected one: %w", of, err)
	}
	return login(tok)
}
