package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/mailferry/mailferry/account"
	"github.com/mailferry/mailferry/pipeline"
)

// report is the end-of-run report: the text summary on stdout, or with
// --json one JSON document.
type report struct {
	Version  int       `json:"version"`
	Command  string    `json:"command"`
	DryRun   bool      `json:"dry_run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	ExitCode int       `json:"exit_code"`
	// Interrupted: a signal stopped the run; the next run resumes it.
	Interrupted bool              `json:"interrupted,omitempty"`
	Accounts    []*pipeline.Stats `json:"accounts"`
	Totals      totals            `json:"totals"`
}

type totals struct {
	Accounts       int `json:"accounts"`
	AccountsFailed int `json:"accounts_failed"`
	// AccountsNotStarted are the accounts an interrupt kept from starting.
	AccountsNotStarted int `json:"accounts_not_started,omitempty"`
	// AccountsPaused are the accounts that ended the run paused, which is
	// no failure: by an operator (not started), or by a daily quota until
	// a later time; Waiting the messages a quota's pause left for then.
	AccountsPaused int `json:"accounts_paused,omitempty"`
	Waiting        int `json:"waiting,omitempty"`
	Listed         int `json:"listed"`
	Copied         int `json:"copied"`
	AlreadyDone    int `json:"already_done"`
	Reconciled     int `json:"reconciled"`
	// Matched and ProbablyPresent: see pipeline.Stats (destination
	// matching).
	Matched         int `json:"matched"`
	ProbablyPresent int `json:"probably_present,omitempty"`
	// LateCopiesRemoved, LateCopiesAdopted and LateCopiesKept: see pipeline.Stats.
	LateCopiesRemoved int `json:"late_copies_removed,omitempty"`
	LateCopiesAdopted int `json:"late_copies_adopted,omitempty"`
	LateCopiesKept    int `json:"late_copies_kept,omitempty"`
	Skipped           int `json:"skipped"`
	SkippedBefore     int `json:"skipped_before,omitempty"`
	Failed            int `json:"failed"`
	NotYetCopied      int `json:"not_yet_copied"`
	Deleted           int `json:"deleted"`
	DeleteWaiting     int `json:"delete_waiting"`
	Gone              int `json:"gone,omitempty"`
	// Moved, Removed, FoldersDeleted, FoldersRenamed and MirrorHeld: see
	// pipeline.Stats.
	Moved          int            `json:"moved,omitempty"`
	Removed        int            `json:"removed,omitempty"`
	FoldersDeleted int            `json:"folders_deleted,omitempty"`
	FoldersRenamed int            `json:"folders_renamed,omitempty"`
	MirrorHeld     int            `json:"mirror_held_back,omitempty"`
	Bytes          int64          `json:"bytes"`
	Normalised     int            `json:"normalised"`
	LineEndsFixed  int            `json:"line_ends_fixed"`
	DateSources    map[string]int `json:"date_sources,omitempty"`
	Seconds        float64        `json:"seconds"`
}

func newReport(command string, dryRun bool, started time.Time, stats []*pipeline.Stats, interrupted bool) *report {
	r := &report{Version: 1, Command: command, DryRun: dryRun, Started: started.UTC(),
		Finished: time.Now().UTC(), Accounts: stats, Interrupted: interrupted}
	t := &r.Totals
	for _, s := range stats {
		t.Accounts++
		if s.Error != "" && !interruptedStats(s) {
			t.AccountsFailed++
		}
		if s.Paused {
			t.AccountsPaused++
		}
		t.Waiting += s.Waiting
		t.Listed += s.Listed
		t.Copied += s.Copied
		t.AlreadyDone += s.AlreadyDone
		t.Reconciled += s.Reconciled
		t.Matched += s.Matched
		t.ProbablyPresent += s.ProbablyPresent
		t.LateCopiesRemoved += s.LateCopiesRemoved
		t.LateCopiesAdopted += s.LateCopiesAdopted
		t.LateCopiesKept += s.LateCopiesKept
		t.Skipped += s.Skipped
		t.SkippedBefore += s.SkippedBefore
		t.Failed += s.Failed
		t.NotYetCopied += s.NotYetCopied
		t.Deleted += s.Deleted
		t.DeleteWaiting += s.DeleteWaiting
		t.Gone += s.Gone
		t.Moved += s.Moved
		t.Removed += s.Removed
		t.FoldersDeleted += len(s.FoldersDeleted)
		t.FoldersRenamed += len(s.FoldersRenamed)
		t.MirrorHeld += s.MirrorHeld
		t.Bytes += s.Bytes
		t.Normalised += s.Normalised
		t.LineEndsFixed += s.LineEndsFixed
		for k, v := range s.DateSources {
			if t.DateSources == nil {
				t.DateSources = map[string]int{}
			}
			t.DateSources[k] += v
		}
	}
	t.Seconds = r.Finished.Sub(r.Started).Seconds()
	r.ExitCode = exitCodeFor(command, stats, interrupted)
	return r
}

// exitCodeFor decides the exit status of a command's run from its
// accounts. A folder named by the command line that is not there (class
// "config") is a usage error of `copy`; in a `run` of a config it fails
// that account only, like a partial run.
func exitCodeFor(command string, stats []*pipeline.Stats, interrupted bool) int {
	if interrupted {
		return exitInterrupted
	}
	failed, usage, partial := 0, 0, false
	for _, s := range stats {
		if s.Error != "" {
			failed++
		}
		if s.ErrorClass == classConfig {
			usage++
		}
		// A paused account (an operator's pause, a daily quota) is no
		// failure: the summary says it, the exit status is the others'.
		if s.Skipped > 0 || s.Failed > 0 || mirrorHeld(s) {
			partial = true
		}
	}
	switch {
	case usage > 0 && command == "copy":
		return exitUsage
	case failed > 0 && failed == len(stats) && usage < failed:
		return exitFatal
	case failed > 0 || partial:
		return exitPartial
	}
	return exitOK
}

// mirrorHeld reports whether a mirror pass left something it could not
// do: removals over the cap or without UIDPLUS, folders that cannot tell.
func mirrorHeld(s *pipeline.Stats) bool {
	return s.MirrorHeld > 0 || len(s.MirrorUnsure) > 0
}

func (r *report) writeJSON(w io.Writer) error {
	return writeJSON(w, r)
}

// writeJSON writes v as one indented JSON document. Characters that HTML
// would mind stay as they are: "->" in an account's name must not become
// "-\u003e" (the reports are read by people and by scripts, never
// embedded in a page).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func (r *report) writeFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if err := r.writeJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("writing report %s: %w", path, err)
	}
	return f.Close()
}

// writeText prints the human summary, in width columns (the table of a
// run with several accounts is fitted to it).
func (r *report) writeText(w io.Writer, width int) {
	t := r.Totals
	what := "copied"
	if r.DryRun {
		what = "would copy"
	}
	many := len(r.Accounts) > 1
	if many {
		writeTable(w, r.Accounts, width)
		fmt.Fprintln(w)
	}
	for _, s := range r.Accounts {
		// Under a table, each line says which account it is about.
		prefix := "  "
		if many {
			prefix = s.Account + ": "
		} else {
			fmt.Fprintf(w, "%s\n", s.Account)
		}
		if s.Locked {
			fmt.Fprintf(w, "%sskipped: another run is working on this account (--on-locked skip)\n", prefix)
		}
		switch {
		case s.Paused && s.PausedUntil != nil:
			fmt.Fprintf(w, "%spaused until %s: %s; %s waiting for it\n", prefix,
				s.PausedUntil.Local().Format("2006-01-02 15:04 MST"), s.PausedReason, plural(s.Waiting, "message"))
		case s.Paused:
			fmt.Fprintf(w, "%spaused: %s\n", prefix, s.PausedReason)
		}
		if s.Error != "" && !interruptedStats(s) {
			fmt.Fprintf(w, "%serror (%s): %s\n", prefix, s.ErrorClass, s.Error)
			if s.Hint != "" {
				fmt.Fprintf(w, "%shint: %s\n", prefix, s.Hint)
			}
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "%snote: %s\n", prefix, n)
		}
		for _, sk := range s.Skips {
			fmt.Fprintf(w, "%sskipped %s: %s\n", prefix, sk.Key, sk.Reason)
		}
		for _, sk := range s.SkipsBefore {
			fmt.Fprintf(w, "  skipped by an earlier run %s: %s\n", sk.Key, sk.Reason)
		}
		for _, f := range s.Failures {
			fmt.Fprintf(w, "%sfailed %s (the next run tries again): %s\n", prefix, f.Key, f.Reason)
		}
		if len(s.FoldersCreated) > 0 {
			fmt.Fprintf(w, "%screated %s on the destination: %s\n", prefix,
				map[bool]string{true: "a folder", false: "folders"}[len(s.FoldersCreated) == 1], strings.Join(s.FoldersCreated, ", "))
		}
		writeMirror(w, s, r.DryRun, prefix)
	}
	rate := ""
	if t.Seconds > 0 && t.Copied > 0 && !r.DryRun {
		rate = fmt.Sprintf(" (%.0f msg/s, %.1f MB/s)", float64(t.Copied)/t.Seconds, float64(t.Bytes)/1e6/t.Seconds)
	}
	fmt.Fprintf(w, "%s %d of %s, %.1f MB in %.1f s%s; ", what, t.Copied, plural(t.Listed, "message"), float64(t.Bytes)/1e6, t.Seconds, rate)
	if t.Matched > 0 {
		fmt.Fprintf(w, "%d already on the destination (found there byte for byte, not sent), ", t.Matched)
	}
	fmt.Fprintf(w, "%d already done, %d skipped, %d failed", t.AlreadyDone, t.Skipped, t.Failed)
	if t.ProbablyPresent > 0 {
		fmt.Fprintf(w, " (%d of the skipped probably on the destination already: same Message-ID and size, other bytes)", t.ProbablyPresent)
	}
	if t.NotYetCopied > 0 {
		fmt.Fprintf(w, ", %d not yet copied", t.NotYetCopied)
	}
	if t.Reconciled > 0 {
		fmt.Fprintf(w, ", %d found already copied by an interrupted run", t.Reconciled)
	}
	if t.LateCopiesRemoved > 0 {
		fmt.Fprintf(w, ", %d late duplicate copies removed", t.LateCopiesRemoved)
	}
	if t.LateCopiesKept > 0 {
		fmt.Fprintf(w, ", %d late duplicate copies the destination could not remove (see the log)", t.LateCopiesKept)
	}
	if t.Deleted > 0 {
		if r.DryRun {
			fmt.Fprintf(w, ", %d would be deleted at the source", t.Deleted)
		} else {
			fmt.Fprintf(w, ", %d deleted at the source", t.Deleted)
		}
	}
	if t.DeleteWaiting > 0 {
		fmt.Fprintf(w, ", %d waiting for their delete_after period", t.DeleteWaiting)
	}
	if t.Gone > 0 {
		fmt.Fprintf(w, ", %d gone from the source since listed", t.Gone)
	}
	if t.Moved > 0 || t.Removed > 0 || t.FoldersDeleted > 0 || t.FoldersRenamed > 0 {
		verb := ""
		if r.DryRun {
			verb = "would be "
		}
		fmt.Fprintf(w, ", mirror: %d %smoved, %d %sremoved on the destination", t.Moved, verb, t.Removed, verb)
		if t.FoldersRenamed > 0 {
			fmt.Fprintf(w, ", %d folders %srenamed", t.FoldersRenamed, verb)
		}
		if t.FoldersDeleted > 0 {
			fmt.Fprintf(w, ", %d folders %sdeleted", t.FoldersDeleted, verb)
		}
	}
	if t.MirrorHeld > 0 {
		fmt.Fprintf(w, ", %d removals held back (see above)", t.MirrorHeld)
	}
	if t.AccountsPaused > 0 {
		fmt.Fprintf(w, ", %s paused", plural(t.AccountsPaused, "account"))
		if t.Waiting > 0 {
			fmt.Fprintf(w, " (%s waiting for them)", plural(t.Waiting, "message"))
		}
	}
	if t.SkippedBefore > 0 {
		fmt.Fprintf(w, ", %d skipped for good by earlier runs (--retry-skipped sends them again)", t.SkippedBefore)
	}
	fmt.Fprintln(w)
	if len(t.DateSources) > 0 {
		var parts []string
		keys := make([]string, 0, len(t.DateSources))
		for k := range t.DateSources {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, t.DateSources[k]))
		}
		fmt.Fprintf(w, "internal dates from: %s\n", strings.Join(parts, ", "))
	}
	if t.Normalised > 0 {
		fmt.Fprintf(w, "line ends: %s had a bare LF or CR turned into CRLF (%s), as IMAP requires\n",
			plural(t.Normalised, "message"), plural(t.LineEndsFixed, "line end"))
	}
	if r.Interrupted {
		if t.AccountsNotStarted > 0 {
			fmt.Fprintf(w, "%s not started\n", plural(t.AccountsNotStarted, "account"))
		}
		fmt.Fprintln(w, "interrupted: run the same command again to resume")
		return
	}
	if t.Copied == 0 && t.Skipped == 0 && t.Failed == 0 && t.Deleted == 0 && t.AccountsFailed == 0 && t.AccountsPaused == 0 && !anyLocked(r.Accounts) &&
		t.Moved == 0 && t.Removed == 0 && t.FoldersDeleted == 0 && t.FoldersRenamed == 0 && t.MirrorHeld == 0 && !anyMirrorHeld(r.Accounts) {
		if t.SkippedBefore > 0 {
			fmt.Fprintf(w, "nothing new to do: the destination has every message but the %d skipped for good by earlier runs\n", t.SkippedBefore)
		} else {
			fmt.Fprintln(w, "nothing to do: the destination already has every message")
		}
	}
}

// writeMirror prints what a mirror pass held back, and the removals and
// moves of a dry run or held back by the caps; prefix starts each line
// (the account's name under a table).
func writeMirror(w io.Writer, s *pipeline.Stats, dryRun bool, prefix string) {
	for _, u := range s.MirrorUnsure {
		fmt.Fprintf(w, "%smirror: cannot tell what was deleted in %q (%s): nothing of it removed\n", prefix, u.Folder, u.Reason)
	}
	if s.MirrorRefused != "" {
		fmt.Fprintf(w, "%smirror: %s: nothing removed\n", prefix, s.MirrorRefused)
	}
	if s.MirrorOverCap {
		fmt.Fprintf(w, "%smirror: this pass would remove %d copies, over the cap of %d: nothing removed (raise --max-delete or --max-delete-percent if the deletions are real)\n",
			prefix, len(s.MirrorActions), s.MirrorCap)
	}
	held := s.MirrorOverCap || !dryRun && s.MirrorHeld > 0
	for _, a := range s.MirrorActions {
		what := "would remove"
		switch {
		case a.Action == "move" && dryRun:
			fmt.Fprintf(w, "%swould move %q: %q UID %d to %q\n", prefix, a.Key, a.Mailbox, a.UID, a.To)
			continue
		case held:
			what = "held back: remove"
		}
		fmt.Fprintf(w, "%s%s %q: %q UID %d\n", prefix, what, a.Key, a.Mailbox, a.UID)
	}
}

func anyMirrorHeld(stats []*pipeline.Stats) bool {
	for _, s := range stats {
		if mirrorHeld(s) {
			return true
		}
	}
	return false
}

// classConfig is the error class of an account stopped by a folder its
// command line or config names that is not there (*account.FolderError):
// nothing was touched, the command line or the config must change.
const classConfig = "config"

// isFolderError reports whether err is, or joins, an *account.FolderError.
func isFolderError(err error) bool {
	var fe *account.FolderError
	return errors.As(err, &fe)
}

// interruptedStats reports whether the account was stopped by the
// interrupt: not a failure, its summary says so once.
func interruptedStats(s *pipeline.Stats) bool { return s.ErrorClass == "interrupted" }

// plural is "1 account", "2 accounts".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func result(s *pipeline.Stats) string {
	switch {
	case interruptedStats(s):
		return "interrupted"
	case s.Error != "":
		return s.ErrorClass
	case s.Paused:
		return "paused"
	case s.Skipped > 0 || s.Failed > 0 || mirrorHeld(s):
		return "partial"
	}
	return "ok"
}

// anyLocked reports whether an account was left alone because another
// run held it: then "nothing to do" would not be true.
func anyLocked(stats []*pipeline.Stats) bool {
	for _, s := range stats {
		if s.Locked {
			return true
		}
	}
	return false
}

// writeTable prints one line per account, fitted to width: the numbers
// take what they need and the account names the rest, long ones shortened
// in the middle ("alice.very…example.org").
func writeTable(w io.Writer, stats []*pipeline.Stats, width int) {
	head := []string{"ACCOUNT", "LISTED", "COPIED", "BEFORE", "SKIPPED", "FAILED", "MB", "SECS", "RESULT"}
	rows := [][]string{head}
	for _, s := range stats {
		rows = append(rows, []string{s.Account, strconv.Itoa(s.Listed), strconv.Itoa(s.Copied),
			strconv.Itoa(s.AlreadyDone), strconv.Itoa(s.Skipped), strconv.Itoa(s.Failed),
			compact(float64(s.Bytes) / 1e6), compact(s.Seconds), result(s)})
	}
	const gap = 2
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	rest := 0
	for _, wd := range widths[1:] {
		rest += gap + wd
	}
	// The names get what is left, but never less than a readable minimum.
	const minName = 12
	widths[0] = min(widths[0], max(width-rest, minName, utf8.RuneCountInString(head[0])))
	for _, row := range rows {
		var b strings.Builder
		name := elide(row[0], widths[0])
		b.WriteString(name)
		b.WriteString(strings.Repeat(" ", widths[0]-utf8.RuneCountInString(name)))
		for i := 1; i < len(row); i++ {
			b.WriteString(strings.Repeat(" ", gap))
			if i == len(row)-1 {
				b.WriteString(row[i]) // the last column: no padding after it
				break
			}
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(row[i])))
			b.WriteString(row[i])
		}
		fmt.Fprintln(w, b.String())
	}
}

// elide shortens s to n characters by replacing its middle with "…",
// keeping its start and its end (the user and the destination of a URL
// pair, the domain of an address).
func elide(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 3 {
		return s
	}
	keep := n - 1
	head := (keep + 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(keep-head):])
}

// terminalWidth is how many columns the summary may use: the width of w
// when it is a terminal, else $COLUMNS, else 80.
func terminalWidth(w io.Writer, getenv func(string) string) int {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}

// compact prints v with one decimal below 100 and none above: a table
// column of megabytes or seconds stays narrow.
func compact(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
