package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// The race between one account's mirror pass removing a copy and another
// account's destination matching adopting that very copy (docs/ledger.md,
// "Copies two accounts name"): alice copied a message into the INBOX
// bob's source feeds too; her source then loses it, and her mirror pass
// removes its copy while bob's first run finds the same bytes there. In
// either order the destination must end with the message once, named by
// bob's entry: nothing lost from bob's point of view, nothing twice.
//
//   - "removing": alice's pass stops after recording the removal
//     (crashpoint "removing"), bob's whole run goes by, alice's resumes.
//     The ledger refuses bob the copy alice is removing (Changes.Adopt),
//     so bob copies his own.
//   - "matched": bob's run stops after matching the copy and before
//     recording it (crashpoint "matched"), alice's whole pass goes by,
//     bob's resumes. He records the copy, finds it gone when he looks
//     again, and copies his own.
//
// CopyRace runs it on any ledger (copyrace_ledger_test.go: SQLite and
// PostgreSQL); alice and bob are accounts that write into one destination
// user's mailbox.
func copyRace(t *testing.T, order string, ledger Ledger, alice, bob AccountID) {
	msgs := genMessages(2)
	md := newMatchingDest()
	runner := &Runner{Ledger: ledger, Backoff: time.Millisecond}
	opts := func(account AccountID, name string) Options {
		return Options{Account: account, Name: name, BatchMessages: 7, Linger: time.Millisecond,
			Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
	}
	run := func(o Options, src Source) *Stats {
		st, _ := runner.RunAccount(context.Background(), Job{Options: o,
			OpenSource: func(context.Context) (Source, error) { return src, nil }, OpenDestination: md.open})
		return st
	}
	aliceOpts, bobOpts := opts(alice, "alice"), opts(bob, "bob")
	aliceSrc, bobSrc := &memSource{msgs: msgs, pageSize: 5}, &memSource{msgs: msgs[:1], pageSize: 5}
	if st := run(aliceOpts, aliceSrc); st.Error != "" || st.Copied != 2 {
		t.Fatalf("alice's copy: copied %d, error %q; want 2", st.Copied, st.Error)
	}
	aliceSrc.msgs, aliceOpts.Mirror = msgs[1:], true

	// first stops at point until second has run.
	first, firstOpts, firstSrc, second, secondOpts, secondSrc := "alice", &aliceOpts, Source(aliceSrc), "bob", bobOpts, Source(bobSrc)
	point := "removing"
	if order == "matched" {
		first, firstOpts, firstSrc, second, secondOpts, secondSrc = "bob", &bobOpts, bobSrc, "alice", aliceOpts, aliceSrc
		point = "matched"
	}
	reached, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	firstOpts.Crashpoint = func(p string) {
		if p == point {
			once.Do(func() { close(reached); <-resume })
		}
	}
	stats := map[string]*Stats{}
	done := make(chan *Stats)
	go func() { done <- run(*firstOpts, firstSrc) }()
	select {
	case <-reached:
	case st := <-done:
		t.Fatalf("%s's run ended (error %q) without reaching the crashpoint %q", first, st.Error, point)
	case <-time.After(time.Minute):
		t.Fatalf("%s's run did not reach the crashpoint %q", first, point)
	}
	stats[second] = run(secondOpts, secondSrc)
	close(resume)
	stats[first] = <-done
	for name, st := range stats {
		if st.Error != "" {
			t.Fatalf("%s's run: %s", name, st.Error)
		}
	}
	if st := stats["alice"]; st.Removed != 1 {
		t.Errorf("alice's mirror pass removed %d, want 1 (her copy)", st.Removed)
	}
	if st := stats["bob"]; st.Copied != 1 || st.Matched != 0 {
		t.Errorf("bob's run: copied %d, matched %d; want 1, 0 (alice's copy was being removed: he copies his own)", st.Copied, st.Matched)
	}
	if got, want := md.bodies("INBOX"), sortedBodies(msgs); !slices.Equal(got, want) {
		t.Errorf("destination INBOX holds %d messages, want each of the %d once", len(got), len(want))
	}
	var bobs Entry
	if err := ledger.Lookup(context.Background(), bob, []string{msgs[0].key}, func(e Entry) error { bobs = e; return nil }); err != nil {
		t.Fatal(err)
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	var there []byte
	if mb := md.boxes[bobs.DestMailbox]; mb != nil {
		for _, m := range mb.msgs {
			if m.uid == bobs.DestUID {
				there = m.body
			}
		}
	}
	if bobs.State != StateDone || string(there) != string(msgs[0].body) {
		t.Errorf("bob's entry: %v, UID %d of %q, which holds %d bytes of his message; want done, naming his copy (mail lost from bob's point of view)",
			bobs.State, bobs.DestUID, bobs.DestMailbox, len(there))
	}
}

// TestCopyRace is CopyRace on the tests' in-memory ledger.
func TestCopyRace(t *testing.T) {
	for _, order := range []string{"removing", "matched"} {
		t.Run(order, func(t *testing.T) { copyRace(t, order, copiesLedger{newMemLedger()}, alice, bob) })
	}
}
