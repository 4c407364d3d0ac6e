package provider

import (
	"strings"
	"testing"
)

func TestDetectAndLookup(t *testing.T) {
	tests := []struct {
		host string
		want *Provider
	}{
		{"imap.gmail.com", Gmail},
		{"IMAP.GMAIL.COM.", Gmail},
		{"pop.gmail.com", Gmail},
		{"outlook.office365.com", Microsoft365},
		{"imap.example.org", nil},
	}
	for _, tc := range tests {
		if got := Detect(tc.host); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	for _, p := range All {
		if Lookup(p.Name) != p {
			t.Errorf("Lookup(%q) does not find it", p.Name)
		}
	}
	if Lookup("yahoo") != nil {
		t.Error(`Lookup("yahoo") found something`)
	}
	if got := Endpoint(Microsoft365.TokenURL, "contoso.onmicrosoft.com"); got != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" {
		t.Errorf("Endpoint = %q", got)
	}
}

// TestRefusedToken: the mail-side settings to check when a server refuses
// a token the provider issued, per kind of grant and protocol, with no
// placeholder left.
func TestRefusedToken(t *testing.T) {
	tests := []struct {
		p       *Provider
		appOnly bool
		proto   string
		want    []string
	}{
		{Microsoft365, true, "imap", []string{"New-ServicePrincipal", "Add-MailboxPermission", "IMAP is enabled", "-ImapEnabled $true"}},
		{Microsoft365, true, "pop3", []string{"New-ServicePrincipal", "POP is enabled", "-PopEnabled $true"}},
		{Microsoft365, false, "imap", []string{"-ImapEnabled $true", "IMAP.AccessAsUser.All"}},
		{Gmail, true, "imap", []string{"delegation is in place", "IMAP access must be on", "POP and IMAP access"}},
		{Gmail, false, "pop3", []string{"POP access must be on", "https://mail.google.com/"}},
	}
	for _, tc := range tests {
		got := tc.p.RefusedToken(tc.appOnly, tc.proto)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s.RefusedToken(%v, %s) = %q, want it to mention %q", tc.p.Name, tc.appOnly, tc.proto, got, w)
			}
		}
		if strings.ContainsAny(got, "{}") {
			t.Errorf("%s.RefusedToken(%v, %s) = %q: a placeholder is left", tc.p.Name, tc.appOnly, tc.proto, got)
		}
	}
}

// TestLimits: what each provider allows one user, by name or by host; an
// unknown host has no limits.
func TestLimits(t *testing.T) {
	if p := For("", "IMAP.gmail.com."); p == nil || p.MaxConnectionsPerUser != 15 || p.ReadBytesPerDay != 2500e6 || p.WrittenBytesPerDay != 500e6 {
		t.Errorf("gmail limits %+v", p)
	}
	if p := For("microsoft365", "127.0.0.1"); p == nil || p.MaxConnectionsPerUser != 20 || p.ReadBytesPerDay != 0 {
		t.Errorf("microsoft365 limits %+v", p)
	}
	if p := For("", "imap.example.com"); p != nil {
		t.Errorf("unknown host: %+v", p)
	}
}

// TestIdentify: a server is known by its capabilities, its greeting, its
// ID, and only then by its host; a server that says nothing of itself is
// no provider.
func TestIdentify(t *testing.T) {
	tests := []struct {
		name string
		s    Server
		want *Provider
	}{
		{"X-GM-EXT-1", Server{Host: "127.0.0.1", Capabilities: []string{"IMAP4rev1", "x-gm-ext-1"}}, Gmail},
		{"Gimap greeting", Server{Greeting: "Gimap ready for requests from 192.0.2.1 a1mb"}, Gmail},
		{"GImap ID", Server{ID: map[string]string{"name": "GImap", "vendor": "Google, Inc."}}, Gmail},
		{"Exchange greeting", Server{Greeting: "The Microsoft Exchange IMAP4 service is ready. [TQBOADIA]"}, Microsoft365},
		{"Exchange ID", Server{ID: map[string]string{"name": "Microsoft.Exchange.Imap4.Imap4Server"}}, Microsoft365},
		{"host only", Server{Host: "outlook.office365.com", Greeting: "ready"}, Microsoft365},
		{"the server's words win over the host", Server{Host: "imap.gmail.com", Greeting: "Dovecot ready."}, Gmail},
		{"Dovecot", Server{Host: "mail.example.org", Capabilities: []string{"IMAP4rev1", "ID"}, Greeting: "Dovecot (Debian) ready.",
			ID: map[string]string{"name": "Dovecot"}}, nil},
	}
	for _, tc := range tests {
		if got := Identify(tc.s); got != tc.want {
			t.Errorf("%s: Identify = %v, want %v", tc.name, got, tc.want)
		}
	}
	if q := QuirksOf(nil); q.Labels || q.Reserved("Calendar") || q.DailyLimitReached("bandwidth limits") {
		t.Errorf("no provider has quirks: %+v", q)
	}
	if q := QuirksOf(Microsoft365); !q.Reserved("calendar") || q.Reserved("Work") || !q.CaseInsensitiveNames {
		t.Errorf("microsoft365 quirks %+v", q)
	}
	if q := QuirksOf(Gmail); !q.DailyLimitReached("[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)") || q.DailyLimitReached("[OVERQUOTA] Mailbox is full") {
		t.Errorf("gmail's daily limit words %v", q.DailyLimit)
	}
}
