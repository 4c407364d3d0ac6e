package checkpoint

import (
	"context"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// addRun records a finished run of account with result and error.
func addRun(t *testing.T, l *Ledger, account string, at time.Time, result, errText string) {
	t.Helper()
	ctx := context.Background()
	id, err := l.StartRun(ctx, account, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishRun(ctx, id, pipeline.RunRecord{Finished: at.Add(time.Second), Result: result, Error: errText, Copied: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestPollsAndPruneRuns(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	t0 := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	if p, err := l.Polls(ctx, "alice"); err != nil || p.LastSuccess != nil || p.LastError != nil {
		t.Fatalf("Polls of an account without runs = %+v, %v; want nothing", p, err)
	}
	addRun(t, l, "alice", t0, "ok", "")
	addRun(t, l, "alice", t0.Add(time.Minute), "failed", "connecting to the source: refused")
	for i := 2; i < 12; i++ {
		addRun(t, l, "alice", t0.Add(time.Duration(i)*time.Minute), "failed", "")
	}
	addRun(t, l, "bob", t0, "ok", "")

	check := func(when string) {
		t.Helper()
		p, err := l.Polls(ctx, "alice")
		if err != nil {
			t.Fatalf("%s: Polls = %v", when, err)
		}
		if p.LastSuccess == nil || !p.LastSuccess.Started.Equal(t0) {
			t.Errorf("%s: last success %+v, want the run at %v", when, p.LastSuccess, t0)
		}
		if p.LastError == nil || p.LastError.Error != "connecting to the source: refused" || !p.LastError.Finished.Equal(t0.Add(time.Minute+time.Second)) {
			t.Errorf("%s: last error %+v, want the refused connection", when, p.LastError)
		}
	}
	check("before pruning")
	if err := l.PruneRuns(ctx, "alice", 3); err != nil {
		t.Fatalf("PruneRuns = %v", err)
	}
	check("after pruning")
	runs, err := l.Runs(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 5 { // the 3 newest, the last success, the last error
		t.Errorf("after PruneRuns(alice, 3): %d runs, want 5", len(runs))
	}
	if !runs[0].Started.Equal(t0.Add(11 * time.Minute)) {
		t.Errorf("newest run after pruning started %v, want %v", runs[0].Started, t0.Add(11*time.Minute))
	}
	if runs, _ := l.Runs(ctx, "bob", 0); len(runs) != 1 {
		t.Errorf("pruning alice left bob %d runs, want 1", len(runs))
	}
}
