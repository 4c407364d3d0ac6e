package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptTraffic pauses the account at the pauseAt-th message fetched, in
// a way the run waits for (wait) or not, and counts what it is told.
type scriptTraffic struct {
	mu             sync.Mutex
	pauseAt        int
	wait           bool
	readyErr       error
	fetches        int
	readies        int
	paused         bool
	read, written  int64
	sends          int
	sendWhilePause int
}

var resumeAt = time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)

func (s *scriptTraffic) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readies++
	s.paused = false
	return s.readyErr
}

func (s *scriptTraffic) Fetch(context.Context, int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	if s.fetches == s.pauseAt {
		s.paused = true
		return &PausedError{Until: resumeAt, Reason: "scripted pause", Wait: s.wait}
	}
	return nil
}

func (s *scriptTraffic) Send(context.Context, int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	return nil
}

func (s *scriptTraffic) Read(_ context.Context, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read += int64(n)
	return nil
}

func (s *scriptTraffic) Write(_ context.Context, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written += int64(n)
	return nil
}

func (s *scriptTraffic) ServerQuota(reason string) *PausedError {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = true
	return &PausedError{Until: resumeAt, Reason: reason}
}

func totalBytes(msgs []memMsg) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.body))
	}
	return n
}

// TestTrafficPauseWaited: a pause the run waits for ends the attempt after
// the batches in flight are committed; the sessions close and open again
// when Ready returns, and the copy finishes exact. Every byte read and
// written is told to Traffic.
func TestTrafficPauseWaited(t *testing.T) {
	msgs := genMessages(30)
	h := newHarness(msgs)
	tr := &scriptTraffic{pauseAt: 12, wait: true}
	h.opts.Traffic = tr
	prog := &recProgress{}
	h.runner.Progress = prog
	opens := 0
	st, err := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
		OpenSource:      func(context.Context) (Source, error) { opens++; return h.src, nil },
		OpenDestination: h.dst.open})
	if err != nil || st.Copied != 30 || st.Failed != 0 || st.Pauses != 1 || st.PausedUntil != nil || st.Paused {
		t.Fatalf("RunAccount = %v: copied %d, failed %d, pauses %d, paused %v until %v; want 30 copied after one pause",
			err, st.Copied, st.Failed, st.Pauses, st.Paused, st.PausedUntil)
	}
	// The pause is announced between the two attempts' starts.
	if got := strings.Join(prog.events, "|"); !strings.Contains(got, "|pause alice until "+resumeAt.Format(time.RFC3339)+": scripted pause|start alice") ||
		!strings.HasSuffix(got, "|finish alice paused=false error=false") {
		t.Errorf("progress events %s, want a pause announced before the second start", got)
	}
	if opens != 2 || tr.readies != 2 {
		t.Errorf("sessions opened %d times, Ready asked %d times; want 2 and 2", opens, tr.readies)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); len(got) != len(want) {
		t.Fatalf("destination holds %d messages, want %d", len(got), len(want))
	}
	total := totalBytes(msgs)
	if tr.written != total || tr.read != total {
		t.Errorf("Traffic told %d bytes read and %d written, want %d each", tr.read, tr.written, total)
	}
	if h.ledger.runs[len(h.ledger.runs)-1].Result != "ok" {
		t.Errorf("run recorded as %q, want ok", h.ledger.runs[len(h.ledger.runs)-1].Result)
	}
}

// TestTrafficQuotaPause: a pause the run does not wait for (a daily quota)
// ends the account without error: what was fetched before it is copied,
// the rest waits and is not counted as failed, the ledger records the run
// as paused with its resume time; the next run copies the rest.
func TestTrafficQuotaPause(t *testing.T) {
	msgs := genMessages(30)
	h := newHarness(msgs)
	h.opts.Traffic = &scriptTraffic{pauseAt: 12}
	st, err := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
		OpenSource: func(context.Context) (Source, error) { return h.src, nil }, OpenDestination: h.dst.open})
	if err != nil || st.Error != "" {
		t.Fatalf("RunAccount = %v (%q), want no error", err, st.Error)
	}
	if st.Copied != 11 || st.Waiting != 19 || st.Failed != 0 || !st.Paused || st.PausedUntil == nil || !st.PausedUntil.Equal(resumeAt) || st.PausedReason != "scripted pause" {
		t.Fatalf("stats: copied %d, waiting %d, failed %d, paused %v until %v (%q); want 11, 19, 0, paused until %v",
			st.Copied, st.Waiting, st.Failed, st.Paused, st.PausedUntil, st.PausedReason, resumeAt)
	}
	if st.Complete() {
		t.Error("Complete() for an account whose messages wait for the pause to end")
	}
	rec := h.ledger.runs[len(h.ledger.runs)-1]
	until, reason, ok := ParsePausedRecord(rec.Error)
	if rec.Result != "paused" || !ok || !until.Equal(resumeAt) || reason != "scripted pause" {
		t.Errorf("run record %q %q, want paused until %v", rec.Result, rec.Error, resumeAt)
	}
	h.opts.Traffic = &scriptTraffic{}
	st = h.run(t)
	if st.Copied != 19 || st.AlreadyDone != 11 {
		t.Errorf("the next run copied %d (%d done before), want 19 (11)", st.Copied, st.AlreadyDone)
	}
	if got := h.dst.bodies("INBOX"); len(got) != 30 {
		t.Errorf("destination holds %d messages, want 30", len(got))
	}
}

// TestTrafficReadyPaused: an account paused before it starts opens no
// session.
func TestTrafficReadyPaused(t *testing.T) {
	h := newHarness(genMessages(3))
	h.opts.Traffic = &scriptTraffic{readyErr: &PausedError{Until: resumeAt, Reason: "quota"}}
	opened := false
	st, err := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
		OpenSource:      func(context.Context) (Source, error) { opened = true; return h.src, nil },
		OpenDestination: h.dst.open})
	if err != nil || opened || st.PausedUntil == nil || st.Copied != 0 {
		t.Errorf("RunAccount = %v, opened %v, paused until %v; want nothing opened and paused", err, opened, st.PausedUntil)
	}
	boom := errors.New("boom")
	h.opts.Traffic = &scriptTraffic{readyErr: boom}
	if _, err := h.runner.RunAccount(context.Background(), Job{Options: h.opts,
		OpenSource: func(context.Context) (Source, error) { return h.src, nil }, OpenDestination: h.dst.open}); !errors.Is(err, boom) {
		t.Errorf("a failing Ready: %v, want it returned", err)
	}
}

// TestRunRecordPausedAt: a run that ended paused holds its pause until its
// time; other runs, unreadable records and a time passed hold none.
func TestRunRecordPausedAt(t *testing.T) {
	now := resumeAt.Add(-time.Hour)
	paused := &RunRecord{Result: "paused", Error: PausedRecord(resumeAt, "daily quota of 1 MB written reached")}
	tests := []struct {
		name string
		r    *RunRecord
		at   time.Time
		want bool
	}{
		{"paused, before its time", paused, now, true},
		{"paused, at its time", paused, resumeAt, false},
		{"ok", &RunRecord{Result: "ok"}, now, false},
		{"failed with a pause's words", &RunRecord{Result: "failed", Error: paused.Error}, now, false},
		{"paused, unreadable", &RunRecord{Result: "paused", Error: "paused until soon"}, now, false},
		{"no run", nil, now, false},
	}
	for _, tt := range tests {
		p := tt.r.PausedAt(tt.at)
		if (p != nil) != tt.want {
			t.Errorf("%s: PausedAt = %+v, want a pause: %v", tt.name, p, tt.want)
			continue
		}
		if p != nil && (!p.Until.Equal(resumeAt) || p.Reason != "daily quota of 1 MB written reached") {
			t.Errorf("%s: PausedAt = %+v, want until %v with the reason", tt.name, p, resumeAt)
		}
	}
}
