package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// echoServer accepts connections on 127.0.0.1 and echoes what it reads until
// the client half-closes, then closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestDelayProxy(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	cases := []struct {
		name  string
		delay time.Duration
		data  []byte
	}{
		{"no delay, 3 MB", 0, payload},
		{"30 ms each way, one line", 30 * time.Millisecond, []byte("HELLO\r\n")},
		{"30 ms each way, 3 MB", 30 * time.Millisecond, payload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := newDelayProxy(echoServer(t), tc.delay)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			start := time.Now()
			go func() {
				c.Write(tc.data)
				c.(*net.TCPConn).CloseWrite() // the end of stream must come back too
			}()
			got, err := io.ReadAll(c)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("reading the echo through the proxy: %v", err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("echo through the proxy: got %d bytes, want the %d sent, in order", len(got), len(tc.data))
			}
			if rtt := 2 * tc.delay; elapsed < rtt {
				t.Errorf("round trip took %v, want at least %v", elapsed, rtt)
			}
			if limit := 2*tc.delay + 5*time.Second; elapsed > limit {
				t.Errorf("round trip took %v, want under %v", elapsed, limit)
			}
		})
	}
}

func TestDelayProxyCloseEndsConnections(t *testing.T) {
	t.Parallel()
	p, err := newDelayProxy(echoServer(t), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s with a connection open")
	}
	if n, err := c.Read(buf); err == nil {
		t.Errorf("Read after Close = %d bytes, nil error; want the connection ended", n)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("proxy still accepts connections after Close")
	}
}

func TestNewDelayProxyRejectsNegativeDelay(t *testing.T) {
	t.Parallel()
	if p, err := newDelayProxy("127.0.0.1:1", -time.Millisecond); err == nil {
		p.Close()
		t.Fatal("newDelayProxy(-1ms) succeeded, want an error")
	}
}
