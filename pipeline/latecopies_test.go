package pipeline

import (
	"context"
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
	if n := len(h.ledger.resent); n != 7 {
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
	for k, e := range h.ledger.entries["alice"] {
		if e.State != StateDone || !kept[e.DestUID] {
			t.Errorf("entry %s: state %v, UID %d not on the destination", k, e.State, e.DestUID)
		}
	}
	if n := len(h.ledger.resent); n != 0 {
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
	if n := h.ledger.states("alice")[StateDone]; n != 7 {
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
				for _, e := range h.ledger.entries["alice"] {
					e.Account, e.DestUID = "bob", e.DestUID+7
					h.ledger.Put(context.Background(), []Entry{e})
				}
			},
			land: true, wantRecords: 7, wantBodies: 14,
		},
		{
			name:        "a destination without UIDPLUS keeps the duplicate and says so",
			setup:       func(h *harness) { h.dst.noUIDPlus = true },
			land:        true,
			wantKept:    7,
			wantRecords: 7, wantBodies: 14,
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
			for k, e := range h.ledger.entries["alice"] {
				found := false
				for _, m := range h.dst.boxes["INBOX"].msgs {
					found = found || m.uid == e.DestUID
				}
				if e.State != StateDone || !found {
					t.Errorf("entry %s: state %v, its UID %d is not on the destination", k, e.State, e.DestUID)
				}
			}
			if n := len(h.ledger.resent); n != tc.wantRecords {
				t.Errorf("%d resent records left, want %d", n, tc.wantRecords)
			}
			if n := len(h.dst.bodies("INBOX")); n != tc.wantBodies {
				t.Errorf("destination holds %d, want %d", n, tc.wantBodies)
			}
		})
	}
}
