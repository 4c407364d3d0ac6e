package pipeline

import (
	"context"
	"sync"
	"testing"
)

// TestMirrorLeavesCopiesOtherAccountsName: alice copies three messages;
// bob's source holds two of them, and his first run matches alice's copies
// and, with delete_source, deletes them at his source: those copies are now
// bob's only ones. Alice's source then deletes one of them and the other,
// and her mirror pass must leave both copies (bob's entries name them; her
// entries are dropped as removed), while it removes the third, which only
// she names. (The other direction, bob's mirror and alice's copies, is
// TestE2EMatchedCopySharedByAccounts against Dovecot.)
func TestMirrorLeavesCopiesOtherAccountsName(t *testing.T) {
	msgs := genMessages(3)
	h, md := newMatchHarness(msgs)
	if st := h.runOn(t, md); st.Error != "" || st.Copied != 3 {
		t.Fatalf("alice's copy: copied %d, error %q; want 3", st.Copied, st.Error)
	}
	aliceOpts, aliceSrc := h.opts, h.src
	h.opts.Account, h.opts.Name, h.opts.DeleteSource = bob, "bob", true
	h.src = &memSource{msgs: msgs[:2], pageSize: 5}
	if st := h.runOn(t, md); st.Error != "" || st.Matched != 2 || st.Copied != 0 || st.Deleted != 2 {
		t.Fatalf("bob's copy: matched %d, copied %d, deleted %d, error %q; want 2, 0, 2", st.Matched, st.Copied, st.Deleted, st.Error)
	}
	h.opts, h.src = aliceOpts, aliceSrc
	h.opts.Mirror = true
	// Alice deletes all three at her source and gets a new one (a source
	// that lists nothing is "cannot tell", and mirror would hold back).
	h.src.msgs = genMessages(4)[3:]
	st := h.runOn(t, md)
	if st.Error != "" || st.Removed != 1 || st.Copied != 1 {
		t.Fatalf("alice's mirror pass: removed %d, copied %d, error %q; want 1, 1", st.Removed, st.Copied, st.Error)
	}
	if n := len(h.dst.bodies("INBOX")); n != 3 {
		t.Errorf("destination holds %d, want 3: bob's two (alice's copies he matched), and alice's new one", n)
	}
	entries := h.ledger.all(alice)
	for _, m := range msgs {
		if e := entries[m.key]; e.State != StateRemoved {
			t.Errorf("alice's %s: %v, want removed (her entry, whatever became of the copy)", m.key, e.State)
		}
	}
	for _, m := range msgs[:2] {
		if e := h.ledger.all(bob)[m.key]; e.State != StateGone || e.ReasonClass != ReasonDeleted {
			t.Errorf("bob's %s: %v %q, want gone, deleted at the source by mailferry", m.key, e.State, e.ReasonClass)
		}
	}
}

// TestMirrorSettleLeavesCopiesMatchedSince: alice's mirror pass dies
// between recording a removal and making it; before her next run, bob's
// entry comes to name that very copy, as a mailferry before Changes.Adopt
// could record it (matching today refuses a copy being removed:
// TestCopyRace). Alice's next run settles the removal: it must check again
// and leave the copy, bob's.
func TestMirrorSettleLeavesCopiesMatchedSince(t *testing.T) {
	msgs := genMessages(3)
	h, md := newMatchHarness(msgs)
	if st := h.runOn(t, md); st.Error != "" || st.Copied != 3 {
		t.Fatalf("alice's copy: copied %d, error %q; want 3", st.Copied, st.Error)
	}
	h.opts.Mirror = true
	h.src.msgs = msgs[1:]
	h.opts.Crashpoint = func(p string) {
		if p == "removing" {
			panic(crash{p})
		}
	}
	func() {
		defer func() {
			if r := recover(); r != (crash{"removing"}) {
				t.Fatalf("alice's mirror pass did not stop at the removing crashpoint: recovered %v", r)
			}
		}()
		h.runOn(t, md)
	}()
	e := h.ledger.all(alice)[msgs[0].key]
	if e.State != StateRemoving {
		t.Fatalf("after the crash alice's %s is %v, want removing", msgs[0].key, e.State)
	}
	e.State, e.ReasonClass = StateDone, ReasonMatched
	if err := h.ledger.Commit(context.Background(), bob, Changes{Put: []Entry{e}}); err != nil {
		t.Fatal(err)
	}
	h.opts.Crashpoint = nil
	if st := h.runOn(t, md); st.Error != "" || st.Removed != 0 {
		t.Fatalf("alice's next run: removed %d, error %q; want 0", st.Removed, st.Error)
	}
	if n := len(h.dst.bodies("INBOX")); n != 3 {
		t.Errorf("destination holds %d, want 3: the copy bob's entry names stays", n)
	}
	if e := h.ledger.all(alice)[msgs[0].key]; e.State != StateRemoved {
		t.Errorf("alice's %s: %v, want removed (her entry only)", msgs[0].key, e.State)
	}
}

// racingLedger lands another account's destination matching between
// mirror's look at the copies (sharedCopies) and the record of its intent:
// just before the first Commit with Take entries, an entry of bob's comes
// to name the first of their copies.
type racingLedger struct {
	copiesLedger
	once sync.Once
	// bobs makes bob's entry of the taken entry; nil: done, matched.
	bobs func(taken Entry) Entry
}

func (l *racingLedger) Commit(ctx context.Context, account AccountID, c Changes) error {
	var err error
	if len(c.Take) > 0 {
		l.once.Do(func() {
			e := c.Take[0]
			if l.bobs != nil {
				e = l.bobs(e)
			} else {
				e.Key, e.State, e.ReasonClass, e.MoveTo = "bob's", StateDone, ReasonMatched, ""
			}
			err = l.copiesLedger.Commit(ctx, bob, Changes{Put: []Entry{e}})
		})
	}
	if err != nil {
		return err
	}
	return l.copiesLedger.Commit(ctx, account, c)
}

// TestMirrorTakeRefused: the ledger refuses mirror's intent for a copy
// another account's entry came to name after mirror looked (Changes.Take):
// a removal then drops only alice's entry, and a move becomes a copy into
// the new folder; the copy stays, bob's.
func TestMirrorTakeRefused(t *testing.T) {
	msgs := genMessages(2)
	for _, op := range []string{"remove", "move"} {
		t.Run(op, func(t *testing.T) {
			src := &folderSource{folders: map[string][]folderMsg{"A": {{uid: 1, body: msgs[0].body}, {uid: 2, body: msgs[1].body}}, "D": nil}}
			h := newHarness(nil)
			h.runner.Ledger = &racingLedger{copiesLedger: copiesLedger{h.ledger}}
			h.opts.MapFolders = func(context.Context, Source, Destination, bool) (map[string]string, error) {
				return map[string]string{"A": "A", "D": "D"}, nil
			}
			h.opts.KeyFolder = src.place
			if st := h.runWith(t, src); st.Copied != 2 {
				t.Fatalf("bulk pass: copied %d, want 2", st.Copied)
			}
			old := src.key("A", 1)
			if op == "remove" {
				src.folders["A"] = src.folders["A"][1:]
			} else {
				src.move("A", 1, "D")
			}
			h.opts.Mirror = true
			st := h.runWith(t, src)
			if want := map[string]int{"remove": 0, "move": 1}[op]; st.Removed != 0 || st.Moved != 0 || st.Copied != want {
				t.Errorf("mirror pass: removed %d, moved %d, copied %d; want 0, 0, %d (bob's copy is not alice's to take)", st.Removed, st.Moved, st.Copied, want)
			}
			if n := len(h.dst.bodies("A")); n != 2 {
				t.Errorf("destination folder A holds %d, want 2: the copy bob's entry names stays", n)
			}
			if e := h.ledger.all(alice)[old]; e.State != StateRemoved {
				t.Errorf("alice's %q: %v, want removed (her entry only)", old, e.State)
			}
			if op == "move" && len(h.dst.bodies("D")) != 1 {
				t.Errorf("destination folder D holds %d, want alice's copy of the moved message", len(h.dst.bodies("D")))
			}
		})
	}
}

// bobPresent is bob's entry skipped "probably present" (the same
// Message-ID and size, other bytes) because of the copy e names.
func bobPresent(e Entry) Entry {
	e.Key, e.State, e.ReasonClass, e.Reason, e.MoveTo = "bob's", StateSkipped, ReasonPresent, "probably present", ""
	return e
}

// An entry of bob's skipped "probably present" names alice's copy: that
// copy stands in for bob's message, which is never sent, so alice's mirror
// pass leaves it, whether the entry was there when she looked
// (CopiesQuery.OthersOf) or came before her intent (Changes.Take); only
// her entry is dropped.
func TestMirrorLeavesACopyAProbablyPresentEntryNames(t *testing.T) {
	for _, when := range []string{"before the look", "before the intent"} {
		t.Run(when, func(t *testing.T) {
			msgs := genMessages(2)
			h := newHarness(msgs)
			h.runner.Ledger = copiesLedger{h.ledger}
			if st := h.run(t); st.Copied != 2 {
				t.Fatalf("bulk pass: copied %d, want 2", st.Copied)
			}
			mine := h.ledger.all(alice)[msgs[0].key]
			if when == "before the look" {
				if err := h.ledger.Commit(context.Background(), bob, Changes{Put: []Entry{bobPresent(mine)}}); err != nil {
					t.Fatal(err)
				}
			} else {
				h.runner.Ledger = &racingLedger{copiesLedger: copiesLedger{h.ledger}, bobs: bobPresent}
			}
			h.src.msgs, h.opts.Mirror = msgs[1:], true
			st := h.run(t)
			if st.Error != "" || st.Removed != 0 {
				t.Errorf("mirror pass: error %q, removed %d; want none, 0 (the copy stands in for bob's message)", st.Error, st.Removed)
			}
			if _, ok := h.ledger.all(bob)["bob's"]; !ok {
				t.Fatal("bob's entry was never written")
			}
			if n := len(h.dst.bodies("INBOX")); n != 2 {
				t.Errorf("destination INBOX holds %d, want 2: the copy bob's entry names stays", n)
			}
			if e := h.ledger.all(alice)[msgs[0].key]; e.State != StateRemoved {
				t.Errorf("alice's %s: %v, want removed (her entry only)", msgs[0].key, e.State)
			}
		})
	}
}
