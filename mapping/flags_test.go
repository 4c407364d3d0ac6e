package mapping

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseFlagPolicy(t *testing.T) {
	tests := []struct {
		in   string
		want FlagPolicy
	}{
		{"", FlagsNone},
		{"none", FlagsNone},
		{"seen", FlagsSeen},
		{" SEEN ", FlagsSeen},
		{"status", FlagsStatusHeader},
	}
	for _, tt := range tests {
		got, err := ParseFlagPolicy(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFlagPolicy(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, p := range []FlagPolicy{FlagsNone, FlagsSeen, FlagsStatusHeader} {
		var q FlagPolicy
		b, _ := p.MarshalText()
		if err := q.UnmarshalText(b); err != nil || q != p {
			t.Errorf("UnmarshalText(%q) = %v, %v, want %v", b, q, err, p)
		}
	}
	for _, bad := range []string{"read", "x-status", "all"} {
		if got, err := ParseFlagPolicy(bad); err == nil {
			t.Errorf("ParseFlagPolicy(%q) = %v, want an error", bad, got)
		}
	}
	if got := FlagPolicy(7).String(); got != "FlagPolicy(7)" {
		t.Errorf("FlagPolicy(7).String() = %q", got)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name   string
		header string
		policy FlagPolicy
		want   []string
	}{
		{"none ignores status", "Status: RO\r\n", FlagsNone, nil},
		{"seen", "Subject: x\r\n", FlagsSeen, []string{`\Seen`}},
		{"seen without header", "", FlagsSeen, []string{`\Seen`}},
		{"status read old", "Status: RO\r\n", FlagsStatusHeader, []string{`\Seen`}},
		{"status old only", "Status: O\r\n", FlagsStatusHeader, nil},
		{"status new", "Status: N\r\n", FlagsStatusHeader, nil},
		{"no status fields", "Subject: x\r\n", FlagsStatusHeader, nil},
		{"x-status all", "Status: RO\r\nX-Status: AFTD\r\n", FlagsStatusHeader,
			[]string{`\Seen`, `\Answered`, `\Flagged`, `\Draft`}}, // D is never \Deleted
		{"x-status answered", "X-Status: A\r\n", FlagsStatusHeader, []string{`\Answered`}},
		{"fixed order", "X-Status: FA\r\nStatus: OR\r\n", FlagsStatusHeader, []string{`\Seen`, `\Answered`, `\Flagged`}},
		{"lowercase letters and names", "status: ro\r\nx-status: f\r\n", FlagsStatusHeader, []string{`\Seen`, `\Flagged`}},
		{"empty fields", "Status:\r\nX-Status:\r\n", FlagsStatusHeader, nil},
		{"duplicates merged", "Status: R\r\nStatus: R\r\n", FlagsStatusHeader, []string{`\Seen`}},
		{"in body ignored", "Subject: x\r\n\r\nStatus: RO\r\n", FlagsStatusHeader, nil},
		{"other fields ignored", "X-Status-Extra: R\r\nSubject: RAFTD\r\n", FlagsStatusHeader, nil},
		{"unknown policy", "Status: RO\r\n", FlagPolicy(9), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Flags([]byte(tt.header), tt.policy); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Flags(%q, %v) = %q, want %q", tt.header, tt.policy, got, tt.want)
			}
		})
	}
}

func TestValidKeyword(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`\Seen`, true},
		{`\seen`, true},
		{`\Answered`, true},
		{`\Flagged`, true},
		{`\Deleted`, true},
		{`\Draft`, true},
		{`\Recent`, false},
		{`\*`, false},
		{`\Important`, false},
		{`\`, false},
		{`$Forwarded`, true},
		{`$MDNSent`, true},
		{`NonJunk`, true},
		{`Old-Label_1.2`, true},
		{`a+b=c`, true},
		{`[x`, true},
		{``, false},
		{`two words`, false},
		{`tab	x`, false},
		{`paren(`, false},
		{`paren)`, false},
		{`brace{`, false},
		{`pct%`, false},
		{`star*`, false},
		{`quote"`, false},
		{`back\slash`, false},
		{`bracket]`, false},
		{"ctl\x01", false},
		{"del\x7f", false},
		{"nul\x00", false},
		{"caf\xc3\xa9", false},
	}
	for _, tt := range tests {
		if got := ValidKeyword(tt.in); got != tt.want {
			t.Errorf("ValidKeyword(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCleanFlags(t *testing.T) {
	tests := []struct {
		name        string
		flags       []string
		permanent   []string
		kept, dropd []string
	}{
		{"nil", nil, nil, nil, nil},
		{"recent always dropped", []string{`\Recent`, `\Seen`}, nil, []string{`\Seen`}, []string{`\Recent`}},
		{"recent dropped even if permanent", []string{`\Recent`}, []string{`\Recent`, `\*`}, nil, []string{`\Recent`}},
		{"invalid dropped", []string{`$Junk`, `bad word`, `\Bogus`, ``}, nil, []string{`$Junk`}, []string{`bad word`, `\Bogus`, ``}},
		{"nil permanent keeps all valid", []string{`\Seen`, `\Deleted`, `$Label1`}, nil, []string{`\Seen`, `\Deleted`, `$Label1`}, nil},
		{"star allows keywords", []string{`\Seen`, `$Label1`, `Work`}, []string{`\Seen`, `\*`}, []string{`\Seen`, `$Label1`, `Work`}, nil},
		{"star does not allow unlisted system flags", []string{`\Seen`, `\Draft`}, []string{`\Seen`, `\*`}, []string{`\Seen`}, []string{`\Draft`}},
		{"no star drops unlisted keywords", []string{`\Seen`, `$Label1`, `Work`}, []string{`\Seen`, `Work`}, []string{`\Seen`, `Work`}, []string{`$Label1`}},
		{"empty permanent drops everything", []string{`\Seen`, `Work`}, []string{}, nil, []string{`\Seen`, `Work`}},
		{"case-insensitive match", []string{`\SEEN`, `work`}, []string{`\Seen`, `WORK`}, []string{`\Seen`, `work`}, nil},
		{"duplicates once", []string{`\Seen`, `\seen`, `Work`, `WORK`}, nil, []string{`\Seen`, `Work`}, nil},
		{"duplicate dropped once", []string{`a b`, `a b`}, nil, nil, []string{`a b`}},
		{"order kept", []string{`Z`, `\Flagged`, `A`}, nil, []string{`Z`, `\Flagged`, `A`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, dropped := CleanFlags(tt.flags, tt.permanent)
			if !reflect.DeepEqual(kept, tt.kept) || !reflect.DeepEqual(dropped, tt.dropd) {
				t.Errorf("CleanFlags(%q, %q) = %q, %q, want %q, %q", tt.flags, tt.permanent, kept, dropped, tt.kept, tt.dropd)
			}
		})
	}
}

func FuzzCleanFlags(f *testing.F) {
	f.Add(`\Seen \Recent Work`, `\Seen \*`, true)
	f.Add(`a b c`, ``, false)
	f.Fuzz(func(t *testing.T, flags, permanent string, havePerm bool) {
		fs := strings.Split(flags, " ")
		var perm []string
		if havePerm {
			perm = strings.Split(permanent, " ")
		}
		kept, dropped := CleanFlags(fs, perm)
		for _, k := range kept {
			if !ValidKeyword(k) || strings.EqualFold(k, `\Recent`) {
				t.Fatalf("CleanFlags(%q, %q) kept %q", fs, perm, k)
			}
		}
		if len(kept)+len(dropped) > len(fs) {
			t.Fatalf("CleanFlags(%q, %q) = %q, %q: more out than in", fs, perm, kept, dropped)
		}
	})
}

func TestSameFlags(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
		want bool
	}{
		{"both empty", nil, []string{}, true},
		{"system flag in another case", []string{`\SEEN`, `\answered`}, []string{`\Seen`, `\Answered`}, true},
		{"keyword in another case", []string{`$Label`}, []string{`$label`}, true},
		{"keyword all upper", []string{`NonJunk`, `$Forwarded`}, []string{`$FORWARDED`, `NONJUNK`}, true},
		{"recent ignored on one side", []string{`\Recent`, `\Seen`}, []string{`\Seen`}, true},
		{"recent in any case", []string{`\RECENT`}, nil, true},
		{"order", []string{`\Flagged`, `\Seen`, `$a`}, []string{`$a`, `\Seen`, `\Flagged`}, true},
		{"repeated in another case", []string{`$Label`, `$LABEL`}, []string{`$label`}, true},
		{"other keyword", []string{`$Label1`}, []string{`$Label2`}, false},
		{"missing system flag", []string{`\Seen`, `\Flagged`}, []string{`\Seen`}, false},
		{"extra keyword", []string{`\Seen`}, []string{`\Seen`, `$Junk`}, false},
		{"keyword is not the system flag", []string{`Seen`}, []string{`\Seen`}, false},
		{"recent is not seen", []string{`\Recent`}, []string{`\Seen`}, false},
		{"only ASCII folds", []string{"$\u212a"}, []string{"$k"}, false}, // KELVIN SIGN
	}
	for _, tt := range tests {
		if got := SameFlags(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: SameFlags(%q, %q) = %v, want %v", tt.name, tt.a, tt.b, got, tt.want)
		}
		if got := SameFlags(tt.b, tt.a); got != tt.want {
			t.Errorf("%s: SameFlags(%q, %q) = %v, want %v", tt.name, tt.b, tt.a, got, tt.want)
		}
	}
}
