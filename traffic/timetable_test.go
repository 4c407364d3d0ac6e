package traffic

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConstants(t *testing.T) {
	tests := []struct {
		in   string
		u    Unit
		want Value
	}{
		{"2M", Bytes, Value{Limit, 2e6}},
		{"2MB", Bytes, Value{Limit, 2e6}},
		{"2MB/s", Bytes, Value{Limit, 2e6}},
		{"512k", Bytes, Value{Limit, 512e3}},
		{"1.5MiB", Bytes, Value{Limit, 1.5 * (1 << 20)}},
		{"1048576", Bytes, Value{Limit, 1048576}},
		{"off", Bytes, Value{Kind: Off}},
		{"OFF", Bytes, Value{Kind: Off}},
		{"10", Messages, Value{Limit, 10}},
		{"0.5", Messages, Value{Limit, 0.5}},
		{" 10/s ", Messages, Value{Limit, 10}},
		{"off", Messages, Value{Kind: Off}},
	}
	for _, tt := range tests {
		tab, err := Parse(tt.in, tt.u)
		if err != nil {
			t.Errorf("Parse(%q) error: %v", tt.in, err)
			continue
		}
		if got, next := tab.At(time.Now()); got != tt.want || !next.IsZero() {
			t.Errorf("Parse(%q).At = %v, %v; want %v, zero", tt.in, got, next, tt.want)
		}
	}
}

// TestParseErrors: each mistake is reported at its character.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		in     string
		u      Unit
		offset int
		msg    string
	}{
		{"", Bytes, 0, "empty"},
		{"2X", Bytes, 1, `unknown unit "x"`},
		{"fast", Bytes, 0, `"fast" is not a day or a value`},
		{"-2M", Bytes, 0, "is not a rate"},
		{"0", Bytes, 0, "must be above 0"},
		{"2M", Messages, 1, "not a number of messages"},
		{"pause", Bytes, 0, "pause at all times"},
		{"Mon-Fri 08:00,2M 18:00,off Sat-Sun of", Bytes, 35, `"of" is not a day or a value`},
		{"Mon-Fri 08:00,2M 25:00,off", Bytes, 17, `"25:00" is not a time of day`},
		{"Mon-Fri 08:00,2M 18:0,off", Bytes, 17, `"18:0" is not a time of day`},
		{"Mon-Fri 08:00,2Q 18:00,off", Bytes, 15, `unknown unit "q"`},
		{"Mon-Fry 08:00,2M", Bytes, 4, `"Fry" is not a day`},
		{"Mon-Fri 08:00", Bytes, 13, "needs a value after a comma"},
		{"Mon-Fri 08:00,", Bytes, 14, "a value is missing"},
		{"08:00,1M Mon 08:00,2M", Bytes, 13, "Mon 08:00 is set twice"},
		{"Mon-Fri 08:00,pause Sat-Sun pause", Bytes, 0, "pauses at all times"},
		{"Sat-Sun", Bytes, 0, "days without a time or value"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in, tt.u)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a *SyntaxError", tt.in, err)
			continue
		}
		if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Parse(%q) = offset %d %q; want offset %d and %q", tt.in, se.Offset, se.Msg, tt.offset, tt.msg)
		}
	}
}

func TestTimetableAt(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	tab, err := Parse("Mon-Fri 08:00,2M 18:00,off Sat-Sun 10:00,pause 12:00,off", Bytes)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-12-07 is a Monday.
	tests := []struct {
		now  string
		want Value
		next string
	}{
		{"2026-12-07 07:59", Value{Kind: Off}, "2026-12-07 08:00"},
		{"2026-12-07 08:00", Value{Limit, 2e6}, "2026-12-07 18:00"},
		{"2026-12-07 17:59", Value{Limit, 2e6}, "2026-12-07 18:00"},
		{"2026-12-07 18:00", Value{Kind: Off}, "2026-12-08 08:00"},
		{"2026-12-11 20:00", Value{Kind: Off}, "2026-12-12 10:00"}, // Friday evening
		{"2026-12-12 10:30", Value{Kind: Pause}, "2026-12-12 12:00"},
		{"2026-12-13 23:00", Value{Kind: Off}, "2026-12-14 08:00"}, // Sunday night: back across the week
		{"2026-12-07 00:00", Value{Kind: Off}, "2026-12-07 08:00"},
	}
	for _, tt := range tests {
		v, next := tab.At(at(tt.now))
		if v != tt.want || !next.Equal(at(tt.next)) {
			t.Errorf("At(%s) = %v, %s; want %v, %s", tt.now, v, next.Format("2006-01-02 15:04"), tt.want, tt.next)
		}
	}
	// Across the change to summer time (2027-03-28 02:00 → 03:00): a
	// change at 08:00 is 08:00 by the wall clock.
	daily, _ := Parse("08:00,1M 20:00,off", Bytes)
	_, next := daily.At(at("2027-03-27 21:00"))
	if want := at("2027-03-28 08:00"); !next.Equal(want) {
		t.Errorf("next change across DST = %v, want %v", next, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"2M", "off", "Mon-Fri 08:00,2M 18:00,off Sat-Sun off", "0.5", "Fri-Mon,Wed 23:59,pause 00:00,1k", "08:00,1"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, messages bool) {
		u := Bytes
		if messages {
			u = Messages
		}
		tab, err := Parse(s, u)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("Parse(%q) = %v: not a *SyntaxError within the text", s, err)
			}
			return
		}
		now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		for i := 0; i < 20; i++ {
			v, next := tab.At(now)
			if v.Kind == Limit && !(v.Rate > 0) {
				t.Fatalf("Parse(%q).At(%v) = a limit of %v", s, now, v.Rate)
			}
			if next.IsZero() {
				break
			}
			if !next.After(now) || next.Sub(now) > 8*24*time.Hour {
				t.Fatalf("Parse(%q).At(%v): next change %v", s, now, next)
			}
			now = next
		}
	})
}
