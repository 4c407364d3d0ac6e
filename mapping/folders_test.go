package mapping

import "testing"

func TestDestFolder(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "INBOX"},
		{"INBOX", "INBOX"},
		{"inbox", "INBOX"},
		{"InBox", "INBOX"},
		{"Archive", "Archive"},
		{"inbox/Old", "inbox/Old"},
		{"INBOX.Old", "INBOX.Old"},
		{" INBOX", " INBOX"},
	}
	for _, tt := range tests {
		if got := DestFolder(tt.in); got != tt.want {
			t.Errorf("DestFolder(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
