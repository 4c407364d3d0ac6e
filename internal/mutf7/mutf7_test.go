package mutf7

import (
	"testing"
	"unicode/utf8"
)

func TestEncodeMailbox(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Grüße", "Gr&APwA3w-e"},
		{"Tom & Jerry", "Tom &- Jerry"},
		{"日本語", "&ZeVnLIqe-"},
		{"Entwürfe/Ältere", "Entw&APw-rfe/&AMQ-ltere"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"}, // RFC 3501 §5.1.3's example
		{"😀", "&2D3eAA-"},
	}
	for _, tc := range tests {
		if got := Encode(tc.in); got != tc.want {
			t.Errorf("Encode(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := Decode(tc.want); err != nil || back != tc.in {
			t.Errorf("Decode(%q) = %q, %v; want %q", tc.want, back, err, tc.in)
		}
	}
}

func FuzzMailboxRoundTrip(f *testing.F) {
	for _, s := range []string{"INBOX", "Grüße", "&", "&-&", "日本語/x", "a\u00e9b&c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		enc := Encode(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("Encode(%q) = %q has a non-printable byte", s, enc)
			}
		}
		back, err := Decode(enc)
		if err != nil || back != s {
			t.Fatalf("decode(encode(%q)) = %q, %v", s, back, err)
		}
	})
}
