package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/config"
)

const completionHelp = `mailferry completion - a shell completion script

USAGE
  mailferry completion bash|zsh|fish
  mailferry completion accounts FILE

Prints a script that completes mailferry's commands, their flags, the values
of flags that take one of a list (--on-locked fail|skip|wait, --log-format,
--progress, --flags, --internal-date), file names for the flags that take a
file, *.toml files for -c/--config, and for --only the account names of the
config file given with -c on the same command line. The scripts are made
from the commands' own flags, so they match this binary.

  bash:  mailferry completion bash > /etc/bash_completion.d/mailferry
         (or: source <(mailferry completion bash) in ~/.bashrc)
  zsh:   mailferry completion zsh > "${fpath[1]}/_mailferry"
         (or: source <(mailferry completion zsh) after compinit)
  fish:  mailferry completion fish > ~/.config/fish/completions/mailferry.fish

The Debian and RPM packages install all three.

'mailferry completion accounts FILE' prints the account names of a config
file, one a line; the scripts call it to complete --only. It loads the file
as 'config check' does: no connection, no password command.

` + exitStatusHelp

// valueKind says what a flag's value is, so a shell knows what to offer.
type valueKind int

const (
	valueNone     valueKind = iota // a switch: no value
	valueFree                      // a number, a duration, a URL: nothing to offer
	valueWords                     // one of a fixed list
	valueFile                      // a file name
	valueConfig                    // a config file (*.toml)
	valueAccounts                  // account names of the config given with -c
)

// fixedValues are the values of the flags that take one of a list. The
// commands' own checks accept exactly these: a test sends each one, and one
// outside the list, through every command that has the flag.
func fixedValues() map[string][]string {
	return map[string][]string{
		"flags":         {"none", "seen", "status"},
		"format":        {"csv", "json"},
		"internal-date": {"received", "date", "now"},
		"log-format":    {"text", "json"},
		"on-locked":     {"fail", "skip", "wait"},
		"progress":      {"auto", "bar", "lines", "none"},
		"side":          {"source", "destination"},
	}
}

// valueKinds are the flags whose value is a file or an account name.
func valueKinds() map[string]valueKind {
	return map[string]valueKind{
		"config":               valueConfig,
		"dest-password-file":   valueFile,
		"export-map":           valueFile,
		"only":                 valueAccounts,
		"output":               valueFile,
		"report":               valueFile,
		"source-password-file": valueFile,
		"state":                valueFile,
		"tls-ca":               valueFile,
		"ui-token-file":        valueFile,
	}
}

// flagInfo is one flag as the completion scripts offer it.
type flagInfo struct {
	name, short string
	usage       string // first clause of the flag's usage
	kind        valueKind
	values      []string // valueWords
	repeatable  bool
}

// commandInfo is one command as the completion scripts offer it.
type commandInfo struct {
	word    string // the first word: "copy", "config"
	sub     string // the second words it takes, by spaces: "check" for config, "migrate upgrade" for ledger
	summary string
	flags   []flagInfo
}

// commandFlags returns the flag set a command builds, by running it with
// the describeFlags hook: the command stops before doing anything.
func commandFlags(ctx context.Context, args []string) (*pflag.FlagSet, error) {
	var fs *pflag.FlagSet
	var out strings.Builder
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out,
		getenv: func(string) string { return "" }, describeFlags: func(f *pflag.FlagSet) { fs = f }}
	if code := run(ctx, args, e); fs == nil {
		return nil, fmt.Errorf("mailferry %s built no flag set (exit %d): %s", strings.Join(args, " "), code, out.String())
	}
	return fs, nil
}

// describeCommands lists every command with its visible flags (not
// --help, which every command has, nor hidden ones, which are for tests).
func describeCommands(ctx context.Context) ([]commandInfo, error) {
	values, kinds := fixedValues(), valueKinds()
	var out []commandInfo
	for _, c := range commands() {
		fs, err := commandFlags(ctx, c.args)
		if err != nil {
			return nil, err
		}
		word, sub, _ := strings.Cut(c.name, " ")
		ci := commandInfo{word: word, sub: sub, summary: c.summary()}
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			fi := flagInfo{name: f.Name, short: f.Shorthand, usage: firstClause(f.Usage),
				repeatable: strings.HasSuffix(f.Value.Type(), "Slice")}
			switch {
			case f.NoOptDefVal != "":
				fi.kind = valueNone
			case values[f.Name] != nil:
				fi.kind, fi.values = valueWords, values[f.Name]
			case kinds[f.Name] != 0:
				fi.kind = kinds[f.Name]
			default:
				fi.kind = valueFree
			}
			ci.flags = append(ci.flags, fi)
		})
		if n := len(out); n > 0 && out[n-1].word == word && sub != "" {
			// Another second word of the same command (ledger migrate,
			// ledger upgrade): one entry, its second words a list, and
			// the flags of each offered after any of them.
			prev := &out[n-1]
			prev.sub += " " + sub
			for _, f := range ci.flags {
				if !slices.ContainsFunc(prev.flags, func(g flagInfo) bool { return g.name == f.name }) {
					prev.flags = append(prev.flags, f)
				}
			}
			continue
		}
		out = append(out, ci)
	}
	return out, nil
}

// firstClause shortens a flag's usage for a shell's menu: up to the first
// "; " or example, without leaving a parenthesis open.
func firstClause(s string) string {
	for _, sep := range []string{"; ", " (e.g."} {
		if i := strings.Index(s, sep); i > 0 {
			s = s[:i]
		}
	}
	if strings.Count(s, "(") > strings.Count(s, ")") {
		s = strings.TrimSpace(s[:strings.LastIndex(s, "(")])
	}
	return s
}

// runCompletion is 'mailferry completion bash|zsh|fish' and
// 'mailferry completion accounts FILE'.
func runCompletion(ctx context.Context, args []string, e *env) (int, error) {
	fs := pflag.NewFlagSet("completion", pflag.ContinueOnError)
	if done, err := parseFlags(fs, args, e, completionHelp); done || err != nil {
		return helpOrUsage(done, err)
	}
	if fs.NArg() == 2 && fs.Arg(0) == "accounts" {
		return completeAccounts(fs.Arg(1), e)
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("want one shell: bash, zsh or fish")
	}
	var write func(io.Writer, []commandInfo)
	switch fs.Arg(0) {
	case "bash":
		write = writeBash
	case "zsh":
		write = writeZsh
	case "fish":
		write = writeFish
	default:
		return exitUsage, usagef("unknown shell %q: want bash, zsh or fish", fs.Arg(0))
	}
	cmds, err := describeCommands(ctx)
	if err != nil {
		return exitFatal, err
	}
	write(e.stdout, cmds)
	return exitOK, nil
}

// completeAccounts prints the account names of a config file, one a line.
func completeAccounts(path string, e *env) (int, error) {
	cfg, _, err := config.Load(path)
	if err != nil {
		return exitUsage, err
	}
	for _, a := range cfg.Accounts {
		fmt.Fprintln(e.stdout, a.Name)
	}
	return exitOK, nil
}

// shellNames are the shells 'mailferry completion' writes for.
func shellNames() []string { return []string{"bash", "zsh", "fish"} }

// topWords are the words a shell offers after 'mailferry'.
func topWords(cmds []commandInfo) []string {
	var w []string
	for _, c := range cmds {
		w = append(w, c.word)
	}
	return append(w, "help")
}

// flagWords are a command's flags as typed: --name and -s.
func flagWords(c commandInfo) []string {
	var w []string
	for _, f := range c.flags {
		w = append(w, "--"+f.name)
		if f.short != "" {
			w = append(w, "-"+f.short)
		}
	}
	sort.Strings(w)
	return append(w, "--help")
}

// writeBash writes the bash script: one function, a case per command.
func writeBash(w io.Writer, cmds []commandInfo) {
	fmt.Fprintf(w, `# bash completion for mailferry (made by 'mailferry completion bash' from its flags)

# _mailferry_files PREFIX CUR [EXT]: file names, or only *.EXT files and directories.
_mailferry_files() {
	compopt -o filenames 2>/dev/null
	local IFS=$'\n'
	if [[ -n $3 ]]; then
		COMPREPLY=($(compgen -P "$1" -d -- "$2") $(compgen -P "$1" -f -X "!*.$3" -- "$2"))
	else
		COMPREPLY=($(compgen -P "$1" -f -- "$2"))
	fi
}

# _mailferry_accounts PREFIX CUR: the account names of the config file given
# with -c or --config on this command line; CUR may be a list (a,b,c).
_mailferry_accounts() {
	local cfg= i w
	for ((i = 2; i < ${#COMP_WORDS[@]}; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		-c | --config)
			cfg=${COMP_WORDS[i + 1]}
			[[ $cfg == = ]] && cfg=${COMP_WORDS[i + 2]}
			;;
		--config=*) cfg=${w#--config=} ;;
		esac
	done
	[[ -n $cfg ]] || return 0
	[[ $cfg == "~/"* ]] && cfg=$HOME/${cfg#"~/"}
	local lead= cur=$2 prog=${COMP_WORDS[0]}
	[[ $prog == "~/"* ]] && prog=$HOME/${prog#"~/"}
	if [[ $cur == *,* ]]; then
		lead=${cur%%,*},
		cur=${cur##*,}
	fi
	local IFS=$'\n'
	COMPREPLY=($(compgen -P "$1$lead" -W "$("$prog" completion accounts "$cfg" 2>/dev/null)" -- "$cur"))
}

_mailferry() {
	COMPREPLY=()
	local cur=${COMP_WORDS[COMP_CWORD]} prev= pre=
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# --flag=value: bash splits the word at '=' unless COMP_WORDBREAKS lacks it.
	if [[ $cur == = ]]; then
		cur=
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	elif [[ $cur == --*=* ]]; then
		prev=${cur%%%%=*}
		pre=$prev=
		cur=${cur#*=}
	fi
	if ((COMP_CWORD == 1)); then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "%s" -- "$cur"))
		fi
		return 0
	fi
	local cmd=${COMP_WORDS[1]}
	case $cmd in
`, strings.Join(topWords(cmds), " "))
	for _, c := range cmds {
		if c.sub != "" {
			fmt.Fprintf(w, "\t%s)\n\t\tif ((COMP_CWORD == 2)); then\n\t\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\t\t\treturn 0\n\t\tfi\n\t\t;;\n", c.word, c.sub)
		}
	}
	fmt.Fprintf(w, "\tesac\n\tcase $cmd:$prev in\n")
	for _, c := range cmds {
		for _, f := range c.flags {
			pat := c.word + ":--" + f.name
			if f.short != "" {
				pat += " | " + c.word + ":-" + f.short
			}
			var action string
			switch f.kind {
			case valueNone:
				continue
			case valueWords:
				action = fmt.Sprintf(`COMPREPLY=($(compgen -P "$pre" -W %q -- "$cur"))`, strings.Join(f.values, " "))
			case valueFile:
				action = `_mailferry_files "$pre" "$cur"`
			case valueConfig:
				action = `_mailferry_files "$pre" "$cur" toml`
			case valueAccounts:
				action = `_mailferry_accounts "$pre" "$cur"`
			case valueFree:
				action = ":"
			}
			fmt.Fprintf(w, "\t%s)\n\t\t%s\n\t\treturn 0\n\t\t;;\n", pat, action)
		}
	}
	fmt.Fprintf(w, "\tesac\n\tif [[ $cur == -* ]]; then\n\t\tcase $cmd in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c.word, strings.Join(flagWords(c), " "))
	}
	fmt.Fprintf(w, "\t\thelp) COMPREPLY=($(compgen -W \"--man\" -- \"$cur\")) ;;\n")
	fmt.Fprintf(w, `		esac
		return 0
	fi
	case $cmd in
	help) ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W %q -- "$cur")) ;;
	completion) ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W %q -- "$cur")) ;;
	esac
	return 0
}

complete -F _mailferry mailferry
`, strings.Join(topWords(cmds)[:len(cmds)], " "), strings.Join(shellNames(), " "))
}

// zshQuote escapes a flag's description for _arguments: inside a
// single-quoted word, between [ and ].
func zshQuote(s string) string {
	return strings.NewReplacer(`'`, `'\''`, `\`, `\\`, `[`, `\[`, `]`, `\]`).Replace(s)
}

// writeZsh writes the zsh script: _arguments specs per command.
func writeZsh(w io.Writer, cmds []commandInfo) {
	fmt.Fprint(w, `#compdef mailferry
# zsh completion for mailferry (made by 'mailferry completion zsh' from its flags)

# The account names of the config file given with -c or --config.
_mailferry_accounts() {
	local cfg i
	for ((i = 1; i <= $#words; i++)); do
		case $words[i] in
		(-c|--config) cfg=$words[i+1] ;;
		(--config=*) cfg=${words[i]#--config=} ;;
		esac
	done
	[[ -n $cfg ]] || return 1
	[[ $cfg == "~/"* ]] && cfg=$HOME/${cfg#"~/"}
	local -a accounts
	accounts=(${(f)"$(command $_mailferry_prog completion accounts $cfg 2>/dev/null)"})
	(( $#accounts )) || return 1
	_values -s , account $accounts
}

_mailferry() {
	local _mailferry_prog=$words[1] curcontext=$curcontext state line ret=1
	typeset -A opt_args
	_arguments -C \
		'(- *)'{-h,--help}'[show help]' \
		'(- *)--version[print the version]' \
		'1:command:->command' \
		'*::argument:->argument' && ret=0
	case $state in
	(command)
		local -a cmds
		cmds=(
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t\t'%s:%s'\n", c.word, zshQuote(c.summary))
	}
	fmt.Fprint(w, "\t\t\t'help:a command'\\''s help, or the man page'\n\t\t)\n")
	fmt.Fprint(w, "\t\t_describe -t commands 'mailferry command' cmds && ret=0\n\t\t;;\n\t(argument)\n\t\tcase $words[1] in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "\t\t(%s)\n", c.word)
		indent := "\t\t\t"
		if c.sub != "" {
			// Past the second word, its flags: _arguments reads them
			// after the words it is given, so the second word goes.
			fmt.Fprintf(w, "\t\t\tif (( CURRENT == 2 )); then\n\t\t\t\t_values command '%s' && ret=0\n\t\t\t\treturn ret\n\t\t\tfi\n\t\t\tshift words\n\t\t\t(( CURRENT-- ))\n",
				strings.ReplaceAll(c.sub, " ", "' '"))
		}
		fmt.Fprintf(w, "%s_arguments -s -S \\\n", indent)
		for _, f := range c.flags {
			desc := "[" + zshQuote(f.usage) + "]"
			var arg string
			switch f.kind {
			case valueNone:
			case valueWords:
				arg = ":" + f.name + ":(" + strings.Join(f.values, " ") + ")"
			case valueFile:
				arg = ":file:_files"
			case valueConfig:
				arg = `:config file:_files -g "*.toml(-.)"`
			case valueAccounts:
				arg = ":account:_mailferry_accounts"
			case valueFree:
				arg = ":" + f.name + ": "
			}
			eq := ""
			if f.kind != valueNone {
				eq = "="
			}
			rep := ""
			if f.repeatable {
				rep = "*"
			}
			if f.short != "" {
				fmt.Fprintf(w, "%s\t'%s(-%s --%s)'{-%s,--%s%s}'%s%s' \\\n", indent, rep, f.short, f.name, f.short, f.name, eq, desc, arg)
			} else {
				fmt.Fprintf(w, "%s\t'%s--%s%s%s%s' \\\n", indent, rep, f.name, eq, desc, arg)
			}
		}
		switch c.word {
		case "completion":
			fmt.Fprintf(w, "%s\t'1:shell:(%s)' \\\n", indent, strings.Join(shellNames(), " "))
		}
		fmt.Fprintf(w, "%s\t'(- *)'{-h,--help}'[show help]' && ret=0\n\t\t\t;;\n", indent)
	}
	var words []string
	for _, c := range cmds {
		words = append(words, c.word)
	}
	fmt.Fprintf(w, `		(help)
			_arguments '(- *)--man[print the man page]' '1:command:(%s)' && ret=0
			;;
		esac
		;;
	esac
	return ret
}

if [[ $funcstack[1] == _mailferry ]]; then
	_mailferry "$@"
else
	compdef _mailferry mailferry
fi
`, strings.Join(words, " "))
}

// fishQuote single-quotes s for fish.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// writeFish writes the fish script: one complete line per flag.
func writeFish(w io.Writer, cmds []commandInfo) {
	fmt.Fprint(w, `# fish completion for mailferry (made by 'mailferry completion fish' from its flags)

# True when no command has been typed yet.
function __mailferry_no_command
    set -l words (commandline -opc)
    test (count $words) -eq 1
end

# True when the command typed is $argv[1] (and its second word $argv[2]).
function __mailferry_command
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test "$words[2]" = $argv[1]; or return 1
    if set -q argv[2]
        test (count $words) -ge 3; and test "$words[3]" = $argv[2]
    end
end

# True right after 'mailferry $argv[1]', where its second word goes.
function __mailferry_wants_word
    set -l words (commandline -opc)
    test (count $words) -eq 2; and test "$words[2]" = $argv[1]
end

# The account names of the config file given with -c or --config; the
# token being completed may be a list (a,b,c).
function __mailferry_accounts
    set -l words (commandline -opc)
    set -l cfg
    for i in (seq (count $words))
        switch $words[$i]
            case -c --config
                set -l next (math $i + 1)
                set -q words[$next]; and set cfg $words[$next]
            case '--config=*'
                set cfg (string replace -- --config= '' $words[$i])
        end
    end
    test -n "$cfg"; or return
    set cfg (string replace -r -- '^~/' "$HOME/" $cfg)
    type -q $words[1]; or return
    set -l lead (string replace -r -- '[^,]*$' '' (commandline -ct))
    for name in ($words[1] completion accounts $cfg 2>/dev/null)
        echo $lead$name
    end
end

complete -c mailferry -f
complete -c mailferry -n __mailferry_no_command -s h -l help -d 'show help'
complete -c mailferry -n __mailferry_no_command -l version -d 'print the version'
`)
	for _, c := range cmds {
		fmt.Fprintf(w, "complete -c mailferry -n __mailferry_no_command -a %s -d %s\n", c.word, fishQuote(c.summary))
	}
	fmt.Fprint(w, "complete -c mailferry -n __mailferry_no_command -a help -d 'a command'\\''s help, or the man page'\n")
	var words []string
	for _, c := range cmds {
		words = append(words, c.word)
		cond := "__mailferry_command " + c.word
		if c.sub != "" {
			fmt.Fprintf(w, "complete -c mailferry -n '__mailferry_wants_word %s' -a %s\n", c.word, fishQuote(c.sub))
			if !strings.Contains(c.sub, " ") {
				cond += " " + c.sub
			}
		}
		for _, f := range c.flags {
			line := fmt.Sprintf("complete -c mailferry -n '%s'", cond)
			if f.short != "" {
				line += " -s " + f.short
			}
			line += " -l " + f.name
			switch f.kind {
			case valueWords:
				line += " -x -a " + fishQuote(strings.Join(f.values, " "))
			case valueFile:
				line += " -r -F"
			case valueConfig:
				line += " -x -k -a '(__fish_complete_suffix .toml)'"
			case valueAccounts:
				line += " -x -a '(__mailferry_accounts)'"
			case valueFree:
				line += " -x"
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishQuote(f.usage))
		}
		fmt.Fprintf(w, "complete -c mailferry -n '%s' -s h -l help -d 'show help'\n", cond)
	}
	fmt.Fprintf(w, "complete -c mailferry -n '__mailferry_wants_word help' -a %s\n", fishQuote(strings.Join(words, " ")))
	fmt.Fprint(w, "complete -c mailferry -n '__mailferry_command help' -l man -d 'print the man page'\n")
	fmt.Fprintf(w, "complete -c mailferry -n '__mailferry_wants_word completion' -a %s\n", fishQuote(strings.Join(shellNames(), " ")))
}
