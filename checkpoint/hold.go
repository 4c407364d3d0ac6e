package checkpoint

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailferry/mailferry/pipeline"
)

// lockRetry is how often Hold retries while waiting (Options.LockWait).
const lockRetry = 100 * time.Millisecond

// heldLock is one account's flock.
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

// LockPath returns the lock file of the account whose ident is ident: a
// file in the directory "<ledger path>.locks" named by a hash of the
// ident, so that any ident is a safe file name. A migrated account's ident
// is its schema-4 key, so its lock file is the one a schema-4 mailferry
// takes: the two exclude each other.
func (l *Ledger) LockPath(ident string) string {
	sum := sha256.Sum256([]byte(ident))
	return filepath.Join(l.lockDir, hex.EncodeToString(sum[:16])+".lock")
}

// hold is a run's hold on one account: the flock of its lock file. The
// kernel cannot take it away while the process lives, so Lost is never
// closed; Paused is closed when a Commit finds the account paused. It
// writes nothing to the ledger (a dry run holds its account too): the lock
// file says who holds it ("pid N", emptied on release), and status reads
// that.
type hold struct {
	l            *Ledger
	id           pipeline.AccountID
	ident        string
	lock         *heldLock // SQLite
	lease        *lease    // PostgreSQL
	paused       chan struct{}
	pauseOnce    sync.Once
	retrySkipped bool
	// takenFrom and takenLate: a claim that took over an expired lease
	// (TakenOver).
	takenFrom  string
	takenLate  time.Duration
	release    sync.Once
	releaseErr error
}

func (h *hold) Lost() <-chan struct{} {
	if h.lease != nil {
		return h.lease.lost
	}
	return nil
}
func (h *hold) Paused() <-chan struct{} { return h.paused }
func (h *hold) RetrySkipped() bool      { return h.retrySkipped }

func (h *hold) markPaused() { h.pauseOnce.Do(func() { close(h.paused) }) }

// Release drops the hold; later calls return the first result.
func (h *hold) Release(context.Context) error {
	h.release.Do(func() {
		if h.lease != nil {
			// A lease lost before its run ended (the database was out of
			// reach for a while and answers again by now) leaves the
			// account queued, due at once: left idle, no worker would
			// claim it again (a service would stop polling it; a pass
			// would end without it). Taken over meanwhile, it is the
			// other worker's, and this changes nothing. A database
			// still out of reach is given up on at the lease's expiry
			// (pgEngine.final): the lease runs out, and any worker
			// takes the account over.
			h.releaseErr = h.l.releaseLease(h, leaseEnd{queued: h.lease.isLost()})
			return
		}
		l := h.l
		l.mu.Lock()
		if l.held != nil && l.held[h.id] == h {
			delete(l.held, h.id)
		}
		l.mu.Unlock()
		// The content says who runs the account (status reads it); the
		// flock, not the content, is the lock.
		_ = h.lock.f.Truncate(0)
		if err := h.lock.release(); err != nil {
			h.releaseErr = fmt.Errorf("unlocking account %q: %w", h.ident, err)
		}
	})
	return h.releaseErr
}

// holdOf returns this ledger's hold on account, nil when there is none.
func (l *Ledger) holdOf(account pipeline.AccountID) *hold {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[account]
	if h != nil && h.lock == nil && h.lease == nil {
		return nil // reserved while its lease is being claimed: not held yet
	}
	return h
}

// Hold takes the account for one run, as an flock(2) on its lock file,
// so the kernel releases it when the process dies, even by kill -9. It
// excludes other processes and other goroutines of this process alike.
//
// When the account is held elsewhere, Hold fails at once with an error
// wrapping ErrLocked, or, with Options.LockWait > 0, retries until the
// wait elapses or ctx ends (the error then wraps ErrLocked and, if ctx
// ended, ctx.Err()). Close releases the holds still taken.
func (l *Ledger) Hold(ctx context.Context, account pipeline.AccountID) (pipeline.Hold, error) {
	if err := l.checkOpen(); err != nil {
		return nil, err
	}
	if l.pg != nil {
		return l.holdLease(ctx, account)
	}
	var ident string
	var paused, retry bool
	err := l.r.QueryRowContext(ctx, l.d.q(`SELECT ident, paused, retry_skipped FROM accounts WHERE id = ?`), account).
		Scan(&ident, &paused, &retry)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("holding account %d in %s: %w", account, l.path, ErrUnknownAccount)
	}
	if err != nil {
		return nil, fmt.Errorf("holding account %d in %s: %w", account, l.path, err)
	}
	path := l.LockPath(ident)
	if err := mkdirPrivate(l.lockDir); err != nil {
		return nil, fmt.Errorf("locking account %q: creating lock directory %s: %w", ident, l.lockDir, err)
	}

	h, err := l.waitHeld(ctx, ident, func() (*hold, error) { return l.tryLock(account, ident, path) })
	if err != nil {
		return nil, err
	}
	h.retrySkipped = retry
	if paused {
		h.markPaused()
	}
	return h, nil
}

// waitHeld calls try until it holds the account, fails otherwise than
// with ErrLocked, or, with Options.LockWait, the wait or ctx ends (the
// error then wraps ErrLocked and, if ctx ended, ctx.Err()). Without
// LockWait the first ErrLocked is the answer.
func (l *Ledger) waitHeld(ctx context.Context, name string, try func() (*hold, error)) (*hold, error) {
	var deadline <-chan time.Time
	if l.lockWait > 0 {
		t := time.NewTimer(l.lockWait)
		defer t.Stop()
		deadline = t.C
	}
	waiting := false
	for {
		h, err := try()
		if err == nil {
			if waiting {
				l.log.Info("account lock acquired after waiting", "account", name)
			}
			return h, nil
		}
		if !errors.Is(err, ErrLocked) || deadline == nil {
			return nil, err
		}
		if !waiting {
			waiting = true
			l.log.Info("account locked by another run, waiting", "account", name, "wait", l.lockWait)
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
func (l *Ledger) tryLock(account pipeline.AccountID, ident, path string) (*hold, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if _, ok := l.held[account]; ok {
		return nil, fmt.Errorf("locking account %q: held by another goroutine of this process: %w", ident, ErrLocked)
	}

	// os.OpenFile sets O_CLOEXEC: child processes (password commands) do not
	// inherit the descriptor, so they cannot keep the lock alive after we die.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("locking account %q: opening lock file %s: %w", ident, path, err)
	}
	if err := f.Chmod(fileMode); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking account %q: setting mode of lock file %s: %w", ident, path, err)
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
			return nil, fmt.Errorf("locking account %q: lock file %s held%s: %w", ident, path, holder, ErrLocked)
		}
		return nil, fmt.Errorf("locking account %q: lock file %s: %w", ident, path, err)
	}
	// Record who holds the lock, for the error message of the next taker and
	// for an admin looking at the directory. Best effort: the flock, not the
	// content, is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\naccount "+strconv.Quote(ident)+"\n"), 0)
	}

	h := &hold{l: l, id: account, ident: ident, lock: &heldLock{f: f}, paused: make(chan struct{})}
	l.held[account] = h
	l.log.Debug("account locked", "account", ident, "lock_file", path)
	return h, nil
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

// holder returns the pid written in the lock file of ident while a live
// process holds it, 0 otherwise. It never takes the lock (a probe would
// make a run starting at that moment fail).
func (l *Ledger) holder(ident string) int {
	path := l.LockPath(ident)
	// A stat first, and a read only of a lock file that is not empty: a
	// release empties its file, so in a ledger of 10,000 accounts nearly
	// all of the 10,000 lock files are empty, and a read (open, fstat,
	// fcntl, read, close) costs about nine system calls where a stat costs
	// one (issue 18: status of 10,000 accounts spent a fifth of its CPU
	// here).
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		return 0
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "pid %d", &pid); err != nil || pid <= 0 {
		return 0
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return 0
	}
	return pid
}
