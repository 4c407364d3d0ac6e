package pop3src

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
	"github.com/mailferry/mailferry/pipeline"
)

// TestListHeapFlat keeps the listing from holding a record of every
// message again (issue 20): while List hands over the pages of a
// 100,000-message maildrop, the heap in use stays within 2 MB of what it
// was before the listing began. A slice of 100,000 SourceMessages with
// their keys would be some 10 MB. The fake server's messages are in the
// heap before and after alike.
func TestListHeapFlat(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("lists 100,000 messages; the race detector's heap is not the program's")
	}
	const n = 100000
	msgs := make([]pop3fake.Message, n)
	body := []byte("Subject: x\r\n\r\nx\r\n")
	for i := range msgs {
		msgs[i] = pop3fake.Message{UIDL: fmt.Sprintf("%08X%08X", i+1, 1700000000), Body: body}
	}
	srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
	s := open(t, plainOptions(srv))
	msgs = nil
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	base := inUse()
	var peak uint64
	pages, listed := 0, 0
	err := s.List(context.Background(), func(page []pipeline.SourceMessage) error {
		listed += len(page)
		if pages++; pages%20 == 1 {
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
