package checkpoint

import (
	"context"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The operator's controls by ledger key (the status page's pause, resume
// and retry) are the accounts' columns that Pause, Resume and Retry set by
// Selector: one pause.

func TestControlPauseResume(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	l := openTest(t, "", &Options{Now: func() time.Time { return now }})
	alice := testSpec("alice").Endpoint
	if c, err := l.Control(ctx, alice); err != nil || c != (Control{}) {
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
		if err := l.SetPaused(ctx, alice, st.paused); err != nil {
			t.Fatalf("%s: SetPaused(alice, %v) = %v", st.name, st.paused, err)
		}
		got, err := l.Control(ctx, alice)
		if err != nil || !got.Changed.Equal(st.want.Changed) || got.Paused != st.want.Paused || !got.RetryRequested.IsZero() {
			t.Errorf("%s: Control(alice) = %+v, %v; want %+v", st.name, got, err, st.want)
		}
		// The engine's view: an operator's pause, with no time (until
		// resumed); none once resumed.
		if p := got.Pause(); (p != nil) != st.paused || p != nil && (!p.Until.IsZero() || p.Reason != OperatorPauseReason) {
			t.Errorf("%s: Pause() = %+v, want a pause without a time: %v", st.name, p, st.paused)
		}
	}
	if err := l.SetPaused(ctx, "", true); err == nil {
		t.Error("SetPaused(\"\") = nil, want an error")
	}

	// Paused before its first run: the run's ResolveAccount finds the
	// account the pause recorded, and its hold says paused.
	carol := testSpec("carol")
	if err := l.SetPaused(ctx, carol.Endpoint, true); err != nil {
		t.Fatal(err)
	}
	res, err := l.ResolveAccount(ctx, carol)
	if err != nil || res.Created {
		t.Fatalf("ResolveAccount(carol) after the pause = %+v, %v; want the paused account", res, err)
	}
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Paused():
	default:
		t.Error("the hold of an account paused before its first run is not paused")
	}
	h.Release(ctx)
	if c, _ := l.Control(ctx, "carol"); c.Paused {
		t.Error("Control(carol) by a key that names nothing is paused")
	}

	all, err := l.Controls(ctx)
	if err != nil || all[alice].Paused || !all[carol.Endpoint].Paused || !all[alice].Changed.Equal(now) {
		t.Errorf("Controls() = %+v, %v; want alice resumed at %v and carol paused", all, err, now)
	}
	// Pause and Resume by Selector are the same pause.
	if _, err := l.Resume(ctx, Selector{IDs: []pipeline.AccountID{res.Account}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Control(ctx, carol.Endpoint); c.Paused {
		t.Error("Control(carol) after Resume by Selector: still paused")
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
	entry := func(key string, st pipeline.State, class pipeline.ReasonClass, reason string) pipeline.Entry {
		return pipeline.Entry{Key: key, State: st, ReasonClass: class, Reason: reason, Updated: now}
	}
	alice, ha := held(t, l, "alice")
	if err := l.Commit(ctx, alice, pipeline.Changes{Put: []pipeline.Entry{
		entry("big", pipeline.StateSkipped, pipeline.ReasonTooBig, "too big: 9 bytes"),
		entry("nul", pipeline.StateSkipped, pipeline.ReasonNUL, "NUL bytes"),
		entry("there", pipeline.StateSkipped, pipeline.ReasonPresent, "probably on the destination"),
		entry("refused", pipeline.StateFailed, pipeline.ReasonRefused, "NO [SERVERBUG]"),
	}}); err != nil {
		t.Fatal(err)
	}
	ha.Release(ctx)
	bob, hb := held(t, l, "bob")
	hb.Release(ctx)
	key := testSpec("alice").Endpoint
	got, err := l.RequestRetry(ctx, key)
	if err != nil || got != (RetryCounts{Skipped: 2, Failed: 1}) {
		t.Fatalf("RequestRetry(alice) = %+v, %v; want 2 skipped made retryable, 1 failed", got, err)
	}
	if c, err := l.Control(ctx, key); err != nil || !c.RetryRequested.Equal(now) || c.Paused {
		t.Errorf("Control(alice) = %+v, %v; want RetryRequested %v", c, err, now)
	}
	// The next run of alice tries the skipped again; bob's does not.
	for _, tc := range []struct {
		id   pipeline.AccountID
		want bool
	}{{alice, true}, {bob, false}} {
		h, err := l.Hold(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if h.RetrySkipped() != tc.want {
			t.Errorf("account %d: RetrySkipped %v, want %v", tc.id, h.RetrySkipped(), tc.want)
		}
		h.Release(ctx)
	}
	// A retry does not resume or pause, and a pause keeps the retry time.
	if err := l.SetPaused(ctx, key, true); err != nil {
		t.Fatal(err)
	}
	if c, _ := l.Control(ctx, key); !c.Paused || !c.RetryRequested.Equal(now) {
		t.Errorf("Control(alice) after pausing = %+v, want paused with RetryRequested %v", c, now)
	}
}
