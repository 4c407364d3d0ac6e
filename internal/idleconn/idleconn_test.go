package idleconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func pipe(t testing.TB) (client, server net.Conn) {
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

// TestCloseOnDoneReplaced: a context replaced by another, or by one that
// never ends, no longer closes the conn when it ends.
func TestCloseOnDoneReplaced(t *testing.T) {
	for _, next := range []struct {
		name string
		ctx  context.Context
	}{
		{"background", context.Background()},
		{"another", t.Context()},
	} {
		t.Run(next.name, func(t *testing.T) {
			client, server := pipe(t)
			c := New(client, 0)
			ctx, cancel := context.WithCancel(context.Background())
			c.CloseOnDone(ctx)
			c.CloseOnDone(next.ctx)
			cancel()
			go server.Write([]byte("z"))
			if _, err := c.Read(make([]byte, 1)); err != nil {
				t.Fatalf("read after the replaced context ended: %v", err)
			}
		})
	}
}

// BenchmarkBindRelease: a source binds its connection to the run's
// context around every message's fetch, and releases it to the
// background.
func BenchmarkBindRelease(b *testing.B) {
	client, _ := pipe(b)
	c := New(client, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		c.CloseOnDone(ctx)
		c.CloseOnDone(context.Background())
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

// TestAbortResets: Close ends the peer's reads with EOF after every byte
// written; Abort ends them with a reset, and the bytes the kernel still held
// are not delivered.
func TestAbortResets(t *testing.T) {
	tests := []struct {
		name    string
		end     func(*Conn) error
		wantErr error
	}{
		{"close", (*Conn).Close, io.EOF},
		{"abort", (*Conn).Abort, syscall.ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pipe(t)
			defer server.Close()
			c := New(client, 0)
			const size = 32 << 20 // more than the socket buffers hold
			wrote := make(chan int64, 1)
			go func() {
				n, _ := c.Write(make([]byte, size))
				wrote <- int64(n)
			}()
			first := make([]byte, 1)
			if _, err := io.ReadFull(server, first); err != nil {
				t.Fatal(err)
			}
			// The writer is blocked on full buffers now or soon; ending the
			// conn unblocks it either way.
			if err := tt.end(c); err != nil {
				t.Fatal(err)
			}
			n := <-wrote
			got, err := io.Copy(io.Discard, server)
			got++ // the first byte
			if tt.wantErr == io.EOF {
				if err != nil || got != n {
					t.Fatalf("after close: read %d of %d written, err %v; want all, then EOF", got, n, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("after abort: read %d of %d written, err %v; want %v", got, n, err, tt.wantErr)
			}
		})
	}
}
