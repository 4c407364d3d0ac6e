package traffic

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/fakeclock"
	"github.com/mailferry/mailferry/pipeline"
)

// monday is 2026-12-07 00:00 UTC, a Monday.
var monday = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, s string, u Unit) Timetable {
	t.Helper()
	tab, err := Parse(s, u)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return tab
}

// TestWriteRate: 20 MB written under a 2 MB/s limit take 10 s of the
// clock, within 5 % (the bucket's depth of 0.1 s is the only slack), and
// one minute of writing averages the limit within 5 %.
func TestWriteRate(t *testing.T) {
	tests := []struct {
		name  string
		total int
		limit string
		want  time.Duration
	}{
		{"20 MB at 2 MB/s", 20e6, "2M", 10 * time.Second},
		{"a minute at 512 kB/s", 512e3 * 60, "512k", time.Minute},
		{"a minute at 1 kB/s", 1e3 * 60, "1k", time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(monday)
			run := NewRun(Options{Clock: clock, Location: time.UTC})
			acc := run.Account("a", Limits{Write: mustParse(t, tt.limit, Bytes)}, Quota{})
			for left := tt.total; left > 0; left -= 32 << 10 {
				if err := acc.Write(context.Background(), min(left, 32<<10)); err != nil {
					t.Fatal(err)
				}
			}
			got := clock.Now().Sub(monday)
			if lo, hi := tt.want*95/100, tt.want*105/100; got < lo || got > hi {
				t.Errorf("writing %d bytes took %v of the clock, want %v ± 5 %%", tt.total, got, tt.want)
			}
		})
	}
}

// TestTotalShared: two accounts writing at once share the run's limit.
func TestTotalShared(t *testing.T) {
	clock := fakeclock.New(monday)
	run := NewRun(Options{Clock: clock, Location: time.UTC, Total: Limits{Write: mustParse(t, "1M", Bytes)}})
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		acc := run.Account(name, Limits{Write: mustParse(t, "10M", Bytes)}, Quota{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5000000 / (16 << 10) {
				if err := acc.Write(context.Background(), 16<<10); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// 2 × 4.98 MB at 1 MB/s.
	if got := clock.Now().Sub(monday); got < 9500*time.Millisecond || got > 10500*time.Millisecond {
		t.Errorf("two accounts wrote 10 MB under a run limit of 1 MB/s in %v of the clock, want about 10 s", got)
	}
}

// TestMessageRateOverAMinute: under 10 messages per second, no minute
// holds more than 600 messages and a bucket's depth, and the average over
// several minutes is within 5 % of the limit.
func TestMessageRateOverAMinute(t *testing.T) {
	clock := fakeclock.New(monday)
	run := NewRun(Options{Clock: clock, Location: time.UTC})
	acc := run.Account("a", Limits{Messages: mustParse(t, "10", Messages)}, Quota{})
	var times []time.Time
	for clock.Now().Sub(monday) < 3*time.Minute {
		if err := acc.Fetch(context.Background(), 1000); err != nil {
			t.Fatal(err)
		}
		times = append(times, clock.Now())
	}
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Minute; j++ {
			n++
		}
		if n > 600+burstOf(10) {
			t.Fatalf("%d messages in the minute from %v, want at most %d", n, times[i].Sub(monday), 600+burstOf(10))
		}
	}
	avg := float64(len(times)) / times[len(times)-1].Sub(monday).Seconds()
	if avg < 9.5 || avg > 10.5 {
		t.Errorf("average %.2f messages/s over %v, want 10 ± 5 %%", avg, times[len(times)-1].Sub(monday))
	}
}

// TestScheduleLive: a timetable switching from off to a limit and to pause
// during a run: the limit applies from its minute on, Fetch and Send return
// a pause the run waits for (Ready returns when it is over), and bytes in
// flight are never paused.
func TestScheduleLive(t *testing.T) {
	clock := fakeclock.New(monday.Add(8 * time.Hour)) // Monday 08:00
	run := NewRun(Options{Clock: clock, Location: time.UTC})
	acc := run.Account("a", Limits{Write: mustParse(t, "Mon 08:01,100k 08:02,pause 08:03,off", Bytes)}, Quota{})
	ctx := context.Background()
	// Off: 10 MB in no time.
	for range 100 {
		if err := acc.Write(ctx, 100e3); err != nil {
			t.Fatal(err)
		}
	}
	if got := clock.Now(); !got.Equal(monday.Add(8 * time.Hour)) {
		t.Fatalf("writing without a limit moved the clock to %v", got)
	}
	clock.Set(monday.Add(8*time.Hour + time.Minute))
	// 100 kB/s from 08:01: 3 MB take 30 s.
	for range 30 {
		if err := acc.Write(ctx, 100e3); err != nil {
			t.Fatal(err)
		}
	}
	if got := clock.Now().Sub(monday.Add(8*time.Hour + time.Minute)); got < 29*time.Second || got > 31*time.Second {
		t.Errorf("3 MB at 100 kB/s took %v", got)
	}
	if err := acc.Send(ctx, 1000); err != nil {
		t.Fatalf("Send under a limit: %v", err)
	}
	clock.Set(monday.Add(8*time.Hour + 2*time.Minute + 10*time.Second))
	for _, f := range []func() error{func() error { return acc.Fetch(ctx, 1) }, func() error { return acc.Send(ctx, 1) }} {
		var pe *pipeline.PausedError
		if err := f(); !errors.As(err, &pe) || !pe.Wait || !pe.Until.Equal(monday.Add(8*time.Hour+3*time.Minute)) {
			t.Fatalf("during the pause: %v, want a pause until 08:03 the run waits for", err)
		}
	}
	// Bytes in flight go on.
	if err := acc.Write(ctx, 1e6); err != nil {
		t.Fatal(err)
	}
	if err := acc.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if got := clock.Now(); !got.Equal(monday.Add(8*time.Hour + 3*time.Minute)) {
		t.Errorf("Ready returned at %v, want 08:03", got)
	}
	if err := acc.Fetch(ctx, 1); err != nil {
		t.Errorf("Fetch after the pause: %v", err)
	}
}

// TestSlowMessageRate: a message rate slower than MaxHold ends the attempt
// (a pause the run waits for) instead of holding sessions idle.
func TestSlowMessageRate(t *testing.T) {
	clock := fakeclock.New(monday)
	run := NewRun(Options{Clock: clock, Location: time.UTC})
	acc := run.Account("a", Limits{Messages: mustParse(t, "0.01", Messages)}, Quota{})
	ctx := context.Background()
	if err := acc.Fetch(ctx, 1); err != nil {
		t.Fatal(err)
	}
	var pe *pipeline.PausedError
	if err := acc.Fetch(ctx, 1); !errors.As(err, &pe) || !pe.Wait || pe.Until.Sub(monday) < 99*time.Second {
		t.Fatalf("second message at 0.01/s: %v, want a pause of 100 s", err)
	}
	if got := clock.Now(); !got.Equal(monday) {
		t.Fatalf("the refused message moved the clock to %v", got)
	}
	if err := acc.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := acc.Fetch(ctx, 1); err != nil {
		t.Fatalf("after Ready: %v", err)
	}
	if got := clock.Now().Sub(monday); got < 99*time.Second || got > 101*time.Second {
		t.Errorf("the second message came at %v, want 100 s", got)
	}
}

// TestDailyQuota: reaching a quota pauses the account until the next day
// (a pause the run does not wait for); the next day it goes on; the first
// message of a day passes however large.
func TestDailyQuota(t *testing.T) {
	clock := fakeclock.New(monday.Add(10 * time.Hour))
	store := &MemoryUsage{}
	run := NewRun(Options{Clock: clock, Location: time.UTC, Usage: store})
	acc := run.Account("a", Limits{}, Quota{ReadBytes: 1e6, WrittenBytes: 300e3})
	ctx := context.Background()
	if err := acc.Fetch(ctx, 5e6); err != nil {
		t.Fatalf("the day's first message, larger than the quota: %v", err)
	}
	_ = acc.Read(ctx, 700e3)
	if err := acc.Fetch(ctx, 200e3); err != nil {
		t.Fatalf("within the quota: %v", err)
	}
	_ = acc.Read(ctx, 200e3)
	var pe *pipeline.PausedError
	err := acc.Fetch(ctx, 200e3)
	if !errors.As(err, &pe) || pe.Wait || !pe.Until.Equal(monday.Add(24*time.Hour)) {
		t.Fatalf("over the read quota: %v, want paused until Tuesday 00:00", err)
	}
	if err := acc.Ready(ctx); !errors.As(err, &pe) {
		t.Fatalf("Ready with the quota reached: %v, want paused", err)
	}
	// The written quota, at Send.
	_ = acc.Write(ctx, 250e3)
	if err := acc.Send(ctx, 100e3); !errors.As(err, &pe) || pe.Wait {
		t.Fatalf("over the written quota: %v", err)
	}
	// The usage was stored.
	if u, _ := store.Usage(ctx, "a", monday); u.ReadBytes != 900e3 || u.WrittenBytes != 250e3 {
		t.Errorf("stored usage %+v, want 900 kB read and 250 kB written", u)
	}
	// A new account object (the next poll) reads it back.
	again := run.Account("a", Limits{}, Quota{ReadBytes: 1e6})
	if err := again.Ready(ctx); err != nil {
		t.Errorf("a new account object the same day, below the quota: %v", err)
	}
	if err := again.Fetch(ctx, 200e3); !errors.As(err, &pe) {
		t.Errorf("a new account object the same day, over the quota: %v, want paused", err)
	}
	clock.Set(monday.Add(24*time.Hour + time.Minute))
	if err := acc.Ready(ctx); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	if err := acc.Fetch(ctx, 200e3); err != nil {
		t.Fatalf("the next day: %v", err)
	}
}
