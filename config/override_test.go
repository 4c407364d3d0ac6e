package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// overrideBase is a config with a master user on the source; its accounts
// follow from line 10.
const overrideBase = `[source]
url = "pop3s://pop.old.example"
master_user = "admin"
master_password_env = "SRC_MASTER"
[destination]
url = "imaps://imap.new.example"
max_connections = 10
batch_messages = 40
`

// effective is what an account ends up with, for comparison.
type effective struct {
	srcURL, srcLogin, srcAuthz, srcMasterPW string
	srcAuth                                 Auth
	srcInsecure                             bool
	dstURL, dstLogin, dstAuthz, dstMasterPW string
	dstAuth                                 Auth
	dstMaxConn, dstBatch, dstSessions       int
	dstIdle                                 string
}

func effectiveOf(c *Config, a *Account) effective {
	s, d := c.SourceFor(a), c.DestinationFor(a)
	var e effective
	e.srcURL, e.srcAuth, e.srcInsecure, e.srcMasterPW = s.URL, s.Auth, s.InsecureSkipVerify, s.MasterPassword.String()
	e.srcLogin, e.srcAuthz = s.LoginUser(a.SourceUser)
	e.dstURL, e.dstAuth, e.dstMasterPW = d.URL, d.Auth, d.MasterPassword.String()
	e.dstLogin, e.dstAuthz = d.LoginUser(a.DestUser)
	e.dstMaxConn, e.dstBatch, e.dstSessions, e.dstIdle = d.MaxConnections, d.BatchMessages, d.Sessions, d.IdleTimeout.String()
	return e
}

// inherited is what an account without overrides gets from overrideBase.
var inherited = effective{
	srcURL: "pop3s://pop.old.example", srcLogin: "admin", srcAuthz: "u", srcMasterPW: "env SRC_MASTER",
	dstURL: "imaps://imap.new.example", dstLogin: "u", dstMasterPW: "none",
	dstMaxConn: 10, dstBatch: 40, dstSessions: 2, dstIdle: "5m0s",
}

func with(f func(*effective)) effective {
	e := inherited
	f(&e)
	return e
}

func TestLoadOverrides(t *testing.T) {
	tests := []struct {
		name    string
		account string // TOML of [[account]] source_user = "u" and its tables
		csv     string // an accounts file whose second row is account "u"
		want    effective
	}{
		{name: "no overrides inherit the sections",
			account: "[[account]]\nsource_user = \"u\"\ndest_password_env = \"P\"\n", want: inherited},
		{name: "OAuth2 on the source drops the inherited master user",
			account: "[[account]]\nsource_user = \"u\"\nsource_password_file = \"u.token\"\ndest_password_env = \"P\"\n[account.source]\nauth = \"xoauth2\"\n",
			want:    with(func(e *effective) { e.srcAuth, e.srcLogin, e.srcAuthz, e.srcMasterPW = AuthXOAuth2, "u", "", "none" })},
		{name: "master_user empty turns the master login off",
			account: "[[account]]\nsource_user = \"u\"\nsource_password_env = \"S\"\ndest_password_env = \"P\"\n[account.source]\nmaster_user = \"\"\n",
			want:    with(func(e *effective) { e.srcLogin, e.srcAuthz, e.srcMasterPW = "u", "", "none" })},
		{name: "separator form with the inherited master password",
			account: "[[account]]\nsource_user = \"u\"\ndest_password_env = \"P\"\n[account.source]\nmaster_login = \"separator\"\nmaster_separator = \"%\"\n",
			want:    with(func(e *effective) { e.srcLogin, e.srcAuthz = "u%admin", "" })},
		{name: "dotted keys in the account table",
			account: "[[account]]\nsource_user = \"u\"\ndestination.master_user = \"root\"\ndestination.master_password_command = \"pass root\"\ndestination.sessions = 1\n",
			want:    with(func(e *effective) { e.dstLogin, e.dstAuthz, e.dstMasterPW, e.dstSessions = "root", "u", "command", 1 })},
		{name: "host, TLS, limits and batches of the destination",
			account: "[[account]]\nsource_user = \"u\"\ndest_password_env = \"P\"\n[account.destination]\nurl = \"imap://mx2.new.example:1143\"\nmax_connections = 3\nbatch_messages = 5\nidle_timeout = \"90s\"\n",
			want: with(func(e *effective) {
				e.dstURL, e.dstMaxConn, e.dstBatch, e.dstIdle = "imap://mx2.new.example:1143", 3, 5, "1m30s"
			})},
		{name: "a boolean of one account",
			account: "[[account]]\nsource_user = \"u\"\ndest_password_env = \"P\"\n[account.source]\ninsecure_skip_verify = true\n",
			want:    with(func(e *effective) { e.srcInsecure = true })},
		{name: "CSV override columns, quoted fields, blanks inherit",
			csv: "source_user,dest_password,source_auth,source_password_file,dest_master_user,dest_master_password_env,dest_max_connections,dest_url\n" +
				"other,x,,,,,,\n" +
				"u,,\"oauthbearer\",\"tok,en\",\"ad,min\",DST_MASTER,\" 4 \",\"imaps://mx3.new.example:10993\"\n",
			want: with(func(e *effective) {
				e.srcAuth, e.srcLogin, e.srcAuthz, e.srcMasterPW = AuthOAuthBearer, "u", "", "none"
				e.dstLogin, e.dstAuthz, e.dstMaxConn, e.dstURL = "ad,min", "u", 4, "imaps://mx3.new.example:10993"
				e.dstMasterPW = "env DST_MASTER"
			})},
		{name: "CSV master user with its own inline password and the separator form",
			csv: "source_user,dest_password,source_master_user,source_master_password,source_master_login\n" +
				"other,x,,,\n" +
				"u,y,boss,\"m,\"\"pw\",separator\n",
			want: with(func(e *effective) { e.srcLogin, e.srcAuthz, e.srcMasterPW = "u*boss", "", "inline" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			doc := overrideBase + tc.account
			if tc.csv != "" {
				writeFile(t, dir, "users.csv", tc.csv, 0o600)
				doc = "accounts_file = \"users.csv\"\n" + doc
			}
			path := writeFile(t, dir, "migrate.toml", doc, 0o600)
			c, _, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var a *Account
			for i := range c.Accounts {
				if c.Accounts[i].Name == "u" {
					a = &c.Accounts[i]
				}
			}
			if a == nil {
				t.Fatal("no account u")
			}
			if got := effectiveOf(c, a); got != tc.want {
				t.Errorf("account u =\n%+v\nwant\n%+v", got, tc.want)
			}
			// The endpoints (and so the ledger key and the per-host caps)
			// use the effective servers.
			for _, side := range []struct {
				endpoint func(*Account) (Endpoint, error)
				url      string
			}{{c.SourceEndpoint, tc.want.srcURL}, {c.DestEndpoint, tc.want.dstURL}} {
				ep, err := side.endpoint(a)
				want, _ := ParseURL(side.url)
				if err != nil || ep.Addr() != want.Addr() {
					t.Errorf("endpoint %v (%v), want the host %s", ep, err, want.Addr())
				}
			}
			// The sections themselves never change.
			if c.Source.MasterUser != "admin" || c.Destination.MaxConnections != 10 || c.Destination.BatchMessages != 40 {
				t.Errorf("an override changed the sections: %+v %+v", c.Source, c.Destination)
			}
		})
	}
}

func TestLoadOverrideErrors(t *testing.T) {
	const acct = "[[account]]\nsource_user = \"u\"\ndest_password_env = \"P\"\n" // lines 9-11
	tests := []struct {
		name     string
		account  string
		csv      string // with csv, the error is in users.csv
		wantLine int
		wantKey  string
		wantMsg  string
		noLeak   string
	}{
		{name: "unknown key in [account.source]", account: acct + "[account.source]\nauht = \"plain\"\n",
			wantLine: 13, wantKey: "account.source.auht", wantMsg: `unknown key "account.source.auht" (did you mean "auth"?)`},
		{name: "unknown dotted override key", account: acct + "destination.max_connexions = 3\n",
			wantLine: 12, wantKey: "account.destination.max_connexions", wantMsg: `(did you mean "max_connections"?)`},
		{name: "folder is dest_folder in an account", account: acct + "[account.destination]\nfolder = \"X\"\n",
			wantLine: 13, wantKey: "account.destination.folder", wantMsg: `unknown key "account.destination.folder"`},
		{name: "wrong type", account: acct + "[account.destination]\nmax_connections = \"ten\"\n",
			wantLine: 13, wantKey: "account.destination.max_connections", wantMsg: "account.destination.max_connections must be an integer, got a string"},
		{name: "override table of the wrong type", account: acct + "source = \"pop3s://other\"\n",
			wantLine: 12, wantKey: "account.source", wantMsg: "account.source must be a table, got a string"},
		{name: "bad value", account: acct + "[account.source]\nauth = \"kerberos\"\n",
			wantLine: 13, wantKey: "account.source.auth", wantMsg: `account "u": source.auth must be "login"`},
		{name: "bad master_login", account: acct + "[account.destination]\nmaster_user = \"m\"\nmaster_password_env = \"M\"\nmaster_login = \"star\"\n",
			wantLine: 15, wantKey: "account.destination.master_login", wantMsg: `account "u": destination.master_login must be "sasl" or "separator", got "star"`},
		{name: "explicit master user with OAuth2", account: acct + "[account.source]\nauth = \"xoauth2\"\nmaster_user = \"boss\"\n",
			wantLine: 14, wantKey: "account.source.master_user", wantMsg: `account "u": source.master_user cannot be combined with an OAuth2 login`},
		{name: "master user without password", account: acct + "[account.destination]\nmaster_user = \"boss\"\n",
			wantLine: 13, wantKey: "account.destination.master_user", wantMsg: "destination.master_user needs destination.master_password_env, _file or _command"},
		{name: "sessions out of range", account: acct + "[account.destination]\nsessions = 9\n",
			wantLine: 13, wantKey: "account.destination.sessions", wantMsg: `account "u": destination.sessions must be from 1 to 8, got 9`},
		{name: "plain-text URL without allow_plaintext", account: acct + "[account.source]\nurl = \"pop3://h?tls=none\"\n",
			wantLine: 13, wantKey: "account.source.url", wantMsg: "set source.allow_plaintext = true"},

		{name: "CSV malformed integer", csv: "source_user,dest_password,source_max_connections\na,x,\nb,y,lots\n",
			wantLine: 3, wantKey: "source_max_connections", wantMsg: `users.csv:3: source_max_connections must be an integer, got "lots"`},
		{name: "CSV malformed boolean in a quoted field", csv: "source_user,dest_password,dest_insecure_skip_verify\na,x,\"yes, please\"\n",
			wantLine: 2, wantKey: "dest_insecure_skip_verify", wantMsg: `dest_insecure_skip_verify must be true or false, got "yes, please"`},
		{name: "CSV malformed duration", csv: "source_user,dest_password,source_idle_timeout\na,x,\nb,y,\nc,z,5 minutes\n",
			wantLine: 4, wantKey: "source_idle_timeout", wantMsg: "source_idle_timeout: "},
		{name: "CSV bad auth value", csv: "source_user,dest_password,dest_auth\na,x,\nb,y,kerberos\n",
			wantLine: 3, wantKey: "dest_auth", wantMsg: `account "b": dest_auth must be "login"`},
		{name: "CSV unknown override column", csv: "source_user,dest_password,source_auht\na,x,plain\n",
			wantLine: 1, wantKey: "source_auht", wantMsg: `unknown column "source_auht" (did you mean "source_auth"?)`},
		{name: "CSV conflicting master passwords do not leak", csv: "source_user,dest_password,dest_master_user,dest_master_password,dest_master_password_env\na,x,m,Hunter2-secret,M\n",
			wantLine: 2, wantKey: "dest_master_password", wantMsg: "conflicting secrets: dest_master_password and dest_master_password_env", noLeak: "Hunter2-secret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			doc := overrideBase + tc.account
			file := filepath.Join(dir, "migrate.toml")
			if tc.csv != "" {
				file = writeFile(t, dir, "users.csv", tc.csv, 0o600)
				doc = "accounts_file = \"users.csv\"\n" + overrideBase
			}
			path := writeFile(t, dir, "migrate.toml", doc, 0o600)
			_, _, err := Load(path)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want a *ConfigError", err)
			}
			if ce.File != file || ce.Line != tc.wantLine || ce.Key != tc.wantKey {
				t.Errorf("ConfigError at %s:%d key %q, want %s:%d key %q (%v)", ce.File, ce.Line, ce.Key, file, tc.wantLine, tc.wantKey, err)
			}
			msg := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("Load error = %q, want it to contain %q", msg, tc.wantMsg)
			}
			if !strings.HasPrefix(ce.Error(), fmt.Sprintf("%s:%d", file, tc.wantLine)) {
				t.Errorf("Load error = %q does not start with %s:%d", ce.Error(), file, tc.wantLine)
			}
			if tc.noLeak != "" && strings.Contains(err.Error(), tc.noLeak) {
				t.Errorf("Load error = %q leaks %q", err, tc.noLeak)
			}
		})
	}
}

// BenchmarkLoadAccountsFileOverrides loads 5,000 CSV accounts of which
// every other one overrides server settings (auth, master user, host, cap).
func BenchmarkLoadAccountsFileOverrides(b *testing.B) {
	dir := b.TempDir()
	var sb strings.Builder
	sb.WriteString("source_user,source_password,dest_user,dest_password,source_auth,source_url,dest_master_user,dest_master_password_env,dest_max_connections,dest_batch_bytes\n")
	for i := range 5000 {
		if i%2 == 0 {
			fmt.Fprintf(&sb, "user%d,\"p,%d\",user%d@new.example,\"q\"\"%d\",,,,,,\n", i, i, i, i)
			continue
		}
		fmt.Fprintf(&sb, "user%d,\"tok,%d\",user%d@new.example,,xoauth2,pop3s://pop%d.old.example,admin,DST_MASTER,%d,\"%dMiB\"\n", i, i, i, i%7, 1+i%9, 1+i%16)
	}
	csvPath := filepath.Join(dir, "users.csv")
	path := filepath.Join(dir, "migrate.toml")
	writeBenchFile(b, csvPath, sb.String())
	writeBenchFile(b, path, "accounts_file = \"users.csv\"\n[source]\nurl = \"pop3s://pop.old.example\"\n[destination]\nurl = \"imaps://imap.new.example\"\n")
	for b.Loop() {
		c, _, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		if a := &c.Accounts[4999]; len(c.Accounts) != 5000 || c.SourceFor(a).URL != "pop3s://pop1.old.example" || c.DestinationFor(a).MaxConnections != 1+4999%9 {
			b.Fatalf("Load = %d accounts, last %+v", len(c.Accounts), c.Accounts[4999])
		}
	}
}

func writeBenchFile(b *testing.B, path, content string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		b.Fatal(err)
	}
}

// TestOverrideColumnsDocumented: every override column of an accounts file
// is named in the configuration reference and in migrate.toml.example
// (TestDocsConfigKeys checks the reference's column table both ways).
func TestOverrideColumnsDocumented(t *testing.T) {
	for _, doc := range []string{"../docs/configuration.md", "../migrate.toml.example"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, col := range overrideColumns() {
			// Both documents list the source_ columns and say "the same
			// with dest_"; the destination-only ones are listed as such.
			name := col
			if rest, ok := strings.CutPrefix(col, "dest_"); ok && strings.Contains(text, "source_"+rest) {
				name = "source_" + rest
			}
			if !strings.Contains(text, name) {
				t.Errorf("%s does not document the accounts file column %s", doc, col)
			}
		}
	}
}
