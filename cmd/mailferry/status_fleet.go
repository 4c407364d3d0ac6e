package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/config"
)

// statusFleet is the fleet's view of a PostgreSQL checkpoint: the queue,
// who runs what since when and how fast, what failed and why, the
// workers and the throughput (docs/fleet.md "Watching it").
type statusFleet struct {
	Pass         int64      `json:"pass,omitempty"`
	PassStarted  *time.Time `json:"pass_started,omitempty"`
	PassFinished *time.Time `json:"pass_finished,omitempty"`
	// Queued can be claimed now; Waiting are queued for later (a
	// service's next poll, a daily quota); Paused are paused.
	Queued  int `json:"queued"`
	Waiting int `json:"waiting"`
	Paused  int `json:"paused"`
	Running int `json:"running"`
	// Done, Failed and NotRun are the accounts out of the queue by their
	// last run: ok or partial; failed or interrupted; never run, or a run
	// that never finished.
	Done            int                  `json:"done"`
	Failed          int                  `json:"failed"`
	NotRun          int                  `json:"not_run"`
	RunningAccounts []statusFleetRunning `json:"running_accounts"`
	FailedAccounts  []statusFleetFailed  `json:"failed_accounts"`
	Workers         []statusWorker       `json:"workers"`
	// What the workers reported moving: in the last 5 minutes, and in all.
	Messages5m    int64 `json:"messages_5m"`
	Bytes5m       int64 `json:"bytes_5m"`
	MessagesTotal int64 `json:"messages_total"`
	BytesTotal    int64 `json:"bytes_total"`
}

// statusFleetRunning is an account a worker runs now.
type statusFleetRunning struct {
	Account string     `json:"account"`
	Worker  string     `json:"worker"`
	Since   *time.Time `json:"since,omitempty"`
	Done    int        `json:"done"`
	// PerMinute is the messages it moved per minute since its run started.
	PerMinute float64 `json:"per_minute"`
}

// statusFleetFailed is an account whose last run failed.
type statusFleetFailed struct {
	Account string `json:"account"`
	Error   string `json:"error"`
}

// statusWorker is a registered worker.
type statusWorker struct {
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// Silent is how long ago its last heartbeat was, on the database's
	// clock; a worker silent for more than a lease TTL is gone.
	Silent   string `json:"silent"`
	Draining bool   `json:"draining,omitempty"`
	Holding  int    `json:"holding"`
}

// fleetStatus reads the fleet of a PostgreSQL checkpoint; accounts are
// the report's, for the reasons of the failed ones.
func fleetStatus(ctx context.Context, l *checkpoint.Ledger, accounts []statusAccount) (*statusFleet, error) {
	f, err := l.Fleet(ctx)
	if err != nil {
		return nil, err
	}
	ws, now, err := l.Workers(ctx)
	if err != nil {
		return nil, err
	}
	out := &statusFleet{Pass: f.Pass.ID, Queued: f.Left.Queued, Waiting: f.Left.Waiting, Paused: f.Left.Paused, Running: f.Left.Running,
		RunningAccounts: []statusFleetRunning{}, FailedAccounts: []statusFleetFailed{}, Workers: []statusWorker{},
		Messages5m: f.Messages5m, Bytes5m: f.Bytes5m, MessagesTotal: f.MessagesTotal, BytesTotal: f.BytesTotal}
	if f.Pass.ID != 0 {
		out.PassStarted = &f.Pass.Started
		if !f.Pass.Finished.IsZero() {
			out.PassFinished = &f.Pass.Finished
		}
	}
	for result, n := range f.Idle {
		switch result {
		case "ok", "partial":
			out.Done += n
		case "failed", "interrupted":
			out.Failed += n
		case "paused", "waiting":
			out.Paused += n
		default:
			out.NotRun += n
		}
	}
	for _, r := range f.Running {
		sr := statusFleetRunning{Account: r.Name, Worker: r.Worker, Done: r.Done}
		if !r.Since.IsZero() {
			since := r.Since
			sr.Since = &since
			if d := f.Now.Sub(r.Since); d > 0 {
				sr.PerMinute = float64(r.Done) / d.Minutes()
			}
		}
		out.RunningAccounts = append(out.RunningAccounts, sr)
	}
	for _, a := range accounts {
		if r := a.LastRun; r != nil && r.Finished != nil && (r.Result == "failed" || r.Result == "interrupted") {
			out.FailedAccounts = append(out.FailedAccounts, statusFleetFailed{Account: firstNonEmpty(a.Name, a.Account), Error: r.Error})
		}
	}
	for _, w := range ws {
		out.Workers = append(out.Workers, statusWorker{ID: w.ID, Version: w.Version, Started: w.Started, Heartbeat: w.Heartbeat,
			Silent: now.Sub(w.Heartbeat).Round(time.Second).String(), Draining: w.Draining, Holding: w.Holding})
	}
	return out, nil
}

// writeFleetText prints the fleet's view after the accounts.
func writeFleetText(w io.Writer, f *statusFleet) {
	fmt.Fprintf(w, "\nfleet: %d queued, %d running, %d done, %d failed", f.Queued, f.Running, f.Done, f.Failed)
	if f.Waiting > 0 {
		fmt.Fprintf(w, ", %d waiting", f.Waiting)
	}
	if f.Paused > 0 {
		fmt.Fprintf(w, ", %d paused", f.Paused)
	}
	if f.NotRun > 0 {
		fmt.Fprintf(w, ", %d not run", f.NotRun)
	}
	fmt.Fprintln(w)
	if f.PassStarted != nil {
		fmt.Fprintf(w, "  pass %d started %s", f.Pass, f.PassStarted.Local().Format(time.DateTime))
		if f.PassFinished != nil {
			fmt.Fprintf(w, ", finished %s", f.PassFinished.Local().Format(time.DateTime))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  moved: %d messages (%s) in the last 5 minutes, %d (%s) in all\n",
		f.Messages5m, config.FormatByteSize(f.Bytes5m), f.MessagesTotal, config.FormatByteSize(f.BytesTotal))
	if len(f.RunningAccounts) > 0 {
		fmt.Fprintln(w, "\nrunning:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ACCOUNT\tWORKER\tSINCE\tDONE\tPER MINUTE")
		for _, r := range f.RunningAccounts {
			since := "starting"
			if r.Since != nil {
				since = r.Since.Local().Format(time.TimeOnly)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%.1f\n", r.Account, checkpoint.WorkerHost(r.Worker), since, r.Done, r.PerMinute)
		}
		tw.Flush()
	}
	if len(f.FailedAccounts) > 0 {
		fmt.Fprintln(w, "\nfailed:")
		for _, a := range f.FailedAccounts {
			fmt.Fprintf(w, "  %s: %s\n", a.Account, a.Error)
		}
	}
	if len(f.Workers) > 0 {
		ws := append([]statusWorker(nil), f.Workers...)
		sort.SliceStable(ws, func(i, j int) bool { return ws[i].Started.Before(ws[j].Started) })
		fmt.Fprintln(w, "\nworkers:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  WORKER\tVERSION\tSTARTED\tLAST HEARTBEAT\tHOLDING\t")
		for _, x := range ws {
			state := ""
			if x.Draining {
				state = "draining"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s ago\t%d\t%s\n", checkpoint.WorkerHost(x.ID), x.Version,
				x.Started.Local().Format(time.DateTime), x.Silent, x.Holding, state)
		}
		tw.Flush()
		fmt.Fprintln(w, "  (a worker silent for more than 30 s is gone: its accounts go to the others; `mailferry worker drain HOST:PID` drains one)")
	}
}
