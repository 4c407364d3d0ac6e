package tlsmode

import (
	"crypto/tls"
	"testing"
)

func TestClientConfig(t *testing.T) {
	tests := []struct {
		name       string
		base       *tls.Config
		addr       string
		wantServer string
		wantMin    uint16
	}{
		{"nil base takes the host", nil, "mail.example.org:993", "mail.example.org", tls.VersionTLS12},
		{"IPv6 host", nil, "[::1]:995", "::1", tls.VersionTLS12},
		{"a ServerName set by the user stays", &tls.Config{ServerName: "other"}, "127.0.0.1:993", "other", tls.VersionTLS12},
		{"a higher minimum stays", &tls.Config{MinVersion: tls.VersionTLS13}, "h:1", "h", tls.VersionTLS13},
		{"an address without a port names no server", nil, "h", "", tls.VersionTLS12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before tls.Config
			if tc.base != nil {
				before = *tc.base.Clone()
			}
			got := ClientConfig(tc.base, tc.addr)
			if got.ServerName != tc.wantServer || got.MinVersion != tc.wantMin {
				t.Errorf("ServerName %q, MinVersion %x; want %q, %x", got.ServerName, got.MinVersion, tc.wantServer, tc.wantMin)
			}
			if tc.base != nil && (tc.base.ServerName != before.ServerName || tc.base.MinVersion != before.MinVersion) {
				t.Error("the base config was changed; it must be cloned")
			}
		})
	}
	if s := Mode(9).String(); s != "TLSMode(9)" {
		t.Errorf("Mode(9) = %q", s)
	}
}
