package dovecot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// CA is a throwaway certificate authority for test servers. Share one CA
// between a source and a destination instance (Options.CA) so that a single
// PEM file (Server.CAFile) lets a client verify both.
//
// A CA is safe for concurrent use: it is not modified after NewCA.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA creates a CA with a fresh ECDSA P-256 key, valid from an hour ago for
// ten years. It does no I/O besides reading randomness.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dovecot: generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailferry test CA", Organization: []string{"mailferry tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("dovecot: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("dovecot: parsing CA certificate: %w", err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// CertPEM returns the CA certificate in PEM form (what --tls-ca expects).
func (ca *CA) CertPEM() []byte {
	return append([]byte(nil), ca.certPEM...)
}

// CertPool returns a new pool holding only the CA certificate.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// TLSConfig returns a client configuration that trusts only this CA and
// verifies the server name serverName (e.g. "127.0.0.1" or "localhost").
func (ca *CA) TLSConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.CertPool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// IssueServerCert signs a server certificate for hosts (IP addresses or DNS
// names) with a fresh ECDSA P-256 key, valid from an hour ago for one year.
// It returns the certificate and its PKCS #8 key, both PEM-encoded.
func (ca *CA) IssueServerCert(hosts ...string) (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	return ca.IssueCert(CertOptions{Hosts: hosts, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0)})
}

// CertOptions describe a server certificate to issue. Tests of certificate
// problems use them to mint certificates for the wrong host name or with a
// validity period that is over.
type CertOptions struct {
	// Hosts are the IP addresses and DNS names the certificate is for; the
	// first is also its common name. At least one is required.
	Hosts []string
	// NotBefore and NotAfter bound the validity period.
	NotBefore, NotAfter time.Time
}

// IssueCert signs a server certificate as opts say, with a fresh ECDSA
// P-256 key. It returns the certificate and its PKCS #8 key, both
// PEM-encoded.
func (ca *CA) IssueCert(opts CertOptions) (certPEM, keyPEM []byte, err error) {
	hosts := opts.Hosts
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("dovecot: issuing server certificate: no host names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("dovecot: generating server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"mailferry tests"}},
		NotBefore:    opts.NotBefore,
		NotAfter:     opts.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("dovecot: signing server certificate for %v: %w", hosts, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("dovecot: encoding server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("dovecot: generating certificate serial: %w", err)
	}
	return n, nil
}
