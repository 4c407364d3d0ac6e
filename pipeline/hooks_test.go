package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// recProgress records the events it receives.
type recProgress struct {
	mu     sync.Mutex
	events []string
}

func (p *recProgress) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, s)
}

func (p *recProgress) AccountStarted(a string, n int, b int64)  { p.add(fmt.Sprint("start ", a, n)) }
func (p *recProgress) MessageDone(a string, o Outcome, b int64) { p.add(fmt.Sprint("msg ", a)) }
func (p *recProgress) AccountPaused(a string, pe *PausedError) {
	p.add(fmt.Sprint("pause ", a, " until ", pe.Until.Format(time.RFC3339), ": ", pe.Reason))
}
func (p *recProgress) AccountFinished(a string, st *Stats) {
	p.add(fmt.Sprint("finish ", a, " paused=", st.Paused, " error=", st.Error != ""))
}

// TestRunnerPausedAccountIsNotStarted: an account Runner.Paused returns a
// pause for (an operator's: no Until; or one with a time) ends paused
// without a lock, a run record or a connection, which is no failure.
func TestRunnerPausedAccountIsNotStarted(t *testing.T) {
	byOperator := &PausedError{Reason: "paused by an operator"}
	until := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		pause     *PausedError
		pauseErr  error
		wantCopy  int
		wantRuns  int
		wantError bool
	}{
		{"paused by an operator", byOperator, nil, 0, 0, false},
		{"paused until a time", &PausedError{Until: until, Reason: "held"}, nil, 0, 0, false},
		{"not paused", nil, nil, 3, 1, false},
		{"cannot tell", nil, errors.New("ledger unreadable"), 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(genMessages(3))
			var asked []string
			h.runner.Paused = func(_ context.Context, account string) (*PausedError, error) {
				asked = append(asked, account)
				return tt.pause, tt.pauseErr
			}
			prog := &recProgress{}
			h.runner.Progress = prog
			st, _ := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
				OpenSource: func(context.Context) (Source, error) { return h.src, nil }, OpenDestination: h.dst.open})
			if fmt.Sprint(asked) != "[alice]" {
				t.Errorf("Paused was asked about %v, want [alice]", asked)
			}
			paused := tt.pause != nil
			if st.Paused != paused || st.Copied != tt.wantCopy || (st.Error != "") != tt.wantError {
				t.Errorf("stats: paused %v, copied %d, error %q; want paused %v, copied %d, error %v",
					st.Paused, st.Copied, st.Error, paused, tt.wantCopy, tt.wantError)
			}
			if paused {
				if st.PausedReason != tt.pause.Reason {
					t.Errorf("paused reason %q, want %q", st.PausedReason, tt.pause.Reason)
				}
				if wantUntil := !tt.pause.Until.IsZero(); (st.PausedUntil != nil) != wantUntil ||
					wantUntil && !st.PausedUntil.Equal(tt.pause.Until) {
					t.Errorf("paused until %v, want %v (none for a pause until resumed)", st.PausedUntil, tt.pause.Until)
				}
			}
			if len(h.ledger.runs) != tt.wantRuns {
				t.Errorf("%d runs recorded, want %d", len(h.ledger.runs), tt.wantRuns)
			}
			if st.Complete() == (paused || tt.wantError) {
				t.Errorf("Complete() = %v for paused %v, error %q", st.Complete(), st.Paused, st.Error)
			}
			if last := prog.events[len(prog.events)-1]; last != fmt.Sprintf("finish alice paused=%v error=%v", paused, tt.wantError) {
				t.Errorf("last progress event %q", last)
			}
		})
	}
}

// loginRefused is an error of class fatal, like a refused login.
type loginRefused struct{}

func (loginRefused) Error() string             { return "LOGIN: NO [AUTHENTICATIONFAILED]" }
func (loginRefused) ErrorClass() Class         { return ClassFatal }
func (loginRefused) explain() (string, string) { return "login", "check the password" }

func TestRunnerExplainIsRecorded(t *testing.T) {
	tests := []struct {
		name               string
		explain            func(error) (string, string)
		wantClass, wantHnt string
	}{
		{"named class", func(err error) (string, string) {
			var lr loginRefused
			if errors.As(err, &lr) {
				return lr.explain()
			}
			return "", ""
		}, "login", "check the password"},
		{"hint only keeps the engine's class", func(error) (string, string) { return "", "try later" }, "fatal", "try later"},
		{"no explain", nil, "fatal", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(genMessages(2))
			h.runner.Explain = tt.explain
			st, err := h.runner.RunAccount(context.Background(), Job{
				Options:         h.opts,
				OpenSource:      func(context.Context) (Source, error) { return nil, loginRefused{} },
				OpenDestination: h.dst.open,
			})
			if err == nil {
				t.Fatal("RunAccount = nil error, want the refused login")
			}
			if st.Hint != tt.wantHnt || st.ErrorClass != "fatal" {
				t.Errorf("stats hint %q class %q, want hint %q class fatal", st.Hint, st.ErrorClass, tt.wantHnt)
			}
			rec := h.ledger.runs[len(h.ledger.runs)-1]
			if rec.ErrorClass != tt.wantClass || rec.Hint != tt.wantHnt || rec.Result != "failed" {
				t.Errorf("run record class %q hint %q result %q, want %q %q failed", rec.ErrorClass, rec.Hint, rec.Result, tt.wantClass, tt.wantHnt)
			}
		})
	}
}

func TestTeeProgress(t *testing.T) {
	a, b := &recProgress{}, &recProgress{}
	p := TeeProgress(a, nil, b)
	p.AccountStarted("x", 2, 10)
	p.MessageDone("x", OutcomeCopied, 5)
	p.AccountPaused("x", &PausedError{Until: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), Reason: "why"})
	p.AccountFinished("x", &Stats{})
	for _, r := range []*recProgress{a, b} {
		if got := fmt.Sprint(r.events); got != "[start x2 msg x pause x until 2026-12-08T00:00:00Z: why finish x paused=false error=false]" {
			t.Errorf("events = %s", got)
		}
	}
	if TeeProgress(a) != Progress(a) {
		t.Error("TeeProgress of one Progress should be that Progress")
	}
}
