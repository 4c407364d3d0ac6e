package pipeline

import "testing"

func TestMaxDelete(t *testing.T) {
	for _, c := range []struct {
		name    string
		n, pct  int
		copied  int64
		wantCap int64
	}{
		{"default: at least 50", 0, 0, 100, 50},
		{"default: 10 percent", 0, 0, 10000, 1000},
		{"count", 20, 0, 10000, 20},
		{"percent, no floor", 0, 5, 100, 5},
		{"both: the smaller", 200, 1, 10000, 100},
		{"both: the smaller count", 20, 50, 10000, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := (Options{MaxDelete: c.n, MaxDeletePercent: c.pct}).maxDelete(c.copied); got != c.wantCap {
				t.Errorf("maxDelete(%d) with --max-delete %d --max-delete-percent %d = %d, want %d", c.copied, c.n, c.pct, got, c.wantCap)
			}
		})
	}
}
