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
	switch {
	case err == nil:
		return Hint{}
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
		return Hint{ClassToken, "the server rejected the OAuth2 token (expired, revoked, issued for another user or without the mail scope): give a fresh one through the password file or command (read again for every connection) or MAILFERRY_SOURCE_PASSWORD / MAILFERRY_DEST_PASSWORD"}
	case errors.As(err, &popErr) && strings.EqualFold(popErr.Code, "LOGIN-DELAY"):
		return Hint{ClassLoginDelay, loginDelayHint(popErr.LoginDelay)}
	case errors.As(err, &popErr) && strings.EqualFold(popErr.Code, "IN-USE"):
		return Hint{ClassInUse, "another session holds the POP3 maildrop (a mail client, or another run): close it or wait until it ends, then run again; what was copied is kept"}
	case errors.As(err, &popErr) && isAuthCommand(popErr.Command),
		errors.As(err, &loginErr) && loginErr.ErrorClass() == pipeline.ClassFatal:
		return Hint{ClassLogin, "the server refused the login: check the user name and the password (MAILFERRY_SOURCE_PASSWORD / MAILFERRY_DEST_PASSWORD or the account's password settings)"}
	case errors.As(err, &imapErr) && imapErr.Code == "OVERQUOTA":
		return Hint{ClassQuota, "the destination mailbox is over quota: raise the quota or make room, then run again; what was copied is kept"}
	}
	return Hint{}
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
