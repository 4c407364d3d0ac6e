package faultproxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	mrand "math/rand"
	"net"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every connection until the client closes it. With
// cfg it speaks TLS.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
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

// greeter writes greeting on every connection, then echoes.
func greeter(t *testing.T, greeting []byte) string {
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
				c.Write(greeting)
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, upstream string, faults ...Fault) *Proxy {
	t.Helper()
	p, err := Start(upstream, Plan{Faults: faults})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// exchange writes payload (concurrently) and reads until EOF or an error.
func exchange(c net.Conn, payload []byte) ([]byte, error) {
	go c.Write(payload)
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	return got.Bytes(), err
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func TestCutAfterBytes(t *testing.T) {
	addr := echoServer(t, nil)
	tests := []struct {
		name  string
		fault Fault
		want  int // bytes that come back before the connection ends
	}{
		{"server→client after 1000", Fault{Kind: Cut, Dir: ServerToClient, After: 1000}, 1000},
		{"client→server after 700", Fault{Kind: Cut, Dir: ClientToServer, After: 700}, 700},
		{"server→client at 0", Fault{Kind: Cut, Dir: ServerToClient, After: 0}, 0},
		{"beyond the data", Fault{Kind: Cut, Dir: ServerToClient, After: 1 << 20}, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, addr, tt.fault)
			c := dial(t, p.Addr())
			if tt.want == 5000 {
				// No fault fires: read the echo, then close our side.
				c.Write(payload(5000))
				got := make([]byte, 5000)
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload(5000)) {
					t.Fatalf("echo through the proxy: %v", err)
				}
				return
			}
			got, _ := exchange(c, payload(5000))
			// A cut client→server may still let through what the echo
			// server sent back for the bytes before the cut.
			if len(got) > tt.want || !bytes.Equal(got, payload(5000)[:len(got)]) {
				t.Fatalf("received %d bytes (want at most %d, a prefix of the payload)", len(got), tt.want)
			}
			if tt.fault.Dir == ServerToClient && len(got) != tt.want {
				t.Fatalf("received %d bytes, want exactly %d", len(got), tt.want)
			}
			ev := p.Events()
			if len(ev) != 1 || ev[0].Offset != tt.fault.After || ev[0].Conn != 1 {
				t.Fatalf("events = %v, want one cut at %d on connection 1", ev, tt.fault.After)
			}
		})
	}
}

func TestResetSendsRST(t *testing.T) {
	addr := echoServer(t, nil)
	p := startProxy(t, addr, Fault{Kind: Reset, Dir: ServerToClient, After: 10})
	c := dial(t, p.Addr())
	got, err := exchange(c, payload(100))
	if len(got) != 10 {
		t.Errorf("received %d bytes before the reset, want 10", len(got))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read error after a Reset fault = %v, want ECONNRESET", err)
	}
}

func TestStall(t *testing.T) {
	addr := echoServer(t, nil)
	t.Run("for a duration", func(t *testing.T) {
		p := startProxy(t, addr, Fault{Kind: Stall, Dir: ServerToClient, After: 3, Duration: 300 * time.Millisecond})
		c := dial(t, p.Addr())
		c.Write(payload(10))
		start := time.Now()
		got := make([]byte, 10)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("10 bytes arrived after %v despite a 300 ms stall", d)
		}
		if !bytes.Equal(got, payload(10)) {
			t.Fatalf("got %q after the stall, want %q", got, payload(10))
		}
	})
	t.Run("forever, until the client gives up", func(t *testing.T) {
		p := startProxy(t, addr, Fault{Kind: Stall, Dir: ServerToClient, After: 4})
		c := dial(t, p.Addr())
		c.Write(payload(10))
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		got, err := io.ReadAll(c)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || len(got) != 4 {
			t.Fatalf("read %d bytes, then %v; want 4 and a timeout", len(got), err)
		}
		c.Close()
		// The proxy notices the client went away and ends the connection;
		// Close must not hang on the stalled pump.
		done := make(chan struct{})
		go func() { p.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close hangs on a stalled connection")
		}
	})
}

func TestSlow(t *testing.T) {
	addr := echoServer(t, nil)
	p := startProxy(t, addr, Fault{Kind: Slow, Dir: ServerToClient, After: 100, BytesPerSecond: 4000})
	c := dial(t, p.Addr())
	start := time.Now()
	go c.Write(payload(900))
	got := make([]byte, 900)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	// 800 bytes at 4000 B/s take 200 ms.
	if d := time.Since(start); d < 180*time.Millisecond || d > 2*time.Second {
		t.Fatalf("900 bytes with 800 at 4000 B/s took %v, want about 200 ms", d)
	}
	if !bytes.Equal(got, payload(900)) {
		t.Fatal("slow link changed the bytes")
	}
}

func TestInject(t *testing.T) {
	greeting := []byte("* OK ready\r\n* OK second line\r\n")
	tests := []struct {
		name   string
		faults []Fault
		want   string
	}{
		{"at offset 0", []Fault{{Kind: Inject, Line: []byte("* BYE [UNAVAILABLE] going down\r\n")}},
			"* BYE [UNAVAILABLE] going down\r\n* OK ready\r\n* OK second line\r\n"},
		{"mid-line, delayed to the line start", []Fault{
			{Kind: Inject, After: 5, AtLineStart: true, Line: []byte("-ERR [SYS/TEMP] busy\r\n")},
			{Kind: Cut, After: 5, AtLineStart: true}},
			"* OK ready\r\n-ERR [SYS/TEMP] busy\r\n"},
		{"spliced at a raw offset", []Fault{{Kind: Inject, After: 4, Line: []byte("XX")}, {Kind: Cut, After: 12}},
			"* OKXX ready\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, greeter(t, greeting), tt.faults...)
			c := dial(t, p.Addr())
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			got, _ := io.ReadAll(c)
			if string(got) != tt.want {
				t.Fatalf("client read %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFaultOnOneConnection(t *testing.T) {
	addr := echoServer(t, nil)
	p := startProxy(t, addr, Fault{Conn: 2, Kind: Cut, Dir: ServerToClient, After: 50})
	for i := 1; i <= 3; i++ {
		c := dial(t, p.Addr())
		c.Write(payload(200))
		got := make([]byte, 200)
		n, err := io.ReadFull(c, got)
		if i == 2 {
			if n != 50 || err == nil {
				t.Errorf("connection 2: read %d bytes, err %v; want 50 and an end", n, err)
			}
		} else if err != nil {
			t.Errorf("connection %d: %v after %d bytes, want the full echo", i, err, n)
		}
		c.Close()
	}
	if p.Conns() != 3 {
		t.Errorf("Conns() = %d, want 3", p.Conns())
	}
	// SetPlan restarts the count: the next connection is number 1 again.
	if err := p.SetPlan(Plan{Faults: []Fault{{Conn: 1, Kind: Cut, After: 7}}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	got, _ := exchange(c, payload(20))
	if len(got) != 7 || len(p.Events()) != 1 {
		t.Fatalf("after SetPlan: read %d bytes with events %v, want 7 and one cut", len(got), p.Events())
	}
}

func TestTLSPassesThrough(t *testing.T) {
	server, client := tlsConfigs(t)
	p := startProxy(t, echoServer(t, server))
	c, err := tls.Dial("tcp", p.Addr(), client)
	if err != nil {
		t.Fatalf("TLS handshake through the proxy: %v", err)
	}
	defer c.Close()
	c.Write(payload(3000))
	got := make([]byte, 3000)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload(3000)) {
		t.Fatalf("TLS echo through the proxy: %v", err)
	}

	// A cut inside the TLS stream is a broken connection to the client.
	p2 := startProxy(t, echoServer(t, server), Fault{Kind: Cut, Dir: ServerToClient, After: 2000})
	c2, err := tls.Dial("tcp", p2.Addr(), client)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	go c2.Write(payload(5000))
	if _, err := io.ReadFull(c2, make([]byte, 5000)); err == nil {
		t.Fatal("read the whole echo through a cut connection")
	}
}

func TestPlanValidation(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
	}{
		{"negative connection", Fault{Conn: -1}},
		{"negative offset", Fault{After: -1}},
		{"slow without a rate", Fault{Kind: Slow}},
		{"inject without a line", Fault{Kind: Inject}},
		{"unknown kind", Fault{Kind: Kind(99)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Start("127.0.0.1:1", Plan{Faults: []Fault{tt.fault}}); err == nil {
				t.Fatalf("Start accepted %v", tt.fault)
			}
		})
	}
}

func TestRandomFaultIsDeterministic(t *testing.T) {
	o := RandomOptions{Kinds: []Kind{Cut, Reset, Stall, Slow, Inject}, Conn: 2, MaxAfter: 1000,
		MaxStall: time.Second, Lines: [][]byte{[]byte("* BYE bye\r\n"), []byte("-ERR [IN-USE] locked\r\n")}}
	draw := func(seed int64) [][]Fault {
		rng := mrand.New(mrand.NewSource(seed))
		var out [][]Fault
		for i := 0; i < 50; i++ {
			out = append(out, RandomFault(rng, o))
		}
		return out
	}
	a, b := draw(42), draw(42)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed drew different faults")
	}
	if reflect.DeepEqual(a, draw(43)) {
		t.Fatal("different seeds drew the same 50 faults")
	}
	kinds := map[Kind]bool{}
	for _, fs := range a {
		f := fs[0]
		kinds[f.Kind] = true
		if f.Conn != 2 || f.After < 0 || f.After >= 1000 {
			t.Fatalf("fault %v outside the options", f)
		}
		if err := (Plan{Faults: fs}).validate(); err != nil {
			t.Fatalf("drew an invalid fault: %v", err)
		}
		if f.Kind == Inject && (len(fs) != 2 || fs[1].Kind != Cut || !f.AtLineStart) {
			t.Fatalf("inject %v not followed by a cut at a line start: %v", f, fs)
		}
	}
	if len(kinds) != 5 {
		t.Errorf("50 draws gave kinds %v, want all five", kinds)
	}
}

func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// TestMaxOpen: the proxy counts the connections open at once.
func TestMaxOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	p, err := Start(ln.Addr().String(), Plan{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	for range 2 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	if n := p.MaxOpen(5 * time.Millisecond); n != 3 {
		t.Errorf("MaxOpen = %d, want 3", n)
	}
}
