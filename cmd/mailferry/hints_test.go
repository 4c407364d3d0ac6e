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

	"github.com/mailferry/mailferry/internal/imapconn"
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
		// Every IMAP connection's refused login, the IMAP source's included.
		{"wrong IMAP password", fmt.Errorf("connecting to the source: %w", &imapconn.LoginError{Command: "LOGIN", User: "alice", Status: "NO", Code: "AUTHENTICATIONFAILED"}),
			[]string{"password"}},
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
	busy := &imapconn.LoginError{Command: "LOGIN", Status: "NO", Text: "Request is throttled. Suggested Backoff Time: 500 milliseconds"}
	if got := hintFor(busy); strings.Contains(got, "password") {
		t.Errorf("hintFor(%v) = %q: a throttled login is no wrong password", busy, got)
	}
}
