package traffic

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Unit is what a rate counts.
type Unit int

const (
	Bytes    Unit = iota // bytes per second
	Messages             // messages per second
)

func (u Unit) example() string {
	if u == Messages {
		return `write a number of messages per second such as 10 or 0.5, "off" or "pause"`
	}
	return `write bytes per second such as "2M", "512k", "1.5MB" or "1048576", "off" or "pause"`
}

// Kind is what a timetable sets.
type Kind int

const (
	Off   Kind = iota // no limit
	Limit             // at most Value.Rate
	Pause             // start nothing new; what is in flight finishes
)

// Value is what a timetable sets from one time on.
type Value struct {
	Kind Kind
	Rate float64 // for Limit: per second, of the timetable's Unit
}

// String prints v as the config writes it: "off", "pause", or the rate.
func (v Value) String() string { return v.format(Bytes) }

func (v Value) format(u Unit) string {
	switch v.Kind {
	case Off:
		return "off"
	case Pause:
		return "pause"
	}
	return FormatRate(v.Rate, u)
}

// minutesPerWeek is the length of the timetable's cycle, from Monday 00:00.
const minutesPerWeek = 7 * 24 * 60

// change is a timetable entry: from minute (of the week, Monday 00:00 = 0)
// on, value holds until the next change.
type change struct {
	minute int
	value  Value
}

// Timetable is a weekly schedule of a limit: a constant ("2M", "off") or
// changes at times of given days. The zero value is no limit at any time.
type Timetable struct {
	unit    Unit
	changes []change // sorted by minute; one entry with minute -1: constant
	text    string
}

// SyntaxError is a rate or timetable that does not parse. Offset is the
// 0-based byte position of the problem in the text, so that the config can
// name the column.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("at character %d: %s", e.Offset+1, e.Msg)
}

// Constant returns the timetable that always sets v.
func Constant(v Value, u Unit) Timetable {
	return Timetable{unit: u, changes: []change{{minute: -1, value: v}}, text: v.format(u)}
}

var dayNames = map[string]int{
	"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
	"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
}

// Parse reads a rate of u or a weekly timetable of them. A timetable is
// items separated by spaces:
//
//   - days: "Mon", "Mon-Fri", "Sat-Sun", "Fri-Mon", or a comma list of
//     those ("Mon,Wed-Fri"); the times after it apply to those days (until
//     the next days item); before any days item, to every day;
//   - "HH:MM,VALUE": from that time on those days, VALUE holds;
//   - "VALUE" alone: from 00:00 on those days (a timetable of one VALUE and
//     nothing else is a constant).
//
// A VALUE is a rate ("2M", "512k", "1.5MB/s" for bytes; "10", "0.5" for
// messages), "off" (no limit) or "pause". At any time the value of the
// latest change at or before it holds, going back across days and the
// week: "Mon-Fri 08:00,2M 18:00,off" limits weekdays from 08:00 to 18:00
// and nothing else. Days are English names or their three-letter forms,
// in any case.
func Parse(text string, u Unit) (Timetable, error) {
	tt := Timetable{unit: u, text: text}
	type item struct {
		s   string
		pos int
	}
	var items []item
	for i := 0; i < len(text); {
		if text[i] == ' ' || text[i] == '\t' {
			i++
			continue
		}
		j := i
		for j < len(text) && text[j] != ' ' && text[j] != '\t' {
			j++
		}
		items = append(items, item{text[i:j], i})
		i = j
	}
	if len(items) == 0 {
		return tt, &SyntaxError{Offset: 0, Msg: "empty: " + u.example()}
	}
	if len(items) == 1 && !startsWithDigitColon(items[0].s) && !isDays(items[0].s) {
		v, err := parseValue(items[0].s, u, items[0].pos)
		if err != nil {
			return tt, err
		}
		if v.Kind == Pause {
			return tt, &SyntaxError{Offset: items[0].pos, Msg: "pause at all times would never copy anything: pause in a timetable, e.g. \"Mon-Fri 08:00,pause 18:00,off\""}
		}
		tt.changes = []change{{minute: -1, value: v}}
		return tt, nil
	}
	days := []int{0, 1, 2, 3, 4, 5, 6}
	set := map[int]int{} // minute of the week -> position of the item that set it
	for _, it := range items {
		if isDays(it.s) {
			d, err := parseDays(it.s, it.pos)
			if err != nil {
				return tt, err
			}
			days = d
			continue
		}
		at, valText, valPos := 0, it.s, it.pos
		if clock, rest, ok := strings.Cut(it.s, ","); ok || startsWithDigitColon(it.s) {
			if !ok {
				return tt, &SyntaxError{Offset: it.pos + len(it.s), Msg: fmt.Sprintf("%q: a time needs a value after a comma, as in %q", it.s, "08:00,2M")}
			}
			m, err := parseClock(clock, it.pos)
			if err != nil {
				return tt, err
			}
			at, valText, valPos = m, rest, it.pos+len(clock)+1
		}
		v, err := parseValue(valText, u, valPos)
		if err != nil {
			return tt, err
		}
		for _, d := range days {
			m := d*24*60 + at
			if _, dup := set[m]; dup {
				return tt, &SyntaxError{Offset: it.pos, Msg: fmt.Sprintf("%s %02d:%02d is set twice", dayTitle(d), at/60, at%60)}
			}
			set[m] = it.pos
			tt.changes = append(tt.changes, change{minute: m, value: v})
		}
	}
	if len(tt.changes) == 0 {
		return tt, &SyntaxError{Offset: items[len(items)-1].pos, Msg: "days without a time or value after them: write for example \"Sat-Sun off\""}
	}
	sort.Slice(tt.changes, func(i, j int) bool { return tt.changes[i].minute < tt.changes[j].minute })
	if !slices.ContainsFunc(tt.changes, func(c change) bool { return c.value.Kind != Pause }) {
		return tt, &SyntaxError{Offset: 0, Msg: "the timetable pauses at all times and would never copy anything"}
	}
	return tt, nil
}

// startsWithDigitColon reports whether s starts like a time ("8:" or "08:").
func startsWithDigitColon(s string) bool {
	i := 0
	for i < len(s) && i < 3 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 0 && i < len(s) && s[i] == ':'
}

// isDays reports whether s is meant as days: it starts with a letter and
// is not a value word.
func isDays(s string) bool {
	if s == "" {
		return false
	}
	c := s[0] | 0x20
	if c < 'a' || c > 'z' {
		return false
	}
	switch strings.ToLower(s) {
	case "off", "pause", "unlimited":
		return false
	}
	return true
}

func parseDays(s string, pos int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	off := 0
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok := dayNames[strings.ToLower(from)]
		if !ok {
			return nil, &SyntaxError{Offset: pos + off, Msg: fmt.Sprintf("%q is not a day or a value: write days as Mon, Mon-Fri or Sat-Sun", from)}
		}
		b := a
		if isRange {
			if b, ok = dayNames[strings.ToLower(to)]; !ok {
				return nil, &SyntaxError{Offset: pos + off + len(from) + 1, Msg: fmt.Sprintf("%q is not a day: write days as Mon, Mon-Fri or Sat-Sun", to)}
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
			if d == b {
				break
			}
		}
		off += len(part) + 1
	}
	return out, nil
}

func parseClock(s string, pos int) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || len(h) > 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, &SyntaxError{Offset: pos, Msg: fmt.Sprintf("%q is not a time of day: write HH:MM from 00:00 to 23:59", s)}
	}
	return hh*60 + mm, nil
}

func parseValue(s string, u Unit, pos int) (Value, error) {
	switch strings.ToLower(s) {
	case "off", "unlimited":
		return Value{Kind: Off}, nil
	case "pause":
		return Value{Kind: Pause}, nil
	case "":
		return Value{}, &SyntaxError{Offset: pos, Msg: "a value is missing: " + u.example()}
	}
	r, err := parseRate(s, u, pos)
	if err != nil {
		return Value{}, err
	}
	return Value{Kind: Limit, Rate: r}, nil
}

func dayTitle(d int) string { return [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}[d] }

// String is the timetable as it was written (or the constant's value).
func (t Timetable) String() string {
	if t.text == "" {
		return "off"
	}
	return t.text
}

// Unit is what the timetable's rates count.
func (t Timetable) Unit() Unit { return t.unit }

// IsZero reports whether t never limits or pauses anything.
func (t Timetable) IsZero() bool {
	for _, c := range t.changes {
		if c.value.Kind != Off {
			return false
		}
	}
	return true
}

// At returns the value in effect at now (read in now's location) and
// when it may change next; next is zero for a constant.
func (t Timetable) At(now time.Time) (v Value, next time.Time) {
	if len(t.changes) == 0 {
		return Value{Kind: Off}, time.Time{}
	}
	if t.changes[0].minute < 0 {
		return t.changes[0].value, time.Time{}
	}
	m := minuteOfWeek(now)
	// The latest change at or before m, going back across the week.
	i := sort.Search(len(t.changes), func(i int) bool { return t.changes[i].minute > m }) - 1
	if i < 0 {
		v = t.changes[len(t.changes)-1].value
	} else {
		v = t.changes[i].value
	}
	n := t.changes[(i+1)%len(t.changes)].minute
	return v, atMinute(now, n)
}

// minuteOfWeek is now's minute of its week, Monday 00:00 = 0, by the wall
// clock of now's location.
func minuteOfWeek(now time.Time) int {
	wd := (int(now.Weekday()) + 6) % 7 // Monday = 0
	return wd*24*60 + now.Hour()*60 + now.Minute()
}

// atMinute is the first time after now whose wall clock (in now's
// location) is minute m of the week.
func atMinute(now time.Time, m int) time.Time {
	cur := minuteOfWeek(now)
	days := (m/(24*60) - cur/(24*60) + 7) % 7
	if m <= cur {
		if days == 0 {
			days = 7
		}
	}
	y, mo, d := now.Date()
	t := time.Date(y, mo, d+days, (m%(24*60))/60, m%60, 0, 0, now.Location())
	if !t.After(now) { // a DST jump folded the wall clock back
		t = now.Add(time.Minute).Truncate(time.Minute)
	}
	return t
}
