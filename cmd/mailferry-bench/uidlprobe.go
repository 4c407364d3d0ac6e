package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/mailferry/mailferry/secret"
)

// uidlProbe is a POP3 session that asks the source only what mailferry's
// re-run with nothing new asks it (log in, UIDL, QUIT), each step timed:
// the source server's own part of that re-run (issue 20). Dovecot's pop3
// opens the maildrop after the login, before it reads a command, so the
// time to UIDL's first byte is the open (sync with dovecot-uidlist, every
// message's size) and the time from the first byte to the last is the
// listing being written.
type uidlProbe struct {
	login     time.Duration // connect, TLS, greeting, USER, PASS's +OK
	firstByte time.Duration // UIDL's first byte, after PASS's +OK
	lastByte  time.Duration // the "." that ends UIDL's reply, after PASS's +OK
	quit      time.Duration // QUIT's +OK, after the last byte
	lines     int
	// cpu is taken at the last byte, before QUIT, while Dovecot's pop3
	// process still lives: the source's CPU includes it whole.
	cpu cpuUse
}

func (p uidlProbe) total() time.Duration { return p.login + p.lastByte + p.quit }

// probeUIDL runs one uidlProbe session. A nil tlsCfg talks plain text.
func (e *env) probeUIDL(ctx context.Context, addr string, tlsCfg *tls.Config, user string, pw secret.Value) (uidlProbe, error) {
	var p uidlProbe
	before := e.cpu.snapshot()
	start := time.Now()
	conn, err := dialClient(ctx, addr, tlsCfg)
	if err != nil {
		return p, fmt.Errorf("dialling POP3 %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReaderSize(conn, 64<<10)
	cmd := func(line string) error {
		if line != "" {
			if _, err := conn.Write([]byte(line + "\r\n")); err != nil {
				return err
			}
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(reply, "+OK") {
			name, _, _ := strings.Cut(line, " ")
			return fmt.Errorf("%s answered %q", name, strings.TrimSpace(reply))
		}
		return nil
	}
	for _, line := range []string{"", "USER " + user, "PASS " + pw.Reveal()} {
		if err := cmd(line); err != nil {
			name, _, _ := strings.Cut(line, " ")
			return p, fmt.Errorf("logging in to POP3 %s as %s (%s): %v", addr, user, name, strings.ReplaceAll(err.Error(), pw.Reveal(), "…"))
		}
	}
	loggedIn := time.Now()
	p.login = loggedIn.Sub(start)
	if _, err := conn.Write([]byte("UIDL\r\n")); err != nil {
		return p, fmt.Errorf("sending UIDL to %s: %w", addr, err)
	}
	if _, err := r.Peek(1); err != nil {
		return p, fmt.Errorf("reading UIDL's reply from %s: %w", addr, err)
	}
	p.firstByte = time.Since(loggedIn)
	if err := cmd(""); err != nil {
		return p, fmt.Errorf("UIDL on %s: %w", addr, err)
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return p, fmt.Errorf("reading UIDL's reply from %s after %d lines: %w", addr, p.lines, err)
		}
		if string(line) == ".\r\n" {
			break
		}
		p.lines++
	}
	p.lastByte = time.Since(loggedIn)
	p.cpu = e.cpu.since(before, -1)
	last := time.Now()
	if err := cmd("QUIT"); err != nil {
		return p, fmt.Errorf("QUIT on %s: %w", addr, err)
	}
	p.quit = time.Since(last)
	return p, nil
}
