package oauthtoken

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// GoogleTokenURL is Google's token endpoint, the token_uri of its keys.
const GoogleTokenURL = "https://oauth2.googleapis.com/token"

// maxKeyFile bounds a key, certificate or token file, so a wrong path such
// as /dev/zero fails instead of eating memory.
const maxKeyFile = 1 << 20

// ServiceAccountKey is what a login uses of a Google service account's JSON
// key file. The private key never leaves it but to sign.
type ServiceAccountKey struct {
	ClientEmail  string // the service account, the JWT's issuer
	ClientID     string // the numeric ID an admin authorizes for domain-wide delegation
	PrivateKeyID string // the JWT header's kid
	TokenURI     string // the token endpoint; GoogleTokenURL when the file has none
	pem          []byte
}

// ParseServiceAccountKey reads a service account's JSON key (the file the
// Google Cloud console downloads: "type": "service_account", client_email,
// private_key as PEM, private_key_id, client_id, token_uri). Errors say what
// is wrong without quoting the file: it holds a private key.
func ParseServiceAccountKey(data []byte) (*ServiceAccountKey, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		ClientID     string `json:"client_id"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not a JSON key file: invalid JSON at byte %d", se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("not a service account key: %q must be %s", te.Field, te.Type)
		}
		return nil, errors.New("not a JSON key file: invalid JSON")
	}
	switch f.Type {
	case "service_account":
	case "":
		return nil, errors.New(`not a service account key: no "type": "service_account" (download a JSON key of the service account in the Google Cloud console)`)
	case "authorized_user", "external_account":
		return nil, fmt.Errorf("not a service account key but %q credentials: domain-wide delegation needs a service account's JSON key", f.Type)
	default:
		return nil, errors.New(`not a service account key: "type" is not "service_account"`)
	}
	if f.ClientEmail == "" || strings.ContainsFunc(f.ClientEmail, isControl) {
		return nil, errors.New("service account key: client_email is missing or not printable")
	}
	k := &ServiceAccountKey{ClientEmail: f.ClientEmail, ClientID: printable(f.ClientID, 64),
		PrivateKeyID: printable(f.PrivateKeyID, 128), TokenURI: f.TokenURI}
	if k.TokenURI == "" {
		k.TokenURI = GoogleTokenURL
	}
	if err := CheckEndpoint(k.TokenURI); err != nil {
		return nil, fmt.Errorf("service account key: token_uri: %w", err)
	}
	if f.PrivateKey == "" {
		return nil, errors.New("service account key: private_key is missing")
	}
	if _, err := parseRSAKey([]byte(f.PrivateKey)); err != nil {
		return nil, fmt.Errorf("service account key: private_key: %w", err)
	}
	k.pem = []byte(f.PrivateKey)
	return k, nil
}

// parseRSAKey parses the first PEM block of b as an RSA private key
// (PKCS #8, as Google and openssl write them, or PKCS #1).
func parseRSAKey(b []byte) (*rsa.PrivateKey, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key")
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		if x509.IsEncryptedPEMBlock(blk) { //nolint:staticcheck // only to say so
			return nil, errors.New("the private key is encrypted: decrypt it (openssl pkey -in KEY -out PLAIN)")
		}
		if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("the private key is %T, want RSA (RS256)", k)
			}
			return rk, nil
		}
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, errors.New("the PEM private key does not parse (PKCS #8 or PKCS #1 RSA)")
		}
		return k, nil
	}
}

// CheckEndpoint accepts an https:// URL, or http:// to a loopback address
// (a local test server): tokens and secrets never cross a network in clear.
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", printable(raw, 200))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		switch h := u.Hostname(); {
		case h == "localhost", strings.HasPrefix(h, "127."), h == "::1":
			return nil
		}
		return fmt.Errorf("%s: http:// is only allowed to a loopback address; use https://", u.Redacted())
	}
	return fmt.Errorf("%s: want an https:// URL", u.Redacted())
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// printable removes control characters from s and cuts it to n bytes, for
// text from files and servers that goes into messages.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
