package oauthtoken

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailferry/mailferry/secret"
)

// DevicePrompt is what the user must do to approve a device login.
type DevicePrompt struct {
	URL         string    // where to sign in (verification_uri)
	URLComplete string    // the URL with the code filled in, when the server gives one
	Code        string    // the user code to enter there
	Expires     time.Time // when the code stops working; zero: not said
}

// DeviceLogin runs the device authorization grant (RFC 8628) for cfg (Grant
// Device): it asks the device authorization endpoint for a code, calls show
// with what the user must do, polls the token endpoint as the server asks
// (authorization_pending: go on; slow_down: five seconds more between
// polls, §3.5) until the user approved or denied it or the code expired,
// and stores the refresh token in cfg.TokenFile. Errors are *Error values
// (access_denied, expired_token) or context errors.
func DeviceLogin(ctx context.Context, cfg Config, show func(DevicePrompt)) error {
	if cfg.Grant != Device {
		return fmt.Errorf("oauth2 grant %q: only the device grant signs in interactively", cfg.Grant)
	}
	if err := cfg.check(); err != nil {
		return err
	}
	for _, u := range []struct{ key, url string }{{"token_url", cfg.TokenURL}, {"device_auth_url", cfg.DeviceAuthURL}} {
		if err := CheckEndpoint(u.url); err != nil {
			return fmt.Errorf("oauth2 %s: %w", u.key, err)
		}
	}
	s := &Source{cfg: cfg}
	oc := &oauth2.Config{ClientID: cfg.ClientID, Scopes: cfg.Scopes,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: cfg.DeviceAuthURL, TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	var masks []string
	if cfg.ClientSecret != nil {
		sec, err := cfg.ClientSecret(ctx)
		if err != nil {
			return fmt.Errorf("%s: reading the client secret: %w", s, err)
		}
		oc.ClientSecret = sec.Reveal()
		masks = append(masks, sec.Reveal())
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, cfg.httpClient())
	da, err := oc.DeviceAuth(ctx)
	if err != nil {
		return s.newError(cfg.DeviceAuthURL, err, masks...)
	}
	if da.DeviceCode == "" || da.UserCode == "" || da.VerificationURI == "" {
		return &Error{Grant: Device, For: cfg.ClientID, Endpoint: redactURL(cfg.DeviceAuthURL), Status: 200,
			Description: "the answer lacks device_code, user_code or verification_uri"}
	}
	show(DevicePrompt{URL: printable(da.VerificationURI, 300), URLComplete: printable(da.VerificationURIComplete, 500),
		Code: printable(da.UserCode, 64), Expires: da.Expiry})
	tok, err := oc.DeviceAccessToken(ctx, da)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			if errors.Is(ctxErr, context.DeadlineExceeded) && !da.Expiry.IsZero() && !time.Now().Before(da.Expiry) {
				return &Error{Grant: Device, For: cfg.ClientID, Endpoint: redactURL(cfg.TokenURL), Code: "expired_token",
					Description: "the code expired before it was approved", Hint: genericHint(&cfg, &Error{Code: "expired_token"})}
			}
			return ctxErr
		}
		return s.newError(cfg.TokenURL, err, masks...)
	}
	if tok.RefreshToken == "" {
		return &Error{Grant: Device, For: cfg.ClientID, Endpoint: redactURL(cfg.TokenURL), Status: 200,
			Description: "the server gave no refresh token", Hint: "ask for it in scope (offline_access at Microsoft)"}
	}
	if err := WriteTokenFile(cfg.TokenFile, secret.New(tok.RefreshToken)); err != nil {
		return fmt.Errorf("storing the refresh token in %s: %w", cfg.TokenFile, err)
	}
	return nil
}
