package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/postgres"
	"github.com/mailferry/mailferry/pipeline"
)

// TestPreparedUpserts: the upsert statements a ledger keeps prepared
// across Commits (upserts) write what the statement prepared per Commit
// did, on both engines: after a Commit that failed in its transaction,
// for every shape of batch, with Commits of several accounts at once, and
// they are closed by Close.
func TestPreparedUpserts(t *testing.T) {
	var srv *postgres.Server
	engines := []struct {
		name string
		// state returns a new ledger's state and options, and a statement
		// creating a trigger that fails the insert of the key "boom".
		state func(t *testing.T) (string, *Options, []string)
	}{
		{"sqlite", func(t *testing.T) (string, *Options, []string) {
			return filepath.Join(t.TempDir(), "ledger.db"), &Options{}, []string{`CREATE TRIGGER fail_boom BEFORE INSERT ON messages
				WHEN NEW.source_key = 'boom' BEGIN SELECT RAISE(ABORT, 'boom refused'); END`}
		}},
		{"postgres", func(t *testing.T) (string, *Options, []string) {
			return postgres.Database(t, srv), &Options{Password: srv.Password()}, []string{
				`CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF NEW.source_key = convert_to('boom', 'UTF8') THEN RAISE EXCEPTION 'boom refused'; END IF;
					RETURN NEW;
				END $$`,
				`CREATE TRIGGER fail_boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION fail_boom()`}
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			if e.name == "postgres" {
				srv = postgres.Start(t, postgres.Options{}) // one server for the cases
			}
			for _, c := range []struct {
				name string
				run  func(t *testing.T, state string, opts *Options, trigger []string)
			}{
				{"AfterFailedCommit", testUpsertsAfterFailedCommit},
				{"Shapes", testUpsertsShapes},
				{"Concurrent", testUpsertsConcurrent},
				{"ClosedOnClose", testUpsertsClosedOnClose},
			} {
				t.Run(c.name, func(t *testing.T) {
					state, opts, trigger := e.state(t)
					c.run(t, state, opts, trigger)
				})
			}
		})
	}
}

func openAt(t *testing.T, state string, opts *Options) *Ledger {
	t.Helper()
	o := *opts
	l, err := Open(context.Background(), state, &o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// batchOf returns n entries keyed prefix-0 to prefix-(n-1) in state s.
func batchOf(prefix string, n int, s pipeline.State) []pipeline.Entry {
	put := make([]pipeline.Entry, n)
	for i := range put {
		put[i] = pipeline.Entry{Key: fmt.Sprintf("%s-%03d", prefix, i), State: s, Size: int64(1000 + i), DestMailbox: "INBOX"}
		if s == pipeline.StateDone {
			put[i].DestUIDValidity, put[i].DestUID = 7, uint32(i+1)
		}
	}
	return put
}

// wantEntries checks that the ledger holds exactly want of the keys of
// want and absent (states and sizes).
func wantEntries(t *testing.T, l *Ledger, id pipeline.AccountID, want []pipeline.Entry, absent []string) {
	t.Helper()
	keys := append([]string{}, absent...)
	byKey := map[string]pipeline.Entry{}
	for _, e := range want {
		keys = append(keys, e.Key)
		byKey[e.Key] = e
	}
	got := map[string]pipeline.Entry{}
	for start := 0; start < len(keys); start += pipeline.MaxLookup {
		if err := l.Lookup(context.Background(), id, keys[start:min(start+pipeline.MaxLookup, len(keys))], func(e pipeline.Entry) error {
			got[e.Key] = e
			return nil
		}); err != nil {
			t.Fatalf("Lookup: %v", err)
		}
	}
	for k, w := range byKey {
		g, ok := got[k]
		if !ok {
			t.Errorf("entry %q missing", k)
			continue
		}
		if g.State != w.State || g.Size != w.Size || g.DestUID != w.DestUID {
			t.Errorf("entry %q: state %v size %d uid %d, want %v %d %d", k, g.State, g.Size, g.DestUID, w.State, w.Size, w.DestUID)
		}
	}
	for _, k := range absent {
		if _, ok := got[k]; ok {
			t.Errorf("entry %q written, want none", k)
		}
	}
}

// testUpsertsAfterFailedCommit: a Commit whose upsert fails within its
// transaction (a trigger refusing one key) writes nothing; the ledger's
// kept statement then serves the next Commits, also after the ledger is
// closed and opened again.
func testUpsertsAfterFailedCommit(t *testing.T, state string, opts *Options, trigger []string) {
	ctx := context.Background()
	l := openAt(t, state, opts)
	for _, q := range trigger {
		if _, err := l.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("creating the trigger: %v", err)
		}
	}
	id, _ := held(t, l, "alice")
	first := batchOf("a", 50, pipeline.StatePending)
	if err := l.Commit(ctx, id, pipeline.Changes{Put: first}); err != nil {
		t.Fatal(err)
	}
	failed := batchOf("b", 50, pipeline.StatePending)
	failed[49].Key = "boom"
	err := l.Commit(ctx, id, pipeline.Changes{Put: failed, Gone: []string{first[0].Key}})
	if err == nil || !strings.Contains(err.Error(), "boom refused") {
		t.Fatalf("Commit with the refused key = %v, want the trigger's error", err)
	}
	if got := shapes(l); len(got) != 3 {
		t.Fatalf("kept shapes %v, want 3 (50 entries as 32, 16 and 2)", got)
	}
	done := batchOf("a", 50, pipeline.StateDone)
	third := batchOf("c", 50, pipeline.StatePending)
	if err := l.Commit(ctx, id, pipeline.Changes{Put: done}); err != nil {
		t.Fatalf("Commit after the failed one: %v", err)
	}
	if err := l.Commit(ctx, id, pipeline.Changes{Put: third}); err != nil {
		t.Fatalf("Commit after the failed one: %v", err)
	}
	var failedKeys []string
	for _, e := range failed {
		failedKeys = append(failedKeys, e.Key)
	}
	wantEntries(t, l, id, append(append([]pipeline.Entry{}, done...), third...), failedKeys)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openAt(t, state, opts)
	id, _ = held(t, l, "alice")
	fourth := batchOf("d", 50, pipeline.StatePending)
	if err := l.Commit(ctx, id, pipeline.Changes{Put: fourth}); err != nil {
		t.Fatalf("Commit after reopening: %v", err)
	}
	if err := l.Commit(ctx, id, pipeline.Changes{Put: failed}); err == nil {
		t.Fatal("Commit with the refused key after reopening succeeded")
	}
	failed[49].Key = "b-049"
	if err := l.Commit(ctx, id, pipeline.Changes{Put: failed}); err != nil {
		t.Fatalf("Commit without the refused key: %v", err)
	}
	wantEntries(t, l, id, append(append(append(append([]pipeline.Entry{}, done...), third...), fourth...), failed...), []string{"boom"})
}

// testUpsertsShapes: batches of every size up to two chunks and a change
// set with a key repeated are written; the ledger keeps only the shapes
// of upsertShape, the powers of two, at most upsertsKept of them, and
// every shape of the last Commit.
func testUpsertsShapes(t *testing.T, state string, opts *Options, _ []string) {
	ctx := context.Background()
	l := openAt(t, state, opts)
	id, _ := held(t, l, "alice")
	var all []pipeline.Entry
	for n := 1; n <= 2*upsertRows+3; n += 7 {
		put := batchOf(fmt.Sprintf("n%03d", n), n, pipeline.StateDone)
		if err := l.Commit(ctx, id, pipeline.Changes{Put: put}); err != nil {
			t.Fatalf("Commit of %d entries: %v", n, err)
		}
		all = append(all, put...)
		if got := len(l.ups.kept); got > upsertsKept {
			t.Fatalf("%d statements kept, want at most %d", got, upsertsKept)
		}
		kept := shapes(l)
		for _, k := range kept {
			if k&(k-1) != 0 || k > upsertRows {
				t.Fatalf("after a Commit of %d entries the kept shapes are %v, want powers of two up to %d", n, kept, upsertRows)
			}
		}
		for rest := n % upsertRows; rest > 0; rest -= upsertShape(rest) {
			if !slices.Contains(kept, upsertShape(rest)) {
				t.Fatalf("after a Commit of %d entries the kept shapes are %v, want %d among them", n, kept, upsertShape(rest))
			}
		}
	}
	// Keys repeated: chunks of 3, 2, 1 and 4 entries, the last of each
	// key winning.
	rep := batchOf("r", 4, pipeline.StatePending)
	dup := []pipeline.Entry{rep[0], rep[1], rep[2], rep[0], rep[1], rep[1], rep[0], rep[1], rep[2], rep[3]}
	dup[len(dup)-1].Size = 5
	rep[3].Size = 5
	if err := l.Commit(ctx, id, pipeline.Changes{Put: dup}); err != nil {
		t.Fatalf("Commit with repeated keys: %v", err)
	}
	wantEntries(t, l, id, append(all, rep...), nil)
}

func shapes(l *Ledger) []int {
	var s []int
	for _, k := range l.ups.kept {
		s = append(s, k.rows)
	}
	return s
}

// testUpsertsConcurrent: accounts committing batches of many sizes at
// once, so that kept statements are evicted while other Commits use
// them (run it with -race).
func testUpsertsConcurrent(t *testing.T, state string, opts *Options, _ []string) {
	ctx := context.Background()
	l := openAt(t, state, opts)
	const accounts, rounds = 4, 12
	ids := make([]pipeline.AccountID, accounts)
	for i := range ids {
		ids[i], _ = held(t, l, fmt.Sprintf("user%d", i))
	}
	var wg sync.WaitGroup
	written := make([][]pipeline.Entry, accounts)
	errs := make([]error, accounts)
	for a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				put := batchOf(fmt.Sprintf("r%02d", r), 1+(r*5+a*3)%upsertRows, pipeline.StatePending)
				if err := l.Commit(ctx, ids[a], pipeline.Changes{Put: put}); err != nil {
					errs[a] = err
					return
				}
				written[a] = append(written[a], put...)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for a := range accounts {
		wantEntries(t, l, ids[a], written[a], nil)
	}
}

// testUpsertsClosedOnClose: Close closes every kept statement (using one
// then fails as a closed statement, not only as a closed database), and
// a Commit after it keeps none.
func testUpsertsClosedOnClose(t *testing.T, state string, opts *Options, _ []string) {
	ctx := context.Background()
	l := openAt(t, state, opts)
	id, _ := held(t, l, "alice")
	for _, n := range []int{50, upsertRows + 10, 1} {
		if err := l.Commit(ctx, id, pipeline.Changes{Put: batchOf(fmt.Sprint(n), n, pipeline.StatePending)}); err != nil {
			t.Fatal(err)
		}
	}
	kept := append([]rowsStmt{}, l.ups.kept...)
	if len(kept) != 6 {
		t.Fatalf("kept shapes %v, want 6 (50 as 32, 16 and 2; 74 as 64, 8 and 2; 1)", shapes(l))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, k := range kept {
		_, err := k.stmt.ExecContext(ctx)
		if err == nil || !strings.Contains(err.Error(), "statement is closed") {
			t.Errorf("the upsert of %d rows after Close: %v, want it closed", k.rows, err)
		}
	}
	if len(l.ups.kept) != 0 {
		t.Errorf("kept shapes after Close: %v", shapes(l))
	}
	if err := l.Commit(ctx, id, pipeline.Changes{Put: batchOf("late", 50, pipeline.StatePending)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	if st, err := l.ups.stmt(ctx, l.w, l.d, 50); err == nil || st != nil {
		t.Errorf("preparing after Close = %v, %v, want an error", st, err)
	}
}

// TestChunkEnds: a change set's entries are upserted in statements of
// the shapes upsertShape gives (powers of two, at most upsertRows), in
// order, a key repeated starting a new statement.
func TestChunkEnds(t *testing.T) {
	keys := func(ks ...string) []pipeline.Entry {
		var es []pipeline.Entry
		for _, k := range ks {
			es = append(es, pipeline.Entry{Key: k})
		}
		return es
	}
	n := func(count int) []pipeline.Entry { return batchOf("k", count, pipeline.StatePending) }
	for _, c := range []struct {
		name    string
		entries []pipeline.Entry
		want    []int
	}{
		{"none", nil, nil},
		{"one", n(1), []int{1}},
		{"power of two", n(32), []int{32}},
		{"50: 32, 16, 2", n(50), []int{32, 48, 50}},
		{"full chunk", n(upsertRows), []int{64}},
		{"two chunks and 7: 64, 64, 4, 2, 1", n(2*upsertRows + 7), []int{64, 128, 132, 134, 135}},
		{"a key twice: 3 (2, 1), then 2", keys("a", "b", "c", "a", "b"), []int{2, 3, 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := chunkEnds(c.entries); !slices.Equal(got, c.want) {
				t.Errorf("chunkEnds = %v, want %v", got, c.want)
			}
		})
	}
}
