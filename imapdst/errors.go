package imapdst

import (
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

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
	if throttledText(e.Text) {
		// Office 365 throttles with a bare NO: "Request is throttled.
		// Suggested Backoff Time: N milliseconds".
		return pipeline.ClassTransient
	}
	switch e.Command {
	case "LOGIN", "AUTHENTICATE":
		return pipeline.ClassFatal
	case "APPEND":
		return pipeline.ClassPerMessage
	}
	return pipeline.ClassFatal
}

// maxRetryAfter caps the wait a server may ask for, so that a garbled or
// absurd value cannot park an account for days.
const maxRetryAfter = 15 * time.Minute

// suggestedBackoff matches Office 365's throttling text: "Request is
// throttled. Suggested Backoff Time: 1234 milliseconds". A missing unit
// means milliseconds, as Office 365 uses; seconds are understood too.
var suggestedBackoff = regexp.MustCompile(`(?i)suggested\s+backoff\s+time\s*:?\s*([0-9]+)\s*(milliseconds?|msecs?|ms|seconds?|secs?|s)?\b`)

// RetryAfter implements pipeline.RetryAfterer: the wait the server asked
// for in the text of its reply (Office 365's "Suggested Backoff Time: N
// milliseconds", anywhere in Text, case-insensitive), capped at 15 minutes.
// It is 0 when the server named no time, as with Gmail's [THROTTLED] or a
// [LIMIT] or [UNAVAILABLE] refusal: the caller then uses its own backoff.
func (e *ReplyError) RetryAfter() time.Duration {
	m := suggestedBackoff.FindStringSubmatch(e.Text)
	if m == nil {
		return 0
	}
	unit := time.Millisecond
	if u := strings.ToLower(m[2]); u != "" && !strings.HasPrefix(u, "m") {
		unit = time.Second
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > int64(maxRetryAfter/unit) {
		return maxRetryAfter // absurd, or too many digits for an int64
	}
	return time.Duration(n) * unit
}

// sizeLimitText reports whether the text of a [LIMIT] refusal says the
// message is too large.
func sizeLimitText(text string) bool {
	t := strings.ToLower(text)
	return strings.Contains(t, "size") || strings.Contains(t, "too large") || strings.Contains(t, "too big")
}

// throttledText reports whether a reply without a telling code says the
// server is throttling the client.
func throttledText(text string) bool {
	return strings.Contains(strings.ToLower(text), "throttl")
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
