package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestDigestOf: the ledger's digest is the lower-case hex SHA-256 of the
// bytes sent.
func TestDigestOf(t *testing.T) {
	for _, body := range []string{"", "Subject: x\r\n\r\nbody\r\n"} {
		sum := sha256.Sum256([]byte(body))
		if got, want := digestOf(spooled(t, []byte(body), 1<<20)), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("digestOf(%q) = %q, want %q", body, got, want)
		}
	}
}

// BenchmarkDigestOf: one digest per message fetched.
func BenchmarkDigestOf(b *testing.B) {
	m := spooled(b, []byte("Subject: x\r\n\r\nbody\r\n"), 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		if len(digestOf(m)) != 2*sha256.Size {
			b.Fatal("short digest")
		}
	}
}
