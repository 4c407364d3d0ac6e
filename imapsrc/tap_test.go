package imapsrc

import (
	"errors"
	"strings"
	"testing"
)

// TestTapRemembersBye: the tap finds the server's last BYE line in what the
// connection reads, however the bytes are split, and ignores other lines.
func TestTapRemembersBye(t *testing.T) {
	long := "* BYE " + strings.Repeat("x", 400)
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{name: "one read", chunks: []string{"* OK hi\r\n* BYE shutting down\r\n"}, want: "* BYE shutting down"},
		{name: "split inside the prefix", chunks: []string{"* OK hi\r\n* B", "YE going\r", "\n"}, want: "* BYE going"},
		{name: "any case", chunks: []string{"* bye Later\r\n"}, want: "* bye Later"},
		{name: "no BYE", chunks: []string{"* OK\r\nA1 OK done\r\n", "* BYTES are not a BYE\r\n"}, want: ""},
		{name: "the last one wins", chunks: []string{"* BYE one\r\n* 1 EXISTS\r\n* BYE two\r\n"}, want: "* BYE two"},
		{name: "unterminated line does not count", chunks: []string{"* BYE half"}, want: ""},
		{name: "long line kept up to the bound", chunks: []string{long[:100], long[100:] + "\r\n"}, want: long[:maxTapLine]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTap(nil)
			for _, c := range tc.chunks {
				if n, err := tp.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if tp.lastBye != tc.want {
				t.Errorf("lastBye = %q, want %q", tp.lastBye, tc.want)
			}
			base := errors.New("connection reset")
			err := tp.annotate(base)
			if !errors.Is(err, base) || (tc.want != "") != (err.Error() != base.Error()) {
				t.Errorf("annotate = %v, want the BYE added only when there was one", err)
			}
		})
	}
}
