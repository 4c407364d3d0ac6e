package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// report is the end-of-run report: the text summary on stdout, or with
// --json one JSON document.
type report struct {
	Version  int               `json:"version"`
	Command  string            `json:"command"`
	DryRun   bool              `json:"dry_run"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	ExitCode int               `json:"exit_code"`
	Accounts []*pipeline.Stats `json:"accounts"`
	Totals   totals            `json:"totals"`
}

type totals struct {
	Accounts       int `json:"accounts"`
	AccountsFailed int `json:"accounts_failed"`
	// AccountsPaused are the accounts that ended the run paused, which is
	// no failure: by an operator (not started), or by a daily quota until
	// a later time; Waiting the messages a quota's pause left for then.
	AccountsPaused int `json:"accounts_paused,omitempty"`
	Waiting        int `json:"waiting,omitempty"`
	Listed         int `json:"listed"`
	Copied         int `json:"copied"`
	AlreadyDone    int `json:"already_done"`
	Reconciled     int `json:"reconciled"`
	// LateCopiesRemoved, LateCopiesAdopted and LateCopiesKept: see pipeline.Stats.
	LateCopiesRemoved int `json:"late_copies_removed,omitempty"`
	LateCopiesAdopted int `json:"late_copies_adopted,omitempty"`
	LateCopiesKept    int `json:"late_copies_kept,omitempty"`
	Skipped           int `json:"skipped"`
	Failed            int `json:"failed"`
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
		Finished: time.Now().UTC(), Accounts: stats}
	t := &r.Totals
	for _, s := range stats {
		t.Accounts++
		if s.Error != "" {
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
		t.LateCopiesRemoved += s.LateCopiesRemoved
		t.LateCopiesAdopted += s.LateCopiesAdopted
		t.LateCopiesKept += s.LateCopiesKept
		t.Skipped += s.Skipped
		t.Failed += s.Failed
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
	r.ExitCode = exitCodeFor(stats, interrupted)
	return r
}

// exitCodeFor decides the exit status of a run from its accounts.
func exitCodeFor(stats []*pipeline.Stats, interrupted bool) int {
	if interrupted {
		return exitInterrupted
	}
	failed, partial := 0, false
	for _, s := range stats {
		if s.Error != "" {
			failed++
		}
		// A paused account (an operator's pause, a daily quota) is no
		// failure: the summary says it, the exit status is the others'.
		if s.Skipped > 0 || s.Failed > 0 || mirrorHeld(s) {
			partial = true
		}
	}
	switch {
	case failed > 0 && failed == len(stats):
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
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
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

// writeText prints the human summary.
func (r *report) writeText(w io.Writer) {
	t := r.Totals
	what := "copied"
	if r.DryRun {
		what = "would copy"
	}
	if len(r.Accounts) > 1 {
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "ACCOUNT\tLISTED\tCOPIED\tDONE BEFORE\tSKIPPED\tFAILED\tMB\tSECONDS\tRESULT\t")
		for _, s := range r.Accounts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%s\t\n", s.Account, s.Listed, s.Copied,
				s.AlreadyDone, s.Skipped, s.Failed, float64(s.Bytes)/1e6, s.Seconds, result(s))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, s := range r.Accounts {
		if len(r.Accounts) == 1 {
			fmt.Fprintf(w, "%s\n", s.Account)
		}
		if s.Locked {
			fmt.Fprintln(w, "  skipped: another run is working on this account (--on-locked skip)")
		}
		switch {
		case s.Paused && s.PausedUntil != nil:
			fmt.Fprintf(w, "  paused until %s: %s; %d messages wait for it\n",
				s.PausedUntil.Local().Format("2006-01-02 15:04 MST"), s.PausedReason, s.Waiting)
		case s.Paused:
			fmt.Fprintf(w, "  paused: %s\n", s.PausedReason)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  error (%s): %s\n", s.ErrorClass, s.Error)
			if s.Hint != "" {
				fmt.Fprintf(w, "  hint: %s\n", s.Hint)
			}
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, sk := range s.Skips {
			fmt.Fprintf(w, "  skipped %s: %s\n", sk.Key, sk.Reason)
		}
		for _, f := range s.Failures {
			fmt.Fprintf(w, "  failed %s (the next run tries again): %s\n", f.Key, f.Reason)
		}
		writeMirror(w, s, r.DryRun)
	}
	rate := ""
	if t.Seconds > 0 && t.Copied > 0 {
		rate = fmt.Sprintf(" (%.0f msg/s, %.1f MB/s)", float64(t.Copied)/t.Seconds, float64(t.Bytes)/1e6/t.Seconds)
	}
	fmt.Fprintf(w, "%s %d of %d messages, %.1f MB in %.1f s%s; %d already done, %d skipped, %d failed",
		what, t.Copied, t.Listed, float64(t.Bytes)/1e6, t.Seconds, rate, t.AlreadyDone, t.Skipped, t.Failed)
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
		fmt.Fprintf(w, ", %d accounts paused", t.AccountsPaused)
		if t.Waiting > 0 {
			fmt.Fprintf(w, " (%d messages wait for them)", t.Waiting)
		}
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
		fmt.Fprintf(w, "line ends: %d messages had a bare LF or CR turned into CRLF (%d line ends), as IMAP requires\n",
			t.Normalised, t.LineEndsFixed)
	}
	if t.Copied == 0 && t.Skipped == 0 && t.Failed == 0 && t.Deleted == 0 && t.AccountsFailed == 0 && t.AccountsPaused == 0 && !anyLocked(r.Accounts) &&
		t.Moved == 0 && t.Removed == 0 && t.FoldersDeleted == 0 && t.FoldersRenamed == 0 && t.MirrorHeld == 0 && !anyMirrorHeld(r.Accounts) {
		fmt.Fprintln(w, "nothing to do: the destination already has every message")
	}
}

// writeMirror prints what a mirror pass held back, and the removals and
// moves of a dry run or held back by the caps.
func writeMirror(w io.Writer, s *pipeline.Stats, dryRun bool) {
	for _, u := range s.MirrorUnsure {
		fmt.Fprintf(w, "  mirror: cannot tell what was deleted in %q (%s): nothing of it removed\n", u.Folder, u.Reason)
	}
	if s.MirrorRefused != "" {
		fmt.Fprintf(w, "  mirror: %s: nothing removed\n", s.MirrorRefused)
	}
	if s.MirrorOverCap {
		fmt.Fprintf(w, "  mirror: this pass would remove %d copies, over the cap of %d: nothing removed (raise --max-delete or --max-delete-percent if the deletions are real)\n",
			len(s.MirrorActions), s.MirrorCap)
	}
	held := s.MirrorOverCap || !dryRun && s.MirrorHeld > 0
	for _, a := range s.MirrorActions {
		what := "would remove"
		switch {
		case a.Action == "move" && dryRun:
			fmt.Fprintf(w, "  would move %q: %q UID %d to %q\n", a.Key, a.Mailbox, a.UID, a.To)
			continue
		case held:
			what = "held back: remove"
		}
		fmt.Fprintf(w, "  %s %q: %q UID %d\n", what, a.Key, a.Mailbox, a.UID)
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

func result(s *pipeline.Stats) string {
	switch {
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
