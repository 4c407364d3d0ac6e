package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// received is what an upstream connection got before it ended.
type received struct {
	data []byte
	err  error // the read error that ended it; nil for a close (FIN)
	at   time.Time
}

// recorder accepts one connection on ln and reports everything it reads
// until the connection ends.
func recorder(ln net.Listener) <-chan received {
	ch := make(chan received, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- received{err: err, at: time.Now()}
			return
		}
		defer c.Close()
		data, err := io.ReadAll(c)
		ch <- received{data: data, err: err, at: time.Now()}
	}()
	return ch
}

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClientLeavesDuringStall: a client→server stall keeps reading from
// the client, so a client that goes away ends the connection and its
// goroutines; what the client sent during the stall reaches upstream only
// if the client closed normally during a timed stall, after the stall, as
// TCP delivers it after an outage. A reset drops it, as it drops what a
// real network has not delivered yet.
func TestClientLeavesDuringStall(t *testing.T) {
	const before = "a1 LOGIN\r\n" // forwarded before the stall
	// Read by the proxy in the same read as before, and during the stall.
	early, late := []byte("a2 APPEND INBOX {20}\r\n"), []byte("stalled message body")
	tests := []struct {
		name     string
		duration time.Duration // of the stall; 0: endless unless released
		released bool          // the stall has an Until, closed once the client left
		reset    bool          // the client leaves with an RST, else a FIN
		wantData string        // what upstream receives in all
		wantRST  bool          // upstream is reset, not closed
	}{
		{"endless stall, client resets", 0, false, true, before, true},
		{"endless stall, client closes", 0, false, false, before, true},
		{"timed stall, client resets", 5 * time.Second, false, true, before, true},
		{"timed stall, client closes", 300 * time.Millisecond, false, false, before + string(early) + string(late), false},
		{"released stall, client resets", 0, true, true, before, true},
		{"released stall, client closes", 0, true, false, before + string(early) + string(late), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var until chan struct{}
			if tt.released {
				until = make(chan struct{})
			}
			p := startProxy(t, ln.Addr().String(),
				Fault{Kind: Stall, Dir: ClientToServer, After: int64(len(before)), Duration: tt.duration, Until: until})
			baseline := runtime.NumGoroutine()
			got := recorder(ln)

			c := dial(t, p.Addr())
			if _, err := c.Write(append([]byte(before), early...)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the stall did not fire", func() bool { return len(p.Events()) == 1 })
			if _, err := c.Write(late); err != nil {
				t.Fatal(err)
			}
			if tt.reset {
				if err := c.(*net.TCPConn).SetLinger(0); err != nil {
					t.Fatal(err)
				}
			}
			left := time.Now()
			c.Close()
			if tt.released {
				if tt.reset {
					// The reset ends it during the stall; released only
					// afterwards, as a release racing the reset could
					// come first and let the held bytes through.
					defer close(until)
				} else {
					// The client's close waits for the release.
					select {
					case r := <-got:
						t.Fatalf("upstream's connection ended (%q, %v) before the stall was released", r.data, r.err)
					case <-time.After(200 * time.Millisecond):
					}
					close(until)
				}
			}

			var r received
			select {
			case r = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("upstream's connection did not end after the client left")
			}
			if string(r.data) != tt.wantData {
				t.Errorf("upstream received %q, want %q", r.data, tt.wantData)
			}
			if tt.wantRST != errors.Is(r.err, syscall.ECONNRESET) {
				t.Errorf("upstream's connection ended with %v; want a reset: %v", r.err, tt.wantRST)
			}
			switch took := r.at.Sub(left); {
			case tt.wantRST && tt.duration > 0 && took > tt.duration*3/5:
				t.Errorf("upstream was reset %v after the client left, not before the %v stall ended", took, tt.duration)
			case !tt.wantRST && took < tt.duration/2:
				t.Errorf("upstream got the stalled bytes %v after the client left, before the %v stall ended", took, tt.duration)
			}
			waitFor(t, 5*time.Second, "the connection's goroutines did not end", func() bool {
				return runtime.NumGoroutine() <= baseline
			})
			if bytes.Contains(r.data, late) && tt.reset {
				t.Error("bytes sent during the stall reached upstream after a reset")
			}
		})
	}
}

// TestStallUntilReleased: a stall with Until lasts until Until is closed
// (Duration 0), or at most Duration; then what it held goes on, in order.
func TestStallUntilReleased(t *testing.T) {
	addr := echoServer(t, nil)
	for _, dir := range []Direction{ServerToClient, ClientToServer} {
		for _, d := range []time.Duration{0, time.Minute} {
			t.Run(fmt.Sprintf("%s, duration %v", dir, d), func(t *testing.T) {
				until := make(chan struct{})
				p := startProxy(t, addr, Fault{Kind: Stall, Dir: dir, After: 3, Duration: d, Until: until})
				c := dial(t, p.Addr())
				if _, err := c.Write(payload(10)); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, 3)
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatal(err)
				}
				waitFor(t, 5*time.Second, "the stall did not fire", func() bool { return len(p.Events()) == 1 })
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if n, err := c.Read(make([]byte, 10)); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("during the stall: read %d bytes, %v; want nothing until released", n, err)
				}
				close(until)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				rest := make([]byte, 7)
				if _, err := io.ReadFull(c, rest); err != nil {
					t.Fatalf("after the release: %v", err)
				}
				if all := append(got, rest...); !bytes.Equal(all, payload(10)) {
					t.Fatalf("got %q, want %q", all, payload(10))
				}
				// The connection goes on as if nothing happened.
				if _, err := c.Write(payload(5)); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, rest[:5]); err != nil || !bytes.Equal(rest[:5], payload(5)) {
					t.Fatalf("after the stall: %q, %v", rest[:5], err)
				}
			})
		}
	}
}
