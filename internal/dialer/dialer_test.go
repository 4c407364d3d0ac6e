package dialer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/silent"
	"github.com/mailferry/mailferry/pipeline"
)

func TestDialRefused(t *testing.T) {
	start := time.Now()
	_, err := Dial(context.Background(), silent.Closed(t), Timeouts{})
	var re *RefusedError
	if !errors.As(err, &re) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Dial to a closed port = %v, want a fatal *RefusedError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a refused connect took %v, want at once", d)
	}
}

func TestDialTimeout(t *testing.T) {
	start := time.Now()
	_, err := Dial(context.Background(), silent.Unreachable(t), Timeouts{Connect: 300 * time.Millisecond})
	var te *TimeoutError
	if !errors.As(err, &te) || te.Step != StepConnect || pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Fatalf("Dial to a port that never answers = %v, want a transient *TimeoutError of the connect", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 10*time.Second {
		t.Errorf("the connect gave up after %v, want about 300ms", d)
	}
}

// TestRunTimeouts: a step blocked on a server that says nothing ends at
// its own timeout with a *TimeoutError, its connection closed; a step
// that finishes in time is left alone; the caller's context still rules.
func TestRunTimeouts(t *testing.T) {
	l := silent.Listen(t)
	for _, step := range []Step{StepTLS, StepGreeting} {
		t.Run(string(step), func(t *testing.T) {
			c, err := net.Dial("tcp", l.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			err = Run(context.Background(), c, step, l.Addr(), 200*time.Millisecond, true, func(ctx context.Context) error {
				if step == StepTLS {
					return tls.Client(c, &tls.Config{InsecureSkipVerify: true}).HandshakeContext(ctx)
				}
				_, err := io.ReadFull(c, make([]byte, 1)) // takes no context: Run closes c
				return err
			})
			var te *TimeoutError
			if !errors.As(err, &te) || te.Step != step || !te.TLS || !strings.Contains(te.Error(), l.Addr()) {
				t.Fatalf("Run = %v, want a *TimeoutError of the %s", err, step)
			}
			if d := time.Since(start); d < 150*time.Millisecond || d > 10*time.Second {
				t.Errorf("the step gave up after %v, want about 200ms", d)
			}
		})
	}
	if err := Run(context.Background(), io.NopCloser(nil), StepGreeting, "h:1", time.Second, false, func(context.Context) error { return nil }); err != nil {
		t.Errorf("a step done in time: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Run(ctx, io.NopCloser(nil), StepGreeting, "h:1", time.Second, false, func(ctx context.Context) error { return ctx.Err() })
	var te *TimeoutError
	if errors.As(err, &te) || !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled step = %v, want the cancellation, no timeout", err)
	}
}

func TestUnexpected(t *testing.T) {
	tests := []struct {
		line string
		want Protocol
		got  string // "" for nil
	}{
		{"+OK Dovecot ready.", IMAP, "POP3"},
		{"* OK [CAPABILITY IMAP4rev1] Dovecot ready.", POP3, "IMAP"},
		{"220 mx.example ESMTP", IMAP, "SMTP"},
		{"HTTP/1.1 400 Bad Request", POP3, "something else"},
		{"* NO go away", IMAP, ""}, // IMAP, just not a greeting: the client says so
		{"", IMAP, ""},
	}
	for _, tc := range tests {
		err := Unexpected("h:1", tc.want, tc.line)
		var pe *ProtocolError
		switch {
		case tc.got == "" && err != nil:
			t.Errorf("Unexpected(%q) = %v, want nil", tc.line, err)
		case tc.got != "" && (!errors.As(err, &pe) || pe.Got != tc.got || pipeline.ClassOf(err) != pipeline.ClassFatal):
			t.Errorf("Unexpected(%q) = %v, want a fatal *ProtocolError, got %s", tc.line, err, tc.got)
		}
	}
}

// TestTLSError: a TLS handshake with a server that answers in plain text
// (a POP3 or IMAP greeting at a port the URL says speaks TLS) is a
// protocol error that names the plain text.
func TestTLSError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "* OK IMAP4rev1 ready\r\n")
		io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	herr := tls.Client(c, &tls.Config{ServerName: "h"}).Handshake()
	err = TLSError(ln.Addr().String(), IMAP, herr)
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Got != "plain text" || !strings.Contains(pe.Error(), `"* OK ..."`) || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("TLSError(%v) = %v, want a fatal *ProtocolError quoting the plain text", herr, err)
	}
	if other := errors.New("reset"); TLSError("h:1", IMAP, other) != other {
		t.Error("TLSError changed an error that is not about plain text")
	}
}
