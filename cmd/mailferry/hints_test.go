package main

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/pop3src"
)

func TestHintFor(t *testing.T) {
	now := time.Now()
	cert := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "mail.example.test"},
		DNSNames:    []string{"mail.example.test", "imap.example.test"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.7")},
		NotBefore:   time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:    time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
	}
	future := *cert
	future.NotBefore, future.NotAfter = now.AddDate(0, 1, 0), now.AddDate(1, 0, 0)
	// As the TLS stack returns them: wrapped in a CertificateVerificationError.
	verify := func(err error) error {
		return fmt.Errorf("connecting to the source: %w", &tls.CertificateVerificationError{Err: err})
	}
	tests := []struct {
		name string
		err  error
		want []string // substrings of the hint
	}{
		{"another host", verify(x509.HostnameError{Certificate: cert, Host: "127.0.0.1"}),
			[]string{"mail.example.test, imap.example.test, 192.0.2.7", "not 127.0.0.1", "--insecure-skip-verify"}},
		{"expired", verify(x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}),
			[]string{"expired on 2025-03-01", "renew", "--insecure-skip-verify"}},
		{"not yet valid", verify(x509.CertificateInvalidError{Cert: &future, Reason: x509.Expired}),
			[]string{"not valid before " + future.NotBefore.UTC().Format("2006-01-02"), "clock"}},
		{"other invalid", verify(x509.CertificateInvalidError{Cert: cert, Reason: x509.NotAuthorizedToSign}),
			[]string{"not valid", "--insecure-skip-verify"}},
		{"unknown CA", verify(x509.UnknownAuthorityError{Cert: cert}), []string{"--tls-ca"}},
		{"login delay announced", &pop3src.ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY", LoginDelay: 15 * time.Minute},
			[]string{"this soon after the last one", "at least 15m0s", "run again later"}},
		{"login delay", &pop3src.ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY"}, []string{"run again later"}},
		{"in use", &pop3src.ResponseError{Command: "PASS ***", Code: "IN-USE"}, []string{"another session", "run again"}},
		{"wrong password", &pop3src.ResponseError{Command: "PASS ***", Code: "AUTH"}, []string{"password"}},
		// A token the endpoint issued, refused by the mail server: the
		// provider's mail-side settings (docs/microsoft-365.md, steps 4-6;
		// docs/google-workspace.md), never the password advice.
		{"microsoft365 app-only token refused over IMAP", refusedToken("microsoft365", oauthtoken.ClientCredentials, config.IMAP),
			[]string{"New-ServicePrincipal", "Add-MailboxPermission", "FullAccess", "Set-CASMailbox", "-ImapEnabled $true"}},
		{"microsoft365 app-only token refused over POP3", refusedToken("microsoft365", oauthtoken.ClientCredentials, config.POP3),
			[]string{"New-ServicePrincipal", "-PopEnabled $true"}},
		{"microsoft365 user token refused", refusedToken("microsoft365", oauthtoken.RefreshToken, config.IMAP),
			[]string{"-ImapEnabled $true", "IMAP.AccessAsUser.All"}},
		{"gmail delegated token refused", refusedToken("gmail", oauthtoken.ServiceAccount, config.IMAP),
			[]string{"delegation is in place", "POP and IMAP access"}},
		{"token of an unknown provider refused", refusedToken("", oauthtoken.RefreshToken, config.IMAP),
			[]string{"the token endpoint issued the token", "audience"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hintFor(tt.err)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("hintFor(%v) = %q, want it to mention %q", tt.err, got, w)
				}
			}
		})
	}
	if got := hintFor(nil); got != "" {
		t.Errorf("hintFor(nil) = %q, want none", got)
	}
	if got := hintFor(refusedToken("microsoft365", oauthtoken.ClientCredentials, config.IMAP)); strings.Contains(got, "password") {
		t.Errorf("a refused token's hint speaks of passwords: %q", got)
	}
}

// refusedToken is the error of a login the server refused with a token of
// the grant, as package account returns it.
func refusedToken(provider string, grant oauthtoken.Grant, proto config.Protocol) error {
	return fmt.Errorf("opening the destination: %w", &account.TokenRefusedError{Provider: provider, Grant: grant, Protocol: proto,
		Err: &imapdst.ReplyError{Command: "AUTHENTICATE", User: "alice@contoso.com", Status: "NO", Text: "AUTHENTICATE failed."}})
}
