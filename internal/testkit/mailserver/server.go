package mailserver

import (
	"context"
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
	// AddUser creates a user with a password and an empty INBOX.
	AddUser(ctx context.Context, user, password string) error
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
