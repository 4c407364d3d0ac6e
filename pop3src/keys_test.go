package pop3src

import "testing"

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
