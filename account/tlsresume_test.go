package account

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/config"
	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/pipeline"
)

// TestTLSSessionsResume: within a run a connection to a server resumes
// the TLS session an earlier connection to the same server got, whichever
// account opened it and whichever protocol path (implicit TLS, STLS,
// STARTTLS, the destination's control and appender connections); the first
// connection to each server does a full handshake. The source
// and the destination are both on 127.0.0.1: with one cache for both
// (crypto/tls keys it by ServerName) the destination's ticket would
// replace the source's and bob's source session could not resume.
func TestTLSSessionsResume(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"alice": "pa", "bob": "pb"}
	// Dovecot's pop3-login runs one process per connection by default
	// (service_count = 1, "high-security mode"), each with a ticket key of
	// its own, so no POP3 session could resume; imap-login in the harness
	// serves many connections per process, as pop3-login does here.
	src := dovecot.Start(t, dovecot.Options{Name: "mf-trsrc", CA: ca, Users: users,
		ExtraConfig: "service pop3-login {\n  service_count = 0\n}\n"})
	dst := dovecot.Start(t, dovecot.Options{Name: "mf-trdst", CA: ca, Users: users})
	tests := []struct {
		name              string
		source, dest      string
		srcAddr, destAddr string
	}{
		{"imaps to imaps", "imaps://" + src.IMAPSAddr(), "imaps://" + dst.IMAPSAddr(), src.IMAPSAddr(), dst.IMAPSAddr()},
		{"IMAP STARTTLS to IMAP STARTTLS", "imap://" + src.IMAPAddr(), "imap://" + dst.IMAPAddr(), src.IMAPAddr(), dst.IMAPAddr()},
		{"pop3s to imaps", "pop3s://" + src.POP3SAddr(), "imaps://" + dst.IMAPSAddr(), src.POP3SAddr(), dst.IMAPSAddr()},
		{"POP3 STLS to imaps", "pop3://" + src.POP3Addr(), "imaps://" + dst.IMAPSAddr(), src.POP3Addr(), dst.IMAPSAddr()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadConfig(t, fmt.Sprintf(`[source]
url = %q
tls_ca = %q
[destination]
url = %q
tls_ca = %q
[[account]]
source_user = "alice"
source_password = "pa"
dest_password = "pa"
[[account]]
source_user = "bob"
source_password = "pb"
dest_password = "pb"
`, tc.source, src.CAFile(), tc.dest, dst.CAFile()))
			var logs logBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			accs, err := NewSet(Options{Logger: log}).FromConfig(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			// alice: the first connection to each server, a full
			// handshake; then bob's, which resume.
			for _, a := range accs {
				s, err := a.OpenSource(ctx)
				if err != nil {
					t.Fatalf("opening %s's source: %v", a.Name, err)
				}
				s.Close(false)
				d, err := a.OpenDestination(ctx)
				if err != nil {
					t.Fatalf("opening %s's destination: %v", a.Name, err)
				}
				// The appender connection opens at the first APPEND.
				msg := "Subject: resumed\r\n\r\nhello\r\n"
				res, err := d.Append(ctx, "INBOX", []pipeline.OutgoingMessage{{Body: strings.NewReader(msg), Size: int64(len(msg))}})
				if err != nil || len(res) != 1 || res[0].Err != nil {
					t.Fatalf("appending for %s: %v %+v", a.Name, err, res)
				}
				if err := d.Close(); err != nil {
					t.Fatalf("closing %s's destination: %v", a.Name, err)
				}
			}
			resumed := func(account, server string) int {
				n := 0
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, `msg="TLS session resumed"`) &&
						strings.Contains(line, "account="+account+" ") && strings.Contains(line, "server="+server+" ") {
						n++
					}
				}
				return n
			}
			for _, want := range []struct {
				account, server string
				n               int
			}{
				{"alice", tc.srcAddr, 0},  // the first connection to the source
				{"alice", tc.destAddr, 1}, // the appender, after the control connection
				{"bob", tc.srcAddr, 1},
				{"bob", tc.destAddr, 2}, // control and appender
			} {
				if n := resumed(want.account, want.server); n != want.n {
					t.Errorf("%s's connections to %s resumed %d TLS sessions, want %d; log:\n%s", want.account, want.server, n, want.n, logs.String())
				}
			}
		})
	}
}

// TestSessionCachePerEndpoint: connections share a TLS session cache only
// when they reach the same server (address and ServerName) verified with
// the same roots; a connection that skips verification never shares one
// with a verified connection; a server without TLS gets none.
func TestSessionCachePerEndpoint(t *testing.T) {
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caA, caB := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	for _, f := range []string{caA, caB} {
		if err := os.WriteFile(f, ca.CertPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type conn struct {
		url      string
		ca       string
		insecure bool
	}
	tests := []struct {
		name string
		a, b conn
		same bool
	}{
		{"two accounts on one server", conn{"imaps://127.0.0.1:993", caA, false}, conn{"imaps://127.0.0.1:993", caA, false}, true},
		{"IMAP STARTTLS, two accounts", conn{"imap://mail.example.org", "", false}, conn{"imap://mail.example.org", "", false}, true},
		{"source and destination on one host", conn{"imaps://127.0.0.1:10993", caA, false}, conn{"imaps://127.0.0.1:20993", caA, false}, false},
		{"POP3 and IMAP on one host", conn{"pop3s://127.0.0.1", caA, false}, conn{"imaps://127.0.0.1", caA, false}, false},
		{"one address, two names", conn{"imaps://localhost:993", caA, false}, conn{"imaps://127.0.0.1:993", caA, false}, false},
		{"verified and insecure", conn{"imaps://127.0.0.1:993", caA, false}, conn{"imaps://127.0.0.1:993", caA, true}, false},
		{"two CA files", conn{"imaps://127.0.0.1:993", caA, false}, conn{"imaps://127.0.0.1:993", caB, false}, false},
		{"system roots and a CA file", conn{"imaps://127.0.0.1:993", "", false}, conn{"imaps://127.0.0.1:993", caA, false}, false},
	}
	discard := slog.New(slog.DiscardHandler)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSet(Options{})
			var caches [2]tls.ClientSessionCache
			for i, c := range []conn{tc.a, tc.b} {
				ep, err := config.ParseURL(c.url)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := s.tlsConfig(ep, c.ca, c.insecure, discard)
				if err != nil {
					t.Fatalf("tlsConfig(%s): %v", c.url, err)
				}
				if cfg.ClientSessionCache == nil {
					t.Fatalf("tlsConfig(%s) has no session cache", c.url)
				}
				if cfg.InsecureSkipVerify != c.insecure {
					t.Errorf("tlsConfig(%s).InsecureSkipVerify = %v, want %v", c.url, cfg.InsecureSkipVerify, c.insecure)
				}
				caches[i] = cfg.ClientSessionCache
			}
			if same := caches[0] == caches[1]; same != tc.same {
				t.Errorf("%+v and %+v share a session cache: %v, want %v", tc.a, tc.b, same, tc.same)
			}
		})
	}
	ep, err := config.ParseURL("imap://127.0.0.1:143?tls=none")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := NewSet(Options{}).tlsConfig(ep, caA, false, discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientSessionCache != nil {
		t.Error("a server reached without TLS got a session cache")
	}
}
