// Package checkpoint is mailferry's durable ledger (schema 5, see
// docs/ledger.md): for every account, where each source message stands
// (pending, done, skipped, failed, gone...), what is known of its folders,
// the runs made over it, and the hold that stops two runs from working on
// one account at once.
//
// It knows no protocol: keys are opaque strings chosen by the sources. It
// implements pipeline.Ledger, whose reads are batched (Lookup) or paged
// (Scan) and whose writes are one transaction each (Commit): nothing reads
// or builds a whole account.
//
// One package, engines by dialect: the SQL text, placeholders, how keys and
// times are bound, and the hold differ per engine; validation, the
// folder-id cache, change sets and pruning rules are written once. This
// version has the SQLite engine (modernc.org/sqlite); PostgreSQL adds a
// dialect and a lease-based hold.
//
// Durability: the SQLite database runs in WAL mode with synchronous=FULL,
// so a Commit that returned is on disk; killing the process right after it
// (kill -9) does not lose it. The file, its -wal and -shm companions and
// the lock files are created with mode 0600, new directories with 0700,
// whatever the umask.
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
	// ErrLocked is wrapped by Hold when another run (in this process or
	// another) holds the account. It is pipeline.ErrLocked.
	ErrLocked = pipeline.ErrLocked
	// ErrHoldLost is wrapped by Commit when this process does not hold the
	// account (never took it, released it, or lost its lease). It is
	// pipeline.ErrHoldLost.
	ErrHoldLost = pipeline.ErrHoldLost
	// ErrSchemaTooNew is wrapped by Open when the ledger was written by a
	// newer mailferry whose schema this version does not know.
	ErrSchemaTooNew = errors.New("checkpoint: ledger schema is newer than this version of mailferry supports: upgrade mailferry")
	// ErrSchemaTooOld is wrapped by Open for a ledger that must be upgraded
	// explicitly (a shared database other processes may be using).
	ErrSchemaTooOld = errors.New("checkpoint: ledger schema is older than this version of mailferry")
	// ErrNotLedger is wrapped by Open when the file holds tables that are
	// not a mailferry ledger; nothing is written to it.
	ErrNotLedger = errors.New("checkpoint: not a mailferry checkpoint file")
	// ErrInvalidEntry is wrapped by Commit for an entry without key, with
	// an unknown state, a digest that is not 64 hex digits, or a time it
	// cannot store; nothing is written.
	ErrInvalidEntry = errors.New("checkpoint: invalid entry")
	// ErrUnknownRun is wrapped by UpdateRun and FinishRun when no run has
	// the given id.
	ErrUnknownRun = errors.New("checkpoint: unknown run")
	// ErrUnknownAccount is wrapped when an account number names no account.
	ErrUnknownAccount = errors.New("checkpoint: unknown account")
	// ErrAccountConflict is wrapped by ResolveAccount when a config's id and
	// its servers name two different accounts.
	ErrAccountConflict = errors.New("checkpoint: the account's id and its servers name two different accounts")
	// ErrKeyScheme is wrapped by ResolveAccount when an account's source
	// would key its messages another way than the ledger recorded: every
	// message would look new.
	ErrKeyScheme = errors.New("checkpoint: the source keys messages another way than this account's ledger")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("checkpoint: ledger is closed")
)

const (
	fileMode = 0o600
	dirMode  = 0o700

	defaultBusyTimeout = 10 * time.Second
	readConns          = 4

	// DefaultRetention is how long gone and removed entries are kept
	// (ledger_retention).
	DefaultRetention = 30 * 24 * time.Hour
	// keepRuns is how many runs per account FinishRun keeps, besides the
	// newest successful one and the newest with an error.
	keepRuns = 100
	// usageDays is how long quota windows are kept.
	usageDays = 7
)

// Options configures Open. A nil *Options means the defaults.
type Options struct {
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
	// LockWait is how long Hold keeps retrying while another run holds the
	// account (cron overlap "wait" mode). Zero or less: fail at once with
	// ErrLocked.
	LockWait time.Duration
	// BusyTimeout is how long a statement waits for another process's write
	// transaction on the same file before failing. Zero means 10s.
	BusyTimeout time.Duration
	// Now returns the current time, for entries and runs without one and
	// for pruning. Nil means time.Now. Only tests set it.
	Now func() time.Time
	// Retention is how long entries of messages gone from the source are
	// kept (ledger_retention). Zero means DefaultRetention.
	Retention time.Duration
	// Crashpoint, when set, is called at the steps of a schema upgrade
	// ("upgrade: copied", just before its commit), and within a Commit
	// of Changes.Take or Changes.Adopt entries once they were checked,
	// before anything is written ("contest: checked"). Crash tests kill
	// the process there, race tests hold the transaction open; nothing
	// else sets it.
	Crashpoint func(point string)
	// FreeSpace, when set, replaces the file system's answer to how many
	// bytes are free in a directory (the upgrade's disk check). Only tests
	// set it.
	FreeSpace func(dir string) (uint64, error)

	// PostgreSQL only (postgres.go, lease.go):

	// Password is the database password (state_password_env,
	// state_password_file, MAILFERRY_STATE_PASSWORD); never in the URL.
	Password string
	// ConnectTimeout bounds each connection attempt; zero means 10 s.
	ConnectTimeout time.Duration
	// Worker names this process in leases, slots and runs; "" means
	// "<hostname>:<pid>:<start time>".
	Worker string
	// LeaseTTL is how long a lease lasts unrenewed; zero means 30 s. It is
	// renewed every quarter of it and counts as lost after half of it
	// without a successful renewal. Only tests shorten it.
	LeaseTTL time.Duration

	skipSchemaCheck bool // Upgrade: open a ledger of another schema
}

// defaults are the options both engines use, defaults filled in.
func (o *Options) defaults() (*slog.Logger, func() time.Time, time.Duration) {
	log, now, retention := o.Logger, o.Now, o.Retention
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if now == nil {
		now = time.Now
	}
	if retention <= 0 {
		retention = DefaultRetention
	}
	return log, now, retention
}

// Ledger is the checkpoint. It implements pipeline.Ledger and is safe for
// concurrent use by several goroutines.
type Ledger struct {
	path      string
	lockDir   string
	log       *slog.Logger
	lockWait  time.Duration
	now       func() time.Time
	retention time.Duration
	d         *dialect
	// crashpoint is Options.Crashpoint, never nil.
	crashpoint func(point string)

	// w holds the single write connection: writers queue in Go instead of
	// spinning on SQLITE_BUSY. Other processes sharing the file are waited
	// for by busy_timeout. r is a pool of read-only connections; in WAL mode
	// they read a consistent snapshot while a write is in progress.
	w *sql.DB
	r *sql.DB

	folders folderCache
	ups     upserts // the upsert statements Commit keeps prepared

	mu     sync.Mutex
	closed bool
	held   map[pipeline.AccountID]*hold

	// pg is the PostgreSQL engine's state (queue, leases, slots); nil for
	// SQLite.
	pg *pgEngine
}

// Open opens the ledger named by state: a SQLite file path, created (with
// its missing parent directories) when needed and brought up to schema 5
// (a schema-4 file is upgraded in place, in one transaction). It fails with
// an error wrapping ErrSchemaTooNew when the file has a newer schema, and
// ErrNotLedger when it holds tables of something else. The caller must
// Close the ledger.
func Open(ctx context.Context, state string, opts *Options) (*Ledger, error) {
	if opts == nil {
		opts = &Options{}
	}
	if state == "" {
		return nil, errors.New("checkpoint: opening ledger: empty path")
	}
	if IsPostgres(state) {
		return openPostgres(ctx, state, opts)
	}
	abs, err := filepath.Abs(state)
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", state, err)
	}
	log, now, retention := opts.defaults()
	busy := opts.BusyTimeout
	if busy <= 0 {
		busy = defaultBusyTimeout
	}

	if err := mkdirPrivate(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("creating directory for ledger %s: %w", abs, err)
	}
	created, err := createPrivate(abs)
	if err != nil {
		return nil, fmt.Errorf("creating ledger %s: %w", abs, err)
	}

	l := &Ledger{
		path:      abs,
		lockDir:   abs + ".locks",
		log:       log,
		lockWait:  opts.LockWait,
		now:       now,
		retention: retention,
		d:         sqliteDialect,
		held:      make(map[pipeline.AccountID]*hold),
	}
	l.crashpoint = opts.crashpoint()
	l.folders.init()

	l.w, err = openSQLite(dsn(abs, busy, false))
	if err != nil {
		return nil, fmt.Errorf("opening ledger %s: %w", abs, err)
	}
	l.w.SetMaxOpenConns(1)
	l.w.SetMaxIdleConns(1)
	l.w.SetConnMaxLifetime(0)
	l.w.SetConnMaxIdleTime(0)

	upgraded, err := l.migrate(ctx, opts)
	if err != nil {
		_ = l.w.Close()
		return nil, fmt.Errorf("opening ledger %s: %w", abs, err)
	}
	if upgraded {
		// Outside the transaction: the file shrinks to its new size. If
		// this is cut short, the ledger is a valid schema-5 file, only
		// larger; the free pages are reused.
		start := time.Now()
		if _, err := l.w.ExecContext(ctx, "VACUUM"); err != nil {
			log.Warn("compacting the upgraded ledger failed; it works, only larger", "path", abs, "error", err)
		} else {
			log.Info("ledger compacted after the upgrade", "path", abs, "took", time.Since(start).Round(time.Millisecond))
		}
	}
	mode, err := l.walMode(ctx)
	if err != nil {
		_ = l.w.Close()
		return nil, fmt.Errorf("setting the journal mode of ledger %s: %w", abs, err)
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

	l.r, err = openSQLite(dsn(abs, busy, true))
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

// Close releases the holds still taken through this ledger and closes the
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
	if l.pg != nil {
		errs = append(errs, l.pg.close(held))
	}
	for id, h := range held {
		if h.lock == nil {
			continue
		}
		if err := h.lock.release(); err != nil {
			errs = append(errs, fmt.Errorf("unlocking account %d: %w", id, err))
		}
	}
	if err := l.ups.close(); err != nil {
		errs = append(errs, fmt.Errorf("closing ledger %s: %w", l.path, err))
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
// walMode switches the file to WAL and returns the journal mode it is in.
// Like BEGIN IMMEDIATE (beginMigration), the switch can answer
// SQLITE_BUSY without calling the busy handler while another process
// opens the same new file (two cron runs starting at once), so a busy
// answer is retried for up to about ten seconds.
func (l *Ledger) walMode(ctx context.Context) (string, error) {
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		var mode string
		err := l.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || wait > 5*time.Second {
			return mode, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

func dsn(abs string, busy time.Duration, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// WAL is switched on by Open once the file is known to be a
		// ledger: a file refused is never written to.
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// never fails half-way when upgrading from read to write.
		q.Set("_txlock", "immediate")
		// The schema's CHECK (state IN (…)) costs SQLite an ephemeral
		// table built anew for every row an upsert writes (twice for one
		// that updates: a CHECK is coded without OP_Once), about a third
		// of a Commit's CPU and a sixth of mailferry's on *small*. What
		// the checks hold is checked before anything is written (validate:
		// states, folder sides and operations; the rest are constants), so
		// the write connection skips them; they stay in the schema for
		// every other writer (TestCommitStatesMatchSchemaChecks).
		q.Add("_pragma", "ignore_check_constraints(1)")
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

// nanos stores a time as Unix nanoseconds (UTC by definition); the zero
// time is 0 ("never").
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// storable reports whether t survives nanos and fromNanos (the years 1678
// to 2262).
func storable(t time.Time) bool {
	return t.IsZero() || fromNanos(nanos(t)).Equal(t)
}

// crashpoint returns Crashpoint, or one that does nothing.
func (o *Options) crashpoint() func(string) {
	if o.Crashpoint == nil {
		return func(string) {}
	}
	return o.Crashpoint
}
