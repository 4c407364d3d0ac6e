// Package checkpoint is mailferry's durable ledger: a SQLite file that records,
// per account and source key, where each message stands (pending, done,
// skipped, failed) and the runs made over each account, plus the per-account
// lock that stops two runs from working on one account at once.
//
// It knows no protocol: keys are opaque strings chosen by the sources.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so a Put
// that returned is on disk; killing the process right after it (kill -9) does
// not lose it. The file, its -wal and -shm companions and the lock files are
// created with mode 0600, new directories with 0700, whatever the umask.
package checkpoint

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/mailferry/mailferry/pipeline"
)

var _ pipeline.Ledger = (*Ledger)(nil)

// Sentinel errors callers branch on.
var (
	// ErrLocked is wrapped by Lock when another run (in this process or
	// another) holds the account's lock.
	// It is pipeline.ErrLocked, so the engine can tell it apart.
	ErrLocked = pipeline.ErrLocked
	// ErrSchemaTooNew is wrapped by Open when the file was written by a newer
	// mailferry whose schema this version does not know.
	ErrSchemaTooNew = errors.New("checkpoint: ledger schema is newer than this version of mailferry supports")
	// ErrNotLedger is wrapped by Open when the file is not a mailferry
	// ledger: not an SQLite database, or one another program made.
	ErrNotLedger = errors.New("checkpoint: not a mailferry checkpoint file")
	// ErrInvalidEntry is wrapped by Put for an entry without account or key,
	// with an unknown state or with an Updated time it cannot store.
	ErrInvalidEntry = errors.New("checkpoint: invalid entry")
	// ErrUnknownRun is wrapped by FinishRun when no run has the given id.
	ErrUnknownRun = errors.New("checkpoint: unknown run")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("checkpoint: ledger is closed")
)

const (
	fileMode = 0o600
	dirMode  = 0o700

	defaultBusyTimeout = 10 * time.Second
	readConns          = 4
)

// Options configures Open. A nil *Options means the defaults.
type Options struct {
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
	// LockWait is how long Lock keeps retrying while another run holds the
	// account's lock (cron overlap "wait" mode). Zero or less: fail at once
	// with ErrLocked.
	LockWait time.Duration
	// BusyTimeout is how long a statement waits for another process's write
	// transaction on the same file before failing. Zero means 10s.
	BusyTimeout time.Duration
	// Now returns the current time, for entries and runs without one.
	// Nil means time.Now.
	Now func() time.Time
}

// Ledger is the SQLite-backed checkpoint. It implements pipeline.Ledger and is
// safe for concurrent use by several goroutines.
type Ledger struct {
	path     string
	lockDir  string
	log      *slog.Logger
	lockWait time.Duration
	now      func() time.Time

	// w holds the single write connection: writers queue in Go instead of
	// spinning on SQLITE_BUSY. Other processes sharing the file are waited
	// for by busy_timeout. r is a pool of read-only connections; in WAL mode
	// they read a consistent snapshot while a write is in progress.
	w *sql.DB
	r *sql.DB

	mu     sync.Mutex
	closed bool
	held   map[string]*heldLock // account -> lock held through this Ledger
}

// Open opens the ledger at path, creating it (and its missing parent
// directories) when needed, and brings its schema up to date. It fails with
// an error wrapping ErrSchemaTooNew when the file has a newer schema.
// The caller must Close the ledger.
func Open(ctx context.Context, path string, opts *Options) (*Ledger, error) {
	if opts == nil {
		opts = &Options{}
	}
	if path == "" {
		return nil, errors.New("checkpoint: opening ledger: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", path, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = defaultBusyTimeout
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}

	if err := mkdirPrivate(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("creating directory for ledger %s: %w", abs, err)
	}
	created, err := createPrivate(abs)
	if err != nil {
		return nil, fmt.Errorf("creating ledger %s: %w", abs, err)
	}

	l := &Ledger{
		path:     abs,
		lockDir:  abs + ".locks",
		log:      log,
		lockWait: opts.LockWait,
		now:      now,
		held:     make(map[string]*heldLock),
	}

	if !created {
		// Before the writer's connection switches the file to WAL mode:
		// that alone would change another program's database.
		if err := inspect(ctx, abs, busy); err != nil {
			return nil, fmt.Errorf("opening ledger %s: %w", abs, err)
		}
	}
	l.w, err = sql.Open("sqlite", dsn(abs, busy, false))
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", abs, err)
	}
	l.w.SetMaxOpenConns(1)
	l.w.SetMaxIdleConns(1)
	l.w.SetConnMaxLifetime(0)
	l.w.SetConnMaxIdleTime(0)

	if err := l.migrate(ctx); err != nil {
		_ = l.w.Close()
		return nil, fmt.Errorf("opening ledger %s: %w", abs, err)
	}
	var mode string
	if err := l.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		_ = l.w.Close()
		return nil, fmt.Errorf("reading journal mode of ledger %s: %w", abs, err)
	}
	if !strings.EqualFold(mode, "wal") {
		// Happens on file systems without shared memory (some network
		// mounts). Still durable with synchronous=FULL, only less concurrent.
		log.Warn("ledger is not in WAL mode", "path", abs, "journal_mode", mode)
	}
	// SQLite gives -wal and -shm the database file's mode; make sure of it
	// for a file we created, whatever the umask was.
	if created {
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Chmod(abs+suffix, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
				_ = l.w.Close()
				return nil, fmt.Errorf("setting mode of %s%s: %w", abs, suffix, err)
			}
		}
	}

	l.r, err = sql.Open("sqlite", dsn(abs, busy, true))
	if err != nil {
		_ = l.w.Close()
		return nil, fmt.Errorf("opening ledger %s for reading: %w", abs, err)
	}
	l.r.SetMaxOpenConns(readConns)
	l.r.SetMaxIdleConns(readConns)
	if err := l.r.PingContext(ctx); err != nil {
		_ = l.w.Close()
		_ = l.r.Close()
		return nil, fmt.Errorf("opening ledger %s for reading: %w", abs, err)
	}
	log.Debug("ledger open", "path", abs, "created", created, "journal_mode", mode)
	return l, nil
}

// Path returns the absolute path of the ledger file.
func (l *Ledger) Path() string { return l.path }

// Close releases the locks still held through this ledger and closes the
// database. Calling it again returns nil.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	held := l.held
	l.held = nil
	l.mu.Unlock()

	var errs []error
	for account, h := range held {
		if err := h.release(); err != nil {
			errs = append(errs, fmt.Errorf("unlocking account %q: %w", account, err))
		}
	}
	if err := l.r.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing ledger %s: %w", l.path, err))
	}
	if err := l.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing ledger %s: %w", l.path, err))
	}
	return errors.Join(errs...)
}

func (l *Ledger) checkOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// dsn builds a modernc.org/sqlite data source name. The path goes through a
// file: URI so that '?', '#' and '%' in it are escaped rather than parsed.
func dsn(abs string, busy time.Duration, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// never fails half-way when upgrading from read to write.
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// mkdirPrivate creates dir and its missing parents with mode 0700. It does
// not touch directories that exist already.
func mkdirPrivate(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirPrivate(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return os.Chmod(dir, dirMode) // the umask may have removed bits
}

// createPrivate creates path with mode 0600 unless it exists, and reports
// whether it did.
func createPrivate(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := f.Chmod(fileMode); err != nil {
		_ = f.Close()
		return true, err
	}
	if err := f.Close(); err != nil {
		return true, err
	}
	// Sync the directory so that the new file's name survives a power loss;
	// SQLite does the same for the -wal file it creates.
	return true, syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return d.Close()
}

// nanos stores a time as Unix nanoseconds (UTC by definition).
func nanos(t time.Time) int64 { return t.UnixNano() }

// fromNanos is the inverse of nanos.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
