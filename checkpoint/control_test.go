package checkpoint

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

func TestControlPauseResume(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	path := ""
	l := openTest(t, path, &Options{Now: func() time.Time { return now }})
	if c, err := l.Control(ctx, "alice"); err != nil || c != (Control{}) {
		t.Fatalf("Control(alice) before anything = %+v, %v; want the zero Control", c, err)
	}
	steps := []struct {
		name   string
		paused bool
		at     time.Time
		want   Control
	}{
		{"pause", true, now, Control{Paused: true, Changed: now}},
		{"pause again keeps the time", true, now.Add(time.Hour), Control{Paused: true, Changed: now}},
		{"resume", false, now.Add(2 * time.Hour), Control{Changed: now.Add(2 * time.Hour)}},
	}
	for _, st := range steps {
		now = st.at
		if err := l.SetPaused(ctx, "alice", st.paused); err != nil {
			t.Fatalf("%s: SetPaused(alice, %v) = %v", st.name, st.paused, err)
		}
		got, err := l.Control(ctx, "alice")
		if err != nil || !got.Changed.Equal(st.want.Changed) || got.Paused != st.want.Paused || !got.RetryRequested.IsZero() {
			t.Errorf("%s: Control(alice) = %+v, %v; want %+v", st.name, got, err, st.want)
		}
		// The engine's view: an operator's pause, with no time (until
		// resumed); none once resumed.
		if p := got.Pause(); (p != nil) != st.paused || p != nil && (!p.Until.IsZero() || p.Reason != OperatorPauseReason) {
			t.Errorf("%s: Pause() = %+v, want a pause without a time: %v", st.name, p, st.paused)
		}
	}
	if c, err := l.Control(ctx, "bob"); err != nil || c.Paused {
		t.Errorf("Control(bob) = %+v, %v; pausing alice must not touch bob", c, err)
	}
	if err := l.SetPaused(ctx, "carol", true); err != nil {
		t.Fatal(err)
	}
	all, err := l.Controls(ctx)
	if err != nil || len(all) != 2 || all["alice"].Paused || !all["carol"].Paused || !all["alice"].Changed.Equal(now) {
		t.Errorf("Controls() = %+v, %v; want alice resumed at %v and carol paused", all, err, now)
	}
	if err := l.SetPaused(ctx, "", true); err == nil {
		t.Error("SetPaused(\"\") = nil, want an error")
	}
}

// A pause outlives the process: a second Open of the file sees it.
func TestControlIsDurable(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/ledger.db"
	l, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetPaused(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openTest(t, path, nil)
	if c, err := l2.Control(ctx, "alice"); err != nil || !c.Paused {
		t.Errorf("Control(alice) after reopening = %+v, %v; want paused", c, err)
	}
}

func TestRequestRetry(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	l := openTest(t, "", &Options{Now: func() time.Time { return now }})
	entry := func(account, key string, st pipeline.State, reason string) pipeline.Entry {
		e := fullEntry(account, key)
		e.State, e.Reason = st, reason
		return e
	}
	mustPut(t, l,
		entry("alice", "done1", pipeline.StateDone, ""),
		entry("alice", "big", pipeline.StateSkipped, "too big: 9 bytes"),
		entry("alice", "nul", pipeline.StateSkipped, "NUL bytes"),
		entry("alice", "refused", pipeline.StateFailed, "NO [SERVERBUG]"),
		entry("bob", "big", pipeline.StateSkipped, "too big"),
	)
	got, err := l.RequestRetry(ctx, "alice")
	if err != nil || got != (RetryCounts{Skipped: 2, Failed: 1}) {
		t.Fatalf("RequestRetry(alice) = %+v, %v; want 2 skipped made retryable, 1 failed", got, err)
	}
	es := mustEntries(t, l, "alice")
	for key, want := range map[string]pipeline.State{"done1": pipeline.StateDone, "big": pipeline.StateFailed,
		"nul": pipeline.StateFailed, "refused": pipeline.StateFailed} {
		if es[key].State != want {
			t.Errorf("alice %s: state %v, want %v", key, es[key].State, want)
		}
		if d := pipeline.DispositionOf(es[key], true); want == pipeline.StateFailed && d != pipeline.ToCopy {
			t.Errorf("alice %s: disposition %v after the retry request, want %v", key, d, pipeline.ToCopy)
		}
	}
	if r := es["big"].Reason; !strings.Contains(r, "too big: 9 bytes") || !strings.Contains(r, "retry") {
		t.Errorf("alice big: reason %q, want the skip reason kept and the retry said", r)
	}
	if b := mustEntries(t, l, "bob")["big"]; b.State != pipeline.StateSkipped {
		t.Errorf("bob big: state %v, want skipped (the retry was for alice)", b.State)
	}
	if c, err := l.Control(ctx, "alice"); err != nil || !c.RetryRequested.Equal(now) || c.Paused {
		t.Errorf("Control(alice) = %+v, %v; want RetryRequested %v", c, err, now)
	}
	// A retry does not resume or pause, and a pause keeps the retry time.
	if err := l.SetPaused(ctx, "alice", true); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Control(ctx, "alice"); !c.Paused || !c.RetryRequested.Equal(now) {
		t.Errorf("Control(alice) after pausing = %+v, want paused with RetryRequested %v", c, now)
	}
}
