package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// foldersPair seeds alice's IMAP source with INBOX, Projects and Sent.
func foldersPair(t *testing.T) *pair {
	t.Helper()
	p := startPair(t)
	for i, m := range simpleMessages(6) {
		folder := []string{"INBOX", "Projects", "Sent"}[i%3]
		if err := p.src.Deliver("alice", folder, m); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *pair) imapSrcURL(path string) string { return "imaps://alice@" + p.src.IMAPSAddr() + path }

// destMailboxNames lists alice's destination folders.
func destMailboxNames(t *testing.T, p *pair) []string {
	t.Helper()
	f, err := p.dst.Mailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(f)
	return f
}

// assertUntouched fails unless the destination holds nothing but an empty
// INBOX: the command refused before copying or creating anything.
func assertUntouched(t *testing.T, p *pair, what string) {
	t.Helper()
	if f := destMailboxNames(t, p); strings.Join(f, ",") != "INBOX" {
		t.Errorf("%s: the destination has the folders %v, want INBOX alone", what, f)
	}
	if n, _ := p.dst.MailboxCount("alice", "INBOX"); n != 0 {
		t.Errorf("%s: %d messages were copied", what, n)
	}
}

// TestE2ESourceFolderMissing: a source folder named explicitly that is not
// there (the URL's path, --folder, a config's include without wildcards) is
// refused before anything is copied, with the nearest folder names: copy,
// verify and plan exit 2 (verify never says OK, plan never "no problems");
// in a run, that account fails and the others go on (exit 3).
func TestE2ESourceFolderMissing(t *testing.T) {
	p := foldersPair(t)
	common := []string{"--tls-ca", p.src.CAFile(), "--state", p.state, "--progress", "none"}
	for _, tc := range []struct {
		name string
		args []string
		from string
	}{
		{"URL path", []string{"copy", p.imapSrcURL("/Projekts"), p.dstURL()}, "SOURCE's folder"},
		{"--folder", []string{"copy", p.imapSrcURL(""), p.dstURL(), "--folder", "Projekts,Sent"}, "--folder"},
		{"dry run", []string{"copy", p.imapSrcURL(""), p.dstURL(), "--folder", "Projekts", "--dry-run"}, "--folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runInProcess(t, p.getenv, append(tc.args, common...)...)
			out := r.stdout + r.stderr
			want := fmt.Sprintf(`source folder "Projekts" (%s) does not exist; did you mean "Projects"?`, tc.from)
			if r.code != exitUsage || !strings.Contains(out, want) {
				t.Errorf("exit %d, want %d and %q\n%s", r.code, exitUsage, want, out)
			}
			if strings.Contains(out, "nothing to do") {
				t.Errorf("a missing folder is reported as nothing to do:\n%s", out)
			}
			assertUntouched(t, p, tc.name)
		})
	}

	t.Run("verify", func(t *testing.T) {
		r := runInProcess(t, p.getenv, append([]string{"verify", p.imapSrcURL("/Projekts"), p.dstURL()}, common[:4]...)...)
		if r.code != exitUsage || strings.Contains(r.stdout, "OK") || !strings.Contains(r.stdout, `did you mean "Projects"?`) {
			t.Errorf("verify: exit %d, want %d, no OK and the nearest folder\n%s%s", r.code, exitUsage, r.stdout, r.stderr)
		}
	})
	t.Run("plan", func(t *testing.T) {
		r := runInProcess(t, p.getenv, append([]string{"plan", p.imapSrcURL(""), p.dstURL(), "--folder", "Projekts"}, common[:4]...)...)
		if r.code != exitUsage || strings.Contains(r.stdout, "no problems found") || !strings.Contains(r.stdout, `did you mean "Projects"?`) {
			t.Errorf("plan: exit %d, want %d, no \"no problems found\" and the nearest folder\n%s%s", r.code, exitUsage, r.stdout, r.stderr)
		}
	})
	t.Run("run", func(t *testing.T) {
		t.Setenv("T_SRC_PW", srcPassword)
		t.Setenv("T_DST_PW", dstPassword)
		dir := t.TempDir()
		cfg := fmt.Sprintf(`state = %q
[source]
url = "imaps://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
name = "alice-all"
source_user = "alice"
source_password_env = "T_SRC_PW"
dest_password_env = "T_DST_PW"
[[account]]
name = "alice-typo"
source_user = "alice"
source.url = "imaps://%s/Projekts"
source_password_env = "T_SRC_PW"
dest_password_env = "T_DST_PW"
`, filepath.Join(dir, "state.db"), p.src.IMAPSAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile(), p.src.IMAPSAddr())
		path := filepath.Join(dir, "migrate.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runInProcess(t, p.getenv, "run", "-c", path, "--progress", "none", "--workers", "1")
		t.Logf("run:\n%s", r.stdout)
		if r.code != exitPartial || !strings.Contains(r.stdout, `alice-typo: error (config): source folder "Projekts" (the source's url) does not exist; did you mean "Projects"?`) {
			t.Errorf("run: exit %d, want %d and alice-typo's error named under the table\n%s%s", r.code, exitPartial, r.stdout, r.stderr)
		}
		if n, _ := p.dst.MailboxCount("alice", "Projects"); n != 2 {
			t.Errorf("alice-all copied %d messages of Projects, want 2: the other account must go on", n)
		}
	})
}

// TestE2EDestFolderNeedsCreateFolders: a destination folder typed by the
// user that would be a new top-level folder (a typo such as INBX) is
// refused without --create-folders, naming the nearest folders; with it,
// it is created and the summary names it. Folders under INBOX need no
// permission; an IMAP source's root does; a config's dest_folder is an IMAP
// source's root, as DEST's path is for copy.
func TestE2EDestFolderNeedsCreateFolders(t *testing.T) {
	p := startPair(t)
	seed(t, p, simpleMessages(3))
	copyTo := func(folder string, extra ...string) runResult {
		return runInProcess(t, p.getenv, append([]string{"copy", p.srcURL(), p.dstURL() + folder,
			"--tls-ca", p.src.CAFile(), "--state", p.state, "--progress", "none"}, extra...)...)
	}

	r := copyTo("/INBX")
	want := `destination folder "INBX" (DEST's folder) does not exist; a copy creates a new top-level folder only with --create-folders (create_folders = true in a config); did you mean "INBOX"?`
	if r.code != exitUsage || !strings.Contains(r.stdout+r.stderr, want) {
		t.Fatalf("copy to INBX: exit %d, want %d and %q\n%s%s", r.code, exitUsage, want, r.stdout, r.stderr)
	}
	assertUntouched(t, p, "copy to INBX")

	plan := runInProcess(t, p.getenv, "plan", p.srcURL(), p.dstURL()+"/INBX", "--tls-ca", p.src.CAFile(), "--state", p.state)
	if plan.code != exitUsage || !strings.Contains(plan.stdout, want) || strings.Contains(plan.stdout, "no problems found") {
		t.Errorf("plan to INBX: exit %d, want %d and the folder's problem\n%s%s", plan.code, exitUsage, plan.stdout, plan.stderr)
	}
	plan = runInProcess(t, p.getenv, "plan", p.srcURL(), p.dstURL()+"/INBX", "--tls-ca", p.src.CAFile(), "--state", p.state, "--create-folders")
	if plan.code != exitOK || !strings.Contains(plan.stdout, "(POP3 maildrop) -> INBX (will be created") {
		t.Errorf("plan to INBX with --create-folders: exit %d, want 0 and the folder to be created\n%s%s", plan.code, plan.stdout, plan.stderr)
	}

	r = copyTo("/INBX", "--create-folders", "--json")
	if r.code != exitOK || !slices.Equal(r.report.Accounts[0].FoldersCreated, []string{"INBX"}) {
		t.Fatalf("copy to INBX with --create-folders: exit %d, folders created %v; want 0 and [INBX]\n%s", r.code, r.report.Accounts[0].FoldersCreated, r.stderr)
	}
	if n, _ := p.dst.MailboxCount("alice", "INBX"); n != 3 {
		t.Errorf("INBX holds %d messages, want 3", n)
	}
	// It exists now: no permission needed, nothing created.
	if r = copyTo("/INBX"); r.code != exitOK || strings.Contains(r.stdout, "created") {
		t.Errorf("a second copy to INBX: exit %d, want 0 and nothing created\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Under INBOX: allowed, and named.
	if r = copyTo("/INBOX/From POP"); r.code != exitOK || !strings.Contains(r.stdout, "created a folder on the destination: INBOX/From POP\n") {
		t.Errorf("copy under INBOX: exit %d, want 0 and the created folder named\n%s%s", r.code, r.stdout, r.stderr)
	}

	// An IMAP source's root is a folder the user typed; the folders mapped
	// under it are not.
	for i, m := range simpleMessages(2) {
		if err := p.src.Deliver("alice", []string{"INBOX", "Projects"}[i], m); err != nil {
			t.Fatal(err)
		}
	}
	imapArgs := []string{"copy", "imaps://alice@" + p.src.IMAPSAddr(), p.dstURL() + "/Old", "--tls-ca", p.src.CAFile(),
		"--state", p.state, "--progress", "none"}
	if r = runInProcess(t, p.getenv, imapArgs...); r.code != exitUsage || !strings.Contains(r.stdout+r.stderr, `destination folder "Old" (DEST's folder) does not exist`) {
		t.Errorf("IMAP copy under a new root: exit %d, want %d\n%s%s", r.code, exitUsage, r.stdout, r.stderr)
	}
	r = runInProcess(t, p.getenv, append(imapArgs, "--create-folders")...)
	if r.code != exitOK || !strings.Contains(r.stdout, "Old/INBOX") || !strings.Contains(r.stdout, "Old/Projects") {
		t.Errorf("IMAP copy under a new root with --create-folders: exit %d, want 0 and Old/INBOX, Old/Projects named as created\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A config: dest_folder puts an IMAP source's folders under it, after
	// create_folders allows the new folder; config check says so.
	t.Setenv("T_SRC_PW", srcPassword)
	t.Setenv("T_DST_PW", dstPassword)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state = %q
%%s
[source]
url = "imaps://%s"
tls_ca = %q
[destination]
url = "imaps://%s"
tls_ca = %q
[[account]]
source_user = "alice"
source_password_env = "T_SRC_PW"
dest_password_env = "T_DST_PW"
dest_folder = "Imported"
`, filepath.Join(dir, "state.db"), p.src.IMAPSAddr(), p.src.CAFile(), p.dst.IMAPSAddr(), p.src.CAFile())
	path := filepath.Join(dir, "migrate.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(cfg, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	check := runInProcess(t, p.getenv, "config", "check", "-c", path)
	if check.code != exitOK || !strings.Contains(check.stdout, `account "alice": the source's folders go under "Imported" (dest_folder)`) ||
		!strings.Contains(check.stdout, "create_folders = true") {
		t.Errorf("config check: exit %d, want 0 and how dest_folder is used\n%s%s", check.code, check.stdout, check.stderr)
	}
	if r = runInProcess(t, p.getenv, "run", "-c", path, "--progress", "none"); r.code != exitPartial ||
		!strings.Contains(r.stdout, `destination folder "Imported" (dest_folder) does not exist`) {
		t.Errorf("run without create_folders: exit %d, want %d\n%s%s", r.code, exitPartial, r.stdout, r.stderr)
	}
	if err := os.WriteFile(path, []byte(fmt.Sprintf(cfg, "create_folders = true")), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runInProcess(t, p.getenv, "run", "-c", path, "--progress", "none", "--json")
	if r.code != exitOK || !slices.Contains(r.report.Accounts[0].FoldersCreated, "Imported/Projects") {
		t.Fatalf("run with create_folders: exit %d, created %v\n%s", r.code, r.report.Accounts[0].FoldersCreated, r.stderr)
	}
	// alice's source INBOX: the 3 seeded for POP3 and 1 delivered.
	for f, want := range map[string]int{"Imported/INBOX": 4, "Imported/Projects": 1} {
		if n, _ := p.dst.MailboxCount("alice", f); n != want {
			t.Errorf("%s holds %d messages, want %d", f, n, want)
		}
	}
}
