package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lockRetry is how often Lock retries while waiting (Options.LockWait).
const lockRetry = 100 * time.Millisecond

// heldLock is one account lock held through a Ledger.
type heldLock struct {
	f    *os.File
	once sync.Once
	err  error
}

// release drops the flock and closes the file; later calls return the first
// result.
func (h *heldLock) release() error {
	h.once.Do(func() {
		err := unix.Flock(int(h.f.Fd()), unix.LOCK_UN)
		h.err = errors.Join(err, h.f.Close())
	})
	return h.err
}

// LockPath returns the lock file used for account: a file in the directory
// "<ledger path>.locks" named by a hash of the account, so that any account
// name is a safe file name.
func (l *Ledger) LockPath(account string) string {
	sum := sha256.Sum256([]byte(account))
	return filepath.Join(l.lockDir, hex.EncodeToString(sum[:16])+".lock")
}

// Lock takes the lock of account, for the whole run, and returns the function
// that releases it (safe to call more than once). The lock is an flock(2) on
// the account's lock file, so the kernel releases it when the process dies,
// even by kill -9. It excludes other processes and other goroutines of this
// process alike.
//
// When the lock is held elsewhere, Lock fails at once with an error wrapping
// ErrLocked, or, with Options.LockWait > 0, retries until the wait elapses
// or ctx ends (the error then wraps ErrLocked and, if ctx ended, ctx.Err()).
// Close releases the locks still held.
func (l *Ledger) Lock(ctx context.Context, account string) (func() error, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if account == "" {
		return nil, fmt.Errorf("locking account in %s: empty account", l.path)
	}
	path := l.LockPath(account)
	if err := mkdirPrivate(l.lockDir); err != nil {
		return nil, fmt.Errorf("locking account %q: creating lock directory %s: %w", account, l.lockDir, err)
	}

	var deadline <-chan time.Time
	if l.lockWait > 0 {
		t := time.NewTimer(l.lockWait)
		defer t.Stop()
		deadline = t.C
	}
	waiting := false
	for {
		unlock, err := l.tryLock(account, path)
		if err == nil {
			if waiting {
				l.log.Info("account lock acquired after waiting", "account", account)
			}
			return unlock, nil
		}
		if !errors.Is(err, ErrLocked) || deadline == nil {
			return nil, err
		}
		if !waiting {
			waiting = true
			l.log.Info("account locked by another run, waiting", "account", account, "wait", l.lockWait)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-deadline:
			return nil, fmt.Errorf("%w (gave up after waiting %s)", err, l.lockWait)
		case <-time.After(lockRetry):
		}
	}
}

// tryLock makes one non-blocking attempt at the lock of account.
func (l *Ledger) tryLock(account, path string) (func() error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if _, ok := l.held[account]; ok {
		return nil, fmt.Errorf("locking account %q: held by another goroutine of this process: %w", account, ErrLocked)
	}

	// os.OpenFile sets O_CLOEXEC: child processes (password commands) do not
	// inherit the descriptor, so they cannot keep the lock alive after we die.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("locking account %q: opening lock file %s: %w", account, path, err)
	}
	if err := f.Chmod(fileMode); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking account %q: setting mode of lock file %s: %w", account, path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		holder := readHolder(f)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking account %q: lock file %s held%s: %w", account, path, holder, ErrLocked)
		}
		return nil, fmt.Errorf("locking account %q: lock file %s: %w", account, path, err)
	}
	// Record who holds the lock, for the error message of the next taker and
	// for an admin looking at the directory. Best effort: the flock, not the
	// content, is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\naccount "+strconv.Quote(account)+"\n"), 0)
	}

	h := &heldLock{f: f}
	l.held[account] = h
	l.log.Debug("account locked", "account", account, "lock_file", path)
	return func() error {
		l.mu.Lock()
		if l.held != nil && l.held[account] == h {
			delete(l.held, account)
		}
		l.mu.Unlock()
		if err := h.release(); err != nil {
			return fmt.Errorf("unlocking account %q: %w", account, err)
		}
		return nil
	}, nil
}

// readHolder returns " by pid N" from a lock file's content, or "".
func readHolder(f *os.File) string {
	buf := make([]byte, 64)
	n, _ := f.ReadAt(buf, 0)
	var pid int
	if _, err := fmt.Sscanf(string(buf[:n]), "pid %d", &pid); err != nil || pid <= 0 {
		return ""
	}
	return " by pid " + strconv.Itoa(pid)
}
