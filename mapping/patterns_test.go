package mapping

import (
	"errors"
	"slices"
	"testing"
)

func TestCheckFolderPattern(t *testing.T) {
	for _, ok := range []string{"INBOX", "*", "%", "Archive/%", "Entw?rfe", "[Gmail]/*", "Archive/**", "a b"} {
		if err := CheckFolderPattern(ok); err != nil {
			t.Errorf("CheckFolderPattern(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a\x00b", "Spam\r\n", "a\tb", "\xff"} {
		if err := CheckFolderPattern(bad); !errors.Is(err, ErrBadFolderOption) {
			t.Errorf("CheckFolderPattern(%q) = %v, want an error wrapping ErrBadFolderOption", bad, err)
		}
	}
	if _, err := NewFolderFilter([]string{"ok"}, []string{"x", ""}); !errors.Is(err, ErrBadFolderOption) {
		t.Errorf("NewFolderFilter with an empty exclude pattern = %v, want ErrBadFolderOption", err)
	}
}

// TestFolderFilterSelect: each documented rule, on a "/" server and on a
// "." server with the personal namespace prefix "INBOX." (Courier).
func TestFolderFilterSelect(t *testing.T) {
	slash := []string{"INBOX", "Archive", "Archive/2019", "Archive/Old", "Archive/Old/2019", "Archived", "Sent", "Spam", "Lists/go/nuts"}
	dot := []string{"INBOX", "INBOX.Archive", "INBOX.Archive.2019", "INBOX.Archive.Old", "INBOX.Archive.Old.2019", "INBOX.Archived", "INBOX.Sent", "INBOX.Spam", "INBOX.Lists.go.nuts"}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string // selected, in "/" spelling without prefix
	}{
		{"everything", nil, nil, []string{"INBOX", "Archive", "Archive/2019", "Archive/Old", "Archive/Old/2019", "Archived", "Sent", "Spam", "Lists/go/nuts"}},
		{"plain name is one folder", []string{"Archive"}, nil, []string{"Archive"}},
		{"inbox in any case", []string{"inbox"}, nil, []string{"INBOX"}},
		{"star crosses levels", []string{"Archive/*"}, nil, []string{"Archive/2019", "Archive/Old", "Archive/Old/2019"}},
		{"star in a name crosses levels", nil, []string{"Archive/Old*"}, []string{"INBOX", "Archive", "Archive/2019", "Archived", "Sent", "Spam", "Lists/go/nuts"}},
		{"percent one level", []string{"Archive/%"}, nil, []string{"Archive/2019", "Archive/Old"}},
		{"percent alone: top level", []string{"%"}, nil, []string{"INBOX", "Archive", "Archived", "Sent", "Spam"}},
		{"exclude percent", nil, []string{"Archive/%"}, []string{"INBOX", "Archive", "Archive/Old/2019", "Archived", "Sent", "Spam", "Lists/go/nuts"}},
		{"question mark one character", []string{"Archive?"}, nil, []string{"Archived"}},
		{"question mark is not empty", []string{"Sent?"}, nil, nil},
		{"exclude wins over include", []string{"Archive*"}, []string{"Archive/Old*"}, []string{"Archive", "Archive/2019", "Archived"}},
		{"case matters but for INBOX", []string{"spam"}, nil, nil},
	}
	for _, server := range []struct {
		name, prefix string
		delim        rune
		folders      []string
		spell        func(string) string // selected names back to "/" without prefix
	}{
		{"slash", "", '/', slash, func(s string) string { return s }},
		{"dot with INBOX. prefix", "INBOX.", '.', dot, func(s string) string {
			if s == "INBOX" {
				return s
			}
			return slashes(s[len("INBOX."):])
		}},
	} {
		for _, tt := range tests {
			t.Run(server.name+"/"+tt.name, func(t *testing.T) {
				f, err := NewFolderFilter(tt.include, tt.exclude)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, name := range server.folders {
					if f.Select(Folder{Name: name, Delim: server.delim}, server.prefix) == NotSkipped {
						got = append(got, server.spell(name))
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("include %q, exclude %q: selected %q, want %q", tt.include, tt.exclude, got, tt.want)
				}
			})
		}
	}
}

func slashes(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}

// TestFolderFilterForms: a pattern may use the server's separator or "/",
// with or without the namespace prefix.
func TestFolderFilterForms(t *testing.T) {
	folder := Folder{Name: "INBOX.Lists.go", Delim: '.'}
	for _, p := range []string{"INBOX.Lists.go", "INBOX/Lists/go", "Lists.go", "Lists/go", "Lists.%", "Lists/%", "inbox.Lists.*"} {
		f, err := NewFolderFilter([]string{p}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Select(folder, "INBOX."); got != NotSkipped {
			t.Errorf("include %q: Select(%q) = %v, want selected", p, folder.Name, got)
		}
	}
	f, _ := NewFolderFilter(nil, []string{"Lists.%"})
	if got := f.Select(Folder{Name: "INBOX.Lists.go.deep", Delim: '.'}, "INBOX."); got != NotSkipped {
		t.Errorf("exclude Lists.%% took a folder two levels down: %v", got)
	}
	var none *FolderFilter
	if got := none.Select(folder, ""); got != NotSkipped {
		t.Errorf("nil FolderFilter: Select = %v, want selected", got)
	}
}

func TestFolderFilterUnmatched(t *testing.T) {
	folders := []Folder{{Name: "INBOX", Delim: '/'}, {Name: "Archive/2019", Delim: '/'}, {Name: "Sent", Delim: '/'}}
	f, err := NewFolderFilter([]string{"Archive/%", "Archiv", "inbox"}, []string{"Spam", "Sent"})
	if err != nil {
		t.Fatal(err)
	}
	in, ex := f.Unmatched(folders, "")
	if !slices.Equal(in, []string{"Archiv"}) || !slices.Equal(ex, []string{"Spam"}) {
		t.Errorf("Unmatched = %q, %q; want [Archiv], [Spam]", in, ex)
	}
}
