package statuspage

import (
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// State is where an account stands, as the page shows it.
type State string

// States of an account.
const (
	Queued  State = "queued"  // never run, waiting its turn in this run, or a retry was asked for
	Running State = "running" // a run is working on it (or its last run never finished: a crash)
	Done    State = "done"    // its last run copied everything
	Failed  State = "failed"  // its last run ended with an error
	Partial State = "partial" // its last run ended with messages skipped or failed
	Paused  State = "paused"  // by an operator until resumed, or by traffic control until a time
)

// States lists the states in the order the page shows them.
var States = []State{Queued, Running, Done, Failed, Partial, Paused}

func validState(s string) bool {
	for _, st := range States {
		if string(st) == s {
			return true
		}
	}
	return false
}

// Account is an account the page shows: its name in the config, its ledger
// key, and the servers it moves between (host:port, for filtering).
type Account struct {
	Name, Key            string
	SourceHost, DestHost string
}

// AccountJSON is one account in GET /api/accounts.
type AccountJSON struct {
	Name       string `json:"name"`
	SourceHost string `json:"source_host,omitempty"`
	DestHost   string `json:"dest_host,omitempty"`
	State      State  `json:"state"`
	// Messages and Bytes: done (copied) and total. Total counts what the
	// ledger knows and, while the account runs, what the run still has
	// to copy; before the first run it is 0 (unknown).
	Messages Counts `json:"messages"`
	Bytes    Bytes  `json:"bytes"`
	// Rate and ETA while it runs.
	Rate       *Rate    `json:"rate,omitempty"`
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// LastError is the error of the last run, when it ended with one.
	LastError *ErrorJSON `json:"last_error,omitempty"`
	LastRun   *RunJSON   `json:"last_run,omitempty"`
	// Pause says who paused the account, why and until when; nil when it
	// is not paused.
	Pause *PauseJSON `json:"pause,omitempty"`
	// RetryRequested: when a retry was asked for after the last run
	// started (the next run or poll tries again).
	RetryRequested *time.Time `json:"retry_requested,omitempty"`
	// RunningIn says where the account runs now; nil when the ledger
	// knows of no process holding it.
	RunningIn *RunningJSON `json:"running_in,omitempty"`
}

// RunningJSON is the process running an account: its pid (on the
// ledger's machine, or on the fleet worker's) and, on a fleet, the
// worker's name ("<host>:<pid>:<start>").
type RunningJSON struct {
	PID    int    `json:"pid"`
	Worker string `json:"worker,omitempty"`
}

// stoppedText is the error shown for an account whose last run never
// finished and that no process holds.
const stoppedText = "its last run stopped without finishing: the process ended (killed, crashed, or the machine restarted); the next run resumes it"

// What paused an account (PauseJSON.By).
const (
	// PausedByOperator: the page's or the API's pause; runs and polls
	// leave the account alone until it is resumed.
	PausedByOperator = "operator"
	// PausedByTraffic: traffic control (docs/traffic-control.md): a daily
	// quota reached (the account goes on after Until, at the next run or
	// poll), or a timetable's pause the run waits out.
	PausedByTraffic = "traffic"
)

// PauseJSON is why an account is paused.
type PauseJSON struct {
	By     string     `json:"by"` // PausedByOperator or PausedByTraffic
	Reason string     `json:"reason"`
	Until  *time.Time `json:"until,omitempty"` // nil: until resumed
}

func pauseJSON(by string, p *pipeline.PausedError) *PauseJSON {
	out := &PauseJSON{By: by, Reason: p.Reason}
	if !p.Until.IsZero() {
		until := p.Until
		out.Until = &until
	}
	return out
}

// Counts are message counts.
type Counts struct {
	Done    int `json:"done"`
	Total   int `json:"total"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
	Pending int `json:"pending"`
}

// Bytes are byte counts.
type Bytes struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// Rate is a throughput.
type Rate struct {
	MessagesPerSecond float64 `json:"messages_per_second"`
	BytesPerSecond    float64 `json:"bytes_per_second"`
}

// ErrorJSON is an error in plain words: what the engine said, its class
// and what fixes it.
type ErrorJSON struct {
	Time  time.Time `json:"time"`
	Text  string    `json:"text"`
	Class string    `json:"class,omitempty"`
	Hint  string    `json:"hint,omitempty"`
}

// RunJSON is one run of an account.
type RunJSON struct {
	Started    time.Time  `json:"started"`
	Finished   *time.Time `json:"finished,omitempty"` // nil: running, or stopped by a crash
	Result     string     `json:"result"`
	Error      string     `json:"error,omitempty"`
	ErrorClass string     `json:"error_class,omitempty"`
	Hint       string     `json:"hint,omitempty"`
	Copied     int        `json:"copied"`
	Skipped    int        `json:"skipped"`
	Failed     int        `json:"failed"`
}

func runJSON(r *pipeline.RunRecord) *RunJSON {
	if r == nil {
		return nil
	}
	out := &RunJSON{Started: r.Started, Result: r.Result, Error: r.Error, ErrorClass: r.ErrorClass,
		Hint: r.Hint, Copied: r.Copied, Skipped: r.Skipped, Failed: r.Failed}
	if !r.Finished.IsZero() {
		f := r.Finished
		out.Finished = &f
	}
	return out
}

// accountJSON puts together what the config, the ledger and (during a run
// in this process) the engine say of one account.
func accountJSON(a Account, s Summary, lv *liveView, now time.Time) AccountJSON {
	out := AccountJSON{Name: a.Name, SourceHost: a.SourceHost, DestHost: a.DestHost,
		LastRun: runJSON(s.LastRun),
		Messages: Counts{Done: s.Done, Skipped: s.Skipped, Failed: s.Failed, Pending: s.Pending,
			Total: s.Done + s.Skipped + s.Failed + s.Pending},
		Bytes: Bytes{Done: s.DoneBytes, Total: s.Bytes}}
	if r := s.LastRun; r != nil && r.Error != "" && r.Result != "paused" {
		out.LastError = &ErrorJSON{Time: firstTime(r.Finished, r.Started), Text: r.Error, Class: r.ErrorClass, Hint: r.Hint}
	}
	retry := !s.RetryRequested.IsZero() && (s.LastRun == nil || s.RetryRequested.After(s.LastRun.Started))
	if retry {
		t := s.RetryRequested
		out.RetryRequested = &t
	}
	if s.Holder != 0 || s.Worker != "" {
		out.RunningIn = &RunningJSON{PID: s.Holder, Worker: s.Worker}
	}
	// A pause the last run ended with (a daily quota) that still holds.
	var runPause *pipeline.PausedError
	if !retry {
		runPause = s.LastRun.PausedAt(now)
	}

	switch {
	case lv != nil && lv.running:
		out.State = Running
		// The engine reports a batch before the ledger commits it (with
		// the next batch): the run's own counts are ahead of the
		// ledger's. What the ledger had when the run started the account,
		// plus what the run did, is both current and consistent; the
		// total is that plus what the run set out to copy.
		left := max(lv.toCopy-lv.done, 0)
		out.Messages.Done = lv.baseDone + lv.copied
		out.Messages.Total = lv.baseDone + lv.baseSkipped + lv.toCopy
		out.Bytes.Done = lv.baseBytes + lv.copiedBytes
		out.Bytes.Total = lv.baseBytes + max(lv.toCopyBytes, lv.bytes)
		out.LastError = nil // the last run's error is history while a new run goes on
		if lv.pause != nil {
			// The run waits out a timetable's pause, its sessions closed.
			out.State, out.Pause = Paused, pauseJSON(PausedByTraffic, lv.pause)
			break
		}
		if secs := now.Sub(lv.started).Seconds(); secs >= 1 && lv.done > 0 {
			rate := &Rate{MessagesPerSecond: float64(lv.done) / secs, BytesPerSecond: float64(lv.bytes) / secs}
			out.Rate = rate
			eta := float64(left) / rate.MessagesPerSecond
			out.ETASeconds = &eta
		}
	case s.Pause != nil:
		out.State, out.Pause = Paused, pauseJSON(PausedByOperator, s.Pause)
	case lv != nil && lv.queued:
		out.State = Queued
	case runPause != nil:
		out.State, out.Pause = Paused, pauseJSON(PausedByTraffic, runPause)
	case s.LastRun == nil || retry || s.LastRun.Result == "paused":
		// A pause whose time has passed: the next run goes on.
		out.State = Queued
	case s.LastRun.Finished.IsZero() && out.RunningIn != nil:
		out.State = Running
	case s.LastRun.Finished.IsZero():
		// Nobody holds it: the run was killed, it does not go on.
		out.State = Failed
		out.LastError = &ErrorJSON{Time: s.LastRun.Started, Text: stoppedText}
	case s.LastRun.Result == "failed" || s.LastRun.Result == "interrupted":
		out.State = Failed
	case s.LastRun.Result == "partial" || s.Failed > 0 || s.Skipped > 0:
		out.State = Partial
	default:
		out.State = Done
	}
	return out
}

func firstTime(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// Totals sum up the accounts shown.
type Totals struct {
	Accounts int           `json:"accounts"`
	ByState  map[State]int `json:"by_state"`
	Messages Counts        `json:"messages"`
	Bytes    Bytes         `json:"bytes"`
	// Rate and ETA of the accounts running now, together.
	Rate       *Rate    `json:"rate,omitempty"`
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
}

func totalsOf(accounts []AccountJSON) Totals {
	t := Totals{ByState: map[State]int{}}
	for _, st := range States {
		t.ByState[st] = 0
	}
	var rate Rate
	left := 0
	for _, a := range accounts {
		t.Accounts++
		t.ByState[a.State]++
		t.Messages.Done += a.Messages.Done
		t.Messages.Total += a.Messages.Total
		t.Messages.Skipped += a.Messages.Skipped
		t.Messages.Failed += a.Messages.Failed
		t.Messages.Pending += a.Messages.Pending
		t.Bytes.Done += a.Bytes.Done
		t.Bytes.Total += a.Bytes.Total
		if a.Rate != nil {
			rate.MessagesPerSecond += a.Rate.MessagesPerSecond
			rate.BytesPerSecond += a.Rate.BytesPerSecond
		}
		if a.State == Running || a.State == Queued {
			left += max(a.Messages.Total-a.Messages.Done-a.Messages.Skipped, 0)
		}
	}
	if rate.MessagesPerSecond > 0 {
		t.Rate = &rate
		eta := float64(left) / rate.MessagesPerSecond
		t.ETASeconds = &eta
	}
	return t
}
