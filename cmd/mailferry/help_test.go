package main

import (
	"flag"
	"os"
	"path/filepath"
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
		{"status", []string{"status", "--help"}},
		{"verify", []string{"verify", "--help"}},
		{"plan", []string{"plan", "--help"}},
		{"report", []string{"report", "--help"}},
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
