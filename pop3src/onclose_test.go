package pop3src

import (
	"context"
	"testing"

	"github.com/mailferry/mailferry/internal/testkit/pop3fake"
	"github.com/mailferry/mailferry/secret"
)

// TestOnClose: the hook runs exactly once, at the first Close with or
// without commit, and never when Open fails.
func TestOnClose(t *testing.T) {
	tests := []struct {
		name   string
		commit bool
		closes int
	}{
		{"close without QUIT", false, 1},
		{"close with QUIT", true, 1},
		{"closed twice", true, 2},
		{"closed twice without QUIT", false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, pop3fake.Options{Messages: testMessages()})
			calls := 0
			opts := plainOptions(srv)
			opts.OnClose = func() { calls++ }
			s, err := Open(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if calls != 0 {
				t.Fatalf("OnClose called %d times by Open, want 0", calls)
			}
			for range tc.closes {
				_ = s.Close(tc.commit)
			}
			if calls != 1 {
				t.Errorf("OnClose called %d times after %d Close(%v), want 1", calls, tc.closes, tc.commit)
			}
		})
	}
	t.Run("Open fails", func(t *testing.T) {
		srv := startFake(t, pop3fake.Options{Messages: testMessages()})
		calls := 0
		opts := plainOptions(srv)
		opts.Password = secret.New("wrong")
		opts.OnClose = func() { calls++ }
		if _, err := Open(context.Background(), opts); err == nil {
			t.Fatal("Open with a wrong password succeeded")
		}
		if calls != 0 {
			t.Errorf("OnClose called %d times after a failed Open, want 0", calls)
		}
	})
}
