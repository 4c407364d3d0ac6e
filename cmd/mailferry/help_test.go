package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestHelpGolden keeps every --help text in testdata/help, so a change to
// the user-facing text shows up in review. Refresh with -update.
func TestHelpGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"main", []string{"help"}},
		{"copy", []string{"copy", "--help"}},
		{"run", []string{"run", "--help"}},
		{"config", []string{"config", "check", "--help"}},
		{"ledger", []string{"ledger", "migrate", "--help"}},
		{"ledger-upgrade", []string{"ledger", "upgrade", "--help"}},
		{"status", []string{"status", "--help"}},
		{"queue", []string{"queue", "--help"}},
		{"verify", []string{"verify", "--help"}},
		{"plan", []string{"plan", "--help"}},
		{"report", []string{"report", "--help"}},
		{"login", []string{"login", "--help"}},
		{"version", []string{"version", "--help"}},
		{"completion", []string{"completion", "--help"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runInProcess(t, func(string) string { return "" }, tc.args...)
			if r.code != exitOK {
				t.Fatalf("%v: exit %d\n%s", tc.args, r.code, r.stderr)
			}
			golden := filepath.Join("..", "..", "testdata", "help", tc.name+".txt")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if r.stdout != string(want) {
				t.Errorf("%v output differs from %s (run with -update if intended):\n%s", tc.args, golden, r.stdout)
			}
			if !strings.Contains(r.stdout, "EXIT STATUS") {
				t.Errorf("%v help lacks an EXIT STATUS section", tc.args)
			}
			for _, line := range strings.Split(r.stdout, "\n") {
				if len([]rune(line)) > 100 {
					t.Errorf("%v help has a line over 100 columns: %q", tc.args, line)
				}
			}
		})
	}
}

// helpCommands are the commands with a --help, as run().
var helpCommands = []struct {
	name string
	args []string
	// exits are the statuses the command can end with: its help's EXIT
	// STATUS section must list exactly these.
	exits []int
}{
	{"copy", []string{"copy"}, []int{exitOK, exitFatal, exitUsage, exitPartial, exitInterrupted}},
	{"run", []string{"run"}, []int{exitOK, exitFatal, exitUsage, exitPartial, exitInterrupted}},
	{"config", []string{"config", "check"}, []int{exitOK, exitUsage}},
	{"status", []string{"status"}, []int{exitOK, exitFatal, exitUsage}},
	{"queue", []string{"queue"}, []int{exitOK, exitFatal, exitUsage}},
	{"verify", []string{"verify"}, []int{exitOK, exitFatal, exitUsage, exitPartial, exitInterrupted}},
	{"plan", []string{"plan"}, []int{exitOK, exitFatal, exitUsage, exitPartial, exitInterrupted}},
}

// exitSection returns the codes listed under EXIT STATUS in help.
func exitSection(help string) []int {
	_, section, _ := strings.Cut(help, "EXIT STATUS\n")
	var codes []int
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		var code int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%d", &code); err == nil {
			codes = append(codes, code)
		}
	}
	return codes
}

// TestHelpExitStatus: each command's --help lists the exit statuses that
// command can end with, no more and no fewer (config check once showed
// copy's: partial and interrupted, which a file check never returns).
func TestHelpExitStatus(t *testing.T) {
	for _, c := range helpCommands {
		t.Run(c.name, func(t *testing.T) {
			r := runInProcess(t, func(string) string { return "" }, append(c.args, "--help")...)
			if got := exitSection(r.stdout); !reflect.DeepEqual(got, c.exits) {
				t.Errorf("%s --help lists exit statuses %v, want %v:\n%s", c.name, got, c.exits, r.stdout)
			}
		})
	}
	// config check does end with each status it lists.
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("[source]\nurl = \"pop3s://127.0.0.1:1\"\n[destination]\nurl = \"imaps://127.0.0.1:1\"\n"+
		"[[account]]\nsource_user = \"a\"\nsource_password_command = \"echo x\"\ndest_password_command = \"echo y\"\n"), 0o600)
	os.WriteFile(bad, []byte("[source]\nurl = \"pop3s://127.0.0.1:1\"\nbogus = 1\n"), 0o600)
	none := func(string) string { return "" }
	if r := runInProcess(t, none, "config", "check", "-c", good); r.code != exitOK {
		t.Errorf("config check of a valid file: exit %d, want %d\n%s", r.code, exitOK, r.stderr)
	}
	if r := runInProcess(t, none, "config", "check", "-c", bad); r.code != exitUsage {
		t.Errorf("config check of a bad file: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", []string{"copy"}, "want a SOURCE and a DEST"},
		{"unknown flag", []string{"copy", "--bogus", "a", "b"}, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"password in URL", []string{"copy", "pop3s://u:pw@h", "imaps://u@h"}, "password in the URL is refused"},
		{"imap source not yet", []string{"copy", "ftp://u@h", "imaps://u@h"}, "unsupported scheme"},
		{"pop3 destination", []string{"copy", "pop3s://u@h", "pop3s://u@h"}, "must be an imaps:// or imap:// URL"},
		{"bad policy", []string{"copy", "pop3s://u@h", "imaps://u@h", "--internal-date", "tomorrow"}, "--internal-date"},
		{"bad log format", []string{"copy", "pop3s://u@h", "imaps://u@h", "--log-format", "xml"}, "--log-format"},
		{"delete at once and after", []string{"copy", "pop3s://u@h", "imaps://u@h", "--delete-source", "--delete-after", "30d"},
			"--delete-source and --delete-after exclude each other"},
		{"delete-after without unit", []string{"copy", "pop3s://u@h", "imaps://u@h", "--delete-after", "30"}, `invalid duration "30"`},
		{"negative delete-after", []string{"copy", "pop3s://u@h", "imaps://u@h", "--delete-after", "-1d"}, "negative"},
		{"run with both delete flags", []string{"run", "-c", "x.toml", "--delete-source", "--delete-after", "1d"},
			"--delete-source and --delete-after exclude each other"},
		// --max-age and --min-age take days, as the config and
		// --delete-after do: 40d is not less than 30d.
		{"ages in days", []string{"copy", "imaps://u@h", "imaps://u@h", "--max-age", "30d", "--min-age", "40d"},
			"--min-age must be less than --max-age"},
		{"negative max-age", []string{"copy", "imaps://u@h", "imaps://u@h", "--max-age", "-1d"}, `duration "-1d" is negative`},
		{"verify age in days", []string{"verify", "imaps://u@h", "imaps://u@h", "--min-age", "-2d"}, `duration "-2d" is negative`},
	}
	env := func(k string) string {
		return map[string]string{"MAILFERRY_SOURCE_PASSWORD": "x", "MAILFERRY_DEST_PASSWORD": "y"}[k]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runInProcess(t, env, tc.args...)
			if r.code != exitUsage {
				t.Errorf("%v: exit %d, want %d\n%s", tc.args, r.code, exitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, r.stderr, tc.want)
			}
		})
	}
}
