package imapsrc

import (
	"errors"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/mapping"
)

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
		{"include without namespace prefix", []string{"Archive*"}, nil, []string{"INBOX.Archive", "INBOX.Archive.2019"}},
		{"exclude wins", []string{"Archive*"}, []string{"Archive/2019"}, []string{"INBOX.Archive"}},
		{"exclude with full name", nil, []string{"INBOX/Trash", "Sent"}, []string{"INBOX", "INBOX.Archive", "INBOX.Archive.2019"}},
		{"percent: one level under the prefix", []string{"%"}, nil, []string{"INBOX", "INBOX.Sent", "INBOX.Archive", "INBOX.Trash"}},
		{"server's own separator", nil, []string{"Archive.%"}, []string{"INBOX", "INBOX.Sent", "INBOX.Archive", "INBOX.Trash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Source{opts: Options{Include: tt.include, Exclude: tt.exclude}, nsPrefix: "INBOX.", nsDelim: '.'}
			if err := s.opts.validate(); err != nil {
				t.Fatal(err)
			}
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
	_, err := Open(t.Context(), Options{Addr: "127.0.0.1:1", TLS: TLSNone, AllowPlaintext: true, Exclude: []string{"Spam", ""}})
	if !errors.Is(err, mapping.ErrBadFolderOption) {
		t.Fatalf("Open with an empty exclude pattern = %v, want an error wrapping mapping.ErrBadFolderOption", err)
	}
}
