package imapdst

import (
	"context"
	"testing"
	"time"

	"github.com/mailferry/mailferry/secret"
)

// TestOnClose: the hook runs exactly once, at the first Close, and never
// when Dial fails.
func TestOnClose(t *testing.T) {
	tests := []struct {
		name     string
		password string
		closes   int
		want     int
	}{
		{"Close", "s3cret", 1, 1},
		{"Close twice", "s3cret", 2, 1},
		{"Dial fails", "wrong", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, clientTLS := startMemServer(t)
			calls := 0
			opts := Options{Addr: addr, TLS: TLSStartTLS, TLSConfig: clientTLS, User: "alice",
				Password: secret.New(tc.password), IdleTimeout: 5 * time.Second, OnClose: func() { calls++ }}
			d, err := Dial(context.Background(), opts)
			if (err != nil) != (tc.closes == 0) {
				t.Fatalf("Dial: %v", err)
			}
			for range tc.closes {
				_ = d.Close()
			}
			if calls != tc.want {
				t.Errorf("OnClose called %d times, want %d", calls, tc.want)
			}
		})
	}
}
