package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/secret"
)

// writeConfig writes doc as migrate.toml (mode 0600) in a new temp dir.
func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "migrate.toml", doc, 0o600)
}

// minimal is a valid config; cases append to it, so their lines start at 9.
const minimal = `[source]
url = "pop3s://pop.old.example"
[destination]
url = "imaps://imap.new.example"
[[account]]
source_user = "alice"
source_password_env = "ALICE_PW"
dest_password_env = "ALICE_DEST_PW"
`

type loadErrorCase struct {
	name     string
	doc      string
	wantLine int
	wantCol  int    // 0: not checked
	wantKey  string // "": not checked
	wantMsg  string // substring of Error()
	wantErr  error  // errors.Is, when set
	noLeak   string // must not appear in Error()
}

func TestLoadErrors(t *testing.T) {
	tests := []loadErrorCase{
		{name: "unknown top-level key", doc: "wrokers = 3\n" + minimal,
			wantLine: 1, wantCol: 1, wantKey: "wrokers", wantMsg: `unknown key "wrokers" (did you mean "workers"?)`},
		{name: "unknown key in section", doc: minimal + "[policy]\nflags = \"seen\"\n\n  pasword = \"x\"\n",
			wantLine: 12, wantCol: 3, wantKey: "policy.pasword", wantMsg: `migrate.toml:12:3: unknown key "policy.pasword"`},
		{name: "unknown key in second account", doc: minimal + "[[account]]\nsource_user = \"bob\"\nsource_pasword = \"x\"\n",
			wantLine: 11, wantKey: "account.source_pasword", wantMsg: `(did you mean "source_password"?)`},
		{name: "unknown dotted key", doc: minimal + "[source.tls]\nca = \"x\"\n",
			wantLine: 9, wantKey: "source.tls", wantMsg: `unknown key "source.tls"`},
		{name: "unknown key in inline table falls back to its parent", doc: "workers = 2\npolicy = { flags = \"seen\", flagz = 1 }\n" + minimal,
			wantLine: 2, wantKey: "policy.flagz", wantMsg: `unknown key "policy.flagz"`},
		{name: "case mismatch top level", doc: "WORKERS = 3\n" + minimal,
			wantLine: 1, wantKey: "WORKERS", wantMsg: `keys are case-sensitive: did you mean "workers"?`},
		{name: "case mismatch in section", doc: "[Source]\nurl = \"pop3s://h\"\n" + strings.Replace(minimal, "[source]\nurl = \"pop3s://pop.old.example\"\n", "", 1),
			wantLine: 1, wantKey: "Source", wantMsg: `did you mean "source"?`},
		{name: "wrong type integer", doc: "workers = \"four\"\n" + minimal,
			wantLine: 1, wantCol: 11, wantKey: "workers", wantMsg: "workers must be an integer, got a string"},
		{name: "wrong type string", doc: minimal + "[policy]\nflags = true\n",
			wantLine: 10, wantCol: 9, wantKey: "policy.flags", wantMsg: "policy.flags must be a string, got a boolean"},
		{name: "wrong type table", doc: "source = \"pop3s://h\"\n" + strings.Replace(minimal, "[source]\nurl = \"pop3s://pop.old.example\"\n", "", 1),
			wantLine: 1, wantKey: "source", wantMsg: "source must be a table, got a string"},
		{name: "wrong type float for integer", doc: "workers = 2.5\n" + minimal,
			wantLine: 1, wantKey: "workers", wantMsg: "must be an integer, got a float"},
		{name: "account as a plain table", doc: "[source]\nurl = \"pop3s://h\"\n[destination]\nurl = \"imaps://h\"\n[account]\nsource_user = \"a\"\n",
			wantLine: 5, wantKey: "account", wantMsg: "account must be an array of tables"},
		{name: "inline password of wrong type is not echoed", doc: minimal + "source_password = 73914621\n",
			wantLine: 9, wantKey: "account.source_password", wantMsg: "must be a string, got an integer", noLeak: "73914621"},
		{name: "syntax error", doc: "workers = \n" + minimal,
			wantLine: 1, wantMsg: "migrate.toml:1"},
		// BurntSushi/toml counts the newline it stopped at as the next
		// line; the error is on the line that lacks the bracket.
		{name: "unclosed table name on line 3", doc: "state = \"x.db\"\nworkers = 4\n[source\nurl = \"pop3s://h\"\n",
			wantLine: 3, wantCol: 8, wantMsg: "migrate.toml:3:8: expected '.' or ']' to end table name"},
		{name: "unclosed array of tables on line 3", doc: "state = \"x.db\"\nworkers = 4\n[[account]\n",
			wantLine: 3, wantMsg: "migrate.toml:3:"},
		{name: "conflicting secrets", doc: minimal + "source_password_file = \"alice.pw\"\n",
			wantLine: 9, wantKey: "account.source_password", wantMsg: "conflicting secrets: source_password_env and source_password_file"},
		{name: "conflicting master secrets", doc: strings.Replace(minimal, "[destination]", "master_user = \"admin\"\nmaster_password_env = \"M\"\nmaster_password_command = \"pass m\"\n[destination]", 1),
			wantLine: 5, wantKey: "source.master_password", wantMsg: "conflicting secrets: source.master_password_env and source.master_password_command"},
		{name: "password in URL refused without echo", doc: strings.Replace(minimal, "pop3s://pop.old.example", "pop3s://alice:Hunter2Pw@pop.old.example", 1),
			wantLine: 2, wantCol: 1, wantKey: "source.url", wantMsg: "password in the URL is refused", wantErr: ErrPasswordInURL, noLeak: "Hunter2Pw"},
		{name: "state URL with a password refused without echo", doc: "state = \"postgres://mf:Hunter3Pw@db.example/mf\"\n" + minimal,
			wantLine: 1, wantKey: "state", wantMsg: "the state URL holds a password", noLeak: "Hunter3Pw"},
		{name: "state URL with a password parameter", doc: "state = \"postgres://mf@db.example/mf?password=Hunter4Pw\"\n" + minimal,
			wantLine: 1, wantKey: "state", wantMsg: "the state URL holds a password", noLeak: "Hunter4Pw"},
		{name: "state password for a file state", doc: "state = \"mf.db\"\nstate_password_env = \"PW\"\n" + minimal,
			wantLine: 2, wantKey: "state_password_env", wantMsg: "state_password_env is for a PostgreSQL state"},
		{name: "conflicting state secrets", doc: "state = \"postgres://mf@db.example/mf\"\nstate_password_env = \"PW\"\nstate_password_file = \"pw\"\n" + minimal,
			wantLine: 3, wantKey: "state_password", wantMsg: "conflicting secrets: state_password_env and state_password_file"},
		{name: "bad source scheme", doc: strings.Replace(minimal, "pop3s://pop.old.example", "https://pop.old.example", 1),
			wantLine: 2, wantKey: "source.url", wantMsg: `unsupported scheme "https"`, wantErr: ErrUnsupportedScheme},
		{name: "POP3 destination", doc: strings.Replace(minimal, "imaps://imap.new.example", "pop3s://imap.new.example", 1),
			wantLine: 4, wantKey: "destination.url", wantMsg: "destination.url must be imaps:// or imap://, got pop3s://"},
		{name: "user in section URL", doc: strings.Replace(minimal, "imaps://imap.new.example", "imaps://bob@imap.new.example", 1),
			wantLine: 4, wantKey: "destination.url", wantMsg: "must not contain a user name"},
		{name: "missing source url", doc: strings.Replace(minimal, "url = \"pop3s://pop.old.example\"\n", "", 1),
			wantLine: 1, wantKey: "source.url", wantMsg: "source.url is missing"},
		{name: "tls none without allow_plaintext", doc: strings.Replace(minimal, "imaps://imap.new.example", "imap://127.0.0.1:1143?tls=none", 1),
			wantLine: 4, wantKey: "destination.url", wantMsg: "set destination.allow_plaintext = true"},
		{name: "workers zero", doc: "workers = 0\n" + minimal,
			wantLine: 1, wantKey: "workers", wantMsg: "workers must be at least 1, got 0"},
		{name: "bad log format", doc: "log_format = \"xml\"\n" + minimal,
			wantLine: 1, wantKey: "log_format", wantMsg: `log_format must be "text" or "json"`},
		{name: "bad date policy", doc: minimal + "[policy]\ninternal_date = \"sent\"\n",
			wantLine: 10, wantKey: "policy.internal_date", wantMsg: `got "sent"`},
		{name: "bad auth", doc: strings.Replace(minimal, "[destination]", "auth = \"cram-md5\"\n[destination]", 1),
			wantLine: 3, wantKey: "source.auth", wantMsg: `source.auth must be "login", "plain", "xoauth2" or "oauthbearer"`},
		{name: "auth contradicts URL", doc: strings.Replace(minimal, "pop3s://pop.old.example\"", "pop3s://pop.old.example?auth=plain\"\nauth = \"login\"", 1),
			wantLine: 3, wantKey: "source.auth", wantMsg: "contradicts auth=plain"},
		{name: "folder contradicts URL", doc: strings.Replace(minimal, "imaps://imap.new.example\"", "imaps://imap.new.example/Archive\"\nfolder = \"INBOX\"", 1),
			wantLine: 5, wantKey: "destination.folder", wantMsg: "contradicts the folder"},
		{name: "master user with oauth2", doc: strings.Replace(minimal, "[destination]", "auth = \"xoauth2\"\nmaster_user = \"admin\"\nmaster_password_env = \"M\"\n[destination]", 1),
			wantLine: 4, wantKey: "source.master_user", wantMsg: "cannot be combined with an OAuth2 login"},
		{name: "master user without password", doc: strings.Replace(minimal, "[destination]", "master_user = \"admin\"\n[destination]", 1),
			wantLine: 3, wantKey: "source.master_user", wantMsg: "needs source.master_password_env"},
		{name: "no accounts", doc: "[source]\nurl = \"pop3s://h\"\n[destination]\nurl = \"imaps://h\"\n",
			wantLine: 0, wantKey: "account", wantMsg: "no accounts"},
		{name: "duplicate account names", doc: minimal + "[[account]]\nname = \"alice\"\nsource_user = \"alice2\"\nsource_password_env = \"X\"\ndest_password_env = \"Y\"\n",
			wantLine: 9, wantKey: "account.name", wantMsg: `account "alice": duplicate name (first defined at `},
		{name: "duplicate account ids", doc: strings.Replace(minimal, "[[account]]\n", "[[account]]\nid = \"x-1\"\n", 1) + "[[account]]\nid = \"x-1\"\nsource_user = \"bob\"\nsource_password_env = \"X\"\ndest_password_env = \"Y\"\n",
			wantLine: 11, wantKey: "account.id", wantMsg: `account "bob": id "x-1" is also the id of account "alice"`},
		{name: "same source user twice with delete_source", doc: "delete_source = true\n" + minimal + "[[account]]\nname = \"alice-copy\"\nsource_user = \"alice\"\nsource_password_env = \"X\"\ndest_password_env = \"Y\"\n",
			wantLine: 12, wantKey: "account.source_user", wantMsg: "would move one mailbox twice"},
		{name: "same source user twice with delete_after", doc: minimal + "delete_after = \"30d\"\n[[account]]\nname = \"alice-copy\"\nsource_user = \"alice\"\nsource_password_env = \"X\"\ndest_password_env = \"Y\"\n",
			wantLine: 12, wantKey: "account.source_user", wantMsg: "with delete_source or delete_after that would move one mailbox twice"},
		{name: "delete_source and delete_after", doc: "delete_source = true\ndelete_after = \"30d\"\n" + minimal,
			wantLine: 2, wantKey: "delete_after", wantMsg: "delete_source and delete_after exclude each other"},
		{name: "account delete_source and delete_after", doc: minimal + "delete_source = true\ndelete_after = \"1d\"\n",
			wantLine: 10, wantKey: "account.delete_after", wantMsg: `account "alice": delete_source and delete_after exclude each other`},
		{name: "negative delete_after", doc: "delete_after = \"-1d\"\n" + minimal,
			wantLine: 1, wantKey: "delete_after", wantMsg: `duration "-1d" is negative`},
		{name: "delete_after without unit", doc: minimal + "delete_after = 30\n",
			wantLine: 9, wantKey: "account.delete_after", wantMsg: "must be a duration string"},
		{name: "account without password", doc: minimal + "[[account]]\nsource_user = \"bob\"\ndest_password_env = \"Y\"\n",
			wantLine: 9, wantKey: "account.source_password", wantMsg: `account "bob": no source password`},
		{name: "account without source_user", doc: minimal + "[[account]]\ndest_user = \"bob\"\n",
			wantLine: 9, wantKey: "account.source_user", wantMsg: "source_user is missing"},
		{name: "control character in dest_folder", doc: minimal + "dest_folder = \"IN\\r\\nBOX\"\n",
			wantLine: 9, wantKey: "account.dest_folder", wantMsg: "control characters"},
		{name: "missing accounts file", doc: "accounts_file = \"users.csv\"\n" + minimal,
			wantLine: 1, wantKey: "accounts_file", wantMsg: "accounts_file: users.csv does not exist", wantErr: fs.ErrNotExist},
	}
	for _, d := range []struct {
		name, line string
		col        int
		msg        string
	}{
		// BurntSushi/toml points inside the quotes; the type check at the value.
		{"bad duration words", `idle_timeout = "5 minutes"`, 17, `source.idle_timeout: invalid duration "5 minutes"`},
		{"bare integer duration", `idle_timeout = 30`, 16, `source.idle_timeout must be a duration string such as "90s"`},
		{"negative duration", `idle_timeout = "-5m"`, 17, `duration "-5m" is negative`},
		{"unknown duration unit", `idle_timeout = "2w"`, 17, `invalid duration "2w"`},
	} {
		tests = append(tests, loadErrorCase{name: d.name, doc: strings.Replace(minimal, "[destination]", d.line+"\n[destination]", 1),
			wantLine: 3, wantCol: d.col, wantKey: "source.idle_timeout", wantMsg: d.msg})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.doc)
			_, _, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%q) succeeded, want an error", tt.doc)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Load error %T %v is not a *ConfigError", err, err)
			}
			if ce.File != path {
				t.Errorf("ConfigError.File = %q, want %q", ce.File, path)
			}
			if ce.Line != tt.wantLine {
				t.Errorf("ConfigError.Line = %d, want %d (%v)", ce.Line, tt.wantLine, err)
			}
			if tt.wantCol != 0 && ce.Col != tt.wantCol {
				t.Errorf("ConfigError.Col = %d, want %d (%v)", ce.Col, tt.wantCol, err)
			}
			if tt.wantKey != "" && ce.Key != tt.wantKey {
				t.Errorf("ConfigError.Key = %q, want %q (%v)", ce.Key, tt.wantKey, err)
			}
			msg := strings.ReplaceAll(err.Error(), filepath.Dir(path)+string(filepath.Separator), "")
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("Load error = %q, want it to contain %q", msg, tt.wantMsg)
			}
			if tt.wantLine > 0 && !strings.HasPrefix(ce.Error(), fmt.Sprintf("%s:%d:", path, tt.wantLine)) {
				t.Errorf("ConfigError.Error() = %q, want prefix %s:%d:", ce.Error(), path, tt.wantLine)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Load error = %v, want errors.Is %v", err, tt.wantErr)
			}
			if tt.noLeak != "" && strings.Contains(err.Error(), tt.noLeak) {
				t.Errorf("Load error = %q leaks %q", err, tt.noLeak)
			}
		})
	}
}

const full = `# every key
state = "var/mailferry.db"
workers = 8
dry_run = true
delete_source = true
log_format = "json"
accounts_file = "users.csv"
on_locked = "skip"
lock_wait = "2m"

[source]
url = "imap://imap.old.example:1143?auth=plain"
tls_ca = "/etc/ssl/old-ca.pem"
insecure_skip_verify = false
allow_plaintext = false
auth = "plain"
master_user = "admin"
master_password_file = "master.pw"
idle_timeout = "2d"
max_connections = 3

[destination]
url = "imap://127.0.0.1:1143?tls=none"
folder = "Imported"
tls_ca = "ca.pem"
insecure_skip_verify = true
allow_plaintext = true
auth = "login"
master_user = "root"
master_password_command = "pass show root"
idle_timeout = "90s"
batch_messages = 20
batch_bytes = "8MiB"
max_connections = 6

[policy]
internal_date = "date"
flags = "seen"
max_message_bytes = 52428800
spool_memory_bytes = "1MiB"

[[account]]
name = "alice-main"
source_user = "alice"
source_password = "inline-src"
dest_user = "alice@new.example"
dest_password_env = "ALICE_DEST"
dest_folder = "Old/INBOX"

[[account]]
source_user = "bob"

[folders]
include = ["INBOX", "Archive/*"]
exclude = ["Archive/Spam"]
root = "Old"
sync_flags = false
special_use = true
max_age = "365d"
min_age = "1h"

[[folders.rename]]
from = "Sent Items"
to = "Sent"

[[folders.rename]]
from = "^Projects/(.*)$"
to = "Work/$1"
regexp = true
`

func TestLoadFull(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "migrate.toml", full, 0o600)
	writeFile(t, dir, "users.csv", "source_user,source_password,dest_user,dest_password\ncarol,\"c,1\",carol@new.example,\"d\"\"2\"\n", 0o600)
	got, warns, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := &Config{
		File: path, State: filepath.Join(dir, "var/mailferry.db"), Workers: 8, DryRun: true, DeleteSource: true, MatchExisting: true,
		LogFormat: LogJSON, OnLocked: "skip", LockWait: 2 * time.Minute, AccountsFile: filepath.Join(dir, "users.csv"),
		Idle: true,
		Source: Source{Server{URL: "imap://imap.old.example:1143?auth=plain", TLSCA: "/etc/ssl/old-ca.pem",
			Auth: AuthPlain, MasterUser: "admin", MasterPassword: SecretSource{File: filepath.Join(dir, "master.pw")},
			IdleTimeout: 48 * time.Hour, MaxConnections: 3}},
		Destination: Destination{Server: Server{URL: "imap://127.0.0.1:1143?tls=none", TLSCA: filepath.Join(dir, "ca.pem"),
			InsecureSkipVerify: true, AllowPlaintext: true, Auth: AuthLogin, MasterUser: "root",
			MasterPassword: SecretSource{Command: "pass show root", Dir: dir}, IdleTimeout: 90 * time.Second, MaxConnections: 6},
			Folder: "Imported", BatchMessages: 20, BatchBytes: 8 << 20, Sessions: 2},
		Policy: Policy{InternalDate: DateHeader, Flags: FlagsSeen, MaxMessageBytes: 50 << 20, SpoolMemoryBytes: 1 << 20},
		Folders: Folders{Include: []string{"INBOX", "Archive/*"}, Exclude: []string{"Archive/Spam"}, Root: "Old",
			SyncFlags: false, SpecialUse: true, MaxAge: 365 * 24 * time.Hour, MinAge: time.Hour,
			Rename: []FolderRename{{From: "Sent Items", To: "Sent"}, {From: "^Projects/(.*)$", To: "Work/$1", Regexp: true}}},
		Accounts: []Account{
			{Name: "alice-main", SourceUser: "alice", SourcePassword: SecretSource{Inline: secret.New("inline-src")},
				DestUser: "alice@new.example", DestPassword: SecretSource{Env: "ALICE_DEST"}, DestFolder: "Old/INBOX",
				Origin: path + ":42"},
			{Name: "bob", SourceUser: "bob", DestUser: "bob", Origin: path + ":50"},
			{Name: "carol", SourceUser: "carol", SourcePassword: SecretSource{Inline: secret.New("c,1")},
				DestUser: "carol@new.example", DestPassword: SecretSource{Inline: secret.New(`d"2`)},
				Origin: filepath.Join(dir, "users.csv") + ":2", csv: true},
		},
	}
	// Positions are checked by TestLoadErrors; compare the values.
	got.pos = nil
	for i := range got.Accounts {
		got.Accounts[i].pos, got.Accounts[i].keys = position{}, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(full) =\n%+v\nwant\n%+v", got, want)
		for i := range min(len(got.Accounts), len(want.Accounts)) {
			if !reflect.DeepEqual(got.Accounts[i], want.Accounts[i]) {
				t.Errorf("account %d = %+v, want %+v", i, got.Accounts[i], want.Accounts[i])
			}
		}
	}
	// The source is IMAP: [destination] folder is not where its folders go.
	if len(warns) != 2 || warns[0].Key != "destination.insecure_skip_verify" || warns[0].Line != 26 ||
		warns[1].Key != "destination.folder" || warns[1].Line != 24 || !strings.Contains(warns[1].Msg, "dest_folder") {
		t.Errorf("Load(full) warnings = %v, want one for destination.insecure_skip_verify at line 26, one for destination.folder at line 24", warns)
	}

	src, err := got.SourceEndpoint(&got.Accounts[0])
	if err != nil || src.String() != "imap://alice@imap.old.example:1143?auth=plain" {
		t.Errorf("SourceEndpoint = %v, %v", src, err)
	}
	for i, wantDst := range []string{
		// An IMAP source keeps its folders: the destination path is the
		// root they go under, the account's dest_folder, else the
		// [folders] root; never [destination] folder (that is for POP3).
		"imap://alice%40new.example@127.0.0.1:1143/Old/INBOX?tls=none&auth=login",
		"imap://bob@127.0.0.1:1143/Old?tls=none&auth=login",
	} {
		dst, err := got.DestEndpoint(&got.Accounts[i])
		if err != nil || dst.String() != wantDst {
			t.Errorf("DestEndpoint(account %d) = %v, %v; want %s", i, dst, err, wantDst)
		}
	}
}

// TestLoadPostgresState: a postgres:// state stays a URL (not made
// relative to the config's directory), and its password source is read.
func TestLoadPostgresState(t *testing.T) {
	path := writeConfig(t, "state = \"postgres://mf@db.example/mf?sslmode=verify-full\"\nstate_password_file = \"db.pw\"\n"+minimal)
	cfg, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State != "postgres://mf@db.example/mf?sslmode=verify-full" {
		t.Errorf("state = %q", cfg.State)
	}
	if want := filepath.Join(filepath.Dir(path), "db.pw"); cfg.StatePassword.File != want {
		t.Errorf("state password file = %q, want %q", cfg.StatePassword.File, want)
	}
}

func TestLoadDefaults(t *testing.T) {
	got, warns, err := Load(writeConfig(t, minimal))
	if err != nil || len(warns) != 0 {
		t.Fatalf("Load(minimal) = %v, %v", warns, err)
	}
	d := Default()
	if got.Workers != d.Workers || got.LogFormat != LogText || got.State != "" ||
		got.Source.IdleTimeout != DefaultIdleTimeout || got.Destination.BatchMessages != DefaultBatchMessages ||
		got.Destination.BatchBytes != DefaultBatchBytes || got.Policy.InternalDate != DateReceived ||
		got.Policy.Flags != FlagsNone || got.Policy.SpoolMemoryBytes != DefaultSpoolMemoryBytes {
		t.Errorf("Load(minimal) = %+v, want the defaults", got)
	}
	a := got.Accounts[0]
	if a.Name != "alice" || a.DestUser != "alice" {
		t.Errorf("account defaults: name %q dest_user %q, want alice, alice", a.Name, a.DestUser)
	}
	dst, err := got.DestEndpoint(&a)
	if err != nil || dst.Mailbox != "INBOX" {
		t.Errorf("DestEndpoint mailbox = %q, %v; want INBOX", dst.Mailbox, err)
	}
}

func TestLoadExample(t *testing.T) {
	c, warns, err := Load("../migrate.toml.example")
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("Load(example) warnings = %v, want none", warns)
	}
	if len(c.Accounts) != 5 || c.Workers != 4 || c.Destination.Auth != AuthPlain || c.Destination.BatchBytes != 16<<20 {
		t.Errorf("Load(example) = %+v, not what the example says", c)
	}
	// dave logs in through master users, erin with an OAuth2 token on
	// another host.
	if len(c.Accounts) == 5 {
		dave, erin := &c.Accounts[3], &c.Accounts[4]
		srcUser, _ := c.SourceFor(dave).LoginUser(dave.SourceUser)
		dstUser, dstAuthz := c.DestinationFor(dave).LoginUser(dave.DestUser)
		if srcUser != "dave*migration-admin" || dstUser != "migration-admin" || dstAuthz != "dave@new.example" {
			t.Errorf("dave logs in as %q and %q for %q", srcUser, dstUser, dstAuthz)
		}
		if d := c.DestinationFor(erin); d.Auth != AuthXOAuth2 || d.MaxConnections != 4 || d.BatchMessages != 250 {
			t.Errorf("erin's destination = %+v", d)
		}
	}
	if want := filepath.Join("..", "mailferry.db"); c.State != want {
		t.Errorf("Load(example) state = %q, want %q (relative to the file)", c.State, want)
	}
}

func TestLoadWarnings(t *testing.T) {
	inline := strings.Replace(minimal, `source_password_env = "ALICE_PW"`, `source_password = "pw"`, 1)
	tests := []struct {
		name    string
		doc     string
		perm    fs.FileMode
		wantKey string // of the single expected warning; "" = no warning
		wantMsg string
	}{
		{"inline password, private file", inline, 0o600, "", ""},
		{"inline password, others can read", inline, 0o644, "", "readable by group or others (mode 0644)"},
		{"inline password, group can read", inline, 0o640, "", "mode 0640"},
		{"env password, others can read", minimal, 0o644, "", ""},
		{"insecure_skip_verify", strings.Replace(minimal, "[destination]", "insecure_skip_verify = true\n[destination]", 1), 0o600,
			"source.insecure_skip_verify", "certificate is not checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "migrate.toml", tt.doc, tt.perm)
			_, warns, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tt.wantMsg == "" {
				if len(warns) != 0 {
					t.Errorf("Load warnings = %v, want none", warns)
				}
				return
			}
			if len(warns) != 1 || warns[0].Key != tt.wantKey || !strings.Contains(warns[0].String(), tt.wantMsg) {
				t.Errorf("Load warnings = %v, want one with key %q containing %q", warns, tt.wantKey, tt.wantMsg)
			}
			if strings.Contains(warns[0].String(), `"pw"`) {
				t.Errorf("warning %q shows the password", warns[0])
			}
		})
	}
}

func TestLoadReportsAllProblemsInOrder(t *testing.T) {
	doc := "wrokers = 3\nlog_format = 1\n" + minimal + "[policy]\nflagz = 1\n"
	_, _, err := Load(writeConfig(t, doc))
	if err == nil {
		t.Fatal("Load succeeded, want errors")
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		_, rest, _ := strings.Cut(l, "migrate.toml:")
		line, _, _ := strings.Cut(rest, ":")
		lines = append(lines, line)
	}
	if got := strings.Join(lines, ","); got != "1,2,12" {
		t.Errorf("Load error lines = %s, want 1,2,12 (%v)", got, err)
	}
}

func TestLoadInlineTables(t *testing.T) {
	doc := "policy = { flags = \"seen\" }\naccount = [{ source_user = \"a\", source_password_env = \"A\", dest_password_env = \"B\" }]\n" +
		"source = { url = \"pop3s://h\" }\ndestination = { url = \"imaps://h\" }\n"
	c, _, err := Load(writeConfig(t, doc))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Policy.Flags != FlagsSeen || len(c.Accounts) != 1 || c.Accounts[0].SourcePassword.Env != "A" || c.Accounts[0].Origin == "" {
		t.Errorf("Load(inline tables) = %+v", c)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want a *ConfigError wrapping fs.ErrNotExist", err)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := Default()
	c.Source.URL = "pop3s://pop.example"
	c.Destination.URL = "imaps://imap.example/Archive"
	c.Accounts = []Account{{Name: "a", SourceUser: "a", DestUser: "a",
		SourcePassword: SecretSource{Env: "A"}, DestPassword: SecretSource{Env: "B", File: "b.pw"}}}
	err := c.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Error() != `account "a": conflicting secrets: dest_password_env and dest_password_file` {
		t.Fatalf("Validate = %v, want the conflict without a file position", err)
	}
	c.Accounts[0].DestPassword.File = ""
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate = %v, want nil", err)
	}
	dst, _ := c.DestEndpoint(&c.Accounts[0])
	if dst.Mailbox != "Archive" {
		t.Errorf("DestEndpoint mailbox = %q, want the URL's Archive", dst.Mailbox)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(full))
	f.Add([]byte("WORKERS = 3\n[source]\nurl = 'pop3s://a:b@h'\n[[account]]\n\"source_user\" = \"x\"\n"))
	f.Add([]byte("a = \"\"\"\nb = 1\n\"\"\"\n[x.y]\nz = [\n 1, # c\n {q=1} ]\n[[account]]\n[account.n]\nm = 1\n"))
	f.Add([]byte("accounts_file = \"/dev/zero\"\n" + minimal))
	f.Add([]byte("policy = { flags = \"seen\", max_message_bytes = \"9MB\" }\naccount = [{source_user = \"a\"}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// No file is read: accounts_file could name /dev/zero or a FIFO.
		noFiles := func(path, dir string) ([]Account, []Warning, error) {
			return nil, nil, &ConfigError{File: path, Msg: "not read while fuzzing"}
		}
		c, _, err := load("/fuzz/f.toml", data, 0o600, noFiles)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("load error %T %v is not a *ConfigError", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate after a successful load: %v", err)
		}
	})
}

func TestFoldersSectionErrors(t *testing.T) {
	base := "[source]\nurl = \"imaps://old.example\"\n[destination]\nurl = \"imaps://new.example\"\n[[account]]\nsource_user = \"a\"\nsource_password = \"x\"\ndest_password = \"y\"\n"
	tests := []struct {
		name, folders, want string
	}{
		{"include not a list", "[folders]\ninclude = \"INBOX\"\n", "folders.include must be an array of strings"},
		{"empty include pattern", "[folders]\ninclude = [\"INBOX\", \"\"]\n", "folders.include[1]: mapping: invalid folder option: empty folder pattern"},
		{"control character in exclude", "[folders]\nexclude = [\"Spam\\n\"]\n", "folders.exclude[0]: mapping: invalid folder option: folder pattern \"Spam\\n\" holds a control character"},
		{"bad regexp", "[[folders.rename]]\nfrom = \"(\"\nto = \"x\"\nregexp = true\n", "not a valid regular expression"},
		{"rename without to", "[[folders.rename]]\nfrom = \"a\"\n", "needs both from and to"},
		{"unknown key", "[folders]\nroot_folder = \"Old\"\n", `unknown key "folders.root_folder"`},
		{"min age over max age", "[folders]\nmax_age = \"1d\"\nmin_age = \"2d\"\n", "must be less than folders.max_age"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "m.toml", base+tc.folders, 0o600)
			cfg, _, err := Load(path)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load/Validate error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// An account that sets delete_source or delete_after has its own policy;
// the others follow the top-level keys. Accounts files may set them too.
func TestDeletePolicyOf(t *testing.T) {
	const accounts = `
[[account]]
name = "follows"
source_user = "a"
source_password_env = "X"
dest_password_env = "Y"
[[account]]
name = "keeps"
source_user = "b"
source_password_env = "X"
dest_password_env = "Y"
delete_source = false
[[account]]
name = "at-once"
source_user = "c"
source_password_env = "X"
dest_password_env = "Y"
delete_source = true
[[account]]
name = "later"
source_user = "d"
source_password_env = "X"
dest_password_env = "Y"
delete_after = "7d"
`
	const csv = "source_user,source_password,dest_password,delete_source,delete_after\n" +
		"e,p,q,,\nf,p,q,true,\ng,p,q,,1d12h\nh,p,q,false,\n"
	tests := []struct {
		name string
		top  string
		want map[string]DeletePolicy
	}{
		{"top-level keep", "", map[string]DeletePolicy{
			"follows": {}, "keeps": {}, "at-once": {DeleteSource: true}, "later": {DeleteAfter: 7 * 24 * time.Hour},
			"e": {}, "f": {DeleteSource: true}, "g": {DeleteAfter: 36 * time.Hour}, "h": {},
		}},
		{"top-level delete_after", "delete_after = \"30d\"\n", map[string]DeletePolicy{
			"follows": {DeleteAfter: 30 * 24 * time.Hour}, "keeps": {}, "at-once": {DeleteSource: true},
			"later": {DeleteAfter: 7 * 24 * time.Hour},
			"e":     {DeleteAfter: 30 * 24 * time.Hour}, "f": {DeleteSource: true}, "g": {DeleteAfter: 36 * time.Hour}, "h": {},
		}},
		{"top-level delete_source", "delete_source = true\n", map[string]DeletePolicy{
			"follows": {DeleteSource: true}, "keeps": {}, "at-once": {DeleteSource: true},
			"later": {DeleteAfter: 7 * 24 * time.Hour},
			"e":     {DeleteSource: true}, "f": {DeleteSource: true}, "g": {DeleteAfter: 36 * time.Hour}, "h": {},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "users.csv", csv, 0o600)
			doc := tc.top + "accounts_file = \"users.csv\"\n" + strings.SplitAfterN(minimal, "[[account]]", 2)[0]
			doc = strings.TrimSuffix(doc, "[[account]]") + accounts
			path := writeFile(t, dir, "migrate.toml", doc, 0o600)
			c, _, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if len(c.Accounts) != len(tc.want) {
				t.Fatalf("%d accounts, want %d", len(c.Accounts), len(tc.want))
			}
			for i := range c.Accounts {
				a := &c.Accounts[i]
				if got := c.DeletePolicyOf(a); got != tc.want[a.Name] {
					t.Errorf("DeletePolicyOf(%s) = %+v, want %+v", a.Name, got, tc.want[a.Name])
				}
			}
		})
	}
}

func TestAccountsFileDeletePolicyErrors(t *testing.T) {
	tests := []struct {
		name, row, want string
	}{
		{"bad delete_source", "a,p,q,sometimes,", `delete_source must be true or false, got "sometimes"`},
		{"bad delete_after", "a,p,q,,2w", `delete_after: invalid duration "2w"`},
		{"both", "a,p,q,true,30d", "delete_source and delete_after exclude each other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "users.csv", "source_user,source_password,dest_password,delete_source,delete_after\n"+tc.row+"\n", 0o600)
			doc := "accounts_file = \"users.csv\"\n" + strings.SplitAfterN(minimal, "[[account]]", 2)[0]
			path := writeFile(t, dir, "migrate.toml", strings.TrimSuffix(doc, "[[account]]"), 0o600)
			_, _, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "users.csv:2") {
				t.Errorf("Load = %v, want an error at users.csv:2 containing %q", err, tc.want)
			}
		})
	}
}
