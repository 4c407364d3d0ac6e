package imapdst

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name string
		line string
		want response
	}{
		{"continuation", "+ go ahead", response{Tag: "+", Text: "go ahead"}},
		{"bare continuation", "+", response{Tag: "+"}},
		{"tagged OK with code", "A7 OK [APPENDUID 7 10:11,13] done", response{Tag: "A7", Status: "OK", Code: "APPENDUID", CodeArg: "7 10:11,13", Text: "done"}},
		{"tagged NO lower case", "a1 no [toobig] too big", response{Tag: "a1", Status: "NO", Code: "TOOBIG", Text: "too big"}},
		{"tagged OK without text", "A1 OK", response{Tag: "A1", Status: "OK"}},
		{"code without text", "A1 NO [OVERQUOTA]", response{Tag: "A1", Status: "NO", Code: "OVERQUOTA"}},
		{"unclosed bracket is text", "A1 NO [oops", response{Tag: "A1", Status: "NO", Text: "[oops"}},
		{"untagged BYE", "* BYE [UNAVAILABLE] shutting down", response{Tag: "*", Status: "BYE", Code: "UNAVAILABLE", Text: "shutting down"}},
		{"exists", "* 23 EXISTS", response{Tag: "*", Num: 23, HasNum: true, Kind: "EXISTS"}},
		{"capability", "* CAPABILITY IMAP4rev1 LITERAL+", response{Tag: "*", Kind: "CAPABILITY", Rest: "IMAP4rev1 LITERAL+"}},
		{"alert", "* OK [ALERT] disk full", response{Tag: "*", Status: "OK", Code: "ALERT", Text: "disk full"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseResponse(tc.line)
			if err != nil {
				t.Fatalf("parseResponse(%q): %v", tc.line, err)
			}
			tc.want.Line = tc.line
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseResponse(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "A1", "A+1 OK x", "A1 BYE x", "A1 FOO bar", "* ", "A{1 OK"} {
		if _, err := parseResponse(bad); err == nil {
			t.Errorf("parseResponse(%q) succeeded, want an error", bad)
		}
	}
}

func TestReadResponseSkipsLiterals(t *testing.T) {
	in := "* 1 FETCH (BODY[] {5}\r\nhello FLAGS (\\Seen))\r\nA1 OK done\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	r, err := readResponse(br)
	if err != nil {
		t.Fatalf("readResponse: %v", err)
	}
	if r.Kind != "FETCH" || r.Line != "* 1 FETCH (BODY[] {5}[5 bytes] FLAGS (\\Seen))" {
		t.Errorf("first response = %+v", r)
	}
	r, err = readResponse(br)
	if err != nil || r.Tag != "A1" || r.Status != "OK" {
		t.Errorf("second response = %+v, %v; want A1 OK", r, err)
	}
	if _, err := readResponse(bufio.NewReader(strings.NewReader("* 1 FETCH (BODY[] {50}\r\nshort"))); err == nil {
		t.Error("readResponse of a cut literal succeeded")
	}
}

// TestReadResponseFraming: only untagged data carries literals (RFC 3501
// §7, §9: resp-text has none), so a "{n}" ending a status response, a
// tagged reply or a continuation request is text, and the next line is the
// next response. Before this was so, "A1 NO too many {5}" swallowed the
// reply after it and the appender waited for its idle timeout.
func TestReadResponseFraming(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each response's Line
	}{
		{"tagged NO ending in {n}", "A1 NO [LIMIT] too many {5}\r\nA2 OK done\r\n",
			[]string{"A1 NO [LIMIT] too many {5}", "A2 OK done"}},
		{"tagged OK ending in {n}", "A1 OK [APPENDUID 7 3] saved {0}\r\nA2 OK done\r\n",
			[]string{"A1 OK [APPENDUID 7 3] saved {0}", "A2 OK done"}},
		{"tagged BAD ending in {n}", "A7 BAD what is {12}\r\n* 3 EXISTS\r\n",
			[]string{"A7 BAD what is {12}", "* 3 EXISTS"}},
		{"untagged OK ending in {n}", "* OK [ALERT] quota at {90}\r\nA1 OK done\r\n",
			[]string{"* OK [ALERT] quota at {90}", "A1 OK done"}},
		{"untagged NO ending in {n}", "* NO disk {1}\r\nA1 OK done\r\n",
			[]string{"* NO disk {1}", "A1 OK done"}},
		{"untagged BAD ending in {n}", "* BAD junk {3}\r\nA1 OK done\r\n",
			[]string{"* BAD junk {3}", "A1 OK done"}},
		{"BYE ending in {n}", "* BYE shutting down {2}\r\nA1 OK done\r\n",
			[]string{"* BYE shutting down {2}", "A1 OK done"}},
		{"lower-case status", "* bye later {4}\r\na1 ok done\r\n",
			[]string{"* bye later {4}", "a1 ok done"}},
		{"continuation ending in {n}", "+ send {5}\r\nA1 OK done\r\n",
			[]string{"+ send {5}", "A1 OK done"}},
		{"untagged data keeps its literal", "* 1 FETCH (BODY[] {5}\r\nA1 OK)\r\nA1 OK done\r\n",
			[]string{"* 1 FETCH (BODY[] {5}[5 bytes])", "A1 OK done"}},
		{"untagged LIST with a literal name", "* LIST () \"/\" {4}\r\nA1 N\r\nA1 OK done\r\n",
			[]string{"* LIST () \"/\" {4}[4 bytes]", "A1 OK done"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			for i, want := range tc.want {
				r, err := readResponse(br)
				if err != nil || r.Line != want {
					t.Fatalf("readResponse(%q) #%d = %q, %v; want %q", tc.in, i+1, r.Line, err, want)
				}
			}
			if rest, _ := br.Peek(1); len(rest) > 0 {
				t.Errorf("readResponse(%q) left %q unread", tc.in, rest)
			}
		})
	}
}

func TestParseAppendUID(t *testing.T) {
	tests := []struct {
		name     string
		arg      string
		n        int
		validity uint32
		uids     []uint32
		wantErr  bool
	}{
		{"single", "7 42", 1, 7, []uint32{42}, false},
		{"set with range", "7 10:11,13", 3, 7, []uint32{10, 11, 13}, false},
		{"reversed range", "9 5:3", 3, 9, []uint32{3, 4, 5}, false},
		{"max uid", "1 4294967295", 1, 1, []uint32{4294967295}, false},
		{"too few", "7 10:11", 3, 0, nil, true},
		{"too many", "7 1:4294967295", 50, 0, nil, true},
		{"zero uid", "7 0", 1, 0, nil, true},
		{"zero validity", "0 5", 1, 0, nil, true},
		{"leading zero", "7 05", 1, 0, nil, true},
		{"star", "7 5:*", 2, 0, nil, true},
		{"missing set", "7", 1, 0, nil, true},
		{"empty item", "7 1,,2", 2, 0, nil, true},
		{"overflow", "7 4294967296", 1, 0, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, uids, err := parseAppendUID(tc.arg, tc.n)
			if tc.wantErr {
				if err == nil {
					t.Errorf("parseAppendUID(%q, %d) = %d, %v; want an error", tc.arg, tc.n, v, uids)
				}
				return
			}
			if err != nil || v != tc.validity || !reflect.DeepEqual(uids, tc.uids) {
				t.Errorf("parseAppendUID(%q, %d) = %d, %v, %v; want %d, %v", tc.arg, tc.n, v, uids, err, tc.validity, tc.uids)
			}
		})
	}
}

func TestCapsAppendLimit(t *testing.T) {
	tests := []struct {
		caps string
		want int64
	}{
		{"IMAP4rev1 APPENDLIMIT=35651584", 35651584},
		{"IMAP4rev1 APPENDLIMIT", 0},
		{"IMAP4rev1", 0},
		{"APPENDLIMIT=x", 0},
	}
	for _, tc := range tests {
		if got := parseCaps(tc.caps).appendLimit(); got != tc.want {
			t.Errorf("parseCaps(%q).appendLimit() = %d, want %d", tc.caps, got, tc.want)
		}
	}
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"A1 OK [APPENDUID 7 10:11,13] done\r\n",
		"* BYE [UNAVAILABLE] bye\r\n",
		"+ go\r\n",
		"* 1 FETCH (BODY[] {5}\r\nhello)\r\n",
		"* CAPABILITY IMAP4rev1 LITERAL+ APPENDLIMIT=100\r\n",
		"A1 NO [\r\n",
		"* 4294967296 EXISTS\r\n",
		"{99999999999}\r\n",
		"A1 NO [LIMIT] too many {5}\r\nA2 OK done\r\n",
		"* OK [ALERT] note {3}\r\nabc\r\n",
		"* BYE bye {2}\r\nA1 OK\r\n",
		"+ {2}\r\nA1 OK\r\n",
		"* LIST () \"/\" {3}\r\nabc\r\n",
		"* 2 FETCH (BODY[] {0}\r\n)\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := readResponse(bufio.NewReader(strings.NewReader(string(data))))
		if err != nil {
			return
		}
		if r.Tag == "" {
			t.Fatalf("readResponse(%q) = %+v with empty tag", data, r)
		}
		// resp-text has no literals (RFC 3501 §7.1): a status response,
		// tagged reply or continuation request is exactly one line.
		first, _, _ := strings.Cut(string(data), "\n")
		if first = strings.TrimSuffix(first, "\r"); (r.Status != "" || r.Tag != "*") && r.Line != first {
			t.Fatalf("readResponse(%q) = %+v: a status response or continuation spanning more than its line %q", data, r, first)
		}
		if r.Status != "" && r.Kind != "" {
			t.Fatalf("readResponse(%q) = %+v: both status and data", data, r)
		}
		if r.Code == "APPENDUID" {
			_, uids, err := parseAppendUID(r.CodeArg, 3)
			if err == nil && len(uids) != 3 {
				t.Fatalf("parseAppendUID(%q, 3) = %v", r.CodeArg, uids)
			}
		}
	})
}

func FuzzParseUIDSet(f *testing.F) {
	for _, s := range []string{"1", "10:11,13", "5:3", "1:4294967295", "0", "1,,2", "4294967295:4294967294"} {
		f.Add(s, 5)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1000 {
			return
		}
		uids, err := parseUIDSet(s, max)
		if err != nil {
			return
		}
		if len(uids) == 0 || len(uids) > max {
			t.Fatalf("parseUIDSet(%q, %d) = %d UIDs", s, max, len(uids))
		}
		for _, u := range uids {
			if u == 0 {
				t.Fatalf("parseUIDSet(%q, %d) = %v: contains 0", s, max, uids)
			}
		}
	})
}
