package pipeline

import (
	"context"
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
