package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
)

// transfer is what one measured pass moved and how long it took.
type transfer struct {
	messages int
	bytes    int64
	elapsed  time.Duration
	cpu      cpuUse // filled in by the caller, around the whole pass
}

// readPOP3 is the plain read ceiling: our own POP3 client (pop3src.Client)
// logs in and RETRs every message into io.Discard, one command at a time.
// A nil tlsCfg reads in plain text.
func readPOP3(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (transfer, error) {
	start := time.Now()
	mode := pop3src.TLSImplicit
	if tlsCfg == nil {
		mode = pop3src.TLSNone
	}
	c, err := pop3src.Dial(ctx, pop3src.DialOptions{Addr: addr, TLS: mode, TLSConfig: tlsCfg, AllowPlaintext: tlsCfg == nil})
	if err != nil {
		return transfer{}, fmt.Errorf("dialling POP3 %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Login(ctx, user, pw); err != nil {
		return transfer{}, fmt.Errorf("logging in to POP3 %s as %s: %w", addr, user, err)
	}
	list, err := c.List(ctx)
	if err != nil {
		return transfer{}, fmt.Errorf("listing POP3 %s: %w", addr, err)
	}
	var t transfer
	for _, m := range list {
		n, err := c.Retr(ctx, m.Number, io.Discard)
		if err != nil {
			return t, fmt.Errorf("RETR %d from %s: %w", m.Number, addr, err)
		}
		t.messages++
		t.bytes += n
	}
	c.Quit(ctx)
	t.elapsed = time.Since(start)
	return t, nil
}

// readPOP3Pipelined is the pipelined read ceiling (RFC 2449 §6.6
// PIPELINING, which Dovecot advertises): after STAT it sends RETR for every
// message from one goroutine while another reads the replies, so no round
// trip is waited for. The byte count is the messages' unstuffed size.
func readPOP3Pipelined(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (transfer, error) {
	start := time.Now()
	conn, err := dialClient(ctx, addr, tlsCfg)
	if err != nil {
		return transfer{}, fmt.Errorf("dialling POP3 %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriterSize(conn, 16<<10)
	cmd := func(line string) (string, error) {
		if line != "" {
			if _, err := w.WriteString(line + "\r\n"); err != nil {
				return "", err
			}
			if err := w.Flush(); err != nil {
				return "", err
			}
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(reply, "+OK") {
			name, _, _ := strings.Cut(line, " ")
			return "", fmt.Errorf("%s answered %q", name, strings.TrimSpace(reply))
		}
		return strings.TrimSpace(reply), nil
	}
	if _, err := cmd(""); err != nil {
		return transfer{}, fmt.Errorf("reading the POP3 greeting of %s: %w", addr, err)
	}
	if _, err := cmd("USER " + user); err != nil {
		return transfer{}, fmt.Errorf("logging in to POP3 %s as %s: %w", addr, user, err)
	}
	if _, err := cmd("PASS " + pw.Reveal()); err != nil {
		return transfer{}, fmt.Errorf("logging in to POP3 %s as %s: PASS refused", addr, user)
	}
	stat, err := cmd("STAT")
	if err != nil {
		return transfer{}, fmt.Errorf("STAT on %s: %w", addr, err)
	}
	fields := strings.Fields(stat)
	if len(fields) < 2 {
		return transfer{}, fmt.Errorf("STAT on %s answered %q", addr, stat)
	}
	count, err := strconv.Atoi(fields[1])
	if err != nil {
		return transfer{}, fmt.Errorf("STAT on %s answered %q", addr, stat)
	}

	sendErr := make(chan error, 1)
	go func() {
		for i := 1; i <= count; i++ {
			if _, err := fmt.Fprintf(w, "RETR %d\r\n", i); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- w.Flush()
	}()
	var t transfer
	for i := 1; i <= count; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return t, fmt.Errorf("reading RETR %d reply from %s: %w", i, addr, err)
		}
		if !strings.HasPrefix(line, "+OK") {
			return t, fmt.Errorf("RETR %d on %s answered %q", i, addr, strings.TrimSpace(line))
		}
		n, err := skipMultiline(r)
		if err != nil {
			return t, fmt.Errorf("reading message %d from %s: %w", i, addr, err)
		}
		t.messages++
		t.bytes += n
	}
	if err := <-sendErr; err != nil {
		return t, fmt.Errorf("sending RETR commands to %s: %w", addr, err)
	}
	cmd("QUIT")
	t.elapsed = time.Since(start)
	return t, nil
}

// dialClient connects the bench's own clients: over implicit TLS, or in
// plain text when tlsCfg is nil.
func dialClient(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if tlsCfg == nil {
		return nd.DialContext(ctx, "tcp", addr)
	}
	d := &tls.Dialer{NetDialer: nd, Config: tlsCfg}
	return d.DialContext(ctx, "tcp", addr)
}

// skipMultiline reads a POP3 multi-line body up to the terminating ".CRLF"
// (RFC 1939 §3) and returns its size with the byte-stuffing undone.
func skipMultiline(r *bufio.Reader) (int64, error) {
	var n int64
	atLineStart := true
	for {
		chunk, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
		if atLineStart {
			if bytes.Equal(chunk, []byte(".\r\n")) {
				return n, nil
			}
			if len(chunk) > 0 && chunk[0] == '.' {
				n-- // a stuffed dot
			}
		}
		n += int64(len(chunk))
		atLineStart = err == nil // a full line ended with '\n'
	}
}

// writeTrial is one write-ceiling configuration: our appender alone
// (imapdst.Appender) storing preloaded messages from memory.
type writeTrial struct {
	batch int // MaxBatchMessages: 1 is one APPEND per message
	conns int // appender connections in parallel, each with a share
}

func (w writeTrial) String() string {
	return fmt.Sprintf("batch %d × %d conn", w.batch, w.conns)
}

// writeIMAP appends all of msgs to mailbox (which must exist) as trial says,
// splitting msgs into contiguous shares, one per connection. Connecting and
// logging in are not timed.
func writeIMAP(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value,
	mailbox string, msgs []message, trial writeTrial) (transfer, error) {
	apps := make([]*imapdst.Appender, trial.conns)
	defer func() {
		for _, a := range apps {
			if a != nil {
				a.Close()
			}
		}
	}()
	for i := range apps {
		mode := imapdst.TLSImplicit
		if tlsCfg == nil {
			mode = imapdst.TLSNone
		}
		a, err := imapdst.DialAppender(ctx, imapdst.Options{
			Addr: addr, TLS: mode, TLSConfig: tlsCfg, AllowPlaintext: tlsCfg == nil, User: user, Password: pw,
			MaxBatchMessages: trial.batch, MaxBatchBytes: 32 << 20,
		})
		if err != nil {
			return transfer{}, fmt.Errorf("dialling IMAP appender %s as %s: %w", addr, user, err)
		}
		apps[i] = a
	}
	out := make([]pipeline.OutgoingMessage, len(msgs))
	var total int64
	for i, m := range msgs {
		out[i] = pipeline.OutgoingMessage{Body: bytes.NewReader(m.data), Size: int64(len(m.data)), InternalDate: m.date}
		total += int64(len(m.data))
	}
	start := time.Now()
	errs := make([]error, trial.conns)
	var wg sync.WaitGroup
	share := (len(out) + trial.conns - 1) / trial.conns
	for i, a := range apps {
		lo, hi := min(i*share, len(out)), min((i+1)*share, len(out))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = appendAll(ctx, a, mailbox, out[lo:hi])
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return transfer{}, err
	}
	return transfer{messages: len(msgs), bytes: total, elapsed: elapsed}, nil
}

func appendAll(ctx context.Context, a *imapdst.Appender, mailbox string, msgs []pipeline.OutgoingMessage) error {
	const call = 1000 // messages per Append call; the appender batches inside
	for lo := 0; lo < len(msgs); lo += call {
		part := msgs[lo:min(lo+call, len(msgs))]
		res, err := a.Append(ctx, mailbox, part)
		if err != nil {
			return fmt.Errorf("appending to %s: %w", mailbox, err)
		}
		for i, r := range res {
			if r.Err != nil {
				return fmt.Errorf("appending message %d to %s: %w", lo+i, mailbox, r.Err)
			}
		}
	}
	return nil
}
