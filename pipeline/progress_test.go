package pipeline

import (
	"sync"
	"testing"
)

// namesProgress records the account names of the events it receives.
type namesProgress struct {
	mu    sync.Mutex
	names map[string]int
}

func (p *namesProgress) add(a string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names[a]++
}
func (p *namesProgress) AccountStarted(a string, _ int, _ int64)  { p.add(a) }
func (p *namesProgress) MessageDone(a string, _ Outcome, _ int64) { p.add(a) }
func (p *namesProgress) AccountFinished(a string, _ *Stats)       { p.add(a) }
func (p *namesProgress) AccountPaused(string, *PausedError)       {}

// TestNameForPeople: Stats.Account carries the account's name,
// Stats.LedgerKey and the progress events its ledger key.
func TestNameForPeople(t *testing.T) {
	h := newHarness(genMessages(3))
	h.opts.Name, h.opts.Label = "pop3://alice@old:110 -> imap://alice@new:143/INBOX", "alice"
	prog := &namesProgress{names: map[string]int{}}
	h.runner.Progress = prog
	st := h.run(t)
	if st.Account != "alice" || st.LedgerKey != h.opts.Name || st.Copied != 3 {
		t.Errorf("stats account %q, ledger key %q, copied %d; want alice, the key, 3", st.Account, st.LedgerKey, st.Copied)
	}
	if len(prog.names) != 1 || prog.names[h.opts.Name] != 5 {
		t.Errorf("progress events by account: %v, want 5 for the key (started, 3 messages, finished)", prog.names)
	}
	if n := h.ledger.states(h.opts.Account)[StateDone]; n != 3 {
		t.Errorf("the ledger has %d done entries under the account, want 3", n)
	}
}
