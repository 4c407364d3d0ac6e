// Package statuspage serves mailferry's status page: a small web app built
// into the binary (plain HTML, CSS and JavaScript, nothing fetched from
// elsewhere) that shows every account of a migration with its state,
// progress, rate, ETA and last error in plain words with its fix, totals
// and a throughput chart, a detail view per account, and the same data as
// JSON for scripts. It reads the ledger through the Ledger interface it
// declares (LedgerOf adapts the SQLite checkpoint) and, during a run in
// the same process, the engine's progress (Live).
//
// Security: it is read-only unless Actions is set; actions need the token.
// It listens on loopback unless told otherwise, and an address other than
// loopback needs the token for reading too (the page shows every user's
// address). The token is compared in constant time; a browser logs in
// once and gets a session cookie (HttpOnly, SameSite=Strict) derived from
// the token. On loopback, requests must name a loopback host (no DNS
// rebinding). Cookie-authenticated actions must come from the page's own
// origin.
package statuspage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/secret"
)

//go:embed web
var webFS embed.FS

// MinTokenLength is the shortest token accepted.
const MinTokenLength = 16

// Errors New returns for options that would expose the page.
var (
	// ErrTokenRequired: the address is not loopback, or actions are on,
	// and there is no token.
	ErrTokenRequired = errors.New("statuspage: a token is required")
	// ErrBadAddr: the address is not host:port.
	ErrBadAddr = errors.New("statuspage: bad listen address")
)

// Options configure a Server.
type Options struct {
	// Addr is where to listen: host:port, or a port alone for
	// 127.0.0.1:port. A host other than loopback needs Token.
	Addr string
	// Token guards actions and, on an address other than loopback,
	// reading; the zero Value: none.
	Token secret.Value
	// Actions enables pause, resume and retry (needs Token).
	Actions bool
	// Accounts are the accounts shown, in this order; nil: every account
	// the ledger knows, named by its key.
	Accounts []Account
	Ledger   Ledger
	// Live follows a run in this process; nil when none (status --serve).
	Live *Live
	// OnRetry, when set, is called after a retry request was recorded
	// (a service uses it to poll the account at once).
	OnRetry func(key string)
	Logger  *slog.Logger
	Now     func() time.Time
}

// Server is the status page's HTTP server.
type Server struct {
	opts        Options
	log         *slog.Logger
	now         func() time.Time
	host        string // the listen host
	loopback    bool
	readToken   bool   // reading needs the token
	session     []byte // the session cookie's value: HMAC of the token
	handler     http.Handler
	cacheMu     sync.Mutex
	cache       map[string]Summary
	cacheAt     time.Time
	cacheTTL    time.Duration
	cacheGen    uint64
	historyMu   sync.Mutex
	history     []Sample
	historyAt   time.Time
	srv         *http.Server
	ln          net.Listener
	defaultAddr bool
}

// cookieName is the session cookie.
const cookieName = "mailferry_ui"

// New checks opts and builds the server; it does not listen yet.
func New(opts Options) (*Server, error) {
	if opts.Ledger == nil {
		return nil, errors.New("statuspage: no ledger")
	}
	addr, err := NormalizeAddr(opts.Addr)
	if err != nil {
		return nil, err
	}
	opts.Addr = addr
	host, _, _ := net.SplitHostPort(addr)
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, host: host, loopback: IsLoopback(host),
		cacheTTL: time.Second}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	token := opts.Token.Reveal()
	switch {
	case token == "" && !s.loopback:
		return nil, fmt.Errorf("%w: %s is not a loopback address, and the page shows every user's address: set --ui-token-file (ui_token_file) or listen on 127.0.0.1", ErrTokenRequired, addr)
	case token == "" && opts.Actions:
		return nil, fmt.Errorf("%w: --ui-actions (ui_actions) needs --ui-token-file (ui_token_file)", ErrTokenRequired)
	case token != "" && len(token) < MinTokenLength:
		return nil, fmt.Errorf("statuspage: the token has %d characters; use at least %d (e.g. openssl rand -hex 16)", len(token), MinTokenLength)
	}
	s.readToken = !s.loopback
	if token != "" {
		mac := hmac.New(sha256.New, []byte(token))
		mac.Write([]byte("mailferry status page session v1"))
		s.session = []byte(hex.EncodeToString(mac.Sum(nil)))
	}
	if opts.Live != nil {
		opts.Live.setBase(func(key string) (int, int, int64) {
			sum, err := opts.Ledger.Summary(context.Background(), key)
			if err != nil {
				s.log.Warn("status page: reading an account's counts as it starts", "error", err)
			}
			return sum.Done, sum.Skipped, sum.DoneBytes
		})
	}
	s.handler = s.routes()
	return s, nil
}

// NormalizeAddr turns a port alone into 127.0.0.1:port and checks
// host:port.
func NormalizeAddr(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("%w: empty (want host:port, e.g. 127.0.0.1:8080)", ErrBadAddr)
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		addr = "127.0.0.1:" + addr
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v (want host:port, e.g. 127.0.0.1:8080)", ErrBadAddr, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%w %q: port %q is not a number from 0 to 65535", ErrBadAddr, addr, port)
	}
	return addr, nil
}

// IsLoopback reports whether host (from host:port) only reaches this
// machine: "localhost" or a loopback IP. An empty host (every interface)
// is not.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler is the page and its API, for tests and for callers that serve
// it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on the address and serves until Close. It returns once
// it listens, so a taken port is reported at once (an error wrapping the
// listener's). It logs the URL.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("serving the status page on %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("the status page stopped", "error", err)
		}
	}()
	attrs := []any{"url", s.URL(), "actions", s.opts.Actions, "token_for_reading", s.readToken}
	if !s.loopback {
		attrs = append(attrs, "note", "listening beyond loopback: reading needs the token")
	}
	s.log.Info("serving the status page", attrs...)
	return nil
}

// URL is the page's address (after Start, with the port the system chose
// for port 0).
func (s *Server) URL() string {
	addr := s.opts.Addr
	if s.ln != nil {
		addr = s.ln.Addr().String()
	}
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// Close stops serving, waiting up to a few seconds for requests in
// flight (a report download is cut).
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// routes builds the mux, wrapped in the host check.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", s.page(files))
	mux.Handle("GET /app.js", s.page(files))
	mux.Handle("GET /style.css", s.page(files))
	mux.HandleFunc("GET /api/accounts", s.read(s.handleAccounts))
	mux.HandleFunc("GET /api/accounts/{name}", s.read(s.handleAccount))
	mux.HandleFunc("POST /api/accounts/{name}/retry", s.action(s.handleRetry))
	mux.HandleFunc("POST /api/accounts/{name}/pause", s.action(s.handlePause(true)))
	mux.HandleFunc("POST /api/accounts/{name}/resume", s.action(s.handlePause(false)))
	mux.HandleFunc("GET /api/report", s.read(s.handleReport))
	mux.HandleFunc("POST /api/session", s.handleLogin)
	mux.HandleFunc("DELETE /api/session", s.handleLogout)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s.checkHost(securityHeaders(mux))
}

// page serves the embedded files; they hold no data, so anyone who may
// connect may load them (the data needs the token where reading does).
func (s *Server) page(files http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// checkHost refuses, on a loopback listener, requests for a host name
// that is not loopback: a web page elsewhere could otherwise point its
// own name at 127.0.0.1 (DNS rebinding) and read the page.
func (s *Server) checkHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.loopback {
			host := r.Host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				host = hh
			}
			if !IsLoopback(strings.Trim(host, "[]")) {
				writeError(w, http.StatusMisdirectedRequest, "this page answers to localhost and 127.0.0.1 only")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// authenticated reports whether r carries the token (Authorization:
// Bearer) or the session cookie, and which.
func (s *Server) authenticated(r *http.Request) (ok, byCookie bool) {
	if s.session == nil {
		return false, false
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		tok, found := strings.CutPrefix(auth, "Bearer ")
		return found && subtle.ConstantTimeCompare([]byte(tok), []byte(s.opts.Token.Reveal())) == 1, false
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), s.session) == 1, true
	}
	return false, false
}

// read guards the read API: open on loopback, the token elsewhere.
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.readToken {
			if ok, _ := s.authenticated(r); !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mailferry"`)
				writeError(w, http.StatusUnauthorized, "this page needs the token (Authorization: Bearer, or log in on the page)")
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	}
}

// action guards the actions: 403 when they are off, 401 without the
// token, 403 for a cookie sent from another origin.
func (s *Server) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.opts.Actions {
			writeError(w, http.StatusForbidden, "actions are off: start with --ui-actions (ui_actions = true) and a token")
			return
		}
		ok, byCookie := s.authenticated(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailferry"`)
			writeError(w, http.StatusUnauthorized, "actions need the token (Authorization: Bearer, or log in on the page)")
			return
		}
		if byCookie && !sameOrigin(r) {
			writeError(w, http.StatusForbidden, "this action must come from the status page itself")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	}
}

// sameOrigin reports whether a browser request came from the page's own
// origin: Sec-Fetch-Site, else Origin, must say so.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	return origin != "" && (origin == "http://"+r.Host || origin == "https://"+r.Host)
}
