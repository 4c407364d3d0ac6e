package imapconn

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/internal/bearer"
	"github.com/mailferry/mailferry/internal/testkit/imapfake"
	"github.com/mailferry/mailferry/internal/tlsmode"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

const password = "s3cret-PW"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// plainOptions are options for a clear-text session to addr.
func plainOptions(addr string) Options {
	return Options{Addr: addr, TLS: tlsmode.None, AllowPlaintext: true, IdleTimeout: 5 * time.Second,
		Credentials: Credentials{User: "alice", Password: secret.New(password)}}
}

// dialScript dials a scripted server with opts (Addr set to the server's)
// and returns the session or the error.
func dialScript(t *testing.T, opts Options, steps ...imapfake.Step) (*Conn, *imapfake.Server, error) {
	t.Helper()
	srv := imapfake.Start(t, steps...)
	opts.Addr = srv.Addr()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, opts)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, srv, err
}

func TestDialLogin(t *testing.T) {
	const token = "ya29.TOKEN-secret"
	tests := []struct {
		name    string
		opts    func(*Options)
		script  []imapfake.Step
		wantErr func(error) bool // nil: success
		class   pipeline.Class
	}{
		{
			name: "LOGIN with the greeting's capabilities",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect(`T1 LOGIN "alice" "` + password + "\"\r\n"),
				imapfake.Send("T1 OK [CAPABILITY IMAP4rev1] hi\r\n"),
			},
		},
		{
			name: "capabilities asked when the greeting has none",
			script: []imapfake.Step{
				imapfake.Send("* OK ready\r\n"),
				imapfake.Expect("T1 CAPABILITY\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1\r\nT1 OK done\r\n"),
				imapfake.Expect(`T2 LOGIN "alice" "` + password + "\"\r\n"),
				imapfake.Send("T2 OK hi\r\n"),
			},
		},
		{
			name: "LOGINDISABLED: AUTHENTICATE PLAIN",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE PLAIN " + b64("\x00alice\x00"+password) + "\r\n"),
				imapfake.Send("T1 OK hi\r\n"),
			},
		},
		{
			name: "master user: AUTHENTICATE PLAIN with the authorization identity",
			opts: func(o *Options) { o.User, o.AuthzID = "admin", "alice" },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE PLAIN " + b64("alice\x00admin\x00"+password) + "\r\n"),
				imapfake.Send("T1 OK hi\r\n"),
			},
		},
		{
			name: "XOAUTH2 with the token from PasswordFunc",
			opts: func(o *Options) {
				o.Auth = bearer.MethodXOAuth2
				o.PasswordFunc = func(context.Context) (secret.Value, error) { return secret.New(token), nil }
			},
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer "+token+"\x01\x01") + "\r\n"),
				imapfake.Send("T1 OK hi\r\n"),
			},
		},
		{
			name:   "PREAUTH needs no login",
			script: []imapfake.Step{imapfake.Send("* PREAUTH [CAPABILITY IMAP4rev1] welcome\r\n")},
		},
		{
			name: "refused LOGIN is a fatal LoginError",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect(`T1 LOGIN "alice" "` + password + "\"\r\n"),
				imapfake.Send("T1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool {
				var le *LoginError
				return errors.As(err, &le) && le.Command == "LOGIN" && le.Code == "AUTHENTICATIONFAILED" && le.User == "alice"
			},
			class: pipeline.ClassFatal,
		},
		{
			name: "LOGIN refused while the server is busy is transient",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect(`T1 LOGIN "alice" "` + password + "\"\r\n"),
				imapfake.Send("T1 NO [UNAVAILABLE] try later\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool { var le *LoginError; return errors.As(err, &le) },
			class:   pipeline.ClassTransient,
		},
		{
			name: "OAuth2 error challenge is a fatal RejectedError",
			opts: func(o *Options) { o.Auth, o.Password = bearer.MethodOAuthBearer, secret.New(token) },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready\r\n"),
				imapfake.Expect("T1 AUTHENTICATE OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer "+token+"\x01\x01") + "\r\n"),
				imapfake.Send("+ " + b64(`{"status":"invalid_token"}`) + "\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool {
				var rej *bearer.RejectedError
				return errors.As(err, &rej) && rej.Status == "invalid_token" && rej.User == "alice" &&
					strings.Contains(err.Error(), "AUTHENTICATE OAUTHBEARER for alice: server rejected the OAuth2 token")
			},
			class: pipeline.ClassFatal,
		},
		{
			name: "LOGINDISABLED without AUTH=PLAIN: nothing sent",
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrLoginDisabled) },
			class:   pipeline.ClassFatal,
		},
		{
			name: "OAuth2 mechanism not offered: nothing sent",
			opts: func(o *Options) { o.Auth = bearer.MethodXOAuth2 },
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "server does not offer AUTH=XOAUTH2") },
			class:   pipeline.ClassFatal,
		},
		{
			name: "BYE instead of a greeting is transient and keeps its text",
			script: []imapfake.Step{
				imapfake.Send("* BYE [UNAVAILABLE] too many connections\r\n"),
				imapfake.Close(),
			},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "too many connections") },
			class:   pipeline.ClassTransient,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := plainOptions("")
			if tc.opts != nil {
				tc.opts(&opts)
			}
			script := tc.script
			if tc.wantErr == nil {
				script = append(script, imapfake.Drain()) // open until Close
			}
			c, srv, err := dialScript(t, opts, script...)
			if tc.wantErr == nil {
				// The script checks the login; go-imap beta.8 sets its
				// state only after it has reported the command done.
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				_ = c.Close()
			} else {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("Dial = %v, not the error wanted", err)
				}
				if got := pipeline.ClassOf(err); got != tc.class {
					t.Errorf("class of %v = %v, want %v", err, got, tc.class)
				}
				if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), token) {
					t.Errorf("error %q shows the password or token", err)
				}
			}
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

// TestDialRefusesBeforeConnecting: what only configuration can change is
// refused before a connection is made, so nothing can leak.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	boom := errors.New("token command exited with status 1")
	tests := []struct {
		name    string
		opts    func(*Options)
		wantErr func(error) bool
		class   pipeline.Class
	}{
		{"plaintext without AllowPlaintext", func(o *Options) { o.AllowPlaintext = false },
			func(err error) bool { return errors.Is(err, tlsmode.ErrPlaintext) }, pipeline.ClassFatal},
		{"CR in the password", func(o *Options) { o.Password = secret.New("pw\r\nT9 LOGOUT") },
			func(err error) bool { return errors.Is(err, ErrInvalidArgument) }, pipeline.ClassFatal},
		{"NUL in the user name", func(o *Options) { o.User = "al\x00ice" },
			func(err error) bool { return errors.Is(err, ErrInvalidArgument) }, pipeline.ClassFatal},
		{"OAuth2 for another user", func(o *Options) { o.Auth, o.AuthzID = bearer.MethodXOAuth2, "bob" },
			func(err error) bool { return strings.Contains(err.Error(), "cannot act for another user") }, pipeline.ClassFatal},
		{"empty OAuth2 token", func(o *Options) { o.Auth, o.Password = bearer.MethodOAuthBearer, secret.Value{} },
			func(err error) bool { return strings.Contains(err.Error(), "token empty") }, pipeline.ClassFatal},
		{"unknown auth method", func(o *Options) { o.Auth = bearer.Method(42) },
			func(err error) bool { return strings.Contains(err.Error(), "unknown auth method") }, pipeline.ClassFatal},
		{"unknown TLS mode", func(o *Options) { o.TLS = tlsmode.Mode(7) },
			func(err error) bool { return strings.Contains(err.Error(), "unknown TLS mode") }, pipeline.ClassFatal},
		{"PasswordFunc fails", func(o *Options) {
			o.PasswordFunc = func(context.Context) (secret.Value, error) { return secret.Value{}, boom }
		}, func(err error) bool { return errors.Is(err, boom) }, pipeline.ClassTransient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			opts := plainOptions(ln.Addr().String())
			tc.opts(&opts)
			_, err = Dial(t.Context(), opts)
			if err == nil || !tc.wantErr(err) {
				t.Fatalf("Dial = %v, not the error wanted", err)
			}
			if got := pipeline.ClassOf(err); got != tc.class {
				t.Errorf("class of %v = %v, want %v", err, got, tc.class)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q shows the password", err)
			}
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
			if c, err := ln.Accept(); err == nil {
				_ = c.Close()
				t.Error("Dial connected, want it to refuse before connecting")
			}
		})
	}
}

func TestDialTLS(t *testing.T) {
	serverTLS, clientTLS := imapfake.TLSConfigs(t)
	loggedIn := []imapfake.Step{
		imapfake.Expect(`T2 LOGIN "alice" "` + password + "\"\r\n"),
		imapfake.Send("T2 OK hi\r\n"),
	}
	tests := []struct {
		name    string
		mode    tlsmode.Mode
		client  *tls.Config
		script  []imapfake.Step
		wantErr func(error) bool // nil: success
		class   pipeline.Class
	}{
		{
			name: "implicit TLS", mode: tlsmode.Implicit, client: clientTLS,
			script: []imapfake.Step{
				imapfake.StartTLS(serverTLS),
				imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
				imapfake.Expect(`T1 LOGIN "alice" "` + password + "\"\r\n"),
				imapfake.Send("T1 OK hi\r\n"),
			},
		},
		{
			name: "STARTTLS, then the capabilities asked again", mode: tlsmode.StartTLS, client: clientTLS,
			script: append([]imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"),
				imapfake.Expect("T0 STARTTLS\r\n"),
				imapfake.Send("T0 OK begin TLS\r\n"),
				imapfake.StartTLS(serverTLS),
				imapfake.Expect("T1 CAPABILITY\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1\r\nT1 OK done\r\n"),
			}, loggedIn...),
		},
		{
			name: "STARTTLS when the greeting lists no capabilities", mode: tlsmode.StartTLS, client: clientTLS,
			script: append([]imapfake.Step{
				imapfake.Send("* OK [ALERT] hello\r\n"),
				imapfake.Expect("T0 STARTTLS\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1 STARTTLS\r\nT0 OK begin TLS\r\n"),
				imapfake.StartTLS(serverTLS),
				imapfake.Expect("T1 CAPABILITY\r\n"),
				imapfake.Send("* CAPABILITY IMAP4rev1\r\nT1 OK done\r\n"),
			}, loggedIn...),
		},
		{
			name: "STARTTLS not offered: nothing sent", mode: tlsmode.StartTLS, client: clientTLS,
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrNoStartTLS) },
			class:   pipeline.ClassFatal,
		},
		{
			name: "STARTTLS refused", mode: tlsmode.StartTLS, client: clientTLS,
			script: []imapfake.Step{
				imapfake.Send("* OK ready\r\n"),
				imapfake.Expect("T0 STARTTLS\r\n"),
				imapfake.Send("T0 BAD unknown command\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool {
				return errors.Is(err, ErrNoStartTLS) && strings.Contains(err.Error(), "unknown command")
			},
			class: pipeline.ClassFatal,
		},
		{
			name: "PREAUTH in clear text refused", mode: tlsmode.StartTLS, client: clientTLS,
			script: []imapfake.Step{
				imapfake.Send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "PREAUTH on a clear-text connection") },
			class:   pipeline.ClassFatal,
		},
		{
			name: "data after STARTTLS OK refused (RFC 2595 §3.1)", mode: tlsmode.StartTLS, client: clientTLS,
			script: []imapfake.Step{
				imapfake.Send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
				imapfake.Expect("T0 STARTTLS\r\n"),
				imapfake.Send("T0 OK begin TLS\r\n* OK injected\r\n"),
				imapfake.Drain(),
			},
			wantErr: func(err error) bool { return strings.Contains(err.Error(), "sent data after STARTTLS OK") },
			class:   pipeline.ClassFatal,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := plainOptions("")
			opts.TLS, opts.AllowPlaintext = tc.mode, false
			cfg := tc.client.Clone()
			cfg.ServerName = "127.0.0.1"
			opts.TLSConfig = cfg
			c, srv, err := dialScript(t, opts, tc.script...)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				_ = c.Close()
			} else {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("Dial = %v, not the error wanted", err)
				}
				if got := pipeline.ClassOf(err); got != tc.class {
					t.Errorf("class of %v = %v, want %v", err, got, tc.class)
				}
				if strings.Contains(srv.Received(), "LOGIN") || strings.Contains(srv.Received(), "AUTHENTICATE") {
					t.Errorf("credentials sent: %q", srv.Received())
				}
			}
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

// TestDialUntrustedCertificate: a certificate that fails verification is
// fatal (only configuration can fix it), with implicit TLS and after
// STARTTLS, and no credentials are sent.
func TestDialUntrustedCertificate(t *testing.T) {
	serverTLS, _ := imapfake.TLSConfigs(t)
	_, otherCA := imapfake.TLSConfigs(t)
	for _, mode := range []tlsmode.Mode{tlsmode.Implicit, tlsmode.StartTLS} {
		t.Run(mode.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			received := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					received <- ""
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				got := ""
				if mode == tlsmode.StartTLS {
					_, _ = c.Write([]byte("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"))
					buf := make([]byte, len("T0 STARTTLS\r\n"))
					n, _ := io.ReadFull(c, buf)
					got = string(buf[:n])
					_, _ = c.Write([]byte("T0 OK begin TLS\r\n"))
				}
				tc := tls.Server(c, serverTLS)
				_ = tc.Handshake() // fails: the client refuses the certificate
				rest, _ := io.ReadAll(tc)
				received <- got + string(rest)
			}()
			opts := plainOptions(ln.Addr().String())
			opts.TLS, opts.AllowPlaintext = mode, false
			cfg := otherCA.Clone()
			cfg.ServerName = "127.0.0.1"
			opts.TLSConfig = cfg
			_, err = Dial(t.Context(), opts)
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) || pipeline.ClassOf(err) != pipeline.ClassFatal {
				t.Fatalf("Dial = %v (class %v), want a fatal certificate error", err, pipeline.ClassOf(err))
			}
			if got := <-received; strings.Contains(got, "LOGIN") || strings.Contains(got, password) {
				t.Errorf("the server received %q", got)
			}
		})
	}
}

// loggedIn is a clear-text session up to the authenticated state; the
// client's next command has tag T2.
func loggedIn() []imapfake.Step {
	return []imapfake.Step{
		imapfake.Send("* OK [CAPABILITY IMAP4rev1] ready\r\n"),
		imapfake.Expect(`T1 LOGIN "alice" "` + password + "\"\r\n"),
		imapfake.Send("T1 OK [CAPABILITY IMAP4rev1] hi\r\n"),
	}
}

// TestBufferedLiteralLimit: a literal go-imap would hold in memory (a
// mailbox name in LIST or STATUS) larger than MaxLiteral fails the command
// at once with ErrLiteralTooLarge; without the limit go-imap waits for the
// server to send all of it (here it never does) and keeps it in memory.
func TestBufferedLiteralLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit int64 // MaxLiteral
		run   func(*Conn) error
		steps []imapfake.Step
	}{
		{
			name: "LIST", run: func(c *Conn) error { _, err := c.Client().List("", "*", nil).Collect(); return err },
			steps: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" \"*\"\r\n"),
				imapfake.Send("* LIST () \"/\" {4000000000}\r\n"),
			},
		},
		{
			name: "STATUS", run: func(c *Conn) error {
				_, err := c.Client().Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
				return err
			},
			steps: []imapfake.Step{
				imapfake.Expect("T2 STATUS INBOX (MESSAGES)\r\n"),
				imapfake.Send("* STATUS {2147483648}\r\n"),
			},
		},
		{
			name: "just over MaxLiteral", limit: 4,
			run: func(c *Conn) error { _, err := c.Client().List("", "*", nil).Collect(); return err },
			steps: []imapfake.Step{
				imapfake.Expect("T2 LIST \"\" \"*\"\r\n"),
				imapfake.Send("* LIST () \"/\" {5}\r\n"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := plainOptions("")
			opts.MaxLiteral = tc.limit
			steps := append(append(loggedIn(), tc.steps...), imapfake.Drain())
			c, srv, err := dialScript(t, opts, steps...)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- tc.run(c) }()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				_ = c.Abort()
				<-done
				t.Fatal("the command still waits for the literal's bytes")
			}
			err = c.Explain(err)
			if !errors.Is(err, ErrLiteralTooLarge) || pipeline.ClassOf(err) != pipeline.ClassFatal {
				t.Fatalf("%s = %v (class %v), want a fatal ErrLiteralTooLarge", tc.name, err, pipeline.ClassOf(err))
			}
			_ = c.Close()
			if err := srv.Wait(); err != nil {
				t.Errorf("script: %v", err)
			}
		})
	}
}

// TestBufferedLiteralWithinLimit: literals up to the limit are read as
// before, and Explain leaves other errors alone.
func TestBufferedLiteralWithinLimit(t *testing.T) {
	steps := append(loggedIn(),
		imapfake.Expect("T2 LIST \"\" \"*\"\r\n"),
		imapfake.Send("* LIST () \"/\" {5}\r\nHello\r\n* LIST () \"/\" INBOX\r\nT2 OK done\r\n"),
		imapfake.Expect("T3 SELECT \"Nope\"\r\n"),
		imapfake.Send("T3 NO [NONEXISTENT] no such mailbox\r\n"),
	)
	opts := plainOptions("")
	opts.MaxLiteral = 5
	c, _, err := dialScript(t, opts, steps...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	list, err := c.Client().List("", "*", nil).Collect()
	if err != nil || len(list) != 2 || list[0].Mailbox != "Hello" {
		t.Fatalf("List = %+v, %v; want Hello and INBOX", list, err)
	}
	_, err = c.Client().Select("Nope", nil).Wait()
	var ie *imap.Error
	if err = c.Explain(err); !errors.As(err, &ie) || errors.Is(err, ErrLiteralTooLarge) {
		t.Errorf("Explain(SELECT's NO) = %v, want the server's error as it is", err)
	}
}

// TestBindClosesOnCancel: a command waiting on a silent server ends when
// the bound context does, and Dial's context no longer matters after Dial.
func TestBindClosesOnCancel(t *testing.T) {
	dialCtx, cancelDial := context.WithCancel(t.Context())
	srv := imapfake.Start(t, append(loggedIn(), imapfake.Expect("T2 NOOP\r\n"), imapfake.Drain())...)
	opts := plainOptions(srv.Addr())
	c, err := Dial(dialCtx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	cancelDial() // must not close the session
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	release := c.Bind(ctx)
	defer release()
	start := time.Now()
	err = c.Client().Noop().Wait()
	if err == nil {
		t.Fatal("NOOP on a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("NOOP returned after %v, want about when ctx ended", d)
	}
}

func TestLoginErrorClass(t *testing.T) {
	tests := []struct {
		err   LoginError
		class pipeline.Class
		after time.Duration
	}{
		{LoginError{Status: "NO", Code: "AUTHENTICATIONFAILED"}, pipeline.ClassFatal, 0},
		{LoginError{Status: "NO"}, pipeline.ClassFatal, 0},
		{LoginError{Status: "BAD", Text: "syntax"}, pipeline.ClassFatal, 0},
		{LoginError{Status: "NO", Code: "EXPIRED"}, pipeline.ClassFatal, 0},
		{LoginError{Status: "BYE", Text: "shutting down"}, pipeline.ClassTransient, 0},
		{LoginError{Status: "NO", Code: "UNAVAILABLE"}, pipeline.ClassTransient, 0},
		{LoginError{Status: "NO", Code: "inuse"}, pipeline.ClassTransient, 0},
		{LoginError{Status: "NO", Code: "THROTTLED"}, pipeline.ClassTransient, 0},
		{LoginError{Status: "NO", Text: "Request is throttled. Suggested Backoff Time: 1500 milliseconds"}, pipeline.ClassTransient, 1500 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := tc.err.ErrorClass(); got != tc.class {
			t.Errorf("%+v.ErrorClass() = %v, want %v", tc.err, got, tc.class)
		}
		if got := tc.err.RetryAfter(); got != tc.after {
			t.Errorf("%+v.RetryAfter() = %v, want %v", tc.err, got, tc.after)
		}
	}
	le := &LoginError{Addr: "mail.example:993", User: "alice", Command: "LOGIN", Status: "NO", Code: "AUTHENTICATIONFAILED", Text: "Authentication failed."}
	if got, want := le.Error(), "imapconn: LOGIN as alice on mail.example:993: NO [AUTHENTICATIONFAILED] Authentication failed."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestMechanism(t *testing.T) {
	caps := func(list string) func(string) bool {
		return func(c string) bool { return hasWord(list, c) }
	}
	tests := []struct {
		name  string
		creds Credentials
		caps  string
		want  string
		err   error // errors.Is target; nil: no error
	}{
		{"LOGIN by default", Credentials{User: "a"}, "IMAP4rev1", "", nil},
		{"PLAIN when LOGINDISABLED", Credentials{User: "a"}, "LOGINDISABLED AUTH=PLAIN", "PLAIN", nil},
		{"LOGINDISABLED without PLAIN", Credentials{User: "a"}, "LOGINDISABLED", "", ErrLoginDisabled},
		{"PLAIN asked for", Credentials{User: "a", Auth: bearer.MethodPlain}, "AUTH=PLAIN", "PLAIN", nil},
		{"PLAIN asked for, not offered", Credentials{User: "a", Auth: bearer.MethodPlain}, "IMAP4rev1", "", errAny},
		{"AuthzID needs PLAIN", Credentials{User: "a", AuthzID: "b"}, "IMAP4rev1", "", errAny},
		{"XOAUTH2", Credentials{User: "a", Auth: bearer.MethodXOAuth2}, "AUTH=XOAUTH2", "XOAUTH2", nil},
		{"OAUTHBEARER not offered", Credentials{User: "a", Auth: bearer.MethodOAuthBearer}, "AUTH=XOAUTH2", "", errAny},
	}
	for _, tc := range tests {
		got, err := tc.creds.Mechanism(caps(tc.caps))
		switch {
		case tc.err == nil && (err != nil || got != tc.want):
			t.Errorf("%s: Mechanism = %q, %v; want %q", tc.name, got, err, tc.want)
		case tc.err != nil && (err == nil || pipeline.ClassOf(err) != pipeline.ClassFatal):
			t.Errorf("%s: Mechanism = %q, %v; want a fatal error", tc.name, got, err)
		case tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
			t.Errorf("%s: Mechanism error %v, want %v", tc.name, err, tc.err)
		}
	}
}

// errAny stands for any error in TestMechanism.
var errAny = errors.New("any error")

func TestParseStatus(t *testing.T) {
	tests := []struct {
		line, tag                   string
		status, code, codeArg, text string
	}{
		{"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.", "*", "OK", "CAPABILITY", "IMAP4rev1 STARTTLS", "Dovecot ready."},
		{"* ok hello", "*", "OK", "", "", "hello"},
		{"T0 BAD [PARSE] what {5}", "T0", "BAD", "PARSE", "", "what {5}"},
		{"* PREAUTH [ALERT] hi", "*", "PREAUTH", "ALERT", "", "hi"},
		{"* NO [oops", "*", "NO", "", "", "[oops"},
		{"* CAPABILITY IMAP4rev1", "*", "", "", "", ""},
		{"T1 OK done", "T0", "", "", "", ""},
	}
	for _, tc := range tests {
		st, code, arg, text := parseStatus(tc.line, tc.tag)
		if st != tc.status || code != tc.code || arg != tc.codeArg || text != tc.text {
			t.Errorf("parseStatus(%q, %q) = %q, %q, %q, %q; want %q, %q, %q, %q", tc.line, tc.tag, st, code, arg, text,
				tc.status, tc.code, tc.codeArg, tc.text)
		}
	}
}

func FuzzSuggestedBackoff(f *testing.F) {
	f.Add("Request is throttled. Suggested Backoff Time: 1234 milliseconds")
	f.Add("Suggested Backoff Time: 3 s")
	f.Add("Suggested Backoff Time: 99999999999999999999999")
	f.Fuzz(func(t *testing.T, text string) {
		if d := SuggestedBackoff(text); d < 0 || d > maxRetryAfter {
			t.Fatalf("SuggestedBackoff(%q) = %v, outside [0, %v]", text, d, maxRetryAfter)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready")
	f.Add("T0 NO [")
	f.Add("* BYE ]")
	f.Fuzz(func(t *testing.T, line string) {
		st, code, _, text := parseStatus(line, "*")
		if st == "" && (code != "" || text != "") {
			t.Fatalf("parseStatus(%q) = no status but code %q, text %q", line, code, text)
		}
		if strings.ContainsAny(code, " ]") {
			t.Fatalf("parseStatus(%q): code %q contains a space or ]", line, code)
		}
	})
}
