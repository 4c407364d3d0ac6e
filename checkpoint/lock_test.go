package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// Environment of the helper process run by startHelper.
const (
	helperEnv        = "MAILFERRY_CHECKPOINT_HELPER" // "lock" or "put"
	helperPathEnv    = "MAILFERRY_CHECKPOINT_HELPER_PATH"
	helperAccountEnv = "MAILFERRY_CHECKPOINT_HELPER_ACCOUNT"
	helperReady      = "ready"
)

// TestHelperProcess is not a test: it is the child process of the
// cross-process tests. It opens the ledger, takes the account's lock ("lock")
// or writes one entry ("put"), prints "ready" and waits to be killed.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the cross-process tests")
	}
	ctx := context.Background()
	path, account := os.Getenv(helperPathEnv), os.Getenv(helperAccountEnv)
	l, err := Open(ctx, path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case "lock":
		if _, err := l.Lock(ctx, account); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	case "put":
		if err := l.Put(ctx, []pipeline.Entry{fullEntry(account, "killed-after-put")}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		os.Exit(2)
	}
	fmt.Println(helperReady)
	time.Sleep(time.Minute) // killed long before
	os.Exit(3)
}

// startHelper runs TestHelperProcess in a child process and waits until it is
// ready. The returned function kills it with SIGKILL and reaps it.
func startHelper(t *testing.T, mode, path, account string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path, helperAccountEnv+"="+account)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("helper stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper: %v", err)
	}
	killed := false
	kill = func() {
		if killed {
			return
		}
		killed = true
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	t.Cleanup(kill)

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case got := <-line:
		if got != helperReady {
			kill()
			t.Fatalf("helper %s said %q, want %q; stderr: %s", mode, got, helperReady, stderr.String())
		}
	case <-time.After(15 * time.Second):
		kill()
		t.Fatalf("helper %s not ready after 15s; stderr: %s", mode, stderr.String())
	}
	return kill
}

func TestLockSameProcess(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	unlock, err := l.Lock(ctx, "alice")
	if err != nil {
		t.Fatalf("Lock(alice) = %v", err)
	}

	tests := []struct {
		name    string
		ledger  func(t *testing.T) *Ledger
		account string
		wantErr error
	}{
		{"same ledger, same account", func(*testing.T) *Ledger { return l }, "alice", ErrLocked},
		{"second ledger on the same file", func(t *testing.T) *Ledger { return openTest(t, l.Path(), nil) }, "alice", ErrLocked},
		{"same ledger, other account", func(*testing.T) *Ledger { return l }, "bob", nil},
		{"account names are not paths", func(*testing.T) *Ledger { return l }, "../../etc/passwd", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.ledger(t).Lock(ctx, tt.account)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lock(%q) = %v, want %v", tt.account, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.account)) {
					t.Errorf("Lock(%q) error %q does not name the account", tt.account, err)
				}
				return
			}
			if err := u(); err != nil {
				t.Errorf("unlock(%q) = %v", tt.account, err)
			}
		})
	}

	if err := unlock(); err != nil {
		t.Fatalf("unlock(alice) = %v", err)
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock(alice) = %v, want nil", err)
	}
	again, err := l.Lock(ctx, "alice")
	if err != nil {
		t.Fatalf("Lock(alice) after unlock = %v", err)
	}
	// The stale unlock of the first lock must not release the second one.
	if err := unlock(); err != nil {
		t.Errorf("stale unlock(alice) = %v", err)
	}
	if _, err := l.Lock(ctx, "alice"); !errors.Is(err, ErrLocked) {
		t.Errorf("Lock(alice) after stale unlock = %v, want ErrLocked", err)
	}
	if err := again(); err != nil {
		t.Errorf("unlock(alice) = %v", err)
	}
}

func TestLockConcurrentGoroutines(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, "", nil)
	const n = 8
	results := make(chan error, n)
	unlocks := make(chan func() error, n)
	for range n {
		go func() {
			u, err := l.Lock(ctx, "alice")
			if err == nil {
				unlocks <- u
			}
			results <- err
		}()
	}
	won := 0
	for range n {
		switch err := <-results; {
		case err == nil:
			won++
		case !errors.Is(err, ErrLocked):
			t.Errorf("Lock(alice) = %v, want nil or ErrLocked", err)
		}
	}
	if won != 1 {
		t.Errorf("%d goroutines got the lock, want exactly 1", won)
	}
	close(unlocks)
	for u := range unlocks {
		if err := u(); err != nil {
			t.Errorf("unlock = %v", err)
		}
	}
}

func TestLockWait(t *testing.T) {
	tests := []struct {
		name         string
		wait         time.Duration
		releaseAfter time.Duration // 0: never released
		ctxTimeout   time.Duration // 0: no ctx deadline
		wantErr      error
		wantCtxErr   error
	}{
		{"no wait fails at once", 0, 0, 0, ErrLocked, nil},
		{"released while waiting", 10 * time.Second, 200 * time.Millisecond, 0, nil, nil},
		{"wait elapses", 300 * time.Millisecond, 0, 0, ErrLocked, nil},
		{"context ends first", 10 * time.Second, 0, 300 * time.Millisecond, ErrLocked, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holder := openTest(t, "", nil)
			unlock, err := holder.Lock(context.Background(), "alice")
			if err != nil {
				t.Fatalf("Lock(alice) = %v", err)
			}
			defer unlock()
			if tt.releaseAfter > 0 {
				timer := time.AfterFunc(tt.releaseAfter, func() { _ = unlock() })
				defer timer.Stop()
			}
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			waiter := openTest(t, holder.Path(), &Options{LockWait: tt.wait})
			start := time.Now()
			u, err := waiter.Lock(ctx, "alice")
			elapsed := time.Since(start)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Lock(alice) with LockWait %v = %v, want %v", tt.wait, err, tt.wantErr)
			}
			if tt.wantCtxErr != nil && !errors.Is(err, tt.wantCtxErr) {
				t.Errorf("Lock(alice) = %v, want it to wrap %v", err, tt.wantCtxErr)
			}
			if err == nil {
				defer u()
				if elapsed < tt.releaseAfter {
					t.Errorf("Lock(alice) succeeded after %v, before the release at %v", elapsed, tt.releaseAfter)
				}
			}
			if tt.wait == 0 && elapsed > time.Second {
				t.Errorf("Lock(alice) without LockWait took %v, want immediate", elapsed)
			}
		})
	}
}

func TestLockCrossProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := openTest(t, path, nil)

	kill := startHelper(t, "lock", path, "alice")

	if _, err := l.Lock(ctx, "alice"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock(alice) while another process holds it = %v, want ErrLocked", err)
	} else if !strings.Contains(err.Error(), `"alice"`) || !strings.Contains(err.Error(), "pid ") {
		t.Errorf("Lock(alice) error %q should name the account and the holder's pid", err)
	}
	u, err := l.Lock(ctx, "bob")
	if err != nil {
		t.Fatalf("Lock(bob) while another process holds alice = %v", err)
	}
	if err := u(); err != nil {
		t.Errorf("unlock(bob) = %v", err)
	}

	kill() // SIGKILL: no chance to unlock; the kernel drops the flock.

	u, err = l.Lock(ctx, "alice")
	if err != nil {
		t.Fatalf("Lock(alice) after the holder was killed = %v", err)
	}
	if err := u(); err != nil {
		t.Errorf("unlock(alice) = %v", err)
	}
}

func TestPutSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	kill := startHelper(t, "put", path, "alice")
	kill() // right after Put returned

	l := openTest(t, path, nil)
	got, ok := mustEntries(t, l, "alice")["killed-after-put"]
	if !ok {
		t.Fatalf("entry written before kill -9 is missing")
	}
	sameEntry(t, got, fullEntry("alice", "killed-after-put"))
}
