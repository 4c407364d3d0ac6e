package mapping

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFolderMapLookup(t *testing.T) {
	dovecotDest := []Folder{
		{Name: "INBOX", Delim: '/'},
		{Name: "Sent", Delim: '/', Attrs: []string{`\HasNoChildren`, `\Sent`}},
		{Name: "Drafts", Delim: '/', Attrs: []string{`\Drafts`}},
		{Name: "Trash", Delim: '/', Attrs: []string{`\Trash`}},
		{Name: "Junk", Delim: '/', Attrs: []string{`\Junk`}},
	}
	exchangeDest := []Folder{
		{Name: "INBOX", Delim: '/'},
		{Name: "Gesendete Elemente", Delim: '/'},
		{Name: "Gelöschte Elemente", Delim: '/'},
		{Name: "Junk-E-Mail", Delim: '/', Attrs: []string{`\Junk`}},
	}
	courierDest := []Folder{
		{Name: "INBOX", Delim: '.'},
		{Name: "INBOX.Sent", Delim: '.', Attrs: []string{`\Sent`}},
		{Name: "INBOX.Papierkorb", Delim: '.'},
	}
	gmailDest := []Folder{
		{Name: "INBOX", Delim: '/'},
		{Name: "[Gmail]", Delim: '/', Attrs: []string{`\Noselect`}},
		{Name: "[Gmail]/Sent Mail", Delim: '/', Attrs: []string{`\Sent`}},
		{Name: "[Gmail]/All Mail", Delim: '/', Attrs: []string{`\All`}},
		{Name: "[Gmail]/Trash", Delim: '/', Attrs: []string{`\Trash`}},
	}
	courier := FolderOptions{SourcePrefix: "INBOX."}
	toCourier := FolderOptions{DestDelim: '.', DestPrefix: "INBOX.", DestFolders: courierDest}
	type tc struct {
		name string
		opts FolderOptions
		src  Folder
		want Target
	}
	tests := []tc{
		// Separators and namespace prefixes.
		{"dovecot to dovecot keeps name", FolderOptions{}, Folder{Name: "Projects/2024/Q1", Delim: '/'}, Target{Name: "Projects/2024/Q1", Rule: -1}},
		{"courier to dovecot strips INBOX. and translates", courier, Folder{Name: "INBOX.Projects.2024", Delim: '.'}, Target{Name: "Projects/2024", Rule: -1}},
		{"courier INBOX.Sent to dovecot Sent", FolderOptions{SourcePrefix: "INBOX.", DestFolders: dovecotDest}, Folder{Name: "INBOX.Sent", Delim: '.'}, Target{Name: "Sent", SpecialUse: UseSent, Rule: -1}},
		{"courier INBOX stays INBOX", courier, Folder{Name: "INBOX", Delim: '.'}, Target{Name: "INBOX", Rule: -1}},
		{"lower-case inbox prefix", courier, Folder{Name: "inbox.Work", Delim: '.'}, Target{Name: "Work", Rule: -1}},
		{"slash inside a level on a dot source escaped", courier, Folder{Name: "INBOX.a/b.c", Delim: '.'}, Target{Name: "a_b/c", Rule: -1}},
		{"dot inside a level on a slash source escaped for a dot dest", toCourier, Folder{Name: "v1.2/notes", Delim: '/'}, Target{Name: "INBOX.v1_2.notes", Rule: -1}},
		{"dovecot to courier adds prefix", toCourier, Folder{Name: "Projects/2024", Delim: '/'}, Target{Name: "INBOX.Projects.2024", Rule: -1}},
		{"dovecot INBOX to courier", toCourier, Folder{Name: "inbox", Delim: '/'}, Target{Name: "INBOX", Rule: -1}},
		{"INBOX child without prefix keeps INBOX parent", FolderOptions{DestDelim: '.'}, Folder{Name: "Inbox/Lists", Delim: '/'}, Target{Name: "INBOX.Lists", Rule: -1}},
		{"INBOX child to courier not prefixed twice", toCourier, Folder{Name: "INBOX/Lists", Delim: '/'}, Target{Name: "INBOX.Lists", Rule: -1}},
		{"flat source", FolderOptions{}, Folder{Name: "a.b/c", Delim: 0}, Target{Name: "a.b_c", Rule: -1}},
		{"underscore dest separator escapes with dash", FolderOptions{DestDelim: '_'}, Folder{Name: "my_box/x", Delim: '/'}, Target{Name: "my-box_x", Rule: -1}},
		{"non-ASCII names", courier, Folder{Name: "INBOX.Entwürfe alt.Übersicht", Delim: '.'}, Target{Name: "Entwürfe alt/Übersicht", Rule: -1}},
		{"cyrillic name", FolderOptions{DestDelim: '.'}, Folder{Name: "Работа/Отчёты", Delim: '/'}, Target{Name: "Работа.Отчёты", Rule: -1}},
		{"ampersand kept", FolderOptions{}, Folder{Name: "R&D", Delim: '/'}, Target{Name: "R&D", Rule: -1}},

		// Special use by attribute.
		{"attr maps to dest attr folder", FolderOptions{DestFolders: gmailDest}, Folder{Name: "Sent", Delim: '/', Attrs: []string{`\Sent`}}, Target{Name: "[Gmail]/Sent Mail", SpecialUse: UseSent, Rule: -1}},
		{"gmail sent to dovecot", FolderOptions{DestFolders: dovecotDest, SourceMarksSpecialUse: true}, Folder{Name: "[Gmail]/Sent Mail", Delim: '/', Attrs: []string{`\HasNoChildren`, `\Sent`}}, Target{Name: "Sent", SpecialUse: UseSent, Rule: -1}},
		{"gmail trash to dest without it gets default name", FolderOptions{DestFolders: exchangeDest[:1]}, Folder{Name: "[Gmail]/Bin", Delim: '/', Attrs: []string{`\Trash`}}, Target{Name: "Trash", SpecialUse: UseTrash, Rule: -1}},
		{"attr case-insensitive", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Brouillons", Delim: '/', Attrs: []string{`\DRAFTS`}}, Target{Name: "Drafts", SpecialUse: UseDrafts, Rule: -1}},
		{"dest found by well-known name", FolderOptions{DestFolders: exchangeDest}, Folder{Name: "Sent", Delim: '/', Attrs: []string{`\Sent`}}, Target{Name: "Gesendete Elemente", SpecialUse: UseSent, Rule: -1}},
		{"dest attr beats dest name", FolderOptions{DestFolders: append([]Folder{{Name: "Spam", Delim: '/'}}, exchangeDest...)}, Folder{Name: "Junk", Delim: '/', Attrs: []string{`\Junk`}}, Target{Name: "Junk-E-Mail", SpecialUse: UseJunk, Rule: -1}},
		{"courier dest by attr", toCourier, Folder{Name: "Sent Items", Delim: '/', Attrs: []string{`\Sent`}}, Target{Name: "INBOX.Sent", SpecialUse: UseSent, Rule: -1}},
		{"courier dest by name under prefix", toCourier, Folder{Name: "Deleted Items", Delim: '/'}, Target{Name: "INBOX.Papierkorb", SpecialUse: UseTrash, Rule: -1}},
		{"courier dest default name under prefix", toCourier, Folder{Name: "Spam", Delim: '/'}, Target{Name: "INBOX.Junk", SpecialUse: UseJunk, Rule: -1}},
		{"archive", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Archives", Delim: '/', Attrs: []string{`\Archive`}}, Target{Name: "Archive", SpecialUse: UseArchive, Rule: -1}},

		// Special use by name.
		{"german sent", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Gesendete Objekte", Delim: '/'}, Target{Name: "Sent", SpecialUse: UseSent, Rule: -1}},
		{"french sent", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Éléments envoyés", Delim: '/'}, Target{Name: "Sent", SpecialUse: UseSent, Rule: -1}},
		{"french trash", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Corbeille", Delim: '/'}, Target{Name: "Trash", SpecialUse: UseTrash, Rule: -1}},
		{"german trash to exchange", FolderOptions{DestFolders: exchangeDest}, Folder{Name: "Papierkorb", Delim: '/'}, Target{Name: "Gelöschte Elemente", SpecialUse: UseTrash, Rule: -1}},
		{"outlook junk", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Junk E-mail", Delim: '/'}, Target{Name: "Junk", SpecialUse: UseJunk, Rule: -1}},
		{"courier INBOX.Drafts by name", FolderOptions{SourcePrefix: "INBOX.", DestFolders: dovecotDest}, Folder{Name: "INBOX.Drafts", Delim: '.'}, Target{Name: "Drafts", SpecialUse: UseDrafts, Rule: -1}},
		{"gmail sent by name", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "[Gmail]/Sent Mail", Delim: '/'}, Target{Name: "Sent", SpecialUse: UseSent, Rule: -1}},
		{"nested well-known name is ordinary", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Projects/Sent", Delim: '/'}, Target{Name: "Projects/Sent", Rule: -1}},
		{"names not guessed when source marks", FolderOptions{DestFolders: dovecotDest, SourceMarksSpecialUse: true}, Folder{Name: "Sent Items", Delim: '/'}, Target{Name: "Sent Items", Rule: -1}},
		{"NoSpecialUse keeps name", FolderOptions{DestFolders: dovecotDest, NoSpecialUse: true}, Folder{Name: "Sent Items", Delim: '/', Attrs: []string{`\Sent`}}, Target{Name: "Sent Items", Rule: -1}},
		{"child of special folder translated", FolderOptions{DestFolders: dovecotDest}, Folder{Name: "Sent Items/2019", Delim: '/'}, Target{Name: "Sent Items/2019", Rule: -1}},

		// Virtual and unselectable folders.
		{"gmail all mail skipped", FolderOptions{}, Folder{Name: "[Gmail]/All Mail", Delim: '/', Attrs: []string{`\All`}}, Target{Rule: -1, Skip: SkipVirtual}},
		{"gmail starred skipped by name", FolderOptions{}, Folder{Name: "[Gmail]/Starred", Delim: '/'}, Target{Rule: -1, Skip: SkipVirtual}},
		{"gmail important skipped", FolderOptions{}, Folder{Name: "[Gmail]/Important", Delim: '/', Attrs: []string{`\Important`}}, Target{Rule: -1, Skip: SkipVirtual}},
		{"virtual kept when asked", FolderOptions{KeepVirtual: true}, Folder{Name: "[Gmail]/All Mail", Delim: '/', Attrs: []string{`\All`}}, Target{Name: "[Gmail]/All Mail", Rule: -1}},
		{"gmail all mail is the archive", FolderOptions{AllIsArchive: true, DestFolders: dovecotDest}, Folder{Name: "[Gmail]/All Mail", Delim: '/', Attrs: []string{`\All`}}, Target{Name: "Archive", SpecialUse: `\Archive`, Rule: -1}},
		{"the archive by name when the source does not mark it", FolderOptions{AllIsArchive: true}, Folder{Name: "[Gmail]/All Mail", Delim: '/'}, Target{Name: "Archive", SpecialUse: `\Archive`, Rule: -1}},
		{"starred stays virtual with AllIsArchive", FolderOptions{AllIsArchive: true}, Folder{Name: "[Gmail]/Starred", Delim: '/', Attrs: []string{`\Flagged`}}, Target{Rule: -1, Skip: SkipVirtual}},
		{"noselect skipped", FolderOptions{}, Folder{Name: "[Gmail]", Delim: '/', Attrs: []string{`\NoSelect`, `\HasChildren`}}, Target{Rule: -1, Skip: SkipNoSelect}},
		{"nonexistent skipped", FolderOptions{}, Folder{Name: "x", Delim: '/', Attrs: []string{`\NonExistent`}}, Target{Rule: -1, Skip: SkipNoSelect}},

		// Root.
		{"root puts INBOX under it", FolderOptions{Root: "Old/"}, Folder{Name: "INBOX", Delim: '/'}, Target{Name: "Old/INBOX", Rule: -1}},
		{"root keeps special folder names", FolderOptions{Root: "Old", DestFolders: dovecotDest}, Folder{Name: "Sent Items", Delim: '/', Attrs: []string{`\Sent`}}, Target{Name: "Old/Sent Items", Rule: -1}},
		{"nested root on dot dest with prefix", FolderOptions{Root: "Migrated/2024", DestDelim: '.', DestPrefix: "INBOX.", SourcePrefix: "INBOX."}, Folder{Name: "INBOX.a.b", Delim: '.'}, Target{Name: "INBOX.Migrated.2024.a.b", Rule: -1}},
		{"root with INBOX child", FolderOptions{Root: "Old"}, Folder{Name: "inbox/x", Delim: '/'}, Target{Name: "Old/INBOX/x", Rule: -1}},

		// Rules.
		{"exact rule", FolderOptions{Rules: []FolderRule{{From: "Stuff", To: "Archive/Stuff"}}}, Folder{Name: "Stuff", Delim: '/'}, Target{Name: "Archive/Stuff", Rule: 0}},
		{"exact rule on relative name, dest separator", FolderOptions{SourcePrefix: "INBOX.", DestDelim: '.', Rules: []FolderRule{{From: "Old Mail", To: "Archive/Old"}}}, Folder{Name: "INBOX.Old Mail", Delim: '.'}, Target{Name: "Archive.Old", Rule: 0}},
		{"exact rule needs exact name", FolderOptions{Rules: []FolderRule{{From: "Stuff", To: "X"}}}, Folder{Name: "Stuff/Sub", Delim: '/'}, Target{Name: "Stuff/Sub", Rule: -1}},
		{"regexp rule with group", FolderOptions{Rules: []FolderRule{{From: `^Archives/(\d{4})$`, To: "Archive/$1", Regexp: true}}}, Folder{Name: "Archives/2019", Delim: '/'}, Target{Name: "Archive/2019", Rule: 0}},
		{"first matching rule wins", FolderOptions{Rules: []FolderRule{{From: "^Z", To: "Zed", Regexp: true}, {From: "^A.*", To: "First", Regexp: true}, {From: "^Ab.*", To: "Second", Regexp: true}}}, Folder{Name: "Abc", Delim: '/'}, Target{Name: "First", Rule: 1}},
		{"unanchored regexp replaces only the match", FolderOptions{Rules: []FolderRule{{From: "Old", To: "Archive", Regexp: true}}}, Folder{Name: "Older/Old", Delim: '/'}, Target{Name: "Archiveer/Archive", Rule: 0}},
		{"rule beats special use", FolderOptions{DestFolders: dovecotDest, Rules: []FolderRule{{From: "Sent Items", To: "Old Sent"}}}, Folder{Name: "Sent Items", Delim: '/', Attrs: []string{`\Sent`}}, Target{Name: "Old Sent", Rule: 0}},
		{"rule result gets dest prefix", FolderOptions{DestDelim: '.', DestPrefix: "INBOX.", Rules: []FolderRule{{From: "a", To: "b/c"}}}, Folder{Name: "a", Delim: '/'}, Target{Name: "INBOX.b.c", Rule: 0}},
		{"rule to INBOX", FolderOptions{DestPrefix: "INBOX/", Rules: []FolderRule{{From: "Posteingang", To: "inbox"}}}, Folder{Name: "Posteingang", Delim: '/'}, Target{Name: "INBOX", Rule: 0}},

		// Include and exclude.
		{"exclude exact", FolderOptions{Exclude: []string{"Trash"}}, Folder{Name: "Trash", Delim: '/'}, Target{Rule: -1, Skip: SkipExcluded}},
		{"exclude star matches children", FolderOptions{Exclude: []string{"Archive/*"}}, Folder{Name: "Archive/2019/Q1", Delim: '/'}, Target{Rule: -1, Skip: SkipExcluded}},
		{"exclude star leaves parent", FolderOptions{Exclude: []string{"Archive/*"}}, Folder{Name: "Archive", Delim: '/'}, Target{Name: "Archive", SpecialUse: UseArchive, Rule: -1}},
		{"exclude percent one level", FolderOptions{Exclude: []string{"Archive/%"}}, Folder{Name: "Archive/2019/Q1", Delim: '/'}, Target{Name: "Archive/2019/Q1", Rule: -1}},
		{"exclude pattern with slash on a dot source", FolderOptions{SourcePrefix: "INBOX.", Exclude: []string{"Lists/*"}}, Folder{Name: "INBOX.Lists.go", Delim: '.'}, Target{Rule: -1, Skip: SkipExcluded}},
		{"exclude full name on a dot source", FolderOptions{SourcePrefix: "INBOX.", Exclude: []string{"INBOX.Lists.%"}}, Folder{Name: "INBOX.Lists.go", Delim: '.'}, Target{Rule: -1, Skip: SkipExcluded}},
		{"exclude inbox any case", FolderOptions{Exclude: []string{"inbox"}}, Folder{Name: "INBOX", Delim: '/'}, Target{Rule: -1, Skip: SkipExcluded}},
		{"include only", FolderOptions{Include: []string{"INBOX", "Work*"}}, Folder{Name: "Private", Delim: '/'}, Target{Rule: -1, Skip: SkipNotIncluded}},
		{"include matches", FolderOptions{Include: []string{"INBOX", "Work*"}}, Folder{Name: "Work/Clients", Delim: '/'}, Target{Name: "Work/Clients", Rule: -1}},
		{"exclude wins over include", FolderOptions{Include: []string{"Work*"}, Exclude: []string{"*/Old"}}, Folder{Name: "Work/Old", Delim: '/'}, Target{Rule: -1, Skip: SkipExcluded}},
		{"exclude is case-sensitive but for INBOX", FolderOptions{Exclude: []string{"trash"}}, Folder{Name: "Trash", Delim: '/'}, Target{Name: "Trash", SpecialUse: UseTrash, Rule: -1}},
		{"exclude non-ASCII with question mark", FolderOptions{Exclude: []string{"Entw?rfe"}}, Folder{Name: "Entwürfe", Delim: '/'}, Target{Rule: -1, Skip: SkipExcluded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewFolderMap(tt.opts)
			if err != nil {
				t.Fatalf("NewFolderMap: %v", err)
			}
			got := m.Lookup(tt.src)
			if got != tt.want {
				t.Errorf("Lookup(%+v) = %+v, want %+v", tt.src, got, tt.want)
			}
			name, ok := m.Map(tt.src)
			if name != tt.want.Name || ok != (tt.want.Skip == NotSkipped) {
				t.Errorf("Map(%+v) = %q, %v; want %q, %v", tt.src, name, ok, tt.want.Name, tt.want.Skip == NotSkipped)
			}
		})
	}
}

func TestNewFolderMapErrors(t *testing.T) {
	tests := []struct {
		name string
		opts FolderOptions
		want string
	}{
		{"bad regexp", FolderOptions{Rules: []FolderRule{{From: "(", To: "x", Regexp: true}}}, "folder rule 1"},
		{"empty from", FolderOptions{Rules: []FolderRule{{From: "a", To: "b"}, {To: "x"}}}, "folder rule 2"},
		{"empty to", FolderOptions{Rules: []FolderRule{{From: "a", To: "/"}}}, "folder rule 1"},
		{"empty root", FolderOptions{Root: "//"}, "root"},
		{"empty pattern", FolderOptions{Exclude: []string{""}}, "empty folder pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFolderMap(tt.opts)
			if !errors.Is(err, ErrBadFolderOption) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewFolderMap(%+v) = %v, want ErrBadFolderOption mentioning %q", tt.opts, err, tt.want)
			}
		})
	}
}

func TestSpecialUseOf(t *testing.T) {
	tests := []struct {
		name, folder string
		attrs        []string
		want         string
	}{
		{"attribute", "Whatever", []string{`\HasNoChildren`, `\Sent`}, UseSent},
		{"attribute any case", "x", []string{`\junk`}, UseJunk},
		{"attribute beats name", "Trash", []string{`\Archive`}, UseArchive},
		{"first attribute wins", "x", []string{`\All`, `\Flagged`}, UseAll},
		{"sent", "Sent", nil, UseSent},
		{"sent items", "sent items", nil, UseSent},
		{"sent messages", "Sent Messages", nil, UseSent},
		{"german", "Gesendete Elemente", nil, UseSent},
		{"german objects", "Gesendete Objekte", nil, UseSent},
		{"french", "Envoyés", nil, UseSent},
		{"french items", "Éléments envoyés", nil, UseSent},
		{"spanish", "Elementos enviados", nil, UseSent},
		{"italian", "Posta inviata", nil, UseSent},
		{"dutch", "Verzonden items", nil, UseSent},
		{"swedish", "Skickat", nil, UseSent},
		{"polish", "Wysłane", nil, UseSent},
		{"russian", "Отправленные", nil, UseSent},
		{"gmail sent", "[Gmail]/Sent Mail", nil, UseSent},
		{"google mail sent", "[Google Mail]/Sent Mail", nil, UseSent},
		{"courier sent", "INBOX.Sent", nil, UseSent},
		{"inbox slash sent", "inbox/Sent Items", nil, UseSent},
		{"drafts", "Drafts", nil, UseDrafts},
		{"german drafts", "Entwürfe", nil, UseDrafts},
		{"french drafts", "Brouillons", nil, UseDrafts},
		{"deleted items", "Deleted Items", nil, UseTrash},
		{"papierkorb", "Papierkorb", nil, UseTrash},
		{"corbeille", "Corbeille", nil, UseTrash},
		{"gmail trash", "[Gmail]/Trash", nil, UseTrash},
		{"gmail bin", "[Gmail]/Bin", nil, UseTrash},
		{"bin", "Bin", nil, UseTrash},
		{"spam", "Spam", nil, UseJunk},
		{"junk e-mail", "Junk E-mail", nil, UseJunk},
		{"bulk mail", "Bulk Mail", nil, UseJunk},
		{"gmail spam", "[Gmail]/Spam", nil, UseJunk},
		{"archive", "Archive", nil, UseArchive},
		{"gmail all mail", "[Gmail]/All Mail", nil, UseAll},
		{"gmail starred", "[Gmail]/Starred", nil, UseFlagged},
		{"ordinary", "Projects", nil, ""},
		{"nested well-known name", "Projects/Sent", nil, ""},
		{"inboxes is not INBOX", "Inboxes.Sent", nil, ""},
		{"substring is not a match", "Sentimental", nil, ""},
		{"INBOX", "INBOX", nil, ""},
		{"non special attribute", "x", []string{`\HasChildren`, `\Marked`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SpecialUseOf(tt.folder, tt.attrs); got != tt.want {
				t.Errorf("SpecialUseOf(%q, %q) = %q, want %q", tt.folder, tt.attrs, got, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		delim         rune
		want          bool
	}{
		{"Trash", "Trash", '/', true},
		{"Trash", "Trash/x", '/', false},
		{"*", "", '/', true},
		{"*", "a/b/c", '/', true},
		{"%", "a/b", '/', false},
		{"%", "abc", '/', true},
		{"a/%", "a/b", '/', true},
		{"a/%", "a/b/c", '/', false},
		{"a/%/c", "a/b/c", '/', true},
		{"a*c", "abbbc", '/', true},
		{"a*c", "ab/bc", '/', true},
		{"a%c", "ab/bc", '/', false},
		{"a%c", "ab.bc", '/', true},
		{"a%c", "ab.bc", '.', false},
		{"a%c", "ab/bc", 0, true},
		{"*.Old", "INBOX.Lists.Old", '.', true},
		{"%.Old", "INBOX.Lists.Old", '.', false},
		{"?", "ü", '/', true},
		{"??", "ü", '/', false},
		{"a*b*c", "axxbyyc", '/', true},
		{"a*b*c", "axxbyy", '/', false},
		{"*%*", "x/y", '/', true},
		{"", "", '/', true},
		{"", "a", '/', false},
		// A % after a * that must take more than one level: a matcher that
		// backtracks only to the last wildcard gets these wrong.
		{"*/%", "a/b/c", '/', true},
		{"*/%", "a", '/', false},
		{"*%", "a/b/c", '/', true},
		{"%/*", "a/b/c", '/', true},
		{"%/%", "a/b/c", '/', false},
		{"Archive/Old*", "Archive/Old/2019", '/', true},
		{"Archive/%", "Archive/2019", '/', true},
		{"Archive/%", "Archive", '/', false},
		{"?", "/", '/', true},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name, tt.delim); got != tt.want {
			t.Errorf("Match(%q, %q, %q) = %v, want %v", tt.pattern, tt.name, tt.delim, got, tt.want)
		}
	}
}

func TestHasSpecialUse(t *testing.T) {
	if HasSpecialUse([]Folder{{Name: "Sent"}, {Name: "INBOX", Attrs: []string{`\HasChildren`}}}) {
		t.Error("HasSpecialUse without attributes = true")
	}
	if !HasSpecialUse([]Folder{{Name: "INBOX"}, {Name: "Sent", Attrs: []string{`\sent`}}}) {
		t.Error("HasSpecialUse with \\sent = false")
	}
}

// FuzzFolderMapHierarchy checks that translating separators never changes
// the hierarchy: as many levels come out as went in, each one the source
// level with the destination's separator escaped.
func FuzzFolderMapHierarchy(f *testing.F) {
	for _, s := range []string{"a.b.c", "a/b.c", "INBOX.x", "inbox", "..", "Ü.ß/€", "a_b.c", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, name string, dotToSlash bool) {
		srcDelim, destDelim := '.', '/'
		if !dotToSlash {
			srcDelim, destDelim = '/', '.'
		}
		m, err := NewFolderMap(FolderOptions{DestDelim: destDelim, NoSpecialUse: true, KeepVirtual: true})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := m.Map(Folder{Name: name, Delim: srcDelim})
		if !ok {
			t.Fatalf("Map(%q) skipped", name)
		}
		in := strings.Split(normInbox(name), string(srcDelim))
		out := strings.Split(got, string(destDelim))
		if len(in) != len(out) {
			t.Fatalf("Map(%q) = %q: %d levels, want %d", name, got, len(out), len(in))
		}
		for i := range in {
			want := strings.ReplaceAll(in[i], string(destDelim), "_")
			if i == 0 && strings.EqualFold(want, "INBOX") {
				want = "INBOX"
			}
			if out[i] != want {
				t.Fatalf("Map(%q) = %q: level %d is %q, want %q", name, got, i, out[i], want)
			}
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, s := range []string{"a/b", "INBOX.x", "*", "%", "a*b%c?", "ü"} {
		f.Add(s, s)
	}
	f.Add("*/%", "a/b/c")
	f.Add("%*%/?", "xy/z/w")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := Match(pattern, name, '/')
		// The same patterns as regular expressions: an independent oracle.
		var re strings.Builder
		re.WriteString(`(?s)\A`)
		for _, r := range pattern {
			switch r {
			case '*':
				re.WriteString(`.*`)
			case '%':
				re.WriteString(`[^/]*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString(`\z`)
		if utf8.ValidString(pattern) && utf8.ValidString(name) {
			if want := regexp.MustCompile(re.String()).MatchString(name); got != want {
				t.Fatalf("Match(%q, %q) = %v, the regular expression %s says %v", pattern, name, got, re.String(), want)
			}
		}
		if !Match("*", name, '/') {
			t.Fatalf("Match(*, %q) = false", name)
		}
		if !strings.ContainsAny(name, "*%?") && !Match(name, name, '/') {
			t.Fatalf("Match(%q, itself) = false", name)
		}
		if got && !Match(strings.ReplaceAll(pattern, "%", "*"), name, '/') {
			t.Fatalf("Match(%q, %q) = true but false with %% as *", pattern, name)
		}
	})
}
