package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// renderMan formats the man page as man(1) would show it, as plain text.
func renderMan(t *testing.T, page string) string {
	t.Helper()
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("groff is not installed (Debian: groff-base)")
		}
		t.Skip("groff is not installed (Debian: groff-base)")
	}
	// -ww: every warning; -P-cbou: no escape sequences, bold or underline.
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-P-cbou", "-rLL=200n")
	cmd.Stdin = strings.NewReader(page)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	// Whatever the device makes of \-, flags are read as ASCII.
	return strings.NewReplacer("\u2212", "-", "\u2010", "-").Replace(stdout.String())
}

// TestManPage: 'mailferry help --man' is a man page troff formats without a
// warning, with a section per command that shows every flag of the
// command, and the exit status.
func TestManPage(t *testing.T) {
	r := runInProcess(t, func(string) string { return "" }, "help", "--man")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, `.\"`) || !strings.Contains(r.stdout, "\n.TH MAILFERRY 1 ") {
		t.Fatalf("help --man: exit %d, printed:\n%.300s", r.code, r.stdout)
	}
	text := renderMan(t, r.stdout)
	for _, want := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO",
		"mailferry - " + mainSummary(), "130  interrupted"} {
		if !strings.Contains(text, want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
	cmds := commands()
	for i, c := range cmds {
		start := strings.Index(text, "\n   mailferry "+c.name+"\n")
		if start < 0 {
			t.Errorf("the man page has no section for mailferry %s", c.name)
			continue
		}
		section := text[start:]
		if i+1 < len(cmds) {
			if end := strings.Index(section, "\n   mailferry "+cmds[i+1].name+"\n"); end > 0 {
				section = section[:end]
			}
		}
		for name := range visibleFlags(t, c.args) {
			if !longFlags(section)[name] {
				t.Errorf("the man page's section for mailferry %s does not show --%s", c.name, name)
			}
		}
	}
	if r := runInProcess(t, func(string) string { return "" }, "help", "--man", "copy"); r.code != exitUsage {
		t.Errorf("help --man copy: exit %d, want %d", r.code, exitUsage)
	}
}

func TestRoffEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"--dry-run", `\-\-dry\-run`},
		{`a\b`, `a\eb`},
		{".starts with a dot", `\&.starts with a dot`},
		{"'quoted", `\&'quoted`},
		{"plain", "plain"},
	}
	for _, tc := range tests {
		if got := roffLine(tc.in); got != tc.want {
			t.Errorf("roffLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
