package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
)

// patternCase is one documented folder-pattern rule: the patterns and the
// source folders a copy must then bring over.
type patternCase struct {
	name             string
	include, exclude []string
	want             []string
}

// patternFolders are the source's folders, one message each. None has a
// special-use name, so each keeps its name at the destination.
var patternFolders = []string{"INBOX", "Work", "Work/2019", "Work/Old", "Work/Old/2019", "Works", "Lists"}

// patternCases test each rule --help, the README and migrate.toml.example
// document: "* any, % one level, ? one character", plain names, exclude
// winning over include.
var patternCases = []patternCase{
	{"star crosses levels", []string{"Work/*"}, nil, []string{"Work/2019", "Work/Old", "Work/Old/2019"}},
	{"star in an exclude crosses levels", nil, []string{"Work/Old*"}, []string{"INBOX", "Lists", "Work", "Work/2019", "Works"}},
	{"percent is one level", nil, []string{"Work/%"}, []string{"INBOX", "Lists", "Work", "Work/Old/2019", "Works"}},
	{"percent alone is the top level", []string{"%"}, nil, []string{"INBOX", "Lists", "Work", "Works"}},
	{"question mark is one character", []string{"Work?"}, nil, []string{"Works"}},
	{"plain names, INBOX in any case", []string{"Lists", "inbox"}, nil, []string{"INBOX", "Lists"}},
	{"exclude wins over include", []string{"Work*"}, []string{"Work/Old*"}, []string{"Work", "Work/2019", "Works"}},
}

// patternEnv is a Dovecot source with patternFolders for alice and a
// destination with one user per run (dst1, dst2, ...).
type patternEnv struct {
	src, dst *dovecot.Server
	dir      string
	users    int
}

func startPatternEnv(t *testing.T, runs int) *patternEnv {
	t.Helper()
	ca, err := dovecot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 1; i <= runs; i++ {
		users[fmt.Sprintf("dst%d", i)] = dstPassword
	}
	e := &patternEnv{dir: t.TempDir()}
	e.src = dovecot.Start(t, dovecot.Options{Name: "mf-psrc", CA: ca, Users: map[string]string{"alice": srcPassword}})
	e.dst = dovecot.Start(t, dovecot.Options{Name: "mf-pdst", CA: ca, Users: users})
	date := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, f := range patternFolders {
		if err := e.src.SeedMaildir("alice", f, []byte("Subject: in "+f+"\r\n\r\nfolder "+f+"\r\n"), "S", date); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// nextUser is a destination user no run has used.
func (e *patternEnv) nextUser() string {
	e.users++
	return fmt.Sprintf("dst%d", e.users)
}

// copied lists the destination folders of user that hold a message.
func (e *patternEnv) copied(t *testing.T, user string) []string {
	t.Helper()
	boxes, err := e.dst.Mailboxes(user)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range boxes {
		if n, err := e.dst.MailboxCount(user, b); err == nil && n > 0 {
			out = append(out, b)
		}
	}
	slices.Sort(out)
	return out
}

// config writes a config for one account, alice to user, with [folders]
// set to c's patterns.
func (e *patternEnv) config(t *testing.T, user string, c patternCase) string {
	t.Helper()
	list := func(ps []string) string {
		q := make([]string, len(ps))
		for i, p := range ps {
			q[i] = fmt.Sprintf("%q", p)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	cfg := fmt.Sprintf(`state = %q
[source]
url = "imaps://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[folders]
include = %s
exclude = %s
[[account]]
source_user = "alice"
source_password_env = "MF_T_SRC_PW"
dest_user = %q
dest_password_env = "MF_T_DST_PW"
`, filepath.Join(e.dir, user+".db"), e.src.IMAPSAddr(), e.src.CAFile(), e.dst.IMAPSAddr(), e.src.CAFile(),
		list(c.include), list(c.exclude), user)
	path := filepath.Join(e.dir, user+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestE2EFolderPatterns copies from a real Dovecot with each documented
// pattern rule, through copy's --folder and --exclude-folder and through
// a config's [folders] include and exclude, and checks which folders
// arrive. path.Match took "%" literally and stopped "*" at "/": "Work/%"
// excluded nothing, "%" copied nothing, "Work/Old*" missed Work/Old/2019.
func TestE2EFolderPatterns(t *testing.T) {
	e := startPatternEnv(t, 2*len(patternCases))
	t.Setenv("MF_T_SRC_PW", srcPassword)
	t.Setenv("MF_T_DST_PW", dstPassword)
	for _, c := range patternCases {
		t.Run("copy flags/"+c.name, func(t *testing.T) {
			user := e.nextUser()
			args := []string{"copy", "imaps://alice@" + e.src.IMAPSAddr(), "imaps://" + user + "@" + e.dst.IMAPSAddr(),
				"--tls-ca", e.src.CAFile(), "--state", filepath.Join(e.dir, user+".db"), "--json", "--progress", "none"}
			for _, p := range c.include {
				args = append(args, "--folder", p)
			}
			for _, p := range c.exclude {
				args = append(args, "--exclude-folder", p)
			}
			r := runInProcess(t, passwords, args...)
			if r.code != exitOK {
				t.Fatalf("copy %q: exit %d\n%s", args[8:], r.code, r.stderr)
			}
			if got := e.copied(t, user); !slices.Equal(got, c.want) {
				t.Errorf("--folder %q --exclude-folder %q copied %q, want %q", c.include, c.exclude, got, c.want)
			}
			if a := r.report.Accounts[0]; a.Copied != len(c.want) {
				t.Errorf("the report says %d copied, want %d", a.Copied, len(c.want))
			}
		})
		t.Run("config/"+c.name, func(t *testing.T) {
			user := e.nextUser()
			path := e.config(t, user, c)
			r := runInProcess(t, func(string) string { return "" }, "run", "-c", path, "--json", "--progress", "none")
			if r.code != exitOK {
				t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
			}
			if got := e.copied(t, user); !slices.Equal(got, c.want) {
				t.Errorf("include = %q, exclude = %q copied %q, want %q", c.include, c.exclude, got, c.want)
			}
		})
	}
}

// TestBadFolderPatternIsUsageError: a malformed pattern stops copy, plan,
// verify and run before anything connects, with exit 2 naming it.
func TestBadFolderPatternIsUsageError(t *testing.T) {
	dir := t.TempDir()
	getenv := func(string) string { return "" }
	urls := []string{"imaps://alice@127.0.0.1:1", "imaps://bob@127.0.0.1:1", "--state", filepath.Join(dir, "s.db")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"copy", "--folder", "a\tb"}, urls...), "--folder"},
		{append([]string{"copy", "--exclude-folder", ","}, urls...), "--exclude-folder: mapping: invalid folder option: empty folder pattern"},
		{append([]string{"plan", "--exclude-folder", "\xff"}, urls...), "--exclude-folder"},
		{append([]string{"verify", "--folder", "x\x7f"}, urls...), "--folder"},
	} {
		r := runInProcess(t, getenv, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, want %d with %q\n%s", tc.args[:3], r.code, exitUsage, tc.want, r.stderr)
		}
	}
	path := filepath.Join(dir, "m.toml")
	cfg := "[source]\nurl = \"imaps://127.0.0.1:1\"\n[destination]\nurl = \"imaps://127.0.0.1:1\"\n[folders]\nexclude = [\"Spam\", \"\"]\n" +
		"[[account]]\nsource_user = \"a\"\nsource_password = \"x\"\ndest_password = \"y\"\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "check", "-c", path}, {"run", "-c", path, "--state", filepath.Join(dir, "s.db")}} {
		r := runInProcess(t, getenv, args...)
		if r.code != exitUsage || !strings.Contains(r.stdout+r.stderr, "folders.exclude[1]") {
			t.Errorf("%q: exit %d, want %d naming folders.exclude[1]\n%s%s", args, r.code, exitUsage, r.stdout, r.stderr)
		}
	}
}
