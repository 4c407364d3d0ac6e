package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/oauthtoken"
)

// TestLoadOAuth2 loads oauth2 tables and provider presets and checks what
// each account's sides end up with.
func TestLoadOAuth2(t *testing.T) {
	type side struct {
		url, provider string
		auth          Auth
		grant         oauthtoken.Grant
		tokenURL      string
		deviceURL     string
		scope         string
		subject       string // SubjectFor the account's user
		keyFile       string // relative to the config's directory
		tokenFile     string
	}
	tests := []struct {
		name    string
		doc     string
		csv     string
		account string // which account to look at
		src     *side
		dst     side
	}{
		{name: "gmail service account",
			doc: `[source]
url = "pop3s://pop.old.example"
[destination]
provider = "gmail"
oauth2 = { grant = "service-account", key_file = "sa.json" }
[[account]]
source_user = "alice@old.example"
source_password_env = "P"
dest_user = "alice@example.com"
`,
			account: "alice@old.example",
			dst: side{url: "imaps://imap.gmail.com:993", provider: "gmail", auth: AuthXOAuth2, grant: oauthtoken.ServiceAccount,
				scope: "https://mail.google.com/", subject: "alice@example.com", keyFile: "sa.json"}},
		{name: "microsoft365 client credentials, provider detected from the URL, IMAP source",
			doc: `[source]
url = "imaps://outlook.office365.com"
[source.oauth2]
grant = "client-credentials"
tenant = "contoso.onmicrosoft.com"
client_id = "app-id"
client_secret_env = "M365_SECRET"
[destination]
url = "imaps://imap.new.example"
[[account]]
source_user = "bob@contoso.com"
dest_password_env = "P"
`,
			account: "bob@contoso.com",
			src: &side{url: "imaps://outlook.office365.com", provider: "microsoft365", auth: AuthXOAuth2, grant: oauthtoken.ClientCredentials,
				tokenURL: "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
				scope:    "https://outlook.office365.com/.default", subject: "bob@contoso.com"},
			dst: side{url: "imaps://imap.new.example"}},
		{name: "microsoft365 device grant for a POP3 source, per-account token file from CSV",
			doc: `accounts_file = "users.csv"
[source]
provider = "microsoft365"
url = "pop3s://outlook.office365.com"
oauth2 = { grant = "device", client_id = "public-app" }
[destination]
url = "imaps://imap.new.example"
`,
			csv:     "source_user,dest_password_env,source_oauth2_token_file\ncarol@contoso.com,P,tokens/carol.token\n",
			account: "carol@contoso.com",
			src: &side{url: "pop3s://outlook.office365.com", provider: "microsoft365", auth: AuthXOAuth2, grant: oauthtoken.Device,
				tokenURL:  "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
				deviceURL: "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode",
				scope:     "https://outlook.office365.com/POP.AccessAsUser.All offline_access", subject: "carol@contoso.com",
				tokenFile: "tokens/carol.token"},
			dst: side{url: "imaps://imap.new.example"}},
		{name: "account override of the subject keeps the section's grant",
			doc: `[source]
url = "pop3s://pop.old.example"
[destination]
url = "imaps://imap.gmail.com"
oauth2 = { grant = "service-account", key_file = "sa.json" }
[[account]]
source_user = "dave"
source_password_env = "P"
destination.oauth2.subject = "dave@example.com"
`,
			account: "dave",
			dst: side{url: "imaps://imap.gmail.com", provider: "gmail", auth: AuthXOAuth2, grant: oauthtoken.ServiceAccount,
				scope: "https://mail.google.com/", subject: "dave@example.com", keyFile: "sa.json"}},
		{name: "refresh token against any endpoint, oauthbearer from the URL",
			doc: `[source]
url = "imaps://mail.example.org?auth=oauthbearer"
oauth2 = { grant = "refresh-token", token_url = "https://sso.example.org/token", client_id = "c", token_file = "t/%s.token", scope = "mail" }
[destination]
url = "imaps://imap.new.example"
[[account]]
source_user = "erin"
dest_password_env = "P"
`,
			account: "erin",
			src: &side{url: "imaps://mail.example.org?auth=oauthbearer", grant: oauthtoken.RefreshToken, tokenURL: "https://sso.example.org/token",
				scope: "mail", subject: "erin", tokenFile: "t/%s.token"},
			dst: side{url: "imaps://imap.new.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.csv != "" {
				writeFile(t, dir, "users.csv", tc.csv, 0o600)
			}
			c, _, err := Load(writeFile(t, dir, "migrate.toml", tc.doc, 0o600))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var a *Account
			for i := range c.Accounts {
				if c.Accounts[i].Name == tc.account {
					a = &c.Accounts[i]
				}
			}
			check := func(what string, s *Server, user string, want side) {
				t.Helper()
				got := side{url: s.URL, provider: s.Provider, auth: s.Auth}
				if o := s.OAuth2; o != nil {
					got.grant, got.tokenURL, got.deviceURL, got.scope, got.subject = o.Grant, o.TokenURL, o.DeviceAuthURL, o.Scope, o.SubjectFor(user)
					got.keyFile, _ = filepath.Rel(dir, o.KeyFile)
					got.tokenFile, _ = filepath.Rel(dir, o.TokenFile)
					if o.KeyFile == "" {
						got.keyFile = ""
					}
					if o.TokenFile == "" {
						got.tokenFile = ""
					}
				}
				if got != want {
					t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
				}
			}
			if tc.src != nil {
				check("source", &c.SourceFor(a).Server, a.SourceUser, *tc.src)
			}
			check("destination", &c.DestinationFor(a).Server, a.DestUser, tc.dst)
		})
	}
}

func TestLoadOAuth2Errors(t *testing.T) {
	const base = "[source]\nurl = \"pop3s://pop.old.example\"\n[destination]\n" // lines 1-3
	const acct = "[[account]]\nsource_user = \"u\"\nsource_password_env = \"P\"\n"
	tests := []struct {
		name     string
		dest     string // from line 4
		account  string
		wantLine int
		wantKey  string
		wantMsg  string
	}{
		{"unknown provider", "provider = \"yahoo\"\n", acct, 4, "destination.provider", `destination.provider must be "gmail" or "microsoft365", got "yahoo"`},
		{"no grant", "provider = \"gmail\"\noauth2 = { key_file = \"k.json\" }\n", acct, 5, "destination.oauth2.grant", `destination.oauth2.grant is missing: "service-account", "client-credentials", "device" or "refresh-token"`},
		{"unknown grant", "provider = \"gmail\"\n[destination.oauth2]\ngrant = \"password\"\n", acct, 6, "destination.oauth2.grant", `destination.oauth2.grant = "password": want "service-account"`},
		{"key of another grant", "provider = \"gmail\"\n[destination.oauth2]\ngrant = \"service-account\"\nkey_file = \"k.json\"\nclient_id = \"x\"\n", acct, 8, "destination.oauth2.client_id", `destination.oauth2.client_id is not used by grant "service-account"`},
		{"service account without key", "provider = \"gmail\"\noauth2 = { grant = \"service-account\" }\n", acct, 5, "destination.oauth2.key_file", `grant "service-account" needs destination.oauth2.key_file`},
		{"client credentials without tenant", "provider = \"microsoft365\"\n[destination.oauth2]\ngrant = \"client-credentials\"\nclient_id = \"a\"\nclient_secret_env = \"S\"\n", acct, 5, "destination.oauth2.token_url",
			`grant "client-credentials" needs destination.oauth2.token_url (or destination.oauth2.tenant: provider "microsoft365" takes its endpoints from the tenant)`},
		{"client credentials without secret", "provider = \"microsoft365\"\noauth2 = { grant = \"client-credentials\", client_id = \"a\", tenant = \"t\" }\n", acct, 5, "destination.oauth2.client_secret_env",
			`grant "client-credentials" needs destination.oauth2.client_secret_env, _file or _command, or destination.oauth2.certificate_file`},
		{"two secrets", "provider = \"microsoft365\"\noauth2 = { grant = \"client-credentials\", client_id = \"a\", tenant = \"t\", client_secret_env = \"S\", client_secret_file = \"s\" }\n", acct, 5, "destination.oauth2.client_secret",
			"conflicting secrets: destination.oauth2.client_secret_env and destination.oauth2.client_secret_file"},
		{"device flow at Google", "provider = \"gmail\"\noauth2 = { grant = \"device\", client_id = \"a\", token_file = \"t\" }\n", acct, 5, "destination.oauth2.grant",
			"Google's device flow does not allow the Gmail scope"},
		{"http token endpoint", "url = \"imaps://imap.new.example\"\noauth2 = { grant = \"refresh-token\", client_id = \"a\", token_file = \"t\", token_url = \"http://sso.example.org/token\" }\n", acct, 5, "destination.oauth2.token_url",
			"http:// is only allowed to a loopback address"},
		{"oauth2 with auth = plain", "url = \"imaps://imap.gmail.com\"\nauth = \"plain\"\noauth2 = { grant = \"service-account\", key_file = \"k\" }\n", acct, 5, "destination.auth",
			`destination.auth = "plain" cannot carry an OAuth2 token`},
		{"oauth2 and a password", "provider = \"gmail\"\noauth2 = { grant = \"service-account\", key_file = \"k\" }\n", acct + "dest_password_env = \"D\"\n", 9, "account.dest_password",
			`account "u": dest_password_env and the destination's oauth2 login exclude each other`},
		{"device grant without a token file", "provider = \"microsoft365\"\noauth2 = { grant = \"device\", client_id = \"a\" }\n", acct, 6, "destination.oauth2.token_file",
			`account "u": grant "device" needs destination.oauth2.token_file`},
		{"oauth2 and a master user", "provider = \"gmail\"\nmaster_user = \"m\"\nmaster_password_env = \"M\"\noauth2 = { grant = \"service-account\", key_file = \"k\" }\n", acct, 5, "destination.master_user",
			"cannot be combined with an OAuth2 login"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "migrate.toml", base+tc.dest+tc.account, 0o600)
			_, _, err := Load(path)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want a *ConfigError", err)
			}
			if ce.Line != tc.wantLine || ce.Key != tc.wantKey || !strings.Contains(ce.Msg, tc.wantMsg) {
				t.Errorf("Load error at line %d key %q: %q\nwant line %d key %q containing %q", ce.Line, ce.Key, ce.Msg, tc.wantLine, tc.wantKey, tc.wantMsg)
			}
		})
	}
}

func TestOAuth2CSVColumnErrorsNameTheColumn(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "users.csv", "source_user,source_password_env,dest_oauth2_client_id\na,P,x\n", 0o600)
	path := writeFile(t, dir, "migrate.toml", `accounts_file = "users.csv"
[source]
url = "pop3s://pop.old.example"
[destination]
provider = "gmail"
oauth2 = { grant = "service-account", key_file = "k.json" }
`, 0o600)
	_, _, err := Load(path)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != "dest_oauth2_client_id" || ce.Line != 2 || !strings.Contains(ce.Msg, `account "a": dest_oauth2_client_id is not used by grant "service-account"`) {
		t.Fatalf("Load = %v; want users.csv:2 naming dest_oauth2_client_id", err)
	}
	o := &OAuth2{TokenFile: "/t/{user}.token"}
	if got := o.TokenFileFor("a@b"); got != "/t/a@b.token" {
		t.Errorf("TokenFileFor = %q", got)
	}
}
