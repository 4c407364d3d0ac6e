package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Traffic paces one account's copy: bandwidth and message rates, their
// timetables, daily quotas (package traffic implements it). The engine
// asks it before it opens sessions, before each message it fetches and
// each batch it sends, and tells it the bytes of messages as they are read
// from the source and written to the destination. It is the one seam of
// traffic control: no Source or Destination is wrapped. Its methods may be
// called from several goroutines.
type Traffic interface {
	// Ready returns when the account may open sessions and work: it waits
	// while a timetable pauses the account. It returns a *PausedError
	// without Wait when the account must not go on before a time the run
	// does not wait for (a daily quota reached).
	Ready(ctx context.Context) error
	// Fetch is asked before a message of the announced size is fetched:
	// it waits as the message rate requires, or returns a *PausedError
	// when the account must pause (a timetable's pause began, a quota is
	// reached, or the next message is more than a short wait away).
	Fetch(ctx context.Context, size int64) error
	// Send is asked before a batch of that many bytes is sent; it returns
	// a *PausedError as Fetch does.
	Send(ctx context.Context, bytes int64) error
	// Read and Write are told n bytes of messages read from the source,
	// or written to the destination, and wait as the bandwidth limits
	// require (a short wait: bytes in flight are never paused).
	Read(ctx context.Context, n int) error
	Write(ctx context.Context, n int) error
	// ServerQuota is told that a server refused the account more today
	// (a *DailyLimitError, with reason): it pauses the account until the
	// end of its quota window, as its own daily quota would, and returns
	// that pause.
	ServerQuota(reason string) *PausedError
}

// DailyLimitError is a server's refusal to take or serve more of an
// account today (Gmail: "[OVERQUOTA] Account exceeded command or
// bandwidth limits", as a NO or a BYE; provider.Quirks.DailyLimit): the
// account pauses until its next quota window (Traffic.ServerQuota), which
// is no failure, and what was refused is tried again then. The adapters
// wrap the server's reply in it.
type DailyLimitError struct {
	Err error
}

func (e *DailyLimitError) Error() string {
	return "the server's daily limit for the account is reached: " + e.Err.Error()
}

func (e *DailyLimitError) Unwrap() error { return e.Err }

// ErrorClass implements Classifier: transient (nothing was stored by the
// refused command; the engine pauses rather than retries).
func (e *DailyLimitError) ErrorClass() Class { return ClassTransient }

// serverQuota turns a *DailyLimitError in err into the account's pause;
// ok is false when err holds none.
func serverQuota(t Traffic, err error, now time.Time) (*PausedError, bool) {
	var de *DailyLimitError
	if !errors.As(err, &de) {
		return nil, false
	}
	reason := "the server refused more today (" + de.Err.Error() + ")"
	if t == nil {
		// No traffic control: a day from now.
		return &PausedError{Until: now.Add(24 * time.Hour), Reason: reason}, true
	}
	return t.ServerQuota(reason), true
}

// PausedError ends an attempt because the account must start nothing new
// until Until (zero: until it is resumed, as after an operator's pause;
// see Runner.Paused). The batches in flight are finished and committed, and what
// the ledger has as done is deleted at the source as after a complete
// attempt. With Wait the run waits (Traffic.Ready) and goes on with a new
// attempt: a timetable's pause, a message rate slower than the servers'
// patience; the sessions are closed meanwhile. Without Wait (a daily
// quota) the account ends this run as paused until Until, which is not a
// failure.
type PausedError struct {
	Until  time.Time
	Reason string
	Wait   bool
}

func (e *PausedError) Error() string {
	if e.Until.IsZero() {
		return "paused: " + e.Reason
	}
	return fmt.Sprintf("paused until %s: %s", e.Until.Format(time.RFC3339), e.Reason)
}

// isPaused returns the *PausedError in err's chain.
func isPaused(err error) (*PausedError, bool) {
	var pe *PausedError
	ok := errors.As(err, &pe)
	return pe, ok
}

// PausedRecord is what RunRecord.Error holds for a run that ended paused
// (Result "paused"): the time it resumes and why, until the ledger keeps
// them in columns of their own (its next schema: ResumeAt).
// ParsePausedRecord reads it back; RunRecord.PausedAt the pause itself.
func PausedRecord(until time.Time, reason string) string {
	return "paused until " + until.Format(time.RFC3339) + ": " + reason
}

// ParsePausedRecord reads a PausedRecord; ok is false for anything else.
func ParsePausedRecord(s string) (until time.Time, reason string, ok bool) {
	rest, found := strings.CutPrefix(s, "paused until ")
	if !found {
		return time.Time{}, "", false
	}
	ts, reason, found := strings.Cut(rest, ": ")
	if !found {
		return time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return time.Time{}, "", false
	}
	return t, reason, true
}

// PausedAt returns the pause a run that ended paused (Result "paused")
// left in force at now: nil for any other run, and once its time has
// passed.
func (r *RunRecord) PausedAt(now time.Time) *PausedError {
	if r == nil || r.Result != "paused" {
		return nil
	}
	until, reason, ok := ParsePausedRecord(r.Error)
	if !ok || !until.After(now) {
		return nil
	}
	return &PausedError{Until: until, Reason: reason}
}
