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
	Paused  State = "paused"  // runs leave it alone until it is resumed
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
	Paused    bool       `json:"paused"`
	// RetryRequested: when a retry was asked for after the last run
	// started (the next run or poll tries again).
	RetryRequested *time.Time `json:"retry_requested,omitempty"`
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
	out := AccountJSON{Name: a.Name, SourceHost: a.SourceHost, DestHost: a.DestHost, Paused: s.Paused,
		LastRun: runJSON(s.LastRun),
		Messages: Counts{Done: s.Done, Skipped: s.Skipped, Failed: s.Failed, Pending: s.Pending,
			Total: s.Done + s.Skipped + s.Failed + s.Pending},
		Bytes: Bytes{Done: s.DoneBytes, Total: s.Bytes}}
	if r := s.LastRun; r != nil && r.Error != "" {
		out.LastError = &ErrorJSON{Time: firstTime(r.Finished, r.Started), Text: r.Error, Class: r.ErrorClass, Hint: r.Hint}
	}
	retry := !s.RetryRequested.IsZero() && (s.LastRun == nil || s.RetryRequested.After(s.LastRun.Started))
	if retry {
		t := s.RetryRequested
		out.RetryRequested = &t
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
		if secs := now.Sub(lv.started).Seconds(); secs >= 1 && lv.done > 0 {
			rate := &Rate{MessagesPerSecond: float64(lv.done) / secs, BytesPerSecond: float64(lv.bytes) / secs}
			out.Rate = rate
			eta := float64(left) / rate.MessagesPerSecond
			out.ETASeconds = &eta
		}
		out.LastError = nil // the last run's error is history while a new run goes on
	case s.Paused:
		out.State = Paused
	case lv != nil && lv.queued:
		out.State = Queued
	case s.LastRun == nil || retry:
		out.State = Queued
	case s.LastRun.Finished.IsZero():
		out.State = Running
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
