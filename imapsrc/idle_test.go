package imapsrc

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/pipeline"
)

// syncBuffer is a bytes.Buffer safe for the trace writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

var idleCaps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}, imap.CapUIDPlus: {}}

func waitResult(t *testing.T, ch <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(within):
		t.Fatalf("Wait did not return within %v", within)
		return nil
	}
}

// TestWatchAnnouncesNewMail: a message appended by another session ends
// Wait; IDLE is re-issued every Restart meanwhile.
func TestWatchAnnouncesNewMail(t *testing.T) {
	user, opts := memServer(t, idleCaps, nil, []memMessage{{"INBOX", crlfMessage("old", "x"), nil, time.Now()}})
	var trace syncBuffer
	opts.Trace = &trace
	w, err := Watch(t.Context(), opts, WatchOptions{Restart: 30 * time.Millisecond})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer w.Close()
	done := make(chan error, 1)
	go func() { done <- w.Wait(t.Context()) }()
	// Several IDLEs go by (each ended with DONE) with nothing to report.
	deadline := time.Now().Add(5 * time.Second)
	for trace.count("DONE") < 3 && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v before any new mail", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if n := trace.count("DONE"); n < 3 {
		t.Fatalf("IDLE re-issued %d times in 5s with Restart 30ms, want at least 3", n)
	}
	if _, err := user.Append("INBOX", memLiteral{bytes.NewReader([]byte(crlfMessage("new", "y"))), 20}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("Wait after new mail = %v, want nil", err)
	}
	// Mail that arrives while nobody waits is reported by the next Wait.
	if _, err := user.Append("INBOX", memLiteral{bytes.NewReader([]byte(crlfMessage("newer", "z"))), 22}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	go func() { done <- w.Wait(t.Context()) }()
	if err := waitResult(t, done, 5*time.Second); err != nil {
		t.Fatalf("second Wait = %v, want nil", err)
	}
}

func TestWatchWithoutIdle(t *testing.T) {
	// The scripted server's capabilities after LOGIN have no IDLE.
	srv := startScript(t, func(int) map[string]handler { return nil })
	w, err := Watch(t.Context(), srv.opts(), WatchOptions{})
	if err == nil {
		w.Close()
		t.Fatal("Watch on a server without IDLE succeeded")
	}
	if !errors.Is(err, ErrNoIdle) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Errorf("Watch = %v (class %v), want ErrNoIdle, fatal", err, pipeline.ClassOf(err))
	}
}

func TestWatchCancel(t *testing.T) {
	_, opts := memServer(t, idleCaps, nil, nil)
	w, err := Watch(t.Context(), opts, WatchOptions{})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Wait(ctx) }()
	cancel()
	if err := waitResult(t, done, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait after cancel = %v, want context.Canceled", err)
	}
}
