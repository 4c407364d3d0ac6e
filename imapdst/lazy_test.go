package imapdst

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/internal/testkit/dovecot"
	"github.com/mailferry/mailferry/internal/testkit/faultproxy"
	"github.com/mailferry/mailferry/pipeline"
	"github.com/mailferry/mailferry/secret"
)

// countingServer is the in-memory server behind a proxy that counts the
// connections made to it.
func countingServer(t *testing.T) (*faultproxy.Proxy, Options) {
	t.Helper()
	addr, clientTLS := startMemServer(t)
	p, err := faultproxy.Start(addr, faultproxy.Plan{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, Options{Addr: p.Addr(), TLS: TLSStartTLS, TLSConfig: clientTLS, User: "alice",
		Password: secret.New("s3cret"), IdleTimeout: 5 * time.Second}
}

// oneMessage is a message to append.
func oneMessage() []pipeline.OutgoingMessage {
	body := "Message-ID: <lazy@example>\r\nSubject: lazy\r\n\r\nbody\r\n"
	return []pipeline.OutgoingMessage{{Body: strings.NewReader(body), Size: int64(len(body))}}
}

// TestAppenderOpensWhenNeeded: a session logs in once (the control
// connection) until it appends; the appender connection opens at the
// first APPEND, or from PrepareAppend, or with Dial when AppendAtDial
// says so; a closed session opens nothing more.
func TestAppenderOpensWhenNeeded(t *testing.T) {
	tests := []struct {
		name         string
		appendAtDial bool
		use          func(ctx context.Context, t *testing.T, d *Destination)
		atDial       int // connections once Dial returned
		want         int // connections in all
	}{
		{
			name: "checks only", atDial: 1, want: 1,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				if _, err := d.EnsureMailbox(ctx, "INBOX"); err != nil {
					t.Fatalf("EnsureMailbox: %v", err)
				}
				if _, err := d.ListSince(ctx, "INBOX", 1, 1); err != nil && !errors.Is(err, pipeline.ErrUIDValidityChanged) {
					t.Fatalf("ListSince: %v", err)
				}
			},
		},
		{
			name: "append", atDial: 1, want: 2,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
					t.Fatalf("Append: %v", err)
				}
				if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
					t.Fatalf("second Append: %v", err)
				}
			},
		},
		{
			name: "start append", atDial: 1, want: 2,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				if _, err := d.StartAppend(ctx, "INBOX", oneMessage())(); err != nil {
					t.Fatalf("StartAppend: %v", err)
				}
			},
		},
		{
			name: "prepare, then append", atDial: 1, want: 2,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				d.PrepareAppend(ctx)
				d.PrepareAppend(ctx) // one opening at a time
				if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
					t.Fatalf("Append: %v", err)
				}
			},
		},
		{
			name: "prepare with an ended context, then append", atDial: 1, want: 2,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				ended, cancel := context.WithCancel(ctx)
				cancel()
				d.PrepareAppend(ended) // fails: Append opens it again
				if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
					t.Fatalf("Append: %v", err)
				}
			},
		},
		{
			name: "append at dial", appendAtDial: true, atDial: 2, want: 2,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
					t.Fatalf("Append: %v", err)
				}
			},
		},
		{
			name: "append after close", atDial: 1, want: 1,
			use: func(ctx context.Context, t *testing.T, d *Destination) {
				_ = d.Close()
				if _, err := d.Append(ctx, "INBOX", oneMessage()); !errors.Is(err, ErrClosed) {
					t.Errorf("Append after Close = %v, want ErrClosed", err)
				}
				d.PrepareAppend(ctx)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p, opts := countingServer(t)
			opts.AppendAtDial = tc.appendAtDial
			d, err := Dial(ctx, opts)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if got := p.Conns(); got != tc.atDial {
				t.Errorf("%d connections after Dial, want %d", got, tc.atDial)
			}
			tc.use(ctx, t, d)
			if err := d.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if got := p.Conns(); got != tc.want {
				t.Errorf("%d connections in all, want %d", got, tc.want)
			}
		})
	}
}

// TestPrepareAppendThenClose: Close gives up an appender connection still
// opening, or logs out of one opened meanwhile, and leaves none open.
func TestPrepareAppendThenClose(t *testing.T) {
	ctx := context.Background()
	p, opts := countingServer(t)
	calls := 0
	opts.OnClose = func() { calls++ }
	d, err := Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	d.PrepareAppend(ctx)
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if calls != 1 {
		t.Errorf("OnClose called %d times, want 1", calls)
	}
	if !p.WaitIdle(10 * time.Second) {
		t.Error("a connection is still open after Close")
	}
}

// TestAppenderDialError: the error of an appender connection opened at the
// first APPEND goes through Options.DialError (the account's treatment of
// a refused connection or token), and the next APPEND dials again.
func TestAppenderDialError(t *testing.T) {
	ctx := context.Background()
	_, opts := countingServer(t)
	boom := errors.New("the token command failed")
	var mu sync.Mutex
	logins := 0
	opts.PasswordFunc = func(context.Context) (secret.Value, error) {
		mu.Lock()
		defer mu.Unlock()
		logins++
		if logins == 2 { // the appender's first login
			return secret.Value{}, boom
		}
		return secret.New("s3cret"), nil
	}
	var seen []error
	opts.DialError = func(err error) error {
		seen = append(seen, err)
		return &toldError{err}
	}
	d, err := Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer d.Close()
	_, err = d.Append(ctx, "INBOX", oneMessage())
	var told *toldError
	if !errors.Is(err, boom) || !errors.As(err, &told) {
		t.Fatalf("first Append = %v, want the token command's error as DialError made it", err)
	}
	if len(seen) != 1 || !errors.Is(seen[0], boom) {
		t.Errorf("DialError saw %v, want the token command's error once", seen)
	}
	if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
		t.Errorf("second Append: %v, want the appender dialled again", err)
	}
}

// toldError is an error DialError has seen.
type toldError struct{ err error }

func (e *toldError) Error() string { return "told: " + e.err.Error() }
func (e *toldError) Unwrap() error { return e.err }

// TestCapabilitiesBeforeAppender: before the appender connection opens,
// Capabilities answers from the control connection, as the appender then
// does (the in-memory server, and Dovecot: its APPENDLIMIT and BINARY
// too).
func TestCapabilitiesBeforeAppender(t *testing.T) {
	ctx := context.Background()
	_, opts := countingServer(t)
	d, err := Dial(ctx, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer d.Close()
	caps := sameCapabilitiesAfterAppend(ctx, t, d)
	if !caps.UIDPlus || !caps.LiteralPlus || caps.MultiAppend {
		t.Errorf("Capabilities() = %+v, want UIDPLUS and LITERAL+ without MULTIAPPEND", caps)
	}
	srv := dovecot.Start(t, dovecot.Options{Users: map[string]string{"alice": "pw"}})
	caps = sameCapabilitiesAfterAppend(ctx, t, dialDovecot(t, srv, "alice", "pw"))
	if !caps.UIDPlus || !caps.MultiAppend || !caps.Binary {
		t.Errorf("Dovecot's Capabilities() = %+v, want UIDPLUS, MULTIAPPEND and BINARY", caps)
	}
}

// sameCapabilitiesAfterAppend appends a message with d, which has not
// appended yet, checks that Capabilities and Provider say after it what
// they said before, and returns the capabilities.
func sameCapabilitiesAfterAppend(ctx context.Context, t *testing.T, d *Destination) pipeline.Capabilities {
	t.Helper()
	if d.app != nil {
		t.Fatal("the appender connection is open before the first append")
	}
	before, provBefore := d.Capabilities(), d.Provider()
	if _, err := d.Append(ctx, "INBOX", oneMessage()); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if after := d.Capabilities(); after != before {
		t.Errorf("Capabilities() before the appender = %+v, after = %+v; want the same", before, after)
	}
	if d.Provider() != provBefore {
		t.Errorf("Provider() = %v after the appender opened, %v before", d.Provider(), provBefore)
	}
	return before
}
