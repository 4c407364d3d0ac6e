package imapsrc

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// TestListHeapFlat keeps the listing from holding a record of every
// message again (issue 20): while List hands over the pages of a
// 50,000-message folder, the heap in use stays within 2 MB of what it was
// before the listing began. A slice of 50,000 SourceMessages with their
// keys and flags would be some 6 MB. The in-memory server's messages are
// in the heap before and after alike.
func TestListHeapFlat(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("lists 50,000 messages; the race detector's heap is not the program's")
	}
	const n = 50000
	msgs := make([]memMessage, n)
	for i := range msgs {
		msgs[i] = memMessage{"INBOX", crlfMessage(fmt.Sprint("m", i), "x"), nil, time.Time{}}
	}
	_, opts := memServer(t, nil, nil, msgs)
	msgs = nil
	s := openSource(t, opts)
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	base := inUse()
	var peak uint64
	pages, listed := 0, 0
	err := s.List(t.Context(), func(page []pipeline.SourceMessage) error {
		listed += len(page)
		if pages++; pages%10 == 1 {
			peak = max(peak, inUse())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if listed != n {
		t.Fatalf("listed %d messages, want %d", listed, n)
	}
	t.Logf("heap in use: %.1f MB before the listing, at most %.1f MB while its %d pages were handed over",
		float64(base)/1e6, float64(peak)/1e6, pages)
	if peak > base+2<<20 {
		t.Errorf("the listing of %d messages holds %.1f MB more heap than before it began; want under 2 MB",
			n, float64(peak-base)/1e6)
	}
}
