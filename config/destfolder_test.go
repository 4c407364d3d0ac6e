package config

import (
	"strings"
	"testing"
)

// TestDestFolder: where each account's mail goes, and which key said so:
// POP3 mail into dest_folder, [destination] folder or the URL's path; an
// IMAP source's folders under dest_folder, else [folders] root, never
// [destination] folder (loading warns when that is set).
func TestDestFolder(t *testing.T) {
	tests := []struct {
		name, doc        string
		wantMailbox      string
		wantKey          string
		wantWarn, create bool
	}{
		{name: "POP3 default", doc: "[source]\nurl = \"pop3s://old\"\n[destination]\nurl = \"imaps://new\"\n",
			wantMailbox: "INBOX"},
		{name: "POP3 folder", doc: "[source]\nurl = \"pop3s://old\"\n[destination]\nurl = \"imaps://new\"\nfolder = \"Old\"\n",
			wantMailbox: "Old", wantKey: "destination.folder"},
		{name: "POP3 URL path", doc: "[source]\nurl = \"pop3s://old\"\n[destination]\nurl = \"imaps://new/Old\"\n",
			wantMailbox: "Old", wantKey: "destination.url"},
		{name: "POP3 dest_folder", doc: "[source]\nurl = \"pop3s://old\"\n[destination]\nurl = \"imaps://new\"\nfolder = \"Old\"\n",
			wantMailbox: "Mine", wantKey: "dest_folder"},
		{name: "IMAP at the top", doc: "[source]\nurl = \"imaps://old\"\n[destination]\nurl = \"imaps://new\"\n",
			wantMailbox: ""},
		{name: "IMAP root", doc: "[source]\nurl = \"imaps://old\"\n[destination]\nurl = \"imaps://new\"\n[folders]\nroot = \"Old\"\n",
			wantMailbox: "Old", wantKey: "folders.root"},
		{name: "IMAP dest_folder wins over the root", doc: "[source]\nurl = \"imaps://old\"\n[destination]\nurl = \"imaps://new\"\n[folders]\nroot = \"Old\"\n",
			wantMailbox: "Mine", wantKey: "dest_folder"},
		{name: "IMAP with a POP3 folder", doc: "create_folders = true\n[source]\nurl = \"imaps://old\"\n[destination]\nurl = \"imaps://new\"\nfolder = \"Old\"\n",
			wantMailbox: "", wantWarn: true, create: true},
		{name: "IMAP with INBOX as folder", doc: "[source]\nurl = \"imaps://old\"\n[destination]\nurl = \"imaps://new\"\nfolder = \"INBOX\"\n",
			wantMailbox: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.doc + "[[account]]\nsource_user = \"u\"\nsource_password = \"p\"\ndest_password = \"q\"\n"
			if strings.Contains(tc.name, "dest_folder") {
				doc += "dest_folder = \"Mine\"\n"
			}
			cfg, warns, err := Load(writeConfig(t, doc))
			if err != nil {
				t.Fatal(err)
			}
			a := &cfg.Accounts[0]
			ep, err := cfg.DestEndpoint(a)
			if err != nil || ep.Mailbox != tc.wantMailbox || cfg.DestFolderKey(a) != tc.wantKey {
				t.Errorf("mailbox %q (%v), key %q; want %q, %q", ep.Mailbox, err, cfg.DestFolderKey(a), tc.wantMailbox, tc.wantKey)
			}
			if got := len(warns) == 1 && warns[0].Key == "destination.folder"; got != tc.wantWarn || (!tc.wantWarn && len(warns) > 0) {
				t.Errorf("warnings %v, want a destination.folder warning: %v", warns, tc.wantWarn)
			}
			if cfg.CreateFolders != tc.create {
				t.Errorf("CreateFolders = %v, want %v", cfg.CreateFolders, tc.create)
			}
		})
	}
}
