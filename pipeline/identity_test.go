package pipeline

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
)

// TestProveSource: a listing is the candidate's when at least one of its
// keys is known with the recorded size, and at least half of them are.
func TestProveSource(t *testing.T) {
	msgs := genMessages(10)
	known := func(n int, sizeDelta int64) *memLedger {
		l := newMemLedger()
		for _, m := range msgs[:n] {
			l.put(alice, Entry{Key: m.key, State: StateDone, Size: int64(len(m.body)) + sizeDelta})
		}
		return l
	}
	same := func(m SourceMessage) int64 { return m.Size }
	tests := []struct {
		name   string
		ledger *memLedger
		msgs   []memMsg
		proved bool
	}{
		{"all known", known(10, 0), msgs, true},
		{"half known", known(5, 0), msgs, true},
		{"fewer than half", known(4, 0), msgs, false},
		{"same keys, other sizes (another server's UIDLs)", known(10, 3), msgs, false},
		{"empty source cannot tell", known(10, 0), nil, false},
		{"nothing known", newMemLedger(), msgs, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ProveSource(context.Background(), &memSource{msgs: tc.msgs}, tc.ledger, alice, same)
			if err != nil || p.Proved() != tc.proved {
				t.Errorf("ProveSource = %+v, %v; proved %v, want %v", p, err, p.Proved(), tc.proved)
			}
		})
	}
	// At most ProofKeys keys are asked.
	many := genMessages(ProofKeys + 40)
	if p, _ := ProveSource(context.Background(), &memSource{msgs: many, pageSize: 100}, newMemLedger(), alice, same); p.Asked != ProofKeys {
		t.Errorf("asked %d keys, want %d", p.Asked, ProofKeys)
	}
}

// TestProveDestination: the destination holds a copy the candidate made,
// at its UID, under its UIDVALIDITY, with its size and digest.
func TestProveDestination(t *testing.T) {
	body := []byte("Message-ID: <a@b>\r\n\r\nx\r\n")
	entry := Entry{Key: "k", State: StateDone, Size: int64(len(body)), Digest: fmt.Sprintf("%x", sha256.Sum256(body)),
		DestMailbox: "INBOX", DestUIDValidity: 7, DestUID: 1}
	tests := []struct {
		name   string
		entry  *Entry
		dest   [][]byte
		proved bool
	}{
		{"the copy is there", &entry, [][]byte{body}, true},
		{"another message at that UID", &entry, [][]byte{[]byte("other\r\n")}, false},
		{"an empty destination", &entry, nil, false},
		{"no copy to look for", nil, [][]byte{body}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newMemLedger()
			if tc.entry != nil {
				l.put(alice, *tc.entry)
			}
			md := newMatchingDest()
			if tc.dest != nil {
				seedDest(md.memDest, "INBOX", tc.dest...)
			}
			dst, _ := md.open(context.Background())
			ok, err := ProveDestination(context.Background(), dst, l, alice)
			if err != nil || ok != tc.proved {
				t.Errorf("ProveDestination = %v, %v; want %v", ok, err, tc.proved)
			}
		})
	}
}
