package pipeline

import (
	"slices"
	"time"
)

// Skip is one message that was not copied, and why.
type Skip struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Stats is the report of one account's run. Counts add up across attempts.
type Stats struct {
	// Account is the account's name (Options.Label), LedgerKey its key in
	// the ledger (Options.Name).
	Account   string `json:"account"`
	LedgerKey string `json:"ledger_key"`
	// Listed is how many messages the source holds.
	Listed int `json:"listed"`
	// Copied is how many messages this run appended.
	Copied int `json:"copied"`
	// AlreadyDone is how many messages an earlier run had copied (or skipped).
	AlreadyDone int `json:"already_done"`
	// Reconciled is how many pending messages of an interrupted run were
	// found on the destination and not sent again.
	Reconciled int `json:"reconciled"`
	// Resent is how many pending messages of an interrupted run were not on
	// the destination and were sent again.
	Resent int `json:"resent"`
	// LateCopiesRemoved is how many late first copies of resent messages
	// (an APPEND given up on that the server completed after all) were
	// found next to the copy sent again and expunged; LateCopiesAdopted
	// how many were the message's only copy and recorded as done;
	// LateCopiesKept how many duplicates the destination could not
	// expunge (no UIDPLUS), named in the log.
	LateCopiesRemoved int `json:"late_copies_removed,omitempty"`
	LateCopiesAdopted int `json:"late_copies_adopted,omitempty"`
	LateCopiesKept    int `json:"late_copies_kept,omitempty"`
	// Skipped is how many messages this run skipped for good (Skips: each
	// with its reason): they make it exit 3, once.
	Skipped int    `json:"skipped"`
	Skips   []Skip `json:"skips,omitempty"`
	// SkippedBefore is how many listed messages earlier runs skipped for
	// good (SkipsBefore: each with its reason): reported, but no failure
	// of this run; Options.RetrySkipped tries them again instead.
	SkippedBefore int    `json:"skipped_before,omitempty"`
	SkipsBefore   []Skip `json:"skips_before,omitempty"`
	// Failed is how many messages could not be copied, because the
	// account stopped early or the destination refused them; the next run
	// tries them again. Failures lists the refusals with their reasons.
	Failed   int    `json:"failed"`
	Failures []Skip `json:"failures,omitempty"`
	// NotYetCopied is how many listed messages a run stopped by
	// Runner.Stop (the first Ctrl-C) did not get to: never tried, so not
	// failed; the next run copies them.
	NotYetCopied int `json:"not_yet_copied"`
	// Matched is how many messages destination matching found on the
	// destination byte for byte (a folder the ledger knew nothing of:
	// a first run into a folder holding mail, a lost checkpoint, a
	// renamed server) and recorded as copied without sending them.
	// ProbablyPresent is how many it found there with the same
	// Message-ID and size but other bytes: skipped for good (in Skipped
	// and Skips), never deleted at the source.
	Matched         int `json:"matched"`
	ProbablyPresent int `json:"probably_present,omitempty"`
	// Rematched is how many listed messages were recognised, by digest, as
	// copies made under an earlier identity (an IMAP folder whose
	// UIDVALIDITY changed) and not sent again.
	Rematched int `json:"rematched,omitempty"`
	// FlagsUpdated is how many earlier copies had their flags brought up
	// to date; FlagsDropped how many flags the destination would not take.
	FlagsUpdated int `json:"flags_updated,omitempty"`
	FlagsDropped int `json:"flags_dropped,omitempty"`
	// FoldersCreated are the destination folders this run created, in
	// the order it created them (MailboxCreator).
	FoldersCreated []string `json:"folders_created,omitempty"`
	// Gone is how many listed messages had left the source (expunged by
	// another client) by the time they were fetched; they are not failures.
	Gone int `json:"gone,omitempty"`
	// SourceGone is how many copied messages this run found no longer at
	// the source (deleted there by someone else); their entries are kept
	// as gone for the ledger's retention.
	SourceGone int `json:"source_gone,omitempty"`
	// Moved and Removed are how many copies a mirror pass (Options.Mirror)
	// moved on the destination as their messages moved between source
	// folders, and removed as their messages left the source (in a dry
	// run: would have). MirrorHeld is how many removals it did not make:
	// over the cap (MirrorOverCap; the cap was MirrorCap), in folders that cannot tell
	// (MirrorUnsure), or on a destination without UIDPLUS; MirrorActions
	// list the removals and moves of a dry run and those held back.
	// FoldersDeleted are the destination folders deleted as their source
	// folders were; FoldersRenamed ("old -> new") those deleted after
	// every copy in them moved to one other folder (a source folder
	// renamed).
	Moved         int    `json:"moved,omitempty"`
	Removed       int    `json:"removed,omitempty"`
	MirrorHeld    int    `json:"mirror_held_back,omitempty"`
	MirrorOverCap bool   `json:"mirror_over_cap,omitempty"`
	MirrorRefused string `json:"mirror_refused,omitempty"` // why the destination took no removal

	MirrorCap      int            `json:"mirror_cap,omitempty"`
	MirrorUnsure   []MirrorUnsure `json:"mirror_cannot_tell,omitempty"`
	MirrorActions  []MirrorAction `json:"mirror_actions,omitempty"`
	FoldersDeleted []string       `json:"folders_deleted,omitempty"`
	FoldersRenamed []string       `json:"folders_renamed,omitempty"`
	// Deleted is how many messages were deleted at the source (in a dry
	// run: would have been).
	Deleted int `json:"deleted"`
	// DeleteWaiting is how many listed messages are done but wait for their
	// DeleteAfter period to end before they are deleted at the source.
	DeleteWaiting int   `json:"delete_waiting"`
	Bytes         int64 `json:"bytes"`
	// DateSources counts which policy step gave each copied message's
	// internal date: "received", "date", "now" or "source".
	DateSources map[string]int `json:"date_sources,omitempty"`
	// Normalised is how many copied messages had bare LFs or CRs turned
	// into CRLF, and LineEndsFixed how many line ends that was in all.
	Normalised    int `json:"normalised"`
	LineEndsFixed int `json:"line_ends_fixed"`
	Attempts      int `json:"attempts"`
	// Paused is set when the account ended this run paused, which is no
	// failure: not started because it was paused (Runner.Paused, e.g. by
	// an operator), paused by an operator during the run (Hold.Paused: it
	// stopped after committing its batches in flight), or stopped for a
	// time the run does not wait for (a daily quota reached). PausedReason says why, and PausedUntil when it
	// goes on by itself (nil: when it is resumed). Waiting is how many
	// listed messages wait for it; they are not failures. Pauses counts
	// the pauses the run waited out (a timetable's pause, a slow message
	// rate).
	Paused       bool       `json:"paused,omitempty"`
	PausedUntil  *time.Time `json:"paused_until,omitempty"`
	PausedReason string     `json:"paused_reason,omitempty"`
	Waiting      int        `json:"waiting,omitempty"`
	Pauses       int        `json:"pauses,omitempty"`
	// Locked is set when another run held the account and this one
	// skipped it (Runner.SkipLocked).
	Locked   bool          `json:"locked,omitempty"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
	DryRun   bool          `json:"dry_run,omitempty"`
	// Error is the error that stopped the account, "" when it completed.
	Error string `json:"error,omitempty"`
	// ErrorClass is the class of Error ("fatal", "transient", "interrupted").
	ErrorClass string `json:"error_class,omitempty"`
	// Hint says what the user can do about Error; the command fills it in.
	Hint string `json:"hint,omitempty"`
	// Notes are what the run found worth telling besides the counts:
	// optional features a server refused and what the copy does without
	// them, folders that went to a safe name (Job.Notes; the command fills
	// them in).
	Notes []string `json:"notes,omitempty"`
}

// setPaused records that the account ended this run paused by p.
func (s *Stats) setPaused(p *PausedError) {
	s.Paused, s.PausedReason, s.PausedUntil = true, p.Reason, nil
	if !p.Until.IsZero() {
		until := p.Until
		s.PausedUntil = &until
	}
}

func (s *Stats) skip(key, reason string) {
	s.Skipped++
	s.Skips = append(s.Skips, Skip{Key: key, Reason: reason})
}

func (s *Stats) countDate(source string) {
	if s.DateSources == nil {
		s.DateSources = map[string]int{}
	}
	s.DateSources[source]++
}

// SkipReasons counts the skips by reason, for summaries.
func (s *Stats) SkipReasons() map[string]int {
	out := map[string]int{}
	for _, sk := range s.Skips {
		out[sk.Reason]++
	}
	return out
}

// Complete reports whether every listed message is on the destination or
// deliberately skipped, with no error, and the account was not paused
// (what a pause left waits for the next run) nor interrupted.
func (s *Stats) Complete() bool {
	return s.Error == "" && s.Failed == 0 && s.NotYetCopied == 0 && !s.Paused
}

// noteCreated adds the mailboxes d's session created to FoldersCreated.
func (s *Stats) noteCreated(d Destination) {
	c, ok := d.(MailboxCreator)
	if !ok {
		return
	}
	for _, name := range c.CreatedMailboxes() {
		if !slices.Contains(s.FoldersCreated, name) {
			s.FoldersCreated = append(s.FoldersCreated, name)
		}
	}
}
