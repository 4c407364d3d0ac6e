// Package tlsmode is how mailferry's POP3 and IMAP clients secure a
// connection: the three modes a URL can ask for, and the client TLS
// configuration they start from, the handshake and the refusal of
// plaintext. The clients (pop3src, internal/imapconn, imapdst's appender)
// apply the mode in their own protocol (STLS or STARTTLS).
package tlsmode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/mailferry/mailferry/pipeline"
)

// Mode says how a connection is encrypted. The zero value is Implicit, the
// safest.
type Mode int

const (
	// Implicit speaks TLS from the first byte (RFC 8314 §3.2 and §3.3:
	// imaps on 993, pop3s on 995).
	Implicit Mode = iota
	// StartTLS connects in clear text and upgrades before anything else
	// (IMAP STARTTLS, RFC 3501 §6.2.1; POP3 STLS, RFC 2595 §4); a server
	// that does not offer it is refused.
	StartTLS
	// None never encrypts. The clients refuse it unless plaintext was
	// allowed explicitly.
	None
)

func (m Mode) String() string {
	switch m {
	case Implicit:
		return "implicit"
	case StartTLS:
		return "starttls"
	case None:
		return "none"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// ClientConfig returns a copy of base (an empty config when nil) whose
// ServerName defaults to addr's host, so certificates are checked against
// the host the user named, and which accepts TLS 1.2 or later.
func ClientConfig(base *tls.Config, addr string) *tls.Config {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// ErrPlaintext: the connection would not be encrypted (Mode None) and
// plaintext was not allowed, so nothing was sent. It is the one value the
// POP3 and IMAP clients return (wrapped) for this, fatal for the engine:
// only the configuration can change it.
var ErrPlaintext = pipeline.Fatal(errors.New("refusing to authenticate without TLS (plaintext not allowed)"))

// Handshake runs the client side of a TLS handshake on conn (implicit TLS,
// or after STARTTLS/STLS), bounded by ctx. A certificate that fails
// verification is fatal: retrying cannot fix it, only configuration
// (--tls-ca) can. Other failures (resets, timeouts) are returned as they
// are, transient for the engine. On error the caller closes conn.
func Handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return nil, pipeline.Fatal(err)
		}
		return nil, err
	}
	return tc, nil
}
