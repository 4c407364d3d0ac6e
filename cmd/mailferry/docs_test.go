package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The user documentation is checked against the commands' flag sets, as
// the help texts are (TestHelpListsEveryFlag). A flag added without its
// documentation, or documentation of a flag that went, fails here.

// userDocs returns the README and every page under docs/, by path.
func userDocs(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..")
	paths, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, filepath.Join(root, "README.md"))
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

// foreignFlags are flags of other programs that the docs show in commands
// (systemctl, git): not mailferry's.
var foreignFlags = map[string]bool{
	"now":    true, // systemctl enable --now
	"tags":   true, // git describe --tags --always --dirty
	"always": true,
	"dirty":  true,
	// docs/interop-servers.md: how the test kits start other servers.
	"mount": true, "pid": true, "fork": true, "kill-child": true, // unshare
	"config-file": true, // GNU Mailutils imap4d and pop3d
	"keep":        true, // scripts/demo.sh --keep
}

var shortFlagRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])-([a-zA-Z])(?:[^A-Za-z0-9_-]|$)`)

// tableFlags returns the long and short flags named in the first cells of
// the tables in a section of markdown.
func tableFlags(section string) (long, short map[string]bool) {
	long, short = map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, " | ", 2)[0]
		for name := range longFlags(first) {
			long[name] = true
		}
		for _, m := range shortFlagRE.FindAllStringSubmatch(first, -1) {
			short[m[1]] = true
		}
	}
	return long, short
}

// commandSection returns the text under "## mailferry NAME" in doc, up to
// the next "## " heading.
func commandSection(doc, name string) (string, bool) {
	head := "\n## mailferry " + name + "\n"
	i := strings.Index(doc, head)
	if i < 0 {
		return "", false
	}
	rest := doc[i+len(head):]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest, true
}

// TestDocsDocumentEveryFlag: docs/commands.md has a section per command
// whose flag tables list exactly the command's flags and shorthands.
func TestDocsDocumentEveryFlag(t *testing.T) {
	ref := userDocs(t)[filepath.Join("..", "..", "docs", "commands.md")]
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			section, ok := commandSection(ref, c.name)
			if !ok {
				t.Fatalf("docs/commands.md has no section \"## mailferry %s\"", c.name)
			}
			long, short := tableFlags(section)
			flags := visibleFlags(t, c.args)
			var missing []string
			for name, f := range flags {
				if !long[name] {
					missing = append(missing, "--"+name)
				}
				if f.Shorthand != "" && !short[f.Shorthand] {
					missing = append(missing, "-"+f.Shorthand)
				}
			}
			sort.Strings(missing)
			for _, m := range missing {
				t.Errorf("docs/commands.md's section for mailferry %s does not list %s", c.name, m)
			}
			for name := range long {
				if flags[name] == nil {
					t.Errorf("docs/commands.md's section for mailferry %s lists --%s, which the command does not have", c.name, name)
				}
			}
			for s := range short {
				found := false
				for _, f := range flags {
					found = found || f.Shorthand == s
				}
				if !found {
					t.Errorf("docs/commands.md's section for mailferry %s lists -%s, which the command does not have", c.name, s)
				}
			}
		})
	}
}

// TestDocsFlagsExist: every --flag written in the README or under docs/ is
// a flag of some mailferry command (or of mailferry itself, or of another
// program on the foreignFlags list).
func TestDocsFlagsExist(t *testing.T) {
	all := map[string]bool{}
	for _, c := range commands() {
		for name := range visibleFlags(t, c.args) {
			all[name] = true
		}
	}
	for path, doc := range userDocs(t) {
		for name := range longFlags(doc) {
			if !all[name] && !topLevelFlags[name] && !foreignFlags[name] {
				t.Errorf("%s names --%s, which no mailferry command has", path, name)
			}
		}
	}
}

// TestREADMEIndexesDocs: the README stays a page a new user reads (at
// most 250 lines, issue 21) and links every page under docs/, so that a
// topic moved out of it can still be found from it.
func TestREADMEIndexesDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if n := strings.Count(readme, "\n"); n > 250 {
		t.Errorf("README.md has %d lines, want at most 250 (topics belong under docs/)", n)
	}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs pages (%v)", err)
	}
	for _, p := range pages {
		link := "(docs/" + filepath.Base(p) + ")"
		if !strings.Contains(readme, link) {
			t.Errorf("README.md does not link %s", link)
		}
	}
}
