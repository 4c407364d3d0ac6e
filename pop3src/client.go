// Package pop3src is mailferry's POP3 source: a byte-exact POP3 client and a
// pipeline.Source on top of it that lists a maildrop by UIDL, streams each
// message's exact bytes, and deletes only on an explicit commit.
//
// The client implements RFC 1939 (POP3; multi-line responses and
// byte-stuffing §3, the UPDATE state and QUIT §6, UIDL §7), RFC 2449 (CAPA,
// PIPELINING and extended response codes), RFC 2595 §4 (STLS), RFC 3206
// (the SYS and AUTH response codes) and RFC 5034 (SASL AUTH, here with the
// PLAIN mechanism of RFC 4616). It is written for this tool rather than borrowed because
// message bytes must survive unchanged: see copyDotStuffed.
//
// With a server that announces PIPELINING (RFC 2449 §6.6), USER and PASS
// go out in one write (LoginPipelined), the CAPA after login, UIDL and,
// where the sizes are wanted next, LIST in another, and Source.Prefetch
// keeps a window of RETRs in flight so that round trips overlap; every
// other command first reads the replies still owed, so the session never
// falls out of step.
//
// Deletion is safe by construction: DELE only marks messages, and only Quit
// commits them (RFC 1939 §6). Close, and any cancellation or error, drop the
// connection without QUIT, so nothing marked is ever removed.
package pop3src

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/secret"
)

// ClientOptions configures a Client. The zero value (or nil) is valid.
type ClientOptions struct {
	// AllowPlaintext permits sending credentials over a connection that is
	// not TLS. Without it, Login, Pass and AuthPlain return ErrPlaintext.
	AllowPlaintext bool
	// Logger receives debug events; nil discards them.
	Logger *slog.Logger
	// Trace, when set, receives every protocol line, prefixed "C: " or "S: ".
	// Passwords and SASL responses are replaced by "***"; message bodies are
	// not traced, only their size.
	Trace io.Writer
	// TLSTimeout bounds the TLS handshake of STLS (internal/dialer): 0,
	// 30 s; negative: none.
	TLSTimeout time.Duration
}

// Capabilities is the CAPA list (RFC 2449 §5): upper-case capability name to
// its parameters, e.g. "SASL" -> ["PLAIN", "LOGIN"].
type Capabilities map[string][]string

// Has reports whether the server announced the capability name.
func (c Capabilities) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// HasSASL reports whether the server announced the SASL mechanism mech.
func (c Capabilities) HasSASL(mech string) bool {
	for _, m := range c["SASL"] {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// LoginDelay returns the LOGIN-DELAY capability's minimum number of
// seconds between logins (RFC 2449 §6.5) as a duration; ok is false when
// it is absent or its argument is not a number.
func (c Capabilities) LoginDelay() (d time.Duration, ok bool) {
	args := c["LOGIN-DELAY"]
	if len(args) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// MessageInfo is one line of a LIST reply: a message number, valid for this
// session only, and the size the server announces.
type MessageInfo struct {
	Number int
	Size   int64
}

// UIDInfo is one line of a UIDL reply.
type UIDInfo struct {
	Number int
	UID    string
}

// Client is one POP3 session. It is not safe for concurrent use, except that
// Close may be called from any goroutine to abort.
//
// Every blocking method takes a context; when it ends during a command the
// connection is closed (without QUIT) and the method returns an error
// wrapping ctx's error. After an I/O error or a protocol violation the
// session is unusable and every further command fails; a -ERR reply
// (*ResponseError) leaves it usable.
type Client struct {
	conn  net.Conn  // current transport: the dialled conn, or TLS over it
	abort io.Closer // the lowest layer, closed to abort without QUIT
	r     *bufio.Reader
	w     *bufio.Writer
	opts  ClientOptions
	log   *slog.Logger

	greeting   string
	isTLS      bool
	loginDelay time.Duration // from CAPA's LOGIN-DELAY (RFC 2449 §6.5), 0 if none
	err        error         // sticky: why the session is unusable
	closed     atomic.Bool   // Close may come from another goroutine

	// pending are the message numbers of the RETRs SendRetr sent whose
	// replies are not read yet, oldest first (RFC 2449 §6.6 PIPELINING).
	pending []int
	// ahead are the commands sendAhead sent whose replies are not read
	// yet, oldest first: the command that asks for one of them reads its
	// reply without sending anything; any other reads and discards the
	// replies before it first.
	ahead []string
	body  dotCopier // reused for every message body
}

// maxLineBytes bounds a status or listing line. RFC 2449 §4 allows 512
// octets; the slack is for servers that ignore that.
const maxLineBytes = 64 << 10

// NewClient starts a session on conn: it reads the server greeting, bounded
// by conn's own deadlines. A conn that is a *tls.Conn counts as TLS. On error
// the caller still owns conn and must close it; on success Close or Quit
// closes it.
func NewClient(conn net.Conn, opts *ClientOptions) (*Client, error) {
	return newClient(conn, conn, opts)
}

func newClient(conn net.Conn, abort io.Closer, opts *ClientOptions) (*Client, error) {
	c := &Client{conn: conn, abort: abort}
	if opts != nil {
		c.opts = *opts
	}
	c.log = c.opts.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	_, c.isTLS = conn.(*tls.Conn)
	c.r = bufio.NewReaderSize(conn, 64<<10)
	c.w = bufio.NewWriterSize(conn, 4<<10)
	st, err := c.readStatus("")
	if err != nil {
		return nil, err
	}
	c.greeting = st.text
	return c, nil
}

// Usable reports whether the session can take another command: it is
// not closed, and no I/O error or protocol violation has ended it.
func (c *Client) Usable() bool { return !c.closed.Load() && c.err == nil }

// Greeting returns the text of the server's +OK greeting.
func (c *Client) Greeting() string { return c.greeting }

// IsTLS reports whether the session runs over TLS (implicit or after STLS).
func (c *Client) IsTLS() bool { return c.isTLS }

// do runs one command under ctx: if ctx ends meanwhile, the connection is
// closed, which unblocks any read or write. Replies to pipelined RETRs still
// outstanding are read and discarded first, so that fn reads its own reply.
func (c *Client) do(ctx context.Context, cmd string, fn func() error) error {
	return c.run(ctx, cmd, true, fn)
}

// run is do; drain says whether outstanding RETR replies are discarded
// before fn runs (SendRetr and ReadRetr must not).
func (c *Client) run(ctx context.Context, cmd string, drain bool, fn func() error) error {
	if c.closed.Load() {
		return fmt.Errorf("%s: %w", cmd, ErrClosed)
	}
	if c.err != nil {
		return fmt.Errorf("pop3src: %s: session unusable after an earlier error: %w", cmd, c.err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pop3src: %s: %w", cmd, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.abort.Close() })
	var err error
	if len(c.ahead) > 0 {
		err = c.discardAhead(cmd)
	}
	if drain && err == nil {
		err = c.drain()
	}
	if err == nil {
		err = fn()
	}
	if !stop() {
		// ctx ended while the command ran and the conn is now closed.
		cause := context.Cause(ctx)
		c.fail(fmt.Errorf("connection closed: %w", cause))
		if err != nil {
			return fmt.Errorf("pop3src: %s interrupted: %w", cmd, cause)
		}
	}
	return err
}

// fail marks the session unusable and returns err.
func (c *Client) fail(err error) error {
	if c.err == nil {
		c.err = err
	}
	return err
}

func (c *Client) trace(prefix, line string) {
	if c.opts.Trace != nil {
		_, _ = io.WriteString(c.opts.Trace, prefix+line+"\n")
	}
}

// send writes one command line. shown is what the trace shows instead of
// line (credentials redacted).
func (c *Client) send(line, shown string) error {
	if len(c.ahead) > 0 && c.ahead[0] == line {
		c.ahead = c.ahead[1:] // sent already: its reply comes next
		return nil
	}
	c.trace("C: ", shown)
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", shown, err))
	}
	if err := c.w.Flush(); err != nil {
		return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", shown, err))
	}
	return nil
}

// readLine reads one line and strips its CRLF (or, leniently, bare LF).
func (c *Client) readLine(cmd string) (string, error) {
	line, err := c.readLineBytes(cmd)
	return string(line), err
}

// readLineBytes is readLine returning the line's bytes, valid only until
// the next read: a line that fits the reader's buffer, as every listing
// line does, is not copied (issue 20: a no-op re-run of a 500,000-message
// maildrop reads 500,000 UIDL lines, and their copies were a fifth of
// mailferry's CPU on it).
func (c *Client) readLineBytes(cmd string) ([]byte, error) {
	var buf []byte // a line longer than the reader's buffer
	for {
		piece, err := c.r.ReadSlice('\n')
		if len(buf)+len(piece) > maxLineBytes {
			return nil, c.fail(&ProtocolError{Command: cmd, Reason: fmt.Sprintf("line longer than %d bytes", maxLineBytes), Line: shorten(string(buf))})
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			buf = append(buf, piece...)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, c.fail(fmt.Errorf("pop3src: %s: reading reply: %w", displayCmd(cmd), err))
		}
		if buf != nil {
			piece = append(buf, piece...)
		}
		line := bytes.TrimSuffix(bytes.TrimSuffix(piece, []byte("\n")), []byte("\r"))
		if c.opts.Trace != nil {
			c.trace("S: ", string(line))
		}
		return line, nil
	}
}

func displayCmd(cmd string) string {
	if cmd == "" {
		return "greeting"
	}
	return cmd
}

// readStatus reads a status line. A -ERR becomes a *ResponseError; a
// continuation is returned only when allowed.
func (c *Client) readStatus(cmd string) (status, error) {
	return c.readStatusOrContinuation(cmd, false)
}

func (c *Client) readStatusOrContinuation(cmd string, continuationOK bool) (status, error) {
	line, err := c.readLine(cmd)
	if err != nil {
		return status{}, err
	}
	st, ok := parseStatus(line)
	switch {
	case !ok || (st.kind == statusContinuation && !continuationOK):
		return status{}, c.fail(&ProtocolError{Command: cmd, Reason: "expected +OK or -ERR", Line: shorten(line)})
	case st.kind == statusErr:
		err := &ResponseError{Command: cmd, Code: st.code, Text: st.text}
		if strings.EqualFold(st.code, "LOGIN-DELAY") {
			err.LoginDelay = c.loginDelay
		}
		if cmd == "" {
			// A -ERR greeting ends the session (RFC 1939 §4 has no
			// recovery from it).
			c.fail(err)
		}
		return st, err
	}
	return st, nil
}

// simple sends a command that has a single-line reply.
func (c *Client) simple(ctx context.Context, line string) (status, error) {
	var st status
	err := c.do(ctx, line, func() error {
		if err := c.send(line, line); err != nil {
			return err
		}
		var err error
		st, err = c.readStatus(line)
		return err
	})
	return st, err
}

// readMultiline reads the body of a multi-line reply whose lines are short
// text (CAPA, LIST, UIDL), undoing byte-stuffing (RFC 1939 §3).
func (c *Client) readMultiline(cmd string, each func(line string) error) error {
	for {
		line, err := c.readLine(cmd)
		if err != nil {
			return err
		}
		if line == "." {
			return nil
		}
		if err := each(strings.TrimPrefix(line, ".")); err != nil {
			return c.fail(err)
		}
	}
}

// checkArg rejects what would let a caller-supplied argument end the command
// line early or inject another command.
func checkArg(what, arg string) error {
	if strings.ContainsAny(arg, "\r\n\x00") {
		return fmt.Errorf("pop3src: %s contains CR, LF or NUL", what)
	}
	return nil
}

// Capa asks for the capability list (RFC 2449 §5). A server without CAPA
// answers -ERR, returned as *ResponseError; the session stays usable.
func (c *Client) Capa(ctx context.Context) (Capabilities, error) {
	var caps Capabilities
	err := c.do(ctx, "CAPA", func() error {
		if err := c.send("CAPA", "CAPA"); err != nil {
			return err
		}
		var err error
		caps, err = c.readCapa()
		return err
	})
	if err != nil {
		return nil, err
	}
	if d, ok := caps.LoginDelay(); ok {
		c.loginDelay = d
	}
	return caps, nil
}

// readCapa reads the reply to CAPA.
func (c *Client) readCapa() (Capabilities, error) {
	if _, err := c.readStatus("CAPA"); err != nil {
		return nil, err
	}
	caps := Capabilities{}
	err := c.readMultiline("CAPA", func(line string) error {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil
		}
		caps[strings.ToUpper(fields[0])] = fields[1:]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return caps, nil
}

// LoginDelay returns the minimum time between logins from the last CAPA
// that announced LOGIN-DELAY (RFC 2449 §6.5), 0 if none did. Before login
// it is the server's minimum; a -ERR [LOGIN-DELAY] carries it as
// ResponseError.LoginDelay.
func (c *Client) LoginDelay() time.Duration { return c.loginDelay }

// STLS upgrades the session to TLS (RFC 2595 §4) with cfg, which must name
// the server (ServerName) unless it skips verification. Capabilities learnt
// before STLS must be asked for again. A -ERR is fatal for the engine: the
// server refuses to secure the session.
func (c *Client) STLS(ctx context.Context, cfg *tls.Config) error {
	if cfg == nil {
		return errors.New("pop3src: STLS: no TLS configuration")
	}
	if c.isTLS {
		return errors.New("pop3src: STLS: session already uses TLS")
	}
	return c.do(ctx, "STLS", func() error {
		if err := c.send("STLS", "STLS"); err != nil {
			return err
		}
		if _, err := c.readStatus("STLS"); err != nil {
			return err
		}
		// Bytes after the +OK would be read as if protected by TLS although
		// they were not: a man in the middle could inject replies.
		if c.r.Buffered() > 0 {
			return c.fail(&ProtocolError{Command: "STLS", Reason: "data sent before the TLS handshake"})
		}
		var tc *tls.Conn
		err := dialer.Run(ctx, c.conn, dialer.StepTLS, c.conn.RemoteAddr().String(), c.opts.TLSTimeout, false, func(ctx context.Context) (err error) {
			tc, err = tlsmode.Handshake(ctx, c.conn, cfg)
			return err
		})
		if err != nil {
			return c.fail(fmt.Errorf("pop3src: STLS: TLS handshake: %w", err))
		}
		c.conn = tc
		c.r.Reset(tc)
		c.w.Reset(tc)
		c.isTLS = true
		c.log.Debug("pop3 session upgraded to TLS", "tls_version", tls.VersionName(tc.ConnectionState().Version))
		return nil
	})
}

func (c *Client) checkPlaintext(cmd string) error {
	if !c.isTLS && !c.opts.AllowPlaintext {
		return fmt.Errorf("%s: %w", cmd, ErrPlaintext)
	}
	return nil
}

// User sends USER name (RFC 1939 §7).
func (c *Client) User(ctx context.Context, name string) error {
	if err := c.checkPlaintext("USER"); err != nil {
		return err
	}
	if err := checkArg("user name", name); err != nil {
		return err
	}
	_, err := c.simple(ctx, "USER "+name)
	return err
}

// Pass sends PASS (RFC 1939 §7). The password appears in no trace or error.
func (c *Client) Pass(ctx context.Context, password secret.Value) error {
	if err := c.checkPlaintext("PASS"); err != nil {
		return err
	}
	if err := checkArg("password", password.Reveal()); err != nil {
		return err
	}
	const shown = "PASS ***"
	return c.do(ctx, shown, func() error {
		if err := c.send("PASS "+password.Reveal(), shown); err != nil {
			return err
		}
		_, err := c.readStatus(shown)
		return err
	})
}

// Login authenticates with USER and PASS.
func (c *Client) Login(ctx context.Context, user string, password secret.Value) error {
	if err := c.User(ctx, user); err != nil {
		return err
	}
	return c.Pass(ctx, password)
}

// LoginPipelined authenticates with USER and PASS sent in one write
// (RFC 2449 §6.6 PIPELINING: use it only with a server that announced
// PIPELINING in its CAPA), so that the login costs one round trip, not
// two. Nothing follows the PASS in that write: a server whose login
// process hands the session to another after PASS (Courier) loses what
// it read beyond it.
//
// Its errors are Login's: a -ERR to USER or PASS is that command's
// *ResponseError (USER's when both are refused), and the session stays
// usable when both replies were read.
func (c *Client) LoginPipelined(ctx context.Context, user string, password secret.Value) error {
	for _, cmd := range []string{"USER", "PASS"} {
		if err := c.checkPlaintext(cmd); err != nil {
			return err
		}
	}
	if err := checkArg("user name", user); err != nil {
		return err
	}
	if err := checkArg("password", password.Reveal()); err != nil {
		return err
	}
	userCmd := "USER " + user
	const passShown = "PASS ***"
	return c.do(ctx, userCmd, func() error {
		c.trace("C: ", userCmd)
		c.trace("C: ", passShown)
		if _, err := c.w.WriteString(userCmd + "\r\nPASS " + password.Reveal() + "\r\n"); err != nil {
			return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", userCmd, err))
		}
		if err := c.w.Flush(); err != nil {
			return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", userCmd, err))
		}
		_, userErr := c.readStatus(userCmd)
		var re *ResponseError
		if userErr != nil && !errors.As(userErr, &re) {
			return userErr
		}
		// The PASS's reply is owed even after USER's -ERR. A failure to
		// read it then (a server that hangs up after refusing USER)
		// leaves the session unusable but is not what the caller is told.
		_, passErr := c.readStatus(passShown)
		if userErr != nil {
			return userErr
		}
		return passErr
	})
}

// maxAuthLine is the longest AUTH command line that may carry an initial
// response, CRLF included (RFC 5034 §4).
const maxAuthLine = 255

// AuthPlain authenticates with SASL PLAIN (RFC 5034, RFC 4616). A non-empty
// authzid asks to act as that user, authenticating as user (a master user).
// The initial response goes on the AUTH line unless that line would exceed
// 255 octets, in which case it follows the server's "+ " challenge.
func (c *Client) AuthPlain(ctx context.Context, authzid, user string, password secret.Value) error {
	if err := c.checkPlaintext("AUTH PLAIN"); err != nil {
		return err
	}
	if user == "" {
		return errors.New("pop3src: AUTH PLAIN: empty user name")
	}
	for _, s := range []string{authzid, user, password.Reveal()} {
		if strings.ContainsRune(s, 0) {
			return errors.New("pop3src: AUTH PLAIN: credentials contain NUL")
		}
	}
	resp := base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + user + "\x00" + password.Reveal()))
	const shown = "AUTH PLAIN ***"
	return c.do(ctx, shown, func() error {
		sent := false
		if line := "AUTH PLAIN " + resp; len(line)+2 <= maxAuthLine {
			if err := c.send(line, shown); err != nil {
				return err
			}
			sent = true
		} else if err := c.send("AUTH PLAIN", "AUTH PLAIN"); err != nil {
			return err
		}
		for challenges := 0; ; challenges++ {
			st, err := c.readStatusOrContinuation(shown, true)
			if err != nil || st.kind == statusOK {
				return err
			}
			// A continuation. PLAIN has a single, empty challenge: answer it
			// when the response has not been sent (long response, or a
			// server that ignored the initial response); otherwise cancel
			// (RFC 5034 §4: "*").
			if !sent || (challenges == 0 && st.text == "") {
				if err := c.send(resp, "***"); err != nil {
					return err
				}
				sent = true
				continue
			}
			if err := c.send("*", "*"); err != nil {
				return err
			}
			if _, err := c.readStatus(shown); err != nil {
				var re *ResponseError
				if !errors.As(err, &re) {
					return err
				}
			}
			return newFatal(fmt.Sprintf("pop3src: %s: server sent unexpected SASL challenges; cancelled", shown))
		}
	})
}

// Stat returns the number of messages and their total size (RFC 1939 §5).
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	st, err := c.simple(ctx, "STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(st.text)
	if len(f) < 2 {
		return 0, 0, c.fail(&ProtocolError{Command: "STAT", Reason: "malformed drop listing", Line: shorten(st.text)})
	}
	count, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || count < 0 || size < 0 {
		return 0, 0, c.fail(&ProtocolError{Command: "STAT", Reason: "malformed drop listing", Line: shorten(st.text)})
	}
	return count, size, nil
}

func parseNumber(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// List returns every message not marked deleted, with its size (RFC 1939 §5
// "scan listing").
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	var out []MessageInfo
	err := c.ListEach(ctx, func(m MessageInfo) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

// ListEach is List calling each for every line as it is read, holding no
// copy of the listing. An error from each ends the session (the rest of
// the reply is not read).
func (c *Client) ListEach(ctx context.Context, each func(MessageInfo) error) error {
	return c.do(ctx, "LIST", func() error {
		if err := c.send("LIST", "LIST"); err != nil {
			return err
		}
		if _, err := c.readStatus("LIST"); err != nil {
			return err
		}
		return c.readMultiline("LIST", func(line string) error {
			m, ok := parseScanLine(line)
			if !ok {
				return &ProtocolError{Command: "LIST", Reason: "malformed scan listing", Line: shorten(line)}
			}
			return each(m)
		})
	})
}

// parseScanLine parses "n size", the body of a LIST reply line.
func parseScanLine(line string) (MessageInfo, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return MessageInfo{}, false
	}
	n, ok := parseNumber(f[0])
	size, err := strconv.ParseInt(f[1], 10, 64)
	if !ok || err != nil || size < 0 {
		return MessageInfo{}, false
	}
	return MessageInfo{Number: n, Size: size}, true
}

// parseUIDLine parses "n unique-id", the body of a UIDL reply line.
func parseUIDLine(line string) (UIDInfo, bool) {
	n, uid, ok := parseUID(line)
	return UIDInfo{Number: n, UID: uid}, ok
}

// parseUID is parseUIDLine on a line's string or bytes; the unique-id is
// a part of line.
func parseUID[T string | []byte](line T) (int, T, bool) {
	// The usual line, "digits SP printable-ASCII", without splitting it
	// into a slice: a no-op re-run of 500,000 messages parses 500,000 of
	// them (issue 20). Anything else (a sign, white space, a number too
	// long for the loop) is split by strings.Fields, as ever.
	if i := indexSpace(line); i > 0 && i <= 18 && i < len(line)-1 && printableASCII(line[i+1:]) {
		n := 0
		for j := 0; j < i && n >= 0; j++ {
			if c := line[j]; c >= '0' && c <= '9' {
				n = n*10 + int(c-'0')
			} else {
				n = -1
			}
		}
		if n > 0 {
			return n, line[i+1:], true
		}
	}
	u, ok := parseUIDFields(string(line))
	return u.Number, T(u.UID), ok
}

// indexSpace is the index of the first ' ' in s, or -1.
func indexSpace[T string | []byte](s T) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return i
		}
	}
	return -1
}

// parseUIDFields parses a UIDL reply line split into fields by white
// space: the general case of parseUIDLine.
func parseUIDFields(line string) (UIDInfo, bool) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return UIDInfo{}, false
	}
	n, ok := parseNumber(f[0])
	if !ok {
		return UIDInfo{}, false
	}
	return UIDInfo{Number: n, UID: f[1]}, true
}

// printableASCII reports whether s is all 0x21 to 0x7E: a UIDL's
// characters (RFC 1939 §7), none of them white space.
func printableASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// UIDL returns the unique-id listing of every message not marked deleted
// (RFC 1939 §7). A -ERR without a response code means the server lacks the
// command: the error then wraps both ErrNoUIDL and the *ResponseError.
func (c *Client) UIDL(ctx context.Context) ([]UIDInfo, error) {
	var out []UIDInfo
	err := c.UIDLEach(ctx, func(u UIDInfo) error {
		out = append(out, u)
		return nil
	})
	return out, err
}

// UIDLEach is UIDL calling each for every line as it is read, holding no
// copy of the listing. An error from each ends the session.
func (c *Client) UIDLEach(ctx context.Context, each func(UIDInfo) error) error {
	return c.uidlLines(ctx, func(n int, uid []byte) error {
		return each(UIDInfo{Number: n, UID: string(uid)})
	})
}

// uidlLines is UIDLEach handing each line's number and unique-id as they
// are read, uid valid only until each returns: nothing is allocated per
// line (issue 20).
func (c *Client) uidlLines(ctx context.Context, each func(n int, uid []byte) error) error {
	return c.do(ctx, "UIDL", func() error {
		if err := c.send("UIDL", "UIDL"); err != nil {
			return err
		}
		if _, err := c.readStatus("UIDL"); err != nil {
			var re *ResponseError
			if errors.As(err, &re) && re.Code == "" {
				return fmt.Errorf("%w: %w", ErrNoUIDL, err)
			}
			return err
		}
		for {
			line, err := c.readLineBytes("UIDL")
			if err != nil {
				return err
			}
			if len(line) == 1 && line[0] == '.' {
				return nil
			}
			line = bytes.TrimPrefix(line, []byte(".")) // byte-stuffing
			n, uid, ok := parseUID(line)
			if !ok {
				return c.fail(&ProtocolError{Command: "UIDL", Reason: "malformed unique-id listing", Line: shorten(string(line))})
			}
			if err := each(n, uid); err != nil {
				return c.fail(err)
			}
		}
	})
}

// Info is what "LIST n" and "UIDL n" say of one message.
type Info struct {
	Number int
	Size   int64  // with sizes; 0 otherwise
	UID    string // with uids; "" otherwise
	// Exists is false when the server answered -ERR: no such message in
	// this session, or one marked deleted.
	Exists bool
}

// infoChunk bounds the messages whose LIST n and UIDL n are in flight at
// once: the replies (some 40 bytes a message) always fit the socket
// buffers, so that neither side blocks writing while the other does.
const infoChunk = 128

// Infos asks "LIST n" (with sizes) and "UIDL n" (with uids) for each of
// nums, pipelined (RFC 2449 §6.6: use it only with a server that announced
// PIPELINING): a few round trips for any number of messages, and no reply
// longer than a line. A message the server does not have (-ERR) comes back
// with Exists false; one it answers LIST for but not UIDL is a protocol
// error.
func (c *Client) Infos(ctx context.Context, nums []int, sizes, uids bool) ([]Info, error) {
	out := make([]Info, len(nums))
	if len(nums) == 0 || !sizes && !uids {
		return out, nil
	}
	for _, n := range nums {
		if n <= 0 {
			return nil, fmt.Errorf("pop3src: LIST/UIDL: invalid message number %d", n)
		}
	}
	err := c.do(ctx, "LIST/UIDL", func() error {
		write := func(part []int) error {
			for _, n := range part {
				if sizes {
					cmd := "LIST " + strconv.Itoa(n)
					c.trace("C: ", cmd)
					if _, err := c.w.WriteString(cmd + "\r\n"); err != nil {
						return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", cmd, err))
					}
				}
				if uids {
					cmd := "UIDL " + strconv.Itoa(n)
					c.trace("C: ", cmd)
					if _, err := c.w.WriteString(cmd + "\r\n"); err != nil {
						return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", cmd, err))
					}
				}
			}
			if err := c.w.Flush(); err != nil {
				return c.fail(fmt.Errorf("pop3src: pipelined LIST/UIDL: sending commands: %w", err))
			}
			return nil
		}
		read := func(i int) error {
			n := nums[i]
			info := Info{Number: n, Exists: true}
			if sizes {
				cmd := "LIST " + strconv.Itoa(n)
				st, err := c.readStatus(cmd)
				var re *ResponseError
				switch {
				case errors.As(err, &re):
					info.Exists = false
				case err != nil:
					return err
				default:
					m, ok := parseScanLine(st.text)
					if !ok || m.Number != n {
						return c.fail(&ProtocolError{Command: cmd, Reason: "malformed scan listing", Line: shorten(st.text)})
					}
					info.Size = m.Size
				}
			}
			if uids {
				cmd := "UIDL " + strconv.Itoa(n)
				st, err := c.readStatus(cmd)
				var re *ResponseError
				switch {
				case errors.As(err, &re):
					if sizes && info.Exists {
						return c.fail(&ProtocolError{Command: cmd, Reason: fmt.Sprintf("no unique-id for message %d", n)})
					}
					info.Exists = false
				case err != nil:
					return err
				default:
					u, ok := parseUIDLine(st.text)
					if !ok || u.Number != n {
						return c.fail(&ProtocolError{Command: cmd, Reason: "malformed unique-id listing", Line: shorten(st.text)})
					}
					if !info.Exists {
						return c.fail(&ProtocolError{Command: cmd, Reason: fmt.Sprintf("unique-id for message %d, which LIST does not have", n)})
					}
					info.UID = u.UID
				}
			}
			out[i] = info
			return nil
		}
		// At most two chunks in flight: the next is sent before the
		// replies to the last are read.
		sent := 0
		for read0 := 0; read0 < len(nums); {
			for sent < len(nums) && sent < read0+2*infoChunk {
				end := min(sent+infoChunk, len(nums))
				if err := write(nums[sent:end]); err != nil {
					return err
				}
				sent = end
			}
			end := min(read0+infoChunk, len(nums))
			for ; read0 < end; read0++ {
				if err := read(read0); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RetrIfUID streams message n to w, as Retr, only when the server's UIDL
// for it is uid; it sends "UIDL n" and "RETR n" together (PIPELINING), so
// the check costs no round trip. When the UIDL differs it reads the
// message to its end, discarding it, and returns an error wrapping
// ErrUnknownKey.
func (c *Client) RetrIfUID(ctx context.Context, n int, uid string, w io.Writer) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("pop3src: RETR: invalid message number %d", n)
	}
	uidlCmd, retrCmd := "UIDL "+strconv.Itoa(n), "RETR "+strconv.Itoa(n)
	var written int64
	err := c.do(ctx, retrCmd, func() error {
		c.trace("C: ", uidlCmd)
		c.trace("C: ", retrCmd)
		if _, err := c.w.WriteString(uidlCmd + "\r\n" + retrCmd + "\r\n"); err != nil {
			return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", retrCmd, err))
		}
		if err := c.w.Flush(); err != nil {
			return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", retrCmd, err))
		}
		st, uerr := c.readStatus(uidlCmd)
		var re *ResponseError
		if uerr != nil && !errors.As(uerr, &re) {
			return uerr
		}
		if uerr == nil {
			if u, ok := parseUIDLine(st.text); !ok || u.Number != n || u.UID != uid {
				uerr = fmt.Errorf("message %d is not %q: %w", n, uid, ErrUnknownKey)
			}
		}
		if uerr != nil {
			_, err := c.readRetr(retrCmd, io.Discard)
			if err != nil && !errors.As(err, &re) {
				return err
			}
			return uerr
		}
		var err error
		written, err = c.readRetr(retrCmd, w)
		return err
	})
	return written, err
}

// Retr streams message n's exact bytes to w (RFC 1939 §7) and returns how
// many it wrote. See copyDotStuffed for what "exact" means. A -ERR is a
// *ResponseError; a connection that ends mid-message returns an error, never
// a short message with a nil error. If w fails, the rest of the message is
// read and discarded so the session stays usable, and w's error is returned.
// Replies to RETRs sent with SendRetr and not read yet are discarded first.
func (c *Client) Retr(ctx context.Context, n int, w io.Writer) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("pop3src: RETR: invalid message number %d", n)
	}
	cmd := "RETR " + strconv.Itoa(n)
	var written int64
	err := c.do(ctx, cmd, func() error {
		if err := c.send(cmd, cmd); err != nil {
			return err
		}
		var err error
		written, err = c.readRetr(cmd, w)
		return err
	})
	return written, err
}

// SendRetr sends RETR for each of nums without waiting for the replies
// (RFC 2449 §6.6 PIPELINING), in one write. Use it only with a server that
// announced PIPELINING in CAPA. Read each reply, in the same order, with
// ReadRetr. Any other command (Retr, Dele, List, Quit...) first reads and
// discards the replies not read yet, so the session stays in step.
func (c *Client) SendRetr(ctx context.Context, nums ...int) error {
	for _, n := range nums {
		if n <= 0 {
			return fmt.Errorf("pop3src: RETR: invalid message number %d", n)
		}
	}
	if len(nums) == 0 {
		return nil
	}
	return c.run(ctx, "RETR", false, func() error {
		for _, n := range nums {
			cmd := "RETR " + strconv.Itoa(n)
			c.trace("C: ", cmd)
			if _, err := c.w.WriteString(cmd + "\r\n"); err != nil {
				return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", cmd, err))
			}
		}
		// The replies are owed from here on, even if the flush fails
		// part-way (the session is then unusable anyway).
		c.pending = append(c.pending, nums...)
		if err := c.w.Flush(); err != nil {
			return c.fail(fmt.Errorf("pop3src: pipelined RETR: sending commands: %w", err))
		}
		return nil
	})
}

// ReadRetr reads the reply to the oldest RETR sent with SendRetr and not read
// yet, which must be for message n, and streams the message to w, with
// Retr's guarantees: a -ERR is a *ResponseError and leaves the session
// usable; a connection that ends mid-message fails this call and every later
// one, never a short message with a nil error.
func (c *Client) ReadRetr(ctx context.Context, n int, w io.Writer) (int64, error) {
	cmd := "RETR " + strconv.Itoa(n)
	if len(c.pending) == 0 || c.pending[0] != n {
		return 0, fmt.Errorf("pop3src: reading the reply to %s: it is not the next pipelined RETR (outstanding: %v)", cmd, c.pending)
	}
	var written int64
	err := c.run(ctx, cmd, false, func() error {
		c.pending = c.pending[1:]
		var err error
		written, err = c.readRetr(cmd, w)
		return err
	})
	return written, err
}

// Pending returns how many RETRs sent with SendRetr have replies not read yet.
func (c *Client) Pending() int { return len(c.pending) }

// DiscardPending reads and discards the replies to every RETR sent with
// SendRetr and not read yet, reading each message to its end. A -ERR among
// them is no error; a broken connection is.
func (c *Client) DiscardPending(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	return c.run(ctx, "RETR", true, func() error { return nil })
}

// sendAhead sends cmds, commands without arguments whose reply is one
// line or a multi-line listing (CAPA, UIDL, LIST), in one write without
// reading the replies (RFC 2449 §6.6 PIPELINING: only with a server that
// announced it). The commands that ask for them next (Capa, UIDLEach,
// ListEach...) then read their replies without sending anything; any
// other command first reads and discards the replies before its own.
func (c *Client) sendAhead(ctx context.Context, cmds ...string) error {
	return c.do(ctx, strings.Join(cmds, "/"), func() error {
		for _, cmd := range cmds {
			c.trace("C: ", cmd)
			if _, err := c.w.WriteString(cmd + "\r\n"); err != nil {
				return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", cmd, err))
			}
		}
		// Owed from here on, even if the flush fails part-way (the
		// session is then unusable anyway).
		c.ahead = append(c.ahead, cmds...)
		if err := c.w.Flush(); err != nil {
			return c.fail(fmt.Errorf("pop3src: pipelined %s: sending commands: %w", strings.Join(cmds, ", "), err))
		}
		return nil
	})
}

// discardAhead reads and discards the replies to the commands sent ahead
// before the first that is cmd (all of them when none is). A -ERR is no
// error; a broken connection is.
func (c *Client) discardAhead(cmd string) error {
	if !slices.Contains(c.ahead, cmd) {
		cmd = ""
	}
	for len(c.ahead) > 0 && c.ahead[0] != cmd {
		sent := c.ahead[0]
		c.ahead = c.ahead[1:]
		if _, err := c.readStatus(sent); err != nil {
			var re *ResponseError
			if errors.As(err, &re) {
				continue
			}
			return err
		}
		c.log.Debug("discarded the reply to a pipelined command nobody asked for", "command", sent)
		if err := c.readMultiline(sent, func(string) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}

// drain reads and discards the replies to every RETR sent with SendRetr and
// not read yet. A -ERR among them is no error; a broken connection is.
func (c *Client) drain() error {
	for len(c.pending) > 0 {
		cmd := "RETR " + strconv.Itoa(c.pending[0])
		c.pending = c.pending[1:]
		if _, err := c.readRetr(cmd, io.Discard); err != nil {
			var re *ResponseError
			if !errors.As(err, &re) {
				return err
			}
		}
		c.log.Debug("discarded the reply to a pipelined command nobody asked for", "command", cmd)
	}
	return nil
}

// readRetr reads the reply to RETR (cmd) and streams the message to w.
func (c *Client) readRetr(cmd string, w io.Writer) (int64, error) {
	if _, err := c.readStatus(cmd); err != nil {
		return 0, err
	}
	written, err := c.body.copy(w, c.r)
	c.trace("S: ", fmt.Sprintf("[message body: %d bytes]", written))
	var pe *ProtocolError
	var we *writerError
	switch {
	case err == nil:
		return written, nil
	case errors.As(err, &pe):
		pe.Command = cmd
		return written, c.fail(pe)
	case errors.As(err, &we):
		return written, fmt.Errorf("pop3src: %s: %w", cmd, we)
	default:
		return written, c.fail(fmt.Errorf("pop3src: %s: reading message after %d bytes: %w", cmd, written, err))
	}
}

// Dele marks message n deleted (RFC 1939 §6: it is removed only when Quit
// succeeds).
func (c *Client) Dele(ctx context.Context, n int) error {
	if n <= 0 {
		return fmt.Errorf("pop3src: DELE: invalid message number %d", n)
	}
	_, err := c.simple(ctx, "DELE "+strconv.Itoa(n))
	return err
}

// DeleMany marks each of nums deleted with pipelined DELEs (RFC 2449
// §6.6: only with a server that announced PIPELINING), a chunk at a time.
// A -ERR (a *ResponseError naming the message) stops it after the
// replies of its chunk are read: some messages may be marked, and the
// caller must not QUIT (which would remove them) but treat the session as
// failed.
func (c *Client) DeleMany(ctx context.Context, nums []int) error {
	for _, n := range nums {
		if n <= 0 {
			return fmt.Errorf("pop3src: DELE: invalid message number %d", n)
		}
	}
	return c.do(ctx, "DELE", func() error {
		for len(nums) > 0 {
			part := nums[:min(infoChunk, len(nums))]
			nums = nums[len(part):]
			for _, n := range part {
				cmd := "DELE " + strconv.Itoa(n)
				c.trace("C: ", cmd)
				if _, err := c.w.WriteString(cmd + "\r\n"); err != nil {
					return c.fail(fmt.Errorf("pop3src: %s: sending command: %w", cmd, err))
				}
			}
			if err := c.w.Flush(); err != nil {
				return c.fail(fmt.Errorf("pop3src: pipelined DELE: sending commands: %w", err))
			}
			var first error
			for _, n := range part {
				if _, err := c.readStatus("DELE " + strconv.Itoa(n)); err != nil {
					var re *ResponseError
					if !errors.As(err, &re) {
						return err
					}
					if first == nil {
						first = err
					}
				}
			}
			if first != nil {
				return first
			}
		}
		return nil
	})
}

// Noop does nothing but keeps the session alive (RFC 1939 §5).
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.simple(ctx, "NOOP")
	return err
}

// Rset unmarks every message marked deleted (RFC 1939 §5).
func (c *Client) Rset(ctx context.Context) error {
	_, err := c.simple(ctx, "RSET")
	return err
}

// Quit ends the session and commits the deletions (RFC 1939 §6), then closes
// the connection. A -ERR means some deletions may not have happened. Any
// error other than a *ResponseError leaves it unknown whether they did.
func (c *Client) Quit(ctx context.Context) error {
	_, err := c.simple(ctx, "QUIT")
	if cerr := c.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = fmt.Errorf("pop3src: QUIT: closing connection: %w", cerr)
	}
	return err
}

// Close closes the connection without QUIT, so the server never enters the
// UPDATE state and no message marked with Dele is removed (RFC 1939 §6).
// Calling Close again returns nil.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.abort.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
