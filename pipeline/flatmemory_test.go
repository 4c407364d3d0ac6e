package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// The heap check of issue 20: the copy, its listing and its ledger hold
// nothing per message of the whole mailbox. A mailbox 50 times larger may
// not need more heap in use than a fixed allowance over the small one's:
// one SourceMessage kept per message (its key alone is 20 bytes) would
// pass the allowance by far. It measures heap in use after collections,
// never time (the speed and RSS figures are the bench's: mailferry-bench
// -workloads flat).

// synthSource lists n messages page by page, generated from their number:
// it holds nothing per message itself.
type synthSource struct {
	n     int
	bodyN int
}

func (s *synthSource) key(i int) string { return fmt.Sprintf("%016X", i+1) }

func (s *synthSource) body(seq uint32) []byte {
	return fmt.Appendf(nil, "Message-ID: <%d@synth>\r\nSubject: %d\r\n\r\n%0*d\r\n", seq, seq, s.bodyN, seq)
}

func (s *synthSource) List(_ context.Context, page func([]pipeline.SourceMessage) error) error {
	for start := 0; start < s.n; start += pipeline.ListPage {
		msgs := make([]pipeline.SourceMessage, 0, pipeline.ListPage)
		for i := start; i < min(start+pipeline.ListPage, s.n); i++ {
			seq := uint32(i + 1)
			msgs = append(msgs, pipeline.SourceMessage{Key: s.key(i), Size: int64(len(s.body(seq))), Seq: seq})
		}
		if err := page(msgs); err != nil {
			return err
		}
	}
	return nil
}

func (s *synthSource) Fetch(_ context.Context, m pipeline.SourceMessage, w io.Writer) (int64, error) {
	n, err := w.Write(s.body(m.Seq))
	return int64(n), err
}

func (s *synthSource) Delete(context.Context, []pipeline.SourceMessage) error { return nil }
func (s *synthSource) Close(bool) error                                       { return nil }

// sinkDest stores nothing and answers every APPEND with the next UID.
type sinkDest struct {
	mu   sync.Mutex
	next uint32
}

func (d *sinkDest) Capabilities() pipeline.Capabilities {
	return pipeline.Capabilities{MultiAppend: true, UIDPlus: true}
}

func (d *sinkDest) EnsureMailbox(_ context.Context, name string) (pipeline.MailboxStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return pipeline.MailboxStatus{Name: name, UIDValidity: 1, UIDNext: d.next + 1}, nil
}

func (d *sinkDest) Append(_ context.Context, _ string, msgs []pipeline.OutgoingMessage) ([]pipeline.AppendResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]pipeline.AppendResult, len(msgs))
	for i := range msgs {
		d.next++
		out[i] = pipeline.AppendResult{UIDValidity: 1, UID: d.next}
	}
	return out, nil
}

func (d *sinkDest) ListSince(context.Context, string, uint32, uint32) ([]pipeline.DestMessage, error) {
	return nil, nil
}
func (d *sinkDest) SearchMessageID(context.Context, string, string) ([]uint32, error) {
	return nil, nil
}
func (d *sinkDest) Digest(context.Context, string, uint32) ([32]byte, int64, error) {
	return [32]byte{}, 0, nil
}
func (d *sinkDest) Expunge(context.Context, string, uint32, []uint32) error { return nil }
func (d *sinkDest) Close() error                                            { return nil }

// heapWatch samples the heap in use after a collection, every few
// thousand messages, and keeps the highest.
type heapWatch struct {
	mu    sync.Mutex
	done  int
	every int
	peak  uint64
}

func (h *heapWatch) sample() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapInuse)
}

func (h *heapWatch) AccountStarted(string, int, int64)           {}
func (h *heapWatch) AccountPaused(string, *pipeline.PausedError) {}
func (h *heapWatch) MessageDone(string, pipeline.Outcome, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done++
	if h.done%h.every == 0 {
		h.sample()
	}
}
func (h *heapWatch) AccountFinished(string, *pipeline.Stats) {}

// copyPeak copies n synthetic messages into a fresh ledger, twice (the
// second run finds nothing new), and returns the highest heap in use seen
// during each run.
func copyPeak(t *testing.T, n int) (first, rerun uint64) {
	t.Helper()
	ctx := context.Background()
	l, err := checkpoint.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{Endpoint: fmt.Sprint("synth ", n), KeyScheme: "pop3"})
	if err != nil {
		t.Fatal(err)
	}
	src, dst := &synthSource{n: n, bodyN: 200}, &sinkDest{}
	for run := range 2 {
		watch := &heapWatch{every: max(n/20, 200)}
		runner := &pipeline.Runner{Ledger: l, Progress: watch, Attempts: 1}
		// The second run's listing is sampled through the pages it reads
		// (it copies nothing, so MessageDone never comes).
		source := pipeline.Source(src)
		if run == 1 {
			source = &sampledSource{Source: src, watch: watch}
		}
		st, err := runner.RunAccount(ctx, pipeline.Job{
			Options:         pipeline.Options{Account: res.Account, Name: "synth", BatchMessages: 500, Linger: time.Millisecond},
			OpenSource:      func(context.Context) (pipeline.Source, error) { return source, nil },
			OpenDestination: func(context.Context) (pipeline.Destination, error) { return dst, nil },
		})
		if err != nil || st.Listed != n || run == 0 && st.Copied != n || run == 1 && st.AlreadyDone != n {
			t.Fatalf("run %d of %d messages: %v, listed %d, copied %d, already done %d", run+1, n, err, st.Listed, st.Copied, st.AlreadyDone)
		}
		watch.sample()
		if run == 0 {
			first = watch.peak
		} else {
			rerun = watch.peak
		}
	}
	return first, rerun
}

// sampledSource samples the heap every few pages of its listing.
type sampledSource struct {
	pipeline.Source
	watch *heapWatch
}

func (s *sampledSource) List(ctx context.Context, page func([]pipeline.SourceMessage) error) error {
	pages := 0
	return s.Source.List(ctx, func(msgs []pipeline.SourceMessage) error {
		if pages++; pages%10 == 0 {
			s.watch.sample()
		}
		return page(msgs)
	})
}

func TestHeapFlatInMailboxSize(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("copies 150,000 messages through a real ledger; the race detector's heap is not the program's")
	}
	const small, large = 3000, 150000
	sFirst, sRerun := copyPeak(t, small)
	lFirst, lRerun := copyPeak(t, large)
	// A slice of 150,000 SourceMessages is over 12 MB; 4 MB covers the
	// pages, batches, spools and the ledger's caches whatever the size.
	const allowance = 4 << 20
	t.Logf("heap in use, highest: %d messages %.1f MB (re-run %.1f MB); %d messages %.1f MB (re-run %.1f MB)",
		small, float64(sFirst)/1e6, float64(sRerun)/1e6, large, float64(lFirst)/1e6, float64(lRerun)/1e6)
	if lFirst > sFirst+allowance || lRerun > sRerun+allowance {
		t.Errorf("the heap grows with the mailbox: %d messages need %.1f MB (re-run %.1f MB), %d messages %.1f MB (%.1f MB)",
			large, float64(lFirst)/1e6, float64(lRerun)/1e6, small, float64(sFirst)/1e6, float64(sRerun)/1e6)
	}
}
