package imapdst

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/dialer"
	"github.com/mailferry/mailferry/internal/idleconn"
	"github.com/mailferry/mailferry/internal/mutf7"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/provider"
	"github.com/mailferry/mailferry/secret"
)

// Appender is an authenticated IMAP connection that only appends messages.
// It is used by one goroutine at a time. After a connection failure every
// method returns the error that broke it; dial again.
type Appender struct {
	opts Options
	log  *slog.Logger
	tr   *tracer

	ic   *idleconn.Conn // the TCP conn, for deadlines and cancellation
	conn net.Conn       // ic, or TLS on top of it
	br   *bufio.Reader
	bw   *bufio.Writer

	secure     bool
	caps       capSet
	tagN       uint64
	pending    map[string]*command
	inflight   int   // StartAppend calls whose wait has not returned
	err        error // sticky: why the connection is unusable
	loggingOut bool
	// provider is the server's family (Options.Provider, else what the
	// server says of itself), quirks its profile; refusals counts the NO
	// and BAD replies on this connection (quirks.MaxErrors).
	provider *provider.Provider
	quirks   provider.Quirks
	greeting string
	refusals int
}

// writeBufferBytes is the appender's write buffer. Message bodies are
// copied through it, and each time it fills it goes out as TLS records and
// a write system call: with bufio's default 4 KB a 10 KB message took three
// of each, and sending was a fifth of mailferry's CPU time on small mail;
// 64 KB fills four full 16 KB TLS records per write.
const writeBufferBytes = 64 << 10

// command is one command sent and not yet completed.
type command struct {
	tag     string
	name    string
	mailbox string
	n       int   // messages carried (APPEND)
	idx     []int // their indexes in the Append call
	nonSync bool  // a literal was sent without waiting for "+"
	done    bool
	reply   response
}

// DialAppender connects to opts.Addr, sets up TLS as opts.TLS says,
// authenticates and reads the capabilities. A token the server rejects is
// handed to opts.TokenRejected and the login tried once more with a fresh
// one, as on every other connection (bearer.WithFreshToken).
func DialAppender(ctx context.Context, opts Options) (*Appender, error) {
	if opts.PasswordFunc == nil {
		return dialAppender(ctx, opts)
	}
	a, err := bearer.WithFreshToken(ctx, opts.User+" for "+opts.Addr, opts.PasswordFunc, opts.TokenRejected, func(pw secret.Value) (*Appender, error) {
		once := opts
		once.Password, once.PasswordFunc = pw, nil
		return dialAppender(ctx, once)
	})
	if err == nil {
		a.opts.PasswordFunc = opts.PasswordFunc // reconnections ask again
	}
	return a, err
}

// dialAppender is DialAppender with the password in opts.
func dialAppender(ctx context.Context, opts Options) (*Appender, error) {
	raw, err := dialer.Dial(ctx, opts.Addr, opts.Timeouts)
	if err != nil {
		return nil, fmt.Errorf("imapdst: %w", err)
	}
	return NewAppender(ctx, raw, opts)
}

// NewAppender runs an appender session on conn, which is connected but has
// seen no traffic: it runs the TLS handshake (TLSImplicit) or STARTTLS
// (TLSStartTLS), reads the greeting, authenticates and reads the
// capabilities. On error conn is closed.
func NewAppender(ctx context.Context, conn net.Conn, opts Options) (*Appender, error) {
	opts = opts.withDefaults()
	opts, err := resolvePassword(ctx, opts)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	ic, c, err := opts.wrap(ctx, conn)
	if err != nil {
		return nil, err
	}
	a := &Appender{
		opts:    opts,
		log:     opts.Logger.With("conn", "append", "addr", opts.Addr),
		tr:      newTracer(opts.Trace, "append"),
		ic:      ic,
		conn:    c,
		br:      bufio.NewReader(c),
		bw:      bufio.NewWriterSize(c, writeBufferBytes),
		secure:  opts.TLS == TLSImplicit,
		pending: map[string]*command{},
	}
	ic.CloseOnDone(ctx)
	defer ic.CloseOnDone(context.Background())
	if err := a.start(ctx); err != nil {
		_ = ic.Close()
		return nil, idleconn.WithContextErr(ctx, err)
	}
	return a, nil
}

// renew logs out of a connection that works and goes on on a new one
// (quirks.MaxErrors). Only DialAppender's connections can be renewed.
func (a *Appender) renew(ctx context.Context) error {
	a.loggingOut = true
	_, _ = a.simple("LOGOUT", "")
	return a.reconnect(ctx)
}

// reconnect replaces a failed connection with a new session to the same
// server. Only DialAppender's connections can be re-established.
func (a *Appender) reconnect(ctx context.Context) error {
	_ = a.ic.Close()
	b, err := DialAppender(ctx, a.opts)
	if err != nil {
		return err
	}
	b.tagN = a.tagN // tags stay unique in traces
	b.inflight = a.inflight
	*a = *b
	a.ic.CloseOnDone(ctx)
	return nil
}

// start reads the greeting (RFC 3501 §7.1), upgrades with STARTTLS and
// authenticates.
func (a *Appender) start(ctx context.Context) error {
	var greet response
	err := dialer.Run(ctx, a.ic, dialer.StepGreeting, a.opts.Addr, a.opts.Timeouts.Greeting, a.opts.TLS == TLSImplicit, func(context.Context) (err error) {
		// Another protocol's greeting ("+OK" of POP3) is no IMAP response
		// the parser could read: look at the first line as it came.
		if _, err := a.br.Peek(1); err != nil {
			return err
		}
		first, _ := a.br.Peek(a.br.Buffered())
		line, _, _ := strings.Cut(string(first), "\n")
		if perr := dialer.Unexpected(a.opts.Addr, dialer.IMAP, line); perr != nil {
			return perr // POP3 at an IMAP URL's port, say
		}
		greet, err = a.next()
		return err
	})
	var te *dialer.TimeoutError
	var pe *dialer.ProtocolError
	if errors.As(err, &te) || errors.As(err, &pe) {
		return fmt.Errorf("imapdst: %w", err)
	}
	if err != nil {
		return fmt.Errorf("imapdst: reading greeting from %s: %w", a.opts.Addr, err)
	}
	if greet.Tag != "*" || (greet.Status != "OK" && greet.Status != "PREAUTH") {
		if perr := dialer.Unexpected(a.opts.Addr, dialer.IMAP, greet.Line); perr != nil {
			return a.fail(fmt.Errorf("imapdst: %w", perr)) // POP3 at an IMAP URL's port, say
		}
		return a.fail(fmt.Errorf("imapdst: unexpected greeting from %s: %q", a.opts.Addr, truncate(greet.Line)))
	}
	a.greeting = greet.Text
	preauth := greet.Status == "PREAUTH"
	if a.opts.TLS == TLSStartTLS {
		if preauth {
			// RFC 9051 §6.2.1: a client that requires TLS must not use a
			// PREAUTH session on a clear-text connection.
			return a.fail(fatal(fmt.Errorf("imapdst: %s sent PREAUTH on a clear-text connection, refusing it", a.opts.Addr)))
		}
		if err := a.startTLS(ctx); err != nil {
			return err
		}
	}
	if !preauth {
		if err := a.authenticate(); err != nil {
			return err
		}
	}
	if a.caps == nil {
		if err := a.capability(); err != nil {
			return err
		}
	}
	a.identify()
	a.log.Debug("appender ready", "multiappend", a.caps["MULTIAPPEND"], "literal+", a.caps["LITERAL+"],
		"uidplus", a.caps["UIDPLUS"], "appendlimit", a.caps.appendLimit(), "binary", a.caps["BINARY"])
	return nil
}

// identify sets the server's provider: Options.Provider, else the one its
// capabilities and greeting tell (provider.Identify).
func (a *Appender) identify() {
	a.provider = a.opts.Provider
	if a.provider == nil {
		host, _, err := net.SplitHostPort(a.opts.Addr)
		if err != nil {
			host = a.opts.Addr
		}
		ps := provider.Server{Host: host, Greeting: a.greeting}
		for c, ok := range a.caps {
			if ok {
				ps.Capabilities = append(ps.Capabilities, c)
			}
		}
		a.provider = provider.Identify(ps)
	}
	a.quirks = provider.QuirksOf(a.provider)
}

// Provider returns the server's family (Options.Provider, or the one told
// from what the server said); nil when none is known.
func (a *Appender) Provider() *provider.Provider { return a.provider }

// startTLS upgrades the connection (RFC 3501 §6.2.1, RFC 2595 §3.1).
func (a *Appender) startTLS(ctx context.Context) error {
	if a.caps == nil {
		if err := a.capability(); err != nil {
			return err
		}
	}
	if !a.caps["STARTTLS"] {
		return a.fail(fatal(fmt.Errorf("connecting to %s: %w", a.opts.Addr, ErrNoStartTLS)))
	}
	if _, err := a.simple("STARTTLS", ""); err != nil {
		return err
	}
	// Anything the server sent after its OK arrived in clear text and could
	// have been injected (RFC 2595 §3.1: discard it); refuse instead.
	if a.br.Buffered() > 0 {
		return a.fail(fatal(fmt.Errorf("imapdst: %s sent data after STARTTLS OK before the TLS handshake", a.opts.Addr)))
	}
	var tc *tls.Conn
	err := dialer.Run(ctx, a.ic, dialer.StepTLS, a.opts.Addr, a.opts.Timeouts.TLS, false, func(ctx context.Context) (err error) {
		tc, err = tlsmode.Handshake(ctx, a.ic, a.opts.tlsConfig())
		return err
	})
	if err != nil {
		return a.fail(fmt.Errorf("imapdst: TLS handshake with %s after STARTTLS: %w", a.opts.Addr, err))
	}
	a.conn = tc
	a.br.Reset(tc)
	a.bw.Reset(tc)
	a.secure = true
	a.caps = nil // RFC 3501 §6.2.1: capabilities must be asked for again
	return nil
}

// authenticate logs in with the OAuth2 mechanism Options.Auth names, or
// with LOGIN, or with AUTHENTICATE PLAIN when asked for, when an
// authorization identity is set or when LOGIN is disabled.
func (a *Appender) authenticate() error {
	if !a.secure && !a.opts.AllowPlaintext {
		return a.fail(fmt.Errorf("imapdst: logging in to %s as %s: %w", a.opts.Addr, a.opts.User, ErrPlaintextRefused))
	}
	creds := a.opts.credentials()
	if err := creds.Check(); err != nil {
		return a.fail(fmt.Errorf("imapdst: logging in to %s as %s: %w", a.opts.Addr, a.opts.User, err))
	}
	if a.caps == nil {
		if err := a.capability(); err != nil {
			return err
		}
	}
	mech, err := creds.Mechanism(func(name string) bool { return a.caps[name] })
	if err != nil {
		return a.fail(fmt.Errorf("imapdst: logging in to %s as %s: %w", a.opts.Addr, a.opts.User, err))
	}
	var cmd *command
	switch mech {
	case "":
		cmd, err = a.login()
	case "PLAIN":
		cmd, err = a.authPlain()
	default:
		cmd, err = a.authBearer()
	}
	if err != nil {
		return err
	}
	if err := a.wait(cmd); err != nil {
		return err
	}
	if lerr := a.loginError(cmd); lerr != nil {
		return lerr
	}
	a.caps = nil
	if cmd.reply.Code == "CAPABILITY" {
		a.caps = parseCaps(cmd.reply.CodeArg)
	}
	a.log.Debug("logged in", "user", a.opts.User)
	return nil
}

// login sends LOGIN (RFC 3501 §6.2.3); the trace shows *** for both arguments.
func (a *Appender) login() (*command, error) {
	cmd := a.newCommand("LOGIN", "")
	a.write(cmd.tag+" LOGIN ", "")
	if rejected, err := a.writeString(cmd, a.opts.User, true); err != nil || rejected {
		return cmd, err
	}
	a.write(" ", "")
	if rejected, err := a.writeString(cmd, a.opts.Password.Reveal(), true); err != nil || rejected {
		return cmd, err
	}
	a.write("\r\n", "")
	a.tr.clientEnd()
	return cmd, a.flush()
}

// authPlain sends AUTHENTICATE PLAIN (RFC 4616) with the initial response
// inline when the server offers SASL-IR (RFC 4959).
func (a *Appender) authPlain() (*command, error) {
	ir := base64.StdEncoding.EncodeToString([]byte(a.opts.AuthzID + "\x00" + a.opts.User + "\x00" + a.opts.Password.Reveal()))
	cmd := a.newCommand("AUTHENTICATE", "")
	if a.caps["SASL-IR"] {
		a.write(cmd.tag+" AUTHENTICATE PLAIN "+ir+"\r\n", cmd.tag+" AUTHENTICATE PLAIN ***")
		a.tr.clientEnd()
		return cmd, a.flush()
	}
	a.write(cmd.tag+" AUTHENTICATE PLAIN\r\n", cmd.tag+" AUTHENTICATE PLAIN")
	a.tr.clientEnd()
	if rejected, err := a.waitContinuation(cmd); err != nil || rejected {
		return cmd, err
	}
	a.write(ir+"\r\n", "***")
	a.tr.clientEnd()
	return cmd, a.flush()
}

// capability asks for the capabilities (RFC 3501 §6.1.1).
func (a *Appender) capability() error {
	a.caps = nil
	if _, err := a.simple("CAPABILITY", ""); err != nil {
		return err
	}
	if a.caps == nil {
		return a.fail(fmt.Errorf("imapdst: %s answered CAPABILITY without a capability list", a.opts.Addr))
	}
	return nil
}

// simple sends "tag NAME" plus mailbox (quoted, when not "") and waits for
// the completion. A NO or BAD is returned as *ReplyError.
func (a *Appender) simple(name, mailbox string) (*command, error) {
	if a.err != nil {
		return nil, a.err
	}
	cmd := a.newCommand(name, mailbox)
	a.write(cmd.tag+" "+name, "")
	if mailbox != "" {
		a.write(" ", "")
		if rejected, err := a.writeString(cmd, mutf7.Encode(mailbox), false); err != nil {
			return cmd, err
		} else if rejected {
			return cmd, a.replyError(cmd)
		}
	}
	a.write("\r\n", "")
	a.tr.clientEnd()
	if err := a.wait(cmd); err != nil {
		return cmd, err
	}
	return cmd, a.replyError(cmd)
}

// Capabilities reports what the server offers for appending, and how it
// treats an APPEND of a message it holds (its quirk profile).
func (a *Appender) Capabilities() pipeline.Capabilities {
	return a.caps.forAppend(a.quirks, a.opts.Shared)
}

// HasCapability reports whether the server advertised name (case-insensitive).
func (a *Appender) HasCapability(name string) bool { return a.caps[strings.ToUpper(name)] }

// Err returns why the connection is unusable, or nil.
func (a *Appender) Err() error { return a.err }

// Close logs out (waiting at most 5 s for the server) and closes the
// connection. It returns nil when the connection had already failed.
func (a *Appender) Close() error {
	if a.err != nil {
		_ = a.ic.Close()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), logoutTimeout)
	defer cancel()
	a.ic.CloseOnDone(ctx)
	a.loggingOut = true
	_, err := a.simple("LOGOUT", "")
	a.err = fmt.Errorf("appending to %s: %w", a.opts.Addr, ErrClosed)
	cerr := a.ic.Close()
	if err != nil {
		return fmt.Errorf("imapdst: logging out of %s: %w", a.opts.Addr, err)
	}
	if cerr != nil && !isClosedErr(cerr) {
		return fmt.Errorf("imapdst: closing connection to %s: %w", a.opts.Addr, cerr)
	}
	return nil
}

// newCommand allocates a tag and registers the command as pending.
func (a *Appender) newCommand(name, mailbox string) *command {
	a.tagN++
	cmd := &command{tag: "A" + strconv.FormatUint(a.tagN, 10), name: name, mailbox: mailbox}
	a.pending[cmd.tag] = cmd
	return cmd
}

// write buffers s for the server and adds traced (s without CRLF when
// traced is "") to the trace line.
func (a *Appender) write(s, traced string) {
	_, _ = a.bw.WriteString(s) // errors surface at flush
	if traced == "" {
		traced = strings.TrimSuffix(s, "\r\n")
	}
	a.tr.client(traced)
}

// flush sends what is buffered.
func (a *Appender) flush() error {
	if a.err != nil {
		return a.err
	}
	if err := a.bw.Flush(); err != nil {
		return a.failWrite(fmt.Errorf("imapdst: writing to %s: %w", a.opts.Addr, err))
	}
	return nil
}

// writeString writes s as a quoted string when it can be one, else as a
// literal (RFC 3501 §4.3). secret strings are traced as ***. rejected is true
// when the server completed cmd instead of accepting the literal.
func (a *Appender) writeString(cmd *command, s string, secret bool) (rejected bool, err error) {
	if quotable(s) {
		q := quote(s)
		traced := q
		if secret {
			traced = "***"
		}
		a.write(q, traced)
		return false, nil
	}
	return a.writeLiteral(cmd, strings.NewReader(s), int64(len(s)), secret)
}

// quotable reports whether s fits in a quoted string: 7-bit, no CR, LF, NUL.
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}

// quote returns s as an IMAP quoted string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// nonSyncOK reports whether an n-byte literal may be sent without waiting
// for "+": LITERAL+ always, LITERAL- (and IMAP4rev2, which includes it) up
// to 4096 bytes (RFC 7888 §3, §4).
func (a *Appender) nonSyncOK(n int64) bool {
	return a.caps["LITERAL+"] || n <= 4096 && (a.caps["LITERAL-"] || a.caps["IMAP4REV2"])
}

// announceLiteral8 writes an n-byte literal8's announcement (RFC 3516
// §4.4: "~{n}", for a message with NUL bytes, which a literal cannot
// carry) and waits for the continuation: always synchronising, so the
// server may refuse it before a byte is sent.
func (a *Appender) announceLiteral8(cmd *command, n int64) (rejected bool, err error) {
	a.write("~{"+strconv.FormatInt(n, 10)+"}\r\n", "")
	a.tr.clientEnd()
	return a.waitContinuation(cmd)
}

// writeLiteral announces and sends an n-byte literal read from r. For a
// synchronising literal it first waits for the continuation; if the server
// completes cmd instead (a NO before "+", e.g. [TOOBIG]), nothing is sent
// and rejected is true: the connection stays in step, as the server read
// the command only up to the announcement (RFC 3501 §7.5). For a
// non-synchronising literal the server must read the bytes even when it
// refuses the command (RFC 7888 §4).
func (a *Appender) writeLiteral(cmd *command, r io.Reader, n int64, secret bool) (rejected bool, err error) {
	if rejected, err := a.announceLiteral(cmd, n); err != nil || rejected {
		return rejected, err
	}
	return false, a.copyLiteral(cmd, r, n, secret)
}

// copyLiteral sends the n bytes of a literal announced (and, if
// synchronising, continued) from r.
func (a *Appender) copyLiteral(cmd *command, r io.Reader, n int64, secret bool) error {
	er := &errReader{r: r}
	m, err := io.CopyN(a.bw, er, n)
	switch {
	case er.err != nil && !errors.Is(er.err, io.EOF):
		return a.fail(fmt.Errorf("imapdst: reading message body for %s: %w", a.opts.Addr, er.err))
	case m < n:
		if err == nil || errors.Is(err, io.EOF) {
			return a.fail(fmt.Errorf("imapdst: message body for %q ended after %d of %d bytes", cmd.mailbox, m, n))
		}
		return a.failWrite(fmt.Errorf("imapdst: writing to %s: %w", a.opts.Addr, err))
	}
	if secret {
		a.tr.client("***")
		a.tr.clientEnd()
	} else {
		a.tr.literal(n)
	}
	return nil
}

// announceLiteral writes an n-byte literal's announcement and, for a
// synchronising one, waits for the continuation (see writeLiteral).
func (a *Appender) announceLiteral(cmd *command, n int64) (rejected bool, err error) {
	if a.nonSyncOK(n) {
		a.write("{"+strconv.FormatInt(n, 10)+"+}\r\n", "")
	} else {
		a.write("{"+strconv.FormatInt(n, 10)+"}\r\n", "")
	}
	a.tr.clientEnd()
	if a.nonSyncOK(n) {
		cmd.nonSync = true
		return false, nil
	}
	return a.waitContinuation(cmd)
}

// writeBody sends a message body of n bytes as a literal, like
// writeLiteral, or as a literal8 when binary (announceLiteral8). A body that writes itself whole (CopyTo: a spooled
// message, which hands its bytes in memory to the write buffer in one
// Write) is asked to: bufio then sends all but the start of a large body
// straight to the connection, a copy of every byte fewer than reading it
// through the buffer. Other bodies are read through ReadAt. (Not
// io.WriterTo: a bytes.Reader's WriteTo writes from its read position,
// and a body may be sent again.)
func (a *Appender) writeBody(cmd *command, body io.ReaderAt, n int64, binary bool) (rejected bool, err error) {
	announce := a.announceLiteral
	if binary {
		announce = a.announceLiteral8
	}
	if rejected, err := announce(cmd, n); err != nil || rejected {
		return rejected, err
	}
	wt, ok := body.(interface {
		CopyTo(io.Writer) (int64, error)
	})
	if !ok {
		return false, a.copyLiteral(cmd, io.NewSectionReader(body, 0, n), n, false)
	}
	ew := &errWriter{w: a.bw, send: a.sendFile}
	m, err := wt.CopyTo(ew)
	switch {
	case ew.err != nil:
		return false, a.failWrite(fmt.Errorf("imapdst: writing to %s: %w", a.opts.Addr, ew.err))
	case err != nil:
		return false, a.fail(fmt.Errorf("imapdst: reading message body for %s: %w", a.opts.Addr, err))
	case m != n:
		// More would put the connection out of step; fewer leaves the
		// server waiting for the rest: either way it cannot go on.
		return false, a.fail(fmt.Errorf("imapdst: message body for %q is %d bytes, %d announced", cmd.mailbox, m, n))
	}
	a.tr.literal(n)
	return false, nil
}

// errWriter remembers its writer's error, to tell a failing connection
// from a failing message body in CopyTo.
type errWriter struct {
	w    io.Writer
	err  error
	send func(f *os.File, off, n int64) (int64, bool, error) // SendFile's; nil: none
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// SendFile sends a range of a spooled message's temp file by itself
// (spool.FileSender) when send can. Its error counts as the connection's:
// sendfile(2) does not say whether reading the file or writing the
// socket failed, and either way the literal is cut short.
func (e *errWriter) SendFile(f *os.File, off, n int64) (int64, bool, error) {
	if e.send == nil || e.err != nil {
		return 0, false, nil
	}
	k, handled, err := e.send(f, off, n)
	if err != nil && e.err == nil {
		e.err = err
	}
	return k, handled, err
}

// sendFile sends n bytes of f from off with sendfile(2) (idleconn's
// SendFile) when the connection is plain TCP, after what the write buffer
// holds (the APPEND command and the literal's announcement): the bytes of
// a large message's temp file then pass through mailferry neither when
// read back nor when written, where copying them was a twentieth of
// mailferry's CPU on *mixed*. Under TLS it reports not handled.
func (a *Appender) sendFile(f *os.File, off, n int64) (int64, bool, error) {
	if a.conn != net.Conn(a.ic) {
		return 0, false, nil
	}
	if err := a.bw.Flush(); err != nil {
		return 0, true, err
	}
	return a.ic.SendFile(f, off, n)
}

// errReader remembers its reader's error, to tell a failing message source
// from a failing connection in io.Copy.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// waitContinuation flushes and reads until the server sends "+" (false) or
// completes cmd instead (true). Completions of other pending commands are
// recorded on them as they arrive.
func (a *Appender) waitContinuation(cmd *command) (rejected bool, err error) {
	if err := a.flush(); err != nil {
		return false, err
	}
	for {
		r, err := a.next()
		if err != nil {
			return false, err
		}
		if r.Tag == "+" {
			return false, nil
		}
		if cmd.done {
			return true, nil
		}
	}
}

// wait flushes and reads until cmd completes.
func (a *Appender) wait(cmd *command) error {
	if err := a.flush(); err != nil {
		return err
	}
	for !cmd.done {
		r, err := a.next()
		if err != nil {
			return err
		}
		if r.Tag == "+" {
			return a.fail(fmt.Errorf("imapdst: unexpected continuation request from %s while waiting for %s", a.opts.Addr, cmd.name))
		}
	}
	return nil
}

// next reads one response and deals with it: untagged data updates the
// state or is logged; a tagged completion is recorded on its command; a
// continuation request is returned for the caller to act on.
func (a *Appender) next() (response, error) {
	if a.err != nil {
		return response{}, a.err
	}
	r, err := readResponse(a.br)
	if err != nil {
		return r, a.fail(fmt.Errorf("imapdst: reading from %s: %w", a.opts.Addr, err))
	}
	a.tr.server(r.Line)
	switch r.Tag {
	case "+":
		return r, nil
	case "*":
		return r, a.untagged(r)
	}
	cmd, ok := a.pending[r.Tag]
	if !ok {
		return r, a.fail(fmt.Errorf("imapdst: %s completed unknown command tag %q", a.opts.Addr, r.Tag))
	}
	if r.Status == "NO" || r.Status == "BAD" {
		a.refusals++
	}
	delete(a.pending, r.Tag)
	cmd.done, cmd.reply = true, r
	return r, nil
}

// untagged handles untagged responses that can arrive at any time
// (RFC 3501 §7): capability changes, alerts, BYE; mailbox data is ignored.
func (a *Appender) untagged(r response) error {
	switch r.Status {
	case "BYE":
		if a.loggingOut {
			return nil
		}
		// RFC 3501 §7.1.5: the server is closing the connection. Commands
		// not yet completed have an unknown outcome.
		return a.fail(a.dailyLimit(a.byeError(r)))
	case "OK", "NO", "BAD", "PREAUTH":
		switch {
		case r.Code == "ALERT":
			a.log.Warn("server alert", "text", r.Text)
		case r.Code == "CAPABILITY":
			a.caps = parseCaps(r.CodeArg)
		case r.Status != "OK" && r.Status != "PREAUTH":
			a.log.Warn("server warning", "status", r.Status, "code", r.Code, "text", r.Text)
		}
		return nil
	}
	if r.Kind == "CAPABILITY" {
		a.caps = parseCaps(r.Rest)
	}
	return nil
}

// byeError is the error for an untagged BYE (RFC 3501 §7.1.5): a
// *ReplyError naming a command it interrupted, "session" when none was
// pending.
func (a *Appender) byeError(r response) *ReplyError {
	e := &ReplyError{Command: "session", Status: "BYE", Code: r.Code, Text: r.Text}
	for _, c := range a.pending {
		e.Command, e.Mailbox = c.name, c.mailbox
		break
	}
	return e
}

// Bounds on reading what the server sent before a write failed.
const (
	byeGrace      = 250 * time.Millisecond
	byeMaxReplies = 64
)

// failWrite is fail for an error writing to the server. A server that ends
// the session sends "* BYE [code] reason" and closes; a client busy
// writing (a literal, pipelined APPENDs) then sees only "broken pipe" or
// "connection reset", while the BYE waits unread. So the replies already
// received are read, for at most byeGrace, and a BYE found there becomes
// the error, joined with err: errors.As finds the *ReplyError, its class
// (BYE: transient) decides, and the message shows the server's reason.
func (a *Appender) failWrite(err error) error {
	if a.err != nil {
		return a.err
	}
	if bye := a.salvageBye(); bye != nil {
		err = a.dailyLimit(fmt.Errorf("%w (%w)", bye, err))
	}
	return a.fail(err)
}

// salvageBye reads the replies the server sent before the connection broke
// and returns the error for the first BYE among them, or nil. Completions
// are not recorded: the caller is about to fail, and commands without a
// known outcome are reconciled later. The connection is closed after
// byeGrace to unblock the read; it is unusable anyway.
func (a *Appender) salvageBye() *ReplyError {
	t := time.AfterFunc(byeGrace, func() { _ = a.ic.Close() })
	defer t.Stop()
	for range byeMaxReplies {
		r, err := readResponse(a.br)
		if err != nil {
			return nil
		}
		a.tr.server(r.Line)
		if r.Tag == "*" && r.Status == "BYE" {
			return a.byeError(r)
		}
	}
	return nil
}

// fail marks the connection unusable, closes it and returns err. The close
// is a TCP reset (idleconn.Abort): an APPEND written but not answered must
// not reach the server from the kernel's queue after the caller has given
// up on it, or the server could store it after the next session reconciled
// and sent the batch again.
func (a *Appender) fail(err error) error {
	if a.err == nil {
		a.err = err
		_ = a.ic.Abort()
		a.log.Debug("appender connection failed", "err", err)
	}
	return a.err
}

// replyError returns nil for an OK completion, else a *ReplyError (in a
// *pipeline.DailyLimitError when it says the day's allowance is spent).
func (a *Appender) replyError(cmd *command) error {
	if cmd.reply.Status == "OK" {
		return nil
	}
	return a.dailyLimit(&ReplyError{Command: cmd.name, Mailbox: cmd.mailbox, Status: cmd.reply.Status,
		Code: cmd.reply.Code, Text: cmd.reply.Text, Batch: cmd.n > 1})
}

// dailyLimit returns err in a *pipeline.DailyLimitError when the server's
// refusal in it says the account's daily allowance is spent
// (provider.Quirks.DailyLimit: Gmail's "[OVERQUOTA] Account exceeded
// command or bandwidth limits", as a NO or a BYE): the account then
// pauses until the next quota day instead of failing, and the messages
// refused are sent then. Other errors pass unchanged.
func (a *Appender) dailyLimit(err error) error {
	var re *ReplyError
	if errors.As(err, &re) && a.quirks.DailyLimitReached(re.Text) {
		return &pipeline.DailyLimitError{Err: err}
	}
	return err
}

// spentErrors reports whether this connection has had as many refusals as
// the server takes on one connection, less one (provider.Quirks.MaxErrors:
// Exchange Online ends a connection after about 10): the next refusal
// would cost the connection and the APPENDs in flight on it.
func (a *Appender) spentErrors() bool {
	return a.quirks.MaxErrors > 0 && a.refusals >= a.quirks.MaxErrors-1
}

// maxInFlight bounds the APPENDs sent before their replies: MaxInFlight,
// and no more than the refusals the connection has left.
func (a *Appender) maxInFlight() int {
	n := a.opts.MaxInFlight
	if m := a.quirks.MaxErrors; m > 0 {
		n = min(n, max(1, m-1-a.refusals))
	}
	return n
}

// loginError returns the server's refusal of a LOGIN or AUTHENTICATE as a
// *LoginError, nil when it was accepted.
func (a *Appender) loginError(cmd *command) *LoginError {
	if cmd.reply.Status == "OK" {
		return nil
	}
	return &LoginError{Addr: a.opts.Addr, User: a.opts.User, Command: cmd.name,
		Status: cmd.reply.Status, Code: cmd.reply.Code, Text: cmd.reply.Text}
}
