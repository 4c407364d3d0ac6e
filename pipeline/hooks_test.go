package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
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
func (p *recProgress) AccountFinished(a string, st *Stats) {
	p.add(fmt.Sprint("finish ", a, " paused=", st.Paused, " error=", st.Error != ""))
}

func TestRunnerPausedAccountIsNotStarted(t *testing.T) {
	tests := []struct {
		name      string
		paused    bool
		pauseErr  error
		wantCopy  int
		wantRuns  int
		wantError bool
	}{
		{"paused", true, nil, 0, 0, false},
		{"not paused", false, nil, 3, 1, false},
		{"cannot tell", false, errors.New("ledger unreadable"), 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(genMessages(3))
			var asked []string
			h.runner.Paused = func(_ context.Context, account string) (bool, error) {
				asked = append(asked, account)
				return tt.paused, tt.pauseErr
			}
			prog := &recProgress{}
			h.runner.Progress = prog
			st := h.run(t)
			if fmt.Sprint(asked) != "[alice]" {
				t.Errorf("Paused was asked about %v, want [alice]", asked)
			}
			if st.Paused != tt.paused || st.Copied != tt.wantCopy || (st.Error != "") != tt.wantError {
				t.Errorf("stats: paused %v, copied %d, error %q; want paused %v, copied %d, error %v",
					st.Paused, st.Copied, st.Error, tt.paused, tt.wantCopy, tt.wantError)
			}
			if len(h.ledger.runs) != tt.wantRuns {
				t.Errorf("%d runs recorded, want %d", len(h.ledger.runs), tt.wantRuns)
			}
			if st.Complete() == (tt.paused || tt.wantError) {
				t.Errorf("Complete() = %v for paused %v, error %q", st.Complete(), st.Paused, st.Error)
			}
			if last := prog.events[len(prog.events)-1]; last != fmt.Sprintf("finish alice paused=%v error=%v", tt.paused, tt.wantError) {
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
	p.AccountFinished("x", &Stats{})
	for _, r := range []*recProgress{a, b} {
		if got := fmt.Sprint(r.events); got != "[start x2 msg x finish x paused=false error=false]" {
			t.Errorf("events = %s", got)
		}
	}
	if TeeProgress(a) != Progress(a) {
		t.Error("TeeProgress of one Progress should be that Progress")
	}
}
