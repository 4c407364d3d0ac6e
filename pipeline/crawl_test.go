package pipeline

import (
	"errors"
	"testing"
	"time"
)

// TestCrawlWatch: a crawl is every batch slow for the rule's window, slow
// meaning below the floor or the normal rate divided by the factor; a
// batch at a normal rate ends a run of slow ones.
func TestCrawlWatch(t *testing.T) {
	rule := CrawlRule{Window: 10 * time.Second, Factor: 20, Floor: 100}
	type batch struct {
		bytes int64
		took  time.Duration
	}
	fast, slow := batch{100_000, 100 * time.Millisecond}, batch{1_000, 2 * time.Second} // 1 MB/s, 500 B/s
	for _, tt := range []struct {
		name    string
		batches []batch
		crawl   int // index of the batch that reports the crawl; -1: none
	}{
		{"all fast", []batch{fast, fast, fast, fast}, -1},
		{"slow, not for long", []batch{fast, slow, slow, slow, fast, slow}, -1},
		{"slow for the window", []batch{fast, fast, slow, slow, slow, slow, slow, slow}, 6},
		{"below the floor from the start", []batch{{100, 2 * time.Second}, {100, 4 * time.Second}, {100, 5 * time.Second}}, 2},
		{"a fast batch ends the run", []batch{fast, slow, slow, slow, slow, fast, slow, slow, slow, slow, slow}, 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &crawlWatch{rule: rule.withDefaults()}
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			got := -1
			for i, b := range tt.batches {
				err := c.observe(b.bytes, now, now.Add(b.took))
				now = now.Add(b.took)
				var de *DailyLimitError
				if err != nil && !errors.As(err, &de) {
					t.Fatalf("batch %d: %v is no *DailyLimitError", i, err)
				}
				if err != nil && got < 0 {
					got = i
				}
			}
			if got != tt.crawl {
				t.Errorf("crawl reported at batch %d, want %d", got, tt.crawl)
			}
		})
	}
}
