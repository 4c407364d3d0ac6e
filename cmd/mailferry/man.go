package main

import (
	"fmt"
	"strings"
)

// manPage is the mailferry(1) man page: the main help's synopsis and
// description, then every command's --help text, then the exit status,
// environment and files. The help texts are the one source: the page is
// made from them each time, never edited by hand.
func manPage() string {
	var b strings.Builder
	v := currentVersion()
	date := ""
	if v.Date != "unknown" {
		date, _, _ = strings.Cut(v.Date, "T")
	}
	fmt.Fprintf(&b, ".\\\" Made by 'mailferry help --man' from the commands' --help texts.\n")
	fmt.Fprintf(&b, ".TH MAILFERRY 1 %q %q \"User Commands\"\n", date, "mailferry "+v.Version)
	// No hyphenation and a ragged right margin: flag names, paths and
	// variables must stay whole to be copied from the page.
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\nmailferry \\- " + roffText(mainSummary()) + "\n")

	sections := helpSections(mainHelp)
	// The main help's USAGE block is the synopsis; the paragraphs after it
	// are the description.
	usage := sections["USAGE"]
	synopsis, description := usage, []string(nil)
	for i, l := range usage {
		if strings.TrimSpace(l) == "" {
			synopsis, description = usage[:i], usage[i+1:]
			break
		}
	}
	b.WriteString(".SH SYNOPSIS\n")
	writeNoFill(&b, ".PP", synopsis)
	b.WriteString(".SH DESCRIPTION\n")
	writeFilled(&b, description)
	b.WriteString(".PP\nEach command's flags can also be set through an environment variable spelled like the flag: " +
		roffText("--dry-run is MAILFERRY_DRY_RUN=true.") + "\n")
	b.WriteString(".SS EXAMPLES\n")
	writeNoFill(&b, ".PP", sections["EXAMPLES"])

	b.WriteString(".SH COMMANDS\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, ".SS \"mailferry %s\"\n", roffText(c.name))
		writeFilled(&b, []string{c.summary() + "."})
		body := strings.TrimPrefix(c.help, firstLine(c.help)+"\n")
		// The commands that share the main exit status say so once, below.
		body = strings.TrimSuffix(body, exitStatusHelp)
		writeHelpBody(&b, body)
	}
	b.WriteString(".SH EXIT STATUS\n")
	writeNoFill(&b, ".PP", helpSections(exitStatusHelp)["EXIT STATUS"])
	b.WriteString(`.PP
The first interrupt (Ctrl-C or SIGTERM) lets the current batch finish and
commit, and the summary is still printed; a second one exits at once with
status 130. Nothing is lost either way: the next run reconciles.
.SH ENVIRONMENT
.TP
.B MAILFERRY_SOURCE_PASSWORD\fR, \fBMAILFERRY_DEST_PASSWORD
The passwords (or OAuth2 bearer tokens) of the source and destination of
.BR "mailferry copy" ", " verify " and " plan
with URLs.
.TP
.B MAILFERRY_\fIFLAG
Any flag, spelled in capitals with underscores:
.B MAILFERRY_DRY_RUN=true
is
.BR \-\-dry\-run .
A flag on the command line wins.
.TP
.B XDG_STATE_HOME
Where the default checkpoint lives:
.IR $XDG_STATE_HOME/mailferry/mailferry.db
(\fI~/.local/state\fR when unset).
.SH FILES
.TP
.I /usr/share/doc/mailferry/migrate.toml.example
Every config file key, with its default, in a commented example.
.TP
.I /usr/lib/systemd/system/mailferry-fetch.service\fR, \fImailferry-fetch.timer
A one-shot run of
.I /etc/mailferry/fetch.toml
every 5 minutes, like cron.
.TP
.I /usr/lib/systemd/system/mailferry.service
A long-running service polling the accounts of
.IR /etc/mailferry/fetch.toml .
.TP
.I /usr/lib/systemd/system/mailferry@.service
The same for
.IR /etc/mailferry/NAME.toml ,
one instance per config file:
.BR "systemctl enable \-\-now mailferry@NAME" .
.PP
The packages install the units but enable none of them.
.SH SEE ALSO
.BR systemctl (1),
.BR systemd.timer (5),
.BR crontab (5),
and the documentation in
.IR /usr/share/doc/mailferry/ .
`)
	return b.String()
}

// mainSummary is what the main help's first line says mailferry does.
func mainSummary() string {
	_, s, _ := strings.Cut(firstLine(mainHelp), " - ")
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// isHeading tells a help text's section headings: capitals at the margin.
func isHeading(line string) bool {
	if len(line) < 3 || line[0] == ' ' {
		return false
	}
	for _, r := range line {
		if (r < 'A' || r > 'Z') && r != ' ' {
			return false
		}
	}
	return true
}

// helpSections splits a help text at its headings; the text before the
// first heading is under "". Leading and trailing blank lines are dropped.
func helpSections(help string) map[string][]string {
	out := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(help, "\n") {
		if isHeading(l) {
			cur = l
			continue
		}
		out[cur] = append(out[cur], l)
	}
	for k, v := range out {
		out[k] = trimBlank(v)
	}
	return out
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// writeHelpBody writes a command's help after its first line: each heading
// in bold, each block as the help shows it.
func writeHelpBody(b *strings.Builder, body string) {
	var block []string
	lead := ".PP"
	flush := func() {
		if block = trimBlank(block); len(block) > 0 {
			writeNoFill(b, lead, block)
		}
		block = nil
	}
	for _, l := range strings.Split(body, "\n") {
		if isHeading(l) {
			flush()
			b.WriteString(".PP\n.B " + roffText(l) + "\n")
			lead = "" // the block starts on the next line, under its heading
			continue
		}
		if strings.TrimSpace(l) == "" && len(trimBlank(block)) > 0 {
			flush()
			lead = ".PP"
			continue
		}
		block = append(block, l)
	}
	flush()
}

// writeNoFill writes lines as they are, less the indent they all share
// (the man page indents sections itself), after lead (".PP" or nothing).
func writeNoFill(b *strings.Builder, lead string, lines []string) {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	if lead != "" {
		b.WriteString(lead + "\n")
	}
	b.WriteString(".nf\n")
	for _, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		b.WriteString(roffLine(l) + "\n")
	}
	b.WriteString(".fi\n")
}

// writeFilled writes paragraphs separated by blank lines, for troff to fill.
func writeFilled(b *strings.Builder, lines []string) {
	b.WriteString(".PP\n")
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			b.WriteString(".PP\n")
			continue
		}
		b.WriteString(roffLine(strings.TrimSpace(l)) + "\n")
	}
}

// roffText escapes text for troff: backslashes, and minus signs, which
// must stay ASCII hyphen-minus so flags can be copied from the page.
func roffText(s string) string {
	return strings.NewReplacer(`\`, `\e`, `-`, `\-`).Replace(s)
}

// roffLine is roffText for a whole line: a line may not start with a
// control character (. or ').
func roffLine(s string) string {
	s = roffText(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
