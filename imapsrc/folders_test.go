package imapsrc

import (
	"slices"
	"testing"
)

func TestMatchFolder(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		folder  string
		want    bool
	}{
		{"exact", "Archive", "Archive", true},
		{"exact is not prefix", "Archive", "Archive/2019", false},
		{"star one level", "Archive/*", "Archive/2019", true},
		{"star does not cross slash", "Archive/*", "Archive/2019/Q1", false},
		{"star does not match parent", "Archive/*", "Archive", false},
		{"double star matches folder", "Archive/**", "Archive", true},
		{"double star matches deep", "Archive/**", "Archive/2019/Q1", true},
		{"double star not sibling", "Archive/**", "Archived", false},
		{"glob with double star", "Arch*/**", "Archived/x", true},
		{"question mark", "Folder?", "Folder1", true},
		{"class", "[ST]*", "Sent", true},
		{"inbox any case", "inbox", "INBOX", true},
		{"inbox child any case", "Inbox/Sub", "INBOX/Sub", true},
		{"non-ASCII", "Grüße", "Grüße", true},
		{"other case is other folder", "sent", "Sent", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchFolder(tt.pattern, canonInbox(tt.folder)); got != tt.want {
				t.Errorf("matchFolder(%q, %q) = %v, want %v", tt.pattern, tt.folder, got, tt.want)
			}
		})
	}
}

func TestFolderPaths(t *testing.T) {
	tests := []struct {
		name   string
		folder Folder
		prefix string
		delim  rune
		want   []string
	}{
		{"slash, no namespace", Folder{Name: "Archive/2019", Delimiter: '/'}, "", '/', []string{"Archive/2019"}},
		{"dot separator", Folder{Name: "Archive.2019", Delimiter: '.'}, "", '.', []string{"Archive/2019"}},
		{"courier namespace", Folder{Name: "INBOX.Sent", Delimiter: '.'}, "INBOX.", '.', []string{"INBOX/Sent", "Sent"}},
		{"courier inbox itself", Folder{Name: "INBOX", Delimiter: '.'}, "INBOX.", '.', []string{"INBOX"}},
		{"lower-case inbox", Folder{Name: "inbox", Delimiter: '/'}, "", '/', []string{"INBOX"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := folderPaths(tt.folder, tt.prefix, tt.delim); !slices.Equal(got, tt.want) {
				t.Errorf("folderPaths(%+v, %q, %q) = %q, want %q", tt.folder, tt.prefix, tt.delim, got, tt.want)
			}
		})
	}
}

func TestIncluded(t *testing.T) {
	folders := []Folder{
		{Name: "INBOX", Delimiter: '.'}, {Name: "INBOX.Sent", Delimiter: '.'},
		{Name: "INBOX.Archive", Delimiter: '.'}, {Name: "INBOX.Archive.2019", Delimiter: '.'},
		{Name: "INBOX.Trash", Delimiter: '.'},
	}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"all by default", nil, nil, []string{"INBOX", "INBOX.Sent", "INBOX.Archive", "INBOX.Archive.2019", "INBOX.Trash"}},
		{"include without namespace prefix", []string{"Archive/**"}, nil, []string{"INBOX.Archive", "INBOX.Archive.2019"}},
		{"exclude wins", []string{"Archive/**"}, []string{"Archive/2019"}, []string{"INBOX.Archive"}},
		{"exclude with full name", nil, []string{"INBOX/Trash", "Sent"}, []string{"INBOX", "INBOX.Archive", "INBOX.Archive.2019"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Source{opts: Options{Include: tt.include, Exclude: tt.exclude}, nsPrefix: "INBOX.", nsDelim: '.'}
			var got []string
			for _, f := range folders {
				if s.included(f) {
					got = append(got, f.Name)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("included with Include=%q Exclude=%q = %q, want %q", tt.include, tt.exclude, got, tt.want)
			}
		})
	}
}

func TestOpenRejectsBadPattern(t *testing.T) {
	_, err := Open(t.Context(), Options{Addr: "127.0.0.1:1", TLS: TLSNone, AllowPlaintext: true, Include: []string{"[a-"}})
	if err == nil {
		t.Fatal("Open with Include [a- succeeded, want a pattern error")
	}
}
