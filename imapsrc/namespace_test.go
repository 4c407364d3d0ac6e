package imapsrc

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/internal/imapconn"
)

// TestNamespaceTravelsWithList: Open sends NAMESPACE without waiting for
// it, so that it and the first LIST share a round trip (issue 18). The
// server here answers NAMESPACE only once LIST has arrived: an Open that
// waited for the answer would time out. The answer, a refusal or a
// dropped connection, reaches Folders and Namespace as before.
func TestNamespaceTravelsWithList(t *testing.T) {
	const caps = "IMAP4rev1 UIDPLUS NAMESPACE"
	tests := []struct {
		name       string
		nsReply    string // NAMESPACE's answer, sent with LIST's
		hangUp     bool   // the server drops the connection instead of answering LIST
		wantPrefix string
		wantDelim  rune
		wantRefuse bool
		wantErr    bool
	}{
		{name: "prefix", nsReply: "* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\nNSTAG OK done\r\n", wantPrefix: "INBOX.", wantDelim: '.'},
		{name: "refused", nsReply: "NSTAG BAD Invalid command\r\n", wantRefuse: true},
		{name: "dropped", hangUp: true, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startScript(t, func(int) map[string]handler {
				var nsTag string
				return map[string]handler{
					"LOGIN": reply("$TAG OK [CAPABILITY " + caps + "] logged in\r\n"),
					"NAMESPACE": func(tag, _ string) (string, bool) {
						nsTag = tag
						return "", false
					},
					"LIST": func(string, string) (string, bool) {
						if tc.hangUp {
							return "", true
						}
						ns := strings.ReplaceAll(tc.nsReply, "NSTAG", nsTag)
						return ns + "* LIST () \".\" INBOX\r\n* LIST () \".\" INBOX.Sent\r\n$TAG OK done\r\n", false
					},
				}
			})
			opts := srv.opts()
			opts.Quirks = imapconn.NewQuirks(nil, nil)
			s := openSource(t, opts)
			folders, err := s.Folders(t.Context())
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "NAMESPACE") {
					t.Fatalf("Folders = %v, %v; want an error on NAMESPACE", folders, err)
				}
				if _, err := s.Folders(t.Context()); err == nil {
					t.Fatal("second Folders after a dropped connection: no error")
				}
				return
			}
			if err != nil || len(folders) != 2 {
				t.Fatalf("Folders = %v, %v; want INBOX and INBOX.Sent", folders, err)
			}
			if prefix, delim := s.Namespace(); prefix != tc.wantPrefix || delim != tc.wantDelim {
				t.Errorf("Namespace() = %q, %q; want %q, %q", prefix, delim, tc.wantPrefix, tc.wantDelim)
			}
			if got := opts.Quirks.Refused(imapconn.FeatureNamespace); got != tc.wantRefuse {
				t.Errorf("NAMESPACE refused = %v, want %v", got, tc.wantRefuse)
			}
			if cmds := srv.received(); len(cmds) < 3 || !strings.Contains(cmds[1], "NAMESPACE") || !strings.Contains(cmds[2], "LIST") {
				t.Errorf("commands = %q; want LOGIN, NAMESPACE, LIST", cmds)
			}
		})
	}
}
