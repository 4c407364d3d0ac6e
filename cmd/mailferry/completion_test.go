package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// visibleFlags returns a command's flags as --help should list them: every
// flag but --help and the hidden ones (test hooks).
func visibleFlags(t *testing.T, args []string) map[string]*pflag.Flag {
	t.Helper()
	fs, err := commandFlags(context.Background(), args)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*pflag.Flag{}
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" {
			out[f.Name] = f
		}
	})
	return out
}

var longFlagRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)`)

// longFlags are the --flag names a text mentions.
func longFlags(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range longFlagRE.FindAllStringSubmatch(text, -1) {
		out[m[1]] = true
	}
	return out
}

// topLevelFlags are the flags of mailferry itself, not of a command.
var topLevelFlags = map[string]bool{"help": true, "version": true, "man": true}

// TestHelpListsEveryFlag: each command's --help lists every flag the
// command has, names no flag it lacks, and shows each shorthand; the main
// help names only flags some command has.
func TestHelpListsEveryFlag(t *testing.T) {
	all := map[string]bool{}
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			flags := visibleFlags(t, c.args)
			listed := longFlags(c.help)
			for name, f := range flags {
				all[name] = true
				if !listed[name] {
					t.Errorf("mailferry %s --help does not list --%s (%s)", c.name, name, f.Usage)
				}
				if f.Shorthand != "" && !regexp.MustCompile(`(^|[\s\[(|,])-`+f.Shorthand+`([\s,\]|)]|$)`).MatchString(c.help) {
					t.Errorf("mailferry %s --help does not show -%s for --%s", c.name, f.Shorthand, name)
				}
			}
			for name := range listed {
				// completion's help tells which flags of the other
				// commands it completes; that much is checked below.
				if flags[name] == nil && !topLevelFlags[name] && c.name != "completion" {
					t.Errorf("mailferry %s --help names --%s, which the command does not have", c.name, name)
				}
			}
		})
	}
	for _, text := range []string{mainHelp, completionHelp} {
		for name := range longFlags(text) {
			if !all[name] && !topLevelFlags[name] {
				t.Errorf("%s names --%s, which no command has", firstLine(text), name)
			}
		}
	}
}

// TestHelpReachesEveryCommand: 'mailferry help X', 'mailferry X --help' and
// the man page show the same text, and the main help names every command.
func TestHelpReachesEveryCommand(t *testing.T) {
	none := func(string) string { return "" }
	for _, c := range commands() {
		word := strings.Join(c.args, " ")
		viaFlag := runInProcess(t, none, append(slices.Clone(c.args), "--help")...)
		viaHelp := runInProcess(t, none, append([]string{"help"}, c.args...)...)
		if viaFlag.code != exitOK || viaFlag.stdout != c.help {
			t.Errorf("mailferry %s --help: exit %d, printed something else than its help:\n%s", c.name, viaFlag.code, viaFlag.stdout)
		}
		if viaHelp.code != exitOK || viaHelp.stdout != c.help {
			t.Errorf("mailferry help %s: exit %d, printed something else than its help:\n%s", word, viaHelp.code, viaHelp.stdout)
		}
		if !strings.Contains(mainHelp, "mailferry "+c.name) {
			t.Errorf("the main help does not name 'mailferry %s'", c.name)
		}
	}
	if r := runInProcess(t, none, "help", "frobnicate"); r.code != exitUsage {
		t.Errorf("help frobnicate: exit %d, want %d", r.code, exitUsage)
	}
}

// TestFixedValuesAreAccepted sends every value a completion script offers
// for a flag through every command that has the flag, and one value not on
// the list, which the command must refuse by name (exit 2). URLs point at a
// closed port on 127.0.0.1, so a command that gets past its flags fails
// fast on the connection, never on the value.
func TestFixedValuesAreAccepted(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		return map[string]string{"MAILFERRY_SOURCE_PASSWORD": "x", "MAILFERRY_DEST_PASSWORD": "y"}[k]
	}
	base := map[string][]string{
		"copy":   {"copy", "pop3s://u@127.0.0.1:1", "imaps://u@127.0.0.1:1", "--attempts", "1", "--state", filepath.Join(dir, "s.db"), "--progress", "none"},
		"run":    {"run", "-c", filepath.Join(dir, "missing.toml")},
		"plan":   {"plan", "pop3s://u@127.0.0.1:1", "imaps://u@127.0.0.1:1", "--state", filepath.Join(dir, "s.db")},
		"verify": {"verify", "pop3s://u@127.0.0.1:1", "imaps://u@127.0.0.1:1", "--state", filepath.Join(dir, "s.db")},
		"status": {"status", "--state", filepath.Join(dir, "none.db")},
		"report": {"report", "--state", filepath.Join(dir, "none.db")},
		"login":  {"login", "-c", filepath.Join(dir, "missing.toml")},
	}
	seen := map[string]bool{}
	for _, c := range commands() {
		flags := visibleFlags(t, c.args)
		for name, values := range fixedValues() {
			if flags[name] == nil {
				continue
			}
			seen[name] = true
			args, ok := base[c.name]
			if !ok {
				t.Fatalf("no command line to try --%s on mailferry %s: add one to this test", name, c.name)
			}
			for _, v := range values {
				if !strings.Contains(flags[name].Usage+"\n"+helpLinesNaming(c.help, name), v) {
					t.Errorf("mailferry %s: neither --%s's usage nor its line in --help names the value %q", c.name, name, v)
				}
				r := runInProcess(t, env, append(slices.Clone(args), "--"+name, v)...)
				if strings.Contains(r.stderr, "--"+name) {
					t.Errorf("mailferry %s --%s %s: refused (exit %d): %s", c.name, name, v, r.code, r.stderr)
				}
			}
			r := runInProcess(t, env, append(slices.Clone(args), "--"+name, "bogus-value")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "--"+name) {
				t.Errorf("mailferry %s --%s bogus-value: exit %d, want %d naming the flag: %s", c.name, name, r.code, exitUsage, r.stderr)
			}
		}
	}
	for name := range fixedValues() {
		if !seen[name] {
			t.Errorf("fixedValues has --%s, which no command has", name)
		}
	}
	for name := range valueKinds() {
		found := false
		for _, c := range commands() {
			if f := visibleFlags(t, c.args)[name]; f != nil {
				found = true
				if f.NoOptDefVal != "" {
					t.Errorf("valueKinds has --%s, a switch without a value", name)
				}
			}
		}
		if !found {
			t.Errorf("valueKinds has --%s, which no command has", name)
		}
	}
}

// helpLinesNaming returns the lines of a help text that name --flag.
func helpLinesNaming(help, flag string) string {
	var out []string
	for _, l := range strings.Split(help, "\n") {
		if longFlags(l)[flag] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// needShell returns the path of a shell, or skips the test when it is not
// installed; under CI=true (scripts/test.sh installs them) it fails.
func needShell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (scripts/test.sh installs it)", name)
		}
		t.Skipf("%s is not installed; scripts/test.sh installs it", name)
	}
	return p
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	r := runInProcess(t, func(string) string { return "" }, "completion", shell)
	if r.code != exitOK {
		t.Fatalf("completion %s: exit %d: %s", shell, r.code, r.stderr)
	}
	return r.stdout
}

// TestCompletionScriptsParse runs each shell's own syntax check on its
// script, and checks that the script names every command and flag.
func TestCompletionScriptsParse(t *testing.T) {
	check := map[string][]string{"bash": {"-n"}, "zsh": {"-n"}, "fish": {"-n"}}
	for _, shell := range shellNames() {
		t.Run(shell, func(t *testing.T) {
			script := completionScript(t, shell)
			for _, c := range commands() {
				word, _, _ := strings.Cut(c.name, " ")
				if !strings.Contains(script, word) {
					t.Errorf("the %s script does not name the command %s", shell, word)
				}
				for name := range visibleFlags(t, c.args) {
					if !strings.Contains(script, name) {
						t.Errorf("the %s script does not name --%s of %s", shell, name, c.name)
					}
				}
			}
			sh := needShell(t, shell)
			file := filepath.Join(t.TempDir(), "mailferry."+shell)
			if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sh, append(check[shell], file)...).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("%s %v: %v\n%s", shell, check[shell], err, out)
			}
		})
	}
	if r := runInProcess(t, func(string) string { return "" }, "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", r.code, exitUsage)
	}
}

// completionWorkdir is a directory with a config of two accounts, another
// file, a subdirectory, and a "mailferry" on PATH that is this test binary
// acting as mailferry (TestMain).
func completionWorkdir(t *testing.T) (dir, bin string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\nMAILFERRY_E2E_AS_MAIN=1 exec '" + os.Args[0] + "' \"$@\"\n"
	files := map[string]string{
		"bin/mailferry": wrapper,
		"fetch.toml": `[source]
url = "pop3s://pop.old.example"
[destination]
url = "imaps://imap.new.example"
[[account]]
source_user = "alice"
source_password_env = "A_PW"
dest_password_env = "A_PW2"
[[account]]
name = "bob-office"
source_user = "bob"
source_password_env = "B_PW"
dest_password_env = "B_PW2"
`,
		"notes.txt": "",
		"sub/x":     "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, bin
}

func TestCompletionAccounts(t *testing.T) {
	dir, _ := completionWorkdir(t)
	r := runInProcess(t, func(string) string { return "" }, "completion", "accounts", filepath.Join(dir, "fetch.toml"))
	if r.code != exitOK || r.stdout != "alice\nbob-office\n" {
		t.Errorf("completion accounts: exit %d, printed %q, want alice and bob-office: %s", r.code, r.stdout, r.stderr)
	}
	r = runInProcess(t, func(string) string { return "" }, "completion", "accounts", filepath.Join(dir, "notes.txt"))
	if r.code != exitUsage || r.stdout != "" {
		t.Errorf("completion accounts of a file that is no config: exit %d, printed %q", r.code, r.stdout)
	}
}

// completionCase is a command line typed so far and what the shell should
// offer next.
type completionCase struct {
	line string // what is typed; the last word is being completed
	want []string
}

func completionCases() []completionCase {
	return []completionCase{
		{"mailferry ", []string{"completion", "config", "copy", "help", "ledger", "login", "plan", "queue", "report", "run", "status", "verify", "version"}},
		{"mailferry run --on", []string{"--on-locked", "--only"}},
		{"mailferry run --on-locked ", []string{"fail", "skip", "wait"}},
		{"mailferry copy --log-format ", []string{"json", "text"}},
		{"mailferry copy --progress ", []string{"auto", "bar", "lines", "none"}},
		{"mailferry plan --internal-date ", []string{"date", "now", "received"}},
		{"mailferry run -c fetch.toml --only ", []string{"alice", "bob-office"}},
		{"mailferry status --config fetch.toml --only b", []string{"bob-office"}},
		{"mailferry verify -c fetch.toml --only alice,", []string{"alice,alice", "alice,bob-office"}},
		{"mailferry run --only ", nil},
		{"mailferry config ", []string{"check"}},
		{"mailferry ledger ", []string{"migrate", "upgrade"}},
		{"mailferry ledger migrate --re", []string{"--replace"}},
		{"mailferry config check --con", []string{"--config"}},
		{"mailferry completion ", []string{"bash", "fish", "zsh"}},
		{"mailferry login --side ", []string{"destination", "source"}},
	}
}

// TestBashCompletion drives the bash script as bash does on Tab: COMP_WORDS
// split as readline splits them, then the function, then COMPREPLY.
func TestBashCompletion(t *testing.T) {
	bash := needShell(t, "bash")
	dir, bin := completionWorkdir(t)
	script := filepath.Join(dir, "mailferry.bash")
	os.WriteFile(script, []byte(completionScript(t, "bash")), 0o644)
	cases := append(completionCases(),
		completionCase{"mailferry run -c ", []string{"bin", "fetch.toml", "sub"}},
		completionCase{"mailferry copy --state ", []string{"bin", "fetch.toml", "mailferry.bash", "notes.txt", "sub"}},
		completionCase{"mailferry run --on-locked=s", []string{"skip"}},
		completionCase{"mailferry run --config=fetch.toml --only ", []string{"alice", "bob-office"}},
	)
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			// Readline splits at spaces and at COMP_WORDBREAKS's "=".
			words := strings.Split(strings.ReplaceAll(tc.line, "=", " = "), " ")
			var quoted []string
			for _, w := range words {
				quoted = append(quoted, "'"+w+"'")
			}
			prog := `source "$1"; COMP_WORDS=(` + strings.Join(quoted, " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _mailferry; printf '%s\n' "${COMPREPLY[@]}"`
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog, "bash", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			got := shellCompletions(t, cmd)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%q: bash offers %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

// TestFishCompletion asks fish itself: complete -C "LINE".
func TestFishCompletion(t *testing.T) {
	fish := needShell(t, "fish")
	dir, bin := completionWorkdir(t)
	script := filepath.Join(dir, "mailferry.fish")
	os.WriteFile(script, []byte(completionScript(t, "fish")), 0o644)
	cases := append(completionCases(),
		// fish offers the .toml files first and keeps that order.
		completionCase{"mailferry run -c f", []string{"fetch.toml"}},
		completionCase{"mailferry copy --state n", []string{"notes.txt"}},
		completionCase{"mailferry run --config=fetch.toml --only ", []string{"alice", "bob-office"}},
	)
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			cmd := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, tc.line)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			got := shellCompletions(t, cmd)
			for i, g := range got {
				got[i], _, _ = strings.Cut(g, "\t") // the description
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%q: fish offers %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

// zshCapture is a zsh script that types a line into an interactive zsh in a
// pseudo-terminal (zpty), presses Tab, and prints every match the
// completion system adds, one a line. Its markers are spelled in two parts
// so that the terminal's echo of the commands never matches them.
const zshCapture = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1= PROMPT= RPROMPT="
zpty -w z "autoload -U compinit && compinit -u -D"
zpty -w z "source ${(q)1}"
zpty -w z 'comppostfuncs=(_capture_done)'
zpty -w z '_capture_done() { print -r -- "<""<DONE>>"; exit }'
zpty -w z 'compadd() { local -a __hits; builtin compadd -A __hits "$@"; local h; for h in $__hits; do print -r -- "<""<HIT>>$h"; done; builtin compadd "$@" }'
zpty -w z 'zstyle ":completion:*" menu no'
zpty -n -w z "$2"$'\t'
local line
while zpty -r z line; do
	[[ $line == *"<<DONE>>"* ]] && break
	[[ $line == *"<<HIT>>"* ]] && print -r -- "${line##*<<HIT>>}"
done
zpty -d z
`

// TestZshCompletion types each line into an interactive zsh and reads
// what its completion system offers.
func TestZshCompletion(t *testing.T) {
	zsh := needShell(t, "zsh")
	dir, bin := completionWorkdir(t)
	script := filepath.Join(dir, "_mailferry")
	os.WriteFile(script, []byte(completionScript(t, "zsh")), 0o644)
	capture := filepath.Join(dir, "capture.zsh")
	os.WriteFile(capture, []byte(zshCapture), 0o644)
	cases := append(completionCases(),
		completionCase{"mailferry run -c ", []string{"bin", "fetch.toml", "sub"}},
		completionCase{"mailferry run --config=fetch.toml --only ", []string{"alice", "bob-office"}},
	)
	for _, tc := range cases {
		if tc.line == "mailferry verify -c fetch.toml --only alice," {
			// zsh completes the next item of the list, leaving out those given.
			tc.want = []string{"bob-office"}
		}
		t.Run(tc.line, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, zsh, "-f", capture, script, tc.line)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			// Menus add some matches twice (once per group).
			got := slices.Compact(shellCompletions(t, cmd))
			if !slices.Equal(got, tc.want) {
				t.Errorf("%q: zsh offers %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

// shellCompletions runs a shell asked for completions and returns them
// sorted.
func shellCompletions(t *testing.T, cmd *exec.Cmd) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	var got []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" { // a pty ends lines with CRLF
			got = append(got, strings.TrimSuffix(l, "/"))
		}
	}
	sort.Strings(got)
	return got
}
