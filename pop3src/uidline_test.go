package pop3src

import (
	"context"
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
	"github.com/mailferry/mailferry/pipeline"
)

var uidLines = []string{
	"1 0000000165d6f1f0",
	"500000 0007A12065D6F1F0",
	"7 whatever.id-with:punct~",
	"  3   spaced  ",
	"3\tu3",
	"3 u3 extra",
	"3 ",
	" 3 u3",
	"0 u0",
	"-1 u",
	"+4 u4",
	"0005 u5",
	"1234567890123456789 long",
	"123456789012345678 u18",
	"9223372036854775808 overflow",
	"x u",
	"12",
	"",
	"5 caf\xc3\xa9",
	"5 a\x00b",
	"6 u\u00a0v",
}

// TestParseUIDLine: the usual "n uidl" line and every unusual one parse
// as strings.Fields splits them (parseUIDFields, parseUIDLine as it was
// before its fast path).
func TestParseUIDLine(t *testing.T) {
	for _, line := range uidLines {
		got, ok := parseUIDLine(line)
		want, wantOK := parseUIDFields(line)
		if got != want || ok != wantOK {
			t.Errorf("parseUIDLine(%q) = %+v, %v; want %+v, %v", line, got, ok, want, wantOK)
		}
		n, uid, ok := parseUID([]byte(line))
		if n != got.Number || string(uid) != got.UID || ok != wantOK {
			t.Errorf("parseUID(%q bytes) = %d, %q, %v; want %+v, %v", line, n, uid, ok, got, wantOK)
		}
	}
	if u, ok := parseUIDLine("42 0000002A65D6F1F0"); !ok || u.Number != 42 || u.UID != "0000002A65D6F1F0" {
		t.Errorf("parseUIDLine of a Dovecot line = %+v, %v", u, ok)
	}
}

func FuzzParseUIDLine(f *testing.F) {
	for _, line := range uidLines {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, ok := parseUIDLine(line)
		want, wantOK := parseUIDFields(line)
		if got != want || ok != wantOK {
			t.Errorf("parseUIDLine(%q) = %+v, %v; want %+v, %v", line, got, ok, want, wantOK)
		}
		// The bytes of the line (what the listing reads) parse alike.
		n, uid, ok := parseUID([]byte(line))
		if n != got.Number || string(uid) != got.UID || ok != wantOK {
			t.Errorf("parseUID(%q bytes) = %d, %q, %v; want %+v, %v", line, n, uid, ok, got, wantOK)
		}
	})
}

// TestSourceSharedUIDLAmongAscending: a listing whose UIDLs ascend but
// for one shared by neighbours (the hashes are sorted only when the
// UIDLs do not ascend throughout) still keys the two by content, in the
// summary as in the listing.
func TestSourceSharedUIDLAmongAscending(t *testing.T) {
	uidls := []string{"u1", "u2", "u3", "u3", "u4"}
	var msgs []pop3fake.Message
	for i, u := range uidls {
		msgs = append(msgs, pop3fake.Message{UIDL: u, Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))})
	}
	srv := startFake(t, pop3fake.Options{Messages: msgs, Pipelining: true})
	s := open(t, plainOptions(srv))
	ctx := context.Background()
	if sum, ok, err := s.ListSummary(ctx, false); !ok || err != nil || sum.Messages != len(msgs) {
		t.Fatalf("ListSummary = %+v, %v, %v", sum, ok, err)
	}
	all, err := pipeline.ListAll(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"u1", "u2", "u3#" + digestKey(msgs[2].Body), "u3#" + digestKey(msgs[3].Body), "u4"}
	if len(all) != len(want) {
		t.Fatalf("listed %d, want %d", len(all), len(want))
	}
	for i, m := range all {
		if m.Key != want[i] {
			t.Errorf("message %d: key %q, want %q", i+1, m.Key, want[i])
		}
	}
}
