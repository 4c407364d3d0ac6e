package mailserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"strings"
	"time"
)

// Endpoints are a server's listeners on 127.0.0.1 ("" when it has none)
// and the TLS each offers.
type Endpoints struct {
	IMAP         string // plain IMAP
	IMAPStartTLS bool   // IMAP offers STARTTLS with the kit's certificate
	IMAPS        string // IMAP over implicit TLS (RFC 8314)
	POP3         string // plain POP3
	POP3STLS     bool   // POP3 offers STLS (RFC 2595)
	POP3S        string // POP3 over implicit TLS
}

// Server is what every kit's running server offers, so that an interop
// matrix can treat them alike.
type Server interface {
	// Info names the server and its package version.
	Info() Info
	Endpoints() Endpoints
	// CAFile is a PEM file with the CA that signed the server's
	// certificate (empty for servers without TLS).
	CAFile() string
	// TLSConfig trusts that CA, for 127.0.0.1.
	TLSConfig() *tls.Config
	// AddUser creates a user with a password and an empty INBOX.
	AddUser(ctx context.Context, user, password string) error
	// Login is the name user logs in with: the user name itself, or
	// "user@domain" on servers whose users live in virtual domains.
	Login(user string) string
	// LogTail returns the server's recent log lines for failure messages.
	LogTail(n int) string
	Stop() error
}

// IMAPServer is a server with IMAP: a destination or an IMAP source.
type IMAPServer interface {
	Server
	// Separator is the hierarchy separator of the personal namespace,
	// and Prefix its prefix ("INBOX." on Cyrus and Courier, "" elsewhere).
	Separator() string
	Prefix() string
	// Append stores msg in the user's mailbox (created if needed; INBOX
	// for the inbox) with flags and internal date.
	Append(ctx context.Context, user, mailbox string, msg []byte, flags []string, internalDate time.Time) error
	// Messages returns what the mailbox holds, in UID order.
	Messages(ctx context.Context, user, mailbox string) ([]Message, error)
	// Mailboxes lists the user's mailboxes.
	Mailboxes(ctx context.Context, user string) ([]Mailbox, error)
}

// POP3Server is a server with POP3: a POP3 source.
type POP3Server interface {
	Server
	// Deliver puts msg into the user's maildrop, as served over POP3.
	Deliver(ctx context.Context, user string, msg []byte) error
}

// HeaderAdder is implemented by servers that add header fields of their
// own to the messages they serve (mbox storage: X-IMAPbase, X-UID, Status,
// X-UIDL). Comparisons drop those fields first (StripHeaders): the change
// is the server's, documented, and not a copy error.
type HeaderAdder interface {
	AddedHeaders() []string
}

// StripHeaders returns msg without the header fields named in names
// (case-insensitive, with their continuation lines). The body is kept as
// it is.
func StripHeaders(msg []byte, names []string) []byte {
	if len(names) == 0 {
		return msg
	}
	var out []byte
	skipping := false
	rest := msg
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if len(bytes.TrimRight(line, "\r\n")) == 0 { // end of the header
			out = append(out, line...)
			return append(out, rest...)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skipping {
				out = append(out, line...)
			}
			continue
		}
		skipping = false
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			for _, n := range names {
				if strings.EqualFold(string(line[:colon]), n) {
					skipping = true
					break
				}
			}
		}
		if !skipping {
			out = append(out, line...)
		}
	}
	return out
}
