package account

import "sync"

// notes are what a run should tell the user about an account besides its
// counts: the optional features a server refused and what the copy does
// without them, the folders that went to a safe name. Each is kept once,
// in the order first seen. Safe for concurrent use.
type notes struct {
	mu   sync.Mutex
	list []string
	seen map[string]bool
}

func (n *notes) add(note string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen[note] {
		return
	}
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	n.seen[note] = true
	n.list = append(n.list, note)
}

// Notes returns what the account's sessions found worth telling the user
// so far (see notes), for the run's report and plan.
func (a *Account) Notes() []string {
	a.notes.mu.Lock()
	defer a.notes.mu.Unlock()
	return append([]string(nil), a.notes.list...)
}
