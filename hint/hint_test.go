package hint

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
	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/imapconn"
	"github.com/mailferry/mailferry/oauthtoken"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
)

func TestFor(t *testing.T) {
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
		name  string
		err   error
		class string
		want  []string // substrings of the hint
	}{
		{"another host", verify(x509.HostnameError{Certificate: cert, Host: "127.0.0.1"}),
			ClassTLSCertificate, []string{"mail.example.test, imap.example.test, 192.0.2.7", "not 127.0.0.1", "--insecure-skip-verify"}},
		{"expired", verify(x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}),
			ClassTLSCertificate, []string{"expired on 2025-03-01", "renew", "--insecure-skip-verify"}},
		{"not yet valid", verify(x509.CertificateInvalidError{Cert: &future, Reason: x509.Expired}),
			ClassTLSCertificate, []string{"not valid before " + future.NotBefore.UTC().Format("2006-01-02"), "clock"}},
		{"other invalid", verify(x509.CertificateInvalidError{Cert: cert, Reason: x509.NotAuthorizedToSign}),
			ClassTLSCertificate, []string{"not valid", "--insecure-skip-verify"}},
		{"unknown CA", verify(x509.UnknownAuthorityError{Cert: cert}), ClassTLSCertificate, []string{"--tls-ca"}},
		{"login delay announced", &pop3src.ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY", LoginDelay: 15 * time.Minute},
			ClassLoginDelay, []string{"this soon after the last one", "at least 15m0s", "run again later"}},
		{"login delay", &pop3src.ResponseError{Command: "PASS ***", Code: "LOGIN-DELAY"}, ClassLoginDelay, []string{"run again later"}},
		{"in use", &pop3src.ResponseError{Command: "PASS ***", Code: "IN-USE"}, ClassInUse, []string{"another session", "run again"}},
		{"wrong password", &pop3src.ResponseError{Command: "PASS ***", Code: "AUTH"}, ClassLogin, []string{"password"}},
		// Every IMAP connection's refused login, the IMAP source's included.
		{"wrong IMAP password", fmt.Errorf("connecting to the source: %w", &imapconn.LoginError{Command: "LOGIN", User: "alice", Status: "NO", Code: "AUTHENTICATIONFAILED"}),
			ClassLogin, []string{"password"}},
		// A token the endpoint issued, refused by the mail server: the
		// provider's mail-side settings (docs/microsoft-365.md, steps 4-6;
		// docs/google-workspace.md), never the password advice.
		{"microsoft365 app-only token refused over IMAP", refusedToken("microsoft365", oauthtoken.ClientCredentials, config.IMAP),
			ClassToken, []string{"New-ServicePrincipal", "Add-MailboxPermission", "FullAccess", "Set-CASMailbox", "-ImapEnabled $true"}},
		{"microsoft365 app-only token refused over POP3", refusedToken("microsoft365", oauthtoken.ClientCredentials, config.POP3),
			ClassToken, []string{"New-ServicePrincipal", "-PopEnabled $true"}},
		{"microsoft365 user token refused", refusedToken("microsoft365", oauthtoken.RefreshToken, config.IMAP),
			ClassToken, []string{"-ImapEnabled $true", "IMAP.AccessAsUser.All"}},
		{"gmail delegated token refused", refusedToken("gmail", oauthtoken.ServiceAccount, config.IMAP),
			ClassToken, []string{"delegation is in place", "POP and IMAP access"}},
		{"token of an unknown provider refused", refusedToken("", oauthtoken.RefreshToken, config.IMAP),
			ClassToken, []string{"the token endpoint issued the token", "audience"}},
		// The refusal as an error challenge: the provider's hint wins over
		// the one for a rejected token, which asks for a fresh token (the
		// grant got one, and it was rejected too).
		{"microsoft365 token rejected by an error challenge", rejectedGrantToken("microsoft365", oauthtoken.ClientCredentials),
			ClassToken, []string{"New-ServicePrincipal", "-ImapEnabled $true"}},
		{"token of an unknown provider rejected by an error challenge", rejectedGrantToken("", oauthtoken.Device),
			ClassToken, []string{"the token endpoint issued the token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := For(tt.err)
			for _, w := range tt.want {
				if !strings.Contains(got.Fix, w) {
					t.Errorf("For(%v).Fix = %q, want it to mention %q", tt.err, got.Fix, w)
				}
			}
			if got.Class != tt.class {
				t.Errorf("For(%v).Class = %q, want %q", tt.err, got.Class, tt.class)
			}
		})
	}
	for _, err := range []error{nil, fmt.Errorf("connection reset")} {
		if got := For(err); got != (Hint{}) {
			t.Errorf("For(%v) = %+v, want the zero Hint", err, got)
		}
	}
	// The side that failed: only its password settings.
	login := &imapconn.LoginError{Command: "LOGIN", User: "alice", Status: "NO", Code: "AUTHENTICATIONFAILED"}
	for side, want := range map[string]string{"source": "MAILFERRY_SOURCE_PASSWORD", "destination": "MAILFERRY_DEST_PASSWORD"} {
		other := map[string]string{"source": "MAILFERRY_DEST_PASSWORD", "destination": "MAILFERRY_SOURCE_PASSWORD"}[side]
		got := For(&pipeline.SideError{Side: side, Err: login}).Fix
		if !strings.Contains(got, "the "+side+" server refused the login") || !strings.Contains(got, want) || strings.Contains(got, other) {
			t.Errorf("hint for the %s's refused login = %q, want %s and not %s", side, got, want, other)
		}
	}
	// Servers that do not answer, or not in the URL's protocol.
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{&dialer.RefusedError{Addr: "127.0.0.1:1"}, []string{"nothing listens on 127.0.0.1:1", "993", "Retrying would not help"}},
		{&account.FolderError{Side: "source", Folder: "Projekts"}, []string{"correct the folder's name", "nothing was copied"}},
		{&account.FolderError{Side: "destination", Folder: "INBX"}, []string{"--create-folders", "create_folders"}},
		{&dialer.TimeoutError{Step: dialer.StepConnect, Addr: "h:993", After: time.Second}, []string{"did not answer", "--connect-timeout"}},
		{&dialer.TimeoutError{Step: dialer.StepTLS, Addr: "h:143", After: time.Second}, []string{"TLS handshake", "imap://", "--tls-timeout"}},
		{&dialer.TimeoutError{Step: dialer.StepGreeting, Addr: "h:993", After: time.Second}, []string{"no greeting", "imaps:// or pop3s://", "--greeting-timeout"}},
		{&dialer.TimeoutError{Step: dialer.StepGreeting, Addr: "h:993", After: time.Second, TLS: true}, []string{"accepted the connection and TLS", "--greeting-timeout"}},
		{&dialer.ProtocolError{Addr: "h:993", Want: "IMAP", Got: "POP3"}, []string{"is a POP3 server", "pop3s://"}},
		{&dialer.ProtocolError{Addr: "h:995", Want: "POP3", Got: "IMAP"}, []string{"is an IMAP server", "imaps://"}},
		{&dialer.ProtocolError{Addr: "h:143", Want: "IMAP over TLS", Got: "plain text"}, []string{"does not speak TLS on this port", "imap://"}},
		{&dialer.ProtocolError{Addr: "h:25", Want: "IMAP", Got: "SMTP", Line: "220 mx"}, []string{"not a mail server of that kind", "220 mx"}},
	} {
		got := For(fmt.Errorf("connecting to the source: %w", tc.err)).Fix
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("For(%v) = %q, want it to mention %q", tc.err, got, w)
			}
		}
	}
	busy := &imapconn.LoginError{Command: "LOGIN", Status: "NO", Text: "Request is throttled. Suggested Backoff Time: 500 milliseconds"}
	if got := For(busy); strings.Contains(got.Fix, "password") || got.Class == ClassLogin {
		t.Errorf("For(%v) = %+v: a throttled login is no wrong password", busy, got)
	}
	if got := For(refusedToken("microsoft365", oauthtoken.ClientCredentials, config.IMAP)).Fix; strings.Contains(got, "password") {
		t.Errorf("a refused token's hint speaks of passwords: %q", got)
	}
	// The generic rejected-token hint would send the user to the password
	// file or command for a fresh token: the grant fetched one already.
	if got := For(rejectedGrantToken("microsoft365", oauthtoken.ClientCredentials)).Fix; strings.Contains(got, "password") {
		t.Errorf("a grant's rejected token's hint speaks of passwords: %q", got)
	}
}

// refusedToken is the error of a login the server refused with a token of
// the grant, as package account returns it.
func refusedToken(provider string, grant oauthtoken.Grant, proto config.Protocol) error {
	return fmt.Errorf("opening the destination: %w", &account.TokenRefusedError{Provider: provider, Grant: grant, Protocol: proto,
		Err: &imapconn.LoginError{Command: "AUTHENTICATE", User: "alice@contoso.com", Status: "NO", Text: "AUTHENTICATE failed."}})
}

// rejectedGrantToken is the error of an IMAP login whose token of the
// grant the server answered with an error challenge, a fresh one too.
func rejectedGrantToken(provider string, grant oauthtoken.Grant) error {
	return fmt.Errorf("opening the destination: %w", &account.TokenRefusedError{Provider: provider, Grant: grant, Protocol: config.IMAP,
		Err: &bearer.RejectedError{Command: "AUTHENTICATE", Mechanism: "XOAUTH2", User: "alice@contoso.com", Status: "401",
			Reply: &imapconn.LoginError{Command: "AUTHENTICATE", User: "alice@contoso.com", Status: "NO", Text: "AUTHENTICATE failed."}}})
}
