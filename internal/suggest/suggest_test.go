package suggest

import (
	"strings"
	"testing"
)

func TestClosest(t *testing.T) {
	folders := []string{"INBOX", "Sent", "Drafts", "Trash", "Projects", "Projects/2024", "Archive"}
	tests := []struct {
		name string
		in   string
		cand []string
		want []string
	}{
		{"one letter wrong", "Projekts", folders, []string{"Projects"}},
		{"one letter missing", "INBX", folders, []string{"INBOX"}},
		{"case only", "sent", folders, []string{"Sent"}},
		{"nothing close", "Quarterly reports", folders, nil},
		{"nearest first", "Trsh", []string{"Trash2", "Trash"}, []string{"Trash", "Trash2"}},
		{"a flag", "dry-rn", []string{"dry-run", "json", "delete-source"}, []string{"dry-run"}},
		{"a short flag two edits off", "jsno", []string{"json", "state"}, []string{"json"}},
		{"at most n", "a", []string{"b", "c", "d", "e"}, []string{"b", "c", "d"}},
		{"duplicates once", "Sent", []string{"sent", "sent"}, []string{"sent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Closest(tc.in, tc.cand, 3)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"Straße", "Strasse", 2}, {"same", "same", 0},
	}
	for _, tc := range tests {
		if got := distance([]rune(tc.a), []rune(tc.b)); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{{nil, ""}, {[]string{"a"}, `"a"`}, {[]string{"a", "b", "c"}, `"a", "b" or "c"`}} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzClosest(f *testing.F) {
	f.Add("Projekts", "Projects")
	f.Fuzz(func(t *testing.T, a, b string) {
		if d := distance([]rune(a), []rune(b)); d != distance([]rune(b), []rune(a)) || d > max(len([]rune(a)), len([]rune(b))) {
			t.Errorf("distance(%q, %q) = %d: not symmetric or too large", a, b, d)
		}
		got := Closest(a, []string{b}, 1)
		if len(got) > 1 {
			t.Errorf("Closest returned %d names, want at most 1", len(got))
		}
	})
}
