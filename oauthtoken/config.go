package oauthtoken

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/mailferry/mailferry/secret"
)

// Grant is how a token is obtained.
type Grant string

// The grants.
const (
	// ServiceAccount is the JWT bearer grant (RFC 7523 §2.1) signed with a
	// service account's key, acting for Subject: Google Workspace
	// domain-wide delegation.
	ServiceAccount Grant = "service-account"
	// ClientCredentials is the client credentials grant (RFC 6749 §4.4):
	// an application's own token, with a client secret or a certificate
	// (RFC 7523 §2.2 client assertion). Microsoft 365 app-only access.
	ClientCredentials Grant = "client-credentials"
	// Device is the device authorization grant (RFC 8628): DeviceLogin
	// asks a user to sign in once and stores the refresh token in
	// TokenFile; tokens then come from the refresh token grant.
	Device Grant = "device"
	// RefreshToken is the refresh token grant (RFC 6749 §6) with the
	// refresh token in TokenFile.
	RefreshToken Grant = "refresh-token"
)

// Grants lists the grants in the order the documentation names them.
var Grants = []Grant{ServiceAccount, ClientCredentials, Device, RefreshToken}

// Config says how one login gets its tokens. Which fields a grant uses is
// documented on each; New refuses missing ones.
type Config struct {
	Grant Grant
	// Provider is "gmail", "microsoft365" or "": it only chooses the hints
	// of errors.
	Provider string
	// TokenURL is the token endpoint. ServiceAccount: "" uses the key
	// file's token_uri.
	TokenURL string
	// DeviceAuthURL is the device authorization endpoint (Device).
	DeviceAuthURL string
	// ClientID identifies the application (ClientCredentials, Device,
	// RefreshToken).
	ClientID string
	// ClientSecret, when set, gives the client secret, asked for each time
	// a token is fetched (a secret command may rotate it). Required for
	// ClientCredentials unless CertificateFile is set; optional for Device
	// and RefreshToken (confidential clients).
	ClientSecret func(context.Context) (secret.Value, error)
	// CertificateFile and PrivateKeyFile (PEM) authenticate a
	// ClientCredentials client with a signed assertion instead of a secret;
	// PrivateKeyFile "" means the key is in CertificateFile.
	CertificateFile, PrivateKeyFile string
	// KeyFile is the service account's JSON key (ServiceAccount).
	KeyFile string
	// Subject is the user a ServiceAccount token acts for: the mailbox's
	// address.
	Subject string
	// Scopes are the scopes asked for.
	Scopes []string
	// TokenFile holds the refresh token on its first line (Device,
	// RefreshToken). A rotated refresh token is written back, mode 0600.
	TokenFile string
	// HTTPClient, when set, is used for every request (tests pass one that
	// trusts their CA). Default: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger receives debug lines about fetches and rejections (never a
	// token). Default: discard.
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// requestTimeout bounds one request to a token endpoint.
const requestTimeout = 30 * time.Second

// ErrNoRefreshToken is returned (wrapped) when a Device or RefreshToken
// login's token file holds no refresh token yet.
var ErrNoRefreshToken = errors.New("no refresh token")

// check refuses a Config that lacks what its grant needs; it names the
// config keys (key_file, client_id) since that is where users fix them.
func (c *Config) check() error {
	missing := func(key string) error {
		return fmt.Errorf("oauth2 grant %q needs %s", c.Grant, key)
	}
	switch c.Grant {
	case ServiceAccount:
		if c.KeyFile == "" {
			return missing("key_file")
		}
		if c.Subject == "" {
			return missing("subject (the mailbox's address)")
		}
	case ClientCredentials:
		if c.ClientID == "" {
			return missing("client_id")
		}
		if c.TokenURL == "" {
			return missing("token_url (or tenant with provider = \"microsoft365\")")
		}
		if c.ClientSecret == nil && c.CertificateFile == "" {
			return missing("client_secret_env, _file or _command, or certificate_file")
		}
		if c.ClientSecret != nil && c.CertificateFile != "" {
			return fmt.Errorf("oauth2 grant %q: client secret and certificate_file exclude each other", c.Grant)
		}
	case Device, RefreshToken:
		if c.ClientID == "" {
			return missing("client_id")
		}
		if c.TokenURL == "" {
			return missing("token_url")
		}
		if c.TokenFile == "" {
			return missing("token_file")
		}
		if c.Grant == Device && c.DeviceAuthURL == "" {
			return missing("device_auth_url")
		}
	default:
		return fmt.Errorf("unknown oauth2 grant %q (want service-account, client-credentials, device or refresh-token)", c.Grant)
	}
	return nil
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: requestTimeout}
}

func (c *Config) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}
