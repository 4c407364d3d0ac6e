// Package providerfake runs in-process IMAP servers on 127.0.0.1 that
// behave as the big hosted providers are documented to behave, for the
// tests of mailferry's provider profiles (package provider): nothing
// outside the machine can be reached, so Gmail and Microsoft 365 are
// emulated from their published behaviour (docs/servers.md says which).
//
// A Server is a small IMAP4rev1 server (RFC 3501) with the extensions
// mailferry uses (UIDPLUS, MULTIAPPEND, LITERAL+/-, SPECIAL-USE, ESEARCH,
// NAMESPACE, ID, UNSELECT, APPENDLIMIT, BINARY's literal8 in APPEND and
// BINARY.PEEK[] in FETCH) and Gmail's X-GM-EXT-1 (X-GM-MSGID, X-GM-THRID,
// X-GM-LABELS in FETCH, X-GM-MSGID in SEARCH), whose quirks are switched
// on by Options: Gmail's labels (one message shown in the folder of each
// of its labels and in All Mail), duplicates dropped at APPEND, a daily
// upload limit, flags APPEND ignores, folder names compared without case,
// folders of items that are not mail, a connection dropped after so many errors, a cap on a
// user's connections, and Hook, which scripts any reply (throttling). The
// presets Gmail and Microsoft365 set them as the providers do.
//
// It speaks plain TCP only: tests connect with ?tls=none and
// --allow-plaintext. It is for tests, not for mail.
package providerfake

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Duplicates says what an APPEND of a message whose Message-ID the account
// already holds does.
type Duplicates int

const (
	// DuplicatesKept stores it as any other message.
	DuplicatesKept Duplicates = iota
	// DuplicatesDroppedUID answers OK with the APPENDUID of the message
	// already there (in the target folder: Gmail adds the folder's label
	// to it) and stores nothing.
	DuplicatesDroppedUID
	// DuplicatesDropped answers OK without APPENDUID and stores nothing.
	DuplicatesDropped
)

// Options configure a Server. The zero value is a plain server with
// IMAP4rev1 and the extensions listed in the package doc.
type Options struct {
	// Greeting is the greeting's text after "* OK "; "" gives a neutral one.
	Greeting string
	// Caps are the capabilities, before and after login (AUTH=PLAIN is
	// added before login). Nil: DefaultCaps.
	Caps []string
	// IDName is the "name" field of the ID response (RFC 2971); "" answers
	// ID with NIL.
	IDName string
	// Gmail models Gmail's labels: [Gmail]/All Mail, Drafts, Important,
	// Sent Mail, Spam, Starred and Trash with their special uses; a message
	// shows in the folder of each of its labels, in All Mail unless it is
	// in Trash or Spam, and in Starred when \Flagged; APPEND into a folder
	// gives the message its label; FETCH answers X-GM-MSGID, X-GM-THRID and
	// X-GM-LABELS.
	Gmail bool
	// CaseInsensitive compares folder names without case (Exchange).
	CaseInsensitive bool
	// NonMailFolders are folders of items that are not mail (Exchange's
	// Calendar, Contacts, Tasks …, with their subfolders, and any folder
	// created under one): listed and selectable as Exchange lists them,
	// holding no messages, an APPEND into one refused; CREATE of one, in
	// any case, is answered that it exists.
	NonMailFolders []string
	// AppendLimit refuses an APPEND of a larger message with NO [TOOBIG]
	// before its literal; 0: none.
	AppendLimit int64
	// Duplicates is what an APPEND of a message already there does.
	Duplicates Duplicates
	// DropAtAppend are flags APPEND does not store (Exchange: \Flagged);
	// STORE sets them.
	DropAtAppend []string
	// MaxErrors ends a connection with "* BYE " + ErrorsBye after this
	// many tagged NO and BAD replies on it; 0: never.
	MaxErrors int
	ErrorsBye string
	// MaxConnections refuses a login of a user who has this many
	// connections open, with NO + TooManyConnections; 0: no cap.
	MaxConnections     int
	TooManyConnections string
	// DailyUpload is how many bytes an account may APPEND until
	// ResetDailyUpload; an APPEND beyond it is answered DailyLimitReply
	// (and the connection may be ended). 0: no limit.
	DailyUpload     int64
	DailyLimitReply Reply
	// Hook is called before each command; a non-nil reply is sent instead
	// of running it. It runs without the server's lock and may block (a
	// server that crawls).
	Hook func(Call) *Reply
}

// DefaultCaps are the capabilities of a Server with Options.Caps nil.
var DefaultCaps = []string{"IMAP4rev1", "LITERAL+", "UIDPLUS", "MULTIAPPEND", "NAMESPACE", "UNSELECT",
	"SPECIAL-USE", "ESEARCH", "ID", "SASL-IR", "BINARY", "CHILDREN"}

// Call is a command as Hook sees it.
type Call struct {
	User    string // "" before login
	Name    string // "APPEND", "UID FETCH", …
	Line    string // the command's first line
	Mailbox string // the mailbox argument, for the commands that have one
	// N counts the commands of this name the server has received, this
	// one included.
	N int
}

// Reply is a scripted answer to a command.
type Reply struct {
	// Status and Text make the tagged reply: "NO" or "BAD", and the text
	// with its code ("[OVERQUOTA] Account exceeded …"). Status "" sends no
	// tagged reply (with Bye or Close).
	Status, Text string
	// Bye, when set, is sent as "* BYE " + Bye after the tagged reply, and
	// the connection is closed.
	Bye string
	// Close closes the connection after the rest.
	Close bool
}

// Server is a running fake.
type Server struct {
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup

	mu          sync.Mutex
	accounts    map[string]*account
	uidValidity uint32
	counts      map[string]int // commands by name
	open        map[string]int // connections by user
	conns       map[net.Conn]bool
	log         []string     // commands received, first lines
	errorByes   atomic.Int64 // connections ended at MaxErrors
	closed      bool
}

// Start starts a server with opts on 127.0.0.1:0; it stops when the test
// ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server; Close stops it.
func New(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if opts.Caps == nil {
		opts.Caps = DefaultCaps
	}
	s := &Server{opts: opts, ln: ln, accounts: map[string]*account{}, uidValidity: 1000,
		counts: map[string]int{}, open: map[string]int{}, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and ends its connections.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	s.wg.Wait()
}

// AddUser creates an account with the server's folders (INBOX; Gmail's).
func (s *Server) AddUser(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[user] = s.newAccount(user, password)
}

// CreateFolder creates a folder of user with the given special use ("" for
// none).
func (s *Server) CreateFolder(user, name, use string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[user]
	if s.folder(a, name) != nil {
		return
	}
	var attrs []string
	if use != "" {
		attrs = []string{use}
	}
	f := s.newFolder(name, attrs)
	if s.opts.Gmail {
		f.label = name
	}
	a.folders = append(a.folders, f)
}

// Add stores m in folder of user (created when missing) and returns it as
// stored (with its Gmail IDs). On Gmail, m.Labels decide where it shows
// (folder is then only created); nil Labels give it folder's label.
func (s *Server) Add(user, folderName string, m Message) Message {
	s.CreateFolder(user, folderName, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[user]
	return s.store(a, s.folder(a, folderName), m).export()
}

// Messages returns the messages of a folder of user, by UID.
func (s *Server) Messages(user, folderName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folder(s.accounts[user], folderName)
	if f == nil {
		return nil
	}
	out := make([]Message, len(f.entries))
	for i, e := range f.entries {
		out[i] = e.msg.export()
	}
	return out
}

// Folders returns the names of user's selectable folders, those of items
// that are not mail included.
func (s *Server) Folders(user string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, f := range s.accounts[user].folders {
		if !f.noSelect() {
			out = append(out, f.name)
		}
	}
	return out
}

// Count returns how many commands of this name ("APPEND", "UID STORE")
// the server received.
func (s *Server) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[name]
}

// Log returns the first line of every command received, in order.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// ResetDailyUpload starts a new day of Options.DailyUpload.
func (s *Server) ResetDailyUpload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		a.uploaded = 0
	}
}

// Open returns how many connections user has open (logged in).
func (s *Server) Open(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[user]
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sess := &session{s: s, c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}
			sess.serve()
			_ = c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			if sess.acct != nil {
				s.open[sess.acct.user]--
			}
			s.mu.Unlock()
		}()
	}
}

// session is one connection.
type session struct {
	s        *Server
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	acct     *account
	sel      *folder
	readOnly bool
	errors   int
}

// errHangUp ends a session after a BYE.
var errHangUp = errors.New("hang up")

func (ss *session) serve() {
	greeting := ss.s.opts.Greeting
	if greeting == "" {
		greeting = "providerfake ready"
	}
	ss.printf("* OK %s\r\n", greeting)
	if ss.flush() != nil {
		return
	}
	for {
		_ = ss.c.SetDeadline(time.Now().Add(5 * time.Minute))
		cmd, refused, err := readCommand(ss.br, ss.bw, ss.gate)
		if err != nil {
			return
		}
		if refused != nil {
			err = ss.reply(cmd.tag, refused)
		} else {
			err = ss.run(cmd)
		}
		if err != nil || ss.flush() != nil {
			return
		}
	}
}

func (ss *session) printf(format string, args ...any) { fmt.Fprintf(ss.bw, format, args...) }

func (ss *session) flush() error { return ss.bw.Flush() }

// gate decides on the continuation of a synchronising literal: an APPEND
// of a message over the limit (RFC 7889: [TOOBIG] before the literal), or
// the daily upload limit, or Hook's reply for APPEND.
func (ss *session) gate(tag, sofar string, size int64) *Reply {
	_, rest, _ := strings.Cut(sofar, " ")
	name, _, _ := strings.Cut(rest, " ")
	if !strings.EqualFold(name, "APPEND") {
		return nil
	}
	if lim := ss.s.opts.AppendLimit; lim > 0 && size > lim {
		return &Reply{Status: "NO", Text: "[TOOBIG] Message too large."}
	}
	return nil
}

// reply sends r for tag, counting errors; a BYE or Close ends the session.
func (ss *session) reply(tag string, r *Reply) error {
	if r.Status != "" {
		ss.printf("%s %s %s\r\n", tag, r.Status, r.Text)
		if r.Status != "OK" && ss.countError() {
			return errHangUp
		}
	}
	if r.Bye != "" {
		ss.printf("* BYE %s\r\n", r.Bye)
		_ = ss.flush()
		return errHangUp
	}
	if r.Close {
		_ = ss.flush()
		return errHangUp
	}
	return nil
}

// countError counts a NO or BAD and, at Options.MaxErrors, says BYE:
// true when the session must end.
func (ss *session) countError() bool {
	ss.errors++
	if n := ss.s.opts.MaxErrors; n > 0 && ss.errors >= n {
		bye := ss.s.opts.ErrorsBye
		if bye == "" {
			bye = "Too many errors."
		}
		ss.printf("* BYE %s\r\n", bye)
		_ = ss.flush()
		ss.s.errorByes.Add(1) // atomic: run replies with s.mu held
		return true
	}
	return false
}

// ErrorByes returns how many connections the server ended for too many
// errors (Options.MaxErrors).
func (s *Server) ErrorByes() int { return int(s.errorByes.Load()) }

// no and bad send a refusal.
func (ss *session) no(tag, text string) error { return ss.reply(tag, &Reply{Status: "NO", Text: text}) }
func (ss *session) bad(tag, text string) error {
	return ss.reply(tag, &Reply{Status: "BAD", Text: text})
}
func (ss *session) ok(tag, text string) error {
	ss.printf("%s OK %s\r\n", tag, text)
	return nil
}

// mailboxArg is the first argument of the commands that name a mailbox.
func mailboxArg(cmd command) string {
	switch cmd.name {
	case "SELECT", "EXAMINE", "STATUS", "CREATE", "DELETE", "APPEND", "SUBSCRIBE", "UNSUBSCRIBE", "GETQUOTAROOT":
		if len(cmd.args) > 0 {
			if s, ok := cmd.args[0].astring(); ok {
				if name, err := decodeMailbox(s); err == nil {
					return name
				}
				return s
			}
		}
	}
	return ""
}

func (ss *session) run(cmd command) error {
	s := ss.s
	s.mu.Lock()
	s.counts[cmd.name]++
	n := s.counts[cmd.name]
	s.log = append(s.log, cmd.line)
	user := ""
	if ss.acct != nil {
		user = ss.acct.user
	}
	s.mu.Unlock()
	if h := s.opts.Hook; h != nil {
		if r := h(Call{User: user, Name: cmd.name, Line: cmd.line, Mailbox: mailboxArg(cmd), N: n}); r != nil {
			return ss.reply(cmd.tag, r)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch cmd.name {
	case "CAPABILITY":
		ss.printf("* CAPABILITY %s\r\n", ss.caps())
		return ss.ok(cmd.tag, "CAPABILITY completed.")
	case "NOOP", "CHECK":
		return ss.ok(cmd.tag, cmd.name+" completed.")
	case "LOGOUT":
		ss.printf("* BYE Logging out\r\n")
		ss.printf("%s OK LOGOUT completed.\r\n", cmd.tag)
		_ = ss.flush()
		return errHangUp
	case "ID":
		if s.opts.IDName == "" {
			ss.printf("* ID NIL\r\n")
		} else {
			ss.printf("* ID (\"name\" %s)\r\n", quote(s.opts.IDName))
		}
		return ss.ok(cmd.tag, "ID completed.")
	case "LOGIN":
		if len(cmd.args) != 2 {
			return ss.bad(cmd.tag, "LOGIN needs a user and a password.")
		}
		u, _ := cmd.args[0].astring()
		p, _ := cmd.args[1].astring()
		return ss.login(cmd.tag, u, p)
	case "AUTHENTICATE":
		return ss.authenticate(cmd)
	case "ENABLE":
		ss.printf("* ENABLED\r\n")
		return ss.ok(cmd.tag, "ENABLE completed.")
	}
	if ss.acct == nil {
		return ss.bad(cmd.tag, "Log in first.")
	}
	switch cmd.name {
	case "NAMESPACE":
		ss.printf("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")
		return ss.ok(cmd.tag, "NAMESPACE completed.")
	case "LIST", "LSUB":
		return ss.list(cmd)
	case "STATUS":
		return ss.status(cmd)
	case "SELECT", "EXAMINE":
		return ss.selectCmd(cmd)
	case "UNSELECT", "CLOSE":
		if ss.sel == nil {
			return ss.bad(cmd.tag, "No mailbox selected.")
		}
		if cmd.name == "CLOSE" && !ss.readOnly {
			ss.expunge(nil, false)
		}
		ss.sel = nil
		return ss.ok(cmd.tag, cmd.name+" completed.")
	case "CREATE":
		return ss.create(cmd)
	case "SUBSCRIBE", "UNSUBSCRIBE":
		if f := s.folder(ss.acct, mailboxArg(cmd)); f != nil {
			f.subscribed = cmd.name == "SUBSCRIBE"
		}
		return ss.ok(cmd.tag, cmd.name+" completed.")
	case "APPEND":
		return ss.appendCmd(cmd)
	case "GETQUOTAROOT":
		return ss.bad(cmd.tag, "Command unknown or not supported.")
	}
	if ss.sel == nil {
		return ss.bad(cmd.tag, "No mailbox selected.")
	}
	switch cmd.name {
	case "FETCH", "UID FETCH":
		return ss.fetch(cmd)
	case "SEARCH", "UID SEARCH":
		return ss.search(cmd)
	case "STORE", "UID STORE":
		return ss.storeCmd(cmd)
	case "EXPUNGE":
		if ss.readOnly {
			return ss.no(cmd.tag, "Mailbox is read-only.")
		}
		ss.expunge(nil, true)
		return ss.ok(cmd.tag, "EXPUNGE completed.")
	case "UID EXPUNGE":
		if ss.readOnly {
			return ss.no(cmd.tag, "Mailbox is read-only.")
		}
		if len(cmd.args) != 1 {
			return ss.bad(cmd.tag, "UID EXPUNGE needs a set.")
		}
		set, err := parseSet(cmd.args[0].s, ss.sel.uidNext-1)
		if err != nil {
			return ss.bad(cmd.tag, err.Error())
		}
		ss.expunge(set, true)
		return ss.ok(cmd.tag, "UID EXPUNGE completed.")
	}
	return ss.bad(cmd.tag, "Command unknown or not supported.")
}

// caps is the capability list as the session stands.
func (ss *session) caps() string {
	caps := slices.Clone(ss.s.opts.Caps)
	if ss.acct == nil {
		caps = append(caps, "AUTH=PLAIN")
	}
	if lim := ss.s.opts.AppendLimit; lim > 0 && !slices.ContainsFunc(caps, func(c string) bool { return strings.HasPrefix(c, "APPENDLIMIT") }) {
		caps = append(caps, "APPENDLIMIT="+strconv.FormatInt(lim, 10))
	}
	return strings.Join(caps, " ")
}

func (ss *session) login(tag, user, password string) error {
	s := ss.s
	a := s.accounts[user]
	if a == nil || a.password != password {
		return ss.no(tag, "[AUTHENTICATIONFAILED] Invalid credentials.")
	}
	if ss.acct != nil {
		return ss.bad(tag, "Already logged in.")
	}
	if max := s.opts.MaxConnections; max > 0 && s.open[user] >= max {
		text := s.opts.TooManyConnections
		if text == "" {
			text = "[LIMIT] Too many simultaneous connections."
		}
		return ss.no(tag, text)
	}
	ss.acct = a
	s.open[user]++
	return ss.ok(tag, "[CAPABILITY "+ss.caps()+"] Logged in.")
}

// authenticate runs AUTHENTICATE PLAIN (RFC 4616), with the initial
// response inline (SASL-IR) or after a continuation.
func (ss *session) authenticate(cmd command) error {
	if len(cmd.args) < 1 || !strings.EqualFold(cmd.args[0].s, "PLAIN") {
		return ss.no(cmd.tag, "Unsupported mechanism.")
	}
	var ir string
	if len(cmd.args) > 1 {
		ir = cmd.args[1].s
	} else {
		ss.printf("+ \r\n")
		// The lock is held: the client answers at once.
		if err := ss.flush(); err != nil {
			return err
		}
		line, err := readLine(ss.br)
		if err != nil {
			return err
		}
		ir = string(line)
	}
	raw, err := decodeBase64(ir)
	if err != nil {
		return ss.bad(cmd.tag, "Invalid base64.")
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return ss.bad(cmd.tag, "Invalid PLAIN response.")
	}
	return ss.login(cmd.tag, parts[1], parts[2])
}
