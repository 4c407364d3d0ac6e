// Package postgres starts private PostgreSQL servers for tests and the
// bench: each one initdb'd in its own temporary directory, listening on
// 127.0.0.1 on a free port with its own socket directory, stopped by the
// test. Several may run at once (one per test binary, or more).
//
// PostgreSQL refuses to run as root (initdb and postgres both check), and
// CI runs as root: then the kit runs both as the unprivileged user nobody
// (MAILFERRY_PG_USER names another one), owning the instance's directory.
// As any other user it runs them as that user.
//
// Every instance has a superuser "postgres" and a role "mailferry" that
// logs in over TCP with a password (scram-sha-256): the product is tested
// with password logins, never trust. NewDatabase makes an empty database
// owned by mailferry for one test.
//
// The binaries are those of the newest /usr/lib/postgresql/*/bin (Debian's
// postgresql package), or of MAILFERRY_PG_BIN.
package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is the non-superuser role databases made by NewDatabase belong to.
const Role = "mailferry"

// startTimeout bounds the wait for a new instance to accept connections;
// stopTimeout the wait after a fast shutdown before SIGKILL.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
	portAttempts = 3
)

// Options configure one instance.
type Options struct {
	// MaxConnections is PostgreSQL's max_connections; 0: 100.
	MaxConnections int
	// Settings are more "name=value" server settings (-c).
	Settings []string
}

// Server is one running instance.
type Server struct {
	dir      string
	port     int
	password string // of both roles
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	waitErr  error
	dbs      atomic.Int64
	stopOnce sync.Once
	stopErr  error
}

// BinDir returns the directory of the PostgreSQL server binaries.
func BinDir() (string, error) {
	if d := os.Getenv("MAILFERRY_PG_BIN"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no PostgreSQL server binaries: install Debian's postgresql package (scripts/test.sh does), or set MAILFERRY_PG_BIN")
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

// version is the major version in /usr/lib/postgresql/<v>/bin/initdb.
func version(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// Available reports why no instance can be started, nil when one can.
func Available() error {
	dir, err := BinDir()
	if err != nil {
		return err
	}
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("PostgreSQL binary %s: %w", b, err)
		}
	}
	return nil
}

// runAs returns the credentials the server runs with: nil when this
// process is not root, else the unprivileged user's.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv("MAILFERRY_PG_USER")
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL cannot run as root; looking up the user %q to run it as: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %q is root: PostgreSQL refuses it", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// StartInstance initdb's a cluster in dir (which must exist, empty) and
// starts it. Stop stops it; removing dir is the caller's.
func StartInstance(ctx context.Context, dir string, opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	s := &Server{dir: dir, password: hex.EncodeToString(pw), logPath: filepath.Join(dir, "postgres.log")}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, data, sock, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("giving %s to the PostgreSQL user: %w", p, err)
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "--encoding=UTF8", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	_ = os.Remove(pwfile)

	maxConns := opts.MaxConnections
	if maxConns <= 0 {
		maxConns = 100
	}
	for attempt := 1; ; attempt++ {
		s.port, err = freePort()
		if err != nil {
			return nil, err
		}
		err = s.start(ctx, bin, data, sock, cred, maxConns, opts.Settings)
		if err == nil {
			break
		}
		if attempt >= portAttempts || !strings.Contains(s.LogTail(20), "could not bind") {
			return nil, err
		}
	}
	if err := s.setup(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// start runs postgres and waits until it accepts connections.
func (s *Server) start(ctx context.Context, bin, data, sock string, cred *syscall.Credential, maxConns int, settings []string) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"-D", data, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sock,
		"-c", "max_connections=" + strconv.Itoa(maxConns),
		"-c", "shared_buffers=16MB",
		// A test cluster is thrown away: no need to survive a power
		// loss. synchronous_commit stays on: the ledger refuses a
		// session without it.
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "log_min_messages=warning",
	}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a Ctrl-C meant for the test does not stop
	// it before the test does; a fast shutdown if the test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := s.connect(ctx, "postgres", "postgres")
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited at start (%v): %s", s.waitErr, s.LogTail(20))
		case <-ctx.Done():
			s.kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return fmt.Errorf("postgres did not accept connections within %v: %v\n%s", startTimeout, err, s.LogTail(20))
		}
	}
}

// setup makes the mailferry role.
func (s *Server) setup(ctx context.Context) error {
	return s.Exec(ctx, "postgres", fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, Role, s.password))
}

// kill ends a server that did not start.
func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// connect opens a connection as role to database db, with the password.
func (s *Server) connect(ctx context.Context, role, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.url(role, db))
	if err != nil {
		return nil, err
	}
	cfg.Password = s.password
	cfg.ConnectTimeout = 5 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

func (s *Server) url(role, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(role), Host: s.Addr(), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Password is the password of the roles postgres and mailferry.
func (s *Server) Password() string { return s.password }

// Exec runs sql in database db as the superuser.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	c, err := s.connect(ctx, "postgres", db)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", db, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", firstLine(sql), err)
	}
	return nil
}

// QueryInt runs a query returning one integer in database db as the
// superuser.
func (s *Server) QueryInt(ctx context.Context, db, sql string, args ...any) (int64, error) {
	c, err := s.connect(ctx, "postgres", db)
	if err != nil {
		return 0, fmt.Errorf("connecting to %s: %w", db, err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", firstLine(sql), err)
	}
	return n, nil
}

// CreateDatabase makes an empty database owned by Role and returns its
// name and URL (without password: give Password through the product's
// password settings).
func (s *Server) CreateDatabase(ctx context.Context) (name, dbURL string, err error) {
	name = fmt.Sprintf("ledger%d", s.dbs.Add(1))
	if err := s.Exec(ctx, "postgres", fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, name, Role)); err != nil {
		return "", "", err
	}
	return name, s.url(Role, name), nil
}

// URL returns the URL of database db for Role, without password.
func (s *Server) URL(db string) string { return s.url(Role, db) }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop shuts the server down (fast shutdown: clients are disconnected),
// killing it if it does not stop in time. Later calls return the first
// result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("postgres did not stop within %v; killed", stopTimeout)
		}
	})
	return s.stopErr
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// Proxy forwards TCP to a server until Cut: then every connection, open or
// new, goes silent (nothing forwarded either way, nothing closed), as a
// network that drops packets looks to a client. Close ends it.
type Proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	cut      bool
	conns    []net.Conn
}

// StartProxy listens on a free port of 127.0.0.1 and forwards to upstream.
func StartProxy(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream}
	go p.accept()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut silences every connection from now on.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

// Heal ends the cut as a network that comes back does: the connections
// made before it are reset (their streams lost bytes), new ones are
// forwarded again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.cut = false
}

func (p *Proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // silent
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		go p.pump(c, up)
		go p.pump(up, c)
	}
}

// pump copies until the cut, then reads and drops.
func (p *Proxy) pump(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.isCut() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
