package imapdst

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/pipeline"
)

// Sentinels callers branch on with errors.Is. Each is wrapped in an error that
// classifies it for the pipeline.
var (
	// ErrPlaintextRefused: the connection is not encrypted and
	// Options.AllowPlaintext is false, so no credentials were sent. Fatal.
	ErrPlaintextRefused = errors.New("imapdst: refusing to authenticate without TLS (AllowPlaintext is off)")
	// ErrLoginDisabled: the server advertises LOGINDISABLED (RFC 3501 §6.2.3)
	// and offers no AUTH=PLAIN either. Fatal.
	ErrLoginDisabled = errors.New("imapdst: server disables LOGIN and offers no AUTH=PLAIN")
	// ErrNoStartTLS: TLSStartTLS was asked for and the server does not
	// advertise STARTTLS. Fatal.
	ErrNoStartTLS = errors.New("imapdst: server does not offer STARTTLS")
	// ErrInvalidArgument: a user name, password, mailbox name, flag or
	// Message-ID contains bytes IMAP cannot carry (CR, LF, NUL) or a flag is
	// not an atom. Fatal for credentials and mailboxes, per message for flags.
	ErrInvalidArgument = errors.New("imapdst: invalid argument")
	// ErrTooBig: a message is larger than the server's APPENDLIMIT (RFC 7889)
	// and was not sent. Per message.
	ErrTooBig = errors.New("imapdst: message larger than the server accepts")
	// ErrMessageNotFound: Digest was asked for a UID the mailbox does not hold.
	ErrMessageNotFound = errors.New("imapdst: message not found")
	// ErrClosed: the connection failed earlier or Close was called; dial again.
	ErrClosed = errors.New("imapdst: connection closed")
)

// ReplyError is a server's refusal: a tagged NO or BAD, or an untagged BYE.
// Code is the RFC 5530 response code without brackets ("TOOBIG",
// "OVERQUOTA", …), "" when the server gave none.
type ReplyError struct {
	Command string // "APPEND", "LOGIN", "CREATE", …
	Mailbox string // "" when the command has none
	User    string // "" when not relevant
	Status  string // "NO", "BAD" or "BYE"
	Code    string
	Text    string
	// Batch is set when the refused command was a MULTIAPPEND of several
	// messages: the refusal may be caused by any one of them.
	Batch bool
}

func (e *ReplyError) Error() string {
	var b strings.Builder
	b.WriteString("imapdst: ")
	b.WriteString(e.Command)
	if e.Mailbox != "" {
		fmt.Fprintf(&b, " %q", e.Mailbox)
	}
	if e.User != "" {
		fmt.Fprintf(&b, " for %s", e.User)
	}
	b.WriteString(": ")
	b.WriteString(e.Status)
	if e.Code != "" {
		b.WriteString(" [" + e.Code + "]")
	}
	if e.Text != "" {
		b.WriteString(" " + e.Text)
	}
	return b.String()
}

// Permanent reports whether the refusal can never succeed, so the message
// is skipped for good rather than tried again by the next run: the server
// said it is too big (RFC 7889 / RFC 5530 TOOBIG).
func (e *ReplyError) Permanent() bool { return e.Code == "TOOBIG" }

// ErrorClass implements pipeline.Classifier.
//
//   - BYE, UNAVAILABLE, LIMIT, INUSE, SERVERBUG: transient (the server or the
//     account is busy; reconnect with backoff).
//   - OVERQUOTA, AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED,
//     PRIVACYREQUIRED, CONTACTADMIN, NOPERM, and any NO/BAD to LOGIN or
//     AUTHENTICATE: fatal (nothing more will fit or nothing is allowed).
//   - On APPEND: TOOBIG, BAD (e.g. an invalid flag), TRYCREATE after the
//     mailbox was created, and NO without a code: per message. A bare NO is
//     most often a server refusing this message's content (Dovecot and
//     Cyrus send one for unparsable mail); if it was a passing problem the
//     message is retried on the next run, as failed messages are.
//   - Anything else (NO or BAD to CREATE, SELECT, …): fatal, since the
//     account cannot proceed without the mailbox.
func (e *ReplyError) ErrorClass() pipeline.Class {
	if e.Status == "BYE" {
		return pipeline.ClassTransient
	}
	switch e.Code {
	case "UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG":
		return pipeline.ClassTransient
	case "OVERQUOTA", "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
		"PRIVACYREQUIRED", "CONTACTADMIN", "NOPERM":
		return pipeline.ClassFatal
	}
	switch e.Command {
	case "LOGIN", "AUTHENTICATE":
		return pipeline.ClassFatal
	case "APPEND":
		return pipeline.ClassPerMessage
	}
	return pipeline.ClassFatal
}

// classified gives an error a fixed class.
type classified struct {
	err   error
	class pipeline.Class
}

func (e *classified) Error() string              { return e.err.Error() }
func (e *classified) Unwrap() error              { return e.err }
func (e *classified) ErrorClass() pipeline.Class { return e.class }

// classifyHandshake makes a certificate that fails verification fatal:
// retrying cannot fix it, only configuration (--tls-ca) can. Other
// handshake failures (resets, timeouts) stay transient.
func classifyHandshake(err error) error {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return fatal(err)
	}
	return err
}

func fatal(err error) error      { return &classified{err: err, class: pipeline.ClassFatal} }
func perMessage(err error) error { return &classified{err: err, class: pipeline.ClassPerMessage} }
func transient(err error) error  { return &classified{err: err, class: pipeline.ClassTransient} }
func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}

// fromIMAPError turns go-imap's *imap.Error (control connection) into a
// *ReplyError so that callers see one error type for server replies. Other
// errors are returned unchanged.
func fromIMAPError(err error, command, mailbox string) error {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return err
	}
	return &ReplyError{Command: command, Mailbox: mailbox, Status: string(ie.Type), Code: string(ie.Code), Text: ie.Text}
}

// Permanent reports whether a classified error can never succeed: a
// message over APPENDLIMIT, or a flag that is not an atom.
func (c *classified) Permanent() bool {
	return errors.Is(c.err, ErrTooBig) || errors.Is(c.err, ErrInvalidArgument)
}
