// Package imapfake is a scripted IMAP server for transcript tests: it
// accepts one connection on 127.0.0.1 and plays a script of steps, checking
// that the client sends exactly the bytes expected and answering with exactly
// the bytes given. It knows no IMAP (RFC 3501) beyond what the script says,
// so it can play servers that misbehave: a NO before the continuation, a BYE
// in the middle of a command, a uid-set APPENDUID, a STARTTLS upgrade.
package imapfake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepTimeout bounds how long an Expect step waits for the client.
const stepTimeout = 5 * time.Second

type kind int

const (
	kindExpect kind = iota
	kindSend
	kindStartTLS
	kindClose
	kindDrain
	kindExpectLinePrefix
	kindExpectLineWords
)

// Step is one action of a script.
type Step struct {
	kind  kind
	data  string
	words []string
	tls   *tls.Config
}

// Expect makes the server read len(s) bytes and require them to equal s.
func Expect(s string) Step { return Step{kind: kindExpect, data: s} }

// ExpectLinePrefix makes the server read one line, up to and including its
// LF, and require it to start with prefix: for commands whose items go-imap
// writes in map order (FETCH, STATUS), which a transcript cannot expect.
func ExpectLinePrefix(prefix string) Step { return Step{kind: kindExpectLinePrefix, data: prefix} }

// ExpectLineWords makes the server read one line and require it to be
// prefix followed by exactly words, in any order, separated by spaces and
// closed by ")" or nothing: for STATUS items, which go-imap writes in map
// order (`ExpectLineWords("T3 STATUS INBOX (", "UIDNEXT", "UIDVALIDITY")`).
func ExpectLineWords(prefix string, words ...string) Step {
	return Step{kind: kindExpectLineWords, data: prefix, words: words}
}

// Send makes the server write s.
func Send(s string) Step { return Step{kind: kindSend, data: s} }

// StartTLS makes the server run a TLS handshake with cfg on the connection.
func StartTLS(cfg *tls.Config) Step { return Step{kind: kindStartTLS, tls: cfg} }

// Drain makes the server read and discard until the client closes the
// connection (for tests where the client gives up, e.g. on cancellation).
func Drain() Step { return Step{kind: kindDrain} }

// Close makes the server close the connection; later steps are not run.
func Close() Step { return Step{kind: kindClose} }

// Server is a running script.
type Server struct {
	ln   net.Listener
	done chan struct{}

	mu       sync.Mutex
	err      error
	received bytes.Buffer // everything the client sent, in order
}

// Start listens on 127.0.0.1:0 and plays steps on the first connection.
// When the test ends the server is stopped and any mismatch fails the test.
// After the last step the connection is closed.
func Start(t testing.TB, steps ...Step) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("imapfake: listen: %v", err)
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	go s.run(steps)
	t.Cleanup(func() {
		_ = s.ln.Close()
		if err := s.Wait(); err != nil {
			t.Errorf("imapfake: %v", err)
		}
	})
	return s
}

// Addr is the host:port to dial.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Wait waits until the script has finished or failed and returns its error.
func (s *Server) Wait() error {
	select {
	case <-s.done:
	case <-time.After(2 * stepTimeout):
		return errors.New("script did not finish")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Received returns every byte the client sent so far.
func (s *Server) Received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received.String()
}

func (s *Server) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *Server) run(steps []Step) {
	defer close(s.done)
	conn, err := s.ln.Accept()
	if err != nil {
		s.fail(fmt.Errorf("accept: %w", err))
		return
	}
	_ = s.ln.Close()
	defer func() { _ = conn.Close() }()
	for i, st := range steps {
		if err := s.step(&conn, st); err != nil {
			s.fail(fmt.Errorf("step %d: %w", i, err))
			return
		}
		if st.kind == kindClose {
			return
		}
	}
}

func (s *Server) step(conn *net.Conn, st Step) error {
	c := *conn
	_ = c.SetDeadline(time.Now().Add(stepTimeout))
	switch st.kind {
	case kindExpect:
		got := make([]byte, len(st.data))
		n, err := io.ReadFull(c, got)
		s.mu.Lock()
		s.received.Write(got[:n])
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("expecting %s: got %s, then %w", strconv.Quote(st.data), strconv.Quote(string(got[:n])), err)
		}
		if string(got) != st.data {
			return fmt.Errorf("expected %s\n                got %s", strconv.Quote(st.data), strconv.Quote(string(got)))
		}
	case kindExpectLinePrefix, kindExpectLineWords:
		var line []byte
		b := make([]byte, 1)
		for !bytes.HasSuffix(line, []byte("\n")) {
			if _, err := io.ReadFull(c, b); err != nil {
				return fmt.Errorf("expecting a line starting %s: got %s, then %w", strconv.Quote(st.data), strconv.Quote(string(line)), err)
			}
			line = append(line, b[0])
		}
		s.mu.Lock()
		s.received.Write(line)
		s.mu.Unlock()
		if !bytes.HasPrefix(line, []byte(st.data)) {
			return fmt.Errorf("expected a line starting %s\n                got %s", strconv.Quote(st.data), strconv.Quote(string(line)))
		}
		if st.kind == kindExpectLineWords {
			rest := strings.TrimSuffix(strings.TrimSuffix(string(line[len(st.data):]), "\r\n"), ")")
			got, want := strings.Fields(rest), slices.Clone(st.words)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				return fmt.Errorf("expected %s with the words %q\n                got %s", strconv.Quote(st.data), st.words, strconv.Quote(string(line)))
			}
		}
	case kindSend:
		if _, err := io.WriteString(c, st.data); err != nil {
			return fmt.Errorf("sending %s: %w", strconv.Quote(st.data), err)
		}
	case kindStartTLS:
		tc := tls.Server(c, st.tls)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		*conn = tc
	case kindClose:
		return c.Close()
	case kindDrain:
		n, err := io.Copy(io.Discard, c)
		if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
			return fmt.Errorf("draining after %d bytes: %w", n, err)
		}
	}
	return nil
}

// isReset reports whether err is the client resetting the connection.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TLSConfigs returns a server config with a fresh self-signed certificate
// for 127.0.0.1 and "localhost", and a client config that trusts it.
func TLSConfigs(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("imapfake: generating key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("imapfake: creating certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("imapfake: parsing certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}
