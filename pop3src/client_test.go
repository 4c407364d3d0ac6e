package pop3src

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// step is one exchange of a scripted server: it expects exactly want from
// the client (nothing when ""), then sends reply.
type step struct {
	want  string
	reply string
}

// scripted starts a client on a net.Pipe whose far end plays script, which
// starts with the greeting. After the script the peer expects the client to
// close without sending anything more. wait returns once the peer is done.
func scripted(t *testing.T, opts *ClientOptions, script ...step) (c *Client, wait func()) {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		// A client that waits where it should not fails instead of hanging.
		_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
		for i, s := range script {
			if s.want != "" {
				got := make([]byte, len(s.want))
				if _, err := io.ReadFull(sc, got); err != nil {
					t.Errorf("step %d: reading client's %q: %v", i, s.want, err)
					return
				}
				if string(got) != s.want {
					t.Errorf("step %d: client wrote %q, want %q", i, got, s.want)
					return
				}
			}
			if s.reply != "" {
				if _, err := io.WriteString(sc, s.reply); err != nil {
					t.Errorf("step %d: writing %q: %v", i, s.reply, err)
					return
				}
			}
		}
		extra, _ := io.ReadAll(sc)
		if len(extra) > 0 {
			t.Errorf("client wrote %q after the script ended", extra)
		}
	}()
	c, err := NewClient(cc, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	return c, func() { t.Helper(); c.Close(); <-done }
}

var plain = &ClientOptions{AllowPlaintext: true}

func TestTranscriptLogin(t *testing.T) {
	c, wait := scripted(t, plain,
		step{reply: "+OK ready <1.2@x>\r\n"},
		step{want: "USER alice\r\n", reply: "+OK\r\n"},
		step{want: "PASS s3cret with space\r\n", reply: "+OK logged in\r\n"},
		step{want: "STAT\r\n", reply: "+OK 2 320\r\n"},
		step{want: "QUIT\r\n", reply: "+OK bye\r\n"},
	)
	ctx := context.Background()
	if got := c.Greeting(); got != "ready <1.2@x>" {
		t.Errorf("Greeting() = %q", got)
	}
	if err := c.Login(ctx, "alice", secret.New("s3cret with space")); err != nil {
		t.Fatalf("Login: %v", err)
	}
	n, size, err := c.Stat(ctx)
	if err != nil || n != 2 || size != 320 {
		t.Fatalf("Stat() = %d, %d, %v; want 2, 320, nil", n, size, err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	wait()
}

func TestTranscriptAuthPlain(t *testing.T) {
	ir := base64.StdEncoding.EncodeToString([]byte("alice\x00master\x00pw"))
	long := strings.Repeat("u", 200)
	longIR := base64.StdEncoding.EncodeToString([]byte("\x00" + long + "\x00pw"))
	tests := []struct {
		name    string
		authzid string
		user    string
		script  []step
		wantErr bool
	}{
		{
			name: "initial response with authzid", authzid: "alice", user: "master",
			script: []step{{want: "AUTH PLAIN " + ir + "\r\n", reply: "+OK\r\n"}},
		},
		{
			name: "server ignores initial response and asks", authzid: "alice", user: "master",
			script: []step{
				{want: "AUTH PLAIN " + ir + "\r\n", reply: "+ \r\n"},
				{want: ir + "\r\n", reply: "+OK\r\n"},
			},
		},
		{
			name: "response too long for the AUTH line", user: long,
			script: []step{
				{want: "AUTH PLAIN\r\n", reply: "+ \r\n"},
				{want: longIR + "\r\n", reply: "+OK\r\n"},
			},
		},
		{
			name: "unexpected second challenge is cancelled", authzid: "alice", user: "master",
			script: []step{
				{want: "AUTH PLAIN " + ir + "\r\n", reply: "+ \r\n"},
				{want: ir + "\r\n", reply: "+ again\r\n"},
				{want: "*\r\n", reply: "-ERR cancelled\r\n"},
			},
			wantErr: true,
		},
		{
			name: "rejected", authzid: "alice", user: "master",
			script:  []step{{want: "AUTH PLAIN " + ir + "\r\n", reply: "-ERR [AUTH] no\r\n"}},
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, wait := scripted(t, plain, append([]step{{reply: "+OK\r\n"}}, tc.script...)...)
			err := c.AuthPlain(context.Background(), tc.authzid, tc.user, secret.New("pw"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("AuthPlain() error = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if pipeline.ClassOf(err) != pipeline.ClassFatal {
					t.Errorf("AuthPlain() error %v has class %v, want fatal", err, pipeline.ClassOf(err))
				}
				if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), ir) {
					t.Errorf("AuthPlain() error %q reveals the credentials", err)
				}
			}
			wait()
		})
	}
}

func TestTranscriptListings(t *testing.T) {
	c, wait := scripted(t, plain,
		step{reply: "+OK\r\n"},
		step{want: "CAPA\r\n", reply: "+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\nuidl\r\n..X-DOT\r\n.\r\n"},
		step{want: "LIST\r\n", reply: "+OK 2 messages\r\n1 120\r\n2 9000000000\r\n.\r\n"},
		step{want: "UIDL\r\n", reply: "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 .dotted\r\n.\r\n"},
		step{want: "NOOP\r\n", reply: "+OK\r\n"},
		step{want: "DELE 2\r\n", reply: "+OK\r\n"},
		step{want: "RSET\r\n", reply: "+OK\r\n"},
	)
	ctx := context.Background()
	// RFC 1939 §3: a listing line starting with "." is byte-stuffed.
	caps, err := c.Capa(ctx)
	if err != nil {
		t.Fatalf("Capa: %v", err)
	}
	if !caps.Has("USER") || !caps.Has("UIDL") || !caps.HasSASL("login") || caps.Has("STLS") || !caps.Has(".X-DOT") {
		t.Errorf("Capa() = %v: want USER, UIDL, SASL LOGIN, .X-DOT (unstuffed) and no STLS", caps)
	}
	list, err := c.List(ctx)
	if want := []MessageInfo{{1, 120}, {2, 9000000000}}; err != nil || !slices.Equal(list, want) {
		t.Errorf("List() = %v, %v; want %v", list, err, want)
	}
	uids, err := c.UIDL(ctx)
	if want := []UIDInfo{{1, "whqtswO00WBw418f9t5JxYwZ"}, {2, ".dotted"}}; err != nil || !slices.Equal(uids, want) {
		t.Errorf("UIDL() = %v, %v; want %v", uids, err, want)
	}
	for _, cmd := range []func(context.Context) error{c.Noop, func(ctx context.Context) error { return c.Dele(ctx, 2) }, c.Rset} {
		if err := cmd(ctx); err != nil {
			t.Fatalf("command: %v", err)
		}
	}
	wait()
}

func TestTranscriptRetr(t *testing.T) {
	c, wait := scripted(t, plain,
		step{reply: "+OK\r\n"},
		step{want: "RETR 1\r\n", reply: "+OK 14 octets\r\n..dot\r\nbare\nLF\r\n.\r\n"},
		step{want: "RETR 2\r\n", reply: "-ERR [SYS/TEMP] try later\r\n"},
		step{want: "RETR 3\r\n", reply: "+OK\r\nline\r\n.\r\n"},
		step{want: "RETR 1\r\n", reply: "+OK\r\nok\r\n.\r\n"},
	)
	ctx := context.Background()
	var buf bytes.Buffer
	n, err := c.Retr(ctx, 1, &buf)
	if want := ".dot\r\nbare\nLF\r\n"; err != nil || buf.String() != want || n != int64(len(want)) {
		t.Fatalf("Retr(1) = %d, %q, %v; want %d, %q", n, buf.String(), err, len(want), want)
	}
	_, err = c.Retr(ctx, 2, io.Discard)
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != "SYS/TEMP" || re.Command != "RETR 2" || pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Fatalf("Retr(2) error = %v; want transient *ResponseError SYS/TEMP", err)
	}
	// The caller's writer fails: the message is drained and the session
	// goes on.
	_, err = c.Retr(ctx, 3, &failingWriter{})
	var we *writerError
	if !errors.As(err, &we) {
		t.Fatalf("Retr(3) to failing writer: error = %v, want the writer's", err)
	}
	buf.Reset()
	if _, err := c.Retr(ctx, 1, &buf); err != nil || buf.String() != "ok\r\n" {
		t.Fatalf("Retr(1) after writer failure = %q, %v", buf.String(), err)
	}
	wait()
}

func TestTranscriptCloseSendsNoQuit(t *testing.T) {
	c, wait := scripted(t, plain,
		step{reply: "+OK\r\n"},
		step{want: "DELE 1\r\n", reply: "+OK\r\n"},
	)
	if err := c.Dele(context.Background(), 1); err != nil {
		t.Fatalf("Dele: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Noop(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Noop after Close: error = %v, want ErrClosed", err)
	}
	wait() // fails if anything (QUIT) was written after DELE
}

func TestTranscriptRejectsInjection(t *testing.T) {
	c, wait := scripted(t, plain, step{reply: "+OK\r\n"})
	ctx := context.Background()
	for _, user := range []string{"alice\r\nDELE 1", "bob\n", "eve\x00"} {
		if err := c.User(ctx, user); err == nil {
			t.Errorf("User(%q) = nil, want error", user)
		}
	}
	if err := c.Pass(ctx, secret.New("pw\r\nDELE 1")); err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("Pass(with CRLF) error = %v, want an error without the password", err)
	}
	wait() // fails if anything was written
}

func TestTranscriptPlaintextRefused(t *testing.T) {
	c, wait := scripted(t, nil, step{reply: "+OK\r\n"})
	ctx := context.Background()
	checks := map[string]error{
		"Login":     c.Login(ctx, "alice", secret.New("pw")),
		"AuthPlain": c.AuthPlain(ctx, "", "alice", secret.New("pw")),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrPlaintext) || pipeline.ClassOf(err) != pipeline.ClassFatal {
			t.Errorf("%s without TLS: error = %v, want fatal ErrPlaintext", name, err)
		}
	}
	wait() // fails if USER or AUTH was written
}

func TestTranscriptTraceRedacts(t *testing.T) {
	var trace bytes.Buffer
	ir := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00hunter2"))
	c, wait := scripted(t, &ClientOptions{AllowPlaintext: true, Trace: &trace},
		step{reply: "+OK\r\n"},
		step{want: "USER alice\r\n", reply: "+OK\r\n"},
		step{want: "PASS hunter2\r\n", reply: "-ERR [AUTH] wrong\r\n"},
		step{want: "AUTH PLAIN " + ir + "\r\n", reply: "+OK\r\n"},
		step{want: "RETR 1\r\n", reply: "+OK\r\nsecret body\r\n.\r\n"},
	)
	ctx := context.Background()
	err := c.Login(ctx, "alice", secret.New("hunter2"))
	var re *ResponseError
	if !errors.As(err, &re) || re.Command != "PASS ***" || pipeline.ClassOf(err) != pipeline.ClassFatal {
		t.Fatalf("Login with wrong password: error = %v, want fatal *ResponseError for PASS ***", err)
	}
	if err := c.AuthPlain(ctx, "", "bob", secret.New("hunter2")); err != nil {
		t.Fatalf("AuthPlain: %v", err)
	}
	if _, err := c.Retr(ctx, 1, io.Discard); err != nil {
		t.Fatalf("Retr: %v", err)
	}
	wait()
	got := trace.String()
	for _, leak := range []string{"hunter2", ir, "secret body"} {
		if strings.Contains(got, leak) {
			t.Errorf("trace contains %q:\n%s", leak, got)
		}
	}
	for _, want := range []string{"C: USER alice\n", "C: PASS ***\n", "C: AUTH PLAIN ***\n", "S: -ERR [AUTH] wrong\n", "S: [message body: 13 bytes]\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("trace lacks %q:\n%s", want, got)
		}
	}
}

func TestTranscriptBrokenServer(t *testing.T) {
	tests := []struct {
		name   string
		script []step
		run    func(context.Context, *Client) error
	}{
		{
			name:   "garbage status",
			script: []step{{want: "NOOP\r\n", reply: "* OK imap?\r\n"}},
			run:    func(ctx context.Context, c *Client) error { return c.Noop(ctx) },
		},
		{
			name:   "malformed LIST line",
			script: []step{{want: "LIST\r\n", reply: "+OK\r\n1\r\n.\r\n"}},
			run:    func(ctx context.Context, c *Client) error { _, err := c.List(ctx); return err },
		},
		{
			name:   "zero message number in UIDL",
			script: []step{{want: "UIDL\r\n", reply: "+OK\r\n0 abc\r\n.\r\n"}},
			run:    func(ctx context.Context, c *Client) error { _, err := c.UIDL(ctx); return err },
		},
		{
			name:   "malformed STAT",
			script: []step{{want: "STAT\r\n", reply: "+OK lots\r\n"}},
			run:    func(ctx context.Context, c *Client) error { _, _, err := c.Stat(ctx); return err },
		},
		{
			name:   "terminator with bare LF",
			script: []step{{want: "RETR 1\r\n", reply: "+OK\r\nx\r\n.\n"}},
			run:    func(ctx context.Context, c *Client) error { _, err := c.Retr(ctx, 1, io.Discard); return err },
		},
		{
			name:   "STLS reply followed by injected data",
			script: []step{{want: "STLS\r\n", reply: "+OK\r\n+OK injected\r\n"}},
			run:    func(ctx context.Context, c *Client) error { return c.STLS(ctx, testClientTLS(t)) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, wait := scripted(t, plain, append([]step{{reply: "+OK\r\n"}}, tc.script...)...)
			ctx := context.Background()
			err := tc.run(ctx, c)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want *ProtocolError", err)
			}
			// The session is unusable: nothing more goes to the server.
			if err := c.Noop(ctx); err == nil {
				t.Errorf("Noop after protocol violation = nil, want error")
			}
			wait()
		})
	}
}

func TestNewClientErrorGreeting(t *testing.T) {
	cc, sc := net.Pipe()
	defer cc.Close()
	go func() {
		io.WriteString(sc, "-ERR [SYS/TEMP] too busy\r\n")
		sc.Close()
	}()
	_, err := NewClient(cc, nil)
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != "SYS/TEMP" || re.Command != "" || pipeline.ClassOf(err) != pipeline.ClassTransient {
		t.Fatalf("NewClient with -ERR greeting: error = %v, want transient *ResponseError", err)
	}
}

func TestContextCancelUnblocksCommand(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	go func() {
		io.WriteString(sc, "+OK\r\n")
		io.Copy(io.Discard, sc) // read commands, never answer
	}()
	c, err := NewClient(cc, plain)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Retr(ctx, 1, io.Discard)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Retr with ctx that expires: error = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Retr returned after %v", d)
	}
	if err := c.Noop(context.Background()); err == nil {
		t.Errorf("Noop after cancelled command = nil, want error (connection closed)")
	}
}
