package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// The summary says what was deleted at the source, what would be in a dry
// run, and what waits for its delete_after period.
func TestSummaryDeletions(t *testing.T) {
	tests := []struct {
		name    string
		dryRun  bool
		stats   pipeline.Stats
		want    []string
		notWant []string
	}{
		{"deleted and waiting", false, pipeline.Stats{Listed: 9, AlreadyDone: 9, Deleted: 4, DeleteWaiting: 5},
			[]string{", 4 deleted at the source, 5 waiting for their delete_after period"}, []string{"nothing to do"}},
		{"dry run", true, pipeline.Stats{Listed: 9, AlreadyDone: 9, Deleted: 4, DryRun: true},
			[]string{", 4 would be deleted at the source"}, []string{"4 deleted", "nothing to do"}},
		{"only waiting", false, pipeline.Stats{Listed: 3, AlreadyDone: 3, DeleteWaiting: 3},
			[]string{", 3 waiting for their delete_after period", "nothing to do"}, []string{"deleted"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.stats
			st.Account = "pop3://alice@pop.example"
			r := newReport("copy", tc.dryRun, time.Now(), []*pipeline.Stats{&st}, false)
			var b strings.Builder
			r.writeText(&b, 80)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("summary lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("summary has %q:\n%s", w, b.String())
				}
			}
			if r.Totals.Deleted != st.Deleted || r.Totals.DeleteWaiting != st.DeleteWaiting {
				t.Errorf("totals: deleted %d, waiting %d; want %d, %d", r.Totals.Deleted, r.Totals.DeleteWaiting, st.Deleted, st.DeleteWaiting)
			}
		})
	}
}
