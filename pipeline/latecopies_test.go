package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// The late-APPEND race: a run gives up on a batch whose APPEND the server
// has not answered (a slow or stalled link), the next attempt reconciles,
// finds nothing and sends the batch again, and then the server completes
// the first APPEND after all. These tests hold the first APPEND back
// (memDest.holdNext) and land it late (memDest.landHeld).

func TestLateCopyLandingAfterTheRunIsRemovedByTheNext(t *testing.T) {
	msgs := genMessages(20)
	h := newHarness(msgs)
	h.opts.Linger = time.Minute // whole batches of 7
	h.dst.holdNext = true       // the first batch is held, the attempt gives up
	st := h.run(t)
	if st.Error != "" || st.Resent != 7 || st.Attempts != 2 || st.Copied != 20 {
		t.Fatalf("first run: error %q, resent %d, attempts %d, copied %d; want none, 7, 2, 20",
			st.Error, st.Resent, st.Attempts, st.Copied)
	}
	if n := len(h.ledger.resent[alice]); n != 7 {
		t.Fatalf("ledger remembers %d resent messages, want 7", n)
	}

	h.dst.landHeld() // the server completes the abandoned APPEND after the run
	if n := len(h.dst.bodies("INBOX")); n != 27 {
		t.Fatalf("destination holds %d after the late APPEND, want 27 (the race happened)", n)
	}

	st = h.run(t)
	if st.Error != "" || st.LateCopiesRemoved != 7 || st.Copied != 0 {
		t.Fatalf("second run: error %q, late copies removed %d, copied %d; want none, 7, 0", st.Error, st.LateCopiesRemoved, st.Copied)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("destination holds %d messages, want exactly the 20 source messages once", len(got))
	}
	// The copies the ledger names are the ones kept.
	kept := map[uint32]bool{}
	for _, m := range h.dst.boxes["INBOX"].msgs {
		kept[m.uid] = true
	}
	for k, e := range h.ledger.entries[alice] {
		if e.State != StateDone || !kept[e.DestUID] {
			t.Errorf("entry %s: state %v, UID %d not on the destination", k, e.State, e.DestUID)
		}
	}
	if n := len(h.ledger.resent[alice]); n != 0 {
		t.Errorf("%d resent records left after they were settled, want 0", n)
	}
}

func TestLateCopyLandingDuringTheResendIsRemovedByTheSameRun(t *testing.T) {
	msgs := genMessages(20)
	h := newHarness(msgs)
	h.opts.Linger = time.Minute
	h.dst.holdNext = true
	landed := false
	h.opts.Crashpoint = func(point string) {
		// First commit of the second attempt: the resent batch is stored.
		if point == "committed" && !landed && len(h.dst.held) > 0 {
			landed = true
			h.dst.landHeld()
		}
	}
	st := h.run(t)
	if st.Error != "" || !landed || st.LateCopiesRemoved != 7 {
		t.Fatalf("error %q, landed %v, late copies removed %d; want none, true, 7", st.Error, landed, st.LateCopiesRemoved)
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("destination holds %d messages, want exactly the 20 source messages once", len(got))
	}
}

func TestLateCopyIsAdoptedWhenTheResendNeverHappened(t *testing.T) {
	msgs := genMessages(7)
	h := newHarness(msgs)
	h.opts.Linger = time.Minute
	h.runner.Attempts = 1
	h.dst.holdNext = true
	if st := h.run(t); st.Error == "" {
		t.Fatal("first run succeeded; the held batch should have ended it")
	}
	// The messages leave the source (another client deleted them) before
	// the next run, which forgets them: nothing is sent again.
	h.src.msgs = nil
	if st := h.run(t); st.Error != "" || st.Resent != 7 {
		t.Fatalf("second run: error %q, resent %d; want none, 7", st.Error, st.Resent)
	}
	h.dst.landHeld()
	st := h.run(t)
	if st.Error != "" || st.LateCopiesAdopted != 7 || st.LateCopiesRemoved != 0 {
		t.Fatalf("third run: error %q, adopted %d, removed %d; want none, 7, 0", st.Error, st.LateCopiesAdopted, st.LateCopiesRemoved)
	}
	if n := len(h.dst.bodies("INBOX")); n != 7 {
		t.Errorf("destination holds %d, want the 7 late copies kept", n)
	}
	if n := h.ledger.states(alice)[StateDone]; n != 7 {
		t.Errorf("%d entries done, want the 7 adopted copies", n)
	}
}

func TestLateCopyChecks(t *testing.T) {
	day := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		// setup runs after the first run (7 of 7 resent, records made)
		// and before the late APPEND lands.
		setup       func(h *harness)
		land        bool
		wantRemoved int
		wantAdopted int
		wantKept    int
		wantRecords int
		wantBodies  int
	}{
		{
			name:        "no late copy within the window keeps looking",
			setup:       func(h *harness) { h.opts.Now = func() time.Time { return day.Add(59 * time.Minute) } },
			wantRecords: 7, wantBodies: 7,
		},
		{
			name:        "no late copy after the window forgets",
			setup:       func(h *harness) { h.opts.Now = func() time.Time { return day.Add(61 * time.Minute) } },
			wantRecords: 0, wantBodies: 7,
		},
		{
			name: "a copy another account names is left alone",
			setup: func(h *harness) {
				// bob's ledger entries name the UIDs the late copies will get.
				for _, e := range h.ledger.all(alice) {
					e.DestUID += 7
					h.ledger.put(bob, e)
				}
			},
			land: true, wantRecords: 7, wantBodies: 14,
		},
		{
			name: "a copy marked deleted by a user's client is nobody's",
			setup: func(h *harness) {
				// The user marks the copies the ledger names \Deleted
				// (mutt, Alpine: expunged later): the late copies take
				// their place, and the client's EXPUNGE leaves one each.
				mb := h.dst.boxes["INBOX"]
				for i := range mb.msgs {
					mb.msgs[i].flags = append(mb.msgs[i].flags, `\Deleted`)
				}
			},
			land:        true,
			wantAdopted: 7, wantRecords: 0, wantBodies: 14,
		},
		{
			name: "a late copy whose twin a user deleted is kept",
			setup: func(h *harness) {
				// The user deletes the copies the ledger names.
				mb := h.dst.boxes["INBOX"]
				mb.msgs = mb.msgs[:0]
			},
			land:        true,
			wantAdopted: 7, wantRecords: 0, wantBodies: 7,
		},
		{
			name:        "late copies are removed",
			land:        true,
			wantRemoved: 7, wantRecords: 0, wantBodies: 7,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(genMessages(7))
			h.opts.Linger = time.Minute
			h.dst.holdNext = true
			if st := h.run(t); st.Error != "" || st.Resent != 7 {
				t.Fatalf("first run: error %q, resent %d; want none, 7", st.Error, st.Resent)
			}
			if tc.setup != nil {
				tc.setup(h)
			}
			if tc.land {
				h.dst.landHeld()
			}
			st := h.run(t)
			if st.Error != "" || st.LateCopiesRemoved != tc.wantRemoved || st.LateCopiesAdopted != tc.wantAdopted ||
				st.LateCopiesKept != tc.wantKept {
				t.Errorf("second run: error %q, removed %d, adopted %d, kept %d; want none, %d, %d, %d",
					st.Error, st.LateCopiesRemoved, st.LateCopiesAdopted, st.LateCopiesKept, tc.wantRemoved, tc.wantAdopted, tc.wantKept)
			}
			for k, e := range h.ledger.entries[alice] {
				found := false
				for _, m := range h.dst.boxes["INBOX"].msgs {
					found = found || m.uid == e.DestUID && !slices.Contains(m.flags, `\Deleted`)
				}
				// bob deletes at the source: his entry is gone, its copy stays.
				if e.State != StateDone || !found {
					t.Errorf("entry %s: state %v, its UID %d is not on the destination", k, e.State, e.DestUID)
				}
			}
			if n := len(h.ledger.resent[alice]); n != tc.wantRecords {
				t.Errorf("%d resent records left, want %d", n, tc.wantRecords)
			}
			if n := len(h.dst.bodies("INBOX")); n != tc.wantBodies {
				t.Errorf("destination holds %d, want %d", n, tc.wantBodies)
			}
		})
	}
}

// Without UIDPLUS the destination names no UIDs, so the copy sent again
// and a late one cannot be told apart: nothing is removed or adopted, and
// the records go with a warning.
func TestLateCopyWithoutAPPENDUIDIsNotGuessed(t *testing.T) {
	h := newHarness(genMessages(7))
	h.opts.Linger = time.Minute
	h.dst.noUIDPlus = true
	h.dst.holdNext = true
	if st := h.run(t); st.Error != "" || st.Resent != 7 {
		t.Fatalf("first run: error %q, resent %d; want none, 7", st.Error, st.Resent)
	}
	h.dst.landHeld()
	st := h.run(t)
	if st.Error != "" || st.LateCopiesRemoved+st.LateCopiesAdopted+st.LateCopiesKept != 0 || len(h.ledger.resent[alice]) != 0 {
		t.Errorf("error %q, removed %d, adopted %d, kept %d, records %d; want nothing done and no records",
			st.Error, st.LateCopiesRemoved, st.LateCopiesAdopted, st.LateCopiesKept, len(h.ledger.resent[alice]))
	}
	if n := len(h.dst.bodies("INBOX")); n != 14 {
		t.Errorf("destination holds %d, want 14 (nothing removed by guessing)", n)
	}
}

// Another account of the same ledger writes byte-identical mail into the
// same folder; its copy is stored but not yet committed when alice's run
// looks for late copies: it must not be taken for alice's.
func TestLateCopyCheckLeavesAnotherAccountsUncommittedCopy(t *testing.T) {
	msgs := genMessages(7)
	h := newHarness(msgs)
	h.opts.Linger = time.Minute
	h.dst.holdNext = true
	if st := h.run(t); st.Error != "" || st.Resent != 7 {
		t.Fatalf("alice's first run: error %q, resent %d", st.Error, st.Resent)
	}
	bobSrc := &memSource{msgs: []memMsg{{key: "bob-0", body: msgs[0].body}}}
	bobOpts := h.opts
	bobOpts.Account, bobOpts.Name, bobOpts.DeleteSource = bob, "bob", true
	ran := false
	var during *Stats
	bobOpts.Crashpoint = func(p string) {
		if p == "appended" && !ran { // bob's copy stored, not yet committed
			ran = true
			during = h.run(t) // alice's next run, on another worker
		}
	}
	st, _ := h.runner.RunAccount(context.Background(), Job{Options: bobOpts,
		OpenSource: func(context.Context) (Source, error) { return bobSrc, nil }, OpenDestination: h.dst.open})
	if st.Error != "" || !ran {
		t.Fatalf("bob: error %q, alice ran during bob's batch: %v", st.Error, ran)
	}
	if during.LateCopiesRemoved != 0 || during.LateCopiesAdopted != 0 {
		t.Errorf("alice's run took bob's uncommitted copy: removed %d, adopted %d", during.LateCopiesRemoved, during.LateCopiesAdopted)
	}
	e := h.ledger.entries[bob]["bob-0"]
	found := false
	for _, m := range h.dst.boxes["INBOX"].msgs {
		found = found || m.uid == e.DestUID
	}
	// bob deletes at the source: his entry is gone, its copy stays.
	if e.State != StateGone || !found {
		t.Errorf("bob's entry is %v at UID %d, which is not on the destination", e.State, e.DestUID)
	}
}

// One message resent twice (two abandoned APPENDs), then gone from the
// source: the first late copy becomes its copy, the second is removed.
func TestLateCopyTwoRecordsForOneMessage(t *testing.T) {
	h := newHarness(genMessages(7))
	h.opts.Linger = time.Minute
	h.runner.Attempts = 1
	h.dst.holdNext = true
	h.run(t) // held: pending
	h.dst.holdNext = true
	h.run(t) // forgotten (record 1), sent again, held again
	h.src.msgs = nil
	h.run(t) // forgotten (record 2), nothing to send
	h.dst.landHeld()
	st := h.run(t)
	if st.Error != "" || st.LateCopiesAdopted != 7 || st.LateCopiesRemoved != 7 {
		t.Errorf("error %q, adopted %d, removed %d; want none, 7, 7", st.Error, st.LateCopiesAdopted, st.LateCopiesRemoved)
	}
	if n := len(h.dst.bodies("INBOX")); n != 7 {
		t.Errorf("destination holds %d, want 7", n)
	}
}

// An IMAP source folder changes UIDVALIDITY after a resend: the message's
// entry moves to its new key (rematched), and the late copy that lands
// then is a duplicate of that entry's copy, not the old key's own copy.
func TestLateCopyAfterSourceIdentityChange(t *testing.T) {
	h, src := newIMAPHarness(t)
	h.opts.Linger = time.Minute
	h.dst.holdNext = true
	if st := h.runWith(t, src); st.Resent == 0 {
		t.Fatalf("first run resent nothing; the held batch should have been resent")
	}
	src.uidValidity["INBOX"], src.uidValidity["Sent"] = 2, 2
	if st := h.runWith(t, src); st.Rematched == 0 {
		t.Fatalf("second run rematched nothing")
	}
	h.dst.landHeld()
	st := h.runWith(t, src)
	if st.LateCopiesRemoved == 0 || st.LateCopiesAdopted != 0 {
		t.Errorf("removed %d, adopted %d; want the late copies removed, none adopted", st.LateCopiesRemoved, st.LateCopiesAdopted)
	}
	if n := len(h.dst.bodies("INBOX")) + len(h.dst.bodies("Sent Items")); n != 8 {
		t.Errorf("destination holds %d, want the source's 8", n)
	}
}

// Another account's destination matching adopts a late duplicate copy
// while alice's run is about to expunge it (docs/ledger.md, "Copies two
// accounts name"): alice's expunge waits (memDest.beforeExpunge) until
// bob's whole run has gone by. bob's source holds her first message
// twice, so his matching finds the copy she keeps for one and her late
// copy for the other. The intent she recorded first (Changes.Take)
// refuses him the late copy, so he copies his own; without it his entry
// would name the copy she then expunges: mail lost from his point of view.
//
// LateCopyAdoptRace runs it on any ledger (copyrace_ledger_test.go);
// alice and bob are accounts that write into one destination user's
// mailbox.
func lateCopyAdoptRace(t *testing.T, ledger Ledger, alice, bob AccountID) {
	ctx := context.Background()
	msgs := genMessages(7)
	h, md := newMatchHarness(msgs)
	h.runner.Ledger = ledger
	h.opts.Account = alice
	h.opts.Linger = time.Minute
	h.dst.holdNext = true
	if st := h.run(t); st.Error != "" || st.Resent != 7 {
		t.Fatalf("alice's first run: error %q, resent %d; want none, 7", st.Error, st.Resent)
	}
	h.dst.landHeld()
	bobSrc := &memSource{msgs: []memMsg{{key: "bob-0", body: msgs[0].body}, {key: "bob-1", body: msgs[0].body}}}
	bobOpts := h.opts
	bobOpts.Account, bobOpts.Name = bob, "bob"
	var during *Stats
	h.dst.beforeExpunge = func() {
		if during == nil {
			during, _ = h.runner.RunAccount(ctx, Job{Options: bobOpts,
				OpenSource: func(context.Context) (Source, error) { return bobSrc, nil }, OpenDestination: md.open})
		}
	}
	st := h.runOn(t, md)
	if during == nil {
		t.Fatal("alice's run expunged nothing")
	}
	if st.Error != "" || during.Error != "" || st.LateCopiesRemoved != 7 {
		t.Fatalf("alice: error %q, late copies removed %d; bob: error %q; want none, 7, none", st.Error, st.LateCopiesRemoved, during.Error)
	}
	if during.Matched != 1 || during.Copied != 1 {
		t.Errorf("bob: matched %d, copied %d; want 1 (alice's kept copy), 1 (her late copy was being removed)", during.Matched, during.Copied)
	}
	bodies := map[uint32]string{}
	for _, m := range h.dst.boxes["INBOX"].msgs {
		bodies[m.uid] = string(m.body)
	}
	bobs := map[string]Entry{}
	if err := ledger.Lookup(ctx, bob, []string{"bob-0", "bob-1"}, func(e Entry) error { bobs[e.Key] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bob-0", "bob-1"} {
		if e := bobs[k]; e.State != StateDone || bodies[e.DestUID] != string(msgs[0].body) {
			t.Errorf("bob's %s: %v at UID %d, which holds %d bytes of his message; want done, naming a copy there (mail lost from bob's point of view)",
				k, e.State, e.DestUID, len(bodies[e.DestUID]))
		}
	}
	if got, want := h.dst.bodies("INBOX"), sortedBodies(append(slices.Clone(msgs), msgs[0])); !slices.Equal(got, want) {
		t.Errorf("destination holds %d messages, want alice's 7 and bob's own copy", len(got))
	}
	recs, err := ledger.Resent(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := ledger.Counts(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 || counts[StateDone].Messages != 7 || counts[StateRemoving].Messages != 0 {
		t.Errorf("alice: %d resent records, %d entries done, %d removing; want 0, 7, 0 (no intent left behind)",
			len(recs), counts[StateDone].Messages, counts[StateRemoving].Messages)
	}
}

// TestLateCopyRemovalRefusesAnotherAccountsAdopt is LateCopyAdoptRace on
// the tests' in-memory ledger.
func TestLateCopyRemovalRefusesAnotherAccountsAdopt(t *testing.T) {
	lateCopyAdoptRace(t, copiesLedger{newMemLedger()}, alice, bob)
}

// bob's destination matching adopts a late duplicate copy after alice's
// run looked (racingLedger: just before her Changes.Take): the ledger
// refuses her the removal, and the copy, bob's now, stays; only her
// record of it is settled.
func TestLateCopyRemovalRefusedForAnotherAccountsCopy(t *testing.T) {
	msgs := genMessages(7)
	h := newHarness(msgs)
	h.runner.Ledger = &racingLedger{copiesLedger: copiesLedger{h.ledger}}
	h.opts.Linger = time.Minute
	h.dst.holdNext = true
	if st := h.run(t); st.Error != "" || st.Resent != 7 {
		t.Fatalf("alice's first run: error %q, resent %d; want none, 7", st.Error, st.Resent)
	}
	h.dst.landHeld()
	st := h.run(t)
	if st.Error != "" || st.LateCopiesRemoved != 6 {
		t.Fatalf("alice: error %q, late copies removed %d; want none, 6 (bob's entry names the seventh)", st.Error, st.LateCopiesRemoved)
	}
	e, ok := h.ledger.entries[bob]["bob's"]
	if !ok {
		t.Fatal("bob's entry was never written: alice recorded no intent (Changes.Take)")
	}
	found := false
	for _, m := range h.dst.boxes["INBOX"].msgs {
		found = found || m.uid == e.DestUID
	}
	if !found || len(h.dst.bodies("INBOX")) != 8 {
		t.Errorf("the late copy bob's entry names (UID %d) is there: %v; destination holds %d, want 8", e.DestUID, found, len(h.dst.bodies("INBOX")))
	}
	if n := len(h.ledger.resent[alice]); n != 0 || len(h.ledger.entries[alice]) != 7 {
		t.Errorf("alice: %d resent records, %d entries left; want 0, 7 (no intent left behind)", n, len(h.ledger.entries[alice]))
	}
}

// A run killed between the intent to remove a late copy (Changes.Take)
// and its expunge: the next run expunges it and settles the record and
// the intent, with mirror on (which settles removing entries too) or off.
func TestLateCopyRemovalCutShort(t *testing.T) {
	for _, mirror := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "mirror"}[mirror], func(t *testing.T) {
			msgs := genMessages(7)
			h := newHarness(msgs)
			h.runner.Ledger = copiesLedger{h.ledger}
			h.opts.Linger = time.Minute
			h.opts.Mirror = mirror
			h.dst.holdNext = true
			if st := h.run(t); st.Error != "" || st.Resent != 7 {
				t.Fatalf("first run: error %q, resent %d; want none, 7", st.Error, st.Resent)
			}
			h.dst.landHeld()
			h.opts.Crashpoint = func(p string) {
				if p == "late copy removing" {
					panic(crash{p})
				}
			}
			func() {
				defer func() {
					if r := recover(); r != (crash{"late copy removing"}) {
						t.Fatalf("the run did not stop at the late copy removing crashpoint: recovered %v", r)
					}
				}()
				h.run(t)
			}()
			if n := h.ledger.states(alice)[StateRemoving]; n != 7 || len(h.dst.bodies("INBOX")) != 14 {
				t.Fatalf("after the crash: %d removal intents, destination holds %d; want 7, 14", n, len(h.dst.bodies("INBOX")))
			}
			h.opts.Crashpoint = nil
			st := h.run(t)
			if st.Error != "" || st.LateCopiesRemoved != 7 || st.Removed != 0 || st.Copied != 0 {
				t.Fatalf("next run: error %q, late copies removed %d, removed %d, copied %d; want none, 7, 0, 0",
					st.Error, st.LateCopiesRemoved, st.Removed, st.Copied)
			}
			if got, want := h.dst.bodies("INBOX"), sortedBodies(msgs); !slices.Equal(got, want) {
				t.Errorf("destination holds %d messages, want the 7 once", len(got))
			}
			if n := len(h.ledger.resent[alice]); n != 0 || len(h.ledger.entries[alice]) != 7 || h.ledger.states(alice)[StateDone] != 7 {
				t.Errorf("alice: %d resent records, %d entries (%d done); want 0, 7, 7", n, len(h.ledger.entries[alice]), h.ledger.states(alice)[StateDone])
			}
		})
	}
}
