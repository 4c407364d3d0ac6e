package verify

import (
	"testing"
)

func TestAllowedChange(t *testing.T) {
	src := "Subject: Grüße\r\nMessage-ID: <a@x>\r\n\r\nbody\r\nFrom me\r\n"
	tests := []struct {
		name, src, dst string
		ok             bool
		want           string
	}{
		{"identical", src, src, false, ""},
		{"mbox fields added (GNU Mailutils)", src,
			"Subject: Grüße\r\nMessage-ID: <a@x>\r\nX-IMAPbase: 1796526750                    2\r\nX-UID: 1\r\nStatus: RO\r\n\r\nbody\r\nFrom me\r\n",
			true, "header fields added by mbox storage (Status, X-IMAPbase, X-UID)"},
		{"mbox fields rewritten at the source",
			"Subject: a\r\nStatus: O\r\nX-UID: 1\r\n\r\nb\r\n", "Subject: a\r\nStatus: RO\r\nX-UID: 1\r\n\r\nb\r\n",
			true, "mbox header fields rewritten (Status)"},
		{"folded mbox field", src, "Subject: Grüße\r\nX-Keywords: a\r\n b\r\nMessage-ID: <a@x>\r\n\r\nbody\r\nFrom me\r\n",
			true, "header fields added by mbox storage (X-Keywords)"},
		{"8-bit header bytes replaced (Cyrus)", src, "Subject: GrXXXXe\r\nMessage-ID: <a@x>\r\n\r\nbody\r\nFrom me\r\n",
			true, "4 8-bit header bytes replaced"},
		{"line ends", src, "Subject: Grüße\nMessage-ID: <a@x>\n\nbody\nFrom me\n", true, "line ends normalised"},
		{"both", src, "Subject: GrXXXXe\nMessage-ID: <a@x>\nX-UID: 3\n\nbody\nFrom me\n",
			true, "header fields added by mbox storage (X-UID), 4 8-bit header bytes replaced, line ends normalised"},
		{"body differs", src, "Subject: Grüße\r\nMessage-ID: <a@x>\r\n\r\nbody\r\n>From me\r\n", false, ""},
		{"an ASCII header byte differs", src, "Subject: Grüsse\r\nMessage-ID: <a@x>\r\n\r\nbody\r\nFrom me\r\n", false, ""},
		{"another field added", src, "Subject: Grüße\r\nX-Spam: yes\r\nMessage-ID: <a@x>\r\n\r\nbody\r\nFrom me\r\n", false, ""},
		{"8-bit bytes re-encoded", src, "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <a@x>\r\n\r\nbody\r\nFrom me\r\n", false, ""},
	}
	for _, tt := range tests {
		c, ok := allowedChange([]byte(tt.src), []byte(tt.dst))
		if ok != tt.ok || ok && c.String() != tt.want {
			t.Errorf("%s: allowedChange = %q, %v; want %q, %v", tt.name, c.String(), ok, tt.want, tt.ok)
		}
	}
}

func FuzzAllowedChange(f *testing.F) {
	f.Add([]byte("Subject: a\r\n\r\nb\r\n"), []byte("Subject: a\r\nStatus: O\r\n\r\nb\r\n"))
	f.Fuzz(func(t *testing.T, src, dst []byte) {
		c, ok := allowedChange(src, dst)
		if ok && c.String() == "" {
			t.Fatalf("allowedChange(%q, %q): ok with no change named", src, dst)
		}
		// A message is never a change of itself.
		if _, ok := allowedChange(crlf(src), crlf(src)); ok {
			t.Fatalf("allowedChange(x, x) = ok for %q", src)
		}
	})
}
