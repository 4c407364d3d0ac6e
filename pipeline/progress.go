package pipeline

// Outcome is what happened to one message.
type Outcome int

const (
	OutcomeCopied  Outcome = iota + 1 // appended and committed
	OutcomeSkipped                    // not copied, with a reason recorded
	OutcomeFound                      // an interrupted run had copied it (reconciled)
)

// Progress receives events while accounts run. It carries data, not
// formatting, and may be called from several goroutines at once. Accounts
// are named by their ledger key (Options.Name); a display that shows
// Options.Label maps it.
type Progress interface {
	// AccountStarted is called as the source is listed, page by page:
	// toCopy messages are known so far to remain to be copied, and the
	// messages to copy found so far announce toCopyBytes. Each call
	// replaces what the last one said (a retry lists again from the
	// start).
	AccountStarted(account string, toCopy int, toCopyBytes int64)
	// MessageDone is called for each message that reached an outcome.
	MessageDone(account string, outcome Outcome, bytes int64)
	// AccountPaused is called when the account pauses and the run waits
	// for it (a timetable's pause, a message rate slower than the servers'
	// patience): its sessions are closed until p.Until, and the next
	// AccountStarted says it goes on. A pause that ends the account's run
	// comes with AccountFinished instead (Stats.Paused).
	AccountPaused(account string, p *PausedError)
	// AccountFinished is called when an account's run ends, with its stats.
	AccountFinished(account string, stats *Stats)
}

type nopProgress struct{}

func (nopProgress) AccountStarted(string, int, int64)        {}
func (nopProgress) MessageDone(string, Outcome, int64)       {}
func (nopProgress) AccountPaused(string, *PausedError)       {}
func (nopProgress) AccountFinished(account string, _ *Stats) {}

// TeeProgress returns a Progress that passes every event to each of ps in
// turn (nil ones left out), so that a run can feed the terminal display,
// the status page and notifications at once.
func TeeProgress(ps ...Progress) Progress {
	var t teeProgress
	for _, p := range ps {
		if p != nil {
			t = append(t, p)
		}
	}
	if len(t) == 1 {
		return t[0]
	}
	return t
}

type teeProgress []Progress

func (t teeProgress) AccountStarted(account string, toCopy int, toCopyBytes int64) {
	for _, p := range t {
		p.AccountStarted(account, toCopy, toCopyBytes)
	}
}

func (t teeProgress) MessageDone(account string, outcome Outcome, bytes int64) {
	for _, p := range t {
		p.MessageDone(account, outcome, bytes)
	}
}

func (t teeProgress) AccountPaused(account string, p *PausedError) {
	for _, q := range t {
		q.AccountPaused(account, p)
	}
}

func (t teeProgress) AccountFinished(account string, stats *Stats) {
	for _, p := range t {
		p.AccountFinished(account, stats)
	}
}
