package mapping

import (
	"strings"
	"testing"
	"time"
)

func zone(h, m int) *time.Location { return time.FixedZone("", h*3600+m*60) }

// sameTime reports whether a and b are the same instant with the same offset.
func sameTime(a, b time.Time) bool {
	_, ao := a.Zone()
	_, bo := b.Zone()
	return a.Equal(b) && ao == bo
}

func TestParseDate(t *testing.T) {
	utc := zone(0, 0)
	want := func(y int, mo time.Month, d, h, mi, s int, loc *time.Location) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, loc)
	}
	jun3 := want(2008, time.June, 3, 10, 20, 30, zone(2, 0))
	tests := []struct {
		name string
		in   string
		want time.Time // zero: must not parse
	}{
		{"rfc5322", "Tue, 3 Jun 2008 10:20:30 +0200", jun3},
		{"no weekday", "3 Jun 2008 10:20:30 +0200", jun3},
		{"two-digit day", "Tue, 03 Jun 2008 10:20:30 +0200", jun3},
		{"zone comment", "Tue, 3 Jun 2008 10:20:30 +0200 (CEST)", jun3},
		{"comment mid-date", "Tue, 3 (x) Jun 2008 10:20:30 +0200", jun3},
		{"extra whitespace", "  Tue,   3  Jun   2008   10:20:30   +0200  ", jun3},
		{"weekday without comma", "Tue 3 Jun 2008 10:20:30 +0200", jun3},
		{"no space after comma", "Tue,3 Jun 2008 10:20:30 +0200", jun3},
		{"lowercase month", "tue, 3 jun 2008 10:20:30 +0200", jun3},
		{"full month", "Tuesday, 3 June 2008 10:20:30 +0200", jun3},
		{"trailing garbage", "Tue, 3 Jun 2008 10:20:30 +0200 garbage 99", jun3},
		{"hyphenated", "3-Jun-2008 10:20:30 +0200", jun3},
		{"zone glued to time", "Tue, 3 Jun 2008 10:20:30+0200", jun3},
		{"zone with colon", "Tue, 3 Jun 2008 10:20:30 +02:00", jun3},
		{"folded cr lf", "Tue, 3 Jun 2008\r\n 10:20:30 +0200", jun3},
		{"stray cr", "Tue, 3\r Jun 2008 10:20:30 +0200", jun3},
		{"iso 8601", "2008-06-03T10:20:30+02:00", jun3},
		{"iso 8601 with space", "2008-06-03 10:20:30 +0200", jun3},
		{"missing seconds", "Tue, 3 Jun 2008 10:20 +0200", want(2008, time.June, 3, 10, 20, 0, zone(2, 0))},
		{"fractional seconds", "Tue, 3 Jun 2008 10:20:30.123 +0200", jun3},
		{"leap second", "Tue, 31 Dec 2008 23:59:60 +0000", want(2008, time.December, 31, 23, 59, 59, utc)},
		{"minus zero", "Tue, 3 Jun 2008 10:20:30 -0000", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"negative zone", "Tue, 3 Jun 2008 10:20:30 -0330", want(2008, time.June, 3, 10, 20, 30, zone(-3, -30))},
		{"GMT", "Tue, 3 Jun 2008 10:20:30 GMT", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"UT", "Tue, 3 Jun 2008 10:20:30 UT", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"EST", "Tue, 3 Jun 2008 10:20:30 EST", want(2008, time.June, 3, 10, 20, 30, zone(-5, 0))},
		{"PDT", "Tue, 3 Jun 2008 10:20:30 PDT", want(2008, time.June, 3, 10, 20, 30, zone(-7, 0))},
		{"lowercase zone", "Tue, 3 Jun 2008 10:20:30 pdt", want(2008, time.June, 3, 10, 20, 30, zone(-7, 0))},
		{"CET", "Tue, 3 Jun 2008 10:20:30 CET", want(2008, time.June, 3, 10, 20, 30, zone(1, 0))},
		{"zone name and comment", "Tue, 3 Jun 2008 10:20:30 EST (-0500)", want(2008, time.June, 3, 10, 20, 30, zone(-5, 0))},
		{"unknown zone is -0000", "Tue, 3 Jun 2008 10:20:30 XYZT", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"military zone is -0000", "Tue, 3 Jun 2008 10:20:30 A", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"missing zone", "Tue, 3 Jun 2008 10:20:30", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"asctime", "Tue Jun  3 10:20:30 2008", want(2008, time.June, 3, 10, 20, 30, utc)},
		{"asctime with zone", "Tue Jun  3 10:20:30 EDT 2008", want(2008, time.June, 3, 10, 20, 30, zone(-4, 0))},
		{"two-digit year 08", "Tue, 3 Jun 08 10:20:30 +0200", jun3},
		{"two-digit year 99", "Fri, 31 Dec 99 23:59:59 -0500", want(1999, time.December, 31, 23, 59, 59, zone(-5, 0))},
		{"two-digit year lenient path", "Tue 3 Jun 08 10:20:30 +0200", jun3},
		{"two-digit year 49 lenient", "3 Jun 49 10:20:30 +0200 x", want(2049, time.June, 3, 10, 20, 30, zone(2, 0))},
		{"two-digit year 50 lenient", "3-Jun-50 10:20:30 +0200", want(1950, time.June, 3, 10, 20, 30, zone(2, 0))},
		{"three-digit year", "Tue, 3 Jun 108 10:20:30 +0200", jun3},
		{"pm", "Tue, 3 Jun 2008 10:20:30 PM +0200", want(2008, time.June, 3, 22, 20, 30, zone(2, 0))},
		{"12 am", "Tue, 3 Jun 2008 12:20:30 AM +0200", want(2008, time.June, 3, 0, 20, 30, zone(2, 0))},
		{"no time is midnight", "3 Jun 2008", want(2008, time.June, 3, 0, 0, 0, utc)},
		{"feb 29 leap year", "29 Feb 2008 10:00:00 +0000", want(2008, time.February, 29, 10, 0, 0, utc)},

		{"empty", "", time.Time{}},
		{"garbage", "garbage", time.Time{}},
		{"no month", "3 2008 10:20:30 +0200", time.Time{}},
		{"no year", "Tue, 3 Jun 10:20:30 +0200", time.Time{}},
		{"no day", "Jun 2008 10:20:30", time.Time{}},
		{"hour 25", "Tue, 3 Jun 2008 25:20:30 +0200", time.Time{}},
		{"minute 61", "Tue, 3 Jun 2008 10:61:30 +0200", time.Time{}},
		{"feb 30", "30 Feb 2008 10:00:00 +0000", time.Time{}},
		{"feb 29 non-leap", "29 Feb 2007 10:00:00 +0000", time.Time{}},
		{"13 pm", "3 Jun 2008 13:00:00 PM", time.Time{}},
		{"bad clock", "3 Jun 2008 1:2:3:4", time.Time{}},
		{"only a comment", "(Tue, 3 Jun 2008 10:20:30 +0200)", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseDate(tt.in)
			if tt.want.IsZero() {
				if ok {
					t.Errorf("parseDate(%q) = %v, want no date", tt.in, got)
				}
				return
			}
			if !ok || !sameTime(got, tt.want) {
				t.Errorf("parseDate(%q) = %v, %v, want %v", tt.in, got, ok, tt.want)
			}
		})
	}
}

// TestParseDateIndependentOfLocal checks that a zone name is read from the
// RFC 5322 table even where time.Local knows the name with another meaning.
func TestParseDateIndependentOfLocal(t *testing.T) {
	for _, name := range []string{"America/New_York", "Europe/Berlin", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Logf("no zoneinfo for %s: %v", name, err)
			continue
		}
		saved := time.Local
		time.Local = loc
		got1, ok1 := parseDate("Tue, 3 Jun 2008 10:20:30 EST")
		got2, ok2 := parseDate("Tue, 3 Jun 2008 10:20:30 -0400")
		got3, ok3 := parseDate("Tue, 3 Jun 2008 10:20:30 EST -")
		time.Local = saved
		if want := time.Date(2008, 6, 3, 10, 20, 30, 0, zone(-5, 0)); !ok3 || !sameTime(got3, want) {
			t.Errorf("with Local=%s: parseDate(EST -) = %v, want %v", name, got3, want)
		}
		if want := time.Date(2008, 6, 3, 10, 20, 30, 0, zone(-5, 0)); !ok1 || !sameTime(got1, want) {
			t.Errorf("with Local=%s: parseDate(EST) = %v, want %v", name, got1, want)
		}
		if want := time.Date(2008, 6, 3, 10, 20, 30, 0, zone(-4, 0)); !ok2 || !sameTime(got2, want) {
			t.Errorf("with Local=%s: parseDate(-0400) = %v, want %v", name, got2, want)
		}
		if n, _ := got2.Zone(); n != "" {
			t.Errorf("with Local=%s: parseDate(-0400) zone name %q, want a fixed zone", name, n)
		}
	}
}

func TestDatePolicyRoundTrip(t *testing.T) {
	tests := []struct {
		in   string
		want DatePolicy
	}{
		{"", DateReceived},
		{"received", DateReceived},
		{" Received ", DateReceived},
		{"date", DateHeader},
		{"DATE", DateHeader},
		{"now", DateNow},
	}
	for _, tt := range tests {
		got, err := ParseDatePolicy(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDatePolicy(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, p := range []DatePolicy{DateReceived, DateHeader, DateNow} {
		var q DatePolicy
		b, _ := p.MarshalText()
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("UnmarshalText(%q) = %v, %v, want %v", b, q, err, p)
		}
	}
	for _, bad := range []string{"recieved", "header", "x"} {
		if got, err := ParseDatePolicy(bad); err == nil {
			t.Errorf("ParseDatePolicy(%q) = %v, want an error", bad, got)
		}
	}
	if got := DatePolicy(9).String(); got != "DatePolicy(9)" {
		t.Errorf("DatePolicy(9).String() = %q", got)
	}
	for s, want := range map[DateSource]string{FromReceived: "received", FromDate: "date", FromNow: "now", 7: "DateSource(7)"} {
		if got := s.String(); got != want {
			t.Errorf("DateSource(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

var testNow = time.Date(2024, time.May, 1, 12, 0, 0, 0, time.UTC)

func TestInternalDate(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, ok := parseDate(s)
		if !ok {
			t.Fatalf("parseDate(%q) failed in test setup", s)
		}
		return v
	}
	const (
		date     = "Date: Mon, 2 Jun 2008 09:00:00 -0400\r\n"
		received = "Received: from x by y with ESMTP id z; Tue, 3 Jun 2008 10:20:30 +0200 (CEST)\r\n"
	)
	tests := []struct {
		name       string
		header     string
		policy     DatePolicy
		want       time.Time
		wantSource DateSource
	}{
		{"received", received + date, DateReceived, at("Tue, 3 Jun 2008 10:20:30 +0200"), FromReceived},
		{"received folded", "Received: from x (x [1.2.3.4])\r\n\tby y with ESMTP id z\r\n\tfor <a@b>;\r\n\tTue, 3 Jun 2008 10:20:30 +0200\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:30 +0200"), FromReceived},
		{"received many semicolons", "Received: from x by y (version=TLS1_2 cipher=ECDHE; bits=256); envelope-from <a@b>; Tue, 3 Jun 2008 10:20:30 +0200\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:30 +0200"), FromReceived},
		{"semicolon in trailing comment", "Received: from x by y; Tue, 3 Jun 2008 10:20:30 +0200 (CEST; DST)\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:30 +0200"), FromReceived},
		{"qmail", "Received: (qmail 1234 invoked by uid 0); 3 Jun 2008 08:20:30 -0000\r\n",
			DateReceived, at("3 Jun 2008 08:20:30 -0000"), FromReceived},
		{"newest of several, topmost newest", "Received: by c; Tue, 3 Jun 2008 10:20:32 +0200\r\nReceived: by b; Tue, 3 Jun 2008 10:20:31 +0200\r\nReceived: by a; Tue, 3 Jun 2008 10:20:30 +0200\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:32 +0200"), FromReceived},
		{"newest of several, topmost skewed back", "Received: by c; Tue, 3 Jun 2008 07:00:00 +0200\r\nReceived: by b; Tue, 3 Jun 2008 10:20:31 +0200\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:31 +0200"), FromReceived},
		{"newest compares instants not wall clocks", "Received: by b; Tue, 3 Jun 2008 10:00:00 +0200\r\nReceived: by a; Tue, 3 Jun 2008 09:30:00 +0000\r\n",
			DateReceived, at("Tue, 3 Jun 2008 09:30:00 +0000"), FromReceived},
		{"topmost unparseable", "Received: by c; yesterday-ish\r\nReceived: by b; Tue, 3 Jun 2008 10:20:31 +0200\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:31 +0200"), FromReceived},
		{"received in the future skipped", "Received: by c; Tue, 3 Jun 2031 10:20:30 +0200\r\nReceived: by b; Tue, 3 Jun 2008 10:20:31 +0200\r\n",
			DateReceived, at("Tue, 3 Jun 2008 10:20:31 +0200"), FromReceived},
		{"received before 1970 skipped", "Received: by c; Tue, 3 Jun 1969 10:20:30 +0200\r\n" + date,
			DateReceived, at("Mon, 2 Jun 2008 09:00:00 -0400"), FromDate},
		{"received without date falls back to Date", "Received: from x by y with SMTP id z\r\n" + date,
			DateReceived, at("Mon, 2 Jun 2008 09:00:00 -0400"), FromDate},
		{"no received falls back to Date", "Subject: x\r\n" + date, DateReceived, at("Mon, 2 Jun 2008 09:00:00 -0400"), FromDate},
		{"nothing falls back to now", "Subject: x\r\n", DateReceived, testNow, FromNow},
		{"empty header", "", DateReceived, testNow, FromNow},
		{"date policy ignores received", received + date, DateHeader, at("Mon, 2 Jun 2008 09:00:00 -0400"), FromDate},
		{"date policy no Date", received, DateHeader, testNow, FromNow},
		{"garbage Date", "Date: not a date\r\n", DateHeader, testNow, FromNow},
		{"garbage then good Date", "Date: soon\r\nDate: Mon, 2 Jun 2008 09:00:00 -0400\r\n", DateHeader, at("Mon, 2 Jun 2008 09:00:00 -0400"), FromDate},
		{"two-digit year Date", "Date: Mon, 2 Jun 08 09:00:00 -0400\r\n", DateHeader, at("Mon, 2 Jun 2008 09:00:00 -0400"), FromDate},
		{"two-digit year 65 unusable under either century rule", "Date: Mon, 2 Jun 65 09:00:00 -0400\r\n", DateHeader, testNow, FromNow},
		{"Date far in the future", "Date: Mon, 2 Jun 2031 09:00:00 -0400\r\n", DateHeader, testNow, FromNow},
		{"Date within a day ahead", "Date: Thu, 2 May 2024 11:00:00 +0000\r\n", DateHeader, at("Thu, 2 May 2024 11:00:00 +0000"), FromDate},
		{"Date just over a day ahead", "Date: Thu, 2 May 2024 12:00:01 +0000\r\n", DateHeader, testNow, FromNow},
		{"Date 1970 epoch", "Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n", DateHeader, at("Thu, 1 Jan 1970 00:00:00 +0000"), FromDate},
		{"Date just before epoch", "Date: Thu, 1 Jan 1970 00:59:59 +0100\r\n", DateHeader, testNow, FromNow},
		{"Date in body ignored", "Subject: x\r\n\r\n" + date, DateHeader, testNow, FromNow},
		{"whole message lf", "Received: by a;\n Tue, 3 Jun 2008 10:20:30 +0200\nSubject: x\n\nbody\n", DateReceived, at("Tue, 3 Jun 2008 10:20:30 +0200"), FromReceived},
		{"cr only", "Received: by a;\r Tue, 3 Jun 2008 10:20:30 +0200\rSubject: x\r\rbody\r", DateReceived, at("Tue, 3 Jun 2008 10:20:30 +0200"), FromReceived},
		{"now policy", received + date, DateNow, testNow, FromNow},
		{"unknown policy", received + date, DatePolicy(42), testNow, FromNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, src := InternalDate([]byte(tt.header), tt.policy, testNow)
			if !sameTime(got, tt.want) || src != tt.wantSource {
				t.Errorf("InternalDate(%q, %v) = %v, %v, want %v, %v", tt.header, tt.policy, got, src, tt.want, tt.wantSource)
			}
		})
	}
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{
		"Tue, 3 Jun 2008 10:20:30 +0200 (CEST)",
		"Tue Jun  3 10:20:30 2008",
		"3-Jun-08 10:20 PM EST",
		"2008-06-03T10:20:30Z",
		"((((", "10:20:30-", "Jun 31 2008", "1:2", ":::::", "+", "-0000 -0000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseDate(s)
		if !ok {
			return
		}
		if got.IsZero() {
			t.Fatalf("parseDate(%q) = zero time, ok", s)
		}
		if _, off := got.Zone(); off <= -24*3600 || off >= 24*3600 {
			t.Fatalf("parseDate(%q) = %v: offset %d out of range", s, got, off)
		}
	})
}

// FuzzParseDateRoundTrip checks that every date the destination could be
// given, written the RFC 5322 way, parses back to the same instant and zone.
func FuzzParseDateRoundTrip(f *testing.F) {
	f.Add(int64(0), int16(0), false)
	f.Add(int64(1212481230), int16(120), true)
	f.Add(int64(4102444799), int16(-720), false)
	f.Fuzz(func(t *testing.T, unix int64, offMin int16, noWeekday bool) {
		if unix < 0 || unix > 4102444799 || offMin <= -24*60 || offMin >= 24*60 {
			return
		}
		in := time.Unix(unix, 0).In(time.FixedZone("", int(offMin)*60))
		layout := "Mon, 2 Jan 2006 15:04:05 -0700"
		if noWeekday {
			layout = strings.TrimPrefix(layout, "Mon, ")
		}
		s := in.Format(layout)
		got, ok := parseDate(s)
		if !ok || !sameTime(got, in) {
			t.Fatalf("parseDate(%q) = %v, %v, want %v", s, got, ok, in)
		}
	})
}

func FuzzInternalDate(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s), uint8(0))
	}
	f.Add([]byte("Received: a; Tue, 3 Jun 2008 10:20:30 +0200\r\nDate: 3 Jun 08 1:2 EST\r\n"), uint8(0))
	f.Add([]byte("Received: ;;;;;;;;;;;;;;;;;;;; 3 Jun 2008\r\n"), uint8(1))
	f.Add([]byte("Date: 99 Dec 9999 99:99:99 +9999\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, header []byte, p uint8) {
		policy := DatePolicy(p % 4)
		got, src := InternalDate(header, policy, testNow)
		if got.IsZero() {
			t.Fatalf("InternalDate(%q, %v) = zero time", header, policy)
		}
		switch src {
		case FromNow:
			if !got.Equal(testNow) {
				t.Fatalf("InternalDate(%q, %v) = %v from now, want %v", header, policy, got, testNow)
			}
		case FromReceived, FromDate:
			if policy == DateNow || (src == FromReceived && policy != DateReceived) {
				t.Fatalf("InternalDate(%q, %v) used source %v", header, policy, src)
			}
			if !usable(got, testNow) {
				t.Fatalf("InternalDate(%q, %v) = %v, outside 1970..now+1d", header, policy, got)
			}
		default:
			t.Fatalf("InternalDate(%q, %v) returned source %v", header, policy, src)
		}
	})
}
