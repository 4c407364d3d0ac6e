package msgreport

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// entries are one of each kind: IMAP copied, POP3 skipped, POP3 without
// UIDL failed, pending, and a key of no known form.
func entries() []pipeline.Entry {
	return []pipeline.Entry{
		{Key: "Archive/2020\x001700000000\x0042", State: pipeline.StateDone, Size: 1234, DestMailbox: "Old/Archive/2020",
			DestUIDValidity: 99, DestUID: 7, Updated: t0.Add(time.Hour), DoneAt: t0},
		{Key: "uidl-1#sha256:abcd", State: pipeline.StateSkipped, Reason: "too big: 9 bytes, the limit is 5", Size: 9, Updated: t0},
		{Key: "sha256:ffee", State: pipeline.StateFailed, Reason: `NO [SERVERBUG] "quoted", with comma`, Size: 5, Updated: t0},
		{Key: "uidl-2", State: pipeline.StatePending, DestMailbox: "INBOX", Size: 3, Updated: t0},
	}
}

// TestRowOfMirrorStates: messages deleted at the source, their copies
// removed, being removed or moved by a mirror pass.
func TestRowOfMirrorStates(t *testing.T) {
	gone := t0.Add(-time.Hour)
	for _, tc := range []struct {
		state pipeline.State
		want  State
		when  time.Time
	}{
		{pipeline.StateGone, DeletedAtSource, gone},
		{pipeline.StateRemoved, RemovedFromDestination, gone},
		{pipeline.StateRemoving, BeingRemoved, t0},
		{pipeline.StateMoving, BeingMoved, t0},
	} {
		r := RowOf("alice", pipeline.Entry{Key: "INBOX\x001\x005", State: tc.state, DestMailbox: "INBOX", DestUID: 9, Updated: t0, GoneAt: gone})
		if r.State != tc.want || !r.When.Equal(tc.when) {
			t.Errorf("%v: state %q at %v, want %q at %v", tc.state, r.State, r.When, tc.want, tc.when)
		}
	}
}

func fakeScan(byKey map[string][]pipeline.Entry) ScanFunc {
	return func(ctx context.Context, key string, fn func(pipeline.Entry) error) error {
		for _, e := range byKey[key] {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestWriteCSV(t *testing.T) {
	var buf bytes.Buffer
	accounts := []Account{{"alice", "key-a"}, {"bob", "key-b"}}
	n, err := Write(context.Background(), &buf, CSV, accounts, fakeScan(map[string][]pipeline.Entry{
		"key-a": entries(), "key-b": entries()[:1]}))
	if err != nil || n != 5 {
		t.Fatalf("Write = %d, %v; want 5 rows", n, err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v", err)
	}
	want := [][]string{
		Header,
		{"alice", "Archive/2020", "1700000000", "42", "Old/Archive/2020", "99", "7", "1234", "copied", "", "2026-03-04T05:06:07Z"},
		{"alice", "", "", "uidl-1", "", "", "", "9", "skipped", "too big: 9 bytes, the limit is 5", "2026-03-04T05:06:07Z"},
		{"alice", "", "", "sha256:ffee", "", "", "", "5", "failed", `NO [SERVERBUG] "quoted", with comma`, "2026-03-04T05:06:07Z"},
		{"alice", "", "", "uidl-2", "INBOX", "", "", "3", "pending", "", "2026-03-04T05:06:07Z"},
		{"bob", "Archive/2020", "1700000000", "42", "Old/Archive/2020", "99", "7", "1234", "copied", "", "2026-03-04T05:06:07Z"},
	}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Errorf("CSV rows:\n got %q\nwant %q", recs, want)
	}
}

func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name     string
		accounts []Account
		want     int
	}{
		{"rows", []Account{{"alice", "key-a"}}, 4},
		{"no rows", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := Write(context.Background(), &buf, JSON, tt.accounts, fakeScan(map[string][]pipeline.Entry{"key-a": entries()})); err != nil {
				t.Fatal(err)
			}
			var rows []Row
			if err := json.Unmarshal(buf.Bytes(), &rows); err != nil {
				t.Fatalf("the JSON does not parse: %v\n%s", err, buf.String())
			}
			if len(rows) != tt.want || rows == nil {
				t.Fatalf("%d rows, want %d (an empty array, not null)", len(rows), tt.want)
			}
			if tt.want == 0 {
				return
			}
			if got := strings.Count(buf.String(), "\n"); got != tt.want+2 {
				t.Errorf("%d lines, want one per row and the brackets:\n%s", got, buf.String())
			}
			first := rows[0]
			if first.Account != "alice" || first.SourceFolder != "Archive/2020" || first.SourceID != "42" ||
				first.DestUID != 7 || first.State != Copied || !first.When.Equal(t0) {
				t.Errorf("first row = %+v", first)
			}
			var raw []map[string]any
			json.Unmarshal(buf.Bytes(), &raw)
			for _, k := range []string{"account", "source_folder", "source_id", "dest_folder", "size", "state", "when"} {
				if _, ok := raw[0][k]; !ok {
					t.Errorf("JSON row lacks %q: %v", k, raw[0])
				}
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for in, ok := range map[string]bool{"csv": true, "json": true, "xml": false, "": false, "CSV": false} {
		if _, err := ParseFormat(in); (err == nil) != ok {
			t.Errorf("ParseFormat(%q) = %v, want ok %v", in, err, ok)
		}
	}
}

func TestWriteStopsOnScanError(t *testing.T) {
	boom := errors.New("disk gone")
	_, err := Write(context.Background(), &bytes.Buffer{}, CSV, []Account{{"alice", "a"}},
		func(context.Context, string, func(pipeline.Entry) error) error { return boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "alice") {
		t.Errorf("Write = %v, want the scan's error naming the account", err)
	}
}

// heapWriter counts what it is given and samples the live heap every
// sampleEvery bytes.
type heapWriter struct {
	n, next, peak uint64
}

const sampleEvery = 4 << 20

func (w *heapWriter) Write(p []byte) (int, error) {
	w.n += uint64(len(p))
	if w.n >= w.next {
		w.next = w.n + sampleEvery
		w.peak = max(w.peak, liveHeap())
	}
	return len(p), nil
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestWriteStreams200k reports a real ledger of 200,000 messages in both
// formats and checks that the live heap while writing stays within a few
// MB of where it started: rows are never gathered. (Reading the same
// account with Entries holds about 90 MB.) A heap check, not a timing.
func TestWriteStreams200k(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fills a ledger of 200,000 entries (skipped with -short and -race)")
	}
	const n = 200_000
	ctx := context.Background()
	l, err := checkpoint.Open(ctx, filepath.Join(t.TempDir(), "big.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.ResolveAccount(ctx, checkpoint.AccountSpec{Endpoint: "big"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Hold(ctx, res.Account)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	batch := make([]pipeline.Entry, 0, 10_000)
	for i := range n {
		batch = append(batch, pipeline.Entry{Key: fmt.Sprintf("INBOX\x001\x00%d", i+1), State: pipeline.StateDone,
			Size: int64(1000 + i%5000), Digest: strings.Repeat("ab", 32), DestMailbox: "INBOX", DestUIDValidity: 5,
			DestUID: uint32(i + 1), Updated: t0, DoneAt: t0})
		if len(batch) == cap(batch) {
			if err := l.Commit(ctx, res.Account, pipeline.Changes{Put: batch}); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	scan := func(ctx context.Context, key string, fn func(pipeline.Entry) error) error {
		return l.Each(ctx, key, checkpoint.ScanOptions{}, fn)
	}
	for _, f := range []Format{CSV, JSON} {
		base := liveHeap()
		w := &heapWriter{next: sampleEvery}
		rows, err := Write(ctx, w, f, []Account{{"big", "big"}}, scan)
		if err != nil || rows != n {
			t.Fatalf("%s: Write = %d rows, %v; want %d", f, rows, err, n)
		}
		grew := int64(w.peak) - int64(base)
		t.Logf("%s: %d rows, %.1f MB written, live heap at most %+.2f MB from the start", f, rows, float64(w.n)/1e6, float64(grew)/1e6)
		if w.n < n*50 {
			t.Errorf("%s: only %d bytes written for %d rows", f, w.n, n)
		}
		if grew > 8<<20 {
			t.Errorf("%s: the live heap grew by %.1f MB while writing %d rows; want it flat (< 8 MB)", f, float64(grew)/1e6, n)
		}
	}
}
