package idleconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func pipe(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestIdleTimeoutExtendsWithProgress(t *testing.T) {
	client, server := pipe(t)
	c := New(client, 400*time.Millisecond)
	// The server trickles bytes for longer than the idle timeout in total
	// (600 ms), but never pauses longer than it (50 ms, with room for a
	// loaded machine).
	go func() {
		for i := 0; i < 12; i++ {
			server.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read with steady progress: %v", err)
	}
	// Now the server stalls: the read must time out.
	_, err := c.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from stalled peer: err = %v, want deadline exceeded", err)
	}
}

func TestCloseOnDoneUnblocksRead(t *testing.T) {
	client, _ := pipe(t)
	c := New(client, 0)
	ctx, cancel := context.WithCancel(context.Background())
	c.CloseOnDone(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after cancel: err = nil, want an error")
	}
}

func TestCallerDeadlinesAreIgnored(t *testing.T) {
	client, server := pipe(t)
	c := New(client, time.Second)
	c.SetReadDeadline(time.Now().Add(-time.Hour)) // would fail at once if honoured
	go server.Write([]byte("y"))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after a past caller deadline: %v", err)
	}
}
