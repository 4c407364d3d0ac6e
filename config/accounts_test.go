package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadAccounts(t *testing.T) {
	dir := t.TempDir()
	csv := "\xef\xbb\xbfsource_user,source_password,dest_user,dest_password,dest_folder,source_password_file\n" +
		"alice,\"pa,ss\",alice@new.example,\"say \"\"hi\"\"\",,\n" +
		"\n" +
		"bob,,,\"multi\nline\",Old Mail,bob.pw\n" +
		"carol, lead space ,carol@new.example,x,,\n"
	path := writeFile(t, dir, "users.csv", csv, 0o600)
	got, warns, err := ReadAccounts(path, dir)
	if err != nil {
		t.Fatalf("ReadAccounts: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("ReadAccounts warnings = %v, want none for a 0600 file", warns)
	}
	type row struct{ name, srcUser, srcPW, srcFile, destUser, destPW, folder, origin string }
	want := []row{
		{"alice", "alice", "pa,ss", "", "alice@new.example", `say "hi"`, "", path + ":2"},
		{"bob", "bob", "", filepath.Join(dir, "bob.pw"), "bob", "multi\nline", "Old Mail", path + ":4"},
		{"carol", "carol", " lead space ", "", "carol@new.example", "x", "", path + ":6"},
	}
	if len(got) != len(want) {
		t.Fatalf("ReadAccounts = %d accounts, want %d", len(got), len(want))
	}
	for i, a := range got {
		r := row{a.Name, a.SourceUser, a.SourcePassword.Inline.Reveal(), a.SourcePassword.File, a.DestUser,
			a.DestPassword.Inline.Reveal(), a.DestFolder, a.Origin}
		if r != want[i] {
			t.Errorf("account %d = %+v, want %+v", i, r, want[i])
		}
	}
}

func TestReadAccountsErrors(t *testing.T) {
	tests := []struct {
		name     string
		csv      string
		wantLine int
		wantMsg  string
		noLeak   string
	}{
		{"empty file", "", 1, "accounts file is empty", ""},
		{"unknown column", "source_user,source_pasword\n", 1, `unknown column "source_pasword" (did you mean "source_password"?)`, ""},
		{"case-mismatched column", "Source_User,source_password\n", 1, `keys are case-sensitive: did you mean "source_user"?`, ""},
		{"duplicate column", "source_user,source_user\n", 1, `column "source_user" appears twice`, ""},
		{"semicolons", "source_user;source_password;dest_user;dest_password\na;pw1;b;pw2\n", 1,
			`the columns are separated by semicolons (";"), not commas: save the file as comma-separated CSV`, "pw1"},
		{"tabs", "source_user\tsource_password\na\tpw1\n", 1, `the columns are separated by tabs ("\t"), not commas`, "pw1"},
		{"no source_user column", "dest_user,dest_password\n", 1, "no source_user column", ""},
		{"too few fields", "source_user,source_password,dest_user\na,Secr3tPw,b\nc,Secr3tPw\n", 3, "wrong number of fields", "Secr3tPw"},
		{"too many fields", "source_user,source_password\na,pw\nb,Secr,3tPw\n", 3, "wrong number of fields", "3tPw"},
		{"bare quote", "source_user,source_password\na,pw\nb,Se\"cr3tPw\n", 3, `bare " in non-quoted-field`, "cr3tPw"},
		{"unterminated quote", "source_user,source_password\na,pw\n\nb,\"Secr3tPw\n", 4, "extraneous or missing", "Secr3tPw"},
		{"empty source_user", "source_user,source_password\na,pw\n,Secr3tPw\n", 3, "source_user is empty", "Secr3tPw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "users.csv", tt.csv, 0o600)
			_, _, err := ReadAccounts(path, dir)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("ReadAccounts error = %v, want a *ConfigError", err)
			}
			if ce.Line != tt.wantLine || ce.File != path {
				t.Errorf("ReadAccounts error at %s:%d, want %s:%d (%v)", ce.File, ce.Line, path, tt.wantLine, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ReadAccounts error = %q, want it to contain %q", err, tt.wantMsg)
			}
			if tt.noLeak != "" && strings.Contains(err.Error(), tt.noLeak) {
				t.Errorf("ReadAccounts error = %q leaks %q", err, tt.noLeak)
			}
		})
	}
}

func TestReadAccountsWarnsWhenReadable(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "users.csv", "source_user,source_password\na,pw\n", 0o644)
	_, warns, err := ReadAccounts(path, dir)
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].Msg, "mode 0644") {
		t.Fatalf("ReadAccounts = %v, %v; want one mode warning", warns, err)
	}
	envOnly := writeFile(t, dir, "env.csv", "source_user,source_password_env\na,A_PW\n", 0o644)
	if _, warns, err := ReadAccounts(envOnly, dir); err != nil || len(warns) != 0 {
		t.Fatalf("ReadAccounts(no inline passwords) = %v, %v; want no warning", warns, err)
	}
}

func TestLoadAccountsFileLarge(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("source_user,source_password,dest_user,dest_password\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "user%d,\"p,%d\",user%d@new.example,\"q\"\"%d\"\n", i, i, i, i)
	}
	writeFile(t, dir, "users.csv", b.String(), 0o600)
	path := writeFile(t, dir, "migrate.toml", `accounts_file = "users.csv"
[source]
url = "pop3s://pop.old.example"
[destination]
url = "imaps://imap.new.example"
`, 0o600)
	start := time.Now()
	c, _, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Load of 5,000 accounts took %v", d)
	}
	if len(c.Accounts) != 5000 {
		t.Fatalf("Load = %d accounts, want 5000", len(c.Accounts))
	}
	last := c.Accounts[4999]
	if last.Name != "user4999" || last.SourcePassword.Inline.Reveal() != "p,4999" || last.DestPassword.Inline.Reveal() != `q"4999` ||
		last.Origin != filepath.Join(dir, "users.csv")+":5001" {
		t.Errorf("last account = %+v", last)
	}
}

func TestLoadAccountsFileDuplicate(t *testing.T) {
	dir := t.TempDir()
	csvPath := writeFile(t, dir, "users.csv", "source_user,source_password,dest_password\nbob,x,y\nalice,x,y\n", 0o600)
	path := writeFile(t, dir, "migrate.toml", "accounts_file = \"users.csv\"\n"+minimal, 0o600)
	_, _, err := Load(path)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.File != csvPath || ce.Line != 3 || !strings.Contains(ce.Msg, `account "alice": duplicate name (first defined at `+path+":6)") {
		t.Fatalf("Load = %v, want a duplicate-name error at %s:3", err, csvPath)
	}
}

func FuzzParseAccounts(f *testing.F) {
	f.Add("source_user,source_password,dest_user,dest_password\nalice,\"p,w\",a@x,\"q\"\"w\"\n")
	f.Add("source_user\n\"unterminated\n")
	f.Add("\xef\xbb\xbfname,source_user,dest_folder\nn,u,\"IN\r\nBOX\"\n")
	f.Add("source_user,dest_auth,source_max_connections,dest_master_password,source_idle_timeout\nu,xoauth2,3,\"p,w\",90s\nv,,x,,\n")
	f.Fuzz(func(t *testing.T, csv string) {
		accts, _, err := parseAccounts("users.csv", "/cfg", strings.NewReader(csv))
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "users.csv" {
				t.Fatalf("parseAccounts error %T %v is not a *ConfigError for users.csv", err, err)
			}
			return
		}
		for _, a := range accts {
			if a.SourceUser == "" || a.Name == "" || a.DestUser == "" || a.pos.Line < 2 {
				t.Fatalf("parseAccounts(%q) gave %+v", csv, a)
			}
		}
	})
}

// TestLoadAccountsFileIDs: the id column names accounts in the checkpoint,
// and two rows may not share one.
func TestLoadAccountsFileIDs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "users.csv", "source_user,id,source_password,dest_password\nbob,b-1,x,y\ncarol,,x,y\n", 0o600)
	path := writeFile(t, dir, "migrate.toml", "accounts_file = \"users.csv\"\n"+minimal, 0o600)
	c, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, a := range c.Accounts {
		ids[a.Name] = a.ID
	}
	if ids["bob"] != "b-1" || ids["carol"] != "" || ids["alice"] != "" {
		t.Errorf("ids = %v", ids)
	}
	csvPath := writeFile(t, dir, "users.csv", "source_user,id,source_password,dest_password\nbob,b-1,x,y\ncarol,b-1,x,y\n", 0o600)
	_, _, err = Load(path)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.File != csvPath || ce.Line != 3 || !strings.Contains(ce.Msg, `id "b-1" is also the id of account "bob"`) {
		t.Fatalf("Load = %v, want a duplicate-id error at %s:3", err, csvPath)
	}
}
