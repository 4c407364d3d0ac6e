package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// TestEach: the entries of an account named by its ledger key, in key
// order, by state, in pages; the summaries by key.
func TestEach(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	l := openTest(t, "", nil)
	alice, h := held(t, l, "alice")
	var all []pipeline.Entry
	for i := range 10 {
		e := pipeline.Entry{Key: fmt.Sprintf("k%02d", i), State: pipeline.StateDone, Digest: fmt.Sprintf("%064x", i),
			Size: 100, DestMailbox: "INBOX", DestUIDValidity: 1, DestUID: uint32(i + 1), Updated: now, DoneAt: now}
		if i%3 == 0 {
			e = pipeline.Entry{Key: e.Key, State: pipeline.StateSkipped, ReasonClass: pipeline.ReasonTooBig, Reason: "too big", Size: 7, Updated: now}
		}
		all = append(all, e)
	}
	if err := l.Commit(ctx, alice, pipeline.Changes{Put: all}); err != nil {
		t.Fatal(err)
	}
	h.Release(ctx)
	bob, hb := held(t, l, "bob")
	if err := l.Commit(ctx, bob, pipeline.Changes{Put: []pipeline.Entry{{Key: "k00", State: pipeline.StateFailed, Reason: "x", Updated: now}}}); err != nil {
		t.Fatal(err)
	}
	hb.Release(ctx)
	key := testSpec("alice").Endpoint
	keys := func(opts ScanOptions) []string {
		t.Helper()
		var out []string
		if err := l.Each(ctx, key, opts, func(e pipeline.Entry) error {
			out = append(out, e.Key)
			return nil
		}); err != nil {
			t.Fatalf("Each(%+v) = %v", opts, err)
		}
		return out
	}
	tests := []struct {
		name string
		opts ScanOptions
		want string
	}{
		{"all in key order", ScanOptions{}, "[k00 k01 k02 k03 k04 k05 k06 k07 k08 k09]"},
		{"skipped only", ScanOptions{States: []pipeline.State{pipeline.StateSkipped}}, "[k00 k03 k06 k09]"},
		{"page", ScanOptions{After: "k03", Limit: 3}, "[k04 k05 k06]"},
		{"skipped page", ScanOptions{States: []pipeline.State{pipeline.StateSkipped}, After: "k00", Limit: 2}, "[k03 k06]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(keys(tt.opts)); got != tt.want {
			t.Errorf("%s: Each keys = %s, want %s", tt.name, got, tt.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := l.Each(ctx, key, ScanOptions{}, func(pipeline.Entry) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Each with a failing fn = %v after %d entries, want the fn's error after 1", err, n)
	}
	if err := l.Each(ctx, key, ScanOptions{States: []pipeline.State{0}}, func(pipeline.Entry) error { return nil }); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("Each with state 0 = %v, want ErrInvalidEntry", err)
	}
	if err := l.Each(ctx, "nobody", ScanOptions{}, func(pipeline.Entry) error { return stop }); err != nil {
		t.Errorf("Each of an unknown key = %v, want no entries", err)
	}

	sums, err := l.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := sums[key]
	if s.Done != 6 || s.Skipped != 4 || s.Bytes != 600 || s.AllBytes != 628 || s.SkipReasons["too big"] != 4 {
		t.Errorf("Summaries()[alice] = %+v", s)
	}
	if one, err := l.Summary(ctx, key); err != nil || one.Done != s.Done || one.AllBytes != s.AllBytes {
		t.Errorf("Summary(alice) = %+v, %v; want %+v", one, err, s)
	}
	if b := sums[testSpec("bob").Endpoint]; b.Failed != 1 || b.Done != 0 {
		t.Errorf("Summaries()[bob] = %+v", b)
	}
	if names, err := l.Accounts(ctx); err != nil || len(names) != 2 {
		t.Errorf("Accounts() = %q, %v", names, err)
	}
}

func TestDoneHistory(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	l := openTest(t, "", nil)
	alice, h := held(t, l, "alice")
	var es []pipeline.Entry
	for i, at := range []time.Duration{0, 10 * time.Second, 70 * time.Second, 200 * time.Second, -time.Hour} {
		es = append(es, pipeline.Entry{Key: fmt.Sprintf("k%d", i), State: pipeline.StateDone, Digest: fmt.Sprintf("%064x", i),
			Size: 100, Updated: t0.Add(at), DoneAt: t0.Add(at)})
	}
	es = append(es, pipeline.Entry{Key: "s", State: pipeline.StateSkipped, Reason: "x", Updated: t0})
	if err := l.Commit(ctx, alice, pipeline.Changes{Put: es}); err != nil {
		t.Fatal(err)
	}
	h.Release(ctx)
	got, err := l.DoneHistory(ctx, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []Throughput{{t0, 2, 200}, {t0.Add(time.Minute), 1, 100}, {t0.Add(3 * time.Minute), 1, 100}}
	if len(got) != len(want) {
		t.Fatalf("DoneHistory = %+v, want %+v", got, want)
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || got[i].Messages != want[i].Messages || got[i].Bytes != want[i].Bytes {
			t.Errorf("DoneHistory[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := l.DoneHistory(ctx, t0, 0); err == nil {
		t.Error("DoneHistory with step 0 = nil error, want one")
	}
}
