package pipeline

import (
	"bytes"
	"strings"
	"testing"
)

// TestDeclaresBinaryPart: a NUL message with a part declared binary is
// one a BINARY APPEND would not keep byte for byte (Dovecot re-encodes
// the part as base64); the check finds the declaration in any part, any
// case, and says yes for a line too long to read.
func TestDeclaresBinaryPart(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want bool
	}{
		{"top-level header", "Content-Transfer-Encoding: binary\r\n\r\nbody\x00\r\n", true},
		{"a part, other case", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\ncontent-transfer-encoding:  BINARY \r\n\r\nx\x00\r\n--b--\r\n", true},
		{"base64 part", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\neA==\x00\r\n--b--\r\n", false},
		{"none", "Subject: x\r\n\r\nbody\x00\r\n", false},
		{"binary mentioned in text", "Subject: x\r\n\r\nthe Content-Transfer-Encoding: binary header\r\n", false},
		{"a line longer than the scanner's limit", "Subject: x\r\n\r\n" + strings.Repeat("a", 2<<20) + "\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader([]byte(tt.msg))
			if got := declaresBinaryPart(r, int64(len(tt.msg))); got != tt.want {
				t.Errorf("declaresBinaryPart = %v, want %v", got, tt.want)
			}
		})
	}
}
