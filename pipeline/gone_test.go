package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
)

// goneSource is a memSource whose Fetch reports some listed messages as
// expunged since List, as imapsrc does.
type goneSource struct {
	*memSource
	gone map[string]bool
}

func (s goneSource) Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	if s.gone[msg.Key] {
		return 0, fmt.Errorf("fetching %q: %w", msg.Key, ErrMessageGone)
	}
	return s.memSource.Fetch(ctx, msg, w)
}

func TestMessageGoneSinceListIsCountedNotFailed(t *testing.T) {
	tests := []struct {
		name string
		gone []int // indexes of messages gone by Fetch time
	}{
		{name: "none gone", gone: nil},
		{name: "one in the middle", gone: []int{4}},
		{name: "first and last", gone: []int{0, 11}},
		{name: "every message", gone: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := genMessages(12)
			h := newHarness(msgs)
			src := goneSource{memSource: h.src, gone: map[string]bool{}}
			for _, i := range tt.gone {
				src.gone[msgs[i].key] = true
			}
			st, err := h.runner.RunAccount(context.Background(), Job{
				Options:         h.opts,
				OpenSource:      func(context.Context) (Source, error) { return src, nil },
				OpenDestination: h.dst.open,
			})
			if err != nil || st.Error != "" {
				t.Fatalf("RunAccount: %v (stats error %q), want success", err, st.Error)
			}
			want := len(msgs) - len(tt.gone)
			if st.Copied != want || st.Gone != len(tt.gone) || st.Failed != 0 || st.Skipped != 0 {
				t.Errorf("copied %d, gone %d, failed %d, skipped %d; want %d, %d, 0, 0",
					st.Copied, st.Gone, st.Failed, st.Skipped, want, len(tt.gone))
			}
			if n := len(h.dst.bodies("INBOX")); n != want {
				t.Errorf("destination holds %d messages, want %d", n, want)
			}
			// Nothing is recorded for a gone message: should it come
			// back (a wrong report), the next run copies it.
			entries := h.ledger.all(alice)
			for _, i := range tt.gone {
				if e, ok := entries[msgs[i].key]; ok {
					t.Errorf("ledger has %q as %v, want no entry", msgs[i].key, e.State)
				}
			}
		})
	}
}

// refusingSource is a memSource whose Fetch of some messages fails per
// message, as pop3src's does for a message the server refuses every time.
type refusingSource struct {
	*memSource
	refused map[string]bool
}

func (s refusingSource) Fetch(ctx context.Context, msg SourceMessage, w io.Writer) (int64, error) {
	if s.refused[msg.Key] {
		return 0, PerMessage(fmt.Errorf("fetching %q: -ERR message is corrupt", msg.Key))
	}
	return s.memSource.Fetch(ctx, msg, w)
}

// TestMessageRefusedBySourceFailsAlone: a message the source will not serve
// fails with the source's reason; the messages after it are copied, and
// the next run tries it again.
func TestMessageRefusedBySourceFailsAlone(t *testing.T) {
	msgs := genMessages(12)
	h := newHarness(msgs)
	src := refusingSource{memSource: h.src, refused: map[string]bool{msgs[3].key: true}}
	job := Job{Options: h.opts, OpenSource: func(context.Context) (Source, error) { return src, nil }, OpenDestination: h.dst.open}
	st, err := h.runner.RunAccount(context.Background(), job)
	if err != nil || st.Error != "" {
		t.Fatalf("RunAccount: %v (stats error %q), want the account to complete", err, st.Error)
	}
	if st.Copied != 11 || st.Failed != 1 || len(st.Failures) != 1 || !strings.Contains(st.Failures[0].Reason, "corrupt") {
		t.Fatalf("copied %d, failed %d %+v; want 11 and the refused one with its reason", st.Copied, st.Failed, st.Failures)
	}
	if n := len(h.dst.bodies("INBOX")); n != 11 {
		t.Errorf("destination holds %d messages, want 11", n)
	}
	delete(src.refused, msgs[3].key)
	st, err = h.runner.RunAccount(context.Background(), job)
	if err != nil || st.Copied != 1 || st.Failed != 0 {
		t.Fatalf("second run: copied %d, failed %d, %v; want the refused message copied now", st.Copied, st.Failed, err)
	}
}
