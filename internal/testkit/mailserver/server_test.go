package mailserver

import "testing"

func TestStripHeaders(t *testing.T) {
	tests := []struct {
		name, in, want string
		drop           []string
	}{
		{"none", "A: 1\r\n\r\nX-UID: body\r\n", "A: 1\r\n\r\nX-UID: body\r\n", []string{"X-UID"}},
		{"one", "A: 1\r\nX-UID: 2\r\nB: 3\r\n\r\nbody", "A: 1\r\nB: 3\r\n\r\nbody", []string{"x-uid"}},
		{"folded", "X-IMAPbase: 1\r\n  2\r\nA: 1\r\n\r\n", "A: 1\r\n\r\n", []string{"X-IMAPbase"}},
		{"keeps other folds", "A: 1\r\n 2\r\nStatus: RO\r\n\r\n", "A: 1\r\n 2\r\n\r\n", []string{"Status"}},
		{"no body", "A: 1\r\nStatus: O\r\n", "A: 1\r\n", []string{"Status"}},
		{"body untouched", "A: 1\n\nStatus: O\n", "A: 1\n\nStatus: O\n", []string{"Status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(StripHeaders([]byte(tt.in), tt.drop)); got != tt.want {
				t.Errorf("StripHeaders(%q, %v) = %q, want %q", tt.in, tt.drop, got, tt.want)
			}
		})
	}
}
