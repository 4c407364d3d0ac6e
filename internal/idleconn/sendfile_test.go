package idleconn

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestSendFile: SendFile puts exactly bytes [off, off+n) of the file on a
// TCP connection, at the chunk boundaries of the idle deadline and off
// them, without the timeout too, and leaves the file's position alone; a
// file that ends early is an error with what was sent counted; a
// connection that is not TCP is not handled and gets nothing.
func TestSendFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendfile is used on Linux only")
	}
	const chunk = 256 << 10
	data := make([]byte, 3*chunk+1000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	f, err := os.CreateTemp(t.TempDir(), "sendfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	const pos = 12345 // f's position, which SendFile must not move
	if _, err := f.Seek(pos, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		off, n  int64
		timeout time.Duration
	}{
		{"one byte", 0, 1, time.Minute},
		{"a chunk less one", 0, chunk - 1, time.Minute},
		{"a chunk", 0, chunk, time.Minute},
		{"a chunk and one", 0, chunk + 1, time.Minute},
		{"from an offset across chunks", 777, 2*chunk + 5, time.Minute},
		{"to the file's end", 1, int64(len(data)) - 1, time.Minute},
		{"without a timeout", 3, int64(len(data)) - 3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pipe(t)
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(server)
				got <- b
			}()
			c := New(client, tc.timeout)
			n, handled, err := c.SendFile(f, tc.off, tc.n)
			client.Close()
			if err != nil || !handled || n != tc.n {
				t.Fatalf("SendFile = %d, %v, %v; want %d, true, nil", n, handled, err, tc.n)
			}
			if b := <-got; !bytes.Equal(b, data[tc.off:tc.off+tc.n]) {
				t.Fatalf("the peer got %d bytes, not bytes %d to %d of the file", len(b), tc.off, tc.off+tc.n)
			}
			if p, _ := f.Seek(0, io.SeekCurrent); p != pos {
				t.Fatalf("the file's position moved to %d", p)
			}
		})
	}
	t.Run("the file ends early", func(t *testing.T) {
		client, server := pipe(t)
		go io.Copy(io.Discard, server)
		off := int64(len(data)) - 10
		n, handled, err := New(client, time.Minute).SendFile(f, off, 20)
		if !handled || n != 10 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("SendFile past the end = %d, %v, %v; want 10, true, unexpected EOF", n, handled, err)
		}
	})
	t.Run("a peer that stops reading", func(t *testing.T) {
		// More than the sockets' buffers hold: SendFile waits for room,
		// and fails after the idle timeout.
		big := sparseFile(t, 64<<20)
		client, _ := pipe(t)
		n, handled, err := New(client, 200*time.Millisecond).SendFile(big, 0, 64<<20)
		if !handled || !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 64<<20 {
			t.Fatalf("SendFile to a stalled peer = %d, %v, %v; want some bytes, true, deadline exceeded", n, handled, err)
		}
	})
	t.Run("a peer that closes", func(t *testing.T) {
		// The connection breaks mid-send: an error (EPIPE or ECONNRESET),
		// not SIGPIPE ending the process.
		big := sparseFile(t, 64<<20)
		client, server := pipe(t)
		go func() {
			buf := make([]byte, 64<<10)
			server.Read(buf)
			server.Close()
		}()
		n, handled, err := New(client, 10*time.Second).SendFile(big, 0, 64<<20)
		if !handled || err == nil || n >= 64<<20 {
			t.Fatalf("SendFile to a peer that closed = %d, %v, %v; want fewer bytes, true, an error", n, handled, err)
		}
	})
	t.Run("not TCP", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		n, handled, err := New(a, time.Minute).SendFile(f, 0, 10)
		if n != 0 || handled || err != nil {
			t.Fatalf("SendFile on net.Pipe = %d, %v, %v; want 0, false, nil", n, handled, err)
		}
	})
}

// BenchmarkSendFile sends a 16 MB file (in TMPDIR: run it with
// TMPDIR=/dev/shm, as the bench's spool) to a loopback TCP peer that
// discards it: by SendFile, and read back in 256 KB pieces and written,
// as the spool's CopyTo did before. cpu-ns/op is the process's CPU time,
// the peer's reading included; sender-cpu-ns/op and peer-cpu-ns/op the
// sending and the reading thread's alone (each goroutine locked to its
// thread): on loopback, part of what sendfile saves the sender the
// receiver spends.
func BenchmarkSendFile(b *testing.B) {
	const size = 16 << 20
	f, err := os.CreateTemp("", "sendfile-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		send func(c *Conn) error
	}{
		{"SendFile", func(c *Conn) error {
			_, _, err := c.SendFile(f, 0, size)
			return err
		}},
		{"ReadWrite", func(c *Conn) error {
			buf := make([]byte, 256<<10)
			for off := int64(0); off < size; off += int64(len(buf)) {
				n, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					return err
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client, server := pipe(b)
			peer := make(chan time.Duration, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				t0 := threadCPUTime(b)
				buf := make([]byte, 256<<10)
				for {
					if _, err := server.Read(buf); err != nil {
						break
					}
				}
				peer <- threadCPUTime(b) - t0
			}()
			c := New(client, time.Minute)
			b.SetBytes(size)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, own0 := cpuTime(b), threadCPUTime(b)
			n := 0
			for b.Loop() {
				if err := tc.send(c); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(n), "cpu-ns/op")
			b.ReportMetric(float64(threadCPUTime(b)-own0)/float64(n), "sender-cpu-ns/op")
			client.Close()
			b.ReportMetric(float64(<-peer)/float64(n), "peer-cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadCPUTime is the CPU time the calling thread used so far.
func threadCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1, &ru); err != nil { // RUSAGE_THREAD
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sparseFile is a file of size zero bytes that takes no room on disk:
// more than the sockets' buffers hold.
func sparseFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "big")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}
