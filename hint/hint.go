// Package hint says, in plain words, what went wrong with an account and
// what the user can do about it: the flag or config key that fixes it, or
// whom to ask. The run's summary, the ledger's run records and the status
// page show the same words. It only looks at errors: no I/O.
package hint

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
)

// Classes of errors, for people: the status page filters accounts by them.
const (
	ClassTLSCertificate = "tls-certificate" // the server's certificate did not verify
	ClassPlaintext      = "plaintext"       // TLS was needed and not offered or not asked for
	ClassLogin          = "login"           // the server refused the user or the password
	ClassToken          = "oauth2-token"    // the server rejected the OAuth2 token
	ClassLoginDelay     = "login-delay"     // POP3 LOGIN-DELAY: too soon after the last login
	ClassInUse          = "mailbox-in-use"  // POP3 IN-USE: another session holds the maildrop
	ClassQuota          = "quota"           // the destination mailbox is over quota
	ClassUnreachable    = "unreachable"     // nothing listens on the port (connection refused)
	ClassNoAnswer       = "no-answer"       // no connect, TLS handshake or greeting in time
	ClassWrongProtocol  = "wrong-protocol"  // the server speaks another protocol than the URL says
	ClassFolder         = "folder"          // a folder named is not there (account.FolderError)
)

// Hint is what For says about an error.
type Hint struct {
	// Class is one of the Class constants; "" when For knows the error
	// only by the engine's class (pipeline.ClassOf).
	Class string
	// Fix says what to do, naming the flag or config key; "" when nothing
	// useful can be said.
	Fix string
}

// For returns what the user can do about err; the zero Hint for nil or an
// error it does not know.
func For(err error) Hint {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var popErr *pop3src.ResponseError
	var imapErr *imapdst.ReplyError
	var loginErr *imapconn.LoginError
	var tokenErr *bearer.RejectedError
	var refused *account.TokenRefusedError
	var connRefused *dialer.RefusedError
	var timedOut *dialer.TimeoutError
	var protoErr *dialer.ProtocolError
	var folderErr *account.FolderError
	switch {
	case err == nil:
		return Hint{}
	case errors.As(err, &connRefused):
		return Hint{ClassUnreachable, fmt.Sprintf("nothing listens on %s: check the host and the port in the URL (IMAP: 993 for imaps://, 143 for imap://; POP3: 995 for pop3s://, 110 for pop3://) and that the server is running; a firewall that rejects connections looks the same. Retrying would not help", connRefused.Addr)}
	case errors.As(err, &folderErr) && folderErr.Side == "source":
		return Hint{ClassFolder, "correct the folder's name (the error names the nearest ones; mailferry plan lists what a run would copy); nothing was copied"}
	case errors.As(err, &folderErr):
		return Hint{ClassFolder, "correct the folder's name, or, if it is meant to be a new folder, add --create-folders (create_folders = true in a config); nothing was copied or created"}
	case errors.As(err, &protoErr):
		return Hint{ClassWrongProtocol, protocolHint(protoErr)}
	case errors.As(err, &timedOut):
		return Hint{ClassNoAnswer, timeoutHint(timedOut)}
	case errors.As(err, &unknownCA):
		return Hint{ClassTLSCertificate, "the server's certificate is not signed by a trusted CA: pass the CA's certificate with --tls-ca FILE (tls_ca in a config), or, for a test server only, --insecure-skip-verify"}
	case errors.As(err, &hostErr):
		return Hint{ClassTLSCertificate, hostnameHint(hostErr)}
	case errors.As(err, &invalid):
		return Hint{ClassTLSCertificate, invalidCertHint(invalid, time.Now())}
	case errors.Is(err, tlsmode.ErrPlaintext):
		// One value, whichever client refused: POP3 or IMAP source, the
		// destination's connections, verify's and plan's session.
		return Hint{ClassPlaintext, "passwords are not sent without TLS: use pop3s://, pop3:// (STLS), imaps:// or imap:// (STARTTLS), or opt in with --allow-plaintext (allow_plaintext in a config)"}
	case errors.Is(err, imapconn.ErrNoStartTLS):
		return Hint{ClassPlaintext, "the server does not offer STARTTLS: use imaps:// (port 993) or, on a trusted network only, ?tls=none with --allow-plaintext"}
	case errors.As(err, &refused):
		// Before the rejected token and the login refusals, which it
		// wraps: the grant's token endpoint issued the token (a fresh one
		// too), so neither a fresh token nor the password advice helps;
		// the mail service's settings do.
		if h := refused.Hint(); h != "" {
			return Hint{ClassToken, h}
		}
		return Hint{ClassToken, "the token endpoint issued the token, but the server refused it (a fresh one too): check that the server accepts this endpoint's tokens for this user (their audience and scope, the user name it maps them to) and that the mailbox exists"}
	case errors.As(err, &tokenErr):
		// Before the login refusals: the server's final NO or -ERR is in
		// the chain too.
		return Hint{ClassToken, "the server rejected the OAuth2 token (expired, revoked, issued for another user or without the mail scope): give a fresh one through " + passwordSettings(sideOf(err), "the password file or command (read again for every connection)")}
	case errors.As(err, &popErr) && strings.EqualFold(popErr.Code, "LOGIN-DELAY"):
		return Hint{ClassLoginDelay, loginDelayHint(popErr.LoginDelay)}
	case errors.As(err, &popErr) && strings.EqualFold(popErr.Code, "IN-USE"):
		return Hint{ClassInUse, "another session holds the POP3 maildrop (a mail client, or another run): close it or wait until it ends, then run again; what was copied is kept"}
	case errors.As(err, &popErr) && isAuthCommand(popErr.Command),
		errors.As(err, &loginErr) && loginErr.ErrorClass() == pipeline.ClassFatal:
		side := sideOf(err)
		who := "the server"
		if side != "" {
			who = "the " + side + " server"
		}
		return Hint{ClassLogin, who + " refused the login: check the user name and the password: " + passwordSettings(side, "")}
	case errors.As(err, &imapErr) && imapErr.Code == "OVERQUOTA":
		return Hint{ClassQuota, "the destination mailbox is over quota: raise the quota or make room, then run again; what was copied is kept"}
	}
	return Hint{}
}

// sideOf is the side of the account whose opening failed with err:
// "source", "destination", or "" when err does not say.
func sideOf(err error) string {
	var se *pipeline.SideError
	if errors.As(err, &se) {
		return se.Side
	}
	return ""
}

// passwordSettings names where side's password comes from, both sides'
// when side is "": the variable and flags of the command line, the keys
// of a config. what, when not "", is said first.
func passwordSettings(side, what string) string {
	var s string
	switch side {
	case "source":
		s = "MAILFERRY_SOURCE_PASSWORD, --source-password-file or --source-password-command, or in a config the account's source_password setting"
	case "destination":
		s = "MAILFERRY_DEST_PASSWORD, --dest-password-file or --dest-password-command, or in a config the account's dest_password setting"
	default:
		s = "MAILFERRY_SOURCE_PASSWORD / MAILFERRY_DEST_PASSWORD or the account's password settings"
	}
	if what != "" {
		return what + ", " + s
	}
	return s
}

// timeoutHint says what to check when a server accepted no connection, or
// accepted it and then said nothing, within the step's timeout.
func timeoutHint(e *dialer.TimeoutError) string {
	switch e.Step {
	case dialer.StepConnect:
		return fmt.Sprintf("%s did not answer the connection within %v: check the host and the port in the URL, and whether a firewall drops the packets; on a very slow network raise --connect-timeout (connect_timeout in a config)", e.Addr, e.After)
	case dialer.StepTLS:
		return fmt.Sprintf("%s accepted the connection but did not finish the TLS handshake within %v: check that it is a TLS port (imaps:// 993, pop3s:// 995; for a plain-text port, 143 or 110, use imap:// or pop3:// with STARTTLS/STLS); for a very slow server raise --tls-timeout (tls_timeout)", e.Addr, e.After)
	}
	if e.TLS {
		return fmt.Sprintf("%s accepted the connection and TLS but sent no greeting within %v: check the port (IMAP 993, POP3 995) and that the server is not overloaded; for a very slow server raise --greeting-timeout (greeting_timeout)", e.Addr, e.After)
	}
	return fmt.Sprintf("%s accepted the connection but sent no greeting within %v: a port that expects TLS from the first byte (993, 995) says nothing to a client that does not start it, so use imaps:// or pop3s:// there; otherwise check the port, or raise --greeting-timeout (greeting_timeout)", e.Addr, e.After)
}

// protocolHint says which URL fits the server that answered.
func protocolHint(e *dialer.ProtocolError) string {
	switch e.Got {
	case "POP3":
		return fmt.Sprintf("%s is a POP3 server: as the source, use pop3s:// (port 995) or pop3:// (110); for IMAP, use the IMAP port (993 or 143). Retrying would not help", e.Addr)
	case "IMAP":
		return fmt.Sprintf("%s is an IMAP server: use imaps:// (port 993) or imap:// (143) (an IMAP source copies every folder), or the POP3 port (995 or 110). Retrying would not help", e.Addr)
	case "plain text":
		return fmt.Sprintf("%s does not speak TLS on this port: use imap:// or pop3:// there (STARTTLS, STLS), or the TLS port (imaps:// 993, pop3s:// 995). Retrying would not help", e.Addr)
	case "TLS":
		return fmt.Sprintf("%s expects TLS from the first byte: use imaps:// or pop3s:// for this port. Retrying would not help", e.Addr)
	}
	return fmt.Sprintf("%s is not a mail server of that kind (it answered %q): check the host and the port in the URL. Retrying would not help", e.Addr, e.Line)
}

// loginDelayHint explains RFC 2449's LOGIN-DELAY with the minimum time
// between logins when the server announced it.
func loginDelayHint(d time.Duration) string {
	every := ""
	if d > 0 {
		every = fmt.Sprintf(" (at least %v between logins)", d)
	}
	return "the POP3 server refuses logins this soon after the last one" + every +
		": run again later, and schedule runs less often; what was copied is kept"
}

// hostnameHint names the host the URL asked for and the names the
// certificate is for, so the user can see which one to connect to.
func hostnameHint(e x509.HostnameError) string {
	var names []string
	if c := e.Certificate; c != nil {
		names = append(names, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 && c.Subject.CommonName != "" {
			names = append(names, c.Subject.CommonName)
		}
	}
	issued := "another host name"
	if len(names) > 0 {
		issued = strings.Join(names, ", ")
	}
	return fmt.Sprintf("the server's certificate is for %s, not %s: put a name it was issued for in the URL (the host must resolve to the same server), or have the certificate fixed; for a test server only, --insecure-skip-verify",
		issued, e.Host)
}

// invalidCertHint explains an expired or not yet valid certificate with its
// dates; other reasons get the general advice.
func invalidCertHint(e x509.CertificateInvalidError, now time.Time) string {
	const day = "2006-01-02"
	c := e.Cert
	switch {
	case e.Reason == x509.Expired && c != nil && now.After(c.NotAfter):
		return fmt.Sprintf("the server's certificate expired on %s: its administrator must renew it; for a test server only, --insecure-skip-verify",
			c.NotAfter.UTC().Format(day))
	case e.Reason == x509.Expired && c != nil && now.Before(c.NotBefore):
		return fmt.Sprintf("the server's certificate is not valid before %s: check this computer's clock; for a test server only, --insecure-skip-verify",
			c.NotBefore.UTC().Format(day))
	}
	return "the server's certificate is not valid (" + e.Error() + "): have it fixed, or, for a test server only, --insecure-skip-verify"
}

func isAuthCommand(cmd string) bool {
	verb, _, _ := strings.Cut(strings.ToUpper(cmd), " ")
	switch verb {
	case "USER", "PASS", "AUTH", "APOP":
		return true
	}
	return false
}

// Explain is For as pipeline.Runner.Explain wants it.
func Explain(err error) (class, fix string) {
	h := For(err)
	return h.Class, h.Fix
}
