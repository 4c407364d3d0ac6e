package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultCloseWait is Runner.CloseWait's default: the LOGOUT timeout of
// the IMAP sessions (internal/imapconn, imapdst), the longest a session
// that works waits for its server's goodbye.
const DefaultCloseWait = 5 * time.Second

// closesBehind tracks the sessions that attempts left closing behind them
// (Runner.CloseBehind). Its zero value is ready.
type closesBehind struct {
	mu       sync.Mutex
	inFlight map[*closeBehind]struct{}
}

// closeBehind is one attempt's sessions closing.
type closeBehind struct {
	account accountKey
	done    chan struct{} // closed once every session of the attempt has closed
}

// accountKey names an account for closesBehind: in a dry run the accounts
// the ledger does not know all run as account 0.
type accountKey struct {
	id   AccountID
	name string
}

// start runs closeAll on a goroutine of its own, as account's.
func (c *closesBehind) start(account accountKey, closeAll func()) {
	k := &closeBehind{account: account, done: make(chan struct{})}
	c.mu.Lock()
	if c.inFlight == nil {
		c.inFlight = map[*closeBehind]struct{}{}
	}
	c.inFlight[k] = struct{}{}
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.inFlight, k)
			c.mu.Unlock()
			close(k.done)
		}()
		closeAll()
	}()
}

// pending returns the closes in flight, of account only unless all.
func (c *closesBehind) pending(account accountKey, all bool) []<-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []<-chan struct{}
	for k := range c.inFlight {
		if all || k.account == account {
			out = append(out, k.done)
		}
	}
	return out
}

// waitAccount waits until account's sessions closing behind have closed,
// or ctx ends. It is bounded by the sessions' own timeouts (LOGOUT's 5 s,
// POP3's idle timeout for QUIT): a retry waits no longer than an attempt
// that closed its sessions itself would have.
func (c *closesBehind) waitAccount(ctx context.Context, account accountKey) error {
	for _, done := range c.pending(account, false) {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the account's previous sessions to log out: %w", ctx.Err())
		}
	}
	return nil
}

// WaitClosed waits for the sessions that RunAccount left closing behind it
// (CloseBehind) to finish logging out, at most CloseWait, and less when
// ctx ends (a second Ctrl-C cuts the logouts short, as it cuts an attempt
// short). It returns how many accounts' sessions were still closing when
// it gave up, and logs them; what their servers never confirmed changes
// nothing (nothing that closes behind has an outcome anyone records), and
// a process that exits closes their connections. Call it once every
// RunAccount has returned, before the report and the exit.
func (r *Runner) WaitClosed(ctx context.Context) int {
	wait := r.CloseWait
	if wait <= 0 {
		wait = DefaultCloseWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		pending := r.closes.pending(accountKey{}, true)
		if len(pending) == 0 {
			return 0
		}
		select {
		case <-pending[0]:
			continue
		case <-timer.C:
			if r.Logger != nil {
				r.Logger.Warn("sessions still logging out; leaving them to the exit", "accounts", len(pending), "waited", wait)
			}
		case <-ctx.Done():
		}
		return len(pending)
	}
}
