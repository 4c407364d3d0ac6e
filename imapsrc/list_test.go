package imapsrc

import (
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestUIDChunks: a UID set is cut into chunks of n UIDs in order, without
// spelling the UIDs out, whatever its ranges look like.
func TestUIDChunks(t *testing.T) {
	tests := []struct {
		name string
		set  imap.UIDSet
		n    int
		want []string
	}{
		{"empty", nil, 3, nil},
		{"one range, exact", imap.UIDSet{{Start: 1, Stop: 6}}, 3, []string{"1:3", "4:6"}},
		{"one range, rest", imap.UIDSet{{Start: 1, Stop: 7}}, 3, []string{"1:3", "4:6", "7"}},
		{"ranges joined into a chunk", imap.UIDSet{{Start: 1, Stop: 2}, {Start: 5, Stop: 5}, {Start: 9, Stop: 12}}, 3,
			[]string{"1:2,5", "9:11", "12"}},
		{"single UIDs", imap.UIDSet{{Start: 2, Stop: 2}, {Start: 4, Stop: 4}, {Start: 8, Stop: 8}}, 2, []string{"2,4", "8"}},
		{"top of the range", imap.UIDSet{{Start: 4294967293, Stop: 4294967295}}, 2, []string{"4294967293:4294967294", "4294967295"}},
		{"huge range, few chunks", imap.UIDSet{{Start: 1, Stop: 1000000}}, 500000, []string{"1:500000", "500001:1000000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			total := 0
			for c := range uidChunks(tt.set, tt.n) {
				if c.count() > tt.n {
					t.Errorf("chunk %v has %d UIDs, more than %d", c, c.count(), tt.n)
				}
				total += c.count()
				got = append(got, imap.UIDSet(c).String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("chunks = %q, want %q", got, tt.want)
			}
			want := 0
			for _, r := range tt.set {
				want += int(r.Stop-r.Start) + 1
			}
			if total != want {
				t.Errorf("chunks hold %d UIDs, the set %d", total, want)
			}
		})
	}
}

// TestNormalizeUIDs: what a SEARCH answer holds becomes ascending,
// disjoint, merged ranges.
func TestNormalizeUIDs(t *testing.T) {
	tests := []struct {
		in   imap.UIDSet
		want string
	}{
		{nil, ""},
		{imap.UIDSet{{Start: 5, Stop: 3}}, "3:5"},
		{imap.UIDSet{{Start: 7, Stop: 7}, {Start: 1, Stop: 2}, {Start: 3, Stop: 4}}, "1:4,7"},
		{imap.UIDSet{{Start: 1, Stop: 10}, {Start: 4, Stop: 6}}, "1:10"},
	}
	for _, tt := range tests {
		if got := normalizeUIDs(tt.in).String(); got != tt.want {
			t.Errorf("normalizeUIDs(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
