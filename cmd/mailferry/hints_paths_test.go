package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/hint"
	"github.com/mailferry/mailferry/imapdst"
	"github.com/mailferry/mailferry/imapsrc"
	"github.com/mailferry/mailferry/pop3src"
	"github.com/mailferry/mailferry/secret"
	"github.com/mailferry/mailferry/verify"
)

// clientPaths are the ways mailferry logs in to a server, each as the
// error its client returns: POP3 source, IMAP source, IMAP destination
// (both connections), verify's and plan's session.
func clientPaths(addr string, allowPlaintext bool, auth int, token string) map[string]func(context.Context) error {
	return clientPathsWith(addr, allowPlaintext, auth, pathCreds{password: secret.New(token)})
}

// pathCreds is how every path gets its password or token: Password, or
// PasswordFunc and TokenRejected when get is set.
type pathCreds struct {
	password secret.Value
	get      func(context.Context) (secret.Value, error)
	rejected func(secret.Value)
}

// clientPathsWith is clientPaths with the credentials of c.
func clientPathsWith(addr string, allowPlaintext bool, auth int, c pathCreds) map[string]func(context.Context) error {
	pw := c.password
	return map[string]func(context.Context) error{
		"POP3 source": func(ctx context.Context) error {
			s, err := pop3src.Open(ctx, pop3src.Options{Addr: addr, TLS: pop3src.TLSNone, AllowPlaintext: allowPlaintext,
				User: "alice", Password: pw, PasswordFunc: c.get, TokenRejected: c.rejected, Auth: pop3src.AuthMethod(auth)})
			if err == nil {
				_ = s.Close(false)
			}
			return err
		},
		"IMAP source": func(ctx context.Context) error {
			s, err := imapsrc.Open(ctx, imapsrc.Options{Addr: addr, TLS: imapsrc.TLSNone, AllowPlaintext: allowPlaintext,
				User: "alice", Password: pw, PasswordFunc: c.get, TokenRejected: c.rejected, Auth: imapsrc.AuthMethod(auth)})
			if err == nil {
				_ = s.Close(false)
			}
			return err
		},
		"IMAP destination": func(ctx context.Context) error {
			// Both connections at once: the appender's login too.
			d, err := imapdst.Dial(ctx, imapdst.Options{Addr: addr, TLS: imapdst.TLSNone, AllowPlaintext: allowPlaintext,
				User: "alice", Password: pw, PasswordFunc: c.get, TokenRejected: c.rejected, Auth: imapdst.AuthMethod(auth),
				AppendAtDial: true})
			if err == nil {
				_ = d.Close()
			}
			return err
		},
		"verify": func(ctx context.Context) error {
			s, err := verify.DialIMAP(ctx, verify.IMAPOptions{Addr: addr, TLS: imapdst.TLSNone, AllowPlaintext: allowPlaintext,
				User: "alice", Password: pw, PasswordFunc: c.get, TokenRejected: c.rejected, Auth: imapdst.AuthMethod(auth)})
			if err == nil {
				_ = s.Close()
			}
			return err
		},
	}
}

// TestHintForPlaintextEveryPath: every client refuses clear text without
// --allow-plaintext with the one error the hint knows (the IMAP source's
// used to have no hint).
func TestHintForPlaintextEveryPath(t *testing.T) {
	for name, open := range clientPaths(closedAddr(t), false, int(imapdst.AuthDefault), "s3cret") {
		t.Run(name, func(t *testing.T) {
			err := open(t.Context())
			if err == nil {
				t.Fatal("opened without TLS and without AllowPlaintext")
			}
			if h := hint.For(err); !strings.Contains(h.Fix, "--allow-plaintext") || h.Class != hint.ClassPlaintext {
				t.Errorf("hint.For(%v) = %+v, want it to name --allow-plaintext", err, h)
			}
		})
	}
}

// TestHintForRejectedTokenEveryPath: a server answering an OAuth2 login
// with an error challenge gives the same hint on every path.
func TestHintForRejectedTokenEveryPath(t *testing.T) {
	const token = "ya29.rejected-SECRET"
	imapAddr := startTokenRejecter(t, false)
	pop3Addr := startTokenRejecter(t, true)
	imapPaths := clientPaths(imapAddr, true, int(imapdst.AuthXOAuth2), token)
	imapPaths["POP3 source"] = clientPaths(pop3Addr, true, int(imapdst.AuthXOAuth2), token)["POP3 source"]
	for name, open := range imapPaths {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := open(ctx)
			if err == nil {
				t.Fatal("logged in with a rejected token")
			}
			h := hint.For(err)
			if h.Class != hint.ClassToken {
				t.Errorf("hint.For(%v).Class = %q, want %q", err, h.Class, hint.ClassToken)
			}
			if !strings.Contains(h.Fix, "OAuth2 token") || !strings.Contains(h.Fix, "fresh") {
				t.Errorf("hint.For(%v).Fix = %q, want the rejected-token hint", err, h.Fix)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(h.Fix, token) {
				t.Errorf("the token shows: %v / %q", err, h.Fix)
			}
		})
	}
}

// TestRejectedTokenRetriedEveryPath: a token the server rejects goes to
// TokenRejected (a token cache drops it) and every path logs in once more
// with a fresh one: the IMAP source, the destination's control connection
// and verify through internal/imapconn, the appender and the POP3 source
// through their own dial code, all with bearer.WithFreshToken.
func TestRejectedTokenRetriedEveryPath(t *testing.T) {
	const stale, fresh = "ya29.stale-SECRET", "ya29.fresh-SECRET"
	addrs := map[bool]string{false: startTokenChecker(t, false, fresh), true: startTokenChecker(t, true, fresh)}
	for _, name := range []string{"POP3 source", "IMAP source", "IMAP destination", "verify"} {
		t.Run(name, func(t *testing.T) {
			// A token cache as oauthtoken's: it drops the token it holds
			// when that one is rejected, and the next get fetches anew.
			var (
				mu      sync.Mutex
				cur     = stale
				gets    int
				dropped []string
			)
			creds := pathCreds{
				get: func(context.Context) (secret.Value, error) {
					mu.Lock()
					defer mu.Unlock()
					gets++
					return secret.New(cur), nil
				},
				rejected: func(tok secret.Value) {
					mu.Lock()
					defer mu.Unlock()
					dropped = append(dropped, tok.Reveal())
					if tok.Reveal() == cur {
						cur = fresh
					}
				},
			}
			open := clientPathsWith(addrs[name == "POP3 source"], true, int(imapdst.AuthXOAuth2), creds)[name]
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := open(ctx); err != nil {
				t.Fatalf("with a stale token: %v, want a login with a fresh one", err)
			}
			conns := 1
			if name == "IMAP destination" {
				conns = 2 // the appender and the control connection, each on its own
			}
			mu.Lock()
			defer mu.Unlock()
			// Connections log in at once: one that asks for its token after
			// another's rejection already gets the fresh one.
			if len(dropped) < 1 || len(dropped) > conns || slices.ContainsFunc(dropped, func(tok string) bool { return tok != stale }) {
				t.Errorf("TokenRejected called with %q, want the stale token at least once and at most once per connection (%d)", dropped, conns)
			}
			if gets != conns+len(dropped) {
				t.Errorf("%d tokens asked for, want %d (one per connection, and a fresh one after each rejection)", gets, conns+len(dropped))
			}
		})
	}
}

// TestE2EPlaintextHintIMAP: copy and verify with imap://…?tls=none and no
// --allow-plaintext fail with the hint, before connecting anywhere (copy
// from an IMAP source used to give none; verify gave no hints at all).
func TestE2EPlaintextHintIMAP(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"MAILFERRY_SOURCE_PASSWORD": "a", "MAILFERRY_DEST_PASSWORD": "b"}[k]
	}
	state := filepath.Join(t.TempDir(), "state.db")
	plainIMAP := "imap://alice@" + closedAddr(t) + "?tls=none"
	closedIMAPS := "imaps://bob@" + closedAddr(t)
	for _, args := range [][]string{
		{"copy", plainIMAP, closedIMAPS, "--state", state, "--progress", "none"},
		{"verify", plainIMAP, plainIMAP, "--state", state},
	} {
		r := runInProcess(t, env, args...)
		if r.code != exitFatal || !strings.Contains(r.stdout+r.stderr, "--allow-plaintext") {
			t.Errorf("%v: exit %d, want %d and a hint at --allow-plaintext\n%s%s", args, r.code, exitFatal, r.stdout, r.stderr)
		}
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startTokenRejecter serves POP3 (RFC 5034 AUTH) or IMAP on 127.0.0.1,
// offering XOAUTH2 and answering every attempt with an RFC 7628 error
// challenge, then, after the client's dummy response, with a refusal.
func startTokenRejecter(t *testing.T, pop3 bool) string {
	t.Helper()
	return startTokenChecker(t, pop3, "")
}

// startTokenChecker is startTokenRejecter accepting the XOAUTH2 token
// good, when not "".
func startTokenChecker(t *testing.T, pop3 bool, good string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	challenge := base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer"}`))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				if pop3 {
					servePOP3Rejecter(c, r, challenge, good)
				} else {
					serveIMAPRejecter(c, r, challenge, good)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// accepted reports whether line, an AUTHENTICATE or AUTH command with an
// XOAUTH2 initial response, carries the token good.
func accepted(line, good string) bool {
	fields := strings.Fields(line)
	if good == "" || len(fields) == 0 {
		return false
	}
	ir, err := base64.StdEncoding.DecodeString(fields[len(fields)-1])
	return err == nil && strings.Contains(string(ir), "\x01auth=Bearer "+good+"\x01")
}

func serveIMAPRejecter(c net.Conn, r *bufio.Reader, challenge, good string) {
	const caps = "IMAP4rev1 SASL-IR AUTH=XOAUTH2"
	if _, err := c.Write([]byte("* OK [CAPABILITY " + caps + "] ready\r\n")); err != nil {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch verb, _, _ := strings.Cut(rest, " "); strings.ToUpper(verb) {
		case "CAPABILITY":
			_, err = c.Write([]byte("* CAPABILITY " + caps + "\r\n" + tag + " OK done\r\n"))
		case "AUTHENTICATE":
			if accepted(line, good) {
				_, err = c.Write([]byte(tag + " OK welcome\r\n"))
				break
			}
			if _, err = c.Write([]byte("+ " + challenge + "\r\n")); err != nil {
				return
			}
			if _, err = r.ReadString('\n'); err != nil {
				return // go-imap sends no dummy response: it closes
			}
			_, err = c.Write([]byte(tag + " NO [AUTHENTICATIONFAILED] invalid token\r\n"))
		default:
			_, err = c.Write([]byte(tag + " BAD unexpected\r\n"))
		}
		if err != nil {
			return
		}
	}
}

func servePOP3Rejecter(c net.Conn, r *bufio.Reader, challenge, good string) {
	if _, err := c.Write([]byte("+OK ready\r\n")); err != nil {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch verb, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " "); strings.ToUpper(verb) {
		case "CAPA":
			_, err = c.Write([]byte("+OK\r\nUSER\r\nSASL XOAUTH2\r\n.\r\n"))
		case "AUTH":
			if accepted(line, good) {
				_, err = c.Write([]byte("+OK welcome\r\n"))
				break
			}
			if _, err = c.Write([]byte("+ " + challenge + "\r\n")); err != nil {
				return
			}
			if _, err = r.ReadString('\n'); err != nil {
				return
			}
			_, err = c.Write([]byte("-ERR [AUTH] invalid token\r\n"))
		case "QUIT":
			_, _ = c.Write([]byte("+OK bye\r\n"))
			return
		default:
			_, err = c.Write([]byte("-ERR unexpected\r\n"))
		}
		if err != nil {
			return
		}
	}
}
