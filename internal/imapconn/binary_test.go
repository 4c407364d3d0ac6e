package imapconn

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// TestWatch80: a 0x80 that no UTF-8 lead byte accounts for is suspect (a
// NUL Dovecot replaced, or Windows-1252's euro sign); one inside a UTF-8
// character is not, also when the character is cut between two reads.
func TestWatch80(t *testing.T) {
	var reused Watch80 // Reset from one body to the next, as the IMAP source does
	for _, tt := range []struct {
		name string
		body string
		want bool
	}{
		{"ASCII", "Subject: x\r\n\r\nplain\r\n", false},
		{"NUL replaced", "Subject: x\r\n\r\nbefore\x80after\r\n", true},
		{"at the start", "\x80", true},
		{"em dash", "a \xe2\x80\x94 b", false},
		{"two-byte", "\xd0\x80", false},
		{"four-byte", "\xf0\x9f\x98\x80", false},
		{"after a complete character", "\xc3\xa9\x80", true},
		{"three continuations", "\xbf\xbf\xbf\x80", true},
		{"other 8-bit", "caf\xe9 \xff", false},
		{"euro in cp1252", "price: 5 \x80", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p [3]byte
			if got := Suspect80(p, []byte(tt.body)); got != tt.want {
				t.Errorf("Suspect80(%q) = %v, want %v", tt.body, got, tt.want)
			}
			// One byte per read: the bytes before a 0x80 come from earlier
			// reads.
			w := NewWatch80(iotest.OneByteReader(bytes.NewReader([]byte(tt.body))))
			got, err := io.ReadAll(w)
			if err != nil || string(got) != tt.body {
				t.Fatalf("read %q, %v", got, err)
			}
			if w.Suspect() != tt.want {
				t.Errorf("Watch80 on %q one byte at a time: suspect %v, want %v", tt.body, w.Suspect(), tt.want)
			}
			// A Watch80 reset after the body before (a 0x80, or a lead
			// byte at its end) answers for this body alone.
			reused.Reset(iotest.OneByteReader(bytes.NewReader([]byte(tt.body))))
			if got, err := io.ReadAll(&reused); err != nil || string(got) != tt.body {
				t.Fatalf("reset: read %q, %v", got, err)
			}
			if reused.Suspect() != tt.want {
				t.Errorf("Watch80 reset for %q: suspect %v, want %v", tt.body, reused.Suspect(), tt.want)
			}
		})
	}
}

func FuzzSuspect80(f *testing.F) {
	f.Add([]byte("a\xe2\x80\x94b\x80"), 2)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		var p [3]byte
		whole := Suspect80(p, b)
		if cut < 0 || cut > len(b) {
			return
		}
		w := NewWatch80(io.MultiReader(bytes.NewReader(b[:cut]), bytes.NewReader(b[cut:])))
		if _, err := io.ReadAll(w); err != nil {
			t.Fatal(err)
		}
		if w.Suspect() != whole {
			t.Errorf("%q cut at %d: %v, whole %v", b, cut, w.Suspect(), whole)
		}
	})
}
