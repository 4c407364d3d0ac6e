package mapping

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// DatePolicy says where a POP3 message's IMAP internal date comes from.
type DatePolicy int

const (
	// DateReceived (the default, "received") uses the newest Received:
	// timestamp, then Date:, then the time of transfer.
	DateReceived DatePolicy = iota
	// DateHeader ("date") uses Date:, then the time of transfer.
	DateHeader
	// DateNow ("now") uses the time of transfer.
	DateNow
)

// String returns the policy's config spelling: "received", "date" or "now".
func (p DatePolicy) String() string {
	switch p {
	case DateReceived:
		return "received"
	case DateHeader:
		return "date"
	case DateNow:
		return "now"
	}
	return fmt.Sprintf("DatePolicy(%d)", int(p))
}

// ParseDatePolicy parses "received", "date" or "now" (any case, surrounding
// spaces ignored); "" gives the default, DateReceived.
func ParseDatePolicy(s string) (DatePolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "received":
		return DateReceived, nil
	case "date":
		return DateHeader, nil
	case "now":
		return DateNow, nil
	}
	return DateReceived, fmt.Errorf("mapping: unknown date policy %q (want received, date or now)", s)
}

// MarshalText implements encoding.TextMarshaler (TOML, JSON).
func (p DatePolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseDatePolicy.
func (p *DatePolicy) UnmarshalText(b []byte) error {
	v, err := ParseDatePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// DateSource says where InternalDate found the date it returned; the run
// report counts messages per source.
type DateSource int

const (
	FromReceived DateSource = iota // a Received: field's timestamp
	FromDate                       // the Date: field
	FromNow                        // the time of transfer (no usable date found)
)

// String returns "received", "date" or "now".
func (s DateSource) String() string {
	switch s {
	case FromReceived:
		return "received"
	case FromDate:
		return "date"
	case FromNow:
		return "now"
	}
	return fmt.Sprintf("DateSource(%d)", int(s))
}

// maxFuture is how far past now a date may lie and still be believed: clocks
// of sending hosts drift, and time zones are sometimes wrong by hours.
const maxFuture = 24 * time.Hour

// minDate is the earliest date believed: anything before is a broken clock
// or a misparse, not a message's real age.
var minDate = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// usable reports whether t is a believable date for a message seen at now.
func usable(t, now time.Time) bool {
	return !t.Before(minDate) && !t.After(now.Add(maxFuture))
}

// InternalDate chooses the IMAP internal date for a message from its header
// (a header section or the whole message) under policy, and says where the
// date came from. now is the time of transfer, the last fallback; it is
// returned unchanged in that case, so it must not be zero.
//
// DateReceived takes the newest usable timestamp of all Received: fields.
// Each relay prepends its Received: field, so the topmost is normally the
// newest and records when the mail reached the final server; taking the
// newest of all rather than the topmost one means a final hop with an
// unparseable or implausibly old stamp does not pull the date back to an
// earlier hop or to Date:, while the one-day future limit keeps a forged or
// skewed stamp from winning by much. The timestamp follows the last ';' of
// the field (RFC 5321 §4.4); when that does not parse, the text after each
// earlier ';' is tried (a ';' inside a trailing comment).
//
// DateHeader takes the first usable Date: field. A date is usable when it
// parses (RFC 5322 §3.3 and the obsolete forms of §4.3, plus common
// malformations), is not before 1970 and is at most a day after now. The
// returned time keeps the zone offset written in the message; a zone name
// that is not known is taken as -0000, i.e. UTC (RFC 5322 §4.3).
//
// Any other policy value, DateNow included, returns now.
func InternalDate(header []byte, policy DatePolicy, now time.Time) (time.Time, DateSource) {
	switch policy {
	case DateReceived:
		if t, ok := newestReceived(header, now); ok {
			return t, FromReceived
		}
		fallthrough
	case DateHeader:
		for _, v := range Values(header, "Date") {
			if t, ok := parseDate(v); ok && usable(t, now) {
				return t, FromDate
			}
		}
	}
	return now, FromNow
}

// maxReceivedTries bounds how many ';' of one Received: field are tried, so a
// hostile field full of semicolons costs linear time.
const maxReceivedTries = 4

// newestReceived returns the newest usable Received: timestamp in header.
func newestReceived(header []byte, now time.Time) (time.Time, bool) {
	var newest time.Time
	found := false
	for _, v := range Values(header, "Received") {
		t, ok := receivedTime(v, now)
		if ok && (!found || t.After(newest)) {
			newest, found = t, true
		}
	}
	return newest, found
}

// receivedTime parses the date-time of one Received: field body.
func receivedTime(v string, now time.Time) (time.Time, bool) {
	end := len(v)
	for try := 0; try < maxReceivedTries; try++ {
		i := strings.LastIndexByte(v[:end], ';')
		if i < 0 {
			return time.Time{}, false
		}
		if t, ok := parseDate(v[i+1:]); ok && usable(t, now) {
			return t, true
		}
		end = i
	}
	return time.Time{}, false
}

// maxDateLen bounds the text parseDate looks at; real dates with a comment
// are well under 100 bytes.
const maxDateLen = 256

// parseDate parses a date-time as found in Date: and Received: fields. It
// tries net/mail.ParseDate first, then a lenient token-based parser. The
// result carries a fixed zone with the offset written in s, in whole seconds.
//
// Two-digit years: net/mail reads 69-99 as 19xx and 00-68 as 20xx, RFC 5322
// §4.3 (and parseLenient) 50-99 as 19xx. The two differ only for 50-68,
// which is before 1970 one way and decades ahead the other: unusable both.
func parseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if len(s) > maxDateLen {
		s = s[:maxDateLen]
	}
	if s == "" {
		return time.Time{}, false
	}
	// net/mail.ParseDate is used only for numeric zones: for a zone name,
	// time.Parse (Go 1.26) takes the offset from time.Local when Local knows
	// the name, and returns the time in Local, so the result would depend on
	// the machine's zone; the lenient parser reads names from a fixed table.
	if hasNumericZone(s) {
		if t, err := mailParseDate(s); err == nil {
			if _, off := t.Zone(); off > -24*3600 && off < 24*3600 {
				// A fixed zone, so that the result never carries Local;
				// whole seconds, as IMAP dates have (time.Parse takes
				// fractions the layout does not ask for).
				return t.In(time.FixedZone("", off)).Truncate(time.Second), true
			}
		}
	}
	return parseLenient(s)
}

// rfc5322Date is the layout of nearly every date in Date: and Received:
// fields, and the first one of net/mail.ParseDate's layouts a date with a
// day of the week can match.
const rfc5322Date = "Mon, 2 Jan 2006 15:04:05 -0700"

// mailParseDate is net/mail.ParseDate, which tries its 72 layouts in turn
// and allocates an error for each that does not match: a date written as
// rfc5322Date is the 25th, 5 µs and most of parsing a POP3 message's
// Received: dates (4% of mailferry's CPU on small mail). A date in that
// shape exactly (plainDate) goes to time.Parse with that one layout, which
// is what ParseDate would return; anything else, and a date time.Parse
// refuses, goes through ParseDate (TestMailParseDateMatchesNetMail).
func mailParseDate(s string) (time.Time, error) {
	if n := plainDate(s); n > 0 {
		if t, err := time.Parse(rfc5322Date, s[:n]); err == nil {
			return t, nil
		}
	}
	return mail.ParseDate(s)
}

// plainDate returns the length of the date at the start of s when s is
// exactly "Www, D[D] Mmm YYYY HH:MM:SS +HHMM" (single spaces, any letters
// for the names), optionally followed by one space and a comment of
// letters, digits and spaces in parentheses; else 0. For such an s,
// net/mail.ParseDate parses s[:n] with its layouts (the zone's sign is the
// first '+' or '-') and skips the comment.
func plainDate(s string) int {
	// Positions of "Www, " and of the fields after a one-digit day; a
	// two-digit day moves the rest one to the right.
	if len(s) < len("Mon, 2 Jan 2006 15:04:05 -0700") {
		return 0
	}
	if !isAlpha(s[0]) || !isAlpha(s[1]) || !isAlpha(s[2]) || s[3] != ',' || s[4] != ' ' || !isDigit(s[5]) {
		return 0
	}
	i := 6
	if isDigit(s[i]) {
		i++
	}
	const rest = " Jan 2006 15:04:05 -0700"
	if len(s) < i+len(rest) {
		return 0
	}
	for k := 0; k < len(rest); k++ {
		c, want := s[i+k], rest[k]
		switch {
		case want == ' ' || want == ':':
			if c != want {
				return 0
			}
		case want == '-':
			if c != '+' && c != '-' {
				return 0
			}
		case isDigit(want):
			if !isDigit(c) {
				return 0
			}
		default: // the month's letters
			if !isAlpha(c) {
				return 0
			}
		}
	}
	n := i + len(rest)
	if tail := s[n:]; tail != "" {
		if len(tail) < 3 || tail[0] != ' ' || tail[1] != '(' || tail[len(tail)-1] != ')' {
			return 0
		}
		for k := 2; k < len(tail)-1; k++ {
			if c := tail[k]; !isAlpha(c) && !isDigit(c) && c != ' ' {
				return 0
			}
		}
	}
	return n
}

// hasNumericZone reports whether s holds "+" or "-" followed by four digits.
func hasNumericZone(s string) bool {
	for i := 0; i+5 <= len(s); i++ {
		if (s[i] == '+' || s[i] == '-') && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) && isDigit(s[i+4]) {
			return true
		}
	}
	return false
}

// inZone re-reads t's wall clock in a fixed zone of off seconds east of UTC.
func inZone(t time.Time, off int) (time.Time, bool) {
	if off <= -24*3600 || off >= 24*3600 {
		return time.Time{}, false
	}
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, 0, time.FixedZone("", off)), true
}

// zones maps zone names to offsets in hours east of UTC: RFC 5322 §4.3's
// obs-zone names, plus the European and Asian names common in real mail.
// Ambiguous names (IST) are left out; unknown names mean -0000.
var zones = map[string]float64{
	"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0,
	"EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
	"MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
	"AKST": -9, "AKDT": -8, "HST": -10,
	"CET": 1, "CEST": 2, "MET": 1, "MEST": 2, "MEZ": 1, "MESZ": 2,
	"BST": 1, "WEST": 1, "EET": 2, "EEST": 3, "MSK": 3,
	"JST": 9, "KST": 9, "HKT": 8, "SGT": 8,
	"AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
}

// zoneOffset returns the offset in seconds for a zone name or a numeric zone
// ("+0200", "-0000", "+02:00", "+02"); ok is false when s is not a zone.
func zoneOffset(s string) (off int, ok bool) {
	if s == "" {
		return 0, false
	}
	if s[0] == '+' || s[0] == '-' {
		digits := strings.Replace(s[1:], ":", "", 1)
		var h, m int
		switch len(digits) {
		case 1, 2:
			h, ok = atoi(digits)
		case 4:
			var okh, okm bool
			h, okh = atoi(digits[:2])
			m, okm = atoi(digits[2:])
			ok = okh && okm
		}
		if !ok || h > 23 || m > 59 {
			return 0, false
		}
		off = h*3600 + m*60
		if s[0] == '-' {
			off = -off
		}
		return off, true
	}
	hours, ok := zones[strings.ToUpper(s)]
	return int(hours * 3600), ok
}

// atoi parses a short run of ASCII digits.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

var months = [...]string{"january", "february", "march", "april", "may", "june",
	"july", "august", "september", "october", "november", "december"}

// monthOf returns the month a name or an abbreviation of at least three
// letters stands for ("Jun", "june", "Sept"), any case.
func monthOf(s string) (time.Month, bool) {
	if len(s) < 3 {
		return 0, false
	}
	s = strings.ToLower(s)
	for i, m := range months {
		if strings.HasPrefix(m, s) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

var weekdays = [...]string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

func isWeekday(s string) bool {
	if len(s) < 3 {
		return false
	}
	s = strings.ToLower(s)
	for _, d := range weekdays {
		if strings.HasPrefix(d, s) {
			return true
		}
	}
	return false
}

// isoLayouts are the ISO 8601 shapes some broken mailers write.
var isoLayouts = [...]string{
	time.RFC3339,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 -07:00",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
}

// maxDateTokens bounds the words parseLenient looks at.
const maxDateTokens = 16

// parseLenient parses the date shapes net/mail rejects: missing or
// unpunctuated weekday, extra or missing spaces, "3-Jun-2008", full or
// lowercase month names, asctime order ("Tue Jun  3 10:20:30 2008"), a time
// without seconds or with fractions or AM/PM, 2- and 3-digit years (RFC 5322
// §4.3: 00-49 are 2000-2049, 50-999 add 1900), zone names in any case, zones
// glued to the time, comments anywhere, and trailing garbage. A missing time
// is midnight; a missing or unknown zone is UTC.
func parseLenient(s string) (time.Time, bool) {
	s = strings.TrimSpace(stripComments(s))
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			_, off := t.Zone()
			return inZone(t, off)
		}
	}
	// Turn separators into spaces: commas, and '-' or '/' that join a
	// letter to anything ("3-Jun-2008") while "-0500" keeps its sign.
	b := []byte(s)
	for i, c := range b {
		switch c {
		case ',':
			b[i] = ' '
		case '-', '/':
			if i > 0 && i+1 < len(b) && (isAlpha(b[i-1]) || isAlpha(b[i+1])) {
				b[i] = ' '
			}
		}
	}
	toks := strings.Fields(string(b))
	if len(toks) > maxDateTokens {
		toks = toks[:maxDateTokens]
	}

	var (
		month            time.Month
		day, year        = -1, -1
		hour, min, sec   = -1, 0, 0
		off              int
		haveZone, pm, am bool
	)
	for _, tok := range toks {
		switch {
		case hour < 0 && strings.IndexByte(tok, ':') > 0 && isDigit(tok[0]):
			var zone string
			var ok bool
			hour, min, sec, zone, ok = parseClock(tok)
			if !ok {
				return time.Time{}, false
			}
			if zone != "" {
				off, haveZone = zoneOffset(zone)
			}
		case isDigit(tok[0]):
			n, ok := atoi(tok)
			if !ok {
				continue
			}
			switch {
			case year < 0 && len(tok) >= 3 && len(tok) <= 4:
				year = n
				if len(tok) == 3 {
					year += 1900
				}
			case day < 0 && len(tok) <= 2 && n >= 1 && n <= 31:
				day = n
			case year < 0 && len(tok) <= 2:
				year = n + 1900
				if n < 50 {
					year = n + 2000
				}
			}
		case tok[0] == '+' || tok[0] == '-':
			if hour >= 0 && !haveZone {
				off, haveZone = zoneOffset(tok)
			}
		case isAlpha(tok[0]):
			up := strings.ToUpper(tok)
			switch {
			case up == "AM":
				am = true
			case up == "PM":
				pm = true
			case month == 0 && !isWeekday(tok):
				if m, ok := monthOf(tok); ok {
					month = m
					continue
				}
				fallthrough
			default:
				if hour >= 0 && !haveZone {
					if o, ok := zoneOffset(tok); ok {
						off, haveZone = o, true
					}
				}
			}
		}
	}
	if month == 0 || day < 0 || year < 0 {
		return time.Time{}, false
	}
	if hour < 0 {
		hour = 0
	}
	if pm || am {
		if hour < 1 || hour > 12 {
			return time.Time{}, false
		}
		if hour == 12 {
			hour = 0
		}
		if pm {
			hour += 12
		}
	}
	if sec == 60 { // a leap second; time.Date would roll over the minute
		sec = 59
	}
	if hour > 23 || min > 59 || sec > 59 || day > daysIn(month, year) {
		return time.Time{}, false
	}
	return time.Date(year, month, day, hour, min, sec, 0, time.FixedZone("", off)), true
}

// parseClock parses "hh:mm", "hh:mm:ss" or "hh:mm:ss.fff", optionally with a
// zone glued on ("10:20:30-0500", "10:20:30GMT"), which it returns as zone.
func parseClock(tok string) (hour, min, sec int, zone string, ok bool) {
	i := strings.IndexAny(tok, "+-")
	if i < 0 {
		i = strings.IndexFunc(tok, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
	}
	if i >= 0 {
		tok, zone = tok[:i], tok[i:]
	}
	if j := strings.IndexByte(tok, '.'); j >= 0 {
		if _, ok := atoi(tok[j+1:]); !ok {
			return 0, 0, 0, "", false
		}
		tok = tok[:j]
	}
	parts := strings.Split(tok, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, "", false
	}
	vals := [3]int{}
	for k, p := range parts {
		if len(p) == 0 || len(p) > 2 {
			return 0, 0, 0, "", false
		}
		v, ok := atoi(p)
		if !ok {
			return 0, 0, 0, "", false
		}
		vals[k] = v
	}
	return vals[0], vals[1], vals[2], zone, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
