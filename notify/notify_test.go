package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/pipeline"
)

// receiver is a local webhook that records the events it accepts and
// answers with the statuses of fail first.
type receiver struct {
	mu     sync.Mutex
	events []Event
	fail   []int
	calls  atomic.Int32
	hold   chan struct{} // when set, every request waits for it to close
	srv    *httptest.Server
}

func newReceiver(t *testing.T, fail ...int) *receiver {
	r := &receiver{fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(r.calls.Add(1))
		body, _ := io.ReadAll(req.Body) // the server notices a client gone only once the body was read
		if r.hold != nil {
			select {
			case <-r.hold:
			case <-req.Context().Done():
				return
			}
		}
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if n <= len(r.fail) {
			w.WriteHeader(r.fail[n-1])
			return
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// logBuffer is a logger whose output a test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func fast(o Options) Options {
	o.Backoff, o.Timeout = 5*time.Millisecond, 2*time.Second
	return o
}

func closeNow(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
}

func TestWebhookDelivery(t *testing.T) {
	tests := []struct {
		name      string
		fail      []int
		wantCalls int32
		wantGot   int
	}{
		{"accepted at once", nil, 1, 1},
		{"server errors are retried", []int{500, 503, 429}, 4, 1},
		{"a 4xx is not retried", []int{404}, 1, 0},
		{"gives up after the attempts", []int{500, 500, 500, 500, 500}, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, tt.fail...)
			logs := &logBuffer{}
			n, err := New(fast(Options{Webhook: r.srv.URL + "/hook/s3cr3t-path", Logger: slog.New(slog.NewTextHandler(logs, nil))}))
			if err != nil {
				t.Fatal(err)
			}
			ev := Event{Type: AccountFailed, Account: &Account{Name: "alice", Error: "LOGIN: NO", Hint: "check the password", Copied: 3}}
			if !n.Send(ev) {
				t.Fatal("Send = false on an empty queue")
			}
			closeNow(t, n)
			if c := r.calls.Load(); c != tt.wantCalls {
				t.Errorf("%d requests, want %d", c, tt.wantCalls)
			}
			got := r.got()
			if len(got) != tt.wantGot {
				t.Fatalf("%d events accepted, want %d", len(got), tt.wantGot)
			}
			if tt.wantGot == 1 {
				g := got[0]
				if g.Type != AccountFailed || g.Account == nil || g.Account.Name != "alice" || g.Account.Hint != "check the password" ||
					g.Time.IsZero() || g.Batch != nil {
					t.Errorf("event = %+v", g)
				}
			} else if !strings.Contains(logs.String(), "notification not delivered") {
				t.Errorf("no warning logged for the event not delivered:\n%s", logs)
			}
			if strings.Contains(logs.String(), "s3cr3t-path") {
				t.Errorf("the webhook's path (often its secret) was logged:\n%s", logs)
			}
		})
	}
}

// A receiver that never answers does not hold up Send: events beyond the
// queue are dropped with a warning, and Close gives up when told to.
func TestSlowReceiverNeverBlocks(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{})
	defer close(r.hold)
	logs := &logBuffer{}
	n, err := New(Options{Webhook: r.srv.URL, Queue: 2, Timeout: time.Minute, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	took := 0
	for range 50 {
		if n.Send(Event{Type: BatchFinished, Batch: &Batch{Accounts: 1}}) {
			took++
		}
	}
	if took > 3 || took < 2 {
		t.Errorf("%d of 50 events queued with a queue of 2 and one in flight", took)
	}
	if !strings.Contains(logs.String(), "queue is full") {
		t.Errorf("no warning for the dropped events:\n%s", logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); err == nil {
		t.Error("Close = nil with events still queued behind a stuck receiver, want the deadline's error")
	}
	// Sending is a channel send at most: far below the receiver's hold.
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("Send and Close took %v", el)
	}
	if n.Send(Event{Type: BatchFinished}) {
		t.Error("Send after Close = true")
	}
}

// A timeout bounds each attempt: a receiver slower than it is tried again.
// The timeout leaves a loaded machine time to get each request to the
// receiver's handler (which counts it): at 50 ms an attempt could time out
// before the server had read it, and the count came out short.
func TestWebhookTimeout(t *testing.T) {
	r := newReceiver(t)
	r.hold = make(chan struct{}) // never closed: every attempt times out
	n, err := New(Options{Webhook: r.srv.URL, Timeout: 500 * time.Millisecond, Backoff: time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	n.Send(Event{Type: BatchFinished})
	closeNow(t, n)
	if c := r.calls.Load(); c != 3 {
		t.Errorf("%d attempts, want 3", c)
	}
}

func TestCommandGetsJSONOnStdin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events")
	n, err := New(fast(Options{Command: "cat >> events; echo >> events", Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	n.Send(Event{Type: BatchFinished, Batch: &Batch{Command: "run", ExitCode: 3, Accounts: 4, AccountsFailed: 1, FailedAccounts: []string{"bob"}}})
	n.Send(Event{Type: AccountFailed, Account: &Account{Name: "bob", Error: "boom"}})
	closeNow(t, n)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("the command ran %d times, want 2:\n%s", len(lines), b)
	}
	var ev Event
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil || ev.Batch == nil || ev.Batch.ExitCode != 3 || ev.Batch.FailedAccounts[0] != "bob" {
		t.Errorf("first event %s (%v)", lines[0], err)
	}
}

func TestCommandFailureIsRetried(t *testing.T) {
	dir := t.TempDir()
	// Fails twice (counting in a file), then succeeds.
	cmd := `n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; [ $n -ge 3 ] && cat > ok`
	logs := &logBuffer{}
	n, err := New(fast(Options{Command: cmd, Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	if err != nil {
		t.Fatal(err)
	}
	n.Send(Event{Type: BatchFinished})
	closeNow(t, n)
	if b, err := os.ReadFile(filepath.Join(dir, "ok")); err != nil || !json.Valid(b) {
		t.Errorf("the third attempt did not get the event: %q, %v\n%s", b, err, logs)
	}
}

func TestNewChecks(t *testing.T) {
	if n, err := New(Options{}); n != nil || err != nil {
		t.Errorf("New with no receiver = %v, %v; want nil, nil", n, err)
	}
	var none *Notifier
	if !none.Send(Event{}) || none.Close(context.Background()) != nil {
		t.Error("a nil Notifier must take events and close")
	}
	for _, bad := range []string{"ftp://x", "https://", "not a url", "://token@x"} {
		if _, err := New(Options{Webhook: bad}); err == nil {
			t.Errorf("New(webhook %q) = nil error", bad)
		} else if strings.Contains(err.Error(), "token") {
			t.Errorf("New(webhook %q) error shows the URL: %v", bad, err)
		}
	}
}

func TestFailuresAnnouncesOncePerSeries(t *testing.T) {
	r := newReceiver(t)
	n, err := New(fast(Options{Webhook: r.srv.URL}))
	if err != nil {
		t.Fatal(err)
	}
	p := n.Failures(map[string]string{"key-a": "alice"})
	fail := &pipeline.Stats{Error: "LOGIN: NO", ErrorClass: "fatal", Hint: "check the password"}
	for _, st := range []*pipeline.Stats{
		fail, fail, // a failing service poll, twice: one event
		{},   // recovers
		fail, // fails again: a new event
		{Error: "interrupted: context canceled", ErrorClass: "interrupted"}, // never announced
		{Paused: true},
	} {
		p.AccountFinished("key-a", st)
	}
	p.AccountFinished("key-b", fail) // no name: the key
	closeNow(t, n)
	var names []string
	for _, ev := range r.got() {
		names = append(names, ev.Account.Name)
		if ev.Account.Hint != "check the password" || ev.Account.ErrorClass != "fatal" {
			t.Errorf("event %+v", ev.Account)
		}
	}
	if strings.Join(names, ",") != "alice,alice,key-b" {
		t.Errorf("announced %v, want alice twice (two series) and key-b", names)
	}
}

// No secret reaches a receiver: events carry what the engine reports, and
// the engine never reports a password. This holds the JSON to its fields.
func TestEventFields(t *testing.T) {
	b, _ := json.Marshal(Event{Type: AccountFailed, Account: &Account{Name: "a"}})
	var m map[string]any
	json.Unmarshal(b, &m)
	acc := m["account"].(map[string]any)
	for k := range acc {
		switch k {
		case "name", "error", "error_class", "hint", "copied", "skipped", "failed":
		default:
			t.Errorf("unexpected account field %q", k)
		}
	}
}
