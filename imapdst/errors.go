package imapdst

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
)

// Sentinels callers branch on with errors.Is. Each is wrapped in an error that
// classifies it for the pipeline.
var (
	// ErrPlaintextRefused: the connection is not encrypted and
	// Options.AllowPlaintext is false, so no credentials were sent. Fatal.
	// It is tlsmode.ErrPlaintext, the value every client returns for this.
	ErrPlaintextRefused = tlsmode.ErrPlaintext
	// ErrLoginDisabled: the server advertises LOGINDISABLED (RFC 3501 §6.2.3)
	// and offers no AUTH=PLAIN either. Fatal. It is imapconn.ErrLoginDisabled.
	ErrLoginDisabled = imapconn.ErrLoginDisabled
	// ErrNoStartTLS: TLSStartTLS was asked for and the server does not
	// advertise STARTTLS. Fatal. It is imapconn.ErrNoStartTLS.
	ErrNoStartTLS = imapconn.ErrNoStartTLS
	// ErrInvalidArgument: a user name, password, mailbox name, flag or
	// Message-ID contains bytes IMAP cannot carry (CR, LF, NUL) or a flag is
	// not an atom. Fatal for credentials and mailboxes, per message (and
	// for good) for flags. It is imapconn.ErrInvalidArgument.
	ErrInvalidArgument = imapconn.ErrInvalidArgument
	// ErrTooBig: a message is larger than the server's APPENDLIMIT (RFC 7889)
	// and was not sent. Per message.
	ErrTooBig = errors.New("imapdst: message larger than the server accepts")
	// ErrNoBinary: a message holds NUL bytes, which an IMAP literal cannot
	// carry, and the server does not offer BINARY (RFC 3516), whose
	// literal8 can. Per message, for good.
	ErrNoBinary = errors.New("imapdst: message contains NUL bytes and the server has no BINARY (RFC 3516)")
	// ErrMessageNotFound: Digest was asked for a UID the mailbox does not hold.
	ErrMessageNotFound = errors.New("imapdst: message not found")
	// ErrClosed: the connection failed earlier or Close was called; dial again.
	ErrClosed = errors.New("imapdst: connection closed")
)

// ReplyError is a server's refusal: a tagged NO or BAD, or an untagged BYE.
// A refused login is an *imapconn.LoginError instead (LoginError here).
// Code is the RFC 5530 response code without brackets ("TOOBIG",
// "OVERQUOTA", …), "" when the server gave none.
type ReplyError struct {
	Command string // "APPEND", "CREATE", "SELECT", …
	Mailbox string // "" when the command has none
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
// said it is too big (RFC 7889 / RFC 5530 TOOBIG, or Dovecot's [LIMIT] with
// a size text, see ErrorClass).
func (e *ReplyError) Permanent() bool {
	return e.Code == "TOOBIG" || e.Code == "LIMIT" && e.Command == "APPEND" && sizeLimitText(e.Text)
}

// ErrorClass implements pipeline.Classifier.
//
//   - BYE, UNAVAILABLE, LIMIT, INUSE, SERVERBUG, THROTTLED (Gmail), and a
//     reply whose text says it is throttled (Office 365's bare NO "Request
//     is throttled. Suggested Backoff Time: …"): transient (the server or
//     the account is busy; reconnect with backoff), except a LIMIT to APPEND
//     whose text speaks of the message size (Dovecot's
//     quota_max_mail_size): per message, like TOOBIG.
//   - OVERQUOTA, AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED,
//     PRIVACYREQUIRED, CONTACTADMIN, NOPERM: fatal (nothing more will fit
//     or nothing is allowed).
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
	case "LIMIT":
		// RFC 5530 §3: an implementation limit. Dovecot answers an APPEND
		// larger than quota_max_mail_size with "NO [LIMIT] Mail size is
		// larger than the maximum size allowed by server configuration":
		// that message will never fit, so it is skipped, not retried
		// forever. Other LIMITs (rate and connection limits) pass.
		if e.Command == "APPEND" && sizeLimitText(e.Text) {
			return pipeline.ClassPerMessage
		}
		return pipeline.ClassTransient
	case "UNAVAILABLE", "INUSE", "SERVERBUG", "THROTTLED":
		// THROTTLED is Gmail's (not in RFC 5530): too many commands or
		// bytes for now.
		return pipeline.ClassTransient
	case "OVERQUOTA", "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
		"PRIVACYREQUIRED", "CONTACTADMIN", "NOPERM":
		return pipeline.ClassFatal
	}
	if imapconn.Throttled(e.Text) {
		// Office 365 throttles with a bare NO: "Request is throttled.
		// Suggested Backoff Time: N milliseconds".
		return pipeline.ClassTransient
	}
	if e.Command == "APPEND" {
		return pipeline.ClassPerMessage
	}
	return pipeline.ClassFatal
}

// RetryAfter implements pipeline.RetryAfterer: the wait the server asked
// for in the text of its reply (imapconn.SuggestedBackoff: Office 365's
// "Suggested Backoff Time: N milliseconds"), capped at 15 minutes. It is 0
// when the server named no time, as with Gmail's [THROTTLED] or a [LIMIT]
// or [UNAVAILABLE] refusal: the caller then uses its own backoff.
func (e *ReplyError) RetryAfter() time.Duration { return imapconn.SuggestedBackoff(e.Text) }

// NameRefused reports whether the refusal is a CREATE the server turned
// down for the name itself: a NO or BAD without a response code, or with
// one that says nothing about the account (CANNOT, CLIENTBUG). Servers
// refuse names for their characters (Cyrus and Courier: a "/" inside a
// name under "."), their length (Courier), a parent that cannot have
// children (GNU Mailutils: an mbox folder holding mail) or reserved
// words; another name may well work. Refusals about the account or the
// server (NOPERM, OVERQUOTA, LIMIT, …) and BYE are not name refusals.
func (e *ReplyError) NameRefused() bool {
	if e.Command != "CREATE" || (e.Status != "NO" && e.Status != "BAD") {
		return false
	}
	switch e.Code {
	case "", "CANNOT", "CLIENTBUG":
		return true
	}
	return false
}

// sizeLimitText reports whether the text of a [LIMIT] refusal says the
// message is too large.
func sizeLimitText(text string) bool {
	t := strings.ToLower(text)
	return strings.Contains(t, "size") || strings.Contains(t, "too large") || strings.Contains(t, "too big")
}

// LoginError is a server's refusal of LOGIN or AUTHENTICATE, on either
// connection: imapconn.LoginError, which classifies itself (fatal unless
// the server said it is busy).
type LoginError = imapconn.LoginError

func fatal(err error) error      { return pipeline.Fatal(err) }
func perMessage(err error) error { return pipeline.PerMessage(err) }
func transient(err error) error  { return pipeline.Transient(err) }

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
