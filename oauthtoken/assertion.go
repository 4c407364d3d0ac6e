package oauthtoken

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // the x5t header is a SHA-1 thumbprint by definition (RFC 7515 §4.1.7)
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid; Microsoft
// accepts up to ten minutes.
const assertionLifetime = 5 * time.Minute

// clientCert signs client assertions with a certificate's key.
type clientCert struct {
	key           *rsa.PrivateKey
	x5t, x5tS256  string // the certificate's SHA-1 and SHA-256 thumbprints, base64url
	notAfter      time.Time
	subjectForErr string
}

// loadClientCert reads a PEM certificate and its RSA key (keyFile "" = in
// certFile).
func loadClientCert(certFile, keyFile string) (*clientCert, error) {
	certPEM, err := readSmall(certFile)
	if err != nil {
		return nil, fmt.Errorf("reading certificate_file: %w", err)
	}
	var cert *x509.Certificate
	for rest := certPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			if cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
				return nil, fmt.Errorf("certificate_file %s: the certificate does not parse: %v", certFile, err)
			}
			break
		}
	}
	if cert == nil {
		return nil, fmt.Errorf("certificate_file %s holds no PEM certificate", certFile)
	}
	keyPEM := certPEM
	if keyFile != "" {
		if keyPEM, err = readSmall(keyFile); err != nil {
			return nil, fmt.Errorf("reading private_key_file: %w", err)
		}
	}
	key, err := parseRSAKey(keyPEM)
	if err != nil {
		if keyFile == "" {
			return nil, fmt.Errorf("certificate_file %s: %v (or set private_key_file)", certFile, err)
		}
		return nil, fmt.Errorf("private_key_file %s: %v", keyFile, err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("the private key does not belong to the certificate in %s", certFile)
	}
	s1 := sha1.Sum(cert.Raw) //nolint:gosec // thumbprint
	s256 := sha256.Sum256(cert.Raw)
	return &clientCert{key: key, x5t: base64.RawURLEncoding.EncodeToString(s1[:]),
		x5tS256: base64.RawURLEncoding.EncodeToString(s256[:]), notAfter: cert.NotAfter,
		subjectForErr: cert.Subject.String()}, nil
}

// assertion is a signed client assertion for clientID at the token
// endpoint aud (RFC 7523 §3: iss and sub are the client, aud the endpoint,
// a unique jti, a short exp). The x5t headers name the certificate, as
// Microsoft's endpoint wants.
func (c *clientCert) assertion(clientID, aud string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    clientID,
		Subject:   clientID,
		Audience:  jwt.ClaimStrings{aud},
		ID:        hex.EncodeToString(jti[:]),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime)),
	})
	t.Header["x5t"] = c.x5t
	t.Header["x5t#S256"] = c.x5tS256
	s, err := t.SignedString(c.key)
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	return s, nil
}

// readSmall reads a file of at most maxKeyFile bytes.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxKeyFile>>10)
	}
	return b, nil
}
