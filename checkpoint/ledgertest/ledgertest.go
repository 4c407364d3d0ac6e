// Package ledgertest is the conformance suite of the ledger's engines
// (docs/ledger.md "The conformance suite"): Run holds an engine to every
// rule the pipeline relies on, through checkpoint.Ledger's public methods
// only, so that the same cases run on SQLite now and on PostgreSQL
// unchanged. Engine-specific checks (file modes, locks across processes,
// the schema-4 upgrade) live with the engine.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/checkpoint"
	"github.com/mailferry/mailferry/pipeline"
)

// Engine makes empty ledgers of one engine.
type Engine struct {
	Name string
	// New makes an empty ledger store for one test and returns how to open
	// it; the suite may open it again (reopen, a second process's view).
	// The opener's ledgers are closed by the suite.
	New func(t *testing.T) func(opts *checkpoint.Options) (*checkpoint.Ledger, error)
}

// Run runs every case on e.
func Run(t *testing.T, e Engine) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"RoundTrip", testRoundTrip},
		{"UpsertOrder", testUpsertOrder},
		{"DoneAtAndGoneAt", testDoneAtAndGoneAt},
		{"Lookup", testLookup},
		{"ScanPaging", testScanPaging},
		{"ScanFilters", testScanFilters},
		{"KeysOnly", testKeysOnly},
		{"Copies", testCopies},
		{"CommitAtomic", testCommitAtomic},
		{"Contest", testContest},
		{"LateCopyIntent", testLateCopyIntent},
		{"CommitInvalid", testCommitInvalid},
		{"GoneAndDeleting", testGoneAndDeleting},
		{"Rekey", testRekey},
		{"CountsModel", testCountsModel},
		{"Holds", testHolds},
		{"PauseRetry", testPauseRetry},
		{"Aliases", testAliases},
		{"ResolveRecords", testResolveRecords},
		{"Names", testNames},
		{"BindAlias", testBindAlias},
		{"Runs", testRuns},
		{"Pruning", testPruning},
		{"Folders", testFolders},
		{"DropFolders", testDropFolders},
		{"Resent", testResent},
		{"Usage", testUsage},
		{"Status", testStatus},
		{"Reopen", testReopen},
		{"ConcurrentCommits", testConcurrentCommits},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSuite(t, e)
			c.fn(t, s)
			s.recount()
		})
	}
}

// suite is one case's ledger, with a clock the case controls.
type suite struct {
	t    *testing.T
	ctx  context.Context
	open func(opts *checkpoint.Options) (*checkpoint.Ledger, error)
	mu   sync.Mutex
	now  time.Time
	l    *checkpoint.Ledger
}

func newSuite(t *testing.T, e Engine) *suite {
	s := &suite{t: t, ctx: context.Background(), open: e.New(t), now: time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)}
	s.l = s.reopen(nil)
	return s
}

// clock is the ledger's injected clock.
func (s *suite) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *suite) advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

// reopen opens the store (again), with the suite's clock.
func (s *suite) reopen(opts *checkpoint.Options) *checkpoint.Ledger {
	s.t.Helper()
	if opts == nil {
		opts = &checkpoint.Options{}
	}
	opts.Now = s.clock
	l, err := s.open(opts)
	if err != nil {
		s.t.Fatalf("opening the ledger: %v", err)
	}
	s.t.Cleanup(func() { l.Close() })
	return l
}

// account resolves (creating) an account named name and holds it.
func (s *suite) account(name string) (pipeline.AccountID, pipeline.Hold) {
	s.t.Helper()
	id := s.resolve(name)
	h, err := s.l.Hold(s.ctx, id)
	if err != nil {
		s.t.Fatalf("Hold(%s): %v", name, err)
	}
	s.t.Cleanup(func() { h.Release(context.Background()) })
	return id, h
}

// carol resolves (creating) carol's IMAP account, which writes into
// alice's destination mailbox as destination user destUser (any case:
// accounts keep it lower-case), and holds it: her entries and alice's are
// each other's "others" (a copy both may name), bob's are not (another
// destination user).
func (s *suite) carol(destUser string) pipeline.AccountID {
	s.t.Helper()
	res, err := s.l.ResolveAccount(s.ctx, checkpoint.AccountSpec{
		Endpoint:    "imap://carol@imap.example.org:993 -> imap://alice@imap.example.org:993",
		SourceProto: "imap", SourceUser: "carol", DestUser: destUser,
		Source: "imap://carol@imap.example.org:993", Destination: "imap://alice@imap.example.org:993",
	})
	if err != nil {
		s.t.Fatalf("ResolveAccount(carol): %v", err)
	}
	h, err := s.l.Hold(s.ctx, res.Account)
	if err != nil {
		s.t.Fatalf("Hold(carol): %v", err)
	}
	s.t.Cleanup(func() { h.Release(context.Background()) })
	return res.Account
}

func (s *suite) resolve(name string) pipeline.AccountID {
	s.t.Helper()
	res, err := s.l.ResolveAccount(s.ctx, spec(name))
	if err != nil {
		s.t.Fatalf("ResolveAccount(%s): %v", name, err)
	}
	return res.Account
}

// spec is the account spec of user name on fixed servers.
func spec(name string) checkpoint.AccountSpec {
	return checkpoint.AccountSpec{
		Endpoint:    "pop3://" + name + "@pop.example.org:995 -> imap://" + name + "@imap.example.org:993/INBOX",
		SourceProto: "pop3", SourceUser: name, DestUser: name, DestFolder: "INBOX",
		Source: "pop3://" + name + "@pop.example.org:995", Destination: "imap://" + name + "@imap.example.org:993",
		KeyScheme: "pop3",
	}
}

func (s *suite) commit(account pipeline.AccountID, c pipeline.Changes) {
	s.t.Helper()
	if err := s.l.Commit(s.ctx, account, c); err != nil {
		s.t.Fatalf("Commit: %v", err)
	}
}

// all returns every entry of account, by key, through Scan.
func (s *suite) all(account pipeline.AccountID) map[string]pipeline.Entry {
	s.t.Helper()
	out := map[string]pipeline.Entry{}
	q := pipeline.Query{}
	for {
		page, next, err := s.l.Scan(s.ctx, account, q)
		if err != nil {
			s.t.Fatalf("Scan: %v", err)
		}
		for _, e := range page {
			out[e.Key] = e
		}
		if next == "" {
			return out
		}
		q.After = next
	}
}

func (s *suite) lookup(account pipeline.AccountID, keys ...string) map[string]pipeline.Entry {
	s.t.Helper()
	out := map[string]pipeline.Entry{}
	if err := s.l.Lookup(s.ctx, account, keys, func(e pipeline.Entry) error {
		out[e.Key] = e
		return nil
	}); err != nil {
		s.t.Fatalf("Lookup: %v", err)
	}
	return out
}

func (s *suite) counts(account pipeline.AccountID) pipeline.Counts {
	s.t.Helper()
	c, err := s.l.Counts(s.ctx, account)
	if err != nil {
		s.t.Fatalf("Counts: %v", err)
	}
	return c
}

func (s *suite) check() {
	s.t.Helper()
	if err := s.l.Check(s.ctx); err != nil {
		s.t.Fatalf("Check: %v", err)
	}
}

// recount checks, after a case, that account_counts equals a count of
// the entries (Ledger.Check: per account and state, the entries and
// their bytes; a row of zeros equals no row), through a ledger opened
// anew, so that it runs after the cases that close theirs too. The
// schema's triggers keep the counts for every writer of the entries; a
// writer that bypasses them (a dropped trigger, a bulk copy) fails here.
func (s *suite) recount() {
	s.t.Helper()
	if s.t.Failed() {
		return
	}
	l := s.reopen(nil)
	if err := l.Check(s.ctx); err != nil {
		s.t.Errorf("after the case, the counts differ from a recount of the entries: %v", err)
	}
}

// digest is a valid digest for n.
func digest(n int) string { return fmt.Sprintf("%064x", uint64(n)*2654435761+1) }

// Keys that break careless engines: NUL (IMAP keys, PostgreSQL TEXT),
// invalid UTF-8 (JSON), 0xff (prefix ranges), multi-byte UTF-8 (substr).
var awkwardKeys = []string{
	"INBOX\x001234567890\x0017",
	"uidl-\xff\xfe",
	"\xff\xff",
	"Entwürfe\x007\x001",
	"sha256:" + digest(3) + "#2",
	"plain",
}

// fullEntry sets every field of an entry.
func fullEntry(key string, n int) pipeline.Entry {
	at := time.Date(2025, 12, 24, 18, 30, 1, 987654321+n, time.UTC)
	return pipeline.Entry{
		Key: key, State: pipeline.StateDone, ReasonClass: pipeline.ReasonMatched, Reason: "found by content",
		Digest: digest(n), Size: int64(1000 + n), MessageID: "<m\xe9" + fmt.Sprint(n) + "@example.org>",
		DestMailbox: "Gesendete Objekte/\xc3\xa4", DestUIDValidity: 4294967295, DestUID: uint32(4294967290 + n%5),
		DestUIDNext: 4294967000, Flags: []string{`\Seen`, "$Label1"}, Updated: at, DoneAt: at.Add(-time.Hour),
		EmailID: fmt.Sprintf("M%024x_-Z", n),
	}
}

func sameEntry(t *testing.T, got, want pipeline.Entry) {
	t.Helper()
	if len(got.Flags) == 0 {
		got.Flags = nil
	}
	if len(want.Flags) == 0 {
		want.Flags = nil
	}
	g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want)
	if g != w || !got.Updated.Equal(want.Updated) || !got.DoneAt.Equal(want.DoneAt) || !got.GoneAt.Equal(want.GoneAt) {
		t.Errorf("entry %q:\n got  %s\n want %s", want.Key, g, w)
	}
}

func testRoundTrip(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	var put []pipeline.Entry
	for i, k := range awkwardKeys {
		put = append(put, fullEntry(k, i))
	}
	moving := fullEntry("moving-key", 9)
	moving.State, moving.MoveTo, moving.ReasonClass = pipeline.StateMoving, "Archive/2025", ""
	gone := fullEntry("gone-key", 10)
	gone.State, gone.ReasonClass, gone.GoneAt = pipeline.StateGone, pipeline.ReasonDeleted, gone.Updated.Add(time.Minute)
	skipped := pipeline.Entry{Key: "skipped-key", State: pipeline.StateSkipped, ReasonClass: pipeline.ReasonTooBig,
		Reason: "too big: 9 bytes", Size: 9, Updated: gone.Updated}
	longID := fullEntry("long-emailid", 11)
	longID.EmailID = strings.Repeat("x", 255) // RFC 8474's longest objectid
	put = append(put, moving, gone, skipped, longID)
	s.commit(a, pipeline.Changes{Put: put})
	got := s.all(a)
	if len(got) != len(put) {
		t.Fatalf("Scan returned %d entries, want %d", len(got), len(put))
	}
	for _, want := range put {
		sameEntry(t, got[want.Key], want)
	}
	keys := make([]string, len(put))
	for i, e := range put {
		keys[i] = e.Key
	}
	looked := s.lookup(a, keys...)
	for _, want := range put {
		sameEntry(t, looked[want.Key], want)
	}
	// The entries are the account's own: another account sees none.
	b, _ := s.account("bob")
	if n := len(s.lookup(b, keys...)); n != 0 {
		t.Errorf("another account looks up %d of alice's entries", n)
	}
	// A Put without an EMAILID (a flag sync that built its entry without
	// one) keeps the one stored: a key is one message, whose EMAILID
	// never changes.
	again := put[0]
	again.EmailID, again.Flags = "", []string{`\Flagged`}
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{again}})
	again.EmailID = put[0].EmailID
	sameEntry(t, s.lookup(a, again.Key)[again.Key], again)
	s.check()
}

func testUpsertOrder(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	first := pipeline.Entry{Key: "k", State: pipeline.StatePending, Digest: digest(1), Size: 10, DestMailbox: "INBOX", Updated: s.clock()}
	second := first
	second.State, second.DestUID, second.Size = pipeline.StateDone, 7, 11
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{first, second}})
	if e := s.lookup(a, "k")["k"]; e.State != pipeline.StateDone || e.DestUID != 7 || e.Size != 11 {
		t.Errorf("a key twice in one Commit: got %v UID %d size %d, want the last one", e.State, e.DestUID, e.Size)
	}
	// Deletions go first: a key deleted and put in one change set stays.
	s.commit(a, pipeline.Changes{Delete: []string{"k"}, Put: []pipeline.Entry{first}})
	if e, ok := s.lookup(a, "k")["k"]; !ok || e.State != pipeline.StatePending {
		t.Errorf("deleted and put in one Commit: %v, %v; want the put entry", ok, e.State)
	}
	// An entry without Updated takes the ledger's now.
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{{Key: "no-time", State: pipeline.StateFailed}}})
	if e := s.lookup(a, "no-time")["no-time"]; !e.Updated.Equal(s.clock()) {
		t.Errorf("Updated = %v, want the ledger's clock %v", e.Updated, s.clock())
	}
	if c := s.counts(a); c[pipeline.StatePending].Messages != 1 || c[pipeline.StateFailed].Messages != 1 || c[pipeline.StateDone].Messages != 0 {
		t.Errorf("counts %v, want 1 pending and 1 failed", c)
	}
	s.check()
}

func testDoneAtAndGoneAt(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	t0 := s.clock()
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	e := pipeline.Entry{Key: "k", State: pipeline.StatePending, Digest: digest(1), Updated: at(0)}
	steps := []struct {
		name      string
		state     pipeline.State
		doneAt    time.Time
		goneAt    time.Time
		wantDone  time.Time
		wantGone  time.Time
		updatedAt int
	}{
		{"pending has no done time", pipeline.StatePending, at(1), time.Time{}, time.Time{}, time.Time{}, 1},
		{"done without DoneAt takes Updated", pipeline.StateDone, time.Time{}, time.Time{}, at(2), time.Time{}, 2},
		{"a flag sync keeps the first done time", pipeline.StateDone, at(3), time.Time{}, at(2), time.Time{}, 3},
		{"gone keeps it, takes its gone time", pipeline.StateGone, at(4), at(4), at(2), at(4), 4},
		{"still gone keeps the first gone time", pipeline.StateGone, at(2), at(5), at(2), at(4), 5},
		{"listed again: done, no gone time", pipeline.StateDone, at(6), time.Time{}, at(2), time.Time{}, 6},
		{"failed drops it", pipeline.StateFailed, at(7), time.Time{}, time.Time{}, time.Time{}, 7},
		{"done again starts afresh", pipeline.StateDone, at(8), time.Time{}, at(8), time.Time{}, 8},
	}
	for _, st := range steps {
		e.State, e.DoneAt, e.GoneAt, e.Updated = st.state, st.doneAt, st.goneAt, at(st.updatedAt)
		s.commit(a, pipeline.Changes{Put: []pipeline.Entry{e}})
		got := s.lookup(a, "k")["k"]
		if !got.DoneAt.Equal(st.wantDone) || !got.GoneAt.Equal(st.wantGone) {
			t.Errorf("%s: DoneAt %v, GoneAt %v; want %v, %v", st.name, got.DoneAt, got.GoneAt, st.wantDone, st.wantGone)
		}
	}
}

func testLookup(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	var put []pipeline.Entry
	var keys []string
	for i := range pipeline.MaxLookup {
		k := fmt.Sprintf("key-%04d", i)
		keys = append(keys, k)
		if i%3 != 0 {
			put = append(put, pipeline.Entry{Key: k, State: pipeline.StateDone, Size: int64(i)})
		}
	}
	s.commit(a, pipeline.Changes{Put: put})
	for _, n := range []int{1, 7, 8, 9, 63, 64, 65, pipeline.MaxLookup} {
		got := s.lookup(a, keys[:n]...)
		want := 0
		for i := range n {
			if i%3 != 0 {
				want++
				if e, ok := got[keys[i]]; !ok || e.Size != int64(i) {
					t.Errorf("Lookup of %d keys: %q = %+v, %v", n, keys[i], e, ok)
				}
			}
		}
		if len(got) != want {
			t.Errorf("Lookup of %d keys found %d, want %d", n, len(got), want)
		}
	}
	if err := s.l.Lookup(s.ctx, a, append(keys, "one-too-many"), func(pipeline.Entry) error { return nil }); err == nil {
		t.Error("Lookup of more than MaxLookup keys succeeded")
	}
	stop := errors.New("stop")
	if err := s.l.Lookup(s.ctx, a, keys[1:3], func(pipeline.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Lookup returned %v, want fn's error", err)
	}
	// fn may write: the read is over when it is called.
	err := s.l.Lookup(s.ctx, a, keys[1:3], func(e pipeline.Entry) error {
		e.Size = 99
		return s.l.Commit(s.ctx, a, pipeline.Changes{Put: []pipeline.Entry{e}})
	})
	if err != nil {
		t.Errorf("writing from Lookup's fn: %v", err)
	}
	if n := len(s.lookup(a)); n != 0 {
		t.Errorf("Lookup of no keys found %d", n)
	}
	testLookupRanges(t, s)
	testLookupAdversarialKeys(t, s)
}

// testLookupRanges: keys asked for in ascending order are read as one
// range of the primary key (a POP3 re-run of a large mailbox); entries in
// the range that were not asked for stay out, and a sparse range, or keys
// out of order, give the same answer.
func testLookupRanges(t *testing.T, s *suite) {
	b, _ := s.account("bob")
	var put []pipeline.Entry
	var all []string
	for i := range 300 {
		k := fmt.Sprintf("r%04d", i)
		if i >= 280 {
			k = "r\xc3\xa9" + strings.Repeat("\xff", i-279) // above 0x7f: bytes order, not runes
		}
		all = append(all, k)
		if i%5 != 4 {
			put = append(put, pipeline.Entry{Key: k, State: pipeline.StateDone, Size: int64(i)})
		}
	}
	s.commit(b, pipeline.Changes{Put: put})
	pick := func(keep func(i int) bool) []string {
		var out []string
		for i, k := range all {
			if keep(i) {
				out = append(out, k)
			}
		}
		return out
	}
	reversed := pick(func(i int) bool { return i < 100 })
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name string
		keys []string
	}{
		{"dense, every entry of the range", pick(func(i int) bool { return i < 100 })},
		{"every second, half the range", pick(func(i int) bool { return i%2 == 0 && i < 200 })},
		{"every seventh: sparse, seeks instead", pick(func(i int) bool { return i%7 == 0 })},
		{"bytes above 0x7f", pick(func(i int) bool { return i >= 250 })},
		{"descending", reversed},
		{"the range's ends missing from the ledger", pick(func(i int) bool { return i >= 4 && i <= 29 })},
	} {
		got := s.lookup(b, tc.keys...)
		want := 0
		for _, k := range tc.keys {
			i := slices.Index(all, k)
			if i%5 == 4 {
				if e, ok := got[k]; ok {
					t.Errorf("%s: %q found (%+v), which the ledger does not have", tc.name, k, e)
				}
				continue
			}
			want++
			if e, ok := got[k]; !ok || e.Size != int64(i) || e.State != pipeline.StateDone {
				t.Errorf("%s: %q = %+v, %v", tc.name, k, e, ok)
			}
		}
		if len(got) != want {
			t.Errorf("%s: Lookup of %d keys found %d, want %d", tc.name, len(tc.keys), len(got), want)
		}
	}
}

// testLookupAdversarialKeys: the range read walks the ledger's order and
// the keys' (Go's byte order) side by side, so the two must agree also on
// keys one is a prefix of, NUL bytes, bytes above 0x7f that are not UTF-8,
// and a range that holds exactly as many entries as the read allows (one
// fewer: the range is used; as many: the seeks). A key the walk passed
// over would be taken for new and copied again.
func testLookupAdversarialKeys(t *testing.T, s *suite) {
	c, _ := s.account("carol")
	var all []string
	for _, stem := range []string{"p", "p\x00", "p\x00\x00", "p\x01", "p\x7f", "p\x80", "p\xc3\xa9", "p\xff", "p\xff\xff", "q"} {
		for i := range 4 {
			all = append(all, stem+fmt.Sprintf("%c", 'a'+i))
		}
		all = append(all, stem)
	}
	slices.Sort(all)
	var put []pipeline.Entry
	for i, k := range all {
		put = append(put, pipeline.Entry{Key: k, State: pipeline.StateDone, Size: int64(i + 1)})
	}
	s.commit(c, pipeline.Changes{Put: put})
	check := func(name string, keys []string) {
		t.Helper()
		got := s.lookup(c, keys...)
		for _, k := range keys {
			i := slices.Index(all, k)
			if e, ok := got[k]; !ok || e.Size != int64(i+1) {
				t.Errorf("%s: %q = %+v, %v (want found, size %d)", name, k, e, ok, i+1)
			}
		}
		if len(got) != len(keys) {
			t.Errorf("%s: Lookup of %d keys found %d", name, len(keys), len(got))
		}
	}
	check("every key", all)
	var odd []string
	for i, k := range all {
		if i%2 == 1 {
			odd = append(odd, k)
		}
	}
	check("every second key", odd)
	// n keys spanning 2n-1 entries (the range), then 2n entries (seeks).
	for _, span := range []int{31, 32} {
		keys := []string{all[0]}
		for i := 1; len(keys) < 15; i++ {
			keys = append(keys, all[i])
		}
		keys = append(keys, all[span-1])
		check(fmt.Sprintf("16 keys over %d entries", span), keys)
	}
}

func testScanPaging(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	const n = 2*pipeline.MaxPage + 17
	var put []pipeline.Entry
	for i := range n {
		put = append(put, pipeline.Entry{Key: fmt.Sprintf("k%05d", i), State: pipeline.StateDone})
	}
	s.commit(a, pipeline.Changes{Put: put})
	for _, limit := range []int{0, 1, 333, pipeline.MaxPage, pipeline.MaxPage + 5} {
		var keys []string
		q := pipeline.Query{Limit: limit}
		pages := 0
		for {
			page, next, err := s.l.Scan(s.ctx, a, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			max := limit
			if max <= 0 || max > pipeline.MaxPage {
				max = pipeline.MaxPage
			}
			if len(page) > max {
				t.Fatalf("limit %d: a page of %d", limit, len(page))
			}
			for _, e := range page {
				keys = append(keys, e.Key)
			}
			if next == "" {
				break
			}
			if next != page[len(page)-1].Key {
				t.Fatalf("next %q is not the page's last key %q", next, page[len(page)-1].Key)
			}
			q.After = next
		}
		if len(keys) != n || !sort.StringsAreSorted(keys) || slices.Compact(slices.Clone(keys)) == nil {
			t.Errorf("limit %d: %d keys in %d pages, sorted %v; want %d in key order", limit, len(keys), pages, sort.StringsAreSorted(keys), n)
		}
	}
	// Writes between pages are fine: a page starts after its key.
	page, next, _ := s.l.Scan(s.ctx, a, pipeline.Query{Limit: 10})
	s.commit(a, pipeline.Changes{Delete: []string{page[9].Key, "k00010"}, Put: []pipeline.Entry{{Key: "k00010x", State: pipeline.StateDone}}})
	page, _, _ = s.l.Scan(s.ctx, a, pipeline.Query{Limit: 2, After: next})
	if len(page) != 2 || page[0].Key != "k00010x" {
		t.Errorf("page after a write: %v", page)
	}
}

func testScanFilters(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	put := []pipeline.Entry{
		{Key: "A\x00\x001", State: pipeline.StateDone, Digest: digest(1)},
		{Key: "A\x001\x002", State: pipeline.StateGone, Digest: digest(1)},
		{Key: "A\x001\x003", State: pipeline.StateGone, Digest: digest(2)},
		{Key: "A\x002\x001", State: pipeline.StateSkipped},
		{Key: "A.B\x001\x001", State: pipeline.StateFailed},
		{Key: "A\xff\x00", State: pipeline.StatePending},
		{Key: "\xff\xff\x01", State: pipeline.StateDone},
		{Key: "\xff\xff", State: pipeline.StateGone, Digest: digest(1)},
	}
	s.commit(a, pipeline.Changes{Put: put})
	keysOf := func(q pipeline.Query) []string {
		var out []string
		for {
			page, next, err := s.l.Scan(s.ctx, a, q)
			if err != nil {
				t.Fatalf("Scan(%+v): %v", q, err)
			}
			for _, e := range page {
				out = append(out, e.Key)
			}
			if next == "" {
				return out
			}
			q.After = next
		}
	}
	tests := []struct {
		name string
		q    pipeline.Query
		want []string
	}{
		{"prefix with NUL", pipeline.Query{KeyPrefix: "A\x001\x00"}, []string{"A\x001\x002", "A\x001\x003"}},
		{"prefix of a folder", pipeline.Query{KeyPrefix: "A\x00"}, []string{"A\x00\x001", "A\x001\x002", "A\x001\x003", "A\x002\x001"}},
		{"prefix ending in 0xff", pipeline.Query{KeyPrefix: "A\xff"}, []string{"A\xff\x00"}},
		{"prefix of 0xff only", pipeline.Query{KeyPrefix: "\xff\xff"}, []string{"\xff\xff", "\xff\xff\x01"}},
		{"one state", pipeline.Query{States: []pipeline.State{pipeline.StateGone}}, []string{"A\x001\x002", "A\x001\x003", "\xff\xff"}},
		{"done", pipeline.Query{States: []pipeline.State{pipeline.StateDone}}, []string{"A\x00\x001", "\xff\xff\x01"}},
		{"states with done", pipeline.Query{States: []pipeline.State{pipeline.StateDone, pipeline.StatePending}}, []string{"A\x00\x001", "A\xff\x00", "\xff\xff\x01"}},
		{"states without done", pipeline.Query{States: []pipeline.State{pipeline.StateSkipped, pipeline.StateFailed}}, []string{"A\x002\x001", "A.B\x001\x001"}},
		{"gone with a digest", pipeline.Query{States: []pipeline.State{pipeline.StateGone}, Digest: digest(1)}, []string{"A\x001\x002", "\xff\xff"}},
		{"digest, any state", pipeline.Query{Digest: digest(1)}, []string{"A\x00\x001", "A\x001\x002", "\xff\xff"}},
		{"digest in a folder", pipeline.Query{Digest: digest(1), KeyPrefix: "A\x00"}, []string{"A\x00\x001", "A\x001\x002"}},
		{"after, with a prefix", pipeline.Query{KeyPrefix: "A\x00", After: "A\x001\x002"}, []string{"A\x001\x003", "A\x002\x001"}},
		{"after, before the prefix", pipeline.Query{KeyPrefix: "A\x001\x00", After: "A\x00\x001"}, []string{"A\x001\x002", "A\x001\x003"}},
		{"after, the prefix itself", pipeline.Query{KeyPrefix: "\xff\xff", After: "\xff\xff"}, []string{"\xff\xff\x01"}},
		{"after, just below the prefix", pipeline.Query{KeyPrefix: "\xff\xff", After: "\xff\xfe"}, []string{"\xff\xff", "\xff\xff\x01"}},
		{"after, past the prefix", pipeline.Query{KeyPrefix: "A\x001\x00", After: "A\x002"}, nil},
		{"after, with a prefix and states", pipeline.Query{KeyPrefix: "A\x00", After: "A\x001\x002", States: []pipeline.State{pipeline.StateSkipped, pipeline.StateGone}}, []string{"A\x001\x003", "A\x002\x001"}},
		{"no match", pipeline.Query{KeyPrefix: "B"}, nil},
	}
	for _, tc := range tests {
		if got := keysOf(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, _, err := s.l.Scan(s.ctx, a, pipeline.Query{Digest: "not hex"}); err == nil {
		t.Error("Scan by an invalid digest succeeded")
	}
}

func testKeysOnly(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	want := fullEntry("k\x00\xff", 1)
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{want}})
	page, _, err := s.l.Scan(s.ctx, a, pipeline.Query{KeysOnly: true})
	if err != nil || len(page) != 1 {
		t.Fatalf("Scan KeysOnly: %v, %v", page, err)
	}
	only := pipeline.Entry{Key: want.Key, State: want.State, ReasonClass: want.ReasonClass, Flags: want.Flags,
		Size: want.Size, Updated: want.Updated, DoneAt: want.DoneAt, GoneAt: want.GoneAt}
	sameEntry(t, page[0], only)
}

func testCopies(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	b, _ := s.account("bob")
	d1, d2 := digest(1), digest(2)
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "a1", State: pipeline.StateDone, Digest: d1, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 10},
		{Key: "a2", State: pipeline.StateGone, Digest: d2, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 11},
		{Key: "a3", State: pipeline.StateDone, Digest: d1, DestMailbox: "INBOX", DestUIDValidity: 6, DestUID: 12},
		{Key: "a4", State: pipeline.StatePending, Digest: d1, DestMailbox: "INBOX", DestUIDValidity: 7, DestUIDNext: 20},
		{Key: "a5", State: pipeline.StateSkipped, Digest: d1, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 13},
		{Key: "a6", State: pipeline.StateDone, Digest: d2, DestMailbox: "Sent", DestUIDValidity: 7, DestUID: 14},
	}})
	s.commit(b, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "b1", State: pipeline.StateDone, Digest: d1, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 15},
		{Key: "b2", State: pipeline.StateDone, Digest: d2, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 0},
		{Key: "b3", State: pipeline.StatePending, Digest: d2, DestMailbox: "INBOX", DestUIDValidity: 5, DestUIDNext: 3},
	}})
	uids := []uint32{10, 11, 12, 13, 14, 15, 16, 17}
	type copiesCase struct {
		name        string
		q           pipeline.CopiesQuery
		want        []uint32
		pendingFrom uint32
		noUID       bool
	}
	check := func(tests []copiesCase) {
		t.Helper()
		for _, tc := range tests {
			cl, err := s.l.Copies(s.ctx, tc.q)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var got []uint32
			for u := range cl.UIDs {
				got = append(got, u)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || cl.PendingFrom != tc.pendingFrom || cl.NoUID != tc.noUID {
				t.Errorf("%s: UIDs %v, pending from %d, no UID %v; want %v, %d, %v", tc.name, got, cl.PendingFrom, cl.NoUID, tc.want, tc.pendingFrom, tc.noUID)
			}
		}
	}
	check([]copiesCase{
		{"own, any digest", pipeline.CopiesQuery{Account: a, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, []uint32{10, 11}, 0, false},
		{"own, other UIDVALIDITY", pipeline.CopiesQuery{Account: a, Mailbox: "INBOX", UIDValidity: 6, UIDs: uids}, []uint32{12}, 0, false},
		{"own, a digest", pipeline.CopiesQuery{Account: a, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids, Digest: d1}, []uint32{10}, 20, false},
		{"every account, a digest", pipeline.CopiesQuery{Mailbox: "INBOX", UIDValidity: 7, UIDs: uids, Digest: d1}, []uint32{10, 15}, 20, false},
		{"every account, no UID, other UIDVALIDITY pending", pipeline.CopiesQuery{Mailbox: "INBOX", UIDValidity: 7, UIDs: uids, Digest: d2}, []uint32{11}, 1, true},
		{"every account, any digest", pipeline.CopiesQuery{Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, []uint32{10, 11, 15}, 0, false},
		{"others of bob: alice writes into another user's mailbox", pipeline.CopiesQuery{OthersOf: b, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, nil, 0, false},
		{"another folder", pipeline.CopiesQuery{Account: a, Mailbox: "Sent", UIDValidity: 7, UIDs: uids}, []uint32{14}, 0, false},
		{"no such folder", pipeline.CopiesQuery{Account: b, Mailbox: "Sent", UIDValidity: 7, UIDs: uids}, nil, 0, false},
	})
	c := s.carol("Alice") // the destination user in another case: the same
	s.commit(c, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "c1", State: pipeline.StateDone, Digest: d1, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 10},
		{Key: "c2", State: pipeline.StateGone, ReasonClass: pipeline.ReasonDeleted, Digest: d2, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 16},
		// Skipped "probably present": the copy it names stands in for
		// carol's message, so it is hers for alice's mirror (OthersOf);
		// alice's a5, skipped for another reason, is not.
		{Key: "c3", State: pipeline.StateSkipped, ReasonClass: pipeline.ReasonPresent, Digest: d2, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 17},
	}})
	check([]copiesCase{
		{"others of alice", pipeline.CopiesQuery{OthersOf: a, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, []uint32{10, 16, 17}, 0, false},
		{"every account, any digest, after carol's", pipeline.CopiesQuery{Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, []uint32{10, 11, 15, 16}, 0, false},
		{"others of carol", pipeline.CopiesQuery{OthersOf: c, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, []uint32{10, 11}, 0, false},
		{"others of carol, a digest", pipeline.CopiesQuery{OthersOf: c, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids, Digest: d2}, []uint32{11}, 0, false},
		{"others of bob", pipeline.CopiesQuery{OthersOf: b, Mailbox: "INBOX", UIDValidity: 7, UIDs: uids}, nil, 0, false},
	})
	// A folder recorded without UIDVALIDITY (by the schema-4 upgrade) is
	// asked for under any: bob's Archive was never seen.
	s.commit(b, pipeline.Changes{Folders: []pipeline.Folder{{Side: pipeline.DestSide, Name: "Archive"}}})
	s.commit(b, pipeline.Changes{Put: []pipeline.Entry{{Key: "b4", State: pipeline.StateDone, Digest: d1, DestMailbox: "Archive", DestUIDValidity: 9, DestUID: 3}}})
	if cl, err := s.l.Copies(s.ctx, pipeline.CopiesQuery{Mailbox: "Archive", UIDValidity: 9, UIDs: []uint32{3}, Digest: d1}); err != nil || !cl.UIDs[3] {
		t.Errorf("copies in a folder seen since: %v, %v", cl, err)
	}
}

func testCommitAtomic(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "pending-1", State: pipeline.StatePending, Digest: digest(1), DestMailbox: "INBOX"},
		{Key: "existing", State: pipeline.StateDone},
		{Key: "taken", State: pipeline.StateDone},
	}})
	before := s.all(a)
	// A change set whose last statement fails (moving keys onto a key that
	// exists) writes nothing of what came before it.
	err := s.l.Commit(s.ctx, a, pipeline.Changes{
		Delete:     []string{"pending-1"},
		Resent:     []pipeline.Resent{{Key: "pending-1", Mailbox: "INBOX", UIDValidity: 7, FromUID: 3, Digest: digest(1), Size: 5}},
		Put:        []pipeline.Entry{{Key: "new", State: pipeline.StateDone}},
		Folders:    []pipeline.Folder{{Side: pipeline.SourceSide, Name: "X", UIDValidity: 1}},
		Usage:      pipeline.Usage{Window: s.clock(), ReadBytes: 10},
		Rekey:      []pipeline.Rekey{{From: "existing", To: "taken"}},
		Gone:       []string{"existing"},
		Deleting:   []string{"existing"},
		DropResent: []int64{1},
	})
	if err == nil {
		t.Fatal("Commit moving a key onto another succeeded")
	}
	after := s.all(a)
	if len(after) != len(before) {
		t.Errorf("a failed Commit left %d entries, want the %d from before", len(after), len(before))
	}
	for k, e := range before {
		sameEntry(t, after[k], e)
	}
	if recs, _ := s.l.Resent(s.ctx, a); len(recs) != 0 {
		t.Errorf("a failed Commit recorded %d resent records", len(recs))
	}
	if fs, _ := s.l.Folders(s.ctx, a); len(fs) != 1 || fs[0].Side != pipeline.DestSide {
		t.Errorf("a failed Commit left folders %+v", fs)
	}
	if u, _ := s.l.Usage(s.ctx, a, s.clock()); u.ReadBytes != 0 {
		t.Errorf("a failed Commit recorded usage %+v", u)
	}
	// Forget: the pending entry and its resent record land together.
	s.commit(a, pipeline.Changes{Delete: []string{"pending-1"},
		Resent: []pipeline.Resent{{Key: "pending-1", Mailbox: "INBOX", UIDValidity: 7, FromUID: 3, Digest: digest(1), Size: 5}}})
	recs, _ := s.l.Resent(s.ctx, a)
	if _, ok := s.lookup(a, "pending-1")["pending-1"]; ok || len(recs) != 1 {
		t.Errorf("Forget: entry kept %v, %d records; want gone and 1", ok, len(recs))
	}
	s.check()
}

// testContest: Changes.Take and Changes.Adopt are checked against the
// other accounts' entries (those that write into the same destination
// user's mailbox) in the transaction that writes them, and a refusal
// writes nothing. Then the race: a Take held open between its check and
// its write (Options.Crashpoint) must hold back an Adopt of the same copy
// from another ledger (another process's view) until it commits, and the
// Adopt is then refused. Without that, both would read before either
// wrote, and one account would adopt a copy the other removes.
func testContest(t *testing.T, s *suite) {
	a, ha := s.account("alice")
	b, _ := s.account("bob") // another destination user
	c := s.carol("alice")
	at := func(key string, state pipeline.State, uid uint32) pipeline.Entry {
		e := pipeline.Entry{Key: key, State: state, Digest: digest(int(uid)), Size: 10, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: uid}
		if state == pipeline.StateMoving {
			e.MoveTo = "Archive"
		}
		return e
	}
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{
		at("a-done", pipeline.StateDone, 10), at("a-gone", pipeline.StateGone, 11), at("a-removed", pipeline.StateRemoved, 12),
		at("a-removing", pipeline.StateRemoving, 13), at("a-moving", pipeline.StateMoving, 14),
	}})
	// Skipped "probably present", naming the copy that stands in for the
	// message; and skipped for another reason, naming nothing of note.
	present, skipped := at("a-present", pipeline.StateSkipped, 15), at("a-skipped", pipeline.StateSkipped, 16)
	present.ReasonClass = pipeline.ReasonPresent
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{present, skipped}})
	matched := func(key string, uid uint32) pipeline.Entry {
		e := at(key, pipeline.StateDone, uid)
		e.ReasonClass = pipeline.ReasonMatched
		return e
	}
	for _, tc := range []struct {
		name    string
		account pipeline.AccountID
		c       pipeline.Changes
		refused []string
	}{
		{"take what another account names", c, pipeline.Changes{Put: []pipeline.Entry{at("c-x", pipeline.StateDone, 99)}, Take: []pipeline.Entry{
			at("c10", pipeline.StateRemoving, 10), at("c11", pipeline.StateMoving, 11), at("c12", pipeline.StateRemoving, 12),
			at("c13", pipeline.StateRemoving, 13), at("c14", pipeline.StateRemoving, 14)}}, []string{"c10", "c11", "c13", "c14"}},
		{"adopt what another account removes or moves", c, pipeline.Changes{Adopt: []pipeline.Entry{
			matched("c10", 10), matched("c11", 11), matched("c12", 12), matched("c13", 13), matched("c14", 14)}}, []string{"c13", "c14"}},
		{"take what another account's skipped entry names", c, pipeline.Changes{Take: []pipeline.Entry{
			at("c15", pipeline.StateRemoving, 15), at("c16", pipeline.StateRemoving, 16)}}, []string{"c15"}},
		{"take what another account names no more", c, pipeline.Changes{Take: []pipeline.Entry{at("c12", pipeline.StateRemoving, 12)}}, nil},
		{"adopt what another account shares", c, pipeline.Changes{Adopt: []pipeline.Entry{matched("c10", 10), matched("c11", 11)}}, nil},
		{"another destination user's copies", b, pipeline.Changes{Adopt: []pipeline.Entry{matched("b13", 13)}, Take: []pipeline.Entry{at("b10", pipeline.StateRemoving, 10)}}, nil},
	} {
		before := s.all(tc.account)
		err := s.l.Commit(s.ctx, tc.account, tc.c)
		var ce *pipeline.ContestedError
		switch {
		case tc.refused == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.refused == nil:
		case !errors.As(err, &ce) || !slices.Equal(ce.Keys, tc.refused):
			t.Errorf("%s: %v, want the refusal of %v", tc.name, err, tc.refused)
		case len(s.all(tc.account)) != len(before):
			t.Errorf("%s: a refused Commit wrote entries", tc.name)
		}
	}
	if e := s.lookup(c, "c12")["c12"]; e.State != pipeline.StateRemoving {
		t.Errorf("carol's c12 after its Take: %v, want removing", e.State)
	}

	// The race, on a copy only alice names: alice's Take (through a
	// second ledger) stops between its check and its write; carol's Adopt
	// must wait for it, then be refused.
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{at("a-race", pipeline.StateDone, 20)}})
	checked, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l2 := s.reopen(&checkpoint.Options{Crashpoint: func(p string) {
		if p == "contest: checked" {
			once.Do(func() { close(checked); <-resume })
		}
	}})
	if err := ha.Release(s.ctx); err != nil {
		t.Fatal(err)
	}
	h2, err := l2.Hold(s.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Release(context.Background())
	took := make(chan error, 1)
	go func() {
		took <- l2.Commit(s.ctx, a, pipeline.Changes{Take: []pipeline.Entry{at("a-race", pipeline.StateRemoving, 20)}})
	}()
	select {
	case <-checked:
	case err := <-took:
		t.Fatalf("alice's Take ended (%v) without reaching the crashpoint \"contest: checked\"", err)
	}
	adopted := make(chan error, 1)
	go func() {
		adopted <- s.l.Commit(s.ctx, c, pipeline.Changes{Adopt: []pipeline.Entry{matched("c-race", 20)}})
	}()
	var adoptErr error
	early := false
	select {
	case adoptErr = <-adopted:
		early = true
		t.Errorf("carol's Adopt ended (%v) while alice's Take of the same copy was between its check and its write", adoptErr)
	case <-time.After(500 * time.Millisecond):
	}
	close(resume)
	if err := <-took; err != nil {
		t.Fatalf("alice's Take: %v", err)
	}
	if !early {
		select {
		case adoptErr = <-adopted:
		case <-time.After(30 * time.Second):
			t.Fatal("carol's Adopt did not end after alice's Take committed")
		}
	}
	var ce *pipeline.ContestedError
	if !errors.As(adoptErr, &ce) {
		t.Errorf("carol's Adopt of a copy alice is removing: %v, want refused", adoptErr)
	}
	if _, ok := s.lookup(c, "c-race")["c-race"]; ok {
		t.Error("carol adopted a copy alice is removing")
	}
}

// testLateCopyIntent: an intent to remove a late copy (a removing entry
// keyed pipeline.LateCopyKeyPrefix…) is no message of the account: Counts
// (mirror's caps) and Status (mirroring work) leave it out, while it still
// keeps another account's Adopt off its copy.
func testLateCopyIntent(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	c := s.carol("alice")
	at := func(key string, state pipeline.State, uid uint32, size int64) pipeline.Entry {
		return pipeline.Entry{Key: key, State: state, Digest: digest(int(uid)), Size: size, DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: uid}
	}
	intent := at(pipeline.LateCopyKeyPrefix+"1", pipeline.StateRemoving, 21, 100)
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{at("done", pipeline.StateDone, 10, 10), at("mirror", pipeline.StateRemoving, 13, 13)}})
	s.commit(a, pipeline.Changes{Take: []pipeline.Entry{intent}})
	if e := s.lookup(a, intent.Key)[intent.Key]; e.State != pipeline.StateRemoving {
		t.Fatalf("the intent after its Take: %+v, want removing", e)
	}
	status := func() pipeline.Counts {
		t.Helper()
		st, err := s.l.Status(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{a}})
		if err != nil || len(st) != 1 {
			t.Fatalf("Status: %+v, %v", st, err)
		}
		return st[0].Counts
	}
	for _, tc := range []struct {
		name   string
		counts pipeline.Counts
	}{{"Counts", s.counts(a)}, {"Status", status()}} {
		want := pipeline.Counts{pipeline.StateDone: {Messages: 1, Bytes: 10}, pipeline.StateRemoving: {Messages: 1, Bytes: 13}}
		if !maps.Equal(tc.counts, want) {
			t.Errorf("%s with mirror's removing entry and a late-copy intent: %v, want %v (the intent left out)", tc.name, tc.counts, want)
		}
	}
	var ce *pipeline.ContestedError
	adopt := at("c21", pipeline.StateDone, 21, 100)
	adopt.ReasonClass = pipeline.ReasonMatched
	if err := s.l.Commit(s.ctx, c, pipeline.Changes{Adopt: []pipeline.Entry{adopt}}); !errors.As(err, &ce) || !slices.Equal(ce.Keys, []string{"c21"}) {
		t.Errorf("carol's Adopt of the copy alice's intent holds: %v, want refused", err)
	}
	s.commit(a, pipeline.Changes{Delete: []string{"mirror"}})
	for _, tc := range []struct {
		name   string
		counts pipeline.Counts
	}{{"Counts", s.counts(a)}, {"Status", status()}} {
		if c, ok := tc.counts[pipeline.StateRemoving]; ok {
			t.Errorf("%s with only a late-copy intent removing: %v removing, want none", tc.name, c)
		}
	}
	s.check() // account_counts still counts every entry
}

func testCommitInvalid(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	good := pipeline.Entry{Key: "good", State: pipeline.StateDone}
	tests := []struct {
		name string
		c    pipeline.Changes
	}{
		{"no key", pipeline.Changes{Put: []pipeline.Entry{good, {State: pipeline.StateDone}}}},
		{"unknown state", pipeline.Changes{Put: []pipeline.Entry{good, {Key: "k", State: 99}}}},
		{"digest not hex", pipeline.Changes{Put: []pipeline.Entry{good, {Key: "k", State: pipeline.StateDone, Digest: "DEADBEEF"}}}},
		{"digest upper case", pipeline.Changes{Put: []pipeline.Entry{good, {Key: "k", State: pipeline.StateDone, Digest: strings.ToUpper(digest(1))}}}},
		{"time out of range", pipeline.Changes{Put: []pipeline.Entry{good, {Key: "k", State: pipeline.StateDone, Updated: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}}}},
		{"resent without key", pipeline.Changes{Put: []pipeline.Entry{good}, Resent: []pipeline.Resent{{Mailbox: "INBOX"}}}},
		{"folder without name", pipeline.Changes{Put: []pipeline.Entry{good}, Folders: []pipeline.Folder{{Side: pipeline.DestSide}}}},
		{"EMAILID not an objectid", pipeline.Changes{Put: []pipeline.Entry{good, {Key: "k", State: pipeline.StateDone, EmailID: "M1 2"}}}},
		{"EMAILID too long", pipeline.Changes{Put: []pipeline.Entry{good, {Key: "k", State: pipeline.StateDone, EmailID: strings.Repeat("x", 256)}}}},
		{"folder op", pipeline.Changes{Put: []pipeline.Entry{good}, Folders: []pipeline.Folder{{Side: pipeline.DestSide, Name: "X", Op: "exploding"}}}},
	}
	for _, tc := range tests {
		err := s.l.Commit(s.ctx, a, tc.c)
		if !errors.Is(err, checkpoint.ErrInvalidEntry) {
			t.Errorf("%s: %v, want ErrInvalidEntry", tc.name, err)
		}
		if n := len(s.all(a)); n != 0 {
			t.Fatalf("%s: %d entries written", tc.name, n)
		}
	}
}

func testGoneAndDeleting(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	t0 := s.clock()
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "done", State: pipeline.StateDone, Size: 1, DoneAt: t0.Add(-time.Hour)},
		{Key: "skipped", State: pipeline.StateSkipped, Size: 2},
		{Key: "failed", State: pipeline.StateFailed, Size: 3},
		{Key: "pending", State: pipeline.StatePending, Size: 4},
		{Key: "del1", State: pipeline.StateDone, Size: 5},
		{Key: "del2", State: pipeline.StateDone, Size: 6},
		{Key: "kept", State: pipeline.StateDone, Size: 7},
	}})
	s.advance(time.Minute)
	s.commit(a, pipeline.Changes{Gone: []string{"done", "skipped", "failed", "pending", "nonexistent"}})
	got := s.all(a)
	if e := got["done"]; e.State != pipeline.StateGone || !e.GoneAt.Equal(s.clock()) || !e.DoneAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("gone done entry: %v gone at %v done at %v", e.State, e.GoneAt, e.DoneAt)
	}
	for _, k := range []string{"skipped", "failed"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s entry gone from the source kept", k)
		}
	}
	if got["pending"].State != pipeline.StatePending {
		t.Errorf("a pending entry changed by Gone: %v", got["pending"].State)
	}
	s.commit(a, pipeline.Changes{Deleting: []string{"del1", "del2", "pending"}})
	got = s.all(a)
	if got["del1"].ReasonClass != pipeline.ReasonDeleted || got["del1"].State != pipeline.StateDone || got["pending"].ReasonClass != "" {
		t.Errorf("marked: %v %q, pending %q", got["del1"].State, got["del1"].ReasonClass, got["pending"].ReasonClass)
	}
	s.advance(time.Minute)
	s.commit(a, pipeline.Changes{ConfirmDeleted: true})
	got = s.all(a)
	for _, k := range []string{"del1", "del2"} {
		if e := got[k]; e.State != pipeline.StateGone || e.ReasonClass != pipeline.ReasonDeleted || !e.GoneAt.Equal(s.clock()) {
			t.Errorf("%s after the deletion was confirmed: %v %q %v", k, e.State, e.ReasonClass, e.GoneAt)
		}
	}
	if got["kept"].State != pipeline.StateDone || got["done"].State != pipeline.StateGone {
		t.Errorf("unmarked entries changed: %v %v", got["kept"].State, got["done"].State)
	}
	c := s.counts(a)
	if c[pipeline.StateGone].Messages != 3 || c[pipeline.StateGone].Bytes != 12 || c[pipeline.StateDone].Messages != 1 {
		t.Errorf("counts %v", c)
	}
	s.check()
}

func testRekey(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "Entwürfe\x007\x001", State: pipeline.StateDone, Size: 1},
		{Key: "Entwürfe\x007\x002", State: pipeline.StateFailed, Size: 2},
		{Key: "Entwürfe2\x007\x001", State: pipeline.StateDone, Size: 3},
		{Key: "Other\x007\x001", State: pipeline.StateDone, Size: 4},
	}})
	s.commit(a, pipeline.Changes{Rekey: []pipeline.Rekey{{From: "Entwürfe\x007\x00", To: "Brouillons\xff\x007\x00"}}})
	got := s.all(a)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"Brouillons\xff\x007\x001", "Brouillons\xff\x007\x002", "Entwürfe2\x007\x001", "Other\x007\x001"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys after rekey: %q, want %q", keys, want)
	}
	if got["Brouillons\xff\x007\x002"].State != pipeline.StateFailed || got["Brouillons\xff\x007\x002"].Size != 2 {
		t.Errorf("a moved key lost its entry: %+v", got["Brouillons\xff\x007\x002"])
	}
	s.check()
}

// model is what the ledger must hold, for testCountsModel.
type model map[string]pipeline.Entry

func (m model) counts() pipeline.Counts {
	out := pipeline.Counts{}
	for _, e := range m {
		c := out[e.State]
		c.Messages++
		c.Bytes += e.Size
		out[e.State] = c
	}
	return out
}

func testCountsModel(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	b, _ := s.account("bob")
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	other := model{}
	states := pipeline.States
	key := func() string { return fmt.Sprintf("k%02d", rng.IntN(60)) }
	for step := range 300 {
		var c pipeline.Changes
		switch rng.IntN(7) {
		case 0, 1, 2:
			for range rng.IntN(20) {
				e := pipeline.Entry{Key: key(), State: states[rng.IntN(len(states))], Size: int64(rng.IntN(1000))}
				c.Put = append(c.Put, e)
			}
		case 3:
			for range rng.IntN(10) {
				c.Delete = append(c.Delete, key())
			}
		case 4:
			for range rng.IntN(10) {
				c.Gone = append(c.Gone, key())
			}
		case 5:
			for range rng.IntN(10) {
				c.Deleting = append(c.Deleting, key())
			}
		case 6:
			c.ConfirmDeleted = true
		}
		// The model applies the change set by the documented rules.
		for _, k := range c.Delete {
			delete(m, k)
		}
		for _, e := range c.Put {
			m[e.Key] = e
		}
		for _, k := range c.Gone {
			switch e, ok := m[k]; {
			case !ok:
			case e.State == pipeline.StateDone:
				e.State = pipeline.StateGone
				m[k] = e
			case e.State == pipeline.StateSkipped || e.State == pipeline.StateFailed:
				delete(m, k)
			}
		}
		for _, k := range c.Deleting {
			if e, ok := m[k]; ok && e.State == pipeline.StateDone {
				e.ReasonClass = pipeline.ReasonDeleted
				m[k] = e
			}
		}
		if c.ConfirmDeleted {
			for k, e := range m {
				if e.State == pipeline.StateDone && e.ReasonClass == pipeline.ReasonDeleted {
					e.State = pipeline.StateGone
					m[k] = e
				}
			}
		}
		s.commit(a, c)
		if step%25 == 0 {
			// Another account's writes never touch this one's counts.
			e := pipeline.Entry{Key: key(), State: pipeline.StateDone, Size: 5}
			other[e.Key] = e
			s.commit(b, pipeline.Changes{Put: []pipeline.Entry{e}})
		}
		if step%10 == 0 || step == 299 {
			got, want := s.counts(a), m.counts()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("step %d: counts %v, the model says %v", step, got, want)
			}
			all := s.all(a)
			if len(all) != len(m) {
				t.Fatalf("step %d: %d entries, the model has %d", step, len(all), len(m))
			}
			for k, e := range m {
				if g := all[k]; g.State != e.State || g.Size != e.Size {
					t.Fatalf("step %d: %q is %v/%d, the model says %v/%d", step, k, g.State, g.Size, e.State, e.Size)
				}
			}
			s.check()
		}
	}
	if got, want := s.counts(b), other.counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bob's counts %v, want %v", got, want)
	}
	// Pruning (FinishRun) keeps them right too.
	s.advance(checkpoint.DefaultRetention + time.Hour)
	run, err := s.l.StartRun(s.ctx, a, s.clock())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.l.FinishRun(s.ctx, run, pipeline.RunRecord{Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for k, e := range m {
		if e.State == pipeline.StateGone || e.State == pipeline.StateRemoved {
			delete(m, k)
		}
	}
	if got, want := s.counts(a), m.counts(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after pruning: counts %v, want %v", got, want)
	}
	s.check()
}

func testHolds(t *testing.T, s *suite) {
	a := s.resolve("alice")
	h, err := s.l.Hold(s.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.l.Hold(s.ctx, a); !errors.Is(err, checkpoint.ErrLocked) {
		t.Errorf("second Hold in one process: %v, want ErrLocked", err)
	}
	// Another ledger on the same store, as another process would open it.
	other := s.reopen(nil)
	if _, err := other.Hold(s.ctx, a); !errors.Is(err, checkpoint.ErrLocked) {
		t.Errorf("Hold through another ledger: %v, want ErrLocked", err)
	}
	if err := other.Commit(s.ctx, a, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}}); !errors.Is(err, checkpoint.ErrHoldLost) {
		t.Errorf("Commit without the hold: %v, want ErrHoldLost", err)
	}
	if n := len(s.all(a)); n != 0 {
		t.Errorf("a Commit without the hold wrote %d entries", n)
	}
	if err := h.Release(s.ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(s.ctx); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if err := s.l.Commit(s.ctx, a, pipeline.Changes{}); !errors.Is(err, checkpoint.ErrHoldLost) {
		t.Errorf("Commit after Release: %v, want ErrHoldLost", err)
	}
	h2, err := other.Hold(s.ctx, a)
	if err != nil {
		t.Fatalf("Hold after the other released it: %v", err)
	}
	select {
	case <-h2.Lost():
		t.Error("a fresh hold is lost")
	default:
	}
	h2.Release(s.ctx)
	if _, err := s.l.Hold(s.ctx, 999999); !errors.Is(err, checkpoint.ErrUnknownAccount) {
		t.Errorf("Hold of an unknown account: %v, want ErrUnknownAccount", err)
	}
	// Close releases what is held.
	if _, err := other.Hold(s.ctx, a); err != nil {
		t.Fatal(err)
	}
	other.Close()
	h3, err := s.l.Hold(s.ctx, a)
	if err != nil {
		t.Fatalf("Hold after the holder closed its ledger: %v", err)
	}
	h3.Release(s.ctx)
}

func testPauseRetry(t *testing.T, s *suite) {
	a, h := s.account("alice")
	if h.RetrySkipped() {
		t.Error("a new account retries skipped messages")
	}
	select {
	case <-h.Paused():
		t.Fatal("a new account is paused")
	default:
	}
	names, err := s.l.Pause(s.ctx, checkpoint.Selector{Names: []string{spec("alice").Endpoint}}, "paused by a test")
	if err != nil || len(names) != 1 {
		t.Fatalf("Pause: %v, %v", names, err)
	}
	// Seen at the next Commit, which still writes.
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}})
	select {
	case <-h.Paused():
	default:
		t.Error("the hold did not see the pause at the next Commit")
	}
	if names, _ := s.l.Pause(s.ctx, checkpoint.Selector{All: true}, "again"); len(names) != 0 {
		t.Errorf("pausing a paused account changed %v", names)
	}
	h.Release(s.ctx)
	h2, err := s.l.Hold(s.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h2.Paused():
	default:
		t.Error("a hold on a paused account is not paused")
	}
	h2.Release(s.ctx)
	if names, err := s.l.Resume(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{a}}); err != nil || len(names) != 1 {
		t.Fatalf("Resume: %v, %v", names, err)
	}
	if _, err := s.l.Retry(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{a}}, true); err != nil {
		t.Fatal(err)
	}
	h3, err := s.l.Hold(s.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h3.Paused():
		t.Error("a resumed account is paused")
	default:
	}
	if !h3.RetrySkipped() {
		t.Error("Retry(skipped) did not set the hold's RetrySkipped")
	}
	run, _ := s.l.StartRun(s.ctx, a, s.clock())
	if err := s.l.FinishRun(s.ctx, run, pipeline.RunRecord{Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	h3.Release(s.ctx)
	h4, _ := s.l.Hold(s.ctx, a)
	if h4.RetrySkipped() {
		t.Error("FinishRun did not clear the retry flag")
	}
	h4.Release(s.ctx)
	if _, err := s.l.Pause(s.ctx, checkpoint.Selector{Names: []string{"nobody"}}, "x"); !errors.Is(err, checkpoint.ErrUnknownAccount) {
		t.Errorf("pausing an unknown name: %v, want ErrUnknownAccount", err)
	}
}

func testAliases(t *testing.T, s *suite) {
	sp := spec("alice")
	r1, err := s.l.ResolveAccount(s.ctx, sp)
	if err != nil || !r1.Created || r1.Provisional || r1.Ident != sp.Endpoint {
		t.Fatalf("first resolve: %+v, %v", r1, err)
	}
	r2, err := s.l.ResolveAccount(s.ctx, sp)
	if err != nil || r2.Account != r1.Account || r2.Created {
		t.Fatalf("second resolve: %+v, %v; want the same account", r2, err)
	}
	if id, ok, err := s.l.LookupAccount(s.ctx, sp); err != nil || !ok || id != r1.Account {
		t.Errorf("LookupAccount: %d, %v, %v", id, ok, err)
	}
	// An id added later keeps the history; then the id decides even on
	// other servers.
	sp.ID = "alice-01"
	if r, err := s.l.ResolveAccount(s.ctx, sp); err != nil || r.Account != r1.Account {
		t.Fatalf("resolve with an id added: %+v, %v", r, err)
	}
	moved := sp
	moved.Endpoint = "pop3://alice@new-pop.example.org:995 -> imap://alice@imap.example.org:993/INBOX"
	if r, err := s.l.ResolveAccount(s.ctx, moved); err != nil || r.Account != r1.Account || r.Created {
		t.Fatalf("resolve by id on renamed servers: %+v, %v", r, err)
	}
	moved.ID = ""
	if r, err := s.l.ResolveAccount(s.ctx, moved); err != nil || r.Account != r1.Account {
		t.Errorf("the renamed servers became an alias: %+v, %v", r, err)
	}
	// An id and servers that name two accounts.
	bob := spec("bob")
	rb, err := s.l.ResolveAccount(s.ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	bob.ID = "alice-01"
	if _, err := s.l.ResolveAccount(s.ctx, bob); !errors.Is(err, checkpoint.ErrAccountConflict) {
		t.Errorf("conflicting id: %v, want ErrAccountConflict", err)
	}
	if _, _, err := s.l.LookupAccount(s.ctx, bob); !errors.Is(err, checkpoint.ErrAccountConflict) {
		t.Errorf("LookupAccount with a conflicting id: %v", err)
	}
	// An unknown account is not created by LookupAccount.
	if _, ok, err := s.l.LookupAccount(s.ctx, spec("carol")); err != nil || ok {
		t.Errorf("LookupAccount of a new account: %v, %v", ok, err)
	}
	// The same users on other servers, without an id: provisional, with
	// the accounts it may be as candidates.
	other := spec("Alice")
	other.Endpoint = "pop3://Alice@10.0.0.7:995 -> imap://alice@imap.example.org:993/INBOX"
	r, err := s.l.ResolveAccount(s.ctx, other)
	if err != nil || !r.Created || !r.Provisional || !slices.Equal(r.Candidates, []pipeline.AccountID{r1.Account}) {
		t.Errorf("resolve of a possible alias: %+v, %v", r, err)
	}
	if err := s.l.ConfirmAccount(s.ctx, r.Account); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.l.ResolveAccount(s.ctx, other); r.Provisional || len(r.Candidates) != 0 {
		t.Errorf("after ConfirmAccount: %+v", r)
	}
	// A source keyed another way is refused.
	imap := spec("bob")
	imap.KeyScheme = "gmail"
	if _, err := s.l.ResolveAccount(s.ctx, imap); !errors.Is(err, checkpoint.ErrKeyScheme) {
		t.Errorf("another key scheme: %v, want ErrKeyScheme", err)
	}
	_ = rb
}

// testResolveRecords: ResolveAccount records the servers last used for a
// known account when they changed, and keeps them when the same ones come
// again (it writes only what changed).
func testResolveRecords(t *testing.T, s *suite) {
	sp := spec("alice")
	sp.Spec = []byte(`{"name":"alice"}`)
	shown := func() (string, string) {
		t.Helper()
		st, err := s.l.Status(s.ctx, checkpoint.Selector{All: true})
		if err != nil || len(st) != 1 {
			t.Fatalf("Status = %+v, %v", st, err)
		}
		return st[0].Source, st[0].Destination
	}
	for i, c := range []struct{ source, dest string }{
		{sp.Source, sp.Destination},
		{sp.Source, sp.Destination}, // the same again
		{"pop3://alice@pop2.example.org:995", sp.Destination},
		{"pop3://alice@pop2.example.org:995", "imap://alice@imap2.example.org:993"},
		{sp.Source, sp.Destination},
	} {
		sp.Source, sp.Destination = c.source, c.dest
		if _, err := s.l.ResolveAccount(s.ctx, sp); err != nil {
			t.Fatalf("resolve %d: %v", i, err)
		}
		if src, dst := shown(); src != c.source || dst != c.dest {
			t.Errorf("after resolve %d: servers %q, %q; want %q, %q", i, src, dst, c.source, c.dest)
		}
	}
}

func testNames(t *testing.T, s *suite) {
	a := spec("alice")
	a.Name = "Alice"
	ra, err := s.l.ResolveAccount(s.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	b := spec("bob")
	b.Name = "Alice" // the config gave bob alice's name
	rb, err := s.l.ResolveAccount(s.ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.l.Status(s.ctx, checkpoint.Selector{All: true})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[pipeline.AccountID]checkpoint.AccountStatus{}
	for _, a := range st {
		byID[a.ID] = a
	}
	if byID[rb.Account].Name != "Alice" || byID[ra.Account].Name != "" {
		t.Errorf("names: alice %q, bob %q; want the name moved to bob", byID[ra.Account].Name, byID[rb.Account].Name)
	}
	if byID[ra.Account].Ident != a.Endpoint || byID[ra.Account].Source != a.Source {
		t.Errorf("alice's status: %+v", byID[ra.Account])
	}
	if names, err := s.l.Pause(s.ctx, checkpoint.Selector{Names: []string{"Alice"}}, "x"); err != nil || !slices.Equal(names, []string{"Alice"}) {
		t.Errorf("pause by name: %v, %v", names, err)
	}
}

func testBindAlias(t *testing.T, s *suite) {
	a := s.resolve("alice")
	other := spec("alice")
	other.Endpoint = "pop3://alice@10.0.0.7:995 -> imap://alice@imap.example.org:993/INBOX"
	other.Name = "alice-new"
	r, err := s.l.ResolveAccount(s.ctx, other)
	if err != nil || !r.Provisional {
		t.Fatalf("%+v, %v", r, err)
	}
	run, _ := s.l.StartRun(s.ctx, r.Account, s.clock())
	s.l.FinishRun(s.ctx, run, pipeline.RunRecord{Result: "failed", Error: "before the proof"})
	if err := s.l.BindAlias(s.ctx, r.Account, a, "uidl"); err != nil {
		t.Fatalf("BindAlias: %v", err)
	}
	if r2, err := s.l.ResolveAccount(s.ctx, other); err != nil || r2.Account != a || r2.Created {
		t.Errorf("after BindAlias the new servers resolve to %+v, %v; want account %d", r2, err, a)
	}
	runs, _ := s.l.Runs(s.ctx, a, 0)
	if len(runs) != 1 || runs[0].Error != "before the proof" {
		t.Errorf("runs moved over: %+v", runs)
	}
	if err := s.l.BindAlias(s.ctx, a, a, "uidl"); err == nil {
		t.Error("binding an account to itself succeeded")
	}
	// An account with entries is never merged.
	third := spec("alice")
	third.Endpoint = "pop3://alice@10.0.0.8:995 -> imap://alice@imap.example.org:993/INBOX"
	r3, _ := s.l.ResolveAccount(s.ctx, third)
	h, _ := s.l.Hold(s.ctx, r3.Account)
	s.commit(r3.Account, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone}}})
	h.Release(s.ctx)
	if err := s.l.BindAlias(s.ctx, r3.Account, a, "uidl"); err == nil {
		t.Error("BindAlias merged an account with entries")
	}
}

func testRuns(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	started := s.clock()
	id, err := s.l.StartRun(s.ctx, a, started)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.l.UpdateRun(s.ctx, id, pipeline.RunRecord{Listed: 10, Copied: 3}); err != nil {
		t.Fatal(err)
	}
	runs, _ := s.l.Runs(s.ctx, a, 0)
	if len(runs) != 1 || runs[0].Listed != 10 || runs[0].Copied != 3 || !runs[0].Finished.IsZero() || !runs[0].Started.Equal(started) {
		t.Fatalf("a running run: %+v", runs)
	}
	rec := pipeline.RunRecord{Finished: started.Add(time.Minute), Result: "partial", Error: "", ErrorClass: "", Listed: 10, ListedBytes: 100,
		Copied: 7, Found: 1, Skipped: 2, Failed: 0, Gone: 3, Moved: 0, Removed: 0, Deleted: 4, Bytes: 70}
	if err := s.l.FinishRun(s.ctx, id, rec); err != nil {
		t.Fatal(err)
	}
	rec.Started = started
	runs, _ = s.l.Runs(s.ctx, a, 0)
	if len(runs) != 1 || fmt.Sprintf("%+v", runs[0]) != fmt.Sprintf("%+v", rec) {
		t.Errorf("finished run:\n got  %+v\n want %+v", runs[0], rec)
	}
	if err := s.l.FinishRun(s.ctx, 424242, rec); !errors.Is(err, checkpoint.ErrUnknownRun) {
		t.Errorf("FinishRun of an unknown run: %v", err)
	}
	if err := s.l.UpdateRun(s.ctx, id, rec); !errors.Is(err, checkpoint.ErrUnknownRun) {
		t.Errorf("UpdateRun of a finished run: %v, want ErrUnknownRun", err)
	}
	// Pruning: the newest 100, plus the newest success and failure.
	failed, _ := s.l.StartRun(s.ctx, a, s.clock())
	s.l.FinishRun(s.ctx, failed, pipeline.RunRecord{Result: "failed", Error: "boom"})
	var last int64
	for range 120 {
		s.advance(time.Second)
		last, _ = s.l.StartRun(s.ctx, a, s.clock())
		s.l.FinishRun(s.ctx, last, pipeline.RunRecord{Result: "interrupted"})
	}
	runs, _ = s.l.Runs(s.ctx, a, 0)
	if len(runs) != 102 {
		t.Errorf("%d runs kept, want 100 + the last ok + the last failed", len(runs))
	}
	st, _ := s.l.Status(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{a}})
	if len(st) != 1 || st[0].LastRun == nil || st[0].LastRun.Result != "interrupted" || st[0].LastOK == nil ||
		st[0].LastOK.Result != "partial" || st[0].LastError == nil || st[0].LastError.Error != "boom" {
		t.Errorf("status' last runs: %+v", st)
	}
	if limited, _ := s.l.Runs(s.ctx, a, 3); len(limited) != 3 {
		t.Errorf("Runs(3) = %d", len(limited))
	}
	// A run paused by a daily quota says until when in its error column:
	// no error; the account waits until then.
	resume := s.clock().Add(5 * time.Hour)
	p, _ := s.l.StartRun(s.ctx, a, s.clock())
	if err := s.l.FinishRun(s.ctx, p, pipeline.RunRecord{Result: "paused", Error: "paused until later: quota", ResumeAt: resume}); err != nil {
		t.Fatal(err)
	}
	st, _ = s.l.Status(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{a}})
	if st[0].LastError == nil || st[0].LastError.Error != "boom" || !st[0].NotBefore.Equal(resume) || st[0].WaitReason != "quota" ||
		st[0].LastRun.Result != "paused" {
		t.Errorf("after a quota pause: last error %+v, not before %v (%q), last run %+v", st[0].LastError, st[0].NotBefore, st[0].WaitReason, st[0].LastRun)
	}
	if ids, _ := s.l.Pause(s.ctx, checkpoint.Selector{Failed: true}, "x"); len(ids) != 0 {
		t.Errorf("a paused run counts as failed: %v", ids)
	}
	_ = last
}

func testPruning(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	b, _ := s.account("bob")
	for _, acc := range []pipeline.AccountID{a, b} {
		s.commit(acc, pipeline.Changes{Put: []pipeline.Entry{
			{Key: "old-gone", State: pipeline.StateGone, Size: 1},
			{Key: "old-gone-deleted", State: pipeline.StateGone, ReasonClass: pipeline.ReasonDeleted, Size: 2},
			{Key: "old-removed", State: pipeline.StateRemoved, Size: 3},
			{Key: "done", State: pipeline.StateDone, Size: 4},
		}, Usage: pipeline.Usage{Window: s.clock(), ReadBytes: 5}})
	}
	oldWindow := s.clock()
	s.advance(checkpoint.DefaultRetention + time.Minute)
	for _, acc := range []pipeline.AccountID{a, b} {
		s.commit(acc, pipeline.Changes{Put: []pipeline.Entry{{Key: "new-gone", State: pipeline.StateGone, Size: 5}}})
	}
	finish := func(acc pipeline.AccountID, mirror bool) {
		id, _ := s.l.StartRun(s.ctx, acc, s.clock())
		if err := s.l.FinishRun(s.ctx, id, pipeline.RunRecord{Result: "ok", Mirror: mirror}); err != nil {
			t.Fatal(err)
		}
	}
	finish(a, false)
	finish(b, true)
	keys := func(acc pipeline.AccountID) []string {
		var out []string
		for k := range s.all(acc) {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	if got, want := keys(a), []string{"done", "new-gone"}; !slices.Equal(got, want) {
		t.Errorf("without mirror: %q kept, want %q", got, want)
	}
	// With mirror, a gone entry whose removal is still to come stays; one
	// mailferry deleted itself never gets removed, so it goes.
	if got, want := keys(b), []string{"done", "new-gone", "old-gone"}; !slices.Equal(got, want) {
		t.Errorf("with mirror: %q kept, want %q", got, want)
	}
	if u, _ := s.l.Usage(s.ctx, a, oldWindow); u.ReadBytes != 0 {
		t.Errorf("a quota window older than 7 days kept: %+v", u)
	}
	s.check()
}

func testFolders(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	synced := s.clock()
	src := pipeline.Folder{Side: pipeline.SourceSide, Name: "Entwürfe\xff", UIDValidity: 4294967295, UIDNext: 99, HighestModSeq: 1 << 62,
		Messages: 98, SyncedAt: synced}
	dst := pipeline.Folder{Side: pipeline.DestSide, Name: "Drafts", UIDValidity: 7, Op: pipeline.FolderRenaming, OpName: "Entwürfe"}
	s.commit(a, pipeline.Changes{Folders: []pipeline.Folder{src, dst}})
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone, DestMailbox: "Drafts", DestUIDValidity: 8, DestUID: 1}}})
	fs, err := s.l.Folders(s.ctx, a)
	if err != nil || len(fs) != 2 {
		t.Fatalf("Folders: %+v, %v", fs, err)
	}
	byName := map[string]pipeline.Folder{}
	for _, f := range fs {
		byName[f.Name] = f
	}
	dst.HasCopies, dst.UIDValidity = true, 8 // last seen, through the entry
	for _, want := range []pipeline.Folder{src, dst} {
		got := byName[want.Name]
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) || !got.SyncedAt.Equal(want.SyncedAt) {
			t.Errorf("folder record:\n got  %+v\n want %+v", got, want)
		}
	}
	// A source folder's record is replaced whole.
	src.Messages, src.SyncedAt = 0, time.Time{}
	s.commit(a, pipeline.Changes{Folders: []pipeline.Folder{src}})
	fs, _ = s.l.Folders(s.ctx, a)
	for _, f := range fs {
		if f.Side == pipeline.SourceSide && (f.Messages != 0 || !f.SyncedAt.IsZero()) {
			t.Errorf("rewritten source folder: %+v", f)
		}
	}
}

// testDropFolders: Changes.DropFolders deletes the account's source
// folder records of those names, and nothing else: not its destination
// record of the same name (which entries name), not another account's.
func testDropFolders(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	b, _ := s.account("bob")
	old := pipeline.Folder{Side: pipeline.SourceSide, Name: "Old\xff", UIDValidity: 5, Messages: 3, SyncedAt: s.clock()}
	keep := pipeline.Folder{Side: pipeline.SourceSide, Name: "Keep", UIDValidity: 6}
	oldDst := pipeline.Folder{Side: pipeline.DestSide, Name: "Old\xff", UIDValidity: 7}
	s.commit(a, pipeline.Changes{Folders: []pipeline.Folder{old, keep, oldDst}})
	s.commit(b, pipeline.Changes{Folders: []pipeline.Folder{old}})
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{{Key: "k", State: pipeline.StateDone, DestMailbox: "Old\xff", DestUIDValidity: 7, DestUID: 1}}})
	names := func(account pipeline.AccountID) []string {
		t.Helper()
		fs, err := s.l.Folders(s.ctx, account)
		if err != nil {
			t.Fatalf("Folders: %v", err)
		}
		var out []string
		for _, f := range fs {
			out = append(out, string(f.Side)+":"+f.Name)
		}
		return out
	}
	s.commit(a, pipeline.Changes{DropFolders: []string{"Old\xff", "Never"}})
	if got, want := names(a), []string{"dst:Old\xff", "src:Keep"}; !slices.Equal(got, want) {
		t.Errorf("alice's folders after dropping Old: %q, want %q", got, want)
	}
	if got, want := names(b), []string{"src:Old\xff"}; !slices.Equal(got, want) {
		t.Errorf("bob's folders after alice dropped Old: %q, want %q", got, want)
	}
	if e := s.lookup(a, "k")["k"]; e.DestMailbox != "Old\xff" || e.DestUID != 1 {
		t.Errorf("the entry naming the destination folder Old after the drop: %+v", e)
	}
	// The folder comes back: its record is written afresh.
	s.commit(a, pipeline.Changes{Folders: []pipeline.Folder{old}, Put: []pipeline.Entry{{Key: "k2", State: pipeline.StateDone, DestMailbox: "Old\xff", DestUIDValidity: 7, DestUID: 2}}})
	if got, want := names(a), []string{"dst:Old\xff", "src:Keep", "src:Old\xff"}; !slices.Equal(got, want) {
		t.Errorf("alice's folders after Old came back: %q, want %q", got, want)
	}
	s.check()
}

func testResent(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	recs := []pipeline.Resent{
		{Key: "k1\x00", Mailbox: "INBOX", UIDValidity: 7, FromUID: 3, Digest: digest(1), Size: 10, Recorded: s.clock()},
		{Key: "k2", Mailbox: "Sent", UIDValidity: 8, FromUID: 4, Digest: digest(2), Size: 11},
	}
	s.commit(a, pipeline.Changes{Resent: recs})
	got, err := s.l.Resent(s.ctx, a)
	if err != nil || len(got) != 2 {
		t.Fatalf("Resent: %+v, %v", got, err)
	}
	recs[1].Recorded = s.clock() // zero: now
	for i := range recs {
		recs[i].ID = got[i].ID
		if fmt.Sprintf("%+v", got[i]) != fmt.Sprintf("%+v", recs[i]) {
			t.Errorf("resent record:\n got  %+v\n want %+v", got[i], recs[i])
		}
	}
	s.commit(a, pipeline.Changes{DropResent: []int64{got[0].ID}})
	if got, _ := s.l.Resent(s.ctx, a); len(got) != 1 || got[0].Key != "k2" {
		t.Errorf("after DropResent: %+v", got)
	}
}

func testUsage(t *testing.T, s *suite) {
	a, _ := s.account("alice")
	w1, w2 := s.clock(), s.clock().Add(24*time.Hour)
	s.commit(a, pipeline.Changes{Usage: pipeline.Usage{Window: w1, ReadBytes: 10, WrittenBytes: 1}})
	s.commit(a, pipeline.Changes{Usage: pipeline.Usage{Window: w1, ReadBytes: 5}})
	s.commit(a, pipeline.Changes{Usage: pipeline.Usage{Window: w2, WrittenBytes: 7}})
	if u, _ := s.l.Usage(s.ctx, a, w1); u.ReadBytes != 15 || u.WrittenBytes != 1 {
		t.Errorf("window 1: %+v", u)
	}
	if u, _ := s.l.Usage(s.ctx, a, w2); u.ReadBytes != 0 || u.WrittenBytes != 7 {
		t.Errorf("window 2: %+v", u)
	}
}

func testStatus(t *testing.T, s *suite) {
	a, h := s.account("alice")
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{
		{Key: "1", State: pipeline.StateDone, Size: 10, DoneAt: s.clock().Add(-2 * time.Hour)},
		{Key: "2", State: pipeline.StateDone, Size: 20, DoneAt: s.clock().Add(-30 * time.Minute)},
		{Key: "3", State: pipeline.StateSkipped, Reason: "too big", Size: 5},
		{Key: "4", State: pipeline.StateSkipped, Reason: "too big", Size: 6},
		{Key: "5", State: pipeline.StateSkipped, Reason: "empty message"},
		{Key: "6", State: pipeline.StateFailed, Reason: "refused"},
	}})
	bob := s.resolve("bob")
	// A run of alice's going on: Status says who holds her account.
	if _, err := s.l.StartRun(s.ctx, a, s.clock()); err != nil {
		t.Fatal(err)
	}
	st, err := s.l.Status(s.ctx, checkpoint.Selector{All: true})
	if err != nil || len(st) != 2 {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	var sa checkpoint.AccountStatus
	for _, x := range st {
		if x.ID == a {
			sa = x
		}
	}
	if sa.Counts[pipeline.StateDone] != (pipeline.Count{Messages: 2, Bytes: 30}) || sa.Counts[pipeline.StateSkipped].Messages != 3 ||
		sa.SkipReasons["too big"] != 2 || sa.SkipReasons["empty message"] != 1 || sa.Holder == 0 {
		t.Errorf("alice's status: %+v", sa)
	}
	// Problems: alice's skipped and failed entries with their reasons.
	var problems []string
	err = s.l.Problems(s.ctx, func(id pipeline.AccountID, e pipeline.Entry) error {
		problems = append(problems, fmt.Sprintf("%d %s %s %s", id, e.Key, e.State, e.Reason))
		return nil
	})
	slices.Sort(problems)
	if want := []string{fmt.Sprintf("%d 3 skipped too big", a), fmt.Sprintf("%d 4 skipped too big", a), fmt.Sprintf("%d 5 skipped empty message", a),
		fmt.Sprintf("%d 6 failed refused", a)}; err != nil || !slices.Equal(problems, want) {
		t.Errorf("Problems: %q, %v; want %q", problems, err, want)
	}
	// Without holders: the same status, and no look at who holds it.
	for _, sel := range []checkpoint.Selector{{All: true}, {IDs: []pipeline.AccountID{a}}} {
		st, err := s.l.StatusWithoutHolders(s.ctx, sel)
		if err != nil || len(st) == 0 || st[0].ID != a || st[0].Holder != 0 || st[0].Worker != "" ||
			fmt.Sprint(st[0].Counts, st[0].SkipReasons) != fmt.Sprint(sa.Counts, sa.SkipReasons) {
			t.Errorf("StatusWithoutHolders(%+v) of held alice: %+v, %v; want her counts and no holder", sel, st, err)
		}
	}
	h.Release(s.ctx)
	if st, _ := s.l.Status(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{a}}); len(st) != 1 || st[0].Holder != 0 {
		t.Errorf("released account still shows a holder: %+v", st)
	}
	if st, _ := s.l.Status(s.ctx, checkpoint.Selector{IDs: []pipeline.AccountID{bob}}); len(st) != 1 || len(st[0].Counts) != 0 || st[0].LastRun != nil {
		t.Errorf("bob, never run: %+v", st)
	}
	// Each account keeps its own last runs, read for all accounts and for
	// a few by id also when an id asked for names no account and sorts
	// before theirs: the accounts after it move up a place, and their runs
	// went to the wrong account. Bob's last failed run is not his last
	// run (read apart from the last runs of all accounts).
	for _, r := range []struct {
		id  pipeline.AccountID
		rec pipeline.RunRecord
	}{{a, pipeline.RunRecord{Result: "ok", Copied: 1}}, {bob, pipeline.RunRecord{Result: "failed", Error: "boom"}},
		{bob, pipeline.RunRecord{Result: "ok", Copied: 2}}} {
		run, err := s.l.StartRun(s.ctx, r.id, s.clock())
		if err == nil {
			err = s.l.FinishRun(s.ctx, run, r.rec)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, sel := range []checkpoint.Selector{{All: true}, {IDs: []pipeline.AccountID{0, a, bob}}} {
		st, err := s.l.Status(s.ctx, sel)
		if err != nil || len(st) != 2 {
			t.Errorf("Status(%+v): %+v, %v; want alice and bob", sel, st, err)
			continue
		}
		for _, x := range st {
			want := map[pipeline.AccountID]int{a: 1, bob: 2}[x.ID]
			if x.LastRun == nil || x.LastRun.Copied != want || x.LastOK == nil || x.LastOK.Copied != want ||
				(x.LastError == nil) != (x.ID == a) || x.LastError != nil && x.LastError.Error != "boom" {
				t.Errorf("Status(%+v): account %d (%s) has last run %+v, last ok %+v, last error %+v; want its own run of %d copied (bob: and his failed one)",
					sel, x.ID, x.Ident, x.LastRun, x.LastOK, x.LastError, want)
			}
		}
	}
	n, first, err := s.l.DoneSince(s.ctx, a, s.clock().Add(-time.Hour))
	if err != nil || n != 1 || !first.Equal(s.clock().Add(-30*time.Minute)) {
		t.Errorf("DoneSince: %d, %v, %v", n, first, err)
	}
	size, entries, err := s.l.Size(s.ctx)
	if err != nil || size <= 0 || entries != 6 {
		t.Errorf("Size: %d bytes, %d entries, %v", size, entries, err)
	}
}

func testReopen(t *testing.T, s *suite) {
	a, h := s.account("alice")
	want := fullEntry("k\x00", 1)
	s.commit(a, pipeline.Changes{Put: []pipeline.Entry{want}, Folders: []pipeline.Folder{{Side: pipeline.SourceSide, Name: "INBOX", UIDValidity: 3}}})
	h.Release(s.ctx)
	s.l.Close()
	l := s.reopen(nil)
	var got pipeline.Entry
	if err := l.Lookup(s.ctx, a, []string{want.Key}, func(e pipeline.Entry) error { got = e; return nil }); err != nil {
		t.Fatal(err)
	}
	sameEntry(t, got, want)
	if id, ok, err := l.LookupAccount(s.ctx, spec("alice")); err != nil || !ok || id != a {
		t.Errorf("account after reopening: %d, %v, %v", id, ok, err)
	}
}

func testConcurrentCommits(t *testing.T, s *suite) {
	const accounts, commits, per = 6, 20, 25
	var ids []pipeline.AccountID
	for i := range accounts {
		id, _ := s.account(fmt.Sprint("user", i))
		ids = append(ids, id)
	}
	var wg sync.WaitGroup
	errs := make(chan error, accounts)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range commits {
				var put []pipeline.Entry
				for k := range per {
					put = append(put, pipeline.Entry{Key: fmt.Sprintf("c%03d-k%03d", c, k), State: pipeline.StateDone, Size: 1})
				}
				if err := s.l.Commit(s.ctx, id, pipeline.Changes{Put: put}); err != nil {
					errs <- err
					return
				}
				if _, _, err := s.l.Scan(s.ctx, id, pipeline.Query{Limit: 10}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		if c := s.counts(id); c[pipeline.StateDone].Messages != commits*per {
			t.Errorf("account %d: %v", id, c)
		}
	}
	s.check()
}

func testClosed(t *testing.T, s *suite) {
	a := s.resolve("alice")
	s.l.Close()
	if err := s.l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checks := map[string]error{
		"Commit": s.l.Commit(s.ctx, a, pipeline.Changes{}),
		"Lookup": s.l.Lookup(s.ctx, a, []string{"k"}, func(pipeline.Entry) error { return nil }),
	}
	_, _, checks["Scan"] = s.l.Scan(s.ctx, a, pipeline.Query{})
	_, checks["Hold"] = s.l.Hold(s.ctx, a)
	_, checks["StartRun"] = s.l.StartRun(s.ctx, a, s.clock())
	_, checks["Counts"] = s.l.Counts(s.ctx, a)
	_, checks["Resolve"] = s.l.ResolveAccount(s.ctx, spec("bob"))
	for name, err := range checks {
		if !errors.Is(err, checkpoint.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
