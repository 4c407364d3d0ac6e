// Package notify tells someone when an account fails and when a batch of
// accounts ends: a JSON POST to a webhook (notify_webhook) and/or a command
// run with the same JSON on its standard input (notify_command). Each is
// retried with a backoff and a timeout, and none ever holds up the copy:
// events wait in a bounded queue per receiver, and an event that finds its
// queue full is dropped with a warning. The JSON carries account names,
// counts, errors and hints, never a password, token or server address
// beyond what an error names.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Event types.
const (
	AccountFailed = "account_failed" // an account's run ended with an error
	BatchFinished = "batch_finished" // a run of several accounts ended
)

// Event is what is sent, as JSON.
type Event struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Host is the machine mailferry runs on, so that receivers serving
	// several machines can tell them apart.
	Host    string   `json:"host,omitempty"`
	Account *Account `json:"account,omitempty"` // AccountFailed
	Batch   *Batch   `json:"batch,omitempty"`   // BatchFinished
}

// Account is a failed account.
type Account struct {
	Name       string `json:"name"`
	Error      string `json:"error"`
	ErrorClass string `json:"error_class,omitempty"`
	Hint       string `json:"hint,omitempty"`
	Copied     int    `json:"copied"`
	Skipped    int    `json:"skipped"`
	Failed     int    `json:"failed"`
}

// Batch sums up a finished run.
type Batch struct {
	Command        string   `json:"command"`
	ExitCode       int      `json:"exit_code"`
	Accounts       int      `json:"accounts"`
	AccountsFailed int      `json:"accounts_failed"`
	AccountsPaused int      `json:"accounts_paused,omitempty"`
	Copied         int      `json:"copied"`
	Skipped        int      `json:"skipped"`
	Failed         int      `json:"failed"`
	Bytes          int64    `json:"bytes"`
	Seconds        float64  `json:"seconds"`
	FailedAccounts []string `json:"failed_accounts,omitempty"`
}

// Defaults for zero Options fields.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultAttempts = 4
	DefaultBackoff  = time.Second
	DefaultQueue    = 64
)

// Options configure a Notifier.
type Options struct {
	// Webhook is an http(s) URL that receives each event as a JSON POST;
	// "" for none.
	Webhook string
	// Command is run with sh -c for each event, the JSON on its standard
	// input; "" for none. Dir is its working directory ("" = the current).
	Command string
	Dir     string
	// Timeout bounds each attempt; Attempts is how many times an event is
	// tried; Backoff the wait before the second attempt, doubled after
	// each. Queue is how many events may wait per receiver.
	Timeout  time.Duration
	Attempts int
	Backoff  time.Duration
	Queue    int
	Logger   *slog.Logger
	// Client sends the webhook's requests; nil: a client with no
	// redirects followed (a redirect could carry the event elsewhere).
	Client *http.Client
}

// Notifier delivers events. Its methods may be called from several
// goroutines; a nil *Notifier takes every event and sends nothing.
type Notifier struct {
	sinks  []*sink
	log    *slog.Logger
	host   string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// sink is one receiver with its queue.
type sink struct {
	name    string // for logs: "webhook https://host" or "command"
	queue   chan []byte
	deliver func(ctx context.Context, body []byte) error
}

// ErrPermanent is wrapped by a delivery that must not be tried again (the
// webhook answered 4xx other than 408 and 429).
var ErrPermanent = errors.New("not retried")

// New checks opts and starts the delivery goroutines; with neither a
// webhook nor a command it returns nil (which takes and drops every
// event). Close stops them.
func New(opts Options) (*Notifier, error) {
	if opts.Webhook == "" && opts.Command == "" {
		return nil, nil
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log}
	n.host, _ = os.Hostname()
	if opts.Webhook != "" {
		u, err := ParseWebhook(opts.Webhook)
		if err != nil {
			return nil, err
		}
		client := opts.Client
		if client == nil {
			client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		// Only scheme and host in logs: the path or query of a webhook
		// URL is often its secret.
		n.sinks = append(n.sinks, &sink{name: "webhook " + u.Scheme + "://" + u.Host,
			deliver: func(ctx context.Context, body []byte) error { return post(ctx, client, u.String(), body) }})
	}
	if opts.Command != "" {
		cmd, dir := opts.Command, opts.Dir
		n.sinks = append(n.sinks, &sink{name: "command",
			deliver: func(ctx context.Context, body []byte) error { return runCommand(ctx, cmd, dir, body) }})
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for _, s := range n.sinks {
		s.queue = make(chan []byte, opts.Queue)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for body := range s.queue {
				n.deliver(ctx, s, body, opts)
			}
		}()
	}
	return n, nil
}

// ParseWebhook checks a webhook URL: http or https, with a host.
func ParseWebhook(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("notify_webhook: %v", redact(err, raw))
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("notify_webhook must be an http:// or https:// URL with a host")
	}
	return u, nil
}

// redact removes the URL (which may hold a token) from an error's text.
func redact(err error, raw string) string {
	return strings.ReplaceAll(err.Error(), raw, "<the URL>")
}

// Send queues ev for every receiver and returns at once. It fills in
// Time and Host when they are empty. An event that finds a receiver's
// queue full is dropped for that receiver, with a warning; Send reports
// whether every receiver took it.
func (n *Notifier) Send(ev Event) bool {
	if n == nil {
		return true
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.Host == "" {
		ev.Host = n.host
	}
	body, err := json.Marshal(ev)
	if err != nil {
		n.log.Warn("notification not sent: encoding it failed", "type", ev.Type, "error", err)
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.log.Warn("notification dropped: notifications are closed", "type", ev.Type)
		return false
	}
	all := true
	for _, s := range n.sinks {
		select {
		case s.queue <- body:
		default:
			all = false
			n.log.Warn("notification dropped: the receiver is not keeping up and its queue is full",
				"receiver", s.name, "type", ev.Type, "queue", cap(s.queue))
		}
	}
	return all
}

// deliver tries one event on one receiver until it succeeds, fails for
// good, runs out of attempts or ctx ends.
func (n *Notifier) deliver(ctx context.Context, s *sink, body []byte, opts Options) {
	wait := opts.Backoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, opts.Timeout)
		err := s.deliver(actx, body)
		cancel()
		if err == nil {
			n.log.Debug("notification sent", "receiver", s.name, "attempt", attempt)
			return
		}
		if ctx.Err() != nil || errors.Is(err, ErrPermanent) || attempt >= opts.Attempts {
			n.log.Warn("notification not delivered", "receiver", s.name, "attempts", attempt, "error", err)
			return
		}
		n.log.Debug("notification failed, retrying", "receiver", s.name, "attempt", attempt, "retry_in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			n.log.Warn("notification not delivered", "receiver", s.name, "attempts", attempt, "error", err)
			return
		}
		wait *= 2
	}
}

// Close stops taking events and delivers those queued, waiting until ctx
// ends at most; then it gives up on what is left (in-flight attempts are
// cancelled) and returns ctx's error.
func (n *Notifier) Close(ctx context.Context) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, s := range n.sinks {
			close(s.queue)
		}
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return fmt.Errorf("notifications still queued were dropped: %w", ctx.Err())
	}
}

// post sends body to the webhook.
func post(ctx context.Context, client *http.Client, webhook string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", redact(err, webhook), ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailferry")
	resp, err := client.Do(req)
	if err != nil {
		// url.Error's text holds the URL; keep only what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("posting: %v", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return fmt.Errorf("the webhook answered %s: %w", resp.Status, ErrPermanent)
}

// runCommand runs command with body on its standard input.
func runCommand(ctx context.Context, command, dir string, body []byte) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(body)
	out := &limitedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild holding the pipes open must not hang Wait after a kill.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if ctx.Err() != nil {
			return fmt.Errorf("notify_command did not finish in time: %w", ctx.Err())
		}
		if msg != "" {
			return fmt.Errorf("notify_command: %v: %s", err, msg)
		}
		return fmt.Errorf("notify_command: %v", err)
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it and takes the rest
// without keeping it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
