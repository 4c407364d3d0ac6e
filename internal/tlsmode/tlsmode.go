// Package tlsmode is how mailferry's POP3 and IMAP clients secure a
// connection: the three modes a URL can ask for, and the client TLS
// configuration they start from. The clients (pop3src, imapsrc, imapdst)
// apply the mode in their own protocol (STLS or STARTTLS).
package tlsmode

import (
	"crypto/tls"
	"fmt"
	"net"
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
