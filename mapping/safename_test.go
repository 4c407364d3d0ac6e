package mapping

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeFolderNames(t *testing.T) {
	long := strings.Repeat("Ü", 200)
	tests := []struct {
		name   string
		delim  rune
		prefix string
		want   []string
	}{
		// GNU Mailutils: Old/Archive holds mail, so it cannot have children.
		{"Old/Archive/2019", '/', "", []string{"Old_Archive_2019", "Old_Archive_2019-f6a0e7a0"}},
		// Cyrus and Courier: a "/" inside a level under "."; spaces.
		{"INBOX.a/b", '.', "INBOX.", []string{"INBOX.a_b", "INBOX.a_b-0b31cc50"}},
		{"INBOX.  Reports  2019 ", '.', "INBOX.", []string{"INBOX.Reports 2019", "INBOX.Reports 2019-c56e6bfa"}},
		{"Kunden^Alt/Q1", '/', "", []string{"Kunden_Alt/Q1", "Kunden_Alt_Q1", "Kunden_Alt_Q1-63be2c0e"}},
		// A reserved name below the top.
		{"Projects/INBOX", '/', "", []string{"Projects/INBOX_", "Projects_INBOX_", "Projects_INBOX_-d1f23af4"}},
		// A flat server.
		{"a*b", 0, "", []string{"a_b", "a_b-0ad4fe67"}},
		// Empty levels.
		{"a// /b", '/', "", []string{"a/_/_/b", "a_____b", "a_____b-1ec0a8b6"}},
	}
	for _, tt := range tests {
		got := SafeFolderNames(tt.name, tt.delim, tt.prefix)
		if len(got) != len(tt.want) {
			t.Errorf("SafeFolderNames(%q) = %q, want %q", tt.name, got, tt.want)
			continue
		}
		for i := range got {
			// The hash suffix is checked for its form; the rest exactly.
			w := tt.want[i]
			if j := strings.LastIndex(w, "-"); j > 0 && len(w)-j == 9 {
				if !strings.HasPrefix(got[i], w[:j+1]) || len(got[i]) != len(w) {
					t.Errorf("SafeFolderNames(%q)[%d] = %q, want %q…", tt.name, i, got[i], w[:j+1])
				}
				continue
			}
			if got[i] != w {
				t.Errorf("SafeFolderNames(%q)[%d] = %q, want %q", tt.name, i, got[i], w)
			}
		}
		// Stable: the same every time.
		if again := SafeFolderNames(tt.name, tt.delim, tt.prefix); !reflect.DeepEqual(again, got) {
			t.Errorf("SafeFolderNames(%q) not stable: %q then %q", tt.name, got, again)
		}
	}
	// Long names are cut at a character boundary.
	for _, n := range SafeFolderNames("INBOX."+long, '.', "INBOX.") {
		if !utf8.ValidString(n) || len(n) > len("INBOX.")+safeLevelBytes+10 {
			t.Errorf("safe name of a long folder: %q (%d bytes)", n, len(n))
		}
	}
	// Two names that clean alike get different hashed names.
	a, b := SafeFolderNames("x^y", 0, ""), SafeFolderNames("x~y", 0, "")
	if a[len(a)-1] == b[len(b)-1] {
		t.Errorf("hashed safe names collide: %q", a[len(a)-1])
	}
}

func FuzzSafeFolderNames(f *testing.F) {
	f.Add("Old/Archive/2019", "/", "")
	f.Add("INBOX.a/b", ".", "INBOX.")
	f.Fuzz(func(t *testing.T, name, delim, prefix string) {
		var d rune
		if r, _ := utf8.DecodeRuneInString(delim); delim != "" {
			d = r
		}
		for _, n := range SafeFolderNames(name, d, prefix) {
			if n == name {
				t.Fatalf("SafeFolderNames(%q) returned the name itself", name)
			}
			if len(n) >= len(prefix) && strings.EqualFold(n[:len(prefix)], prefix) {
				n = n[len(prefix):]
			}
			if d != 0 {
				n = strings.ReplaceAll(n, string(d), "") // the server's separator
			}
			if strings.ContainsAny(n, "\r\n\x00%*\"\\") {
				t.Fatalf("SafeFolderNames(%q) = %q: unsafe characters", name, n)
			}
		}
	})
}
