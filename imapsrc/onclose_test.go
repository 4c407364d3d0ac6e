package imapsrc

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// TestOnClose: the hook runs exactly once, when the session ends (Close,
// however often, or a Watch that fails after its login), never when
// Open fails.
func TestOnClose(t *testing.T) {
	tests := []struct {
		name string
		// run opens what it tests with opts and ends it; it returns
		// whether opening succeeded.
		run func(t *testing.T, opts Options) bool
	}{
		{"Close", func(t *testing.T, opts Options) bool {
			s, err := Open(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Close(true)
			return true
		}},
		{"Close twice, after a failed command", func(t *testing.T, opts Options) bool {
			s, err := Open(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pipeline.ListAll(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			_ = s.Close(false)
			_ = s.Close(false)
			return true
		}},
		{"Open fails", func(t *testing.T, opts Options) bool {
			opts.Password = secret.New("wrong")
			if _, err := Open(t.Context(), opts); err == nil {
				t.Fatal("Open with a wrong password succeeded")
			}
			return false
		}},
		{"Watch on a server without IDLE", func(t *testing.T, opts Options) bool {
			// The scripted server's capabilities after LOGIN have no IDLE.
			srv := startScript(t, func(int) map[string]handler { return nil })
			sopts := srv.opts()
			sopts.OnClose = opts.OnClose
			if w, err := Watch(t.Context(), sopts, WatchOptions{}); err == nil {
				w.Close()
				t.Fatal("Watch without IDLE succeeded")
			}
			return true
		}},
		{"Watcher.Close", func(t *testing.T, opts Options) bool {
			w, err := Watch(t.Context(), opts, WatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_ = w.Close()
			return true
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, opts := memServer(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}}, nil, nil)
			calls := 0
			opts.OnClose = func() { calls++ }
			want := 0
			if tc.run(t, opts) {
				want = 1
			}
			if calls != want {
				t.Errorf("OnClose called %d times, want %d", calls, want)
			}
		})
	}
}
