package notify

import (
	"sync"

	"github.com/mailferry/mailferry/pipeline"
)

// Failures returns a pipeline.Progress that sends AccountFailed when an
// account's run ends with an error (not when it was interrupted). An
// account that keeps failing, poll after poll of a service, is announced
// once, and again only after a run of it succeeded. names maps ledger keys
// to the config's account names; a key without a name is sent as it is.
func (n *Notifier) Failures(names map[string]string) pipeline.Progress {
	return &failures{n: n, names: names, failing: map[string]bool{}}
}

type failures struct {
	n       *Notifier
	names   map[string]string
	mu      sync.Mutex
	failing map[string]bool
}

func (f *failures) AccountStarted(string, int, int64)           {}
func (f *failures) MessageDone(string, pipeline.Outcome, int64) {}
func (f *failures) AccountPaused(string, *pipeline.PausedError) {}
func (f *failures) AccountFinished(account string, st *pipeline.Stats) {
	if st == nil || st.ErrorClass == "interrupted" || st.Paused || st.Locked {
		return
	}
	f.mu.Lock()
	was := f.failing[account]
	f.failing[account] = st.Error != ""
	f.mu.Unlock()
	if st.Error == "" || was {
		return
	}
	name := f.names[account]
	if name == "" {
		name = account
	}
	f.n.Send(Event{Type: AccountFailed, Account: &Account{Name: name, Error: st.Error, ErrorClass: st.ErrorClass,
		Hint: st.Hint, Copied: st.Copied, Skipped: st.Skipped, Failed: st.Failed}})
}
