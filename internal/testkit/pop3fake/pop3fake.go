// Package pop3fake is an in-process POP3 server (RFC 1939, with CAPA and
// optionally PIPELINING from RFC 2449, STLS from RFC 2595 and SASL PLAIN
// from RFC 5034) for fast tests and fault injection. It serves one maildrop
// on 127.0.0.1, sends each message's bytes exactly (byte-stuffed per RFC 1939
// §3), removes deleted messages only at QUIT (RFC 1939 §6), and records what
// clients sent.
//
// Faults (SetFaults) make it answer a command with a given -ERR line, stop
// responding, or cut or stall the connection part-way through a RETR. They
// apply to every session from the moment they are set, so a test can fail
// one session and let the next succeed.
package pop3fake

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Message is one message of the maildrop.
type Message struct {
	UIDL string
	Body []byte
	// ListSize, when not 0, is the size LIST and STAT announce instead of
	// len(Body): a server whose sizes are wrong.
	ListSize int
}

// listSize is the size LIST announces for m.
func (m Message) listSize() int {
	if m.ListSize != 0 {
		return m.ListSize
	}
	return len(m.Body)
}

// Options configures a Server. The zero value serves an empty maildrop to
// user "" with password "" in plaintext.
type Options struct {
	Messages []Message
	User     string
	Password string
	// MasterUser and MasterPassword, when set, may log in with AUTH PLAIN
	// and authorization identity User.
	MasterUser     string
	MasterPassword string

	NoUIDL bool // UIDL answers -ERR and CAPA does not list it
	NoCAPA bool // CAPA answers -ERR
	NoUSER bool // USER answers -ERR and CAPA lists only SASL PLAIN
	// APOPOnly puts an APOP timestamp in the greeting (RFC 1939 §7) and
	// accepts APOP; USER and AUTH answer -ERR and CAPA lists neither.
	APOPOnly bool
	// UTF8 lists UTF8 in CAPA (RFC 6856) and, as Courier's pop3d does,
	// serves a message with 8-bit bytes in its header as a notice with a
	// fresh MIME boundary on each RETR unless the client sent UTF8.
	UTF8 bool
	// Pipelining makes CAPA list PIPELINING (RFC 2449 §6.6). The server
	// answers commands in order whether or not it is set, as a real one
	// reading from a stream does.
	Pipelining bool

	// TLSConfig is the server's TLS configuration (with a certificate) for
	// ImplicitTLS or STLS.
	TLSConfig   *tls.Config
	ImplicitTLS bool // TLS from the first byte
	STLS        bool // offer and accept STLS

	// Greeting replaces "+OK pop3fake ready" (without CRLF).
	Greeting string
	// Faults are the initial faults; see SetFaults.
	Faults Faults
}

// Stop is what a RETR fault does after Faults.RetrStopAfter body bytes.
type Stop int

const (
	StopNone Stop = iota // send the whole message
	StopCut              // close the connection
	StopHang             // keep the connection open and send nothing more
)

// Faults are injected failures.
type Faults struct {
	// Err maps a command to the line sent instead of executing it, e.g.
	// "PASS" -> "-ERR [IN-USE] locked". A key is an upper-case verb
	// ("RETR") or a whole upper-case command line ("RETR 2"), which wins.
	// The key "GREETING" replaces the greeting.
	Err map[string]string
	// Hang is a verb after which the server reads on but never answers
	// again; "GREETING" hangs before the greeting.
	Hang string
	// RetrStop, with RetrStopAfter, cuts or stalls every RETR after that
	// many bytes of the (stuffed) body that follows the +OK line.
	RetrStop      Stop
	RetrStopAfter int
	// RetrStopMessage, when not 0, limits RetrStop to the RETR of that
	// message number.
	RetrStopMessage int
}

// Command is one command line a client sent.
type Command struct {
	Session int    // 1 for the first connection, and so on
	Line    string // as received, without CRLF (passwords included)
	TLS     bool   // whether the session was under TLS when it was sent
}

type stored struct {
	id int
	Message
}

// Server is a fake POP3 server. Its methods are safe for concurrent use.
type Server struct {
	opts Options

	mu       sync.Mutex
	msgs     []stored
	nextID   int
	deleted  []Message
	commands []Command
	faults   Faults
	locked   bool
	sessions int
	conns    map[net.Conn]struct{}
	ln       net.Listener
	closed   bool

	wg sync.WaitGroup
}

// New returns a server that is not listening yet; see Start.
func New(opts Options) *Server {
	s := &Server{opts: opts, conns: map[net.Conn]struct{}{}}
	s.SetFaults(opts.Faults)
	s.Add(opts.Messages...)
	return s
}

// NewStarted starts a server for the test and closes it when the test ends.
func NewStarted(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	if err := s.Start(); err != nil {
		tb.Fatalf("starting fake POP3 server: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Start listens on 127.0.0.1 on a free port and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("pop3fake: listening: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

// Addr is the "host:port" the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln.Addr().String()
}

// Close stops listening, drops every connection (without committing their
// deletions) and waits for the sessions to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// Add appends messages to the maildrop; sessions that are already logged in
// do not see them (RFC 1939 §4: the maildrop is fixed for a session).
func (s *Server) Add(msgs ...Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.nextID++
		m.Body = bytes.Clone(m.Body)
		s.msgs = append(s.msgs, stored{id: s.nextID, Message: m})
	}
}

// SetFaults replaces the faults, for every session from now on. f.Err is
// copied.
func (s *Server) SetFaults(f Faults) {
	f.Err = maps.Clone(f.Err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Messages returns the maildrop as it is now.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = Message{UIDL: m.UIDL, Body: bytes.Clone(m.Body)}
	}
	return out
}

// Deleted returns the messages removed by QUIT, in the order removed.
func (s *Server) Deleted() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.deleted...)
}

// Commands returns every command line received, in order.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.commands...)
}

// Sessions returns how many connections were accepted.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.sessions++
		id := s.sessions
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess := &session{srv: s, id: id, raw: c}
			sess.serve()
			_ = c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Stuff returns the wire form of a RETR body for msg (RFC 1939 §3): a "."
// added to every line that starts with ".", where lines end at CRLF; a CRLF
// added if msg is not empty and does not end in CRLF; then ".CRLF".
func Stuff(msg []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(msg) + len(msg)/64 + 5)
	atLineStart := true
	for i, c := range msg {
		if atLineStart && c == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(c)
		atLineStart = c == '\n' && i > 0 && msg[i-1] == '\r'
	}
	if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// session is one connection.
type session struct {
	srv  *Server
	id   int
	raw  net.Conn
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tls  bool

	user      string // from USER
	timestamp string // the greeting's APOP timestamp, "" when none
	utf8      bool   // the client sent UTF8
	retrs     int    // RETRs served, for fresh boundaries
	authed    bool
	msgs      []stored // the maildrop snapshot taken at login
	deleted   map[int]bool
}

var errEnd = errors.New("session ended")

func (ss *session) setConn(c net.Conn) {
	ss.conn = c
	ss.r = bufio.NewReader(c)
	ss.w = bufio.NewWriter(c)
}

func (ss *session) serve() {
	opts := ss.srv.opts
	ss.setConn(ss.raw)
	defer ss.unlock()
	if opts.ImplicitTLS {
		tc := tls.Server(ss.raw, opts.TLSConfig)
		if err := tc.Handshake(); err != nil {
			return
		}
		ss.setConn(tc)
		ss.tls = true
	}
	f := ss.srv.currentFaults()
	if strings.EqualFold(f.Hang, "GREETING") {
		ss.hang()
		return
	}
	greeting := "+OK pop3fake ready"
	if opts.APOPOnly {
		greeting += " " + apopTimestamp
	}
	if opts.Greeting != "" {
		greeting = opts.Greeting
	}
	if line, ok := f.Err["GREETING"]; ok {
		greeting = line
	}
	ss.timestamp = greetingTimestamp(greeting)
	if ss.reply(greeting) != nil {
		return
	}
	for {
		line, err := ss.r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		ss.srv.mu.Lock()
		ss.srv.commands = append(ss.srv.commands, Command{Session: ss.id, Line: line, TLS: ss.tls})
		ss.srv.mu.Unlock()
		if err := ss.handle(line); err != nil {
			return
		}
	}
}

// hang reads and discards until the peer or the server closes the conn.
func (ss *session) hang() {
	_, _ = io.Copy(io.Discard, ss.conn)
}

func (ss *session) unlock() {
	if ss.authed {
		ss.srv.mu.Lock()
		ss.srv.locked = false
		ss.srv.mu.Unlock()
		ss.authed = false
	}
}

func (ss *session) reply(lines ...string) error {
	for _, l := range lines {
		if _, err := ss.w.WriteString(l + "\r\n"); err != nil {
			return err
		}
	}
	return ss.w.Flush()
}

func (ss *session) handle(line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	f := ss.srv.currentFaults()
	if f.Hang != "" && strings.EqualFold(f.Hang, verb) {
		ss.hang()
		return errEnd
	}
	if e, ok := f.Err[strings.ToUpper(line)]; ok {
		return ss.reply(e)
	}
	if e, ok := f.Err[verb]; ok {
		return ss.reply(e)
	}
	switch verb {
	case "CAPA":
		return ss.capa()
	case "UTF8":
		if !ss.srv.opts.UTF8 {
			return ss.reply("-ERR unknown command")
		}
		ss.utf8 = true
		return ss.reply("+OK UTF8 enabled")
	case "QUIT":
		return ss.quit()
	}
	if !ss.authed {
		switch verb {
		case "STLS":
			return ss.stls()
		case "APOP":
			return ss.apop(arg)
		case "USER":
			if ss.srv.opts.NoUSER || ss.srv.opts.APOPOnly {
				return ss.reply("-ERR USER not supported, use AUTH")
			}
			ss.user = arg
			return ss.reply("+OK send PASS")
		case "PASS":
			if ss.user == "" {
				return ss.reply("-ERR USER first")
			}
			user := ss.user
			ss.user = ""
			o := ss.srv.opts
			if user != o.User || arg != o.Password {
				return ss.reply("-ERR [AUTH] invalid user name or password")
			}
			return ss.login()
		case "AUTH":
			if ss.srv.opts.APOPOnly {
				return ss.reply("-ERR AUTH not supported, use APOP")
			}
			return ss.auth(arg)
		}
		return ss.reply("-ERR unknown command or not logged in")
	}
	switch verb {
	case "STAT":
		n, size := 0, 0
		for i, m := range ss.msgs {
			if !ss.deleted[i] {
				n++
				size += m.listSize()
			}
		}
		return ss.reply(fmt.Sprintf("+OK %d %d", n, size))
	case "LIST", "UIDL":
		if verb == "UIDL" && ss.srv.opts.NoUIDL {
			return ss.reply("-ERR unknown command")
		}
		field := func(i int) string {
			if verb == "UIDL" {
				return ss.msgs[i].UIDL
			}
			return strconv.Itoa(ss.msgs[i].listSize())
		}
		if arg != "" {
			i, err := ss.message(arg)
			if err != nil {
				return ss.reply("-ERR " + err.Error())
			}
			return ss.reply(fmt.Sprintf("+OK %d %s", i+1, field(i)))
		}
		lines := []string{"+OK listing follows"}
		for i := range ss.msgs {
			if !ss.deleted[i] {
				lines = append(lines, fmt.Sprintf("%d %s", i+1, field(i)))
			}
		}
		return ss.reply(append(lines, ".")...)
	case "RETR":
		i, err := ss.message(arg)
		if err != nil {
			return ss.reply("-ERR " + err.Error())
		}
		if f.RetrStopMessage != 0 && f.RetrStopMessage != i+1 {
			f.RetrStop = StopNone
		}
		body := ss.msgs[i].Body
		if ss.srv.opts.UTF8 && !ss.utf8 && eightBitHeader(body) {
			ss.retrs++
			body = []byte(fmt.Sprintf("Subject: Cannot display Unicode content\r\nMime-Version: 1.0\r\n"+
				"Content-Type: multipart/mixed; boundary=\"=_%d-%d\"\r\n\r\n--=_%d-%d\r\n\r\nThis message was Unicode.\r\n--=_%d-%d--\r\n",
				ss.id, ss.retrs, ss.id, ss.retrs, ss.id, ss.retrs))
		}
		return ss.retr(body, f)
	case "DELE":
		i, err := ss.message(arg)
		if err != nil {
			return ss.reply("-ERR " + err.Error())
		}
		ss.deleted[i] = true
		return ss.reply(fmt.Sprintf("+OK message %d deleted", i+1))
	case "RSET":
		ss.deleted = map[int]bool{}
		return ss.reply("+OK")
	case "NOOP":
		return ss.reply("+OK")
	}
	return ss.reply("-ERR unknown command")
}

// message parses a message number and checks it exists and is not deleted.
func (ss *session) message(arg string) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(ss.msgs) {
		return 0, errors.New("no such message")
	}
	if ss.deleted[n-1] {
		return 0, errors.New("message already deleted")
	}
	return n - 1, nil
}

func (ss *session) capa() error {
	o := ss.srv.opts
	if o.NoCAPA {
		return ss.reply("-ERR unknown command")
	}
	lines := []string{"+OK capability list follows"}
	if !o.NoUSER && !o.APOPOnly {
		lines = append(lines, "USER")
	}
	if !o.APOPOnly {
		lines = append(lines, "SASL PLAIN")
	}
	lines = append(lines, "RESP-CODES", "AUTH-RESP-CODE")
	if o.UTF8 {
		lines = append(lines, "UTF8 USER")
	}
	if !o.NoUIDL {
		lines = append(lines, "UIDL")
	}
	if o.Pipelining {
		lines = append(lines, "PIPELINING")
	}
	if o.STLS && !ss.tls && !ss.authed {
		lines = append(lines, "STLS")
	}
	lines = append(lines, "IMPLEMENTATION pop3fake", ".")
	return ss.reply(lines...)
}

func (ss *session) stls() error {
	o := ss.srv.opts
	if !o.STLS || ss.tls || o.TLSConfig == nil {
		return ss.reply("-ERR STLS not available")
	}
	if err := ss.reply("+OK begin TLS negotiation"); err != nil {
		return err
	}
	tc := tls.Server(ss.raw, o.TLSConfig)
	if err := tc.Handshake(); err != nil {
		return err
	}
	ss.setConn(tc)
	ss.tls = true
	ss.user = ""
	return nil
}

func (ss *session) auth(arg string) error {
	mech, ir, hasIR := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return ss.reply("-ERR unsupported SASL mechanism")
	}
	if !hasIR {
		if err := ss.reply("+ "); err != nil {
			return err
		}
		line, err := ss.r.ReadString('\n')
		if err != nil {
			return err
		}
		ir = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		ss.srv.mu.Lock()
		ss.srv.commands = append(ss.srv.commands, Command{Session: ss.id, Line: ir, TLS: ss.tls})
		ss.srv.mu.Unlock()
		if ir == "*" {
			return ss.reply("-ERR authentication cancelled")
		}
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		return ss.reply("-ERR invalid base64")
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return ss.reply("-ERR malformed PLAIN response")
	}
	authz, authc, pass := parts[0], parts[1], parts[2]
	o := ss.srv.opts
	ok := authc == o.User && pass == o.Password && (authz == "" || authz == o.User)
	ok = ok || (o.MasterUser != "" && authc == o.MasterUser && pass == o.MasterPassword && authz == o.User)
	if !ok {
		return ss.reply("-ERR [AUTH] authentication failed")
	}
	return ss.login()
}

// apopTimestamp is the timestamp of an APOPOnly server's greeting.
const apopTimestamp = "<1896.697170952@pop3fake.test>"

// greetingTimestamp returns the "<…>" of a greeting, "" when none.
func greetingTimestamp(g string) string {
	i := strings.IndexByte(g, '<')
	j := strings.LastIndexByte(g, '>')
	if i < 0 || j < i {
		return ""
	}
	return g[i : j+1]
}

// apop checks "name digest" (RFC 1939 §7): digest is the MD5, in lower-case
// hex, of the timestamp followed by the password.
func (ss *session) apop(arg string) error {
	o := ss.srv.opts
	if !o.APOPOnly {
		return ss.reply("-ERR APOP not supported")
	}
	name, digest, _ := strings.Cut(arg, " ")
	sum := md5.Sum([]byte(ss.timestamp + o.Password))
	if name != o.User || digest != hex.EncodeToString(sum[:]) {
		return ss.reply("-ERR [AUTH] authentication failed")
	}
	return ss.login()
}

// login takes the maildrop lock and the snapshot (RFC 1939 §4).
func (ss *session) login() error {
	ss.srv.mu.Lock()
	if ss.srv.locked {
		ss.srv.mu.Unlock()
		return ss.reply("-ERR [IN-USE] maildrop already locked")
	}
	ss.srv.locked = true
	ss.msgs = append([]stored(nil), ss.srv.msgs...)
	ss.srv.mu.Unlock()
	ss.authed = true
	ss.deleted = map[int]bool{}
	return ss.reply(fmt.Sprintf("+OK maildrop has %d messages", len(ss.msgs)))
}

func (ss *session) retr(body []byte, f Faults) error {
	if err := ss.reply("+OK message follows"); err != nil {
		return err
	}
	wire := Stuff(body)
	if f.RetrStop == StopNone || f.RetrStopAfter >= len(wire) {
		if _, err := ss.w.Write(wire); err != nil {
			return err
		}
		return ss.w.Flush()
	}
	if _, err := ss.w.Write(wire[:max(f.RetrStopAfter, 0)]); err != nil {
		return err
	}
	if err := ss.w.Flush(); err != nil {
		return err
	}
	if f.RetrStop == StopHang {
		ss.hang()
	}
	return errEnd
}

// quit enters the UPDATE state (RFC 1939 §6) when logged in.
func (ss *session) quit() error {
	if ss.authed {
		ss.srv.mu.Lock()
		gone := map[int]bool{}
		for i, m := range ss.msgs {
			if ss.deleted[i] {
				gone[m.id] = true
				ss.srv.deleted = append(ss.srv.deleted, Message{UIDL: m.UIDL, Body: bytes.Clone(m.Body)})
			}
		}
		kept := ss.srv.msgs[:0]
		for _, m := range ss.srv.msgs {
			if !gone[m.id] {
				kept = append(kept, m)
			}
		}
		ss.srv.msgs = kept
		ss.srv.mu.Unlock()
	}
	// The maildrop is free once the client reads +OK: a client that logs
	// in again at once must not get [IN-USE].
	ss.unlock()
	_ = ss.reply("+OK bye")
	return errEnd
}

// eightBitHeader reports whether msg's header has a byte above 0x7f.
func eightBitHeader(msg []byte) bool {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	for _, c := range msg[:end] {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
