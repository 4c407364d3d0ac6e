package main

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/config"
)

// TestConnectionCaps: the caps are per effective host, the smallest that
// any account using the host gives.
func TestConnectionCaps(t *testing.T) {
	tests := []struct {
		name          string
		accounts      string
		wantSrc, want map[string]int
	}{
		{name: "the section's cap",
			accounts: "[[account]]\nsource_user = \"a\"\n",
			wantSrc:  map[string]int{}, want: map[string]int{"imap.new.example:993": 10}},
		{name: "an account on another host has its own cap",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\n[account.destination]\nurl = \"imaps://mx2.new.example\"\nmax_connections = 3\n",
			wantSrc:  map[string]int{}, want: map[string]int{"imap.new.example:993": 10, "mx2.new.example:993": 3}},
		{name: "the smallest cap of one host wins",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\ndestination.max_connections = 4\nsource.max_connections = 1\n",
			wantSrc:  map[string]int{"pop.old.example:995": 1}, want: map[string]int{"imap.new.example:993": 4}},
		{name: "an account that lifts the cap does not lift it for the others",
			accounts: "[[account]]\nsource_user = \"a\"\n[[account]]\nsource_user = \"b\"\ndestination.max_connections = 0\n",
			wantSrc:  map[string]int{}, want: map[string]int{"imap.new.example:993": 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "migrate.toml")
			doc := "[source]\nurl = \"pop3s://pop.old.example\"\nmaster_user = \"m\"\nmaster_password_env = \"M\"\n" +
				"[destination]\nurl = \"imaps://imap.new.example\"\nmax_connections = 10\nmaster_user = \"m\"\nmaster_password_env = \"M\"\n" + tc.accounts
			if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := connectionCaps(cfg)
			if !maps.Equal(got.source, tc.wantSrc) || !maps.Equal(got.dest, tc.want) {
				t.Errorf("connectionCaps = %v, %v; want %v, %v", got.source, got.dest, tc.wantSrc, tc.want)
			}
		})
	}
}

func TestServerSetupCredentials(t *testing.T) {
	tests := []struct {
		name                string
		setup               serverSetup
		wantUser, wantAuthz string
	}{
		{"own password", serverSetup{}, "alice", ""},
		{"master user with SASL PLAIN", serverSetup{masterUser: "admin"}, "admin", "alice"},
		{"explicit sasl", serverSetup{masterUser: "admin", masterLogin: config.MasterLoginSASL}, "admin", "alice"},
		{"Dovecot's separator form", serverSetup{masterUser: "admin", masterLogin: config.MasterLoginSeparator}, "alice*admin", ""},
		{"another separator", serverSetup{masterUser: "admin", masterLogin: config.MasterLoginSeparator, masterSeparator: "%"}, "alice%admin", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup.ep = config.Endpoint{User: "alice"}
			if u, a := tc.setup.credentials(); u != tc.wantUser || a != tc.wantAuthz {
				t.Errorf("credentials() = %q, %q; want %q, %q", u, a, tc.wantUser, tc.wantAuthz)
			}
		})
	}
}
