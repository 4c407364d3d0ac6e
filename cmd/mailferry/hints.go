package main

import (
	"crypto/x509"
	"errors"
	"strings"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/pop3src"
)

// hintFor returns what the user can do about err, "" when nothing useful
// can be said. The hint names the flag or config key that fixes it.
func hintFor(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var popErr *pop3src.ResponseError
	var imapErr *imapdst.ReplyError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &unknownCA):
		return "the server's certificate is not signed by a trusted CA: pass the CA's certificate with --tls-ca FILE (tls_ca in a config), or, for a test server only, --insecure-skip-verify"
	case errors.As(err, &hostErr):
		return "the server's certificate is for another host name: connect with the name it was issued for, or fix the certificate"
	case errors.As(err, &invalid):
		return "the server's certificate is not valid (expired or not yet valid?): renew it, or, for a test server only, --insecure-skip-verify"
	case errors.Is(err, pop3src.ErrPlaintext), errors.Is(err, imapdst.ErrPlaintextRefused):
		return "passwords are not sent without TLS: use pop3s://, pop3:// (STLS), imaps:// or imap:// (STARTTLS), or opt in with --allow-plaintext (allow_plaintext in a config)"
	case errors.Is(err, imapdst.ErrNoStartTLS):
		return "the server does not offer STARTTLS: use imaps:// (port 993) or, on a trusted network only, ?tls=none with --allow-plaintext"
	case errors.As(err, &popErr) && isAuthCommand(popErr.Command),
		errors.As(err, &imapErr) && (imapErr.Command == "LOGIN" || imapErr.Command == "AUTHENTICATE"):
		return "the server refused the login: check the user name and the password (MAILFERRY_SOURCE_PASSWORD / MAILFERRY_DEST_PASSWORD or the account's password settings)"
	case errors.As(err, &imapErr) && imapErr.Code == "OVERQUOTA":
		return "the destination mailbox is over quota: raise the quota or make room, then run again; what was copied is kept"
	}
	return ""
}

func isAuthCommand(cmd string) bool {
	verb, _, _ := strings.Cut(strings.ToUpper(cmd), " ")
	switch verb {
	case "USER", "PASS", "AUTH", "APOP":
		return true
	}
	return false
}
