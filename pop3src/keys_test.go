package pop3src

import (
	"testing"

	"github.com/mailferry/mailferry/pipeline"
)

func TestUIDLOfKey(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"00000001a1b2c3d4", "00000001a1b2c3d4", true},
		{"dup#sha256:abcd", "dup", true},
		{"dup#sha256:abcd#2", "dup", true},
		{"sha256:abcd", "", false},
		{"sha256:abcd#2", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		if got, ok := UIDLOfKey(tc.key); got != tc.want || ok != tc.ok {
			t.Errorf("UIDLOfKey(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestXUIDLHeader(t *testing.T) {
	tests := []struct {
		key, want string
	}{
		{"00000001a1b2c3d4", "X-UIDL: 00000001a1b2c3d4\r\n"},
		{"dup#sha256:abcd", "X-UIDL: dup\r\n"},
		{"sha256:abcd", ""},
		{"", ""},
		{"bad\r\nX-Evil: 1", ""},
	}
	for _, tc := range tests {
		if got := XUIDLHeader(pipeline.SourceMessage{Key: tc.key}); got != tc.want {
			t.Errorf("XUIDLHeader(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
