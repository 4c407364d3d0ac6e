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

func TestRootTop(t *testing.T) {
	tests := []struct {
		name string
		opts FolderOptions
		want string
	}{
		{"no root", FolderOptions{}, ""},
		{"one level", FolderOptions{Root: "Old"}, "Old"},
		{"two levels", FolderOptions{Root: "Old/2019"}, "Old"},
		{"the destination's separator", FolderOptions{Root: "Old.2019", DestDelim: '.'}, "Old"},
		{"under INBOX", FolderOptions{Root: "inbox/Old"}, "INBOX"},
		{"with a namespace prefix", FolderOptions{Root: "Old", DestDelim: '.', DestPrefix: "INBOX."}, "INBOX.Old"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewFolderMap(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.RootTop(); got != tc.want {
				t.Errorf("RootTop() = %q, want %q", got, tc.want)
			}
		})
	}
}
