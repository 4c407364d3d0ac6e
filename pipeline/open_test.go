package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestJobOpen: with Job.Open set, the engine opens an attempt's sessions
// through it alone (the caller takes its connection slots there), and its
// errors end the attempt as they would from the separate openers. It
// tells Open that the attempt is likely to copy when the ledger holds no
// message done for the account (a first run, also one that found nothing
// to copy), never in a dry run nor on a re-run.
func TestJobOpen(t *testing.T) {
	h := newHarness(genMessages(5))
	separate := 0
	var opened []OpenOptions
	job := Job{Options: h.opts,
		OpenSource:      func(context.Context) (Source, error) { separate++; return h.src, nil },
		OpenDestination: func(ctx context.Context) (Destination, error) { separate++; return h.dst.open(ctx) },
		Open: func(ctx context.Context, o OpenOptions) (Source, Destination, error) {
			opened = append(opened, o)
			d, err := h.dst.open(ctx)
			return h.src, d, err
		}}
	for _, run := range []struct {
		name   string
		dry    bool
		copied int
		likely bool
	}{
		{"dry run", true, 5, false},
		{"first run", false, 5, true},
		{"re-run", false, 0, false},
	} {
		opened = nil
		h.runner.DryRun = run.dry
		st, err := h.runner.RunAccount(context.Background(), job)
		if err != nil || st.Copied != run.copied {
			t.Fatalf("%s: RunAccount = %d copied, %v; want %d, nil", run.name, st.Copied, err, run.copied)
		}
		if len(opened) != 1 || separate != 0 {
			t.Fatalf("%s: Open called %d times and the separate openers %d; want 1 and 0", run.name, len(opened), separate)
		}
		if opened[0].LikelyToCopy != run.likely {
			t.Errorf("%s: Open told LikelyToCopy %v, want %v", run.name, opened[0].LikelyToCopy, run.likely)
		}
	}

	refused := &errClass{msg: "connecting to the destination: refused", class: ClassFatal}
	job.Open = func(context.Context, OpenOptions) (Source, Destination, error) { return nil, nil, refused }
	st, err := h.runner.RunAccount(context.Background(), job)
	if !errors.Is(err, refused) || st.Attempts != 1 || !strings.Contains(st.Error, "refused") {
		t.Errorf("failing Open: %v after %d attempts (stats error %q), want the fatal error after 1", err, st.Attempts, st.Error)
	}
}

// TestOpenBoth: the two sessions open at the same time; when one side
// fails the other is closed and the error names the side.
func TestOpenBoth(t *testing.T) {
	boom := errors.New("boom")
	okSrc := func(context.Context) (Source, error) { return &memSource{}, nil }
	dst := newMemDest()
	tests := []struct {
		name    string
		openSrc func(context.Context) (Source, error)
		openDst func(context.Context) (Destination, error)
		want    string
	}{
		{"both open", okSrc, dst.open, ""},
		{"source fails", func(context.Context) (Source, error) { return nil, boom }, dst.open, "connecting to the source: boom"},
		{"destination fails", okSrc, func(context.Context) (Destination, error) { return nil, boom }, "connecting to the destination: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, d, err := OpenBoth(context.Background(), tc.openSrc, tc.openDst)
			if tc.want == "" {
				if err != nil || src == nil || d == nil {
					t.Fatalf("OpenBoth = %v, %v, %v; want two sessions", src, d, err)
				}
				return
			}
			if err == nil || err.Error() != tc.want || !errors.Is(err, boom) || src != nil || d != nil {
				t.Errorf("OpenBoth = %v, %v, %v; want only the error %q", src, d, err, tc.want)
			}
		})
	}
}
